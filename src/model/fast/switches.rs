//! Every environment switch of the speed layer, read here and nowhere else (each once, on first
//! use). None changes a result beyond float rounding; they exist for A/B measurements, tuning and
//! bisecting a suspected kernel bug.
//!
//! - `STEERLAB_CPU_GEMM=0`: inference linear layers on the CPU use candle's matmul instead of
//!   the packed GEMM ([`super::cpu_matmul`]). Default on.
//! - `STEERLAB_CPU_FUSED=0`: the CPU inference kernels ([`super::cpu_infer`]: attention, RoPE,
//!   SwiGLU, residual + RMSNorm) are replaced by candle ops. Default on. (The name is older
//!   than this module; the kernels are not the gradient nodes of [`super::grad`].)
//! - `STEERLAB_CPU_GEMM_KC`, `STEERLAB_CPU_GEMM_MC`, `STEERLAB_CPU_GEMM_PAR_MIN`: the GEMM's
//!   block sizes and the size below which it stays on one thread (defaults in
//!   [`super::cpu_matmul`]).
//! - `STEERLAB_KERNELS`: the gradient-path kernels ([`super::kernels`]) allowed: unset, `1` or
//!   `all` for all, `0` for none, or a comma list of `xent`, `swiglu`, `rms`, `softmax`.
//! - `STEERLAB_CPU_PATH`: the instruction-set path of the CPU kernels (`avx512`, `avx2`,
//!   `neon`, `portable`; default the best this CPU runs, see [`super::cpu_path`]).
//! - `STEERLAB_QUANT_I16=0`: one-row products with quantized weights (Q4_0/Q4_1/Q5_0/Q8_0/
//!   Q4_K/Q6_K, x86-64) keep f32 activations instead of rounding them to 16 bits per block of
//!   32 (`quant_i16`; a change of at most 1/65 534 of the block's largest activation). Default
//!   on.
//! - `STEERLAB_PROFILE=1`: section timings ([`super::profile`]); slows the run down.
//! - `STEERLAB_CUDA_POOL_RELEASE=1`: keep CUDA's default of handing freed pool memory back to
//!   the driver at every synchronisation (steerlab otherwise keeps it).
//!
//! The two CPU switches only turn kernels on where a SIMD path runs ([`cpu_simd`]). Must not
//! hold anything but the switches.
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

/// Whether the packed GEMM and the CPU inference kernels run by default: the current
/// [`super::cpu_path`] has SIMD kernels (AVX-512, AVX2 + FMA or NEON; not `portable`).
pub fn cpu_simd() -> bool {
    super::cpu_path::current().simd()
}

/// The value of `STEERLAB_CPU_PATH`, if set and not empty (read by [`super::cpu_path`] once).
pub(crate) fn cpu_path_request() -> Option<String> {
    std::env::var("STEERLAB_CPU_PATH")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A process-wide on/off switch for CPU kernels: on where [`cpu_simd`], unless the environment
/// variable `var` is `0` (read on first use) or [`Switch::set`] says otherwise.
pub(crate) struct Switch {
    /// 0 = not decided yet, 1 = off, 2 = on.
    state: AtomicU8,
    var: &'static str,
}

impl Switch {
    const fn new(var: &'static str) -> Self {
        Self {
            state: AtomicU8::new(0),
            var,
        }
    }

    pub(crate) fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => false,
            // The path may have been switched to `portable` since.
            2 => cpu_simd(),
            _ => {
                let off = std::env::var(self.var).is_ok_and(|v| v.trim() == "0");
                self.state.store(if off { 1 } else { 2 }, Ordering::Relaxed);
                !off && cpu_simd()
            }
        }
    }

    /// Switching on has no effect while the path is `portable`.
    pub(crate) fn set(&self, on: bool) {
        self.state.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
}

/// The packed CPU GEMM (`STEERLAB_CPU_GEMM`).
pub(crate) static CPU_GEMM: Switch = Switch::new("STEERLAB_CPU_GEMM");

/// The CPU inference kernels (`STEERLAB_CPU_FUSED`; the name predates this module).
pub(crate) static CPU_INFER: Switch = Switch::new("STEERLAB_CPU_FUSED");

/// The 16-bit-activation generation kernels (`STEERLAB_QUANT_I16`).
#[cfg(target_arch = "x86_64")]
pub(crate) static QUANT_I16: Switch = Switch::new("STEERLAB_QUANT_I16");

/// A tuning value read once from the environment variable `var` (ignored below `min`).
fn tuning(cell: &'static OnceLock<usize>, var: &str, default: usize, min: usize) -> usize {
    *cell.get_or_init(|| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&v| v >= min)
            .unwrap_or(default)
    })
}

/// The GEMM's `k` block length: `default` unless `STEERLAB_CPU_GEMM_KC` says otherwise.
pub(crate) fn gemm_kc(default: usize) -> usize {
    static V: OnceLock<usize> = OnceLock::new();
    tuning(&V, "STEERLAB_CPU_GEMM_KC", default, 1)
}

/// The GEMM's `m` block length: `default` unless `STEERLAB_CPU_GEMM_MC` says otherwise.
pub(crate) fn gemm_mc(default: usize) -> usize {
    static V: OnceLock<usize> = OnceLock::new();
    tuning(&V, "STEERLAB_CPU_GEMM_MC", default, 1)
}

/// Multiply-adds below which the GEMM stays on the calling thread: `default` unless
/// `STEERLAB_CPU_GEMM_PAR_MIN` says otherwise.
pub(crate) fn gemm_par_min(default: usize) -> usize {
    static V: OnceLock<usize> = OnceLock::new();
    tuning(&V, "STEERLAB_CPU_GEMM_PAR_MIN", default, 0)
}

/// Whether `STEERLAB_KERNELS` allows gradient-path kernel `name`: unset, `1` or `all` allow
/// all, `0` none, a comma list those named.
pub(crate) fn kernel_allowed(name: &str) -> bool {
    static SET: OnceLock<Option<Vec<String>>> = OnceLock::new();
    let set = SET.get_or_init(|| match std::env::var("STEERLAB_KERNELS") {
        Err(_) => None,
        Ok(v) if v == "1" || v == "all" => None,
        Ok(v) => Some(v.split(',').map(|s| s.trim().to_string()).collect()),
    });
    set.as_ref()
        .is_none_or(|names| names.iter().any(|n| n == name))
}

/// The profiling flag: initialised from `STEERLAB_PROFILE` (set and not `0`), then
/// switchable by `profile::set_enabled`.
pub(crate) fn profile() -> &'static AtomicBool {
    static FLAG: OnceLock<AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        AtomicBool::new(std::env::var("STEERLAB_PROFILE").is_ok_and(|v| v != "0" && !v.is_empty()))
    })
}

/// Whether freed CUDA pool memory goes back to the driver at every synchronisation
/// (`STEERLAB_CUDA_POOL_RELEASE` set and not `0`; CUDA's default). Off, steerlab keeps it.
pub fn cuda_pool_release() -> bool {
    std::env::var("STEERLAB_CUDA_POOL_RELEASE").is_ok_and(|v| v != "0")
}
