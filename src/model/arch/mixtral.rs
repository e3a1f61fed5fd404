//! Mixtral: the Mistral layer ([`super::llama`]) whose MLP is a sparse mixture of experts
//! ([`super::moe`]): a router `block_sparse_moe.gate` `[experts, hidden]` and experts
//! `block_sparse_moe.experts.{e}.w1` (gate), `w3` (up), `w2` (down). Each token's top-k
//! experts are weighted by the softmax over their router logits (the renormalised top-k of the
//! full softmax). Only says which weights exist; must not run anything itself.
use super::decoder::{self, Block, FeedForward, Layout, Mlp};
use super::moe::SparseMoe;
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::{ModelError, Result};

/// Loads decoder block `l` of a Mixtral checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let moe = cfg.moe.as_ref().ok_or_else(|| {
        ModelError::InvalidInput("mixtral: the config has no mixture-of-experts fields".into())
    })?;
    let (h, inner) = (cfg.hidden_size, moe.expert_intermediate_size);
    let p = format!("model.layers.{l}.block_sparse_moe");
    let experts = (0..moe.num_experts)
        .map(|e| {
            let lin = |name: &str, inp: usize, out: usize| {
                w.linear(&format!("{p}.experts.{e}.{name}"), inp, out, false)
            };
            Ok(Mlp {
                gate: lin("w1", h, inner)?,
                up: lin("w3", h, inner)?,
                down: lin("w2", inner, h)?,
                act: cfg.activation,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ffn = FeedForward::Moe(SparseMoe {
        router: w.linear(&format!("{p}.gate"), h, moe.num_experts, false)?,
        experts,
        top_k: moe.top_k,
        // Mixtral's difference: the chosen experts' weights always sum to 1.
        norm_topk_prob: true,
    });
    let layout = Layout {
        qkv_bias: cfg.qkv_bias,
        o_bias: cfg.o_bias,
        mlp_bias: false,
        qk_norm: false,
    };
    decoder::load_block_with(w, cfg, l, layout, ffn)
}
