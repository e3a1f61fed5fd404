//! A CPU f32 GEMM for inference linear layers, `y = x W^T (+ b)` with the weight `W` frozen.
//!
//! The weight is packed once (on the first inference call) into panels of [`NR`] output
//! columns, `k`-major inside a panel, so the micro-kernel reads it with aligned, contiguous
//! loads and never re-packs it (candle's `gemm` packs both operands on every call). The
//! micro-kernel is the one of the process's [`CpuPath`] (chosen once from the CPU's features):
//! AVX-512F (a 12 × 32 tile over two panels at once), AVX2 + FMA (6 × 16), NEON (6 × 16) or
//! portable loops; the packed layout is the same for all.
//! The work is split over candle's own CPU worker pool (the barrier pool that runs candle's
//! elementwise ops), so a forward pass keeps the same two threads busy instead of handing each
//! matmul to a second (rayon) pool.
//!
//! Used only by the speed layer's inference ops (`fast::Infer`: passes without gradient, and
//! the forward of whole-block gradient nodes) for inputs on the CPU, in f32, that carry no
//! gradient; everything else (gradients, GPU, f16/bf16/f64, the `portable` path) keeps
//! candle's matmul. Must not know about models, hooks or autograd.
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Storage, Tensor};

use super::cpu_path::{self, CpuPath};
use super::switches;
use crate::model::{ModelError, Result};

/// Output columns per packed panel (two AVX2 registers, one AVX-512 register, four NEON
/// registers).
pub const NR: usize = 16;
/// Largest `k` block (48 KiB of weight micro-panel). Longer blocks measured faster than
/// L1-sized ones (192-256) on the 2-core EPYC: each tile streams its rows of `x` and short
/// streams defeat the hardware prefetcher; k = 576 runs as one block, 1536 as two.
const KC_MAX: usize = 768;
/// Rows per `m` block.
const MC: usize = 512;
/// Below this many multiply-adds the work runs on the calling thread only: a hand-off costs
/// more than the small layers of a one-token generation step (overridable with
/// `STEERLAB_CPU_GEMM_PAR_MIN`, read once, for tuning).
const PAR_MIN_MACS: usize = 1 << 21;

/// The `k` block length: [`KC_MAX`] unless `STEERLAB_CPU_GEMM_KC` says otherwise.
fn kc_max() -> usize {
    switches::gemm_kc(KC_MAX)
}

/// The `m` block length: [`MC`] unless `STEERLAB_CPU_GEMM_MC` says otherwise.
fn mc() -> usize {
    switches::gemm_mc(MC)
}

fn par_min() -> usize {
    switches::gemm_par_min(PAR_MIN_MACS)
}

/// Calls of [`PackedLinear::forward`] that ran the kernel (for tests and profiling).
static FORWARD_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many tensor forwards ran the packed kernel so far in this process.
pub fn forward_calls() -> usize {
    FORWARD_CALLS.load(Ordering::Relaxed)
}

/// Whether the packed kernel runs by default: the current [`CpuPath`] has a SIMD micro-kernel
/// (AVX-512, AVX2 + FMA or NEON). [`PackedLinear::matmul`] itself runs on every path.
pub fn supported() -> bool {
    switches::cpu_simd()
}

/// Whether inference linear layers use the packed kernel: [`supported`], unless switched off
/// by [`set_enabled`] or the environment variable `STEERLAB_CPU_GEMM=0` (read once).
pub fn enabled() -> bool {
    switches::CPU_GEMM.get()
}

/// Switches the packed kernel on or off for the whole process (for A/B comparisons and
/// tests; switching on has no effect on a CPU without AVX2/FMA).
pub fn set_enabled(on: bool) {
    switches::CPU_GEMM.set(on);
}

/// A 64-byte aligned f32 buffer (so panel loads are aligned AVX / AVX-512 loads and never
/// straddle a cache line).
#[derive(Debug, Default)]
pub(crate) struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeros(len: usize) -> Self {
        let buf = vec![0f32; len + 16];
        let off = (buf.as_ptr() as usize / 4).wrapping_neg() % 16;
        Self { buf, off, len }
    }

    /// Reuses the buffer for `len` floats (contents unspecified), growing it if needed.
    pub(crate) fn reset(&mut self, len: usize) {
        if self.buf.len() < len + 16 {
            *self = Self::zeros(len);
        } else {
            self.off = (self.buf.as_ptr() as usize / 4).wrapping_neg() % 16;
            self.len = len;
        }
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// A weight `W` `[n, k]` (and optional bias `[n]`) packed for [`PackedLinear::matmul`].
///
/// Layout: panel `p` holds output columns `p*NR .. p*NR+NR` (zero-padded past `n`), stored
/// `k`-major: element `(col p*NR + j, row kk)` of `W^T` sits at `(p * k + kk) * NR + j`.
#[derive(Debug)]
pub struct PackedLinear {
    n: usize,
    k: usize,
    data: AlignedBuf,
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// Packs a row-major weight `w` of shape `[n, k]` and an optional bias of length `n`.
    /// Errors if the lengths do not match the shape.
    pub fn pack(w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Result<Self> {
        if w.len() != n * k {
            return Err(ModelError::InvalidInput(format!(
                "packed linear: weight has {} elements, expected {n} x {k}",
                w.len()
            )));
        }
        if let Some(b) = bias {
            if b.len() != n {
                return Err(ModelError::InvalidInput(format!(
                    "packed linear: bias has {} elements, expected {n}",
                    b.len()
                )));
            }
        }
        let panels = n.div_ceil(NR);
        let mut data = AlignedBuf::zeros(panels * k * NR);
        let d = data.as_mut_slice();
        for p in 0..panels {
            let panel = &mut d[p * k * NR..(p + 1) * k * NR];
            let rows: Vec<&[f32]> = (p * NR..n.min(p * NR + NR))
                .map(|c| &w[c * k..(c + 1) * k])
                .collect();
            // Write the panel in order (reading the panel's rows side by side).
            for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                for (d, row) in dst.iter_mut().zip(&rows) {
                    *d = row[kk];
                }
            }
        }
        Ok(Self {
            n,
            k,
            data,
            bias: bias.map(|b| b.to_vec()),
        })
    }

    /// Packs the transpose of a row-major `wt` of shape `[k, n]`, so that [`PackedLinear::matmul`]
    /// computes `x wt` (the gradient `dy W` of a linear layer with weight `W = wt`). Panel rows
    /// are contiguous slices of `wt`'s rows, so no transposed copy is made. Errors if the length
    /// does not match the shape.
    pub fn pack_transposed(wt: &[f32], k: usize, n: usize) -> Result<Self> {
        if wt.len() != n * k {
            return Err(ModelError::InvalidInput(format!(
                "packed linear: transposed weight has {} elements, expected {k} x {n}",
                wt.len()
            )));
        }
        let panels = n.div_ceil(NR);
        let mut data = AlignedBuf::zeros(panels * k * NR);
        let d = data.as_mut_slice();
        for p in 0..panels {
            let (c0, c1) = (p * NR, n.min(p * NR + NR));
            let panel = &mut d[p * k * NR..(p + 1) * k * NR];
            for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..c1 - c0].copy_from_slice(&wt[kk * n + c0..kk * n + c1]);
            }
        }
        Ok(Self {
            n,
            k,
            data,
            bias: None,
        })
    }

    /// Packs a candle weight `[n, k]` and bias `[n]` (any device and float dtype; copied to
    /// the CPU as f32).
    pub fn from_tensors(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (n, k) = weight.dims2()?;
        let w = weight
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = match bias {
            Some(b) => Some(
                b.to_device(&Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            ),
            None => None,
        };
        Self::pack(&w, n, k, b.as_deref())
    }

    /// Output features `n`.
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// Input features `k`.
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// `out[m, n] = x[m, k] W^T (+ b)` for row-major `x` and `out`, on the current
    /// [`CpuPath`] ([`cpu_path::current`]). Errors if the slice lengths do not match `m`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        self.matmul_on(cpu_path::current(), x, m, out)
    }

    /// [`PackedLinear::matmul`] on the given path (tests and A/B measurements). Errors if the
    /// slice lengths do not match `m` or this CPU cannot run `path`.
    pub fn matmul_on(&self, path: CpuPath, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if x.len() != m * k || out.len() != m * n {
            return Err(ModelError::InvalidInput(format!(
                "packed linear: x has {} elements and out {}, expected {m} x {k} and {m} x {n}",
                x.len(),
                out.len()
            )));
        }
        if !path.available() {
            return Err(ModelError::InvalidInput(format!(
                "packed linear: this CPU cannot run the {path} path"
            )));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            for row in out.chunks_mut(n) {
                match &self.bias {
                    Some(b) => row.copy_from_slice(b),
                    None => row.fill(0.0),
                }
            }
            return Ok(());
        }
        // SAFETY: lengths checked above; the path runs on this CPU.
        unsafe { self.matmul_raw(path, x, m, out.as_mut_ptr()) };
        Ok(())
    }

    /// The body of [`PackedLinear::matmul_on`]: writes every element of `out[m, n]`, so `out`
    /// may be uninitialised.
    ///
    /// # Safety
    /// `x` has `m * k` floats, `out` points to `m * n` writable floats, `k > 0`, and this CPU
    /// runs `path`.
    unsafe fn matmul_raw(&self, path: CpuPath, x: &[f32], m: usize, out: *mut f32) {
        let (n, k) = (self.n, self.k);
        let panels = n.div_ceil(NR);
        // Work is split in groups of the panels the path's tile covers at once.
        let group = panel_group(path);
        let units = panels.div_ceil(group);
        let xp = x.as_ptr() as usize;
        let op = out as usize;
        let run = |r: std::ops::Range<usize>| {
            let (p0, p1) = (r.start * group, (r.end * group).min(panels));
            // SAFETY: `x` and `out` outlive this call (the pool joins before returning); each
            // panel range is handed to exactly one thread, which writes only the columns of
            // those panels; all offsets stay inside the checked lengths (see `run_panels`).
            unsafe { self.run_panels(path, xp as *const f32, m, op as *mut f32, p0, p1) };
        };
        if m * n * k < par_min() {
            run(0..units);
        } else {
            // A shared cursor over panel ranges (about 8 per thread): a thread that is
            // descheduled or slower leaves its share to the other instead of stalling the call.
            candle_core::utils::barrier_pool().execute_chunked(units, run);
        }
    }

    /// Computes the output columns of panels `p0..p1` for all `m` rows.
    ///
    /// # Safety
    /// `x` points to `m * k` readable floats, `out` to `m * n` writable floats that no other
    /// thread writes in the columns of these panels; this CPU runs `path`.
    unsafe fn run_panels(
        &self,
        path: CpuPath,
        x: *const f32,
        m: usize,
        out: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let bias = self.bias.as_ref().map(|b| b.as_ptr());
        let w = self.data.as_slice().as_ptr();
        // SAFETY: forwarded under the same contract (row strides k and n).
        unsafe {
            gemm_panels(
                path,
                x,
                self.k,
                m,
                self.k,
                w,
                self.k,
                self.n,
                bias,
                out,
                self.n,
                p0..p1,
            )
        };
    }

    /// `x W^T (+ b)` for a contiguous-or-not f32 CPU tensor `[..., k]`; `None` when `x` is
    /// not an f32 CPU tensor or the last dimension is not `k` (callers then use candle).
    pub fn forward(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if x.dtype() != DType::F32 || !x.device().is_cpu() || x.rank() == 0 {
            return Ok(None);
        }
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        if k != self.k {
            return Ok(None);
        }
        let m: usize = dims[..dims.len() - 1].iter().product();
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        let all = cpu.as_slice::<f32>()?;
        let xs = &all[layout.start_offset()..layout.start_offset() + m * k];
        let out = if self.k > 0 && m > 0 && self.n > 0 {
            // No zero fill: the kernel writes every output element.
            let mut out = Vec::with_capacity(m * self.n);
            // SAFETY: `xs` has m * k floats, `out` has room for m * n, k > 0, the current path
            // runs on this CPU; the length is set only after every element was written.
            unsafe {
                self.matmul_raw(cpu_path::current(), xs, m, out.as_mut_ptr());
                out.set_len(m * self.n);
            }
            out
        } else {
            let mut out = vec![0f32; m * self.n];
            self.matmul(xs, m, &mut out)?;
            out
        };
        drop(storage);
        FORWARD_CALLS.fetch_add(1, Ordering::Relaxed);
        let mut shape = dims;
        *shape.last_mut().expect("rank >= 1") = self.n;
        Ok(Some(Tensor::from_vec(out, shape, &Device::Cpu)?))
    }
}

/// The measured multiply-add peak of one thread on `path`, in GFLOP/s (2 flops per fused
/// multiply-add lane; the portable loop counts a multiply and an add): 12 independent
/// accumulator registers, the fastest of the short runs that fit in about `millis` ms (so a
/// run that shared its core with another process does not count). The yardstick for the
/// GEMM's "fraction of peak" (`steerlab bench matmul`); it measures what the core sustains at
/// the clock it runs, turbo and AVX-512 frequency licence included. Errors if this CPU cannot
/// run `path`.
pub fn fma_peak_gflops(path: CpuPath, millis: u64) -> Result<f64> {
    if !path.available() {
        return Err(ModelError::InvalidInput(format!(
            "fma peak: this CPU cannot run the {path} path"
        )));
    }
    let budget = std::time::Duration::from_millis(millis.max(1));
    let (mut best, start) = (0f64, std::time::Instant::now());
    while start.elapsed() < budget {
        let t0 = std::time::Instant::now();
        // SAFETY: the path runs on this CPU (checked above).
        let (flops, sink) = unsafe { peak_loop(path, 1 << 17) };
        let dt = t0.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max(flops / dt.max(1e-9) / 1e9);
    }
    Ok(best)
}

/// `iters` rounds of 12 independent multiply-adds per lane on `path`; returns the flops done
/// and a value that depends on every accumulator (so none is optimised away).
///
/// # Safety
/// This CPU runs `path`.
unsafe fn peak_loop(path: CpuPath, iters: usize) -> (f64, f32) {
    match path {
        // SAFETY: the caller checked the path.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::peak_avx512(iters) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::peak_avx2(iters) },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        CpuPath::Neon => unsafe { neon::peak(iters) },
        _ => {
            let mut acc = [0f32; 12];
            for (i, a) in acc.iter_mut().enumerate() {
                *a = i as f32 * 1e-3;
            }
            let (b, c) = (
                std::hint::black_box(0.999_999f32),
                std::hint::black_box(1e-7f32),
            );
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = *a * b + c;
                }
            }
            ((iters * 12 * 2) as f64, acc.iter().sum())
        }
    }
}

/// `(rows, panels)` of one micro-kernel tile on `path`: AVX-512 12 rows × 2 panels (two
/// registers per row, 24 accumulators), AVX2 and NEON 6 rows × 1 panel (12 and 24 registers),
/// portable 4 rows × 1 panel.
fn tile_shape(path: CpuPath) -> (usize, usize) {
    match path {
        CpuPath::Avx512 => (12, 2),
        CpuPath::Avx2 | CpuPath::Neon => (6, 1),
        CpuPath::Portable => (4, 1),
    }
}

/// Panels one tile of `path` covers (callers that split work by panels split it in groups of
/// this many, so that the wide AVX-512 tile is used).
pub(crate) fn panel_group(path: CpuPath) -> usize {
    tile_shape(path).1
}

/// Rows of one tile of `path` (callers that walk rows in strips use strips of this height).
pub(crate) fn tile_rows(path: CpuPath) -> usize {
    tile_shape(path).0
}

/// One tile: `(mr, nr, kc, a, lda, w, wstride, c, ldc, init)` — `mr` rows of `a` (stride
/// `lda`, `kc` floats read per row) times the packed weight from `w` (`kc` steps of `NR`
/// floats per panel; the next panel `wstride` floats further) into `mr x nr` of `c`.
type TileFn =
    unsafe fn(usize, usize, usize, *const f32, usize, *const f32, usize, *mut f32, usize, Init);

/// `c[m, n] = a[m, k] W^T (+ bias)` for the output columns of panels `panels` only, on the
/// calling thread, with the micro-kernel of `path`: `a` and `c` row-major with row strides
/// `lda` and `ldc`, `w` packed as in [`PackedLinear`] for a reduction length `wk >= k` (panel
/// `p` at `w + p * wk * NR`, 64-byte aligned; only its first `k` steps are used). The building
/// block of [`PackedLinear::matmul`], of the CPU attention and SwiGLU kernels
/// ([`super::cpu_infer`]) and of the quantized kernels ([`super::quant`]).
///
/// # Safety
/// `a` has `m` rows of `k` readable floats at stride `lda`; `w` holds `n.div_ceil(NR) * wk * NR`
/// floats, `k <= wk`, and is 64-byte aligned; `c` has `m` rows whose columns of these panels
/// (`< n`) are writable at stride `ldc` and written by no other thread; a bias has `n` floats;
/// this CPU runs `path` ([`CpuPath::available`]).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_panels(
    path: CpuPath,
    a: *const f32,
    lda: usize,
    m: usize,
    k: usize,
    w: *const f32,
    wk: usize,
    n: usize,
    bias: Option<*const f32>,
    c: *mut f32,
    ldc: usize,
    panels: std::ops::Range<usize>,
) {
    let tile: TileFn = match path {
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => x86::tile_avx512,
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => x86::tile_avx2,
        #[cfg(target_arch = "aarch64")]
        CpuPath::Neon => neon::tile,
        _ => tile_portable,
    };
    let (mr_max, group) = tile_shape(path);
    let blocks = k.div_ceil(kc_max()).max(1);
    let kc_base = k.div_ceil(blocks);
    let mut k0 = 0;
    while k0 < k {
        let kc = kc_base.min(k - k0);
        let mut i0 = 0;
        while i0 < m {
            let mc = mc().min(m - i0);
            let mut p = panels.start;
            while p < panels.end {
                // A group's panels all exist (p + g <= panels.end <= n.div_ceil(NR)), so
                // nr > NR exactly when the group has two panels.
                let g = group.min(panels.end - p);
                let nr = (g * NR).min(n - p * NR);
                // SAFETY: p < panels and k0 + kc <= k, so the micro-panels lie inside the
                // packed buffer; the bias pointer stays inside its n floats.
                let wp = unsafe { w.add((p * wk + k0) * NR) };
                let bp = bias.map(|b| unsafe { b.add(p * NR) });
                let mut i = i0;
                while i < i0 + mc {
                    let mr = mr_max.min(i0 + mc - i);
                    // SAFETY: rows i..i+mr < m and columns p*NR..p*NR+nr <= n are inside
                    // `a` / `c`; the caller guarantees the path runs on this CPU.
                    unsafe {
                        tile(
                            mr,
                            nr,
                            kc,
                            a.add(i * lda + k0),
                            lda,
                            wp,
                            wk * NR,
                            c.add(i * ldc + p * NR),
                            ldc,
                            if k0 == 0 { Init::Bias(bp) } else { Init::Load },
                        )
                    };
                    i += mr;
                }
                p += g;
            }
            i0 += mc;
        }
        k0 += kc;
    }
}

/// How a tile's accumulators start: from the bias (or zero) on the first `k` block, else
/// from the partial sums already in `out`.
#[derive(Clone, Copy)]
enum Init {
    Bias(Option<*const f32>),
    Load,
}

/// The portable tile (one panel, any `mr`): plain loops, a multiply and an add per step.
///
/// # Safety
/// `a` has `mr` rows of `kc` readable floats at stride `lda`; `w` has `kc * NR` floats; `c`
/// has `mr` rows of `nr <= NR` writable floats at stride `ldc`; a bias pointer has `nr` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_portable(
    mr: usize,
    nr: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    w: *const f32,
    _wstride: usize,
    c: *mut f32,
    ldc: usize,
    init: Init,
) {
    // SAFETY (whole body): every offset stays inside the regions the contract names.
    unsafe {
        let w = std::slice::from_raw_parts(w, kc * NR);
        for i in 0..mr {
            let mut acc = [0f32; NR];
            match init {
                Init::Bias(Some(b)) => {
                    for (j, v) in acc.iter_mut().enumerate().take(nr) {
                        *v = *b.add(j);
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for (j, v) in acc.iter_mut().enumerate().take(nr) {
                        *v = *c.add(i * ldc + j);
                    }
                }
            }
            let row = std::slice::from_raw_parts(a.add(i * lda), kc);
            for (&av, wr) in row.iter().zip(w.chunks_exact(NR)) {
                for (s, &wv) in acc.iter_mut().zip(wr) {
                    *s += av * wv;
                }
            }
            for (j, v) in acc.iter().enumerate().take(nr) {
                *c.add(i * ldc + j) = *v;
            }
        }
    }
}

/// Runs a full-width (`NR`) kernel on a partial tile (`nr < NR`) through a local `6 x NR`
/// buffer (`mr <= 6`), so the kernel always works on full-width rows.
///
/// # Safety
/// `c` has `mr` rows of `nr` writable floats at stride `ldc`; a bias pointer has `nr` floats;
/// `full` is safe to call on a 6 x NR tile with stride NR and such an init.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe fn via_buffer(
    mr: usize,
    nr: usize,
    c: *mut f32,
    ldc: usize,
    init: Init,
    full: impl FnOnce(*mut f32, usize, Init),
) {
    let mut tmp = [0f32; 6 * NR];
    let mut tb = [0f32; NR];
    let init = match init {
        Init::Load => {
            for i in 0..mr {
                for j in 0..nr {
                    // SAFETY: i < mr, j < nr are inside the caller's tile.
                    tmp[i * NR + j] = unsafe { *c.add(i * ldc + j) };
                }
            }
            Init::Load
        }
        Init::Bias(Some(b)) => {
            for (j, v) in tb.iter_mut().enumerate().take(nr) {
                // SAFETY: the bias pointer has nr floats.
                *v = unsafe { *b.add(j) };
            }
            Init::Bias(Some(tb.as_ptr()))
        }
        Init::Bias(None) => Init::Bias(None),
    };
    full(tmp.as_mut_ptr(), NR, init);
    for i in 0..mr {
        for j in 0..nr {
            // SAFETY: as above.
            unsafe { *c.add(i * ldc + j) = tmp[i * NR + j] };
        }
    }
}

/// Expands to a `match` on the tile height `$mr` calling `$k::<R>(args)` for each listed R.
macro_rules! by_rows {
    ($mr:expr, $k:ident $args:tt, [$($r:literal)*]) => {
        match $mr {
            $($r => $k::<$r> $args,)*
            _ => unreachable!("tile rows out of range"),
        }
    };
}

/// The x86-64 micro-kernels: AVX2 + FMA (6 × 16) and AVX-512F (12 × 32, or 12 × 16 for a lone
/// panel, with masked loads and stores for partial columns).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{via_buffer, Init, NR};

    /// The AVX2 tile ([`super::TileFn`]; one panel, `mr <= 6`).
    ///
    /// # Safety
    /// As [`super::tile_portable`]; AVX2 and FMA are available; `w` is 32-byte aligned.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_avx2(
        mr: usize,
        nr: usize,
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        _wstride: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        // SAFETY: each instance reads `R` rows; forwarded under the same contract.
        let full = |c: *mut f32, ldc: usize, init: Init| unsafe {
            by_rows!(mr, k_avx2(kc, a, lda, w, c, ldc, init), [1 2 3 4 5 6])
        };
        if nr == NR {
            full(c, ldc, init);
        } else {
            // SAFETY: forwarded under the same contract.
            unsafe { via_buffer(mr, nr, c, ldc, init, full) };
        }
    }

    /// An `R x 16` tile in `2R` AVX registers; per `k` step two aligned loads of the packed
    /// weight, `R` broadcasts of `a` and `2R` fused multiply-adds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn k_avx2<const R: usize>(
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        // SAFETY (whole body): every pointer offset stays inside the regions the contract
        // names: rows < R of `a` (kc floats each) and `c` (NR floats each), kc * NR of `w`.
        unsafe {
            match init {
                Init::Bias(Some(b)) => {
                    let (b0, b1) = (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8)));
                    for i in 0..R {
                        acc0[i] = b0;
                        acc1[i] = b1;
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for i in 0..R {
                        acc0[i] = _mm256_loadu_ps(c.add(i * ldc));
                        acc1[i] = _mm256_loadu_ps(c.add(i * ldc + 8));
                    }
                }
            }
            let mut rows = [a; R];
            for (i, r) in rows.iter_mut().enumerate() {
                *r = a.add(i * lda);
            }
            let mut wp = w;
            for kk in 0..kc {
                let w0 = _mm256_load_ps(wp);
                let w1 = _mm256_load_ps(wp.add(8));
                for i in 0..R {
                    let av = _mm256_broadcast_ss(&*rows[i].add(kk));
                    acc0[i] = _mm256_fmadd_ps(av, w0, acc0[i]);
                    acc1[i] = _mm256_fmadd_ps(av, w1, acc1[i]);
                }
                wp = wp.add(NR);
            }
            for i in 0..R {
                _mm256_storeu_ps(c.add(i * ldc), acc0[i]);
                _mm256_storeu_ps(c.add(i * ldc + 8), acc1[i]);
            }
        }
    }

    /// See [`super::peak_loop`]: 12 independent 16-lane fused multiply-adds per round.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn peak_avx512(iters: usize) -> (f64, f32) {
        let mut acc = [_mm512_set1_ps(1e-3); 12];
        let (b, c) = (
            _mm512_set1_ps(std::hint::black_box(0.999_999)),
            _mm512_set1_ps(std::hint::black_box(1e-7)),
        );
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        ((iters * 12 * 16 * 2) as f64, _mm512_reduce_add_ps(s))
    }

    /// See [`super::peak_loop`]: 12 independent 8-lane fused multiply-adds per round.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn peak_avx2(iters: usize) -> (f64, f32) {
        let mut acc = [_mm256_set1_ps(1e-3); 12];
        let (b, c) = (
            _mm256_set1_ps(std::hint::black_box(0.999_999)),
            _mm256_set1_ps(std::hint::black_box(1e-7)),
        );
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        let mut lanes = [0f32; 8];
        // SAFETY: lanes has 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        ((iters * 12 * 8 * 2) as f64, lanes.iter().sum())
    }

    /// Lanes `0..cols` of a 16-lane mask.
    fn mask(cols: usize) -> __mmask16 {
        if cols >= 16 {
            0xFFFF
        } else {
            ((1u32 << cols) - 1) as __mmask16
        }
    }

    /// The AVX-512 tile ([`super::TileFn`]): two panels (`NR < nr <= 2 NR`, the second at
    /// `w + wstride`) or one (`nr <= NR`); `mr <= 12`.
    ///
    /// # Safety
    /// As [`super::tile_portable`] with `nr <= 2 NR` (two panels of `kc * NR` floats when
    /// `nr > NR`); AVX-512F is available; `w` and `w + wstride` are 64-byte aligned.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_avx512(
        mr: usize,
        nr: usize,
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        wstride: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        // SAFETY: each instance reads `R` rows; masks keep every access inside `nr` columns.
        unsafe {
            if nr > NR {
                let m1 = mask(nr - NR);
                by_rows!(
                    mr,
                    k2_avx512(kc, a, lda, w, wstride, c, ldc, init, m1),
                    [1 2 3 4 5 6 7 8 9 10 11 12]
                )
            } else {
                let m0 = mask(nr);
                by_rows!(
                    mr,
                    k1_avx512(kc, a, lda, w, c, ldc, init, m0),
                    [1 2 3 4 5 6 7 8 9 10 11 12]
                )
            }
        }
    }

    /// An `R x 32` tile (two panels) in `2R` AVX-512 registers; columns past `16 + lanes of m1`
    /// are neither read nor written.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn k2_avx512<const R: usize>(
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        wstride: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
        m1: __mmask16,
    ) {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        // SAFETY (whole body): as `k_avx2`, with the second panel at `w + wstride` and the
        // second half of each row masked to its valid columns.
        unsafe {
            match init {
                Init::Bias(Some(b)) => {
                    let b0 = _mm512_loadu_ps(b);
                    let b1 = _mm512_maskz_loadu_ps(m1, b.add(NR));
                    for i in 0..R {
                        acc0[i] = b0;
                        acc1[i] = b1;
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for i in 0..R {
                        acc0[i] = _mm512_loadu_ps(c.add(i * ldc));
                        acc1[i] = _mm512_maskz_loadu_ps(m1, c.add(i * ldc + NR));
                    }
                }
            }
            let mut rows = [a; R];
            for (i, r) in rows.iter_mut().enumerate() {
                *r = a.add(i * lda);
            }
            let (mut w0p, mut w1p) = (w, w.add(wstride));
            for kk in 0..kc {
                let w0 = _mm512_load_ps(w0p);
                let w1 = _mm512_load_ps(w1p);
                for i in 0..R {
                    let av = _mm512_set1_ps(*rows[i].add(kk));
                    acc0[i] = _mm512_fmadd_ps(av, w0, acc0[i]);
                    acc1[i] = _mm512_fmadd_ps(av, w1, acc1[i]);
                }
                w0p = w0p.add(NR);
                w1p = w1p.add(NR);
            }
            for i in 0..R {
                _mm512_storeu_ps(c.add(i * ldc), acc0[i]);
                _mm512_mask_storeu_ps(c.add(i * ldc + NR), m1, acc1[i]);
            }
        }
    }

    /// An `R x 16` tile (one panel) in `R` AVX-512 registers; lanes outside `m0` are neither
    /// read nor written.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn k1_avx512<const R: usize>(
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        c: *mut f32,
        ldc: usize,
        init: Init,
        m0: __mmask16,
    ) {
        let mut acc = [_mm512_setzero_ps(); R];
        // SAFETY (whole body): as `k2_avx512`, one panel.
        unsafe {
            match init {
                Init::Bias(Some(b)) => {
                    let b0 = _mm512_maskz_loadu_ps(m0, b);
                    for v in acc.iter_mut() {
                        *v = b0;
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for (i, v) in acc.iter_mut().enumerate() {
                        *v = _mm512_maskz_loadu_ps(m0, c.add(i * ldc));
                    }
                }
            }
            let mut rows = [a; R];
            for (i, r) in rows.iter_mut().enumerate() {
                *r = a.add(i * lda);
            }
            let mut wp = w;
            for kk in 0..kc {
                let w0 = _mm512_load_ps(wp);
                for i in 0..R {
                    let av = _mm512_set1_ps(*rows[i].add(kk));
                    acc[i] = _mm512_fmadd_ps(av, w0, acc[i]);
                }
                wp = wp.add(NR);
            }
            for (i, v) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(c.add(i * ldc), m0, *v);
            }
        }
    }
}

/// The aarch64 micro-kernel: NEON, 6 × 16 in 24 four-lane registers.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{via_buffer, Init, NR};

    /// The NEON tile ([`super::TileFn`]; one panel, `mr <= 6`).
    ///
    /// # Safety
    /// As [`super::tile_portable`]; NEON is available.
    #[target_feature(enable = "neon")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile(
        mr: usize,
        nr: usize,
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        _wstride: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        // SAFETY: each instance reads `R` rows; forwarded under the same contract.
        let full = |c: *mut f32, ldc: usize, init: Init| unsafe {
            by_rows!(mr, kernel(kc, a, lda, w, c, ldc, init), [1 2 3 4 5 6])
        };
        if nr == NR {
            full(c, ldc, init);
        } else {
            // SAFETY: forwarded under the same contract.
            unsafe { via_buffer(mr, nr, c, ldc, init, full) };
        }
    }

    /// See [`super::peak_loop`]: 12 independent 4-lane fused multiply-adds per round.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn peak(iters: usize) -> (f64, f32) {
        let mut acc = [vdupq_n_f32(1e-3); 12];
        let (b, c) = (
            vdupq_n_f32(std::hint::black_box(0.999_999)),
            vdupq_n_f32(std::hint::black_box(1e-7)),
        );
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = vfmaq_f32(c, *a, b);
            }
        }
        let mut s = vdupq_n_f32(0.0);
        for a in acc {
            s = vaddq_f32(s, a);
        }
        ((iters * 12 * 4 * 2) as f64, vaddvq_f32(s))
    }

    /// An `R x 16` tile in `4R` NEON registers; per `k` step four loads of the packed weight
    /// and `4R` fused multiply-adds by a scalar of `a`.
    #[target_feature(enable = "neon")]
    unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        lda: usize,
        w: *const f32,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        // SAFETY (whole body): every pointer offset stays inside the regions the contract
        // names: rows < R of `a` (kc floats each) and `c` (NR floats each), kc * NR of `w`.
        unsafe {
            match init {
                Init::Bias(Some(b)) => {
                    for q in 0..4 {
                        let bv = vld1q_f32(b.add(4 * q));
                        for row in acc.iter_mut() {
                            row[q] = bv;
                        }
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for (i, row) in acc.iter_mut().enumerate() {
                        for (q, v) in row.iter_mut().enumerate() {
                            *v = vld1q_f32(c.add(i * ldc + 4 * q));
                        }
                    }
                }
            }
            let mut wp = w;
            for kk in 0..kc {
                let wv = [
                    vld1q_f32(wp),
                    vld1q_f32(wp.add(4)),
                    vld1q_f32(wp.add(8)),
                    vld1q_f32(wp.add(12)),
                ];
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = *a.add(i * lda + kk);
                    for (v, &wq) in row.iter_mut().zip(&wv) {
                        *v = vfmaq_n_f32(*v, wq, av);
                    }
                }
                wp = wp.add(NR);
            }
            for (i, row) in acc.iter().enumerate() {
                for (q, v) in row.iter().enumerate() {
                    vst1q_f32(c.add(i * ldc + 4 * q), *v);
                }
            }
        }
    }
}
