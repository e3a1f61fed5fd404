//! The hooked transformer engine, in four layers:
//!
//! - [`arch`]: the model definitions. One file per family saying which weights its decoder block
//!   has, the decoder block they share (where hooks apply) written against the reference ops,
//!   and the BERT sentence embedder.
//! - [`load`]: config parsing, HF safetensors folders, GGUF files, load options.
//! - [`tokenizer`]: HF tokenizers, GGUF vocabularies, chat templates.
//! - [`fast`]: the speed layer (packed CPU GEMM, CPU inference kernels, CUDA kernels, gradient
//!   nodes, profiling spans, environment switches), chosen once per forward pass.
//!
//! Beside them: the [`Model`] itself (`engine.rs`), [`Batch`], [`hooks`] and generation.
//! `arch` does not import `fast`; `fast` implements `arch`'s decoder ops. Design notes:
//! `docs/design/hooks.md` and `docs/design/gguf.md`. Must not contain steering, SAE or statistics
//! logic: those call this module.
pub mod arch;
mod batch;
mod engine;
mod error;
pub mod fast;
mod generate;
pub mod hooks;
pub mod interventions;
pub mod load;
pub mod tokenizer;

pub use batch::Batch;
pub use engine::{Model, ModelInfo};
pub use error::{ModelError, Result};
pub use fast::GradOps;
pub use generate::{GenerateOptions, Generation};
pub use hooks::{HookPoint, Hooks, Intervention, Positions};
pub use interventions::{Condition, EditMode};
pub use load::config::{Architecture, ModelConfig, MoeConfig, RopeScaling};
pub use load::{device_name, dtype_name, parse_device, parse_dtype, LoadOptions, WeightStorage};
pub use tokenizer::TextTokenizer;
