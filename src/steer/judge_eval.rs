//! How well a local judge agrees with the A/B behaviour score on a steering vector: generate
//! from prompts at every multiplier, have the judge rate each generation (behaviour and
//! coherence, 1–4) and compare each steered generation with the unsteered one (order swapped),
//! ask it about labelled A/B answers whose behaviour is known, and report its self-agreement and
//! its Spearman correlation with the A/B score.
//!
//! The judge itself is [`super::judge`]; this module only orchestrates and summarises.
use serde::Serialize;

use super::collect::steering_hooks;
use super::error::{Result, SteerError};
use super::eval::{item_score, split_for_vectors, steered_generations, AbScorer, AbTokens};
use super::judge::{agreement, Agreement, Comparison, Criterion, Judge, Preference, Rating};
use super::side_effects::Decode;
use super::SteeringVector;
use crate::jobs::{Progress, ProgressSink};
use crate::model::{GenerateOptions, Hooks, Model};

/// An A/B item as text, for the judge's labelled check: the matching answer shows the behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledPair {
    /// The question.
    pub question: String,
    /// The behaviour-matching answer.
    pub matching: String,
    /// The non-matching answer.
    pub non_matching: String,
}

/// Inputs of [`judge_study`].
pub struct JudgeStudyInputs<'a> {
    /// The steering vector.
    pub vector: &'a SteeringVector,
    /// Held-out A/B items scored at every multiplier.
    pub eval: &'a [AbTokens],
    /// Labelled answers the judge compares (matching vs non-matching).
    pub labelled: &'a [LabelledPair],
    /// Prompts to generate from: text (shown to the judge) and chat-formatted ids.
    pub prompts: &'a [(String, Vec<u32>)],
    /// Multipliers (0 is added when missing: the pairwise reference).
    pub multipliers: &'a [f64],
    /// The behaviour in words ("speaks positively about what it describes").
    pub behaviour: &'a str,
    /// Generation settings (greedy by default).
    pub generate: GenerateOptions,
    /// Items / prompts per forward pass.
    pub batch_size: usize,
    /// Decodes generated ids to text.
    pub decode: Decode<'a>,
}

/// One generation and its ratings.
#[derive(Debug, Clone, Serialize)]
pub struct RatedGeneration {
    /// Index into the prompts.
    pub prompt_index: usize,
    /// Multiplier it was generated at.
    pub multiplier: f64,
    /// The text.
    pub text: String,
    /// Behaviour rating (BiPO's 1–4 rubric).
    pub behaviour: Rating,
    /// Coherence rating (1–4).
    pub coherence: Rating,
}

/// A steered generation compared with the unsteered one of the same prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PairedJudgement {
    /// Index into the prompts.
    pub prompt_index: usize,
    /// The steered generation's multiplier.
    pub multiplier: f64,
    /// p(steered shows the behaviour more), order-swapped.
    pub behaviour: Preference,
    /// p(steered is more coherent), order-swapped.
    pub coherence: Preference,
}

/// Per-multiplier summary.
#[derive(Debug, Clone, Serialize)]
pub struct MultiplierRow {
    /// The multiplier.
    pub multiplier: f64,
    /// Held-out A/B behaviour score.
    pub ab_score: f64,
    /// Mean judge behaviour rating over prompts.
    pub behaviour_rating: f64,
    /// Mean judge coherence rating over prompts.
    pub coherence_rating: f64,
    /// Mean p(steered more of the behaviour than unsteered) (none at 0).
    pub behaviour_preference: Option<f64>,
}

/// Everything [`judge_study`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct JudgeReport {
    /// The steered model.
    pub model: String,
    /// The judge model.
    pub judge_model: String,
    /// The behaviour in words.
    pub behaviour: String,
    /// A/B items scored.
    pub n_eval: usize,
    /// Prompts generated from.
    pub n_prompts: usize,
    /// One row per multiplier (sorted).
    pub rows: Vec<MultiplierRow>,
    /// Every generation with its ratings.
    pub generations: Vec<RatedGeneration>,
    /// Every steered-vs-unsteered comparison.
    pub paired: Vec<PairedJudgement>,
    /// The labelled check: p(matching answer shows the behaviour more) per item.
    pub labelled: Vec<Preference>,
    /// Fraction of labelled items where the judge prefers the matching answer (> ½).
    pub labelled_accuracy: Option<f64>,
    /// Self-agreement over the behaviour comparisons (paired and labelled).
    pub behaviour_agreement: Option<Agreement>,
    /// Self-agreement over the coherence comparisons.
    pub coherence_agreement: Option<Agreement>,
    /// Spearman over multipliers: mean behaviour rating vs A/B score.
    pub spearman_multipliers: Option<f64>,
    /// Spearman over generations: behaviour rating vs the A/B score at its multiplier.
    pub spearman_generations: Option<f64>,
    /// Spearman over steered generations: p(steered more) vs the A/B score shift.
    pub spearman_paired: Option<f64>,
    /// Mean probability the judge put on the allowed labels (A/B letters, digits 1–4).
    pub label_mass: f64,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Runs the study: A/B scores and greedy generations of `model` steered by the vector at every
/// multiplier, judged by `judge` (which may run on another model).
pub fn judge_study(
    model: &Model,
    judge: &Judge<'_>,
    inputs: JudgeStudyInputs<'_>,
    sink: &dyn ProgressSink,
) -> Result<JudgeReport> {
    let v = inputs.vector;
    v.check_model(model.hidden_size(), model.n_layers())?;
    if inputs.eval.is_empty() {
        return Err(SteerError::Invalid(
            "the held-out set has no A/B items".into(),
        ));
    }
    if inputs.prompts.is_empty() {
        return Err(SteerError::Invalid("no prompts to generate from".into()));
    }
    if inputs.behaviour.trim().is_empty() {
        return Err(SteerError::Invalid(
            "--behaviour: describe the behaviour in words".into(),
        ));
    }
    super::sweep::check_grid(&[0], inputs.multipliers, 1)?;
    let mut mults = inputs.multipliers.to_vec();
    if !mults.contains(&0.0) {
        mults.push(0.0);
    }
    mults.sort_by(f64::total_cmp);
    mults.dedup();
    // A/B score per multiplier.
    sink.report(Progress::new("preparing A/B items", 0, None));
    let scorer = AbScorer::new(
        model,
        inputs.eval,
        split_for_vectors([v]),
        inputs.batch_size,
        &Quiet(sink),
    )?;
    let mut ab = Vec::new();
    for (i, &m) in mults.iter().enumerate() {
        let hooks = if m == 0.0 {
            Hooks::new()
        } else {
            steering_hooks(model, v, m)?
        };
        let (lm, ln) = scorer.logprobs(&hooks, &Quiet(sink))?;
        let s = lm
            .iter()
            .zip(&ln)
            .map(|(a, b)| item_score(*a, *b))
            .sum::<f64>()
            / lm.len() as f64;
        if !s.is_finite() {
            return Err(SteerError::Invalid(format!(
                "× {m}: the A/B score is not finite (the model produced non-finite values)"
            )));
        }
        ab.push(s);
        sink.report(Progress::new(
            "A/B scores",
            i as u64 + 1,
            Some(mults.len() as u64),
        ));
    }
    // Generations.
    let ids: Vec<Vec<u32>> = inputs.prompts.iter().map(|(_, p)| p.clone()).collect();
    let gens = steered_generations(model, &ids, &[(v, 1.0)], &mults, &inputs.generate, sink)?;
    let texts: Vec<String> = gens.iter().map(|g| (inputs.decode)(&g.ids)).collect();
    // Ratings.
    let rate_items: Vec<(String, String)> = gens
        .iter()
        .zip(&texts)
        .map(|(g, t)| (inputs.prompts[g.prompt_index].0.clone(), t.clone()))
        .collect();
    let behaviour = Criterion::behaviour(inputs.behaviour);
    let coherence = Criterion::coherence();
    let b_ratings = judge.rate(&rate_items, &behaviour, sink)?;
    let c_ratings = judge.rate(&rate_items, &coherence, sink)?;
    // Steered vs unsteered, same prompt.
    let unsteered = |p: usize| {
        gens.iter()
            .zip(&texts)
            .find(|(g, _)| g.prompt_index == p && g.multiplier == 0.0)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let mut pair_keys = Vec::new();
    let mut comparisons = Vec::new();
    for (g, t) in gens.iter().zip(&texts) {
        if g.multiplier == 0.0 {
            continue;
        }
        pair_keys.push((g.prompt_index, g.multiplier));
        comparisons.push(Comparison {
            prompt: inputs.prompts[g.prompt_index].0.clone(),
            a: t.clone(),
            b: unsteered(g.prompt_index),
        });
    }
    let pb = judge.compare(&comparisons, &behaviour, sink)?;
    let pc = judge.compare(&comparisons, &coherence, sink)?;
    // Labelled check.
    let labelled_cmp: Vec<Comparison> = inputs
        .labelled
        .iter()
        .map(|l| Comparison {
            prompt: l.question.clone(),
            a: l.matching.clone(),
            b: l.non_matching.clone(),
        })
        .collect();
    let labelled = judge.compare(&labelled_cmp, &behaviour, sink)?;
    // Summaries.
    let score_at = |m: f64| ab[mults.iter().position(|x| *x == m).unwrap_or(0)];
    let base = score_at(0.0);
    let rows: Vec<MultiplierRow> = mults
        .iter()
        .zip(&ab)
        .map(|(&m, &s)| {
            let of = |r: &[Rating]| {
                let xs: Vec<f64> = gens
                    .iter()
                    .zip(r)
                    .filter(|(g, _)| g.multiplier == m)
                    .map(|(_, r)| r.expected)
                    .collect();
                xs.iter().sum::<f64>() / xs.len().max(1) as f64
            };
            let prefs: Vec<f64> = pair_keys
                .iter()
                .zip(&pb)
                .filter(|((_, pm), _)| *pm == m)
                .map(|(_, p)| p.probability)
                .collect();
            MultiplierRow {
                multiplier: m,
                ab_score: s,
                behaviour_rating: of(&b_ratings),
                coherence_rating: of(&c_ratings),
                behaviour_preference: (!prefs.is_empty())
                    .then(|| prefs.iter().sum::<f64>() / prefs.len() as f64),
            }
        })
        .collect();
    let spearman = crate::numeric::stats::spearman;
    let spearman_multipliers = finite(spearman(
        &rows.iter().map(|r| r.behaviour_rating).collect::<Vec<_>>(),
        &ab,
    ));
    let spearman_generations = finite(spearman(
        &b_ratings.iter().map(|r| r.expected).collect::<Vec<_>>(),
        &gens
            .iter()
            .map(|g| score_at(g.multiplier))
            .collect::<Vec<_>>(),
    ));
    let spearman_paired = finite(spearman(
        &pb.iter().map(|p| p.probability).collect::<Vec<_>>(),
        &pair_keys
            .iter()
            .map(|(_, m)| score_at(*m) - base)
            .collect::<Vec<_>>(),
    ));
    let mut all_b = pb.clone();
    all_b.extend(labelled.iter().copied());
    let masses: Vec<f64> = all_b
        .iter()
        .chain(&pc)
        .map(|p| p.label_mass)
        .chain(b_ratings.iter().chain(&c_ratings).map(|r| r.label_mass))
        .collect();
    let generations = gens
        .iter()
        .zip(&texts)
        .zip(b_ratings.iter().zip(&c_ratings))
        .map(|((g, t), (b, c))| RatedGeneration {
            prompt_index: g.prompt_index,
            multiplier: g.multiplier,
            text: t.clone(),
            behaviour: *b,
            coherence: *c,
        })
        .collect();
    let paired = pair_keys
        .iter()
        .zip(pb.iter().zip(&pc))
        .map(|((p, m), (b, c))| PairedJudgement {
            prompt_index: *p,
            multiplier: *m,
            behaviour: *b,
            coherence: *c,
        })
        .collect();
    Ok(JudgeReport {
        model: model.name().to_string(),
        judge_model: judge.model_name().to_string(),
        behaviour: inputs.behaviour.trim().to_string(),
        n_eval: inputs.eval.len(),
        n_prompts: inputs.prompts.len(),
        rows,
        generations,
        paired,
        labelled_accuracy: (!labelled.is_empty()).then(|| {
            labelled.iter().filter(|p| p.probability > 0.5).count() as f64 / labelled.len() as f64
        }),
        labelled,
        behaviour_agreement: agreement(&all_b),
        coherence_agreement: agreement(&pc),
        spearman_multipliers,
        spearman_generations,
        spearman_paired,
        label_mass: masses.iter().sum::<f64>() / masses.len().max(1) as f64,
    })
}

/// Forwards only cancellation.
struct Quiet<'a>(&'a dyn ProgressSink);

impl ProgressSink for Quiet<'_> {
    fn report(&self, _: Progress) {}
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// The report's HTML page: per-multiplier table, agreement, every generation.
pub fn report_html(r: &JudgeReport) -> String {
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    let mut page = crate::report::HtmlPage::new("steerlab local judge");
    page.p(&format!(
        "Steered model {}; judge {}; behaviour \"{}\"; {} A/B items, {} prompts. \
         Ratings are expected values of the digits 1–4 in the judge's next-token distribution; \
         comparisons are asked in both orders.",
        r.model, r.judge_model, r.behaviour, r.n_eval, r.n_prompts
    ));
    let mut t = crate::report::Table::new([
        "multiplier",
        "A/B score",
        "behaviour rating",
        "coherence rating",
        "p(steered more behaviour)",
    ]);
    for row in &r.rows {
        t.row([
            format!("{}", row.multiplier),
            format!("{:.4}", row.ab_score),
            format!("{:.3}", row.behaviour_rating),
            format!("{:.3}", row.coherence_rating),
            f(row.behaviour_preference),
        ]);
    }
    page.table(&t);
    let ag = |a: &Option<Agreement>| {
        a.map(|a| {
            format!(
                "{:.3} over {} comparisons (position bias {:+.3}, label mass {:.3})",
                a.self_agreement, a.n, a.position_bias, a.label_mass
            )
        })
        .unwrap_or_else(|| "-".into())
    };
    page.h2("Agreement");
    let mut t = crate::report::Table::new(["measure", "value"]);
    t.row(["labelled accuracy".to_string(), f(r.labelled_accuracy)]);
    t.row([
        "behaviour self-agreement (order swapped)".to_string(),
        ag(&r.behaviour_agreement),
    ]);
    t.row([
        "coherence self-agreement (order swapped)".to_string(),
        ag(&r.coherence_agreement),
    ]);
    t.row([
        "Spearman, mean rating vs A/B score over multipliers".to_string(),
        f(r.spearman_multipliers),
    ]);
    t.row([
        "Spearman, rating vs A/B score over generations".to_string(),
        f(r.spearman_generations),
    ]);
    t.row([
        "Spearman, p(steered more) vs A/B shift".to_string(),
        f(r.spearman_paired),
    ]);
    t.row(["label mass".to_string(), format!("{:.3}", r.label_mass)]);
    page.table(&t);
    page.h2("Generations");
    let mut t =
        crate::report::Table::new(["prompt", "multiplier", "behaviour", "coherence", "text"]);
    for g in &r.generations {
        t.row([
            g.prompt_index.to_string(),
            format!("{}", g.multiplier),
            format!("{:.2}", g.behaviour.expected),
            format!("{:.2}", g.coherence.expected),
            g.text.clone(),
        ]);
    }
    page.table(&t);
    page.finish()
}
