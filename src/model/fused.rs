//! Differentiable fused ops: the forward runs the fast kernel (candle-nn's fused RMSNorm,
//! softmax and RoPE, or a matmul on detached inputs) and a custom op attaches a hand-written
//! backward composed of tensor ops. candle-nn's own fused kernels have no backward, and the
//! composed versions build many autograd nodes; the linear layer also exists here because
//! candle's matmul backward always computes the gradient of the (frozen) weight too.
//!
//! Each function returns the plain fused result when `x` carries no gradient. The backward
//! formulas are checked against the composed ops in `tests/fused_ops.rs`. Must not know about
//! models, hooks or training.
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor, D};

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
        self.out
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{}: poisoned lock", self.name)))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: forward ran twice", self.name)))
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
fn with_grad(
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
        // y = n ⊙ w with n = x·r, r = 1/√(mean(x²)+ε):  dx = r·(g − n·mean(g ⊙ n)), g = dy ⊙ w
        let up = upcast(x.dtype());
        let xf = x.to_dtype(up)?;
        let r = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
            .sqrt()?
            .recip()?;
        let n = xf.broadcast_mul(&r)?;
        let g = dy.to_dtype(up)?.broadcast_mul(&w.to_dtype(up)?)?;
        let dot = (&g * &n)?.mean_keepdim(D::Minus1)?;
        (g - n.broadcast_mul(&dot)?)?
            .broadcast_mul(&r)?
            .to_dtype(x.dtype())
    })
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
        let out = w.dim(0)?;
        let rows = dy.elem_count() / out.max(1);
        dy.contiguous()?
            .reshape((rows, out))?
            .matmul(&w)?
            .reshape(x.shape())
    })
}

/// Which implementation gradient-carrying forward passes use ([`crate::model::Model::set_grad_ops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradOps {
    /// The fused kernels of this module, with their hand-written backward.
    #[default]
    Fused,
    /// Ops composed of differentiable candle primitives (the reference).
    Composed,
}
