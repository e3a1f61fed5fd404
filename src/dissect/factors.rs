//! Factor sources: named properties of the two responses of a pair, turned into one feature
//! per pair for the logistic model.
//!
//! A [`FactorSource`] lists its factors ([`FactorInfo`]) and gives, for each pair, either the
//! two per-response values f(A), f(B) or an already pairwise comparison value. The encoding
//! into a model feature is fixed by the factor's [`FactorKind`]:
//! - `Binary` and `Count` factors → **sign(f(A) − f(B)) ∈ {−1, 0, 1}** (GAIR's "comparison" way);
//! - `Continuous` factors → **standardised difference (f(A) − f(B)) / rms(f(A) − f(B))**, the
//!   root-mean-square taken over all pairs of the data set (not centred, so swapping A and B
//!   flips the sign exactly).
//!
//! Sources here: [`AnnotationFactors`] (the `factors_a` / `factors_b` columns; GAIR's 29
//! property names are recognised and given their short labels) and [`ComputedFactors`]
//! (surface text properties, definitions in [`super::text`]).
//!
//! Extension points (same trait, not implemented here): SAE features (per-response activations
//! → `Continuous`, or active/inactive → `Binary`), projections of response activations on a
//! steering vector (`Continuous`), and an LLM-judge rating of named factors — GAIR's pairwise
//! 0–3 rating returned as [`PairValue::Comparison`] (rating of A minus rating of B) by a
//! source that owns a loaded model.
//!
//! Must not fit anything: it only extracts and encodes.
use super::error::DissectError;
use super::text;
use crate::data::Judgement;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a factor's values are measured, which fixes its encoding (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorKind {
    /// Present/absent (0/1): encoded as the sign of the difference.
    Binary,
    /// A count: encoded as the sign of the difference.
    Count,
    /// A real value: encoded as the standardised difference.
    Continuous,
}

impl FactorKind {
    /// True when the pair feature is sign(f(A) − f(B)).
    pub fn is_sign_encoded(self) -> bool {
        !matches!(self, FactorKind::Continuous)
    }
}

/// A factor's identity and documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorInfo {
    /// Unique name (the column name, or `computed` factor name).
    pub name: String,
    /// Short human label (GAIR's short label when recognised, else the name).
    pub label: String,
    /// Source id (`columns`, `computed`, ...).
    pub source: String,
    /// Kind, which fixes the encoding.
    pub kind: FactorKind,
    /// Encoding in words: `sign` or `standardised difference`.
    pub encoding: String,
    /// What the factor measures.
    pub definition: String,
    /// For continuous factors: the rms of f(A) − f(B) over the data that the difference was
    /// divided by (a weight per raw unit of difference is `weight / diff_scale`). Set by
    /// [`encode`]; `None` for sign-encoded factors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_scale: Option<f64>,
}

impl FactorInfo {
    /// A factor with the encoding text its kind implies.
    pub fn new(name: &str, label: &str, source: &str, kind: FactorKind, definition: &str) -> Self {
        let encoding = if kind.is_sign_encoded() {
            "sign(f(A) - f(B))"
        } else {
            "(f(A) - f(B)) / rms over pairs"
        };
        Self {
            name: name.to_string(),
            label: label.to_string(),
            source: source.to_string(),
            kind,
            encoding: encoding.to_string(),
            definition: definition.to_string(),
            diff_scale: None,
        }
    }
}

/// One factor's raw value for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairValue {
    /// f(A), f(B).
    Responses(f64, f64),
    /// An already pairwise value, positive when A has more of the factor (e.g. a judge's
    /// comparison rating).
    Comparison(f64),
    /// Not available for this pair: the feature is 0 (no information).
    Missing,
}

impl PairValue {
    fn diff(self) -> f64 {
        match self {
            PairValue::Responses(a, b) => a - b,
            PairValue::Comparison(d) => d,
            PairValue::Missing => 0.0,
        }
    }
}

/// A provider of factors (annotation columns, computed text factors, SAE features, ...).
pub trait FactorSource: Send + Sync {
    /// Source id used on the command line (`columns`, `computed`).
    fn id(&self) -> &str;
    /// The factors this source offers for `data` (may depend on the data, e.g. columns).
    fn factors(&self, data: &[Judgement]) -> Result<Vec<FactorInfo>, DissectError>;
    /// Raw values of `factors` (a subset of [`FactorSource::factors`], in that order) for one pair.
    fn values(
        &self,
        pair: &Judgement,
        factors: &[FactorInfo],
    ) -> Result<Vec<PairValue>, DissectError>;
}

/// GAIR-NLP Preference-Dissection's 29 annotated properties: (full name, short label).
pub const GAIR_PROPERTIES: [(&str, &str); 29] = [
    ("harmlessness", "harmless"),
    (
        "grammar, spelling, punctuation, and code-switching",
        "grammarly correct",
    ),
    ("friendly", "friendly"),
    ("polite", "polite"),
    ("interactive", "interactive"),
    ("authoritative tone", "authoritative"),
    ("funny and humorous", "funny"),
    (
        "metaphors, personification, similes, hyperboles, irony, parallelism",
        "use rhetorical devices",
    ),
    (
        "complex word usage and sentence structure",
        "complex word & sentence",
    ),
    (
        "use of direct and explicit supporting materials",
        "use supporting materials",
    ),
    ("well formatted", "well formatted"),
    ("admit limitations or mistakes", "admit limits"),
    ("persuade user", "persuasive"),
    ("step by step solution", "step-by-step"),
    ("use of informal expressions", "use informal expressions"),
    ("non-repetitive", "non-repetitive"),
    ("clear and understandable", "clear"),
    ("relevance without considering inaccuracy", "relevant"),
    ("innovative and novel", "novel"),
    (
        "information richness without considering inaccuracy",
        "contain rich info",
    ),
    ("no minor errors", "no minor errors"),
    ("no moderate errors", "no moderate errors"),
    ("no severe errors", "no severe errors"),
    ("clarify user intent", "clarify intent"),
    ("showing empathetic", "show empathetic"),
    ("satisfying explicit constraints", "satisfy constraints"),
    ("supporting explicit subjective stances", "support stances"),
    ("correcting explicit mistakes or biases", "correct mistakes"),
    ("length", "lengthy"),
];

fn normalise_name(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// GAIR's short label for a column name (full or short name, any case, `_`/`-` as spaces).
pub fn gair_label(name: &str) -> Option<&'static str> {
    let n = normalise_name(name);
    GAIR_PROPERTIES
        .iter()
        .find(|(full, short)| normalise_name(full) == n || normalise_name(short) == n)
        .map(|(_, short)| *short)
}

/// Factors from the per-response annotation maps `factors_a` / `factors_b`.
///
/// Kind is inferred per column over the data: all values in {0, 1} → `Binary`, all integers →
/// `Count`, otherwise `Continuous`. A column absent on either side of a pair gives that pair
/// feature 0. Non-finite values are errors.
#[derive(Debug, Clone, Default)]
pub struct AnnotationFactors;

impl FactorSource for AnnotationFactors {
    fn id(&self) -> &str {
        "columns"
    }

    fn factors(&self, data: &[Judgement]) -> Result<Vec<FactorInfo>, DissectError> {
        let mut names = BTreeSet::new();
        for j in data {
            names.extend(j.factors_a.keys().cloned());
            names.extend(j.factors_b.keys().cloned());
        }
        let mut out = Vec::new();
        for name in names {
            let (mut binary, mut integer) = (true, true);
            for j in data {
                for v in [j.factors_a.get(&name), j.factors_b.get(&name)]
                    .into_iter()
                    .flatten()
                {
                    if !v.is_finite() {
                        return Err(DissectError::BadFactor {
                            id: j.id.clone(),
                            factor: name.clone(),
                            message: format!("value {v} is not a finite number"),
                        });
                    }
                    binary &= *v == 0.0 || *v == 1.0;
                    integer &= v.fract() == 0.0;
                }
            }
            let kind = if binary {
                FactorKind::Binary
            } else if integer {
                FactorKind::Count
            } else {
                FactorKind::Continuous
            };
            let label = gair_label(&name).unwrap_or(&name).to_string();
            let def = if gair_label(&name).is_some() {
                "annotation column (GAIR property)".to_string()
            } else {
                "annotation column".to_string()
            };
            out.push(FactorInfo::new(&name, &label, "columns", kind, &def));
        }
        Ok(out)
    }

    fn values(
        &self,
        pair: &Judgement,
        factors: &[FactorInfo],
    ) -> Result<Vec<PairValue>, DissectError> {
        Ok(factors
            .iter()
            .map(
                |f| match (pair.factors_a.get(&f.name), pair.factors_b.get(&f.name)) {
                    (Some(a), Some(b)) => PairValue::Responses(*a, *b),
                    _ => PairValue::Missing,
                },
            )
            .collect())
    }
}

type TextFn = fn(&str) -> f64;

/// The computed text factors: (name, kind, definition, function of one response).
pub const COMPUTED: &[(&str, FactorKind, &str, TextFn)] = &[
    (
        "length",
        FactorKind::Continuous,
        "ln(1 + number of words)",
        |t| (text::word_count(t) as f64).ln_1p(),
    ),
    (
        "list_items",
        FactorKind::Count,
        "Markdown list items (-, *, +, • or `1.`/`1)` line starts)",
        |t| text::list_items(t) as f64,
    ),
    (
        "headers",
        FactorKind::Count,
        "Markdown ATX headers (# .. ###### )",
        |t| text::headers(t) as f64,
    ),
    (
        "code_blocks",
        FactorKind::Count,
        "fenced ``` code blocks",
        |t| text::code_blocks(t) as f64,
    ),
    (
        "bold",
        FactorKind::Count,
        "bold spans **..** / __..__",
        |t| text::bold_spans(t) as f64,
    ),
    (
        "questions",
        FactorKind::Count,
        "question marks (questions asked back)",
        |t| text::questions(t) as f64,
    ),
    (
        "hedges",
        FactorKind::Count,
        "hedging phrases (might, perhaps, I think, it depends, ...)",
        |t| text::phrase_count(t, text::HEDGES) as f64,
    ),
    (
        "refusal",
        FactorKind::Binary,
        "contains a refusal phrase (I can't help, I won't, as an AI, ...)",
        |t| f64::from(text::phrase_count(t, text::REFUSALS) > 0),
    ),
    (
        "apology",
        FactorKind::Binary,
        "contains an apology (sorry, apologize, apologies)",
        |t| f64::from(text::phrase_count(t, text::APOLOGIES) > 0),
    ),
    (
        "emoji",
        FactorKind::Count,
        "emoji characters (U+1F300-1FAFF, U+2600-27BF)",
        |t| text::emoji(t) as f64,
    ),
    (
        "exclamations",
        FactorKind::Count,
        "exclamation marks",
        |t| text::exclamations(t) as f64,
    ),
    ("links", FactorKind::Count, "http(s):// links", |t| {
        text::links(t) as f64
    }),
    (
        "readability",
        FactorKind::Continuous,
        "Flesch reading ease (higher = easier)",
        text::flesch_reading_ease,
    ),
];

/// Surface factors computed from the response texts (see [`COMPUTED`] for definitions).
#[derive(Debug, Clone, Default)]
pub struct ComputedFactors;

impl FactorSource for ComputedFactors {
    fn id(&self) -> &str {
        "computed"
    }

    fn factors(&self, _data: &[Judgement]) -> Result<Vec<FactorInfo>, DissectError> {
        Ok(COMPUTED
            .iter()
            .map(|(n, k, d, _)| FactorInfo::new(n, n, "computed", *k, d))
            .collect())
    }

    fn values(
        &self,
        pair: &Judgement,
        factors: &[FactorInfo],
    ) -> Result<Vec<PairValue>, DissectError> {
        factors
            .iter()
            .map(|f| {
                let (_, _, _, func) = COMPUTED.iter().find(|c| c.0 == f.name).ok_or_else(|| {
                    DissectError::BadOption(format!("unknown computed factor `{}`", f.name))
                })?;
                Ok(PairValue::Responses(
                    func(&pair.response_a),
                    func(&pair.response_b),
                ))
            })
            .collect()
    }
}

/// Encodes raw pair values into features (rows = pairs) per the factors' kinds, recording
/// the scale of continuous factors in [`FactorInfo::diff_scale`].
pub fn encode(values: &[Vec<PairValue>], factors: &mut [FactorInfo]) -> Vec<Vec<f64>> {
    let p = factors.len();
    let mut rms = vec![1.0; p];
    for (j, f) in factors.iter_mut().enumerate() {
        if !f.kind.is_sign_encoded() {
            let ss: f64 = values.iter().map(|r| r[j].diff().powi(2)).sum();
            let r = (ss / values.len().max(1) as f64).sqrt();
            rms[j] = if r > 0.0 { r } else { 1.0 };
            f.diff_scale = Some(rms[j]);
        }
    }
    values
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, v)| {
                    let d = v.diff();
                    if factors[j].kind.is_sign_encoded() {
                        if d > 0.0 {
                            1.0
                        } else if d < 0.0 {
                            -1.0
                        } else {
                            0.0
                        }
                    } else {
                        d / rms[j]
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Prompt, Winner};
    use std::collections::BTreeMap;

    fn judgement(a: &str, b: &str, fa: &[(&str, f64)], fb: &[(&str, f64)]) -> Judgement {
        Judgement {
            id: "p".into(),
            prompt: Prompt::Text("q".into()),
            response_a: a.into(),
            response_b: b.into(),
            winner: Winner::A,
            judge: None,
            annotator: None,
            scenario: None,
            factors_a: fa
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            factors_b: fb.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn gair_names_are_recognised() {
        assert_eq!(gair_label("Harmlessness"), Some("harmless"));
        assert_eq!(gair_label("no_severe_errors"), Some("no severe errors"));
        assert_eq!(gair_label("step-by-step"), Some("step-by-step"));
        assert_eq!(gair_label("sparkle"), None);
    }

    #[test]
    fn kinds_are_inferred_and_encoded() {
        let data = vec![
            judgement(
                "a",
                "b",
                &[("harmlessness", 1.0), ("n", 3.0), ("r", 0.5)],
                &[("harmlessness", 0.0), ("n", 3.0), ("r", 1.5)],
            ),
            judgement(
                "a",
                "b",
                &[("harmlessness", 0.0), ("n", 1.0), ("r", 2.0)],
                &[("harmlessness", 1.0), ("n", 4.0)],
            ),
        ];
        let src = AnnotationFactors;
        let mut f = src.factors(&data).unwrap();
        let kinds: Vec<_> = f
            .iter()
            .map(|x| (x.name.as_str(), x.kind, x.label.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("harmlessness", FactorKind::Binary, "harmless"),
                ("n", FactorKind::Count, "n"),
                ("r", FactorKind::Continuous, "r")
            ]
        );
        let vals: Vec<_> = data.iter().map(|j| src.values(j, &f).unwrap()).collect();
        let x = encode(&vals, &mut f);
        assert_eq!(f[2].diff_scale, Some(0.5f64.sqrt()));
        assert_eq!(f[0].diff_scale, None);
        // r: diffs -1 and missing(0): rms = sqrt(1/2)
        assert_eq!(x[0][..2], [1.0, 0.0]);
        assert!((x[0][2] + std::f64::consts::SQRT_2).abs() < 1e-12);
        assert_eq!(x[1], vec![-1.0, -1.0, 0.0]);
    }

    #[test]
    fn computed_factors_are_antisymmetric() {
        let j = judgement(
            "Sorry, I can't help with that.",
            "# Steps\n- one\n- two\nI think it works!",
            &[],
            &[],
        );
        let src = ComputedFactors;
        let mut f = src.factors(&[]).unwrap();
        let mut swapped = j.clone();
        std::mem::swap(&mut swapped.response_a, &mut swapped.response_b);
        let vals = [
            src.values(&j, &f).unwrap(),
            src.values(&swapped, &f).unwrap(),
        ];
        let x = encode(&vals, &mut f);
        for k in 0..f.len() {
            assert_eq!(x[0][k], -x[1][k], "{}", f[k].name);
        }
        let get = |n: &str| x[0][f.iter().position(|z| z.name == n).unwrap()];
        assert_eq!(get("apology"), 1.0);
        assert_eq!(get("list_items"), -1.0);
        assert_eq!(get("headers"), -1.0);
        assert_eq!(get("hedges"), -1.0);
        assert_eq!(get("code_blocks"), 0.0);
    }
}
