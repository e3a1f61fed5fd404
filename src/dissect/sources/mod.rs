//! Factor sources that read files or run a model, selected with prefixed tokens:
//! - `sae:DIR` — the features of a `steerlab sae run` output folder
//!   ([`SaeFactors`]): the per-pair encodings of e(A) − e(B) in `DIR/activations.safetensors`,
//!   matched to the data by pair id;
//! - `vector:FILE@LAYER` — the projection of the mean-pooled residual-stream difference
//!   (after block LAYER) of the two responses on a steering vector ([`VectorFactors`]);
//! - `llm:name+name+…` — the loaded model rates each named factor for both responses on
//!   GAIR's 0–3 scale ([`LlmJudgeFactors`]; prompt in `assets/prompts/dissect_llm_rate.txt`),
//!   cached on disk.
//!
//! Each source computes its values once, at construction, and then answers
//! [`FactorSource::values`] by pair id; its [`FactorSource::id`] is the token that selected it.
//! Must not fit anything or draw UI.
//!
//! One file per source kind: [`sae`] (`sae:DIR`), [`vector`] (`vector:FILE@LAYER`) and [`llm`]
//! (`llm:a+b`); this file parses the tokens and builds the sources.
mod llm;
mod sae;
mod vector;

pub use llm::{
    default_llm_cache_dir, llm_factor_description, LlmJudgeFactors, LlmRater, Rating,
    RATE_MAX_CHARS, RATE_TEMPLATE,
};
pub use sae::SaeFactors;
pub use vector::VectorFactors;

use super::error::DissectError;
use super::factors::{FactorInfo, FactorSource, PairValue};
use crate::data::{Judgement, Winner};
use crate::jobs::ProgressSink;
use crate::model::Model;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A parsed prefixed factor token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `sae:DIR`.
    Sae(PathBuf),
    /// `vector:FILE[@LAYER]` (the layer may be left out when the vector has one).
    Vector {
        /// The vector file (.safetensors or GGUF control vector).
        path: PathBuf,
        /// The block whose output is projected.
        layer: Option<usize>,
    },
    /// `llm:name+name+…`.
    Llm(Vec<String>),
}

impl SourceSpec {
    /// Parses `token`: `None` when it has none of the prefixes `sae:`, `vector:`, `llm:`.
    pub fn parse(token: &str) -> Option<Result<Self, DissectError>> {
        let token = token.trim();
        let bad = |m: String| Some(Err(DissectError::BadOption(m)));
        if let Some(dir) = token.strip_prefix("sae:") {
            if dir.trim().is_empty() {
                return bad("`sae:` needs the output folder of `steerlab sae run`".into());
            }
            return Some(Ok(SourceSpec::Sae(PathBuf::from(dir.trim()))));
        }
        if let Some(rest) = token.strip_prefix("vector:") {
            let (path, layer) = match rest.rsplit_once('@') {
                Some((p, l)) => match l.trim().parse::<usize>() {
                    Ok(l) => (p, Some(l)),
                    Err(_) => {
                        return bad(format!(
                            "`{token}`: `{l}` is not a layer number (expected vector:FILE@LAYER)"
                        ))
                    }
                },
                None => (rest, None),
            };
            if path.trim().is_empty() {
                return bad("`vector:` needs a steering-vector file (vector:FILE@LAYER)".into());
            }
            return Some(Ok(SourceSpec::Vector {
                path: PathBuf::from(path.trim()),
                layer,
            }));
        }
        if let Some(rest) = token.strip_prefix("llm:") {
            let names: Vec<String> = rest
                .split('+')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return bad(
                    "`llm:` needs factor names joined by `+`, e.g. llm:friendly+step_by_step"
                        .into(),
                );
            }
            return Some(Ok(SourceSpec::Llm(names)));
        }
        None
    }

    /// True when the source runs the loaded model.
    pub fn needs_model(&self) -> bool {
        !matches!(self, SourceSpec::Sae(_))
    }
}

/// True when some token of a factor selection needs a model (`vector:` or `llm:`).
pub fn selection_needs_model(tokens: &[String]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(SourceSpec::parse(t), Some(Ok(s)) if s.needs_model()))
}

/// Builds the sources of every prefixed token in `tokens` (other tokens are left to the
/// built-in sources). `model` is needed by `vector:` and `llm:`; `llm_cache` overrides the
/// LLM-judge cache folder (default `<steerlab home>/cache/llm-judge`).
pub fn build_sources(
    tokens: &[String],
    data: &[Judgement],
    model: Option<&Model>,
    llm_cache: Option<&Path>,
    sink: &dyn ProgressSink,
) -> Result<Vec<Box<dyn FactorSource>>, DissectError> {
    let mut out: Vec<Box<dyn FactorSource>> = Vec::new();
    for t in tokens {
        let Some(spec) = SourceSpec::parse(t) else {
            continue;
        };
        let spec = spec?;
        let need = |what: &str| {
            DissectError::BadOption(format!("`{}` needs a loaded model ({what})", t.trim()))
        };
        let src: Box<dyn FactorSource> = match spec {
            SourceSpec::Sae(dir) => Box::new(SaeFactors::load(t.trim(), &dir, data)?),
            SourceSpec::Vector { path, layer } => {
                let m = model.ok_or_else(|| need("--model"))?;
                Box::new(VectorFactors::compute(
                    t.trim(),
                    m,
                    &path,
                    layer,
                    data,
                    sink,
                )?)
            }
            SourceSpec::Llm(names) => {
                let m = model.ok_or_else(|| need("--model"))?;
                let dir = llm_cache
                    .map(Path::to_path_buf)
                    .unwrap_or_else(default_llm_cache_dir);
                Box::new(LlmJudgeFactors::compute(
                    t.trim(),
                    m,
                    &names,
                    data,
                    Some(&dir),
                    sink,
                )?)
            }
        };
        out.push(src);
    }
    Ok(out)
}

/// Per-pair values computed up front, answered by pair id.
struct Precomputed {
    id: String,
    factors: Vec<FactorInfo>,
    values: HashMap<String, Vec<PairValue>>,
}

impl Precomputed {
    fn values_of(&self, pair: &Judgement, wanted: &[FactorInfo]) -> Vec<PairValue> {
        let row = self.values.get(&pair.id);
        wanted
            .iter()
            .map(|f| {
                let j = self.factors.iter().position(|g| g.name == f.name);
                match (row, j) {
                    (Some(r), Some(j)) => r[j],
                    _ => PairValue::Missing,
                }
            })
            .collect()
    }
}

fn non_ties(data: &[Judgement]) -> Vec<&Judgement> {
    let mut seen = std::collections::HashSet::new();
    data.iter()
        .filter(|j| j.winner != Winner::Tie && seen.insert(j.id.as_str()))
        .collect()
}

/// [`FactorSource`] for the newtypes over [`Precomputed`] values.
macro_rules! precomputed_source {
    ($($t:ty),*) => {$(
        impl FactorSource for $t {
            fn id(&self) -> &str {
                &self.0.id
            }
            fn factors(&self, _data: &[Judgement]) -> Result<Vec<FactorInfo>, DissectError> {
                Ok(self.0.factors.clone())
            }
            fn values(
                &self,
                pair: &Judgement,
                factors: &[FactorInfo],
            ) -> Result<Vec<PairValue>, DissectError> {
                Ok(self.0.values_of(pair, factors))
            }
        }
    )*};
}

precomputed_source!(SaeFactors, VectorFactors);

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            SourceSpec::parse("sae:/tmp/x").unwrap().unwrap(),
            SourceSpec::Sae("/tmp/x".into())
        );
        assert_eq!(
            SourceSpec::parse("vector:v.safetensors@14")
                .unwrap()
                .unwrap(),
            SourceSpec::Vector {
                path: "v.safetensors".into(),
                layer: Some(14)
            }
        );
        assert_eq!(
            SourceSpec::parse("llm:friendly+step_by_step")
                .unwrap()
                .unwrap(),
            SourceSpec::Llm(vec!["friendly".into(), "step_by_step".into()])
        );
        assert!(SourceSpec::parse("vector:v@x").unwrap().is_err());
        assert!(SourceSpec::parse("llm:").unwrap().is_err());
        assert!(SourceSpec::parse("computed").is_none());
        assert!(selection_needs_model(&[
            "computed".into(),
            "llm:polite".into()
        ]));
        assert!(!selection_needs_model(&["sae:d".into()]));
    }

    #[test]
    fn gair_names_map_to_full_properties() {
        assert_eq!(
            llm_factor_description("step-by-step"),
            "step by step solution"
        );
        assert_eq!(llm_factor_description("harmless"), "harmlessness");
        assert_eq!(llm_factor_description("uses_emoji"), "uses emoji");
    }
}
