//! Qwen2 / Qwen2.5: the Llama layer ([`super::llama`]) with a bias on the q, k and v
//! projections (never on o, never on the MLP). Only says which weights exist; must not run
//! anything itself.
use super::decoder::{self, Block, Layout};
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// Loads decoder block `l` of a Qwen2 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let layout = Layout {
        // The Qwen2 difference: q/k/v always carry a bias, o and the MLP never do.
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
    };
    decoder::load_block(w, cfg, l, layout)
}
