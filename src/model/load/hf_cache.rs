//! The local Hugging Face hub cache, read offline: `hf:ORG/NAME[@REVISION]` names a model that
//! `huggingface_hub` (or `transformers`) downloaded before. The cache is `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`,
//! as in `huggingface_hub`. A repository lives in `models--ORG--NAME/`: `refs/<branch or tag>`
//! holds a commit hash, `snapshots/<hash>/` the files of that commit (symlinks into `blobs/`).
//!
//! Only resolves names to a snapshot folder (or the single `.gguf` file in it); loading is
//! `hf.rs` / `gguf.rs`. Never touches the network.
use std::path::{Path, PathBuf};

/// A model named in the Hugging Face cache could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HfCacheError {
    /// The spec after `hf:` is not `ORG/NAME[@REVISION]`.
    #[error("`hf:{spec}`: {message} (expected hf:ORG/NAME or hf:ORG/NAME@REVISION)")]
    BadSpec {
        /// The text after `hf:`.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The cache folder does not exist.
    #[error("the Hugging Face cache {path} does not exist ({how}); download the model there first (e.g. `huggingface-cli download {repo}`) or set HF_HOME / HF_HUB_CACHE", path = .path.display())]
    NoCache {
        /// The folder looked at.
        path: PathBuf,
        /// Which variable (or default) chose it.
        how: String,
        /// The repository asked for.
        repo: String,
    },
    /// The repository is not in the cache.
    #[error("{repo} is not in the Hugging Face cache {path} (cached models: {cached})", path = .path.display(), cached = list_or_none(.cached))]
    NoRepo {
        /// The repository asked for.
        repo: String,
        /// The cache folder.
        path: PathBuf,
        /// The repositories that are cached.
        cached: Vec<String>,
    },
    /// The revision is not in the cache.
    #[error("{repo}: revision `{revision}` is not cached in {path} (cached refs: {refs}; snapshots: {snapshots})", path = .path.display(), refs = list_or_none(.refs), snapshots = list_or_none(.snapshots))]
    NoRevision {
        /// The repository.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The repository's folder in the cache.
        path: PathBuf,
        /// Cached branch/tag names.
        refs: Vec<String>,
        /// Cached commit hashes.
        snapshots: Vec<String>,
    },
    /// The snapshot has several `.gguf` files and no `config.json`: which one is meant?
    #[error("{path}: no config.json and several .gguf files ({files}); pass the file's path instead", path = .path.display(), files = .files.join(", "))]
    AmbiguousGguf {
        /// The snapshot folder.
        path: PathBuf,
        /// The `.gguf` files in it.
        files: Vec<String>,
    },
    /// A file of the cache could not be read.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The hub cache folder and how it was chosen (`$HF_HUB_CACHE`, `$HF_HOME/hub`, ...).
pub fn hub_cache_dir() -> (PathBuf, String) {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("HF_HUB_CACHE") {
        return (p, "$HF_HUB_CACHE".into());
    }
    if let Some(p) = var("HUGGINGFACE_HUB_CACHE") {
        return (p, "$HUGGINGFACE_HUB_CACHE".into());
    }
    if let Some(p) = var("HF_HOME") {
        return (p.join("hub"), "$HF_HOME/hub".into());
    }
    if let Some(p) = var("XDG_CACHE_HOME") {
        return (
            p.join("huggingface").join("hub"),
            "$XDG_CACHE_HOME/huggingface/hub".into(),
        );
    }
    let home = var("HOME").unwrap_or_else(|| PathBuf::from("."));
    (
        home.join(".cache").join("huggingface").join("hub"),
        "~/.cache/huggingface/hub".into(),
    )
}

/// A parsed `ORG/NAME[@REVISION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfRepoSpec {
    /// `ORG/NAME` (or `NAME` for the few un-namespaced repositories).
    pub repo: String,
    /// A branch, tag or commit hash; `main` when not given.
    pub revision: String,
}

impl HfRepoSpec {
    /// Parses the text after `hf:`. Each part of the name may hold letters, digits, `-`, `_`
    /// and `.` (not `..`), as on the hub.
    pub fn parse(spec: &str) -> Result<Self, HfCacheError> {
        let bad = |m: &str| HfCacheError::BadSpec {
            spec: spec.to_string(),
            message: m.to_string(),
        };
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.is_empty() || parts.len() > 2 {
            return Err(bad("the name has more than one `/`"));
        }
        for p in &parts {
            let ok_chars = p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if p.is_empty() || !ok_chars || p.contains("..") || p.starts_with('.') {
                return Err(bad(&format!(
                    "`{p}` is not a valid name (letters, digits, -, _ and .)"
                )));
            }
        }
        let rev_ok = revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if revision.is_empty()
            || !rev_ok
            || revision
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad(&format!("`{revision}` is not a valid revision")));
        }
        Ok(Self {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The repository's folder name in the cache: `models--ORG--NAME`.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

/// Resolves `ORG/NAME[@REVISION]` (the text after `hf:`) in the default cache
/// ([`hub_cache_dir`]) to a model path: the snapshot folder, or the one `.gguf` file in a
/// snapshot without `config.json`.
pub fn resolve(spec: &str) -> Result<PathBuf, HfCacheError> {
    let (cache, how) = hub_cache_dir();
    resolve_in(&cache, &how, spec)
}

/// [`resolve`] in the cache folder `cache` (`how` says where it came from, for messages).
pub fn resolve_in(cache: &Path, how: &str, spec: &str) -> Result<PathBuf, HfCacheError> {
    let spec = HfRepoSpec::parse(spec)?;
    if !cache.is_dir() {
        return Err(HfCacheError::NoCache {
            path: cache.to_path_buf(),
            how: how.to_string(),
            repo: spec.repo,
        });
    }
    let repo_dir = cache.join(spec.folder_name());
    if !repo_dir.is_dir() {
        return Err(HfCacheError::NoRepo {
            repo: spec.repo,
            path: cache.to_path_buf(),
            cached: cached_models(cache)?,
        });
    }
    let snapshot = snapshot_dir(&repo_dir, &spec)?;
    model_in_snapshot(&snapshot)
}

/// The models in a cache folder, as `ORG/NAME`, sorted.
pub fn cached_models(cache: &Path) -> Result<Vec<String>, HfCacheError> {
    let mut out: Vec<String> = read_dir_names(cache)?
        .into_iter()
        .filter_map(|n| n.strip_prefix("models--").map(|r| r.replace("--", "/")))
        .collect();
    out.sort();
    Ok(out)
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, HfCacheError> {
    let rd = std::fs::read_dir(dir).map_err(|e| HfCacheError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| HfCacheError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The snapshot folder of `spec.revision`: a ref (`refs/<revision>` holds the hash), a full
/// commit hash, or a unique prefix of at least 7 hex digits of a cached commit.
fn snapshot_dir(repo_dir: &Path, spec: &HfRepoSpec) -> Result<PathBuf, HfCacheError> {
    let snapshots = repo_dir.join("snapshots");
    let cached = if snapshots.is_dir() {
        read_dir_names(&snapshots)?
    } else {
        Vec::new()
    };
    let ref_file = repo_dir.join("refs").join(&spec.revision);
    let mut hash = None;
    if ref_file.is_file() {
        let text = std::fs::read_to_string(&ref_file).map_err(|e| HfCacheError::Io {
            path: ref_file.clone(),
            source: e,
        })?;
        let h = text.trim();
        if is_hex(h) {
            hash = Some(h.to_string());
        }
    }
    if hash.is_none() && spec.revision.len() >= 7 && is_hex(&spec.revision) {
        let matches: Vec<&String> = cached
            .iter()
            .filter(|c| c.starts_with(&spec.revision))
            .collect();
        if matches.len() == 1 {
            hash = Some(matches[0].clone());
        }
    }
    if let Some(h) = hash {
        let dir = snapshots.join(&h);
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let refs_dir = repo_dir.join("refs");
    let refs = if refs_dir.is_dir() {
        list_refs(&refs_dir, "")?
    } else {
        Vec::new()
    };
    Err(HfCacheError::NoRevision {
        repo: spec.repo.clone(),
        revision: spec.revision.clone(),
        path: repo_dir.to_path_buf(),
        refs,
        snapshots: cached,
    })
}

/// Ref names under `refs/` (nested ones such as `refs/pr/1` included), sorted.
fn list_refs(dir: &Path, prefix: &str) -> Result<Vec<String>, HfCacheError> {
    let mut out = Vec::new();
    for n in read_dir_names(dir)? {
        let p = dir.join(&n);
        let name = format!("{prefix}{n}");
        if p.is_dir() {
            out.extend(list_refs(&p, &format!("{name}/"))?);
        } else {
            out.push(name);
        }
    }
    Ok(out)
}

/// The snapshot itself when it holds `config.json` (or no `.gguf` file: the loader then says
/// what is missing), else its single `.gguf` file.
fn model_in_snapshot(snapshot: &Path) -> Result<PathBuf, HfCacheError> {
    if snapshot.join("config.json").exists() {
        return Ok(snapshot.to_path_buf());
    }
    let ggufs: Vec<String> = read_dir_names(snapshot)?
        .into_iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    match ggufs.len() {
        0 => Ok(snapshot.to_path_buf()),
        1 => Ok(snapshot.join(&ggufs[0])),
        _ => Err(HfCacheError::AmbiguousGguf {
            path: snapshot.to_path_buf(),
            files: ggufs,
        }),
    }
}

/// The display name of a snapshot folder of the cache (`.../models--ORG--NAME/snapshots/<hash>`):
/// `ORG/NAME@<first 7 digits of the hash>`, so two revisions never share a name; `None` for
/// other folders.
pub fn repo_of_snapshot(dir: &Path) -> Option<String> {
    let hash = dir.file_name()?.to_str()?;
    let parent = dir.parent()?;
    if parent.file_name()? != "snapshots" {
        return None;
    }
    let repo = parent.parent()?.file_name()?.to_str()?;
    let repo = repo.strip_prefix("models--")?.replace("--", "/");
    Some(format!("{repo}@{}", hash.get(..7).unwrap_or(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s = HfRepoSpec::parse("Qwen/Qwen2.5-0.5B@v1.0").unwrap();
        assert_eq!(
            (s.repo.as_str(), s.revision.as_str()),
            ("Qwen/Qwen2.5-0.5B", "v1.0")
        );
        assert_eq!(s.folder_name(), "models--Qwen--Qwen2.5-0.5B");
        assert_eq!(HfRepoSpec::parse("gpt2").unwrap().revision, "main");
        for bad in [
            "", "a/b/c", "../x", "a/..", "a b/c", "a/b@", "a/b@../x", "a/b@x//y",
        ] {
            assert!(HfRepoSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_of_snapshot_reads_the_folder_names() {
        let p = Path::new("/c/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/abc");
        assert_eq!(
            repo_of_snapshot(p).as_deref(),
            Some("HuggingFaceTB/SmolLM2-135M@abc")
        );
        assert_eq!(repo_of_snapshot(Path::new("/x/y")), None);
    }
}
