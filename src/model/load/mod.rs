//! Reading models from disk: `config.json` parsing ([`config`]), HF safetensors folders
//! (`hf.rs`), the local Hugging Face hub cache ([`hf_cache`]: `hf:ORG/NAME[@REV]`), GGUF files ([`gguf`], quantized or not, dequantized on load), and the load
//! options. Produces a [`Source`] and named [`Weights`] that `Model::build` turns into blocks
//! through `model::arch`. Must not run models or know which weights a family has.
pub mod config;
mod family_config;
mod gemma_config;
pub mod gguf;
pub mod gguf_check;
mod gguf_gemma;
mod hf;
pub mod hf_cache;
mod options;
mod source;
pub(crate) mod validate;
mod weights;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub(crate) use options::check_dtype;
pub use options::{device_name, dtype_name, parse_device, parse_dtype, LoadOptions, WeightStorage};
pub(crate) use source::Source;
pub(crate) use weights::Weights;

use crate::model::tokenizer::TextTokenizer;
use crate::model::{ModelError, Result};
use config::ModelConfig;

/// Returns heap memory freed during loading (the tokenizer's build scaffolding) to the
/// operating system, so that it does not add to the peak resident size when the weights are
/// allocated after it (glibc keeps freed small blocks otherwise). A no-op off glibc.
pub(crate) fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory held by the allocator; no pointer is
    // touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Opens an HF folder (`config.json` + safetensors) or a `.gguf` file.
pub(crate) fn open(path: &Path, opts: &LoadOptions) -> Result<(Source, Weights<'static>)> {
    if !path.exists() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            what: "model (an HF folder or a .gguf file)".into(),
        });
    }
    if path.is_dir() {
        return hf::open(path, opts);
    }
    let is_gguf = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if is_gguf {
        check_dtype(opts.dtype)?;
        let quantized = opts.weights.keeps_quantized(&opts.device, opts.dtype);
        let c = gguf::read_gguf_with(path, &opts.device, opts.dtype, quantized)?;
        let config = ModelConfig::from_json(&c.config, path)?;
        let vb = VarBuilder::from_tensors(c.tensors, opts.dtype, &opts.device);
        let weights =
            Weights::new(vb, HashMap::new(), path.to_path_buf()).with_quantized(c.quantized);
        let source = Source {
            config,
            config_json: c.config,
            name: c.name,
            tokenizer: Some((c.tokenizer, path.to_path_buf())),
        };
        return Ok((source, weights));
    }
    Err(ModelError::BadFile {
        path: path.to_path_buf(),
        field: "-".into(),
        message: "expected an HF model folder (config.json + model.safetensors) or a .gguf file"
            .into(),
    })
}

/// An HF-style config and tensors with HF names held in memory (tests, converters); `name`
/// stands in for a file name in error messages.
pub(crate) fn from_tensors(
    config_json: &serde_json::Value,
    tensors: HashMap<String, Tensor>,
    tokenizer: Option<TextTokenizer>,
    name: &str,
    device: &Device,
    dtype: DType,
) -> Result<(Source, Weights<'static>)> {
    check_dtype(dtype)?;
    let src = PathBuf::from(name);
    let config = ModelConfig::from_json(config_json, &src)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let weights = Weights::new(vb, HashMap::new(), src.clone());
    let source = Source {
        config,
        config_json: config_json.clone(),
        name: name.to_string(),
        tokenizer: tokenizer.map(|t| (t, src)),
    };
    Ok((source, weights))
}
