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
use super::error::DissectError;
use super::factors::{
    gair_label, FactorInfo, FactorKind, FactorSource, PairValue, GAIR_PROPERTIES,
};
use crate::data::{Judgement, Message, Winner};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, Hooks, Model, TextTokenizer};
use candle_core::{DType, D};
use std::collections::HashMap;
use std::io::Write;
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

// ---------------------------------------------------------------------------------------------
// SAE features

/// SAE features from a `steerlab sae run` output folder: feature j of a pair is its
/// activation on e(A) − e(B) (signed, already pairwise), encoded as a continuous factor.
/// Labels come from `report.json` (the LLM description, else the top n-grams) when present.
pub struct SaeFactors(Precomputed);

impl SaeFactors {
    /// Reads `DIR/activations.safetensors` (tensor `activations` `[n, M]`, metadata
    /// `pair_ids`) and keeps the rows whose pair id occurs in `data`. `id` is the selecting token.
    pub fn load(id: &str, dir: &Path, data: &[Judgement]) -> Result<Self, DissectError> {
        let path = dir.join("activations.safetensors");
        let io = |m: String| DissectError::Source(format!("{}: {m}", path.display()));
        let bytes = std::fs::read(&path).map_err(|e| {
            io(format!(
                "{e} (expected the output folder of `steerlab sae run`)"
            ))
        })?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| io(e.to_string()))?;
        let ids: Vec<String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("pair_ids"))
            .ok_or_else(|| io("no `pair_ids` in the metadata".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| io(format!("metadata `pair_ids`: {e}")))
            })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io(e.to_string()))?;
        let t = st
            .tensor("activations")
            .map_err(|e| io(format!("tensor `activations`: {e}")))?;
        let shape = t.shape().to_vec();
        if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != ids.len() {
            return Err(io(format!(
                "tensor `activations` must be F32 [pairs = {}, features], found {:?} {:?}",
                ids.len(),
                t.dtype(),
                shape
            )));
        }
        let m = shape[1];
        let acts: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let labels = sae_labels(&dir.join("report.json"), m);
        let factors: Vec<FactorInfo> = (0..m)
            .map(|j| {
                FactorInfo::new(
                    &format!("sae_f{j}"),
                    &labels[j],
                    id,
                    FactorKind::Continuous,
                    &format!(
                        "activation of SAE feature {j} ({}) on e(A) - e(B)",
                        dir.display()
                    ),
                )
            })
            .collect();
        let wanted: std::collections::HashSet<&str> = data.iter().map(|j| j.id.as_str()).collect();
        let mut values = HashMap::new();
        for (r, pid) in ids.iter().enumerate() {
            if wanted.contains(pid.as_str()) {
                let row = &acts[r * m..(r + 1) * m];
                if let Some(bad) = row.iter().position(|v| !v.is_finite()) {
                    return Err(DissectError::BadFactor {
                        id: pid.clone(),
                        factor: format!("sae_f{bad}"),
                        message: format!("activation in {} is not finite", path.display()),
                    });
                }
                values.insert(
                    pid.clone(),
                    row.iter()
                        .map(|v| PairValue::Comparison(f64::from(*v)))
                        .collect(),
                );
            }
        }
        if values.is_empty() {
            return Err(DissectError::Empty(format!(
                "none of the {} pair ids in {} occurs in the data (was the SAE run on this data set?)",
                ids.len(),
                path.display()
            )));
        }
        Ok(Self(Precomputed {
            id: id.to_string(),
            factors,
            values,
        }))
    }

    /// Pairs of the data the activations file covers.
    pub fn n_matched(&self) -> usize {
        self.0.values.len()
    }
}

/// Feature labels from an SAE `report.json`: description, else top n-grams, else "SAE f{j}".
fn sae_labels(report: &Path, m: usize) -> Vec<String> {
    let mut labels: Vec<String> = (0..m).map(|j| format!("SAE f{j}")).collect();
    let Ok(text) = std::fs::read_to_string(report) else {
        return labels;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return labels;
    };
    for f in v["features"].as_array().into_iter().flatten() {
        let Some(j) = f["index"].as_u64().map(|j| j as usize).filter(|&j| j < m) else {
            continue;
        };
        if let Some(d) = f["description"].as_str().filter(|d| !d.trim().is_empty()) {
            labels[j] = format!("f{j}: {}", clip(d.trim(), 48));
        } else {
            let grams: Vec<&str> = f["ngrams_toward"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["text"].as_str())
                .take(2)
                .collect();
            if !grams.is_empty() {
                labels[j] = format!("f{j}: {}", clip(&grams.join(", "), 48));
            }
        }
    }
    labels
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

// ---------------------------------------------------------------------------------------------
// Steering-vector projections

/// The projection of a pair's mean-pooled residual difference on a steering vector: with
/// e(x) the residual stream after block L averaged over the response's tokens (response text
/// only, as the SAE's `llm` embedder reads it), the factor is (e(A) − e(B)) · v / ‖v‖
/// (continuous; positive when A lies further along the vector).
pub struct VectorFactors(Precomputed);

impl VectorFactors {
    /// Loads the vector, embeds both responses of every non-tie pair with `model` and projects.
    pub fn compute(
        id: &str,
        model: &Model,
        path: &Path,
        layer: Option<usize>,
        data: &[Judgement],
        sink: &dyn ProgressSink,
    ) -> Result<Self, DissectError> {
        let v = crate::steer::SteeringVector::load_any(path)
            .map_err(|e| DissectError::Source(format!("{}: {e}", path.display())))?;
        let layer = match layer {
            Some(l) => l,
            None if v.layers.len() == 1 => *v.layers.keys().next().expect("one layer"),
            None => {
                return Err(DissectError::BadOption(format!(
                    "{} has layers {:?}: name one as vector:FILE@LAYER",
                    path.display(),
                    v.layers.keys().collect::<Vec<_>>()
                )))
            }
        };
        let dir = v.layers.get(&layer).ok_or_else(|| {
            DissectError::BadOption(format!(
                "{} has no direction for layer {layer} (it has {:?})",
                path.display(),
                v.layers.keys().collect::<Vec<_>>()
            ))
        })?;
        if dir.len() != model.hidden_size() {
            return Err(DissectError::BadOption(format!(
                "{}: width {} does not match the model's hidden size {}",
                path.display(),
                dir.len(),
                model.hidden_size()
            )));
        }
        let norm = dir
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(DissectError::BadOption(format!(
                "{}: the layer-{layer} direction is zero",
                path.display()
            )));
        }
        let tok = model
            .tokenizer()
            .ok_or_else(|| DissectError::Source("the model has no tokenizer".into()))?;
        let pairs = non_ties(data);
        let mut texts: Vec<&str> = Vec::with_capacity(2 * pairs.len());
        for j in &pairs {
            texts.push(&j.response_a);
            texts.push(&j.response_b);
        }
        let emb = crate::sae::llm::LlmEmbedder::new(model, tok, layer)
            .map_err(|e| DissectError::Source(e.to_string()))?;
        let rows = crate::sae::Embedder::embed(&emb, &texts, sink).map_err(|e| {
            if sink.is_cancelled() {
                DissectError::Cancelled
            } else {
                DissectError::Source(format!("embedding responses at layer {layer}: {e}"))
            }
        })?;
        let proj = |r: &[f32]| -> f64 {
            r.iter()
                .zip(dir)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                / norm
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vector".into());
        let factor = FactorInfo::new(
            &format!("vec_{stem}_L{layer}"),
            &format!("{} @L{layer}", v.display_name()),
            id,
            FactorKind::Continuous,
            &format!(
                "(e(A) - e(B)) . v / |v|: e = mean-pooled residual after block {layer}, v = {}",
                path.display()
            ),
        );
        let values = pairs
            .iter()
            .enumerate()
            .map(|(i, j)| {
                (
                    j.id.clone(),
                    vec![PairValue::Responses(
                        proj(&rows[2 * i]),
                        proj(&rows[2 * i + 1]),
                    )],
                )
            })
            .collect();
        Ok(Self(Precomputed {
            id: id.to_string(),
            factors: vec![factor],
            values,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// LLM-judge ratings

/// The rating prompt (kept in the repo: `assets/prompts/dissect_llm_rate.txt`).
pub const RATE_TEMPLATE: &str = include_str!("../../assets/prompts/dissect_llm_rate.txt");

/// Bumped whenever the rating procedure changes (part of the cache key).
const RATING_VERSION: &str = "2";

/// Longest query / response (in characters) put into a rating prompt.
pub const RATE_MAX_CHARS: usize = 1500;

/// The default cache folder of LLM-judge ratings.
pub fn default_llm_cache_dir() -> PathBuf {
    crate::paths::steerlab_home()
        .join("cache")
        .join("llm-judge")
}

/// The property text a factor name stands for: GAIR's full property for its names and short
/// labels, else the name with `_` as spaces.
pub fn llm_factor_description(name: &str) -> String {
    match gair_label(name) {
        Some(short) => GAIR_PROPERTIES
            .iter()
            .find(|(_, s)| *s == short)
            .map(|(full, _)| full.to_string())
            .unwrap_or_else(|| short.to_string()),
        None => name.replace('_', " "),
    }
}

/// One rating of one pair on one factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    /// Expected 0–3 rating of response A (averaged over both presentation orders).
    pub a: f64,
    /// Expected 0–3 rating of response B.
    pub b: f64,
    /// Mean probability the model put on the digits 0–3 where a digit was due (how well it
    /// follows the answer format; near 0 means the ratings are noise).
    pub digit_mass: f64,
}

/// The loaded model as a pairwise 0–3 rater. For each order (A first, then B first) the prompt
/// is followed by `A:` (plus a space where the tokenizer splits a space from a digit); the expected digit under the model's next-token distribution
/// (restricted to 0–3) is the first response's rating; then `A: d, B:` (d the most likely
/// digit) gives the second's. Averaging both orders cancels a pure position bias, which on
/// chosen/rejected data would otherwise masquerade as a preference factor.
pub struct LlmRater<'a> {
    model: &'a Model,
    tok: &'a TextTokenizer,
    digits: [Vec<u32>; 4],
    /// The prefills end with a space (tokenizers that split " 3" into a space and a digit).
    space: bool,
}

impl<'a> LlmRater<'a> {
    /// A rater over `model` (which must carry a tokenizer with single tokens for 0–3).
    pub fn new(model: &'a Model) -> Result<Self, DissectError> {
        let tok = model
            .tokenizer()
            .ok_or_else(|| DissectError::Source("the model has no tokenizer".into()))?;
        let mut digits: [Vec<u32>; 4] = Default::default();
        let space = tok
            .encode(" 0", false)
            .map(|t| t.len() > 1)
            .unwrap_or(false);
        for (k, ids) in digits.iter_mut().enumerate() {
            for s in [format!("{k}"), format!(" {k}")] {
                if let Ok(t) = tok.encode(&s, false) {
                    if t.len() == 1 && !ids.contains(&t[0]) {
                        ids.push(t[0]);
                    }
                }
            }
            if ids.is_empty() {
                return Err(DissectError::Source(format!(
                    "the tokenizer has no single token for the digit {k}"
                )));
            }
        }
        Ok(Self {
            model,
            tok,
            digits,
            space,
        })
    }

    /// Token ids of the rating prompt for (first, second), followed by `tail` (`A:` or
    /// `A: d, B:`) after the chat template's assistant header.
    pub fn prompt_ids(
        &self,
        factor: &str,
        query: &str,
        first: &str,
        second: &str,
        tail: &str,
    ) -> Result<Vec<u32>, DissectError> {
        let user = RATE_TEMPLATE
            .replace("{factor}", factor)
            .replace("{query}", &clip(query, RATE_MAX_CHARS))
            .replace("{response_a}", &clip(first, RATE_MAX_CHARS))
            .replace("{response_b}", &clip(second, RATE_MAX_CHARS));
        let src = |e: crate::model::ModelError| DissectError::Source(e.to_string());
        let text = if self.tok.has_chat_template() {
            let mut t = self
                .tok
                .apply_chat_template(&[Message::new("user", user)], true)
                .map_err(src)?;
            t.push_str(tail);
            t
        } else {
            format!("{user}\n{tail}")
        };
        self.tok
            .encode(&text, !self.tok.has_chat_template())
            .map_err(src)
    }

    /// P(digit k) for k = 0..3 at the end of `ids` (unnormalised: their sum is the digit mass).
    pub fn digit_probs(&self, ids: &[u32]) -> Result<[f64; 4], DissectError> {
        let src = |e: String| DissectError::Source(e);
        let batch = Batch::from_sequences(&[ids.to_vec()], 0, self.model.device())
            .map_err(|e| src(e.to_string()))?;
        let h = self
            .model
            .forward_hidden(&batch, &mut Hooks::new())
            .map_err(|e| src(e.to_string()))?;
        let t = h.dim(1).map_err(|e| src(e.to_string()))?;
        let last = h.narrow(1, t - 1, 1).map_err(|e| src(e.to_string()))?;
        let logits = self
            .model
            .lm_head(&last)
            .and_then(|l| Ok(l.to_dtype(DType::F32)?.flatten_all()?))
            .map_err(|e| src(e.to_string()))?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .and_then(|l| l.to_vec1::<f32>())
            .map_err(|e| src(e.to_string()))?;
        let mut p = [0.0; 4];
        for (k, ids) in self.digits.iter().enumerate() {
            p[k] = ids.iter().map(|&i| f64::from(lp[i as usize]).exp()).sum();
        }
        Ok(p)
    }

    /// The digit token ids accepted for 0..3 (`k` and ` k` where single tokens).
    pub fn digit_ids(&self) -> &[Vec<u32>; 4] {
        &self.digits
    }

    fn expected(p: &[f64; 4]) -> (f64, usize, f64) {
        let mass: f64 = p.iter().sum();
        let e = if mass > 0.0 {
            p.iter().enumerate().map(|(k, v)| k as f64 * v).sum::<f64>() / mass
        } else {
            1.5
        };
        let arg = (0..4).max_by(|&x, &y| p[x].total_cmp(&p[y])).unwrap_or(0);
        (e, arg, mass)
    }

    /// Ratings of (first, second) in one presentation order, and their digit mass.
    fn rate_once(
        &self,
        factor: &str,
        query: &str,
        first: &str,
        second: &str,
    ) -> Result<(f64, f64, f64), DissectError> {
        let sp = if self.space { " " } else { "" };
        let p1 = self.digit_probs(&self.prompt_ids(
            factor,
            query,
            first,
            second,
            &format!("A:{sp}"),
        )?)?;
        let (r1, d1, m1) = Self::expected(&p1);
        let tail = format!("A: {d1}, B:{sp}");
        let p2 = self.digit_probs(&self.prompt_ids(factor, query, first, second, &tail)?)?;
        let (r2, _, m2) = Self::expected(&p2);
        Ok((r1, r2, (m1 + m2) / 2.0))
    }

    /// Rates `a` and `b` on the property `factor` (a description) for `query`, both orders.
    pub fn rate(
        &self,
        factor: &str,
        query: &str,
        a: &str,
        b: &str,
    ) -> Result<Rating, DissectError> {
        let (a1, b1, m1) = self.rate_once(factor, query, a, b)?;
        let (b2, a2, m2) = self.rate_once(factor, query, b, a)?;
        Ok(Rating {
            a: (a1 + a2) / 2.0,
            b: (b1 + b2) / 2.0,
            digit_mass: (m1 + m2) / 2.0,
        })
    }
}

/// An append-only cache of ratings: one JSON line per rating in `<dir>/<model key>.jsonl`.
/// Lines that do not parse (a write cut short) are ignored.
struct RatingCache {
    path: Option<PathBuf>,
    map: HashMap<u64, Rating>,
}

impl RatingCache {
    fn open(dir: Option<&Path>, model_key: u64) -> Self {
        let path = dir.map(|d| d.join(format!("{model_key:016x}.jsonl")));
        let mut map = HashMap::new();
        if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let k = v["key"]
                    .as_str()
                    .and_then(|k| u64::from_str_radix(k, 16).ok());
                if let (Some(k), Some(a), Some(b), Some(m)) = (
                    k,
                    v["a"].as_f64(),
                    v["b"].as_f64(),
                    v["digit_mass"].as_f64(),
                ) {
                    map.insert(
                        k,
                        Rating {
                            a,
                            b,
                            digit_mass: m,
                        },
                    );
                }
            }
        }
        Self { path, map }
    }

    fn put(&mut self, key: u64, r: Rating) -> Result<(), DissectError> {
        self.map.insert(key, r);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |e: std::io::Error| DissectError::Source(format!("{}: {e}", path.display()));
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        let line = serde_json::json!({
            "key": format!("{key:016x}"), "a": r.a, "b": r.b, "digit_mass": r.digit_mass
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)
    }
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0x1f]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// LLM-judge factors: the loaded model rates each named factor for both responses of every
/// non-tie pair ([`LlmRater`]); the factor is the continuous difference of expected ratings.
pub struct LlmJudgeFactors {
    inner: Precomputed,
    /// Ratings newly computed (not found in the cache).
    pub n_computed: usize,
    /// Ratings read from the cache.
    pub n_cached: usize,
    /// Mean digit mass over all ratings (see [`Rating::digit_mass`]).
    pub mean_digit_mass: f64,
}

impl LlmJudgeFactors {
    /// Rates every non-tie pair of `data` on each of `names` (see [`llm_factor_description`]),
    /// reading and extending the cache in `cache_dir` (none: no cache). Honours cancel.
    pub fn compute(
        id: &str,
        model: &Model,
        names: &[String],
        data: &[Judgement],
        cache_dir: Option<&Path>,
        sink: &dyn ProgressSink,
    ) -> Result<Self, DissectError> {
        let rater = LlmRater::new(model)?;
        let model_key = fnv1a(&[
            model.name(),
            &model.n_layers().to_string(),
            &model.hidden_size().to_string(),
            RATE_TEMPLATE,
            RATING_VERSION,
        ]);
        let mut cache = RatingCache::open(cache_dir, model_key);
        let pairs = non_ties(data);
        let descs: Vec<String> = names.iter().map(|n| llm_factor_description(n)).collect();
        let factors: Vec<FactorInfo> = names
            .iter()
            .zip(&descs)
            .map(|(n, d)| {
                let label = gair_label(n)
                    .map(str::to_string)
                    .unwrap_or_else(|| n.replace('_', " "));
                FactorInfo::new(
                    &format!("llm_{}", n.trim().to_lowercase().replace([' ', '-'], "_")),
                    &label,
                    id,
                    FactorKind::Continuous,
                    &format!(
                        "expected 0-3 rating of \"{d}\" by {} (both orders averaged), A minus B",
                        model.name()
                    ),
                )
            })
            .collect();
        let total = (pairs.len() * names.len()) as u64;
        let (mut n_computed, mut n_cached, mut mass_sum) = (0usize, 0usize, 0.0);
        let mut values = HashMap::new();
        for (i, j) in pairs.iter().enumerate() {
            let query = j.prompt.to_plain();
            let mut row = Vec::with_capacity(names.len());
            for (k, d) in descs.iter().enumerate() {
                if sink.is_cancelled() {
                    return Err(DissectError::Cancelled);
                }
                let key = fnv1a(&[d, &query, &j.response_a, &j.response_b]);
                let r = match cache.map.get(&key) {
                    Some(r) => {
                        n_cached += 1;
                        *r
                    }
                    None => {
                        let r = rater.rate(d, &query, &j.response_a, &j.response_b)?;
                        cache.put(key, r)?;
                        n_computed += 1;
                        r
                    }
                };
                mass_sum += r.digit_mass;
                row.push(PairValue::Responses(r.a, r.b));
                sink.report(Progress::new(
                    "LLM judge ratings",
                    (i * names.len() + k + 1) as u64,
                    Some(total),
                ));
            }
            values.insert(j.id.clone(), row);
        }
        let n = (n_computed + n_cached).max(1) as f64;
        sink.log(&format!(
            "LLM judge: {n_computed} rating(s) computed, {n_cached} from the cache, mean digit probability {:.3}",
            mass_sum / n
        ));
        Ok(Self {
            inner: Precomputed {
                id: id.to_string(),
                factors,
                values,
            },
            n_computed,
            n_cached,
            mean_digit_mass: mass_sum / n,
        })
    }

    /// The ratings' raw values for a pair id (A, B per factor), if rated.
    pub fn ratings(&self, pair_id: &str) -> Option<Vec<(f64, f64)>> {
        self.inner.values.get(pair_id).map(|r| {
            r.iter()
                .map(|v| match v {
                    PairValue::Responses(a, b) => (*a, *b),
                    _ => (f64::NAN, f64::NAN),
                })
                .collect()
        })
    }
}

impl FactorSource for LlmJudgeFactors {
    fn id(&self) -> &str {
        &self.inner.id
    }
    fn factors(&self, _data: &[Judgement]) -> Result<Vec<FactorInfo>, DissectError> {
        Ok(self.inner.factors.clone())
    }
    fn values(
        &self,
        pair: &Judgement,
        factors: &[FactorInfo],
    ) -> Result<Vec<PairValue>, DissectError> {
        Ok(self.inner.values_of(pair, factors))
    }
}

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
