//! The hooked transformer engine: config parsing, weight loading (HF safetensors folders and
//! GGUF files), tokenizers and chat templates, one file per architecture family, hook points,
//! differentiable forward passes and KV-cache generation. Must not contain steering, SAE or
//! statistics logic: those call this module.
pub mod bert;
mod block;
mod block_grad;
pub mod config;
pub mod cpu_infer;
pub mod cpu_matmul;
mod engine;
mod error;
pub mod fused;
mod generate;
pub mod gguf;
pub mod hooks;
pub mod kernels;
mod llama;
mod ops;
pub mod profile;
mod qwen2;
mod qwen3;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig, RopeScaling};
pub use engine::{
    device_name, dtype_name, parse_device, parse_dtype, Batch, LoadOptions, Model, ModelInfo,
};
pub use error::{ModelError, Result};
pub use fused::GradOps;
pub use generate::GenerateOptions;
pub use hooks::{HookPoint, Hooks, Intervention, Positions};
pub use tokenizer::TextTokenizer;
