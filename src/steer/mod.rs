//! Steering vectors: the vector type and its file formats (native safetensors, llama.cpp GGUF
//! control vectors), the BiPO trainer with its objective family, the CAA and PCA baselines,
//! the probe (logistic regression), one entry point for all of them ([`train()`]), behaviour
//! evaluation (A/B score over a multiplier sweep, steered generations, sweeps, side effects,
//! the tuner), a local judge and the lens (projection strips, logit lens).
//!
//! This module calls the model engine (`crate::model`) for forward passes and hooks; it must not
//! contain model architecture code, file-format code of data sets, or any UI code.
pub mod bipo;
pub mod caa;
pub mod collect;
mod error;
pub mod eval;
pub mod gguf;
pub mod judge;
pub mod judge_eval;
pub mod lens;
pub mod objective;
pub mod pca;
pub mod prepare;
pub mod probe;
pub mod side_effects;
pub mod sweep;
pub mod train;
pub mod tune;
pub mod vector;
pub mod verify;

pub use bipo::{train_bipo, BipoConfig, BipoOutcome, BipoWork, TrainData};
pub use collect::{steering_hooks, Completion, Contrast};
pub use error::{Result, SteerError};
pub use eval::{sweep, AbTokens, SweepPoint};
pub use objective::Objective;
pub use train::{train, Method, Prepared, Trained};
pub use vector::{SteeringVector, VectorMeta};
