//! Llama (1/2/3, incl. Llama 3 `rope_scaling`) and Mistral: the reference layout every other
//! family is compared with. A layer computes (see [`super::decoder::Block::forward`]):
//!
//! ```text
//! h = x + o_proj(attention(rope(q_proj(norm1(x))), rope(k_proj(norm1(x))), v_proj(norm1(x))))
//! y = h + down_proj(silu(gate_proj(norm2(h))) * up_proj(norm2(h)))
//! ```
//!
//! Optional `attention_bias` / `mlp_bias`; Mistral's sliding window is handled by the attention
//! mask. Only says which weights exist; must not run anything itself.
use super::decoder::{self, Block, Layout};
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// Loads decoder block `l` of a Llama/Mistral checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let layout = Layout {
        qkv_bias: cfg.qkv_bias,
        o_bias: cfg.o_bias,
        mlp_bias: cfg.mlp_bias,
        qk_norm: false,
    };
    decoder::load_block(w, cfg, l, layout)
}
