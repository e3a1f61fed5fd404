//! `llm:name+name+…`: the loaded model rates each named factor for both responses on GAIR's 0–3
//! scale (prompt in `assets/prompts/dissect_llm_rate.txt`), with an on-disk rating cache. Must
//! not fit anything or draw UI.
use super::{clip, non_ties, Precomputed};
use crate::data::{Judgement, Message};
use crate::dissect::error::DissectError;
use crate::dissect::factors::{
    gair_label, FactorInfo, FactorKind, FactorSource, PairValue, GAIR_PROPERTIES,
};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, Hooks, Model, TextTokenizer};
use crate::numeric::hash::fnv1a_parts;
use candle_core::{DType, D};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The rating prompt (kept in the repo: `assets/prompts/dissect_llm_rate.txt`).
pub const RATE_TEMPLATE: &str = include_str!("../../../assets/prompts/dissect_llm_rate.txt");

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
        let model_key = fnv1a_parts(&[
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
                let key = fnv1a_parts(&[d, &query, &j.response_a, &j.response_b]);
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
