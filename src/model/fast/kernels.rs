//! steerlab's own kernels for the gradient path: the cross-entropy forward and backward over
//! the vocabulary, and the SwiGLU, RMSNorm and softmax backward passes, each replacing a chain
//! of candle ops (and their full-size intermediate buffers) by one pass. On a GPU they are CUDA
//! kernels (`kernels.cu`, compiled once per process by NVRTC, which candle's CUDA build already
//! links; f32 and bf16); on the CPU, row-parallel loops over f32 buffers, compiled for the
//! process's [`CpuPath`](super::cpu_path::CpuPath) (AVX-512 and AVX2: the vector `exp` of the
//! inference kernels for the cross-entropy and SwiGLU rows, the other loops vectorised by the
//! compiler for the path's registers; NEON and portable: plain loops).
//!
//! Every function returns `Ok(None)` where its kernel does not apply (another dtype, inputs on
//! different devices, or turned off by `STEERLAB_KERNELS`, see [`enabled`]); the caller then
//! runs the composed candle ops, which stay the reference (the tests compare the two on the
//! CPU; `.gpu` runs compare them on a GPU). Must not know about models or training.
use candle_core::{DType, Shape, Tensor};

use super::cpu_path;

/// Whether kernel `name` (`xent`, `swiglu`, `rms`, `softmax`) may be used:
/// `STEERLAB_KERNELS` unset or `1` allows all, `0` none, a comma list those named.
pub fn enabled(name: &str) -> bool {
    !OFF.with(|o| o.get()) && super::switches::kernel_allowed(name)
}

thread_local! {
    static OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every kernel turned off on this thread, so the composed candle ops run
/// instead (for tests and A/B measurements; autograd's backward runs on the calling thread).
pub fn without<R>(f: impl FnOnce() -> R) -> R {
    let prev = OFF.with(|o| o.replace(true));
    let r = f();
    OFF.with(|o| o.set(prev));
    r
}

/// Where kernel `name` runs for inputs `ts`, if anywhere.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Cuda,
    Cpu,
}

fn backend(name: &str, ts: &[&Tensor]) -> Option<Backend> {
    if !enabled(name) || ts.is_empty() || ts.iter().any(|t| t.elem_count() == 0) {
        return None;
    }
    if cfg!(feature = "cuda")
        && ts
            .iter()
            .all(|t| t.device().is_cuda() && matches!(t.dtype(), DType::F32 | DType::BF16))
    {
        return Some(Backend::Cuda);
    }
    if ts
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    {
        return Some(Backend::Cpu);
    }
    None
}

/// Log-sum-exp and target log-probability of each row of `logits` `[N, V]` (f32 or bf16) at
/// `targets` `[N]` (u32): `[N, 2]` f32, column 0 the log-sum-exp, column 1 `logit[target] - lse`.
pub fn xent_fwd(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Option<Tensor>> {
    match backend("xent", &[logits]) {
        Some(Backend::Cuda) => imp::xent_fwd(logits, targets).map(Some),
        Some(Backend::Cpu) => cpu::xent_fwd(cpu_path::current(), logits, targets).map(Some),
        None => Ok(None),
    }
}

/// The gradient `dy[r] (onehot(target[r]) - softmax(logits[r]))` `[N, V]` in `logits`' dtype,
/// from the log-sum-exp `lse` (`[N]` or `[N, 1]`, column 0 of [`xent_fwd`]) and `dy` `[N]`.
pub fn xent_bwd(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    dy: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    match backend("xent", &[logits]) {
        Some(Backend::Cuda) => imp::xent_bwd(logits, targets, lse, dy).map(Some),
        Some(Backend::Cpu) => {
            cpu::xent_bwd(cpu_path::current(), logits, targets, lse, dy).map(Some)
        }
        None => Ok(None),
    }
}

/// SwiGLU backward for `m = silu(g) * u` given `da = dm`: `[2, ...]` (the shape of `g` with a
/// leading 2), `[0]` the gradient of `g`, `[1]` that of `u`; all three inputs of one dtype.
pub fn silu_mul_bwd(da: &Tensor, g: &Tensor, u: &Tensor) -> candle_core::Result<Option<Tensor>> {
    if da.dtype() != g.dtype() || g.dtype() != u.dtype() {
        return Ok(None);
    }
    match backend("swiglu", &[da, g, u]) {
        Some(Backend::Cuda) => imp::silu_mul_bwd(da, g, u).map(Some),
        Some(Backend::Cpu) => cpu::silu_mul_bwd(cpu_path::current(), da, g, u).map(Some),
        None => Ok(None),
    }
}

/// RMSNorm backward over the last dimension (`y = x / sqrt(mean(x^2) + eps) * w`): the
/// gradient with respect to `x` given `dy`, plus `res` when given (a residual branch's
/// gradient, added in f32 before the one rounding).
pub fn rms_norm_bwd(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    res: Option<&Tensor>,
    eps: f64,
) -> candle_core::Result<Option<Tensor>> {
    let mut all = vec![x, w, dy];
    all.extend(res);
    if all.iter().any(|t| t.dtype() != x.dtype()) {
        return Ok(None);
    }
    match backend("rms", &all) {
        Some(Backend::Cuda) => imp::rms_bwd(x, w, dy, res, eps).map(Some),
        Some(Backend::Cpu) => cpu::rms_bwd(cpu_path::current(), x, w, dy, res, eps).map(Some),
        None => Ok(None),
    }
}

/// Softmax backward over the last dimension, scaled: `scale p (dp - sum(dp p))`, for `p` the
/// softmax output (f32) and `dp` its gradient (f32 or bf16); returned in `dp`'s dtype.
pub fn softmax_bwd(p: &Tensor, dp: &Tensor, scale: f64) -> candle_core::Result<Option<Tensor>> {
    if p.dtype() != DType::F32 {
        return Ok(None);
    }
    match backend("softmax", &[p, dp]) {
        Some(Backend::Cuda) => imp::softmax_bwd(p, dp, scale).map(Some),
        Some(Backend::Cpu) => cpu::softmax_bwd(cpu_path::current(), p, dp, scale).map(Some),
        None => Ok(None),
    }
}

/// `(rows, last)`: the leading dims flattened and the last one.
fn rows_last(shape: &Shape) -> candle_core::Result<(usize, usize)> {
    let last = *shape
        .dims()
        .last()
        .ok_or_else(|| candle_core::Error::Msg("kernel input is a scalar".into()))?;
    Ok((shape.elem_count() / last.max(1), last))
}

/// The CPU versions: f32 only, rows split over rayon's pool (the one candle's CPU ops use),
/// each row's loops those of the given path (which this CPU runs: callers pass
/// `cpu_path::current()` or, in tests, a path from `cpu_path::available()`).
mod cpu {
    use candle_core::{Device, Shape, Storage, Tensor};
    use rayon::prelude::*;

    use super::rows_last;
    use crate::model::fast::cpu_path::CpuPath;

    /// Runs `f` on the f32 slices of the given tensors (contiguous copies where needed).
    fn with_slices<R>(
        ts: &[&Tensor],
        f: impl FnOnce(&[&[f32]]) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        let owned = ts
            .iter()
            .map(|t| t.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(ts.len());
        for ((g, layout), t) in guards.iter().zip(&owned) {
            match &**g {
                Storage::Cpu(c) => {
                    let start = layout.start_offset();
                    slices.push(&c.as_slice::<f32>()?[start..start + t.elem_count()]);
                }
                _ => candle_core::bail!("CPU kernel input is not on the CPU"),
            }
        }
        f(&slices)
    }

    fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> candle_core::Result<Tensor> {
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    fn target_ids(targets: &Tensor, n: usize, v: usize) -> candle_core::Result<Vec<usize>> {
        let t = targets
            .flatten_all()?
            .to_dtype(candle_core::DType::U32)?
            .to_vec1::<u32>()?;
        if t.len() != n {
            candle_core::bail!("{} targets for {n} rows", t.len());
        }
        t.into_iter()
            .map(|id| {
                let id = id as usize;
                if id < v {
                    Ok(id)
                } else {
                    Err(candle_core::Error::Msg(format!(
                        "target id {id} outside a vocabulary of {v}"
                    )))
                }
            })
            .collect()
    }

    pub fn xent_fwd(
        path: CpuPath,
        logits: &Tensor,
        targets: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (n, v) = rows_last(logits.shape())?;
        let ids = target_ids(targets, n, v)?;
        let mut out = vec![0f32; 2 * n];
        with_slices(&[logits], |s| {
            out.par_chunks_mut(2).enumerate().for_each(|(r, o)| {
                let row = &s[0][r * v..(r + 1) * v];
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum = rows::sum_exp(path, row, m);
                let lse = m + (sum as f32).ln();
                o[0] = lse;
                o[1] = row[ids[r]] - lse;
            });
            Ok(())
        })?;
        tensor(out, (n, 2))
    }

    pub fn xent_bwd(
        path: CpuPath,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (n, v) = rows_last(logits.shape())?;
        let ids = target_ids(targets, n, v)?;
        let lse = lse.flatten_all()?.to_vec1::<f32>()?;
        let dy = dy
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        if lse.len() != n || dy.len() != n {
            candle_core::bail!(
                "cross-entropy backward: {n} rows, {} lse, {} dy",
                lse.len(),
                dy.len()
            );
        }
        let mut out = vec![0f32; n * v];
        with_slices(&[logits], |s| {
            out.par_chunks_mut(v).enumerate().for_each(|(r, o)| {
                let row = &s[0][r * v..(r + 1) * v];
                rows::scaled_exp(path, row, lse[r], -dy[r], o);
                o[ids[r]] += dy[r];
            });
            Ok(())
        })?;
        tensor(out, logits.shape().clone())
    }

    pub fn silu_mul_bwd(
        path: CpuPath,
        da: &Tensor,
        g: &Tensor,
        u: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let n = g.elem_count();
        if da.elem_count() != n || u.elem_count() != n {
            candle_core::bail!("silu backward: inputs of different sizes");
        }
        let mut out = vec![0f32; 2 * n];
        with_slices(&[da, g, u], |s| {
            let (dg, du) = out.split_at_mut(n);
            const CHUNK: usize = 4096;
            dg.par_chunks_mut(CHUNK)
                .zip(du.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(c, (dg, du))| {
                    let r = c * CHUNK..c * CHUNK + dg.len();
                    rows::silu_bwd(path, &s[0][r.clone()], &s[1][r.clone()], &s[2][r], dg, du);
                });
            Ok(())
        })?;
        let mut dims = vec![2];
        dims.extend_from_slice(g.dims());
        tensor(out, dims)
    }

    pub fn rms_bwd(
        path: CpuPath,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        res: Option<&Tensor>,
        eps: f64,
    ) -> candle_core::Result<Tensor> {
        let (n, h) = rows_last(x.shape())?;
        if w.elem_count() != h || dy.dims() != x.dims() || res.is_some_and(|r| r.dims() != x.dims())
        {
            candle_core::bail!("rms-norm backward: inputs of different shapes");
        }
        let mut ins = vec![x, w, dy];
        ins.extend(res);
        let mut out = vec![0f32; n * h];
        with_slices(&ins, |s| {
            out.par_chunks_mut(h).enumerate().for_each(|(r, o)| {
                let res = s.get(3).map(|res| &res[r * h..(r + 1) * h]);
                let (xr, dr) = (&s[0][r * h..(r + 1) * h], &s[2][r * h..(r + 1) * h]);
                rows::rms_bwd(path, xr, s[1], dr, res, eps, o);
            });
            Ok(())
        })?;
        tensor(out, x.shape().clone())
    }

    pub fn softmax_bwd(
        path: CpuPath,
        p: &Tensor,
        dp: &Tensor,
        scale: f64,
    ) -> candle_core::Result<Tensor> {
        if p.dims() != dp.dims() {
            candle_core::bail!("softmax backward: inputs of different shapes");
        }
        let (n, len) = rows_last(p.shape())?;
        let scale = scale as f32;
        let mut out = vec![0f32; n * len];
        with_slices(&[p, dp], |s| {
            out.par_chunks_mut(len).enumerate().for_each(|(r, o)| {
                let pr = &s[0][r * len..(r + 1) * len];
                let dr = &s[1][r * len..(r + 1) * len];
                rows::softmax_bwd(path, pr, dr, scale, o);
            });
            Ok(())
        })?;
        tensor(out, p.shape().clone())
    }

    /// The per-row loops of the CPU kernels, one body per path: the portable bodies are the
    /// reference arithmetic; AVX-512 and AVX2 use the vector `exp` of the inference kernels
    /// (relative error ~2e-7, the polynomial of `cpu_infer`) where a row exponentiates, and
    /// compile the other bodies unchanged for the path's registers.
    pub(super) mod rows {
        use crate::model::fast::cpu_path::CpuPath;

        /// `Σ exp(row[j] - m)`, accumulated in f64.
        pub fn sum_exp(path: CpuPath, row: &[f32], m: f32) -> f64 {
            match path {
                // SAFETY: the path's features are available (the caller checked the path).
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx512 => unsafe { x86::sum_exp_avx512(row, m) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx2 => unsafe { x86::sum_exp_avx2(row, m) },
                _ => row.iter().map(|&a| f64::from((a - m).exp())).sum(),
            }
        }

        /// `out[j] = c exp(row[j] - l)`.
        pub fn scaled_exp(path: CpuPath, row: &[f32], l: f32, c: f32, out: &mut [f32]) {
            match path {
                // SAFETY: the path's features are available (the caller checked the path).
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx512 => unsafe { x86::scaled_exp_avx512(row, l, c, out) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx2 => unsafe { x86::scaled_exp_avx2(row, l, c, out) },
                _ => {
                    for (d, &a) in out.iter_mut().zip(row) {
                        *d = c * (a - l).exp();
                    }
                }
            }
        }

        /// SwiGLU backward over equal-length slices: `dg = a u σ (1 + g (1 - σ))`,
        /// `du = a g σ` with `σ = sigmoid(g)`.
        pub fn silu_bwd(
            path: CpuPath,
            a: &[f32],
            g: &[f32],
            u: &[f32],
            dg: &mut [f32],
            du: &mut [f32],
        ) {
            match path {
                // SAFETY: the path's features are available (the caller checked the path).
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx512 => unsafe { x86::silu_bwd_avx512(a, g, u, dg, du) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx2 => unsafe { x86::silu_bwd_avx2(a, g, u, dg, du) },
                _ => silu_bwd_scalar(a, g, u, dg, du),
            }
        }

        #[inline(always)]
        fn silu_bwd_scalar(a: &[f32], g: &[f32], u: &[f32], dg: &mut [f32], du: &mut [f32]) {
            for i in 0..dg.len().min(du.len()) {
                let (a, gi, ui) = (a[i], g[i], u[i]);
                let sig = 1.0 / (1.0 + (-gi).exp());
                dg[i] = a * ui * sig * (1.0 + gi * (1.0 - sig));
                du[i] = a * gi * sig;
            }
        }

        /// One row of the RMSNorm backward (plus the residual gradient `res`).
        pub fn rms_bwd(
            path: CpuPath,
            x: &[f32],
            w: &[f32],
            dy: &[f32],
            res: Option<&[f32]>,
            eps: f64,
            o: &mut [f32],
        ) {
            match path {
                // SAFETY: the path's features are available (the caller checked the path).
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx512 => unsafe { x86::rms_bwd_avx512(x, w, dy, res, eps, o) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx2 => unsafe { x86::rms_bwd_avx2(x, w, dy, res, eps, o) },
                _ => rms_bwd_body(x, w, dy, res, eps, o),
            }
        }

        #[inline(always)]
        fn rms_bwd_body(
            x: &[f32],
            w: &[f32],
            dy: &[f32],
            res: Option<&[f32]>,
            eps: f64,
            o: &mut [f32],
        ) {
            let h = o.len();
            let (mut ss, mut dot) = (0f64, 0f64);
            for j in 0..h {
                ss += f64::from(x[j] * x[j]);
                dot += f64::from(dy[j] * w[j] * x[j]);
            }
            let rr = 1.0 / (ss / h as f64 + eps).sqrt();
            let c = (rr * rr * rr * dot / h as f64) as f32;
            let rr = rr as f32;
            for j in 0..h {
                o[j] = rr * dy[j] * w[j] - x[j] * c;
            }
            if let Some(res) = res {
                for (d, &b) in o.iter_mut().zip(res) {
                    *d += b;
                }
            }
        }

        /// One row of the softmax backward: `scale p (dp - Σ dp p)`.
        pub fn softmax_bwd(path: CpuPath, p: &[f32], dp: &[f32], scale: f32, o: &mut [f32]) {
            match path {
                // SAFETY: the path's features are available (the caller checked the path).
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx512 => unsafe { x86::softmax_bwd_avx512(p, dp, scale, o) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                CpuPath::Avx2 => unsafe { x86::softmax_bwd_avx2(p, dp, scale, o) },
                _ => softmax_bwd_body(p, dp, scale, o),
            }
        }

        #[inline(always)]
        fn softmax_bwd_body(p: &[f32], dp: &[f32], scale: f32, o: &mut [f32]) {
            let acc: f32 = p.iter().zip(dp).map(|(a, b)| a * b).sum();
            for j in 0..o.len() {
                o[j] = scale * p[j] * (dp[j] - acc);
            }
        }

        #[cfg(target_arch = "x86_64")]
        mod x86 {
            use std::arch::x86_64::*;

            use super::{rms_bwd_body, softmax_bwd_body};
            use crate::model::fast::cpu_infer::{simd::exp8, simd512::exp16};

            /// Lanes `0..n` of a 16-lane mask.
            fn mask(n: usize) -> __mmask16 {
                if n >= 16 {
                    0xFFFF
                } else {
                    ((1u32 << n) - 1) as __mmask16
                }
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub unsafe fn sum_exp_avx512(row: &[f32], m: f32) -> f64 {
                let mv = _mm512_set1_ps(m);
                let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
                let mut i = 0;
                while i < row.len() {
                    let k = mask(row.len() - i);
                    // SAFETY: the mask covers only the floats left from i.
                    let x = unsafe { _mm512_maskz_loadu_ps(k, row.as_ptr().add(i)) };
                    let e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(x, mv)));
                    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
                    let upper = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e));
                    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(upper)));
                    i += 16;
                }
                _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
            }

            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn sum_exp_avx2(row: &[f32], m: f32) -> f64 {
                let mv = _mm256_set1_ps(m);
                let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
                let mut ch = row.chunks_exact(8);
                for c in &mut ch {
                    // SAFETY: c has 8 floats.
                    let x = unsafe { _mm256_loadu_ps(c.as_ptr()) };
                    let e = exp8(_mm256_sub_ps(x, mv));
                    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
                    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
                }
                let mut lanes = [0f64; 4];
                // SAFETY: lanes has 4 doubles.
                unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(lo, hi)) };
                let mut s: f64 = lanes.iter().sum();
                for &a in ch.remainder() {
                    s += f64::from((a - m).exp());
                }
                s
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub unsafe fn scaled_exp_avx512(row: &[f32], l: f32, c: f32, out: &mut [f32]) {
                let (lv, cv) = (_mm512_set1_ps(l), _mm512_set1_ps(c));
                let n = row.len().min(out.len());
                let mut i = 0;
                while i < n {
                    let k = mask(n - i);
                    // SAFETY: the mask covers only the floats left from i in both slices.
                    unsafe {
                        let x = _mm512_maskz_loadu_ps(k, row.as_ptr().add(i));
                        let e = exp16(_mm512_sub_ps(x, lv));
                        _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, _mm512_mul_ps(cv, e));
                    }
                    i += 16;
                }
            }

            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn scaled_exp_avx2(row: &[f32], l: f32, c: f32, out: &mut [f32]) {
                let (lv, cv) = (_mm256_set1_ps(l), _mm256_set1_ps(c));
                let n = row.len().min(out.len());
                let mut i = 0;
                while i + 8 <= n {
                    // SAFETY: i + 8 <= n in both slices.
                    unsafe {
                        let x = _mm256_loadu_ps(row.as_ptr().add(i));
                        let e = exp8(_mm256_sub_ps(x, lv));
                        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(cv, e));
                    }
                    i += 8;
                }
                for j in i..n {
                    out[j] = c * (row[j] - l).exp();
                }
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub unsafe fn silu_bwd_avx512(
                a: &[f32],
                g: &[f32],
                u: &[f32],
                dg: &mut [f32],
                du: &mut [f32],
            ) {
                let one = _mm512_set1_ps(1.0);
                let n = dg
                    .len()
                    .min(du.len())
                    .min(a.len())
                    .min(g.len())
                    .min(u.len());
                let mut i = 0;
                while i < n {
                    let k = mask(n - i);
                    // SAFETY: the mask covers only the floats left from i in all five slices.
                    unsafe {
                        let av = _mm512_maskz_loadu_ps(k, a.as_ptr().add(i));
                        let gv = _mm512_maskz_loadu_ps(k, g.as_ptr().add(i));
                        let uv = _mm512_maskz_loadu_ps(k, u.as_ptr().add(i));
                        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
                        let sig = _mm512_div_ps(one, _mm512_add_ps(one, e));
                        let t = _mm512_add_ps(one, _mm512_mul_ps(gv, _mm512_sub_ps(one, sig)));
                        let d = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(av, uv), sig), t);
                        _mm512_mask_storeu_ps(dg.as_mut_ptr().add(i), k, d);
                        let d = _mm512_mul_ps(_mm512_mul_ps(av, gv), sig);
                        _mm512_mask_storeu_ps(du.as_mut_ptr().add(i), k, d);
                    }
                    i += 16;
                }
            }

            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn silu_bwd_avx2(
                a: &[f32],
                g: &[f32],
                u: &[f32],
                dg: &mut [f32],
                du: &mut [f32],
            ) {
                let one = _mm256_set1_ps(1.0);
                let n = dg
                    .len()
                    .min(du.len())
                    .min(a.len())
                    .min(g.len())
                    .min(u.len());
                let mut i = 0;
                while i + 8 <= n {
                    // SAFETY: i + 8 <= n in all five slices.
                    unsafe {
                        let av = _mm256_loadu_ps(a.as_ptr().add(i));
                        let gv = _mm256_loadu_ps(g.as_ptr().add(i));
                        let uv = _mm256_loadu_ps(u.as_ptr().add(i));
                        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
                        let sig = _mm256_div_ps(one, _mm256_add_ps(one, e));
                        let t = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, sig)));
                        let d = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(av, uv), sig), t);
                        _mm256_storeu_ps(dg.as_mut_ptr().add(i), d);
                        let d = _mm256_mul_ps(_mm256_mul_ps(av, gv), sig);
                        _mm256_storeu_ps(du.as_mut_ptr().add(i), d);
                    }
                    i += 8;
                }
                super::silu_bwd_scalar(&a[i..n], &g[i..n], &u[i..n], &mut dg[i..n], &mut du[i..n]);
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub unsafe fn rms_bwd_avx512(
                x: &[f32],
                w: &[f32],
                dy: &[f32],
                res: Option<&[f32]>,
                eps: f64,
                o: &mut [f32],
            ) {
                rms_bwd_body(x, w, dy, res, eps, o)
            }

            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn rms_bwd_avx2(
                x: &[f32],
                w: &[f32],
                dy: &[f32],
                res: Option<&[f32]>,
                eps: f64,
                o: &mut [f32],
            ) {
                rms_bwd_body(x, w, dy, res, eps, o)
            }

            #[target_feature(enable = "avx512f,avx2,fma")]
            pub unsafe fn softmax_bwd_avx512(p: &[f32], dp: &[f32], scale: f32, o: &mut [f32]) {
                softmax_bwd_body(p, dp, scale, o)
            }

            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn softmax_bwd_avx2(p: &[f32], dp: &[f32], scale: f32, o: &mut [f32]) {
                softmax_bwd_body(p, dp, scale, o)
            }
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    //! Never reached: `backend` is never `Cuda` without the `cuda` feature.
    use candle_core::Tensor;

    fn none() -> candle_core::Result<Tensor> {
        candle_core::bail!("steerlab was built without CUDA kernels")
    }
    pub fn xent_fwd(_: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        none()
    }
    pub fn xent_bwd(_: &Tensor, _: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        none()
    }
    pub fn silu_mul_bwd(_: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        none()
    }
    pub fn rms_bwd(
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: Option<&Tensor>,
        _: f64,
    ) -> candle_core::Result<Tensor> {
        none()
    }
    pub fn softmax_bwd(_: &Tensor, _: &Tensor, _: f64) -> candle_core::Result<Tensor> {
        none()
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use std::sync::OnceLock;

    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
    };
    use candle_core::cuda_backend::{cudarc, CudaDType, WrapErr};
    use candle_core::{
        CpuStorage, CudaDevice, CudaStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor,
        WithDType,
    };
    use half::bf16;

    use super::rows_last;

    const SRC: &str = include_str!("kernels.cu");
    const MODULE: &str = "steerlab_kernels";

    fn ptx() -> candle_core::Result<&'static str> {
        static PTX: OnceLock<Result<String, String>> = OnceLock::new();
        PTX.get_or_init(|| {
            cudarc::nvrtc::compile_ptx(SRC)
                .map(|p| p.to_src())
                .map_err(|e| format!("{e:?}"))
        })
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling steerlab's CUDA kernels: {e}")))
    }

    /// A kernel launch as a graph-less custom op on its first input (the launch closure gets
    /// that input's storage; the other inputs are captured tensors).
    struct Op<F> {
        name: &'static str,
        run: F,
    }

    impl<F> CustomOp1 for Op<F>
    where
        F: Fn(&CudaStorage, &Layout) -> candle_core::Result<(CudaStorage, Shape)> + Send + Sync,
    {
        fn name(&self) -> &'static str {
            self.name
        }
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            candle_core::bail!("{}: a CUDA kernel called on the CPU", self.name)
        }
        fn cuda_fwd(
            &self,
            s: &CudaStorage,
            l: &Layout,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            (self.run)(s, l)
        }
    }

    fn apply<F>(first: &Tensor, name: &'static str, run: F) -> candle_core::Result<Tensor>
    where
        F: Fn(&CudaStorage, &Layout) -> candle_core::Result<(CudaStorage, Shape)> + Send + Sync,
    {
        first.apply_op1_no_bwd(&Op { name, run })
    }

    /// A contiguous view of a CUDA storage.
    fn view<'a, T: CudaDType>(
        s: &'a CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<CudaView<'a, T>> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("kernel input is not contiguous")
        };
        Ok(s.as_cuda_slice::<T>()?.slice(a..b))
    }

    fn cuda(st: &Storage) -> candle_core::Result<&CudaStorage> {
        match st {
            Storage::Cuda(c) => Ok(c),
            _ => candle_core::bail!("kernel input is not on the GPU"),
        }
    }

    /// Read guards on captured inputs, so that their device views can be borrowed for one launch.
    struct Held<'a>(Vec<(candle_core::StorageRef<'a>, &'a Layout)>);

    fn hold<'a>(ts: &[&'a Tensor]) -> Held<'a> {
        Held(ts.iter().map(|t| t.storage_and_layout()).collect())
    }

    impl Held<'_> {
        /// The contiguous device view of the `i`-th held input.
        fn view<T: CudaDType>(&self, i: usize) -> candle_core::Result<CudaView<'_, T>> {
            let (g, l) = &self.0[i];
            view::<T>(cuda(g)?, l)
        }
    }

    /// The kernel `name` for element type `T` (`name_bf16` or `name_f32`).
    fn kname<T: WithDType>(name: &str) -> String {
        let suf = if T::DTYPE == DType::BF16 {
            "bf16"
        } else {
            "f32"
        };
        format!("{name}_{suf}")
    }

    fn grid(n: usize) -> u32 {
        n.clamp(1, 65_535) as u32
    }

    fn int(n: usize, what: &str) -> candle_core::Result<i32> {
        i32::try_from(n).map_err(|_| candle_core::Error::Msg(format!("{what} {n} too large")))
    }

    /// Threads per block for a row of `len` values: a multiple of 32, at most 256.
    fn row_block(len: usize) -> u32 {
        (len.div_ceil(32) * 32).clamp(32, 256) as u32
    }

    fn cfg(grid: (u32, u32), block: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    fn out<T: CudaDType>(
        dev: &CudaDevice,
        slice: cudarc::driver::CudaSlice<T>,
        shape: Shape,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        Ok((CudaStorage::wrap_cuda_slice(slice, dev.clone()), shape))
    }

    /// Dispatches a generic launch on the storage dtype (bf16 or f32).
    macro_rules! by_dtype {
        ($dtype:expr, $f:ident($($a:expr),*)) => {
            match $dtype {
                DType::BF16 => $f::<bf16>($($a),*),
                _ => $f::<f32>($($a),*),
            }
        };
    }

    trait Elem: CudaDType + DeviceRepr + WithDType {}
    impl Elem for bf16 {}
    impl Elem for f32 {}

    pub fn xent_fwd(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
        let logits = logits.contiguous()?;
        let targets = targets.to_dtype(DType::U32)?.contiguous()?;
        let dtype = logits.dtype();
        apply(&logits, "xent-fwd", move |s, l| {
            by_dtype!(dtype, xent_fwd_t(s, l, &targets))
        })
    }

    fn xent_fwd_t<T: Elem>(
        s: &CudaStorage,
        l: &Layout,
        targets: &Tensor,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let (n, v) = rows_last(l.shape())?;
        let x = view::<T>(s, l)?;
        let held = hold(&[targets]);
        let t = held.view::<u32>(0)?;
        // SAFETY: every element is written by the kernel.
        let o = unsafe { dev.alloc::<f32>(2 * n)? };
        let f = dev.get_or_load_custom_func(&kname::<T>("xent_fwd"), MODULE, ptx()?)?;
        let (ni, vi) = (int(n, "rows")?, int(v, "vocabulary")?);
        let mut b = f.builder();
        b.arg(&x).arg(&t).arg(&o).arg(&ni).arg(&vi);
        // SAFETY: the arguments match the kernel's signature and the buffer sizes.
        unsafe { b.launch(cfg((grid(n), 1), 1024)) }.w()?;
        out(dev, o, Shape::from((n, 2)))
    }

    pub fn xent_bwd(
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let logits = logits.contiguous()?;
        let targets = targets.to_dtype(DType::U32)?.contiguous()?;
        let stats = lse.to_dtype(DType::F32)?.flatten_all()?.contiguous()?;
        let dy = dy.to_dtype(DType::F32)?.contiguous()?;
        let dtype = logits.dtype();
        apply(&logits, "xent-bwd", move |s, l| {
            by_dtype!(dtype, xent_bwd_t(s, l, &targets, &stats, &dy))
        })
    }

    fn xent_bwd_t<T: Elem>(
        s: &CudaStorage,
        l: &Layout,
        targets: &Tensor,
        stats: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let (n, v) = rows_last(l.shape())?;
        let x = view::<T>(s, l)?;
        let held = hold(&[targets, stats, dy]);
        let (t, st, g) = (
            held.view::<u32>(0)?,
            held.view::<f32>(1)?,
            held.view::<f32>(2)?,
        );
        // SAFETY: every element is written by the kernel.
        let o = unsafe { dev.alloc::<T>(n * v)? };
        let f = dev.get_or_load_custom_func(&kname::<T>("xent_bwd"), MODULE, ptx()?)?;
        let (ni, vi) = (int(n, "rows")?, int(v, "vocabulary")?);
        let mut b = f.builder();
        b.arg(&x).arg(&t).arg(&st).arg(&g).arg(&o).arg(&ni).arg(&vi);
        let gx = v.div_ceil(1024).max(1) as u32;
        // SAFETY: the arguments match the kernel's signature and the buffer sizes.
        unsafe { b.launch(cfg((gx, grid(n)), 256)) }.w()?;
        out(dev, o, l.shape().clone())
    }

    pub fn silu_mul_bwd(da: &Tensor, g: &Tensor, u: &Tensor) -> candle_core::Result<Tensor> {
        let da = da.contiguous()?;
        let g = g.contiguous()?;
        let u = u.contiguous()?;
        if da.elem_count() != g.elem_count() || g.elem_count() != u.elem_count() {
            candle_core::bail!("silu backward: inputs of different sizes");
        }
        let dtype = da.dtype();
        let mut dims = vec![2];
        dims.extend_from_slice(g.dims());
        let shape = Shape::from(dims);
        apply(&da, "silu-mul-bwd", move |s, l| {
            by_dtype!(dtype, silu_mul_bwd_t(s, l, &g, &u, shape.clone()))
        })
    }

    fn silu_mul_bwd_t<T: Elem>(
        s: &CudaStorage,
        l: &Layout,
        g: &Tensor,
        u: &Tensor,
        shape: Shape,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let n = l.shape().elem_count();
        let da = view::<T>(s, l)?;
        let held = hold(&[g, u]);
        let (gv, uv) = (held.view::<T>(0)?, held.view::<T>(1)?);
        // SAFETY: every element is written by the kernel.
        let o = unsafe { dev.alloc::<T>(2 * n)? };
        let f = dev.get_or_load_custom_func(&kname::<T>("silu_mul_bwd"), MODULE, ptx()?)?;
        let nn = n as i64;
        let mut b = f.builder();
        b.arg(&da).arg(&gv).arg(&uv).arg(&o).arg(&nn);
        let gx = n.div_ceil(256).clamp(1, 1 << 20) as u32;
        // SAFETY: the arguments match the kernel's signature and the buffer sizes.
        unsafe { b.launch(cfg((gx, 1), 256)) }.w()?;
        out(dev, o, shape)
    }

    pub fn rms_bwd(
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        res: Option<&Tensor>,
        eps: f64,
    ) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let w = w.contiguous()?;
        let dy = dy.contiguous()?;
        let res = res.map(|r| r.contiguous()).transpose()?;
        if dy.dims() != x.dims() || res.as_ref().is_some_and(|r| r.dims() != x.dims()) {
            candle_core::bail!("rms-norm backward: inputs of different shapes");
        }
        let dtype = x.dtype();
        let eps = eps as f32;
        apply(&x, "rms-norm-bwd", move |s, l| {
            by_dtype!(dtype, rms_bwd_t(s, l, &w, &dy, res.as_ref(), eps))
        })
    }

    fn rms_bwd_t<T: Elem>(
        s: &CudaStorage,
        l: &Layout,
        w: &Tensor,
        dy: &Tensor,
        res: Option<&Tensor>,
        eps: f32,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let (n, h) = rows_last(l.shape())?;
        if w.elem_count() != h {
            candle_core::bail!(
                "rms-norm backward: weight of {} for rows of {h}",
                w.elem_count()
            );
        }
        let x = view::<T>(s, l)?;
        let mut ins = vec![w, dy];
        ins.extend(res);
        let held = hold(&ins);
        let (wv, dv) = (held.view::<T>(0)?, held.view::<T>(1)?);
        let rv = match res {
            Some(_) => Some(held.view::<T>(2)?),
            None => None,
        };
        // SAFETY: every element is written by the kernel.
        let o = unsafe { dev.alloc::<T>(n * h)? };
        let f = dev.get_or_load_custom_func(&kname::<T>("rms_bwd"), MODULE, ptx()?)?;
        let (ni, hi) = (int(n, "rows")?, int(h, "width")?);
        let null = 0u64;
        let mut b = f.builder();
        b.arg(&x).arg(&wv).arg(&dv);
        match &rv {
            Some(r) => b.arg(r),
            None => b.arg(&null),
        };
        b.arg(&o).arg(&ni).arg(&hi).arg(&eps);
        // SAFETY: the arguments match the kernel's signature and the buffer sizes (a null
        // residual pointer is checked by the kernel).
        unsafe { b.launch(cfg((grid(n), 1), row_block(h))) }.w()?;
        out(dev, o, l.shape().clone())
    }

    pub fn softmax_bwd(p: &Tensor, dp: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
        let p = p.contiguous()?;
        let dp = dp.contiguous()?;
        if p.dims() != dp.dims() {
            candle_core::bail!("softmax backward: inputs of different shapes");
        }
        let dtype = dp.dtype();
        let scale = scale as f32;
        apply(&dp, "softmax-bwd", move |s, l| {
            by_dtype!(dtype, softmax_bwd_t(s, l, &p, scale))
        })
    }

    fn softmax_bwd_t<T: Elem>(
        s: &CudaStorage,
        l: &Layout,
        p: &Tensor,
        scale: f32,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let (n, len) = rows_last(l.shape())?;
        let dp = view::<T>(s, l)?;
        let held = hold(&[p]);
        let pv = held.view::<f32>(0)?;
        // SAFETY: every element is written by the kernel.
        let o = unsafe { dev.alloc::<T>(n * len)? };
        let f = dev.get_or_load_custom_func(&kname::<T>("softmax_bwd"), MODULE, ptx()?)?;
        let (ni, si) = (int(n, "rows")?, int(len, "width")?);
        let mut b = f.builder();
        b.arg(&pv).arg(&dp).arg(&o).arg(&ni).arg(&si).arg(&scale);
        // SAFETY: the arguments match the kernel's signature and the buffer sizes.
        unsafe { b.launch(cfg((grid(n), 1), row_block(len))) }.w()?;
        out(dev, o, l.shape().clone())
    }
}

#[cfg(test)]
mod tests {
    //! The CPU kernels on every instruction-set path this CPU runs: the cross-entropy against
    //! candle's composed ops, the other kernels against the portable bodies (the reference
    //! arithmetic, which `tests/fused_ops.rs` checks against composed ops through autograd).
    use candle_core::{Device, Tensor, D};

    use super::cpu;
    use crate::model::fast::cpu_path::{self, CpuPath};
    use crate::testing::max_abs_diff;

    /// A deterministic tensor in [-2, 2) (an LCG, independent of candle's RNG).
    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn cross_entropy_matches_composed_ops_on_every_path() {
        let dev = Device::Cpu;
        // A vocabulary that is not a multiple of 8 or 16; a spread of logits.
        let (n, v) = (5usize, 1003usize);
        let logits = (randn(&[n, v], 1) * 6.0).unwrap();
        let targets = Tensor::new(&[0u32, 7, 1002, 500, 3], &dev).unwrap();
        let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let want_tlp = lsm
            .gather(&targets.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let want_lse = (&logits - &lsm)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let dy = randn(&[n], 2);
        let onehot = candle_nn::encoding::one_hot(targets.clone(), v, 1f32, 0f32).unwrap();
        let sm = candle_nn::ops::softmax_last_dim(&logits).unwrap();
        let want_dx = (onehot - sm)
            .unwrap()
            .broadcast_mul(&dy.unsqueeze(1).unwrap())
            .unwrap();
        for path in cpu_path::available() {
            let st = cpu::xent_fwd(path, &logits, &targets).unwrap();
            let lse = st.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
            let tlp = st.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
            assert!(max_abs_diff(&lse, &want_lse) < 1e-5, "{path}: lse");
            assert!(
                max_abs_diff(&tlp, &want_tlp) < 1e-5,
                "{path}: target log-prob"
            );
            let dx = cpu::xent_bwd(path, &logits, &targets, &lse, &dy).unwrap();
            assert!(max_abs_diff(&dx, &want_dx) < 1e-6, "{path}: gradient");
        }
    }

    #[test]
    fn swiglu_rms_and_softmax_backward_agree_with_the_portable_bodies() {
        // Lengths that leave tails for 8 and 16 lanes, and more than one parallel chunk.
        let n = 2 * 4096 + 37;
        let (da, g, u) = (
            randn(&[n], 3),
            (randn(&[n], 4) * 8.0).unwrap(),
            randn(&[n], 5),
        );
        let (rows, h) = (7usize, 77usize);
        let (x, w, dy, res) = (
            randn(&[rows, h], 6),
            randn(&[h], 7),
            randn(&[rows, h], 8),
            randn(&[rows, h], 9),
        );
        let p = candle_nn::ops::softmax_last_dim(&(randn(&[rows, 45], 10) * 3.0).unwrap()).unwrap();
        let dp = randn(&[rows, 45], 11);
        let base_silu = cpu::silu_mul_bwd(CpuPath::Portable, &da, &g, &u).unwrap();
        let base_rms = cpu::rms_bwd(CpuPath::Portable, &x, &w, &dy, Some(&res), 1e-6).unwrap();
        let base_sm = cpu::softmax_bwd(CpuPath::Portable, &p, &dp, 0.5).unwrap();
        for path in cpu_path::available() {
            let got = cpu::silu_mul_bwd(path, &da, &g, &u).unwrap();
            assert_eq!(got.dims(), &[2, n]);
            let d = max_abs_diff(&got, &base_silu);
            assert!(d < 1e-5, "{path}: swiglu backward differs by {d}");
            let got = cpu::rms_bwd(path, &x, &w, &dy, Some(&res), 1e-6).unwrap();
            let d = max_abs_diff(&got, &base_rms);
            assert!(d < 1e-5, "{path}: rms backward differs by {d}");
            let got = cpu::softmax_bwd(path, &p, &dp, 0.5).unwrap();
            let d = max_abs_diff(&got, &base_sm);
            assert!(d < 1e-6, "{path}: softmax backward differs by {d}");
        }
    }
}
