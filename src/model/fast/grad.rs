//! Gradient nodes: single ops whose forward runs a fast kernel (candle-nn's fused RMSNorm,
//! softmax and RoPE, or a matmul on detached inputs) and to which a custom op attaches a
//! hand-written backward composed of tensor ops (or a [`super::kernels`] kernel). candle-nn's
//! own fused kernels have no backward, and the composed versions build many autograd nodes;
//! the linear layer also exists here because candle's matmul backward always computes the
//! gradient of the (frozen) weight too.
//! [`attention`] is the whole scaled-dot-product attention as one node (probabilities saved by
//! the forward), and the `*_backward` functions are shared with the whole-block op
//! (`block_grad.rs`). The gradient passes of [`GradOps::Fused`] and
//! [`GradOps::FusedAttention`] are made of these nodes.
//!
//! Each function returns the plain forward result when no input carries a gradient. The
//! backward formulas are checked against the reference (composed) ops in `tests/fused_ops.rs`.
//! Must not know about models, hooks or training.
use std::sync::Mutex;

use super::profile;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Storage, Tensor, D,
};

/// A gradient function `(x, y, dy) -> dx`.
type BwdFn = Box<dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync>;

/// The custom op that attaches a backward to a precomputed output: its forward hands back `y`
/// (computed without a graph; one copy of the buffer) and then drops its own reference to `y`,
/// its backward calls `bwd`.
struct WithGrad {
    name: &'static str,
    out: Mutex<Option<Tensor>>,
    bwd: BwdFn,
}

impl WithGrad {
    fn take_out(&self) -> candle_core::Result<Tensor> {
        take(&self.out, self.name)
    }
}

impl CustomOp1 for WithGrad {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, _s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = self.take_out()?;
        let (st, layout) = y.storage_and_layout();
        match &*st {
            Storage::Cpu(c) => Ok((c.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("{}: output is not on the CPU", self.name),
        }
    }

    fn cuda_fwd(&self, _s: &CudaStorage, _l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let y = self.take_out()?;
        let (st, layout) = y.storage_and_layout();
        match &*st {
            Storage::Cuda(c) => Ok((c.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("{}: output is not on the GPU", self.name),
        }
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some((self.bwd)(x, y, dy)?))
    }
}

/// Returns `y` (already computed from `x` without a graph) as a node whose gradient with respect
/// to `x` is `bwd(x, y, dy)`. Without gradient tracking on `x`, returns `y` itself.
pub(crate) fn with_grad(
    name: &'static str,
    x: &Tensor,
    y: Tensor,
    bwd: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        return Ok(y);
    }
    // The op copies y's whole buffer: make sure it holds exactly y.
    let y = if y.is_contiguous() && y.layout().start_offset() == 0 {
        y
    } else {
        y.copy()?
    };
    x.apply_op1(WithGrad {
        name,
        out: Mutex::new(Some(y)),
        bwd: Box::new(bwd),
    })
}

/// The precision norms and softmax gradients are computed in (f32; f64 for f64).
fn upcast(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// RMSNorm over the last dimension scaled by a frozen `weight`: candle-nn's fused kernel with a
/// backward with respect to `x` (computed in f32). `weight` gets no gradient.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let y = candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32)?;
    let w = weight.clone();
    with_grad("rms-norm-grad", x, y, move |x, _y, dy| {
        rms_norm_backward(x, &w, eps, dy)
    })
}

/// The gradient with respect to `x` of RMSNorm `y = x / sqrt(mean(x^2) + eps) * weight` (last
/// dimension), given `dy`: computed in f32 (f64 for f64) and returned in `x`'s dtype.
pub fn rms_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    eps: f64,
    dy: &Tensor,
) -> candle_core::Result<Tensor> {
    if let Some(dx) = super::kernels::rms_norm_bwd(x, weight, dy, None, eps)? {
        return Ok(dx);
    }
    // y = n * w with n = x r, r = 1/sqrt(mean(x^2)+eps):  dx = r (g - n mean(g * n)), g = dy * w
    let up = upcast(x.dtype());
    let xf = x.to_dtype(up)?;
    let r = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let n = xf.broadcast_mul(&r)?;
    let g = dy.to_dtype(up)?.broadcast_mul(&weight.to_dtype(up)?)?;
    let dot = (&g * &n)?.mean_keepdim(D::Minus1)?;
    (g - n.broadcast_mul(&dot)?)?
        .broadcast_mul(&r)?
        .to_dtype(x.dtype())
}

/// Softmax over the last dimension of `x + mask` (`mask`: an additive constant broadcast to
/// `x`, or none): candle-nn's fused kernel with the backward `dx = y ⊙ (dy − Σ dy ⊙ y)`.
pub fn softmax_last_dim(x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let z = match mask {
        // The mask is a constant: add it outside the graph.
        Some(m) => x.detach().broadcast_add(m)?,
        None => x.detach(),
    };
    let y = candle_nn::ops::softmax_last_dim(&z.contiguous()?)?;
    with_grad("softmax-grad", x, y, |_x, y, dy| {
        let s = (dy * y)?.sum_keepdim(D::Minus1)?;
        dy.broadcast_sub(&s)? * y
    })
}

/// `log softmax(logits)[i, targets[i]]` for `logits` `[N, V]` (f32 or f64) and `targets` `[N]`
/// (u32): the per-token log-probabilities of a language-model loss, as one node. The forward
/// keeps only the log-normaliser `[N, 1]`; the backward is `dy (onehot - softmax)`, formed in
/// one pass (softmax recomputed from the saved logits) plus a scatter of `dy` at the targets,
/// where the composed `log_softmax` + `gather` leave a dozen full `[N, V]` buffers and a
/// scatter into zeros in the graph. On a GPU both directions are single kernels
/// ([`super::kernels::xent_fwd`], [`super::kernels::xent_bwd`]).
pub fn target_logprobs(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let x = logits.detach();
    let (picked, lse) = logprob_stats(&x, targets)?;
    let targets = targets.clone();
    with_grad("target-logprob-grad", logits, picked, move |x, _y, dy| {
        logprob_grad(x, &targets, &lse, dy)
    })
}

/// `log softmax(hidden Wᵀ)[i, targets[i]]` for final-norm hidden states `hidden` `[N, H]`, the
/// frozen LM-head `weight` `[V, H]` and `targets` `[N]` (u32): the LM head and
/// [`target_logprobs`] as one node, returned in f32 (`[N]`). The logits stay in the model's
/// dtype (bf16 logits are never widened into an f32 copy: the kernels read them directly), and
/// the backward hands autograd only the `[N, H]` gradient `dlogits W`, where separate nodes
/// would each accumulate an `[N, V]` gradient.
pub fn head_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    let logits = hidden.detach().matmul(&weight.t()?)?;
    head_logprobs_from(hidden, logits, weight, targets)
}

/// [`head_logprobs`] with the logits `hidden Wᵀ` already computed (without a graph) by the
/// caller's own kernel.
pub(crate) fn head_logprobs_from(
    hidden: &Tensor,
    logits: Tensor,
    weight: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    let w = weight.clone();
    head_logprobs_with(hidden, logits, targets, move |dlogits| dlogits.matmul(&w))
}

/// [`head_logprobs_from`] for a head whose weight is applied by the caller: `head_bwd(dlogits)`
/// returns `dlogits W` `[N, H]` (a quantized head multiplies block by block).
pub(crate) fn head_logprobs_with(
    hidden: &Tensor,
    logits: Tensor,
    targets: &Tensor,
    head_bwd: impl Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
) -> candle_core::Result<Tensor> {
    let (picked, lse) = {
        let _s = profile::span(hidden.device(), "fwd: log-softmax");
        logprob_stats(&logits, targets)?
    };
    let picked = picked.to_dtype(upcast(logits.dtype()))?;
    let targets = targets.clone();
    with_grad("head-logprob-grad", hidden, picked, move |x, _y, dy| {
        let dlogits = {
            let _s = profile::span(x.device(), "bwd: log-softmax");
            logprob_grad(&logits, &targets, &lse, dy)?.to_dtype(logits.dtype())?
        };
        let _s = profile::span(x.device(), "bwd: lm head");
        head_bwd(&dlogits)?.to_dtype(x.dtype())
    })
}

/// `(log p[i, targets[i]] [N], log-normaliser [N, 1])` of `logits` `[N, V]`, computed in f32
/// (f64 for f64) whatever the logits' dtype.
fn logprob_stats(logits: &Tensor, targets: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    if let Some(st) = super::kernels::xent_fwd(logits, targets)? {
        let picked = st.narrow(1, 1, 1)?.squeeze(1)?.contiguous()?;
        return Ok((picked, st.narrow(1, 0, 1)?.contiguous()?));
    }
    let x = logits.to_dtype(upcast(logits.dtype()))?;
    let max = x.max_keepdim(D::Minus1)?;
    let lse = (x
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let idx = targets.unsqueeze(1)?.contiguous()?;
    let picked = (x.gather(&idx, 1)? - &lse)?.squeeze(1)?;
    Ok((picked, lse))
}

/// The gradient `dy (onehot(targets) - softmax(logits))` `[N, V]`, from the log-normaliser of
/// [`logprob_stats`]: in the logits' dtype from the kernel, in f32 (f64) from the composed ops.
fn logprob_grad(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    dy: &Tensor,
) -> candle_core::Result<Tensor> {
    if let Some(dx) = super::kernels::xent_bwd(logits, targets, lse, dy)? {
        return Ok(dx);
    }
    let x = logits.to_dtype(upcast(logits.dtype()))?;
    let dy = dy.unsqueeze(1)?.to_dtype(x.dtype())?;
    let idx = targets.unsqueeze(1)?.contiguous()?;
    let p = x.broadcast_sub(lse)?.exp()?;
    p.broadcast_mul(&dy.neg()?)?.scatter_add(&idx, &dy, 1)
}

/// Rotary embedding (HF "rotate half" layout) of `x` `[B, H, T, D]` with tables `cos`, `sin`
/// `[T, D/2]`: candle-nn's fused kernel; the backward is the inverse rotation (`sin` negated).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let y = candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?;
    let (cos, sin) = (cos.clone(), sin.clone());
    with_grad("rope-grad", x, y, move |_x, _y, dy| {
        candle_nn::rotary_emb::rope(&dy.contiguous()?, &cos, &sin.neg()?)
    })
}

/// `x Wᵀ + b` with a frozen `weight` `[out, in]` (and bias): the gradient flows to `x` only
/// (`dx = dy W`), where candle's matmul backward would also compute the unused weight gradient.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    use candle_core::Module;
    let lin = candle_nn::Linear::new(weight.clone(), bias.cloned());
    let y = lin.forward(&x.detach())?;
    let w = weight.clone();
    with_grad("linear-grad", x, y, move |x, _y, dy| {
        linear_backward(&w, dy)?.reshape(x.shape())
    })
}

/// The gradient `dy W` `[rows, in]` of `x Wt + b` with respect to `x`, for `dy` `[..., out]`
/// and `weight` `[out, in]` (the leading dims of `dy` are flattened).
pub fn linear_backward(weight: &Tensor, dy: &Tensor) -> candle_core::Result<Tensor> {
    let out = weight.dim(0)?;
    let rows = dy.elem_count() / out.max(1);
    dy.contiguous()?.reshape((rows, out))?.matmul(weight)
}

/// A gradient function of three inputs: `dy -> (dx1, dx2, dx3)` (the saved inputs are captured).
type Bwd3Fn = Box<
    dyn Fn(&Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)>
        + Send
        + Sync,
>;

/// [`WithGrad`] for three inputs.
struct WithGrad3 {
    name: &'static str,
    out: Mutex<Option<Tensor>>,
    bwd: Bwd3Fn,
}

impl CustomOp3 for WithGrad3 {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = take(&self.out, self.name)?;
        let (st, layout) = y.storage_and_layout();
        match &*st {
            Storage::Cpu(c) => Ok((c.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("{}: output is not on the CPU", self.name),
        }
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let y = take(&self.out, self.name)?;
        let (st, layout) = y.storage_and_layout();
        match &*st {
            Storage::Cuda(c) => Ok((c.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("{}: output is not on the GPU", self.name),
        }
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        _c: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        (self.bwd)(dy)
    }
}

fn take(out: &Mutex<Option<Tensor>>, name: &str) -> candle_core::Result<Tensor> {
    out.lock()
        .map_err(|_| candle_core::Error::Msg(format!("{name}: poisoned lock")))?
        .take()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name}: forward ran twice")))
}

/// What the attention backward needs, saved by [`attention_forward`]: the (detached) inputs in
/// the grouped layout and the softmax probabilities.
#[derive(Debug, Clone)]
pub struct AttnSaved {
    /// Queries `[B, Hkv, rep * T, D]` (query head `g * rep + r` folded into the time axis).
    q: Tensor,
    /// Keys `[B, Hkv, S, D]`.
    k: Tensor,
    /// Values `[B, Hkv, S, D]`.
    v: Tensor,
    /// Softmax probabilities `[B, Hkv, rep * T, S]`, f32 (f64 for f64).
    p: Tensor,
    /// `(B, Hq, Hkv, T, S, D)`.
    dims: (usize, usize, usize, usize, usize, usize),
}

/// Scaled dot-product attention with grouped-query heads, without a graph, saving what the
/// backward needs. `q` `[B, Hq, T, D]`, `k`/`v` `[B, Hkv, S, D]`, `mask` additive `[B, 1, 1,
/// T, S]` (f32) or none. Returns `[B, T, Hq * D]`; the same kernels, in the same order, as the
/// inference attention of the engine (scores and softmax in f32).
pub fn attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<(Tensor, AttnSaved)> {
    let (b, hq, t, d) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    if hkv == 0 || hq % hkv != 0 {
        candle_core::bail!("attention: {hq} query heads are not a multiple of {hkv} key heads");
    }
    let rep = hq / hkv;
    let q = q.detach().contiguous()?.reshape((b, hkv, rep * t, d))?;
    let (k, v) = (k.detach(), v.detach().contiguous()?);
    let scale = 1.0 / (d as f64).sqrt();
    let up = upcast(q.dtype());
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(up)?;
    let z = match mask {
        Some(m) => scores
            .reshape((b, hkv, rep, t, s))?
            .broadcast_add(&m.to_dtype(up)?)?
            .reshape((b, hkv, rep * t, s))?,
        None => scores,
    };
    let p = candle_nn::ops::softmax_last_dim(&z.contiguous()?)?;
    let out = p.to_dtype(v.dtype())?.matmul(&v)?; // [B, Hkv, rep*T, D]
    let y = out
        .reshape((b, hkv, rep, t, d))?
        .permute((0, 3, 1, 2, 4))?
        .reshape((b, t, hq * d))?;
    let saved = AttnSaved {
        q,
        k,
        v,
        p,
        dims: (b, hq, hkv, t, s, d),
    };
    Ok((y, saved))
}

/// The gradients `(dq [B, Hq, T, D], dk, dv [B, Hkv, S, D])` of [`attention_forward`]'s output
/// given `dy` `[B, T, Hq * D]`: `dV = Pt dO`, `dP = dO Vt`, `dS = P (dP - rowsum(dP P))` (in
/// f32), `dQ = scale dS K`, `dK = scale dSt Q`; the query heads sharing a key head are summed
/// by the grouped layout.
pub fn attention_backward(
    saved: &AttnSaved,
    dy: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let AttnSaved { q, k, v, p, dims } = saved;
    let (b, hq, hkv, t, _s, d) = *dims;
    let rep = hq / hkv;
    let dt = v.dtype();
    let dout = dy
        .reshape((b, t, hkv, rep, d))?
        .permute((0, 2, 3, 1, 4))?
        .contiguous()?
        .reshape((b, hkv, rep * t, d))?
        .to_dtype(dt)?;
    let dv = p.to_dtype(dt)?.t()?.matmul(&dout)?;
    let dp = dout.matmul(&v.t()?)?;
    let scale = 1.0 / (d as f64).sqrt();
    let ds = match super::kernels::softmax_bwd(p, &dp, scale)? {
        Some(ds) => ds.to_dtype(q.dtype())?,
        None => {
            let dp = dp.to_dtype(p.dtype())?;
            let row = (&dp * p)?.sum_keepdim(D::Minus1)?;
            ((dp.broadcast_sub(&row)? * p)? * scale)?.to_dtype(q.dtype())?
        }
    };
    let dq = ds.matmul(k)?.reshape((b, hq, t, d))?;
    let dk = ds.t()?.matmul(q)?;
    Ok((dq, dk, dv))
}

/// Scaled dot-product attention (see [`attention_forward`]) as one autograd node with the
/// hand-written [`attention_backward`], in place of the composed scores / mask / softmax / product
/// chain. Without gradient tracking on `q`, `k` or `v`, returns the plain result.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (y, saved) = attention_forward(q, k, v, mask)?;
    if !(q.track_op() || k.track_op() || v.track_op()) {
        return Ok(y);
    }
    let y = if y.is_contiguous() && y.layout().start_offset() == 0 {
        y
    } else {
        y.copy()?
    };
    let (tq, tk, tv) = (q.track_op(), k.track_op(), v.track_op());
    q.apply_op3(
        k,
        v,
        WithGrad3 {
            name: "attention-grad",
            out: Mutex::new(Some(y)),
            bwd: Box::new(move |dy| {
                let (dq, dk, dv) = attention_backward(&saved, dy)?;
                Ok((tq.then_some(dq), tk.then_some(dk), tv.then_some(dv)))
            }),
        },
    )
}

/// Which implementation gradient-carrying forward passes use
/// ([`crate::model::Model::set_grad_ops`]; the choice is made in `fast::Exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradOps {
    /// One gradient node per op (this module: RMSNorm, RoPE, softmax, linear), each a fast
    /// forward with a hand-written backward. (The name is the `--grad-ops` flag's.)
    Fused,
    /// Ops composed of differentiable candle primitives (the reference).
    Composed,
    /// As `Fused`, with the whole attention (scores, mask, softmax, product) one node:
    /// [`attention`].
    FusedAttention,
    /// One node per transformer block whose input carries a gradient (`block_grad.rs`): the
    /// block runs by the inference kernels saving its activations, and a hand-written backward
    /// returns the gradient with respect to the block input only (weights are frozen). Blocks
    /// with hooks inside (attention or MLP outputs), a KV cache or an input without gradient
    /// fall back to `FusedAttention`.
    #[default]
    Block,
}

impl GradOps {
    /// Every setting, in the order of the `--grad-ops` flag.
    pub const ALL: [GradOps; 4] = [
        GradOps::Fused,
        GradOps::Composed,
        GradOps::FusedAttention,
        GradOps::Block,
    ];

    /// The flag spelling: `fused`, `composed`, `fused-attention` or `block`.
    pub fn name(self) -> &'static str {
        match self {
            GradOps::Fused => "fused",
            GradOps::Composed => "composed",
            GradOps::FusedAttention => "fused-attention",
            GradOps::Block => "block",
        }
    }
}
