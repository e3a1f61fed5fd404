//! The speed layer: everything that makes the decoder of `model::arch` fast without changing
//! what it computes (beyond float rounding).
//!
//! - [`Exec`]: the one execution choice of a forward pass, made at its top: the reference ops
//!   (`arch::decoder::Reference`), the inference kernels (`ops::Infer`) or the gradient nodes
//!   (`ops::Grad`, per [`GradOps`]). The chosen ops are handed to the decoder as a
//!   `&dyn DecoderOps`, wrapped in `profile::Profiled` when profiling.
//! - Inference kernels: the packed CPU GEMM ([`cpu_matmul`]), the CPU inference kernels
//!   ([`cpu_infer`]: attention, RoPE, SwiGLU, residual + RMSNorm), candle-nn's fused kernels
//!   elsewhere; the packed weights they need live in `Packs`, owned by the model.
//! - Gradient nodes: single ops with a hand-written backward ([`grad`]), the whole decoder block
//!   as one node (`block_grad.rs`), and steerlab's own kernels for their backward passes
//!   ([`kernels`], CUDA in `kernels.cu`, and CPU loops).
//! - The instruction-set path of every CPU kernel, chosen once from the CPU's features
//!   ([`cpu_path`]: AVX-512, AVX2 + FMA, NEON, portable).
//! - Section timings ([`profile`]) and every environment switch ([`switches`]).
//!
//! The reference ops stay the oracle: the tests compare every fast path with them. Must not
//! apply hooks, load weights or know about families; must not change results beyond rounding.
mod block_grad;
pub mod cpu_infer;
pub mod cpu_matmul;
pub mod cpu_path;
mod exec;
pub mod grad;
pub mod kernels;
mod ops;
pub mod profile;
pub mod quant;
#[cfg(target_arch = "x86_64")]
mod quant_dot;
#[cfg(target_arch = "x86_64")]
mod quant_i16;
pub mod switches;

pub(crate) use exec::Exec;
pub use grad::GradOps;
pub(crate) use ops::Packs;
