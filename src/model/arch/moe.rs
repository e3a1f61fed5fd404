//! The sparse mixture-of-experts MLP of Mixtral and Qwen3-MoE: a router (a linear layer to
//! one logit per expert) picks each token's top-k experts, and the block's output is their
//! gated MLPs' outputs weighted by the router's softmax:
//!
//! ```text
//! logits = router(x)                               (hook: blocks.{l}.mlp.hook_router_logits)
//! p = softmax(logits); S = top_k(p)
//! w_e = p_e / sum_{S} p  (Mixtral; Qwen3-MoE with norm_topk_prob)   or   w_e = p_e
//! y = sum_{e in S} w_e * down_e(silu(gate_e(x)) * up_e(x))
//! ```
//!
//! (Mixtral's "softmax over the top-k logits" is the renormalised form.) The choice of experts
//! is discrete and made on detached values; gradients flow through the weights `w` (hence the
//! router) and through each chosen expert to `x`. Tokens are gathered per expert
//! (`index_select`), each expert runs once on its rows through the pass's ops, and the rows are
//! put back in token order by a second `index_select`: every op has a backward in candle.
use candle_core::{DType, Tensor};

use super::decoder::{DecoderOps, Mlp, Step};
use super::ops::{softmax_last, upcast, Linear};
use crate::model::hooks::{HookPoint, Hooks};
use crate::model::{ModelError, Result};

/// Top-k routed experts.
#[derive(Debug, Clone)]
pub(crate) struct SparseMoe {
    /// `[experts, hidden]`: one logit per expert.
    pub router: Linear,
    pub experts: Vec<Mlp>,
    pub top_k: usize,
    /// Renormalise the chosen experts' probabilities to sum to 1.
    pub norm_topk_prob: bool,
}

impl SparseMoe {
    /// The MoE output for `x` `[B, T, hidden]`, applying the hooks at
    /// [`HookPoint::RouterLogits`]`(l)` to the router's logits `[B, T, experts]`.
    pub fn forward(
        &self,
        ops: &dyn DecoderOps,
        l: usize,
        x: &Tensor,
        step: &Step,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let (n, e, k) = (b * t, self.experts.len(), self.top_k);
        let logits = ops.linear(&self.router, x)?;
        let logits = hooks.apply(HookPoint::RouterLogits(l), logits, step.pos)?;
        let probs = softmax_last(&logits.reshape((n, e))?.to_dtype(upcast(x.dtype()))?)?;
        let chosen = top_k(&probs, k)?;
        let device = x.device();
        let idx = Tensor::from_vec(chosen.clone(), (n, k), device)?;
        let mut w = probs.gather(&idx, 1)?;
        if self.norm_topk_prob {
            w = w.broadcast_div(&w.sum_keepdim(1)?)?;
        }
        // Slots s = token * k + j in expert order: `order[i]` is the slot at sorted row i.
        let mut order: Vec<u32> = (0..(n * k) as u32).collect();
        order.sort_by_key(|&s| chosen[s as usize]);
        let tokens: Vec<u32> = order.iter().map(|&s| s / k as u32).collect();
        let mut back = vec![0u32; n * k];
        for (i, &s) in order.iter().enumerate() {
            back[s as usize] = i as u32;
        }
        let xf = x.reshape((n, h))?;
        let rows = xf.index_select(&Tensor::from_vec(tokens, n * k, device)?, 0)?;
        let mut outs = Vec::new();
        let mut start = 0;
        for (ei, expert) in self.experts.iter().enumerate() {
            let cnt = chosen.iter().filter(|&&c| c as usize == ei).count();
            if cnt == 0 {
                continue;
            }
            let part = rows.narrow(0, start, cnt)?.unsqueeze(0)?;
            outs.push(ops.mlp(expert, &part)?.squeeze(0)?);
            start += cnt;
        }
        let ys = Tensor::cat(&outs, 0)?;
        let y = ys
            .index_select(&Tensor::from_vec(back, n * k, device)?, 0)?
            .reshape((n, k, h))?;
        let w = w.to_dtype(y.dtype())?.reshape((n, k, 1))?;
        Ok(y.broadcast_mul(&w)?.sum(1)?.reshape((b, t, h))?)
    }

    pub fn n_params(&self) -> usize {
        self.router.n_params() + self.experts.iter().map(Mlp::n_params).sum::<usize>()
    }
}

/// Per row of `probs` `[N, E]`, the indices of the `k` largest entries, largest first (ties:
/// the lower index first), `[N * k]`. A NaN probability is an error, not a routing.
fn top_k(probs: &Tensor, k: usize) -> Result<Vec<u32>> {
    let (n, e) = probs.dims2()?;
    let p: Vec<f64> = probs
        .detach()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    if p.iter().any(|v| v.is_nan()) {
        return Err(ModelError::InvalidInput(
            "mixture of experts: the router's probabilities hold NaN".into(),
        ));
    }
    let mut out = Vec::with_capacity(n * k);
    let mut idx: Vec<usize> = Vec::with_capacity(e);
    for r in 0..n {
        let row = &p[r * e..(r + 1) * e];
        idx.clear();
        idx.extend(0..e);
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        out.extend(idx[..k].iter().map(|&i| i as u32));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn top_k_picks_the_largest_in_order() {
        let p = Tensor::new(
            &[[0.1f32, 0.5, 0.15, 0.25], [0.4, 0.1, 0.4, 0.1]],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(top_k(&p, 2).unwrap(), vec![1, 3, 0, 2]);
        let nan = Tensor::new(&[[f32::NAN, 0.5]], &Device::Cpu).unwrap();
        assert!(top_k(&nan, 1).is_err());
    }
}
