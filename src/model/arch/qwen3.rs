//! Qwen3: the Llama layer ([`super::llama`]) plus a per-head RMSNorm on queries and keys
//! (before RoPE: `q = rope(q_norm(q_proj(x)))`, likewise `k`) and an explicit `head_dim` that
//! need not equal `hidden_size / heads`. Only says which weights exist; must not run anything
//! itself.
use super::decoder::{self, Block, Layout};
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// Loads decoder block `l` of a Qwen3 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let layout = Layout {
        qkv_bias: cfg.qkv_bias,
        o_bias: cfg.o_bias,
        mlp_bias: false,
        // The Qwen3 difference: RMSNorm over each head's `head_dim` on q and k.
        qk_norm: true,
    };
    decoder::load_block(w, cfg, l, layout)
}
