//! Named weight access for the model definitions: HF tensor names, checked shapes, and errors
//! that name the file and tensor. The same for safetensors folders and GGUF files (whose
//! tensors are renamed to HF names first). Must not know about families.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Shape, Tensor};
use candle_nn::VarBuilder;

use crate::model::arch::ops::{Linear, RmsNorm, Weight};
use crate::model::fast::quant::QMatrix;
use crate::model::{ModelError, Result};

/// Named weight access with errors that name the file and tensor.
pub(crate) struct Weights<'a> {
    vb: VarBuilder<'a>,
    /// The file each tensor lives in (sharded checkpoints), else `default_source`.
    sources: HashMap<String, PathBuf>,
    default_source: PathBuf,
    /// Tensors kept block-quantized (HF names), used by [`Weights::linear`] and
    /// [`Weights::weight`] instead of the dense ones.
    quantized: HashMap<String, QMatrix>,
}

impl<'a> Weights<'a> {
    pub fn new(
        vb: VarBuilder<'a>,
        sources: HashMap<String, PathBuf>,
        default_source: PathBuf,
    ) -> Self {
        Self {
            vb,
            sources,
            default_source,
            quantized: HashMap::new(),
        }
    }

    /// These weights with `quantized` tensors (HF names) held block-quantized.
    pub fn with_quantized(mut self, quantized: HashMap<String, QMatrix>) -> Self {
        self.quantized = quantized;
        self
    }

    /// The quantized tensor `name`, checked against `shape`, if it is held quantized.
    fn quantized(&self, shape: &Shape, name: &str) -> Result<Option<&QMatrix>> {
        let Some(q) = self.quantized.get(name) else {
            return Ok(None);
        };
        let (r, c) = q.dims();
        if shape.dims() != [r, c] {
            return Err(ModelError::BadFile {
                path: self.source(name).to_path_buf(),
                field: name.to_string(),
                message: format!("shape [{r}, {c}], expected {:?}", shape.dims()),
            });
        }
        Ok(Some(q))
    }

    /// A weight matrix `[out, inp]`: block-quantized if held so, else dense in the model dtype.
    pub fn weight<S: Into<Shape>>(&self, shape: S, name: &str) -> Result<Weight> {
        let shape: Shape = shape.into();
        match self.quantized(&shape, name)? {
            Some(q) => Ok(Weight::Quant(q.clone())),
            None => Ok(Weight::Dense(self.get(shape, name)?)),
        }
    }

    fn source(&self, name: &str) -> &Path {
        self.sources
            .get(name)
            .map(|p| p.as_path())
            .unwrap_or(&self.default_source)
    }

    /// Whether the checkpoint has a tensor `name` (dense or held quantized).
    pub fn contains(&self, name: &str) -> bool {
        self.quantized.contains_key(name) || self.vb.contains_tensor(name)
    }

    /// A tensor of the given shape, converted to the model dtype (a tensor held quantized is
    /// dequantized: code that needs a dense copy of a weight gets one).
    pub fn get<S: Into<Shape>>(&self, shape: S, name: &str) -> Result<Tensor> {
        let shape: Shape = shape.into();
        if let Some(q) = self.quantized(&shape, name)? {
            return q.dequantize();
        }
        if !self.vb.contains_tensor(name) {
            return Err(ModelError::BadFile {
                path: self.source(name).to_path_buf(),
                field: name.to_string(),
                message: format!("tensor missing (expected shape {:?})", shape.dims()),
            });
        }
        let t = self.vb.get(shape, name).map_err(|e| ModelError::BadFile {
            path: self.source(name).to_path_buf(),
            field: name.to_string(),
            message: e.to_string(),
        })?;
        super::validate::finite_weight(&t, self.source(name), name)?;
        Ok(t)
    }

    /// A linear layer `prefix.weight` `[out, inp]` (+ `prefix.bias` `[out]` if `bias`).
    pub fn linear(&self, prefix: &str, inp: usize, out: usize, bias: bool) -> Result<Linear> {
        let weight = self.weight((out, inp), &format!("{prefix}.weight"))?;
        let bias = if bias {
            Some(self.get(out, &format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// An RMSNorm `prefix.weight` `[dim]`.
    pub fn rms_norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: self.get(dim, &format!("{prefix}.weight"))?,
            eps,
        })
    }
}
