//! HF safetensors folders: `config.json`, `model.safetensors` or a sharded
//! `model.safetensors.index.json`, and `tokenizer.json` when present. Memory-maps the weights
//! read-only. Must not build models.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_nn::VarBuilder;

use super::config::ModelConfig;
use super::options::{check_dtype, LoadOptions};
use super::source::Source;
use super::weights::Weights;

use crate::model::tokenizer::TextTokenizer;
use crate::model::{ModelError, Result};

/// Opens the HF folder `dir`.
pub(super) fn open(dir: &Path, opts: &LoadOptions) -> Result<(Source, Weights<'static>)> {
    check_dtype(opts.dtype)?;
    let cfg_path = dir.join("config.json");
    let config_json = read_json(&cfg_path, "model config")?;
    let config = ModelConfig::from_json(&config_json, &cfg_path)?;
    let (files, sources, default_source) = weight_files(dir)?;
    let mut listed = Vec::new();
    for f in &files {
        // Safety: the file is memory-mapped read-only; steerlab never writes model files
        // while they are loaded.
        let one = unsafe { candle_core::safetensors::MmapedSafetensors::new(f) }.map_err(|e| {
            ModelError::BadFile {
                path: f.clone(),
                field: "-".into(),
                message: format!("not a valid safetensors file: {e}"),
            }
        })?;
        for (name, view) in one.tensors() {
            listed.push((name, view.dtype(), f.clone()));
        }
    }
    let names = listed.iter().map(|(n, d, f)| (n.as_str(), *d, f.as_path()));
    super::validate::checkpoint(names, &config, &cfg_path)?;
    // Safety: as above.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }?;
    let vb = VarBuilder::from_backend(Box::new(st), opts.dtype, opts.device.clone());
    let weights = Weights::new(vb, sources, default_source);
    // A snapshot of the HF cache is named by its repository, not its commit hash.
    let name = super::hf_cache::repo_of_snapshot(dir)
        .or_else(|| {
            dir.canonicalize()
                .ok()
                .and_then(|d| super::hf_cache::repo_of_snapshot(&d))
        })
        .unwrap_or_else(|| {
            dir.canonicalize()
                .unwrap_or_else(|_| dir.to_path_buf())
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        Some((TextTokenizer::from_hf_dir(dir)?, dir.join("tokenizer.json")))
    } else {
        None
    };
    let source = Source {
        config,
        config_json,
        name,
        tokenizer,
    };
    Ok((source, weights))
}

fn read_json(path: &Path, what: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
                what: what.to_string(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
        path: path.to_path_buf(),
        field: format!("line {}", e.line()),
        message: e.to_string(),
    })
}

/// The safetensors files of an HF folder and, for sharded checkpoints, which file holds
/// each tensor.
fn weight_files(dir: &Path) -> Result<(Vec<PathBuf>, HashMap<String, PathBuf>, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok((vec![single.clone()], HashMap::new(), single));
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.is_file() {
        return Err(ModelError::MissingFile {
            path: single,
            what: "weights (model.safetensors or model.safetensors.index.json)".into(),
        });
    }
    let index = read_json(&index_path, "safetensors index")?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::BadFile {
            path: index_path.clone(),
            field: "weight_map".into(),
            message: "missing or not an object".into(),
        })?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut sources = HashMap::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::BadFile {
            path: index_path.clone(),
            field: format!("weight_map.{name}"),
            message: "not a file name".into(),
        })?;
        let p = dir.join(file);
        if !files.contains(&p) {
            if !p.is_file() {
                return Err(ModelError::MissingFile {
                    path: p,
                    what: format!("shard listed in {}", index_path.display()),
                });
            }
            files.push(p.clone());
        }
        sources.insert(name.clone(), p);
    }
    Ok((files, sources, index_path))
}
