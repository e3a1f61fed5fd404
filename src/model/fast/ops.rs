//! The speed layer's implementations of the decoder ops: [`Infer`] (passes without gradient:
//! the CPU kernels where they apply, candle-nn's fused kernels elsewhere) and [`Grad`] (passes
//! with gradient: the nodes of [`super::grad`] or whole blocks), plus [`Packs`], the packed
//! weights the CPU kernels read. Must not apply hooks or read environment switches.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use candle_core::{DType, Tensor, TensorId};

use super::block_grad;
use super::cpu_infer::{self, PackedGateUp};
use super::cpu_matmul::{self, PackedLinear};
use super::grad::{self, GradOps};
use crate::model::arch::decoder::{swiglu, Block, DecoderOps, Mlp, Step};
use crate::model::arch::ops::{add_mask, attention_with, Linear, RmsNorm};
use crate::model::load::config::Activation;
use crate::model::Result;

/// Which tensors a pack was built from: a linear layer's weight and bias, or the gate and up
/// weights of an MLP.
type Key = (TensorId, Option<TensorId>);

/// The weights packed for the CPU kernels, built on first use and kept for the model's life
/// (the weights are frozen), keyed by the tensors they were packed from.
#[derive(Debug, Default)]
pub(crate) struct Packs {
    linears: RwLock<HashMap<Key, Arc<PackedLinear>>>,
    gate_ups: RwLock<HashMap<Key, Arc<PackedGateUp>>>,
}

fn cpu_f32(t: &Tensor) -> bool {
    t.dtype() == DType::F32 && t.device().is_cpu()
}

/// The entry for `key`, packed by `pack` if missing.
fn cached<T>(
    map: &RwLock<HashMap<Key, Arc<T>>>,
    key: Key,
    pack: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    if let Some(p) = map.read().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(p);
    }
    let p = Arc::new(pack()?);
    if let Ok(mut m) = map.write() {
        return Ok(m.entry(key).or_insert(p).clone());
    }
    Ok(p)
}

impl Packs {
    /// `lin(x)` by the packed GEMM, or `None` where it does not apply (gradient, device,
    /// dtype, kernel switched off or unsupported).
    pub fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(weight) = lin.weight.dense() else {
            return Ok(None);
        };
        if x.track_op() || !cpu_f32(x) || !cpu_f32(weight) || !cpu_matmul::enabled() {
            return Ok(None);
        }
        let key = (weight.id(), lin.bias.as_ref().map(|b| b.id()));
        let packed = cached(&self.linears, key, || {
            PackedLinear::from_tensors(weight, lin.bias.as_ref())
        })?;
        packed.forward(x)
    }

    /// `silu(gate(x)) * up(x)` by the CPU kernel, or `None` where it does not apply (other
    /// activations included).
    pub fn gate_up(&self, mlp: &Mlp, x: &Tensor) -> Result<Option<Tensor>> {
        let (gate, up) = (&mlp.gate, &mlp.up);
        let (Some(gw), Some(uw)) = (gate.weight.dense(), up.weight.dense()) else {
            return Ok(None);
        };
        if !cpu_infer::enabled()
            || mlp.act != Activation::Silu
            || x.track_op()
            || !cpu_f32(x)
            || !cpu_f32(gw)
            || !cpu_f32(uw)
            || gw.dims() != uw.dims()
        {
            return Ok(None);
        }
        let key = (gw.id(), Some(uw.id()));
        let packed = cached(&self.gate_ups, key, || {
            PackedGateUp::from_tensors(gw, gate.bias.as_ref(), uw, up.bias.as_ref())
        })?;
        packed.forward(x)
    }
}

/// Decoder ops for passes without gradient.
pub(crate) struct Infer<'a> {
    pub packs: &'a Packs,
}

impl DecoderOps for Infer<'_> {
    fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        match self.packs.linear(lin, x)? {
            Some(y) => Ok(y),
            None => lin.forward(x),
        }
    }

    fn rms_norm(&self, n: &RmsNorm, x: &Tensor) -> Result<Tensor> {
        match cpu_infer::add_rms_norm(x, None, &n.weight, n.eps)? {
            Some((_, normed)) => Ok(normed),
            None => Ok(candle_nn::ops::rms_norm(
                &x.contiguous()?,
                &n.weight,
                n.eps as f32,
            )?),
        }
    }

    fn add_rms_norm(&self, x: &Tensor, a: &Tensor, n: &RmsNorm) -> Result<(Tensor, Tensor)> {
        // On the CPU: the residual add and the norm in one pass.
        if let Some(pair) = cpu_infer::add_rms_norm(x, Some(a), &n.weight, n.eps)? {
            return Ok(pair);
        }
        let x = (x + a)?;
        let xn = self.rms_norm(n, &x)?;
        Ok((x, xn))
    }

    fn rope(&self, x: &Tensor, step: &Step) -> Result<Tensor> {
        match cpu_infer::rope(x, step.cos, step.sin)? {
            Some(y) => Ok(y),
            None => Ok(candle_nn::rotary_emb::rope(
                &x.contiguous()?,
                step.cos,
                step.sin,
            )?),
        }
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, step: &Step) -> Result<Tensor> {
        // On the CPU: one kernel, RoPE on the queries included.
        if let Some(out) = cpu_infer::attention(q, step.cos, step.sin, k, v, step.mask)? {
            return Ok(out);
        }
        let q = candle_nn::rotary_emb::rope(&q.contiguous()?, step.cos, step.sin)?;
        attention_with(&q, k, v, step.mask, &|s, m| {
            Ok(candle_nn::ops::softmax_last_dim(
                &add_mask(s, m)?.contiguous()?,
            )?)
        })
    }

    fn mlp(&self, mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
        if let Some(h) = self.packs.gate_up(mlp, x)? {
            return self.linear(&mlp.down, &h);
        }
        let gelu = mlp.act == Activation::GeluTanh;
        let (g, u) = (self.linear(&mlp.gate, x)?, self.linear(&mlp.up, x)?);
        let h = match cpu_infer::act_mul(gelu, &g, &u)? {
            Some(h) => h,
            // candle's `gelu` is the tanh approximation, as in `swiglu`.
            None if gelu => (g.gelu()? * u)?,
            None => (g.silu()? * u)?,
        };
        self.linear(&mlp.down, &h)
    }
}

/// Decoder ops for passes with gradient, built of the nodes `kind` names.
pub(crate) struct Grad<'a> {
    pub packs: &'a Packs,
    pub kind: GradOps,
}

impl DecoderOps for Grad<'_> {
    fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        match lin.weight.dense() {
            Some(w) => Ok(grad::linear(x, w, lin.bias.as_ref())?),
            // The quantized linear is its own node (backward to the input only).
            None => lin.forward(x),
        }
    }

    fn rms_norm(&self, n: &RmsNorm, x: &Tensor) -> Result<Tensor> {
        Ok(grad::rms_norm(x, &n.weight, n.eps)?)
    }

    fn rope(&self, x: &Tensor, step: &Step) -> Result<Tensor> {
        Ok(grad::rope(&x.contiguous()?, step.cos, step.sin)?)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, step: &Step) -> Result<Tensor> {
        let q = grad::rope(&q.contiguous()?, step.cos, step.sin)?;
        if self.kind == GradOps::Fused {
            // The mask is a constant: the softmax node adds it outside the graph.
            attention_with(&q, k, v, step.mask, &|s, m| {
                Ok(grad::softmax_last_dim(s, m)?)
            })
        } else {
            Ok(grad::attention(&q, k, v, step.mask)?)
        }
    }

    fn mlp(&self, mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
        swiglu(self, mlp, x)
    }

    fn whole_block(&self, block: &Block, x: &Tensor, step: &Step) -> Result<Option<Tensor>> {
        if self.kind != GradOps::Block || !x.track_op() || !block.is_plain() {
            return Ok(None);
        }
        let infer = Infer { packs: self.packs };
        Ok(Some(block_grad::forward(&infer, block, x, step)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::arch::decoder::Reference;
    use crate::model::arch::ops::{rope, rope_tables, softmax_last};
    use crate::model::hooks::PosCtx;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let d = crate::testing::max_abs_diff(a, b);
        assert!(d < tol, "max abs diff {d}");
    }

    /// The inference ops (CPU kernels and candle-nn's fused kernels) against the reference.
    #[test]
    fn inference_ops_agree_with_the_reference() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, 8, &dev).unwrap();
        let n = RmsNorm {
            weight: w,
            eps: 1e-5,
        };
        let packs = Packs::default();
        let fast = Infer { packs: &packs };
        close(
            &fast.rms_norm(&n, &x).unwrap(),
            &Reference.rms_norm(&n, &x).unwrap(),
            1e-5,
        );
        close(
            &candle_nn::ops::rms_norm(&x, &n.weight, 1e-5).unwrap(),
            &Reference.rms_norm(&n, &x).unwrap(),
            1e-5,
        );
        close(
            &candle_nn::ops::softmax_last_dim(&x).unwrap(),
            &softmax_last(&x).unwrap(),
            1e-6,
        );
        let inv: Vec<f64> = (0..4).map(|i| 1.0 / 100f64.powf(i as f64 / 4.0)).collect();
        let (c, s) = rope_tables(&inv, 3, 5, DType::F32, &dev).unwrap();
        let want = rope(&x, &c, &s).unwrap();
        close(
            &candle_nn::rotary_emb::rope(&x, &c, &s).unwrap(),
            &want,
            1e-5,
        );
        let pos = PosCtx {
            batch: 2,
            len: 5,
            offset: 3,
            prompt_lens: None,
        };
        let step = Step {
            cos: &c,
            sin: &s,
            mask: None,
            pos: &pos,
        };
        close(&fast.rope(&x, &step).unwrap(), &want, 1e-5);
    }
}
