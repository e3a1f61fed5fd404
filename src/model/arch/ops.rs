//! The reference ops of the decoder, written with plain differentiable candle ops: RMSNorm,
//! rotary embeddings, grouped-query attention, the attention mask, and the layer structs they
//! run on ([`Linear`], [`RmsNorm`]). `decoder::Reference` runs the decoder with them: it is the
//! oracle the speed layer (`model::fast`) is tested against, the f64 path, and the path of
//! gradient passes with `GradOps::Composed` or `Hooks::set_force_composed`.
//!
//! Norms and softmax run in f32 (f64 for f64 inputs). Must not know about hooks, families or
//! the speed layer.
use candle_core::{DType, Device, Module, Tensor, D};

use crate::model::fast::quant::QMatrix;
use crate::model::Result;

/// The precision norms and softmax run in: f32, or f64 for f64 inputs.
pub(crate) fn upcast(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// A frozen weight matrix `[out, in]`: a dense tensor, or GGUF blocks kept quantized
/// (`--weights quantized`), whose products are the one op the reference takes from the speed
/// layer (`fast::quant`: dequantized tile by tile, so results match the dense weight's).
#[derive(Debug, Clone)]
pub(crate) enum Weight {
    Dense(Tensor),
    Quant(QMatrix),
}

impl Weight {
    /// The dense tensor, `None` for a quantized weight.
    pub fn dense(&self) -> Option<&Tensor> {
        match self {
            Weight::Dense(t) => Some(t),
            Weight::Quant(_) => None,
        }
    }

    /// `(out, in)`.
    pub fn dims2(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Dense(t) => Ok(t.dims2()?),
            Weight::Quant(q) => Ok(q.dims()),
        }
    }

    pub fn elem_count(&self) -> usize {
        self.dims2().map_or(0, |(o, i)| o * i)
    }

    /// `dy W` `[rows, in]` for `dy` `[..., out]` (leading dims flattened), without a graph: the
    /// gradient of `x W^T` with respect to `x`.
    pub fn backward_input(&self, dy: &Tensor) -> Result<Tensor> {
        let (out, _) = self.dims2()?;
        let rows = dy.elem_count() / out.max(1);
        let dy = dy.contiguous()?.reshape((rows, out))?;
        match self {
            Weight::Dense(w) => Ok(dy.matmul(w)?),
            Weight::Quant(q) => {
                let dt = dy.dtype();
                Ok(q.backward_input(&dy.to_dtype(DType::F32)?)?.to_dtype(dt)?)
            }
        }
    }

    /// Rows `ids` `[N]` (u32) of the matrix: `[N, in]` (an embedding lookup; a quantized
    /// weight dequantizes only these rows, in f32).
    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.index_select(ids, 0)?),
            Weight::Quant(q) => {
                let ids = ids.to_dtype(DType::U32)?.to_vec1::<u32>()?;
                Ok(q.rows(&ids)?)
            }
        }
    }
}

/// A linear layer `y = x W^T + b` with `W` of shape `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub weight: Weight,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A linear layer over a dense weight.
    #[allow(dead_code)] // for families and tests that build layers from tensors
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Dense(weight),
            bias,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) => {
                let lin = candle_nn::Linear::new(w.clone(), self.bias.clone());
                Ok(lin.forward(x)?)
            }
            Weight::Quant(q) => {
                let y = q.linear(x)?;
                match &self.bias {
                    Some(b) => Ok(y.broadcast_add(b)?),
                    None => Ok(y),
                }
            }
        }
    }

    pub fn n_params(&self) -> usize {
        self.weight.elem_count() + self.bias.as_ref().map_or(0, |b| b.elem_count())
    }

    /// The layer computing only output rows `rows` (in that order) of this one: a slice of a
    /// fused projection, or its rows reordered.
    pub fn take_rows(&self, rows: &[usize]) -> Result<Linear> {
        let pick = |t: &Tensor| -> Result<Tensor> {
            let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let ids = Tensor::from_vec(ids, rows.len(), t.device())?;
            Ok(t.index_select(&ids, 0)?.contiguous()?)
        };
        let weight = match &self.weight {
            Weight::Dense(t) => Weight::Dense(pick(t)?),
            Weight::Quant(q) => Weight::Quant(q.take_rows(rows)?),
        };
        let bias = self.bias.as_ref().map(pick).transpose()?;
        Ok(Linear { weight, bias })
    }
}

/// Root-mean-square norm over the last dimension, computed in f32, scaled by `weight`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let xf = x.to_dtype(upcast(dtype))?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
    }
}

/// Softmax over the last dimension (of an f32 or f64 tensor).
pub(crate) fn softmax_last(x: &Tensor) -> Result<Tensor> {
    // Shift by the (constant) row max for stability; softmax is shift-invariant so detaching
    // the max does not change the gradient.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// `scores + mask` (broadcast), or the scores themselves without a mask.
pub(crate) fn add_mask(scores: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    Ok(match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores.clone(),
    })
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
    rope_tables_scaled(inv_freq, inv_freq.len(), 1.0, offset, len, dtype, device)
}

/// [`rope_tables`] with the first `rotary` frequencies' cos and sin multiplied by `scale`
/// (LongRoPE's attention factor) and the rest the identity (cos 1, sin 0: the dimensions a
/// partial rotary embedding passes through).
pub(crate) fn rope_tables_scaled(
    inv_freq: &[f64],
    rotary: usize,
    scale: f64,
    offset: usize,
    len: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let scale = scale as f32;
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for p in offset..offset + len {
        for (i, &f) in inv_freq.iter().enumerate() {
            if i >= rotary {
                cos.push(1.0);
                sin.push(0.0);
                continue;
            }
            // HF computes the angles in f32; do the same so long positions round alike.
            let angle = (p as f32) * (f as f32);
            if scale == 1.0 {
                cos.push(angle.cos());
                sin.push(angle.sin());
            } else {
                cos.push(angle.cos() * scale);
                sin.push(angle.sin() * scale);
            }
        }
    }
    let cos = Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Applies rotary embeddings (HF "rotate half" layout) to `x` of shape `[B, H, T, D]`.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
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

/// Scaled dot-product attention with grouped-query heads, the softmax given by the caller.
///
/// `q`: `[B, Hq, T, D]`, `k`/`v`: `[B, Hkv, S, D]`, `mask`: additive f32 `[B, 1, 1, T, S]`
/// or `None`. Returns `[B, T, Hq * D]`. Scores are computed in f32 (f64 for f64) and handed to
/// `softmax(scores, mask)`, which must return the softmax over the last dimension of
/// `scores + mask`: scores `[B, Hkv, rep, T, S]` with a mask (converted to the scores' dtype),
/// `[B, Hkv, rep * T, S]` without.
pub(crate) fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    softmax: &dyn Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
) -> Result<Tensor> {
    let (b, hq, t, d) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    let rep = hq / hkv;
    // Query heads h = g * rep + r share key/value head g: fold r into the time axis so no
    // key/value copies are needed.
    let q = q.contiguous()?.reshape((b, hkv, rep * t, d))?;
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(upcast(q.dtype()))?;
    let probs = match mask {
        Some(m) => softmax(
            &scores.reshape((b, hkv, rep, t, s))?,
            Some(&m.to_dtype(scores.dtype())?),
        )?
        .reshape((b, hkv, rep * t, s))?,
        None => softmax(&scores, None)?,
    };
    let probs = probs.to_dtype(v.dtype())?;
    let out = probs.matmul(&v.contiguous()?)?; // [B, Hkv, rep*T, D]
    let out = out
        .reshape((b, hkv, rep, t, d))?
        .permute((0, 3, 1, 2, 4))?
        .reshape((b, t, hq * d))?;
    Ok(out)
}

/// [`attention_with`] with the reference softmax.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    attention_with(q, k, v, mask, &|s, m| softmax_last(&add_mask(s, m)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let d = crate::testing::max_abs_diff(a, b);
        assert!(d < tol, "max abs diff {d}");
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
        let y: Vec<f32> = rope(&x, &c, &s)
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
        let got = attention(&q, &k, &v, mask.as_ref()).unwrap();
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
