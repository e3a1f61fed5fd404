//! Qwen2 / Qwen2.5: the Llama layout with a bias on the q, k and v projections (never on o,
//! never on the MLP). Only loads weights; running lives in `block.rs`.
use super::block::{load_mlp, Attention, Block, Weights};
use super::config::ModelConfig;
use super::Result;

/// Loads decoder block `l` of a Qwen2 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let p = format!("model.layers.{l}");
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    Ok(Block {
        input_norm: w.rms_norm(&format!("{p}.input_layernorm"), h, cfg.rms_norm_eps)?,
        attn: Attention {
            // The Qwen2 difference: q/k/v always carry a bias, o never does.
            q: w.linear(&format!("{p}.self_attn.q_proj"), h, nq * d, true)?,
            k: w.linear(&format!("{p}.self_attn.k_proj"), h, nkv * d, true)?,
            v: w.linear(&format!("{p}.self_attn.v_proj"), h, nkv * d, true)?,
            o: w.linear(&format!("{p}.self_attn.o_proj"), nq * d, h, false)?,
            q_norm: None,
            k_norm: None,
            n_heads: nq,
            n_kv_heads: nkv,
            head_dim: d,
        },
        post_attention_norm: w.rms_norm(
            &format!("{p}.post_attention_layernorm"),
            h,
            cfg.rms_norm_eps,
        )?,
        mlp: load_mlp(w, &format!("{p}.mlp"), h, cfg.intermediate_size, false)?,
    })
}
