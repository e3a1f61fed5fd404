//! The whole decoder block as one autograd node ([`super::GradOps::Block`]): the forward runs
//! the inference kernels (the `infer` ops it is given, op for op as [`Block::forward`] runs
//! them) and saves the activations the backward needs; the hand-written backward returns the
//! gradient with respect to the block input only. The weights are frozen, so no weight
//! gradient is ever formed, and candle's autograd sees one node per block instead of a few
//! dozen (each of which costs it a zero-initialised gradient buffer and an accumulation).
//!
//! Must not apply hooks (the caller runs it only for blocks without hooks inside) and must not
//! know about training.
use candle_core::{DType, Tensor};

use super::cpu_matmul;
use super::grad::{self, AttnSaved};
use super::kernels;
use super::profile::timed;
use crate::model::arch::decoder::{Block, DecoderOps, Mlp, Step};
use crate::model::arch::ops::{upcast, Linear, RmsNorm, Weight};
use crate::model::{ModelError, Result};

/// The block's dense MLP (only plain blocks reach this node; `Block::is_plain`).
fn dense(block: &Block) -> Result<&Mlp> {
    block.dense_mlp().ok_or_else(|| {
        ModelError::InvalidInput("block-grad node: a mixture-of-experts block is not plain".into())
    })
}

/// The activations a block's backward needs.
struct Saved {
    /// The block input `[B, T, hidden]`.
    x: Tensor,
    /// Query / key heads entering the per-head norms (Qwen3), `[B, H, T, D]`.
    q_pre_norm: Option<Tensor>,
    k_pre_norm: Option<Tensor>,
    attn: AttnSaved,
    /// The residual after attention, `[B, T, hidden]`.
    x2: Tensor,
    /// MLP gate and up projections `[B, T, inner]`.
    gate: Tensor,
    up: Tensor,
    cos: Tensor,
    /// `-sin`: the inverse rotation.
    neg_sin: Tensor,
}

/// Runs `block` on `x` (which carries a gradient) as one node of the autograd graph. Same
/// result as [`Block::forward`] with the inference kernels.
pub(crate) fn forward(
    infer: &dyn DecoderOps,
    block: &Block,
    x: &Tensor,
    step: &Step,
) -> Result<Tensor> {
    crate::model::error::check_interrupt()?;
    let (y, saved) = forward_saving(infer, block, &x.detach(), step)?;
    let block = block.clone();
    Ok(grad::with_grad("block-grad", x, y, move |x, _y, dy| {
        backward(&block, &saved, dy)
            .and_then(|dx| Ok(dx.to_dtype(x.dtype())?))
            .map_err(|e| candle_core::Error::Msg(format!("block backward: {e}")))
    })?)
}

fn rms(x: &Tensor, n: &RmsNorm) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(
        &x.contiguous()?,
        &n.weight,
        n.eps as f32,
    )?)
}

fn forward_saving(
    infer: &dyn DecoderOps,
    block: &Block,
    x: &Tensor,
    step: &Step,
) -> Result<(Tensor, Saved)> {
    let a = &block.attn;
    let (b, t, _) = x.dims3()?;
    let d = a.head_dim;
    let h1 = rms(x, &block.input_norm)?;
    let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
        Ok(infer
            .linear(lin, &h1)?
            .reshape((b, t, n, d))?
            .transpose(1, 2)?)
    };
    let mut q = heads(&a.q, a.n_heads)?;
    let mut k = heads(&a.k, a.n_kv_heads)?;
    let v = heads(&a.v, a.n_kv_heads)?;
    let mut q_pre_norm = None;
    let mut k_pre_norm = None;
    if let Some(n) = &a.q_norm {
        let qc = q.contiguous()?;
        q = rms(&qc, n)?;
        q_pre_norm = Some(qc);
    }
    if let Some(n) = &a.k_norm {
        let kc = k.contiguous()?;
        k = rms(&kc, n)?;
        k_pre_norm = Some(kc);
    }
    let q = candle_nn::rotary_emb::rope(&q.contiguous()?, step.cos, step.sin)?;
    let k = candle_nn::rotary_emb::rope(&k.contiguous()?, step.cos, step.sin)?;
    let (att, attn) = grad::attention_forward(&q, &k, &v, step.mask)?;
    let x2 = (x + infer.linear(&a.o, &att)?)?;
    let h2 = rms(&x2, &block.post_attention_norm)?;
    let mlp = dense(block)?;
    let gate = infer.linear(&mlp.gate, &h2)?;
    let up = infer.linear(&mlp.up, &h2)?;
    let m = infer.linear(&mlp.down, &(gate.silu()? * &up)?)?;
    let y = (&x2 + m)?;
    let saved = Saved {
        x: x.clone(),
        q_pre_norm,
        k_pre_norm,
        attn,
        x2,
        gate,
        up,
        cos: step.cos.clone(),
        neg_sin: step.sin.neg()?,
    };
    Ok((y, saved))
}

/// `[B, H, T, D]` heads back to `[B * T, H * D]` rows.
fn rows(heads: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = heads.dims4()?;
    Ok(heads
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * t, h * d))?)
}

/// The gradient with respect to the block input given `dy` `[B, T, hidden]`.
fn backward(block: &Block, s: &Saved, dy: &Tensor) -> Result<Tensor> {
    crate::model::error::check_interrupt()?;
    let a = &block.attn;
    let (b, t, hidden) = s.x.dims3()?;
    let dev = s.x.device();
    let dt = s.x.dtype();
    let dy = dy.to_dtype(dt)?;
    // MLP: m = down(silu(g) * u), g = gate(h2), u = up(h2); silu' = sig (1 + g (1 - sig)).
    let mlp = dense(block)?;
    let da = timed(dev, "bwd: mlp down", || {
        backward_input(&mlp.down.weight, &dy)
    })?;
    let (dg, du) = timed(dev, "bwd: swiglu", || {
        let g = s.gate.flatten_to(1)?;
        let u = s.up.flatten_to(1)?;
        Ok(match kernels::silu_mul_bwd(&da, &g, &u)? {
            Some(both) => (both.get(0)?, both.get(1)?),
            None => {
                let up = upcast(dt);
                let (da, g, u) = (da.to_dtype(up)?, g.to_dtype(up)?, u.to_dtype(up)?);
                let sig = candle_nn::ops::sigmoid(&g)?;
                let silu = (&g * &sig)?;
                let dsilu = (&sig * ((&g * (1.0 - &sig)?)? + 1.0)?)?;
                let dg = (&da * &u)?.mul(&dsilu)?.to_dtype(dt)?;
                (dg, (&da * silu)?.to_dtype(dt)?)
            }
        })
    })?;
    let dh2 = timed(dev, "bwd: mlp gate+up", || {
        Ok(
            (backward_input(&mlp.gate.weight, &dg)? + backward_input(&mlp.up.weight, &du)?)?
                .reshape((b, t, hidden))?,
        )
    })?;
    let dx2 = timed(dev, "bwd: rms norms", || {
        rms_backward_plus(&s.x2, &block.post_attention_norm, &dh2, &dy)
    })?;
    // Attention.
    let datt = timed(dev, "bwd: attn o", || backward_input(&a.o.weight, &dx2))?;
    let (dq, dk, dv) = timed(dev, "bwd: attn core", || {
        Ok(grad::attention_backward(
            &s.attn,
            &datt.reshape((b, t, ()))?,
        )?)
    })?;
    let (dq, dk) = timed(dev, "bwd: rope", || {
        let mut dq = candle_nn::rotary_emb::rope(&dq.contiguous()?, &s.cos, &s.neg_sin)?;
        let mut dk = candle_nn::rotary_emb::rope(&dk.contiguous()?, &s.cos, &s.neg_sin)?;
        if let (Some(n), Some(q0)) = (&a.q_norm, &s.q_pre_norm) {
            dq = grad::rms_norm_backward(q0, &n.weight, n.eps, &dq)?;
        }
        if let (Some(n), Some(k0)) = (&a.k_norm, &s.k_pre_norm) {
            dk = grad::rms_norm_backward(k0, &n.weight, n.eps, &dk)?;
        }
        Ok((dq, dk))
    })?;
    let dh1 = timed(dev, "bwd: attn qkv", || {
        Ok(((backward_input(&a.q.weight, &rows(&dq)?)?
            + backward_input(&a.k.weight, &rows(&dk)?)?)?
            + backward_input(&a.v.weight, &rows(&dv)?)?)?
        .reshape((b, t, hidden))?)
    })?;
    let dx = timed(dev, "bwd: rms norms", || {
        rms_backward_plus(&s.x, &block.input_norm, &dh1, &dx2)
    })?;
    debug_assert_eq!(dx.dtype(), dt);
    Ok(dx)
}

/// `dy W` for the frozen weight `w` `[out, in]`: on the packed CPU GEMM when it is on and both
/// are f32 CPU tensors (`W` packed per call: O(out·in) copies against the product's
/// O(rows·out·in)), else [`Weight::backward_input`] (candle's matmul, or the quantized kernel).
fn backward_input(w: &Weight, dy: &Tensor) -> Result<Tensor> {
    if let Some(t) = w.dense() {
        if cpu_matmul::enabled()
            && t.dtype() == DType::F32
            && dy.dtype() == DType::F32
            && t.device().is_cpu()
            && dy.device().is_cpu()
        {
            let (out, inp) = t.dims2()?;
            let wv = t.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let packed = cpu_matmul::PackedLinear::pack_transposed(&wv, out, inp)?;
            let rows = dy.elem_count() / out.max(1);
            if let Some(dx) = packed.forward(&dy.contiguous()?.reshape((rows, out))?)? {
                return Ok(dx);
            }
        }
    }
    w.backward_input(dy)
}

/// `res` plus the gradient through the RMSNorm `n` at `x` given `dy`: one kernel on a GPU.
fn rms_backward_plus(x: &Tensor, n: &RmsNorm, dy: &Tensor, res: &Tensor) -> Result<Tensor> {
    if let Some(dx) = kernels::rms_norm_bwd(x, &n.weight, dy, Some(res), n.eps)? {
        return Ok(dx);
    }
    Ok((res + grad::rms_norm_backward(x, &n.weight, n.eps, dy)?)?)
}
