//! How far apart two tensors are: the largest absolute entry, the largest absolute difference,
//! and the relative error `max |a − b| / max |b|`, all in `f32` whatever the dtype; and an
//! assertion on the relative error.
use candle_core::{DType, Tensor};

/// max |a| over every entry, in f32.
pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// max |a − b| over every entry, in f32 (the shapes must broadcast-match as for `a - b`).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// max |a − b| / max |b| (in f32; the shapes must match).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    assert_eq!(a.dims(), b.dims());
    max_abs_diff(&a, &b) / max_abs(&b).max(1e-6)
}

/// Asserts `rel_err(a, b) < tol`, naming `what`.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let e = rel_err(a, b);
    assert!(e < tol, "{what}: relative error {e} >= {tol}");
}
