//! Planted synthetic preference data. Responses are assembled from topic text and phrase banks
//! so that each factor is visible in the text (a bulleted list, a refusal, an empathy phrase,
//! hedges, headers, a code block, a closing question, emoji, length), and labels follow a
//! documented logistic model (docs/data.md):
//!
//! P(A wins) = σ( Σ_k w[judge, scenario][k] · (f_k(A) − f_k(B)) )
//!
//! with binary f_k ∈ {0, 1} (so f_k(A) − f_k(B) = sign(...) ∈ {−1, 0, 1}) and
//! f_length = words / 100. Weights are `JUDGE_BASE[judge] + SCENARIO_DELTA[scenario]`. No ties.
//!
//! With planted annotator groups ([`PlantedGroups`]) every pair is judged by one of N human
//! annotators (`annotator_01`…), annotator k belonging to group (k − 1) mod G, and the weights
//! are that group's [`GROUP_WEIGHTS`] row (no judge or scenario terms); the truth file lists
//! each annotator's group and each group's weights.
//! Pure generation: nothing here reads files or fits models.
use super::error::DataError;
use super::synth_text::*;
use super::types::*;
use super::write::record_to_json;
use crate::report::atomic::{write_set, SetFill};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The planted factors, in order.
pub const FACTORS: [&str; 9] = [
    "length",
    "bullet_list",
    "headers",
    "code_block",
    "refusal",
    "empathy",
    "hedging",
    "question",
    "emoji",
];

/// What each factor means (written to the truth file).
pub const FACTOR_DEFINITIONS: [&str; 9] = [
    "continuous: number of whitespace-separated words / 100",
    "binary: the response contains a bulleted list (lines starting with \"- \")",
    "binary: the response contains markdown headers (lines starting with \"#\")",
    "binary: the response contains a fenced code block (```)",
    "binary: the response declines the request (\"I can't assist...\")",
    "binary: the response acknowledges the user's feelings (\"That sounds really frustrating...\")",
    "binary: the response hedges (\"I might be wrong about this, but...\")",
    "binary: the response ends by asking the user a question",
    "binary: the response contains emoji",
];

/// Judges.
pub const JUDGES: [&str; 2] = ["human", "gpt-4"];
/// Scenarios (each topic belongs to one).
pub const SCENARIOS: [&str; 3] = ["advice", "coding", "explanation"];

/// Per-judge base weights, in [`FACTORS`] order.
pub const JUDGE_BASE: [[f64; 9]; 2] = [
    // length bullets headers code  refusal empathy hedging question emoji
    [0.3, 0.3, 0.0, 0.0, -1.5, 0.9, -0.6, -0.2, 0.4], // human
    [1.0, 0.9, 0.6, 0.2, -0.8, 0.1, 0.5, 0.0, -0.7],  // gpt-4
];

/// Per-scenario weight offsets, in [`FACTORS`] order.
pub const SCENARIO_DELTA: [[f64; 9]; 3] = [
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0], // advice: empathy matters more
    [0.0, 0.0, 0.2, 1.2, 0.0, -0.3, 0.0, 0.0, 0.0], // coding: code blocks matter a lot
    [0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], // explanation: longer, listed answers
];

/// Weights of the planted annotator groups, in [`FACTORS`] order: group 0 likes structure
/// (length, lists, headers) and dislikes emoji, group 1 likes warmth (empathy, questions,
/// emoji), group 2 likes code and hedging and dislikes long or effusive answers.
pub const GROUP_WEIGHTS: [[f64; 9]; 3] = [
    // length bullets headers code  refusal empathy hedging question emoji
    [0.8, 1.2, 0.7, 0.2, -1.0, -0.3, -0.4, 0.0, -0.9],
    [-0.2, -0.5, -0.4, 0.0, -0.8, 1.3, 0.3, 0.9, 0.7],
    [-0.8, 0.2, 0.0, 1.0, 0.2, -0.7, 1.0, -0.6, 0.0],
];

/// Planted annotator groups (`steerlab data synth --annotator-groups G --annotators N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantedGroups {
    /// Number of groups G (2 or 3).
    pub groups: usize,
    /// Number of annotators N (at least G).
    pub annotators: usize,
}

impl PlantedGroups {
    /// Largest number of annotators.
    pub const MAX_ANNOTATORS: usize = 100_000;

    /// Checks G and N.
    pub fn validate(&self) -> Result<(), DataError> {
        if !(2..=GROUP_WEIGHTS.len()).contains(&self.groups) {
            return Err(DataError::Invalid(format!(
                "--annotator-groups {}: must be 2 or {} (the planted weight sets)",
                self.groups,
                GROUP_WEIGHTS.len()
            )));
        }
        if self.annotators < self.groups || self.annotators > Self::MAX_ANNOTATORS {
            return Err(DataError::Invalid(format!(
                "--annotators {}: must be from {} (one per group) to {}",
                self.annotators,
                self.groups,
                Self::MAX_ANNOTATORS
            )));
        }
        Ok(())
    }

    /// The id of annotator `k` (0-based), zero-padded to a common width.
    pub fn annotator_id(&self, k: usize) -> String {
        let width = self.annotators.to_string().len().max(2);
        format!("annotator_{:0width$}", k + 1)
    }

    /// The planted group of annotator `k` (0-based).
    pub fn group_of(&self, k: usize) -> usize {
        k % self.groups
    }
}

/// Probability that a response carries each binary factor (index 0, length, unused); code
/// blocks appear with `P_CODE_CODING` in the coding scenario.
const P_FACTOR: [f64; 9] = [0.0, 0.4, 0.3, 0.12, 0.12, 0.35, 0.35, 0.3, 0.25];
const P_CODE_CODING: f64 = 0.5;
const HUMAN_ANNOTATORS: usize = 8;

/// The weight vector of a judge in a scenario (indices into [`JUDGES`], [`SCENARIOS`]).
pub fn weights(judge: usize, scenario: usize) -> [f64; 9] {
    let mut w = JUDGE_BASE[judge];
    for (x, d) in w.iter_mut().zip(SCENARIO_DELTA[scenario]) {
        *x += d;
    }
    w
}

/// Options of the generator.
#[derive(Debug, Clone, Copy)]
pub struct SynthOptions {
    /// Number of pairs.
    pub n: usize,
    /// Seed (same seed, same data).
    pub seed: u64,
}

/// The ground truth written next to the data.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// The labelling model, in words.
    pub model: String,
    /// Seed.
    pub seed: u64,
    /// Number of pairs.
    pub n: usize,
    /// Factor name → definition.
    pub factors: BTreeMap<String, String>,
    /// judge → scenario → factor → weight.
    pub weights: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    /// Record id → P(A wins) under the model.
    pub p_a: BTreeMap<String, f64>,
    /// Planted groups only: annotator id → group.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotator_groups: BTreeMap<String, usize>,
    /// Planted groups only: group (as a string) → factor → weight.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub group_weights: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Generated judgements and their truth.
#[derive(Debug, Clone)]
pub struct SynthData {
    /// Pairwise judgements (factors_a / factors_b hold every planted factor).
    pub judgements: Vec<Judgement>,
    /// Ground truth.
    pub truth: Truth,
}

struct Built {
    text: String,
    f: [f64; 9],
}

fn pick<'a>(rng: &mut StdRng, xs: &'a [&'a str]) -> &'a str {
    xs.choose(rng).copied().unwrap_or("")
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Draws the factors of one response and writes the text that carries them.
fn build(rng: &mut StdRng, topic: &Topic, scenario: usize) -> Built {
    let mut on = [false; 9];
    for k in 1..9 {
        let p = if FACTORS[k] == "code_block" && SCENARIOS[scenario] == "coding" {
            P_CODE_CODING
        } else {
            P_FACTOR[k]
        };
        on[k] = rng.random::<f64>() < p;
    }
    let [_, bullets, headers, code, refusal, empathy, hedging, question, emoji] = on;
    let mut parts: Vec<String> = Vec::new();
    if headers {
        parts.push(format!("## {}", topic.title));
    }
    let mut opening = Vec::new();
    if empathy {
        opening.push(pick(rng, EMPATHY).to_string());
    }
    let n_body = if refusal {
        rng.random_range(0..=1)
    } else {
        rng.random_range(1..=6)
    };
    let mut body: Vec<&str> = topic.body.to_vec();
    body.shuffle(rng);
    let mut body: Vec<String> = body.into_iter().take(n_body).map(str::to_string).collect();
    if refusal {
        opening.push(pick(rng, REFUSAL).to_string());
        opening.push(pick(rng, REFUSAL_REASON).to_string());
        if !body.is_empty() {
            opening.push(pick(rng, REFUSAL_BRIDGE).to_string());
        }
    }
    if hedging {
        if let Some(first) = body.first_mut() {
            *first = format!("{} {}", pick(rng, HEDGE_OPEN), lower_first(first));
        } else {
            opening.push(format!(
                "{} this is a matter for someone with more context.",
                pick(rng, HEDGE_OPEN)
            ));
        }
    }
    let mut para: Vec<String> = opening;
    para.extend(body);
    if emoji {
        if let Some(first) = para.first_mut() {
            first.push(' ');
            first.push_str(pick(rng, EMOJI));
        }
    }
    if !para.is_empty() {
        parts.push(para.join(" "));
    }
    if bullets {
        let mut items: Vec<&str> = topic.bullets.to_vec();
        items.shuffle(rng);
        let k = rng.random_range(3..=items.len().min(5));
        if headers {
            parts.push("### Key points".into());
        }
        let list: Vec<String> = items[..k].iter().map(|b| format!("- {b}")).collect();
        parts.push(format!("{}\n{}", pick(rng, LIST_INTRO), list.join("\n")));
    }
    if code {
        if headers {
            parts.push("### Example".into());
        }
        parts.push(format!(
            "{}\n```{}\n{}\n```",
            pick(rng, CODE_INTRO),
            topic.code_lang,
            topic.code
        ));
    }
    let mut closing = Vec::new();
    if hedging {
        closing.push(pick(rng, HEDGE_CLOSE).to_string());
    }
    if question {
        closing.push(pick(rng, QUESTION_CLOSE).to_string());
    }
    if emoji {
        closing.push(pick(rng, EMOJI).to_string());
    }
    if !closing.is_empty() {
        parts.push(closing.join(" "));
    }
    if parts.is_empty() {
        parts.push(topic.body[0].to_string());
    }
    let text = parts.join("\n\n");
    let mut f = [0.0; 9];
    f[0] = text.split_whitespace().count() as f64 / 100.0;
    for k in 1..9 {
        f[k] = if on[k] { 1.0 } else { 0.0 };
    }
    Built { text, f }
}

fn factor_map(f: &[f64; 9]) -> BTreeMap<String, f64> {
    FACTORS
        .iter()
        .zip(f)
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

/// Generates `n` planted pairwise judgements (seeded).
pub fn generate(opts: &SynthOptions) -> SynthData {
    generate_with(opts, None)
}

/// [`generate`], with planted annotator groups when `planted` is given (it must pass
/// [`PlantedGroups::validate`]). Without groups the output is exactly [`generate`]'s.
pub fn generate_with(opts: &SynthOptions, planted: Option<&PlantedGroups>) -> SynthData {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut judgements = Vec::with_capacity(opts.n.min(MAX_N));
    let mut p_a = BTreeMap::new();
    let width = opts.n.max(1).to_string().len().max(5);
    for i in 0..opts.n {
        let topic = &TOPICS[rng.random_range(0..TOPICS.len())];
        let scenario = SCENARIOS
            .iter()
            .position(|s| *s == topic.scenario)
            .unwrap_or(0);
        let prompt = format!(
            "{}{}",
            pick(&mut rng, PROMPT_CONTEXTS),
            pick(&mut rng, topic.prompts)
        );
        let mut prompt_text = prompt.clone();
        if let Some(c) = prompt_text.get(..1) {
            prompt_text = c.to_uppercase() + &prompt_text[1..];
        }
        let a = build(&mut rng, topic, scenario);
        let b = build(&mut rng, topic, scenario);
        let (judge, w, member) = match planted {
            None => {
                let judge = rng.random_range(0..JUDGES.len());
                (judge, weights(judge, scenario), None)
            }
            Some(g) => {
                let k = rng.random_range(0..g.annotators.max(1));
                let human = JUDGES.iter().position(|j| *j == "human").unwrap_or(0);
                (
                    human,
                    GROUP_WEIGHTS[g.group_of(k) % GROUP_WEIGHTS.len()],
                    Some(k),
                )
            }
        };
        let z: f64 = (0..9).map(|k| w[k] * (a.f[k] - b.f[k])).sum();
        let p = crate::numeric::sigmoid(z);
        let winner = if rng.random::<f64>() < p {
            Winner::A
        } else {
            Winner::B
        };
        let annotator = if let (Some(k), Some(g)) = (member, planted) {
            Some(g.annotator_id(k))
        } else if JUDGES[judge] == "human" {
            Some(format!(
                "annotator_{}",
                rng.random_range(1..=HUMAN_ANNOTATORS)
            ))
        } else {
            Some(JUDGES[judge].to_string())
        };
        let id = format!("synth-{:0width$}", i + 1);
        p_a.insert(id.clone(), p);
        judgements.push(Judgement {
            id,
            prompt: Prompt::Text(prompt_text),
            response_a: a.text,
            response_b: b.text,
            winner,
            judge: Some(JUDGES[judge].to_string()),
            annotator,
            scenario: Some(SCENARIOS[scenario].to_string()),
            factors_a: factor_map(&a.f),
            factors_b: factor_map(&b.f),
            extra: Default::default(),
        });
    }
    let mut wmap = BTreeMap::new();
    for (j, judge) in JUDGES.iter().enumerate() {
        let mut per = BTreeMap::new();
        for (s, sc) in SCENARIOS.iter().enumerate() {
            per.insert(sc.to_string(), factor_map(&weights(j, s)));
        }
        wmap.insert(judge.to_string(), per);
    }
    let truth = Truth {
        model: "P(A wins) = sigmoid(sum_k w[judge][scenario][k] * (f_k(A) - f_k(B))); winner drawn from it (no ties); see docs/data.md".into(),
        seed: opts.seed,
        n: opts.n,
        factors: FACTORS.iter().zip(FACTOR_DEFINITIONS).map(|(k, d)| (k.to_string(), d.to_string())).collect(),
        weights: wmap,
        p_a,
        annotator_groups: BTreeMap::new(),
        group_weights: BTreeMap::new(),
    };
    let mut truth = truth;
    if let Some(g) = planted {
        truth.model = "P(A wins) = sigmoid(sum_k w[group of annotator][k] * (f_k(A) - f_k(B))); annotator k (1-based) is in group (k - 1) mod G; winner drawn from it (no ties); see docs/data.md".into();
        truth.weights.clear();
        for k in 0..g.annotators {
            truth
                .annotator_groups
                .insert(g.annotator_id(k), g.group_of(k));
        }
        for (gi, w) in GROUP_WEIGHTS.iter().enumerate().take(g.groups) {
            truth.group_weights.insert(gi.to_string(), factor_map(w));
        }
    }
    SynthData { judgements, truth }
}

/// The three files [`write_synthetic`] writes.
#[derive(Debug, Clone)]
pub struct SynthFiles {
    /// Pairwise judgements (JSONL).
    pub judgements: PathBuf,
    /// Ground truth (JSON).
    pub truth: PathBuf,
    /// The same pairs as chosen/rejected (JSONL).
    pub pairs: PathBuf,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}{suffix}"))
}

/// Largest number of synthetic judgements (`data synth --n`; README, "Limits").
pub const MAX_N: usize = 10_000_000;

/// Generates and writes `out` (judgements), `out`-stem`.truth.json` and `.pairs.jsonl`.
pub fn write_synthetic(out: &Path, opts: &SynthOptions) -> Result<SynthFiles, DataError> {
    write_synthetic_with(out, opts, None)
}

/// [`write_synthetic`] with planted annotator groups when `planted` is given.
pub fn write_synthetic_with(
    out: &Path,
    opts: &SynthOptions,
    planted: Option<&PlantedGroups>,
) -> Result<SynthFiles, DataError> {
    if let Some(g) = planted {
        g.validate()?;
    }
    if opts.n == 0 || opts.n > MAX_N {
        return Err(DataError::Invalid(format!(
            "--n {}: must be from 1 to {MAX_N} (README, \"Limits\")",
            opts.n
        )));
    }
    let data = generate_with(opts, planted);
    let files = SynthFiles {
        judgements: out.to_path_buf(),
        truth: sibling(out, ".truth.json"),
        pairs: sibling(out, ".pairs.jsonl"),
    };
    let recs: Vec<_> = data
        .judgements
        .iter()
        .map(|j| record_to_json(&Record::Judgement(j.clone())))
        .collect();
    let pairs: Vec<_> = data
        .judgements
        .iter()
        .filter_map(|j| j.to_pair())
        .map(|p| record_to_json(&Record::Pair(p)))
        .collect();
    fn lines(values: &[serde_json::Value]) -> SetFill<'_> {
        Box::new(move |w: &mut dyn Write| {
            for v in values {
                serde_json::to_writer(&mut *w, v)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })
    }
    let truth: SetFill<'_> = Box::new(|w: &mut dyn Write| {
        serde_json::to_writer_pretty(&mut *w, &data.truth)?;
        w.write_all(b"\n")
    });
    // The three files are one set: all written and synced before any is renamed into place,
    // so a failure leaves the previous set (or nothing), never a mix.
    let set = [&files.judgements, &files.pairs, &files.truth];
    write_set(vec![
        (set[0].as_path(), lines(&recs)),
        (set[1].as_path(), lines(&pairs)),
        (set[2].as_path(), truth),
    ])
    .map_err(|(i, e)| DataError::io(set[i], e))?;
    Ok(files)
}
