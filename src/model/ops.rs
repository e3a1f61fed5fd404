//! Building blocks shared by every architecture: RMSNorm, rotary embeddings, grouped-query
//! attention, the SwiGLU MLP and linear layers.
//!
//! Each op has three implementations: a *composed* one made of differentiable candle ops (the
//! reference, and the f64 path), a *fused* one for inference (candle-nn's fused `rms_norm`,
//! `softmax_last_dim` and `rope` have no backward and silently drop gradients), and *fused with
//! gradient* ([`super::fused`]: the fused forward plus a hand-written backward), used whenever a
//! gradient is needed. All compute norms and softmax in f32. Must not know about hooks or
//! architectures.
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Module, Tensor, D};

use super::cpu_infer;
use super::cpu_matmul::{self, PackedLinear};
use super::fused;
use super::Result;

/// The precision norms and softmax run in: f32, or f64 for f64 inputs.
pub(crate) fn upcast(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Which implementation of the ops to use for one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpMode {
    /// Differentiable composed ops.
    Composed,
    /// candle-nn fused kernels (no backward).
    Fused,
    /// Fused kernels with a hand-written backward ([`super::fused`]).
    FusedGrad,
}

/// A linear layer `y = x W^T + b` with `W` of shape `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// The weight packed for [`cpu_matmul`], built on the first CPU f32 inference call and
    /// shared by clones (the weights are frozen).
    packed: Arc<OnceLock<PackedLinear>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            packed: Arc::default(),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let lin = candle_nn::Linear::new(self.weight.clone(), self.bias.clone());
        Ok(lin.forward(x)?)
    }

    /// As [`Linear::forward`]; with [`OpMode::FusedGrad`] the gradient flows to `x` only.
    /// [`OpMode::Fused`] on an f32 CPU input without gradient uses the packed kernel of
    /// [`cpu_matmul`] when it is [enabled](cpu_matmul::enabled).
    pub fn forward_mode(&self, x: &Tensor, mode: OpMode) -> Result<Tensor> {
        match mode {
            OpMode::FusedGrad => Ok(fused::linear(x, &self.weight, self.bias.as_ref())?),
            OpMode::Fused => match self.forward_packed(x)? {
                Some(y) => Ok(y),
                None => self.forward(x),
            },
            OpMode::Composed => self.forward(x),
        }
    }

    /// The packed-kernel forward, or `None` where it does not apply (gradient, device,
    /// dtype, kernel switched off or unsupported).
    fn forward_packed(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if x.track_op()
            || x.dtype() != DType::F32
            || !x.device().is_cpu()
            || self.weight.dtype() != DType::F32
            || !self.weight.device().is_cpu()
            || !cpu_matmul::enabled()
        {
            return Ok(None);
        }
        let packed = match self.packed.get() {
            Some(p) => p,
            None => {
                let p = PackedLinear::from_tensors(&self.weight, self.bias.as_ref())?;
                let _ = self.packed.set(p);
                self.packed.get().expect("set above")
            }
        };
        packed.forward(x)
    }

    pub fn n_params(&self) -> usize {
        self.weight.elem_count() + self.bias.as_ref().map_or(0, |b| b.elem_count())
    }
}

/// Root-mean-square norm over the last dimension, computed in f32, scaled by `weight`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor, mode: OpMode) -> Result<Tensor> {
        let dtype = x.dtype();
        match mode {
            OpMode::Fused => match cpu_infer::add_rms_norm(x, None, &self.weight, self.eps)? {
                Some((_, normed)) => Ok(normed),
                None => Ok(candle_nn::ops::rms_norm(
                    &x.contiguous()?,
                    &self.weight,
                    self.eps as f32,
                )?),
            },
            OpMode::FusedGrad => Ok(fused::rms_norm(x, &self.weight, self.eps)?),
            OpMode::Composed => {
                let xf = x.to_dtype(upcast(dtype))?;
                let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                Ok(normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
            }
        }
    }
}

/// Softmax over the last dimension (of an f32 or f64 tensor).
pub(crate) fn softmax_last(x: &Tensor, mode: OpMode) -> Result<Tensor> {
    match mode {
        OpMode::Fused => Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?),
        OpMode::FusedGrad => Ok(fused::softmax_last_dim(x, None)?),
        OpMode::Composed => {
            // Shift by the (constant) row max for stability; softmax is shift-invariant so
            // detaching the max does not change the gradient.
            let max = x.max_keepdim(D::Minus1)?.detach();
            let e = x.broadcast_sub(&max)?.exp()?;
            Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
        }
    }
}

/// Rotary embedding tables for `len` positions starting at `offset`: `(cos, sin)`, each
/// `[len, head_dim / 2]` in `dtype`.
pub(crate) fn rope_tables(
    inv_freq: &[f64],
    offset: usize,
    len: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for p in offset..offset + len {
        for &f in inv_freq {
            // HF computes the angles in f32; do the same so long positions round alike.
            let angle = (p as f32) * (f as f32);
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let cos = Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Applies rotary embeddings (HF "rotate half" layout) to `x` of shape `[B, H, T, D]`.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: OpMode) -> Result<Tensor> {
    match mode {
        OpMode::Fused => Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?),
        OpMode::FusedGrad => Ok(fused::rope(x, cos, sin)?),
        OpMode::Composed => {
            let d = x.dim(D::Minus1)?;
            let x1 = x.narrow(D::Minus1, 0, d / 2)?;
            let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
            let (t, half) = cos.dims2()?;
            let cos = cos.reshape((1, 1, t, half))?;
            let sin = sin.reshape((1, 1, t, half))?;
            let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
            let b = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
            Ok(Tensor::cat(&[a, b], D::Minus1)?)
        }
    }
}

/// Scaled dot-product attention with grouped-query heads.
///
/// `q`: `[B, Hq, T, D]`, `k`/`v`: `[B, Hkv, S, D]`, `mask`: additive f32 `[B, 1, 1, T, S]`
/// or `None`. Returns `[B, T, Hq * D]`. Scores and softmax are computed in f32 (f64 for f64).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    mode: OpMode,
) -> Result<Tensor> {
    let (b, hq, t, d) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    let rep = hq / hkv;
    // Query heads h = g * rep + r share key/value head g: fold r into the time axis so no
    // key/value copies are needed.
    let q = q.contiguous()?.reshape((b, hkv, rep * t, d))?;
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(upcast(q.dtype()))?;
    let probs = match (mask, mode) {
        // The mask is a constant: the fused-with-gradient softmax adds it outside the graph.
        (Some(m), OpMode::FusedGrad) => fused::softmax_last_dim(
            &scores.reshape((b, hkv, rep, t, s))?,
            Some(&m.to_dtype(scores.dtype())?),
        )?
        .reshape((b, hkv, rep * t, s))?,
        (Some(m), _) => softmax_last(
            &scores
                .reshape((b, hkv, rep, t, s))?
                .broadcast_add(&m.to_dtype(scores.dtype())?)?
                .reshape((b, hkv, rep * t, s))?,
            mode,
        )?,
        (None, _) => softmax_last(&scores, mode)?,
    };
    let probs = probs.to_dtype(v.dtype())?;
    let out = probs.matmul(&v.contiguous()?)?; // [B, Hkv, rep*T, D]
    let out = out
        .reshape((b, hkv, rep, t, d))?
        .permute((0, 3, 1, 2, 4))?
        .reshape((b, t, hq * d))?;
    Ok(out)
}

/// The additive attention mask `[B, 1, 1, T, S]` (0 or a large negative number) for queries
/// at absolute positions `offset..offset+T` over keys `0..S`: causal, key padding
/// (`key_valid[b][s]`), optional sliding window. `None` when nothing is masked.
pub(crate) fn attention_mask(
    batch: usize,
    t: usize,
    offset: usize,
    key_valid: Option<&[Vec<bool>]>,
    sliding_window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let s = offset + t;
    let mut any = false;
    let mut m = vec![0f32; batch * t * s];
    for bi in 0..batch {
        for ti in 0..t {
            let qpos = offset + ti;
            for si in 0..s {
                let causal = si > qpos;
                let pad = key_valid.is_some_and(|kv| !kv[bi][si]);
                let window = sliding_window.is_some_and(|w| qpos >= si + w);
                if causal || pad || window {
                    m[(bi * t + ti) * s + si] = f32::MIN;
                    any = true;
                }
            }
        }
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(m, (batch, 1, 1, t, s), device)?))
}

/// The SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    /// Gate and up packed side by side for the fused CPU inference kernel, built on its first
    /// use and shared by clones (the weights are frozen).
    gate_up: Arc<OnceLock<cpu_infer::PackedGateUp>>,
}

impl Mlp {
    pub fn new(gate: Linear, up: Linear, down: Linear) -> Self {
        Self {
            gate,
            up,
            down,
            gate_up: Arc::default(),
        }
    }

    pub fn forward(&self, x: &Tensor, mode: OpMode) -> Result<Tensor> {
        if mode == OpMode::Fused {
            if let Some(h) = self.forward_gate_up_cpu(x)? {
                return self.down.forward_mode(&h, mode);
            }
        }
        let g = self.gate.forward_mode(x, mode)?.silu()?;
        let u = self.up.forward_mode(x, mode)?;
        self.down.forward_mode(&(g * u)?, mode)
    }

    /// `silu(gate(x)) * up(x)` by the fused CPU kernel, or `None` where it does not apply.
    fn forward_gate_up_cpu(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let cpu_f32 = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
        if !cpu_infer::enabled()
            || x.track_op()
            || !cpu_f32(x)
            || !cpu_f32(&self.gate.weight)
            || !cpu_f32(&self.up.weight)
            || self.gate.weight.dims() != self.up.weight.dims()
        {
            return Ok(None);
        }
        let packed = match self.gate_up.get() {
            Some(p) => p,
            None => {
                let p = cpu_infer::PackedGateUp::from_tensors(
                    &self.gate.weight,
                    self.gate.bias.as_ref(),
                    &self.up.weight,
                    self.up.bias.as_ref(),
                )?;
                let _ = self.gate_up.set(p);
                self.gate_up.get().expect("set above")
            }
        };
        packed.forward(x)
    }

    pub fn n_params(&self) -> usize {
        self.gate.n_params() + self.up.n_params() + self.down.n_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        let d: f32 = d.to_scalar().unwrap();
        assert!(d < tol, "max abs diff {d}");
    }

    #[test]
    fn fused_and_composed_agree() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, 8, &dev).unwrap();
        let n = RmsNorm {
            weight: w,
            eps: 1e-5,
        };
        close(
            &n.forward(&x, OpMode::Fused).unwrap(),
            &n.forward(&x, OpMode::Composed).unwrap(),
            1e-5,
        );
        close(
            &softmax_last(&x, OpMode::Fused).unwrap(),
            &softmax_last(&x, OpMode::Composed).unwrap(),
            1e-6,
        );
        let inv: Vec<f64> = (0..4).map(|i| 1.0 / 100f64.powf(i as f64 / 4.0)).collect();
        let (c, s) = rope_tables(&inv, 3, 5, DType::F32, &dev).unwrap();
        close(
            &rope(&x, &c, &s, OpMode::Fused).unwrap(),
            &rope(&x, &c, &s, OpMode::Composed).unwrap(),
            1e-5,
        );
    }

    #[test]
    fn rope_rotates_pairs_by_position_angle() {
        // A single pair (x1, x2) = (1, 0) at position p is rotated by p * f.
        let dev = Device::Cpu;
        let x = Tensor::new(&[1f32, 0.0], &dev)
            .unwrap()
            .reshape((1, 1, 1, 2))
            .unwrap();
        let (c, s) = rope_tables(&[0.5], 3, 1, DType::F32, &dev).unwrap();
        let y: Vec<f32> = rope(&x, &c, &s, OpMode::Composed)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            (y[0] - 1.5f32.cos()).abs() < 1e-6 && (y[1] - 1.5f32.sin()).abs() < 1e-6,
            "{y:?}"
        );
    }

    #[test]
    fn grouped_attention_matches_repeated_heads() {
        let dev = Device::Cpu;
        let (b, hq, hkv, t, d) = (2, 4, 2, 3, 4);
        let q = Tensor::randn(0f32, 1.0, (b, hq, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, hkv, t, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, hkv, t, d), &dev).unwrap();
        let mask = attention_mask(b, t, 0, None, None, &dev).unwrap();
        let got = attention(&q, &k, &v, mask.as_ref(), OpMode::Composed).unwrap();
        // Reference: explicit per-head loop.
        let mut heads = Vec::new();
        for h in 0..hq {
            let qh = q.narrow(1, h, 1).unwrap();
            let kh = k.narrow(1, h / (hq / hkv), 1).unwrap();
            let vh = v.narrow(1, h / (hq / hkv), 1).unwrap();
            let sc = (qh.matmul(&kh.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
            let causal: Vec<f32> = (0..t * t)
                .map(|i| {
                    if i % t > i / t {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let causal = Tensor::from_vec(causal, (1, 1, t, t), &dev).unwrap();
            let p = candle_nn::ops::softmax_last_dim(&sc.broadcast_add(&causal).unwrap()).unwrap();
            heads.push(p.matmul(&vh).unwrap()); // [B,1,T,D]
        }
        let want = Tensor::cat(&heads, 1)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, hq * d))
            .unwrap();
        close(&got, &want, 1e-5);
    }
}
