//! A CPU f32 GEMM for inference linear layers, `y = x W^T (+ b)` with the weight `W` frozen.
//!
//! The weight is packed once (on the first inference call) into panels of [`NR`] output
//! columns, `k`-major inside a panel, so the AVX2+FMA micro-kernel reads it with aligned,
//! contiguous loads and never re-packs it (candle's `gemm` packs both operands on every call).
//! The work is split over candle's own CPU worker pool (the barrier pool that runs candle's
//! elementwise ops), so a forward pass keeps the same two threads busy instead of handing each
//! matmul to a second (rayon) pool.
//!
//! Used only by the speed layer's inference ops (`fast::Infer`: passes without gradient, and
//! the forward of whole-block gradient nodes) for inputs on the CPU, in f32, that carry no
//! gradient; everything else (gradients, GPU, f16/bf16/f64, CPUs without AVX2/FMA) keeps
//! candle's matmul. Must not know about models, hooks or autograd.
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Storage, Tensor};

use super::switches;
use crate::model::{ModelError, Result};

/// Output columns per packed panel (two AVX2 registers).
pub const NR: usize = 16;
/// Rows per micro-kernel tile.
const MR: usize = 6;
/// Largest `k` block (48 KiB of weight micro-panel). Longer blocks measured faster than
/// L1-sized ones (192-256) on the 2-core EPYC: each tile streams `MR` rows of `x` and short
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

/// Whether this CPU can run the packed kernel (x86-64 with AVX2 and FMA).
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

/// A 32-byte aligned f32 buffer (so panel loads are aligned AVX loads).
#[derive(Debug, Default)]
pub(crate) struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeros(len: usize) -> Self {
        let buf = vec![0f32; len + 8];
        let off = (buf.as_ptr() as usize / 4).wrapping_neg() % 8;
        Self { buf, off, len }
    }

    /// Reuses the buffer for `len` floats (contents unspecified), growing it if needed.
    pub(crate) fn reset(&mut self, len: usize) {
        if self.buf.len() < len + 8 {
            *self = Self::zeros(len);
        } else {
            self.off = (self.buf.as_ptr() as usize / 4).wrapping_neg() % 8;
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

    /// `out[m, n] = x[m, k] W^T (+ b)` for row-major `x` and `out`. Falls back to a scalar
    /// loop on CPUs without AVX2/FMA (callers normally use candle's matmul there instead).
    /// Errors if the slice lengths do not match `m`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if x.len() != m * k || out.len() != m * n {
            return Err(ModelError::InvalidInput(format!(
                "packed linear: x has {} elements and out {}, expected {m} x {k} and {m} x {n}",
                x.len(),
                out.len()
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
        if !supported() {
            self.matmul_scalar(x, m, out);
            return Ok(());
        }
        // SAFETY: lengths checked above; AVX2/FMA checked by `supported`.
        unsafe { self.matmul_simd(x, m, out.as_mut_ptr()) };
        Ok(())
    }

    /// The AVX2 body of [`PackedLinear::matmul`]: writes every element of `out[m, n]`, so
    /// `out` may be uninitialised.
    ///
    /// # Safety
    /// `x` has `m * k` floats, `out` points to `m * n` writable floats, `k > 0`, and
    /// [`supported`] is true.
    unsafe fn matmul_simd(&self, x: &[f32], m: usize, out: *mut f32) {
        let (n, k) = (self.n, self.k);
        let panels = n.div_ceil(NR);
        let xp = x.as_ptr() as usize;
        let op = out as usize;
        let run = |r: std::ops::Range<usize>| {
            // SAFETY: `x` and `out` outlive this call (the pool joins before returning); each
            // panel range is handed to exactly one thread, which writes only the columns of
            // those panels; all offsets stay inside the checked lengths (see `run_panels`).
            unsafe { self.run_panels(xp as *const f32, m, op as *mut f32, r.start, r.end) };
        };
        if m * n * k < par_min() {
            run(0..panels);
        } else {
            // A shared cursor over panel ranges (about 8 per thread): a thread that is
            // descheduled or slower leaves its share to the other instead of stalling the call.
            candle_core::utils::barrier_pool().execute_chunked(panels, run);
        }
    }

    /// Reference for CPUs without AVX2/FMA (same packed layout, same summation order per k).
    fn matmul_scalar(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        let d = self.data.as_slice();
        for i in 0..m {
            for j in 0..n {
                let (p, jj) = (j / NR, j % NR);
                let mut acc = self.bias.as_ref().map_or(0.0, |b| b[j]);
                for kk in 0..k {
                    acc += x[i * k + kk] * d[(p * k + kk) * NR + jj];
                }
                out[i * n + j] = acc;
            }
        }
    }

    /// Computes the output columns of panels `p0..p1` for all `m` rows.
    ///
    /// # Safety
    /// `x` points to `m * k` readable floats, `out` to `m * n` writable floats that no other
    /// thread writes in the columns of these panels; AVX2 and FMA are available.
    unsafe fn run_panels(&self, x: *const f32, m: usize, out: *mut f32, p0: usize, p1: usize) {
        let bias = self.bias.as_ref().map(|b| b.as_ptr());
        let w = self.data.as_slice().as_ptr();
        // SAFETY: forwarded under the same contract (row strides k and n).
        unsafe {
            gemm_panels(
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
        let out = if supported() && self.k > 0 && m > 0 && self.n > 0 {
            // No zero fill: the kernel writes every output element.
            let mut out = Vec::with_capacity(m * self.n);
            // SAFETY: `xs` has m * k floats, `out` has room for m * n, k > 0, AVX2/FMA present;
            // the length is set only after every element was written.
            unsafe {
                self.matmul_simd(xs, m, out.as_mut_ptr());
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

/// `c[m, n] = a[m, k] W^T (+ bias)` for the output columns of panels `panels` only, on the
/// calling thread: `a` and `c` row-major with row strides `lda` and `ldc`, `w` packed as in
/// [`PackedLinear`] for a reduction length `wk >= k` (panel `p` at `w + p * wk * NR`, 32-byte
/// aligned; only its first `k` steps are used). The building block of
/// [`PackedLinear::matmul`] and of the CPU attention kernel ([`super::cpu_infer`]).
///
/// # Safety
/// `a` has `m` rows of `k` readable floats at stride `lda`; `w` holds `n.div_ceil(NR) * wk * NR`
/// floats, `k <= wk`, and is 32-byte aligned; `c` has `m` rows whose columns of these panels (`< n`) are
/// writable at stride `ldc` and written by no other thread; a bias has `n` floats; AVX2 and
/// FMA are available (see [`supported`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_panels(
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
    let blocks = k.div_ceil(kc_max()).max(1);
    let kc_base = k.div_ceil(blocks);
    let mut k0 = 0;
    while k0 < k {
        let kc = kc_base.min(k - k0);
        let mut i0 = 0;
        while i0 < m {
            let mc = mc().min(m - i0);
            for p in panels.clone() {
                let nr = NR.min(n - p * NR);
                // SAFETY: p < panels and k0 + kc <= k, so the micro-panel lies inside the
                // packed buffer; the bias pointer stays inside its n floats.
                let wp = unsafe { w.add((p * wk + k0) * NR) };
                let bp = bias.map(|b| unsafe { b.add(p * NR) });
                let mut i = i0;
                while i < i0 + mc {
                    let mr = MR.min(i0 + mc - i);
                    // SAFETY: rows i..i+mr < m and columns p*NR..p*NR+nr <= n are inside
                    // `a` / `c`; the caller guarantees AVX2 and FMA.
                    unsafe {
                        tile(
                            mr,
                            nr,
                            kc,
                            a.add(i * lda + k0),
                            lda,
                            wp,
                            c.add(i * ldc + p * NR),
                            ldc,
                            if k0 == 0 { Init::Bias(bp) } else { Init::Load },
                        )
                    };
                    i += mr;
                }
            }
            i0 += mc;
        }
        k0 += kc;
    }
}

/// Stand-in on other architectures: never called ([`supported`] is false there).
///
/// # Safety
/// Never runs.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_panels(
    _: *const f32,
    _: usize,
    _: usize,
    _: usize,
    _: *const f32,
    _: usize,
    _: usize,
    _: Option<*const f32>,
    _: *mut f32,
    _: usize,
    _: std::ops::Range<usize>,
) {
    unreachable!("the packed kernel runs only where supported() is true")
}

/// How a tile's accumulators start: from the bias (or zero) on the first `k` block, else
/// from the partial sums already in `out`.
#[derive(Clone, Copy)]
enum Init {
    Bias(Option<*const f32>),
    Load,
}

/// One `mr x nr` output tile over `kc` steps; partial tiles (`nr < NR`) go through a local
/// `MR x NR` buffer so the kernel always works on full-width rows.
///
/// # Safety
/// `a` has `mr` rows of `kc` readable floats at stride `lda`; `w` has `kc * NR` floats;
/// `c` has `mr` rows of `nr` writable floats at stride `ldc`; a bias pointer has `nr` floats;
/// AVX2 and FMA are available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    mr: usize,
    nr: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    w: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init,
) {
    if nr == NR {
        // SAFETY: full tile, forwarded under the same contract.
        unsafe { kernel_dispatch(mr, kc, a, lda, w, c, ldc, init) };
        return;
    }
    let mut tmp = [0f32; MR * NR];
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
    // SAFETY: tmp is an MR x NR tile with stride NR; tb has NR floats.
    unsafe { kernel_dispatch(mr, kc, a, lda, w, tmp.as_mut_ptr(), NR, init) };
    for i in 0..mr {
        for j in 0..nr {
            // SAFETY: as above.
            unsafe { *c.add(i * ldc + j) = tmp[i * NR + j] };
        }
    }
}

/// Picks the kernel for `mr` rows (1..=MR).
///
/// # Safety
/// As [`tile`], with a full `NR`-wide tile (and bias).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_dispatch(
    mr: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    w: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init,
) {
    // SAFETY: forwarded under the same contract; each instance reads `R` rows.
    unsafe {
        match mr {
            6 => kernel::<6>(kc, a, lda, w, c, ldc, init),
            5 => kernel::<5>(kc, a, lda, w, c, ldc, init),
            4 => kernel::<4>(kc, a, lda, w, c, ldc, init),
            3 => kernel::<3>(kc, a, lda, w, c, ldc, init),
            2 => kernel::<2>(kc, a, lda, w, c, ldc, init),
            1 => kernel::<1>(kc, a, lda, w, c, ldc, init),
            _ => unreachable!("tile rows are 1..=6"),
        }
    }
}

/// The micro-kernel: an `R x 16` tile in `2R` AVX registers; per `k` step two aligned loads
/// of the packed weight, `R` broadcasts of `x` and `2R` fused multiply-adds.
///
/// # Safety
/// As [`tile`] with `nr == NR`; `w` is 32-byte aligned.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    w: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    let mut acc0 = [_mm256_setzero_ps(); R];
    let mut acc1 = [_mm256_setzero_ps(); R];
    // SAFETY (whole body): every pointer offset stays inside the regions the contract names:
    // rows < R of `a` (kc floats each) and `c` (NR floats each), kc * NR floats of `w`.
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
