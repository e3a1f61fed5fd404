//! Qwen3-MoE (`qwen3_moe`): the Qwen3 layer ([`super::qwen3`]: per-head q/k norms) whose MLP
//! is a sparse mixture of experts ([`super::moe`]) on the layers the config makes sparse (the
//! others, `mlp_only_layers`, keep a dense MLP of `intermediate_size`): a router `mlp.gate`
//! `[experts, hidden]` and experts `mlp.experts.{e}.gate_proj` / `up_proj` / `down_proj` of
//! width `moe_intermediate_size`. Routing: softmax over all router logits, then the top-k,
//! renormalised only with `norm_topk_prob`. Only says which weights exist; must not run
//! anything itself.
use super::decoder::{self, Block, FeedForward, Layout};
use super::moe::SparseMoe;
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::{ModelError, Result};

/// Loads decoder block `l` of a Qwen3-MoE checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let moe = cfg.moe.as_ref().ok_or_else(|| {
        ModelError::InvalidInput("qwen3_moe: the config has no mixture-of-experts fields".into())
    })?;
    let h = cfg.hidden_size;
    let p = format!("model.layers.{l}.mlp");
    let ffn = if moe.sparse_layers.get(l).copied().unwrap_or(false) {
        let experts = (0..moe.num_experts)
            .map(|e| {
                decoder::load_mlp(
                    w,
                    &format!("{p}.experts.{e}"),
                    h,
                    moe.expert_intermediate_size,
                    false,
                    cfg.activation,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        FeedForward::Moe(SparseMoe {
            router: w.linear(&format!("{p}.gate"), h, moe.num_experts, false)?,
            experts,
            top_k: moe.top_k,
            norm_topk_prob: moe.norm_topk_prob,
        })
    } else {
        FeedForward::Dense(decoder::load_mlp(
            w,
            &p,
            h,
            cfg.intermediate_size,
            false,
            cfg.activation,
        )?)
    };
    let layout = Layout {
        qkv_bias: cfg.qkv_bias,
        o_bias: cfg.o_bias,
        mlp_bias: false,
        qk_norm: true,
    };
    decoder::load_block_with(w, cfg, l, layout, ffn)
}
