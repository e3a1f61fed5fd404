//! The model definitions: one file per family saying which weights its decoder block has
//! (`llama.rs` for Llama and Mistral, `qwen2.rs`, `qwen3.rs`, `gemma2.rs`, `gemma3.rs`,
//! `phi3.rs`, `mixtral.rs`, `qwen3_moe.rs`), the decoder block they share (`decoder.rs`, hooks
//! applied there), the mixture-of-experts MLP (`moe.rs`), the reference ops (`ops.rs`), and
//! the BERT sentence embedder (`bert.rs`). A new family adds a file here and a line in [`load_block`].
//!
//! Must not read files (that is `model::load`), choose kernels or read environment switches
//! (that is `model::fast`).
pub mod bert;
pub(crate) mod decoder;
mod gemma2;
pub(crate) mod gemma3;
mod llama;
mod mixtral;
pub(crate) mod moe;
pub(crate) mod ops;
pub(crate) mod phi3;
mod qwen2;
mod qwen3;
mod qwen3_moe;

use crate::model::load::config::{Architecture, ModelConfig};
use crate::model::load::Weights;
use crate::model::Result;
use decoder::Block;

/// Loads decoder block `l` of a checkpoint of `cfg`'s family.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    match cfg.architecture {
        Architecture::Llama | Architecture::Mistral => llama::load_block(w, cfg, l),
        Architecture::Qwen2 => qwen2::load_block(w, cfg, l),
        Architecture::Qwen3 => qwen3::load_block(w, cfg, l),
        Architecture::Gemma2 => gemma2::load_block(w, cfg, l),
        Architecture::Gemma3 => gemma3::load_block(w, cfg, l),
        Architecture::Phi3 => phi3::load_block(w, cfg, l),
        Architecture::Mixtral => mixtral::load_block(w, cfg, l),
        Architecture::Qwen3Moe => qwen3_moe::load_block(w, cfg, l),
    }
}
