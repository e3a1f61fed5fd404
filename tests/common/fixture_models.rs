//! The generated tiny model fixtures (`tests/fixtures/models/<arch>`) and the relative error
//! the engine tests compare logits with (`#[path]`-included, like `tiny_model.rs`, by tests that
//! do not need the GUI harness of `mod.rs`). Test scaffolding only.
#![allow(dead_code)]
use std::path::PathBuf;

use candle_core::{DType, Tensor};

/// The fixture folder of one architecture family.
pub fn fixture(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(arch)
}

/// max |a - b| / max |b| (in f32; the shapes must match).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    assert_eq!(a.dims(), b.dims());
    let diff: f32 = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    diff / scale.max(1e-6)
}
