//! The hooked transformer engine: config parsing, weight loading (HF safetensors folders and
//! GGUF files), tokenizers and chat templates, one file per architecture family, hook points,
//! differentiable forward passes and KV-cache generation. Must not contain steering, SAE or
//! statistics logic: those call this module.
mod error;
pub use error::{ModelError, Result};
pub mod bert;
