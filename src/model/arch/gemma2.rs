//! Gemma 2: the Gemma 3 block ([`super::gemma3`]: `1 + w` norms around attention and MLP, GeGLU,
//! `query_pre_attn_scalar`) without q/k norms, with attention scores soft-capped as
//! `c * tanh(scores / c)` (`attn_logit_softcapping`, applied before the mask) and the final
//! logits likewise (`final_logit_softcapping`, in the engine). Even layers attend through the
//! sliding window, odd layers globally; one RoPE base. Only says which weights exist; must not
//! run anything itself.
use super::decoder::Block;
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// Loads decoder block `l` of a Gemma 2 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    super::gemma3::load_gemma_block(w, cfg, l, false)
}
