//! [`Exec`]: the one execution choice of a forward pass, and the ops it hands the decoder. Must
//! not compute anything itself.
use candle_core::DType;

use super::grad::GradOps;
use super::ops::{Grad, Infer, Packs};
use super::profile;
use crate::model::arch::decoder::{DecoderOps, Reference};

/// How one forward pass computes its ops, chosen once at its top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exec {
    /// Plain differentiable candle ops (`arch::ops`): the oracle, the f64 path, and gradient
    /// passes with [`GradOps::Composed`] or `Hooks::set_force_composed`.
    Reference,
    /// Inference kernels: nothing in the pass needs a gradient.
    Fast,
    /// Gradient nodes of the given kind (never [`GradOps::Composed`]).
    FastGrad(GradOps),
}

impl Exec {
    /// The choice for a pass in `dtype` that needs a gradient (`grad`) or not, where the
    /// caller may force the reference ops (`force_reference`) and asks for `grad_ops`.
    pub(crate) fn choose(
        dtype: DType,
        grad: bool,
        force_reference: bool,
        grad_ops: GradOps,
    ) -> Exec {
        let reference = force_reference || grad_ops == GradOps::Composed;
        if dtype == DType::F64 || (grad && reference) {
            Exec::Reference
        } else if grad {
            Exec::FastGrad(grad_ops)
        } else {
            Exec::Fast
        }
    }

    /// Runs `f` with the ops of this choice (timed per op when profiling is on).
    pub(crate) fn run<R>(self, packs: &Packs, f: impl FnOnce(&dyn DecoderOps) -> R) -> R {
        self.run_unprofiled(packs, |ops| {
            if profile::enabled() {
                f(&profile::Profiled(ops))
            } else {
                f(ops)
            }
        })
    }

    /// Runs `f` with the ops of this choice, never timed per op (for a caller that times the
    /// whole call as one section).
    pub(crate) fn run_unprofiled<R>(
        self,
        packs: &Packs,
        f: impl FnOnce(&dyn DecoderOps) -> R,
    ) -> R {
        match self {
            Exec::Reference => f(&Reference),
            Exec::Fast => f(&Infer { packs }),
            Exec::FastGrad(kind) => f(&Grad { packs, kind }),
        }
    }
}
