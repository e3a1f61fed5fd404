//! The vectors a server may apply, by name: read once from a folder (`--vectors DIR`: each
//! `NAME.safetensors` or `NAME.gguf` directly inside it) or handed over by the app, checked
//! against the model, and turned into per-request hooks. Requests can only name a vector; they
//! can never reach the file system.
use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use serde_json::{json, Value};

use crate::model::{EditMode, HookPoint, Hooks, Intervention, Model, Positions};
use crate::steer::SteeringVector;

use super::request::{looks_like_path, SteerPositions, SteerSpec};
use super::{Result, ServeError};

/// Most vectors one folder may hold.
pub const MAX_VECTORS: usize = 1024;

/// One servable vector: its metadata and its directions as tensors on the model's device.
#[derive(Debug)]
struct Entry {
    vector: SteeringVector,
    positions: SteerPositions,
    mode: EditMode,
    points: Vec<(HookPoint, Tensor)>,
}

/// What a request's steering resolved to, echoed in the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The vector name.
    pub vector: String,
    /// Multiplier.
    pub scale: f64,
    /// Positions used.
    pub positions: SteerPositions,
    /// Intervention mode used.
    pub mode: EditMode,
    /// Blocks whose output it changes.
    pub layers: Vec<usize>,
}

impl Applied {
    /// The JSON object of the response's `steering.applied` list.
    pub fn to_json(&self) -> Value {
        json!({
            "vector": self.vector,
            "scale": self.scale,
            "positions": self.positions.name(),
            "mode": self.mode.name(),
            "layers": self.layers,
        })
    }
}

/// Vectors by name.
#[derive(Debug, Default)]
pub struct VectorStore {
    entries: BTreeMap<String, Entry>,
}

/// True for names a request may use: letters, digits, `_`, `-`, `.` (no path pieces).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !looks_like_path(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `name` made servable: characters other than letters, digits, `_`, `-` become `_`, runs of
/// dots are collapsed, and the result is cut to 64 characters (`vector` when nothing is left).
pub fn servable_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else if c == '.' && !out.ends_with('.') && !out.is_empty() {
            '.'
        } else {
            '_'
        };
        if out.len() < 64 {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('.').to_string();
    if valid_name(&out) {
        out
    } else {
        "vector".into()
    }
}

impl VectorStore {
    /// No vectors (requests without `steering` still work).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads every `*.safetensors` and `*.gguf` file directly inside `dir` (not below it),
    /// named by its file stem; each must fit `model`. Fails naming the file that does not.
    pub fn from_dir(dir: &Path, model: &Model) -> Result<Self> {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| ServeError::Vectors(format!("{}: {e}", dir.display())))?;
        let mut named = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| ServeError::Vectors(format!("{}: {e}", dir.display())))?;
            let path = ent.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("safetensors") | Some("gguf")) {
                continue;
            }
            if !path.is_file() {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !valid_name(stem) {
                return Err(ServeError::Vectors(format!(
                    "{}: the name `{stem}` can not be served (use letters, digits, _ - .)",
                    path.display()
                )));
            }
            if named.len() >= MAX_VECTORS {
                return Err(ServeError::Vectors(format!(
                    "{}: more than {MAX_VECTORS} vectors",
                    dir.display()
                )));
            }
            let v = SteeringVector::load_any(&path)
                .map_err(|e| ServeError::Vectors(format!("{}: {e}", path.display())))?;
            named.push((stem.to_string(), v));
        }
        Self::from_vectors(named, model)
    }

    /// Builds the store from in-memory vectors (the app's), each checked against `model`.
    pub fn from_vectors(named: Vec<(String, SteeringVector)>, model: &Model) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (name, vector) in named {
            if !valid_name(&name) {
                return Err(ServeError::Vectors(format!(
                    "the name `{name}` can not be served (use letters, digits, _ - .)"
                )));
            }
            if entries.contains_key(&name) {
                return Err(ServeError::Vectors(format!(
                    "two vectors are named `{name}` (e.g. {name}.safetensors and {name}.gguf)"
                )));
            }
            vector
                .check_model(model.hidden_size(), model.n_layers())
                .map_err(|e| ServeError::Vectors(format!("{name}: {e}")))?;
            let positions = SteerPositions::parse(match vector.meta.positions.as_str() {
                "" => "all",
                p => p,
            })
            .ok_or_else(|| {
                ServeError::Vectors(format!(
                    "{name}: steerlab.positions `{}` is not all, prompt or generated",
                    vector.meta.positions
                ))
            })?;
            let mode = match vector.meta.intervention.as_str() {
                "" => EditMode::Add,
                m => m
                    .parse::<EditMode>()
                    .map_err(|e| ServeError::Vectors(format!("{name}: {e}")))?,
            };
            let site = if vector.meta.site.is_empty() {
                "resid_post"
            } else {
                vector.meta.site.as_str()
            };
            let mut points = Vec::new();
            for (&layer, dir) in &vector.layers {
                let point: HookPoint =
                    format!("blocks.{layer}.hook_{site}").parse().map_err(|e| {
                        ServeError::Vectors(format!("{name}: steerlab.site `{site}`: {e}"))
                    })?;
                let t = Tensor::new(dir.as_slice(), model.device())
                    .and_then(|t| t.to_dtype(model.dtype()))
                    .map_err(|e| ServeError::Vectors(format!("{name}: {e}")))?;
                points.push((point, t));
            }
            entries.insert(
                name,
                Entry {
                    vector,
                    positions,
                    mode,
                    points,
                },
            );
        }
        Ok(Self { entries })
    }

    /// The vector names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `/v1/vectors` listing: each vector's name and metadata.
    pub fn listing(&self) -> Value {
        let data: Vec<Value> = self
            .entries
            .iter()
            .map(|(name, e)| {
                let m = &e.vector.meta;
                let norms: BTreeMap<String, f32> = e
                    .vector
                    .norms()
                    .into_iter()
                    .map(|(l, n)| (l.to_string(), n))
                    .collect();
                json!({
                    "id": name,
                    "object": "steering_vector",
                    "method": m.method,
                    "model": m.model,
                    "hidden_size": m.hidden_size,
                    "layers": e.vector.layers.keys().collect::<Vec<_>>(),
                    "site": m.site,
                    "positions": e.positions.name(),
                    "mode": e.mode.name(),
                    "objective": m.objective,
                    "dataset": m.dataset,
                    "created": m.created,
                    "note": m.note,
                    "norms": norms,
                })
            })
            .collect();
        json!({"object": "list", "data": data})
    }

    /// The hooks of a request's `steering` list and what they apply; an unknown name is a 400
    /// naming the entry and the vectors available.
    pub fn hooks_for(&self, specs: &[SteerSpec]) -> Result<(Hooks, Vec<Applied>)> {
        let mut hooks = Hooks::new();
        let mut applied = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let Some(e) = self.entries.get(&s.vector) else {
                let avail = if self.entries.is_empty() {
                    "this server has no vectors (start it with --vectors DIR)".to_string()
                } else {
                    format!("available: {}", self.names().join(", "))
                };
                return Err(ServeError::field(
                    format!("steering[{i}].vector"),
                    format!("no vector named `{}`; {avail}", s.vector),
                ));
            };
            let positions = s.positions.unwrap_or(e.positions);
            let mode = s.mode.unwrap_or(e.mode);
            let pos = match positions {
                SteerPositions::All => Positions::All,
                SteerPositions::Prompt => Positions::PromptOnly,
                SteerPositions::Generated => Positions::GeneratedOnly,
            };
            for (point, t) in &e.points {
                if mode == EditMode::Add {
                    hooks.add(*point, t.clone(), s.scale, pos.clone());
                } else {
                    hooks.push(
                        *point,
                        Intervention::Edit {
                            mode,
                            vector: t.clone(),
                            scale: s.scale,
                            positions: pos.clone(),
                            condition: None,
                        },
                    );
                }
            }
            applied.push(Applied {
                vector: s.vector.clone(),
                scale: s.scale,
                positions,
                mode,
                layers: e.vector.layers.keys().copied().collect(),
            });
        }
        Ok((hooks, applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        for ok in ["happy", "caa_l14", "v-2.1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "..", "a/b", "a\\b", "../x", "~x", "a:b", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
            assert!(valid_name(&servable_name(bad)), "{bad}");
        }
        assert_eq!(servable_name("BiPO L14 (dpo)"), "BiPO_L14__dpo_");
        assert_eq!(servable_name("caa.v2.safetensors"), "caa.v2.safetensors");
    }
}
