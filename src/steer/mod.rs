//! Steering vectors: the vector type and its file formats (native safetensors, llama.cpp GGUF
//! control vectors), the BiPO trainer with its objective family, the CAA and PCA baselines,
//! and behaviour evaluation (A/B score over a multiplier sweep, steered generations).
//!
//! This module calls the model engine (`crate::model`) for forward passes and hooks; it must not
//! contain model architecture code, file-format code of data sets, or any UI code.
pub mod caa;
mod error;
pub mod gguf;
pub mod objective;
pub mod pca;
pub mod vector;

pub use error::{Result, SteerError};
pub use objective::Objective;
pub use vector::{SteeringVector, VectorMeta};
