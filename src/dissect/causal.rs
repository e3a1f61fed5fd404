//! Causal preference dissection (issue 24), the model-free core: pick pairs that differ mostly
//! in one factor, measure the planted factors on generated text, turn measurements at −m, 0, +m
//! into steerability and side effects, judge steered against unsteered answers (the planted
//! rule of `steerlab data synth`, or a model through [`CausalJudge::Model`]), and fit the
//! interventional effects of the steerable factors with the same Bayesian logistic regression
//! (Laplace approximation) as the observational dissection.
//!
//! Generation is abstracted as a callback ([`Generate`]) so the core is testable without a
//! model; the CAA vectors and model wiring are [`super::causal_model`], the pages
//! [`super::causal_report`].
use super::error::DissectError;
use super::laplace;
use super::posterior::Posterior;
use crate::data::synth::FACTORS;
use crate::data::{Judgement, Winner};
use crate::jobs::{Progress, ProgressSink};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Index of a planted factor by name, or a clear error listing the known ones.
pub fn factor_index(name: &str) -> Result<usize, DissectError> {
    FACTORS.iter().position(|f| *f == name).ok_or_else(|| {
        DissectError::BadOption(format!(
            "unknown factor `{name}`; known: {}",
            FACTORS.join(", ")
        ))
    })
}

const REFUSAL_CUES: &[&str] = &[
    "i can't assist",
    "i cannot assist",
    "not able to help",
    "unable to help",
    "won't be able to",
    "decline to",
    "can't provide",
    "cannot provide",
    "i can't help",
    "i cannot help",
];
const EMPATHY_CUES: &[&str] = &[
    "sounds really",
    "feelings",
    "understandable",
    "i'm sorry you",
    "it's okay to feel",
    "must be discouraging",
    "totally normal to feel",
    "weighing on you",
];
const HEDGE_CUES: &[&str] = &[
    "might be wrong",
    "hard to say",
    "not completely sure",
    "may not apply",
    "grain of salt",
    "could be missing",
    "results can vary",
    "might be exceptions",
    "probably depends",
];

fn has_any(lower: &str, cues: &[&str]) -> f64 {
    if cues.iter().any(|c| lower.contains(c)) {
        1.0
    } else {
        0.0
    }
}

/// The planted factors of `steerlab data synth`, measured on any text, in [`FACTORS`] order:
/// length = words / 100, the others binary (see `FACTOR_DEFINITIONS`).
pub fn measure(text: &str) -> [f64; 9] {
    let lower = text.to_lowercase().replace('’', "'");
    let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
    let bullet = lines
        .iter()
        .any(|l| l.starts_with("- ") || l.starts_with("* "));
    let header = lines.iter().any(|l| l.starts_with('#'));
    let emoji = text
        .chars()
        .any(|c| matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF));
    [
        text.split_whitespace().count() as f64 / 100.0,
        f64::from(u8::from(bullet)),
        f64::from(u8::from(header)),
        f64::from(u8::from(text.contains("```"))),
        has_any(&lower, REFUSAL_CUES),
        has_any(&lower, EMPATHY_CUES),
        has_any(&lower, HEDGE_CUES),
        f64::from(u8::from(text.trim_end().ends_with('?'))),
        f64::from(u8::from(emoji)),
    ]
}

/// The planted logistic rule read from a `*.truth.json`: one weight per planted factor,
/// averaged over the file's judge × scenario cells (or its annotator groups).
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedJudge {
    /// Weights in [`FACTORS`] order.
    pub weights: [f64; 9],
}

#[derive(Deserialize)]
struct TruthFile {
    #[serde(default)]
    weights: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    #[serde(default)]
    group_weights: BTreeMap<String, BTreeMap<String, f64>>,
}

impl PlantedJudge {
    /// Reads and averages the planted weights; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self, DissectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DissectError::Source(format!("planted judge {}: {e}", path.display())))?;
        let t: TruthFile = serde_json::from_str(&text).map_err(|e| {
            DissectError::Source(format!(
                "planted judge {}: line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        let mut cells: Vec<&BTreeMap<String, f64>> =
            t.weights.values().flat_map(|s| s.values()).collect();
        cells.extend(t.group_weights.values());
        if cells.is_empty() {
            return Err(DissectError::Source(format!(
                "planted judge {}: field `weights` (or `group_weights`) holds no weights",
                path.display()
            )));
        }
        let mut w = [0.0; 9];
        for (k, name) in FACTORS.iter().enumerate() {
            let mut s = 0.0;
            for c in &cells {
                s += c.get(*name).copied().ok_or_else(|| {
                    DissectError::Source(format!(
                        "planted judge {}: field `weights` lacks factor `{name}`",
                        path.display()
                    ))
                })?;
            }
            w[k] = s / cells.len() as f64;
        }
        Ok(Self { weights: w })
    }

    /// P(first text wins) under the planted rule, on the measured factors.
    pub fn prob_first(&self, a: &str, b: &str) -> f64 {
        let (fa, fb) = (measure(a), measure(b));
        let z: f64 = (0..9).map(|k| self.weights[k] * (fa[k] - fb[k])).sum();
        1.0 / (1.0 + (-z).exp())
    }
}

/// Training pairs for one target factor: per pair, its score (|standardised target
/// difference| − max |standardised other difference|) and the orientation (true: A has more
/// of the target). Returns the `k` best (score > 0 only), best first.
pub fn select_pairs(
    data: &[Judgement],
    target: usize,
    k: usize,
) -> Result<Vec<(usize, bool)>, DissectError> {
    let diffs: Vec<[f64; 9]> = data
        .iter()
        .map(|j| {
            let (a, b) = (measure(&j.response_a), measure(&j.response_b));
            std::array::from_fn(|i| a[i] - b[i])
        })
        .collect();
    let n = diffs.len().max(1) as f64;
    let sd: [f64; 9] = std::array::from_fn(|i| {
        let r = (diffs.iter().map(|d| d[i] * d[i]).sum::<f64>() / n).sqrt();
        if r > 0.0 {
            r
        } else {
            1.0
        }
    });
    let mut scored: Vec<(f64, usize, bool)> = diffs
        .iter()
        .enumerate()
        .filter_map(|(p, d)| {
            let zt = d[target] / sd[target];
            let other = (0..9)
                .filter(|&i| i != target)
                .map(|i| (d[i] / sd[i]).abs())
                .fold(0.0, f64::max);
            let s = zt.abs() - other;
            (s > 0.0 && zt != 0.0).then_some((s, p, zt > 0.0))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    if scored.len() < 2 {
        return Err(DissectError::Empty(format!(
            "factor `{}`: only {} pair(s) differ mostly in it (need at least 2)",
            FACTORS[target],
            scored.len()
        )));
    }
    Ok(scored.into_iter().take(k).map(|(_, p, o)| (p, o)).collect())
}

/// Interval summary of one effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Posterior mean.
    pub mean: f64,
    /// 2.5% quantile.
    pub lo95: f64,
    /// 97.5% quantile.
    pub hi95: f64,
}

/// One factor's row of the causal report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausalFactor {
    /// Factor name.
    pub name: String,
    /// Weight in the observational fit on the pairs data.
    pub correlational: Effect,
    /// Standardised change of the factor per unit multiplier.
    pub steerability: f64,
    /// |Steerability| at or above the threshold.
    pub steerable: bool,
    /// Effect on the judge when steered (null when not steerable or the judge is a column).
    pub interventional: Option<Effect>,
    /// Other factors that moved beyond the threshold when this one was steered.
    pub moved_with: Vec<String>,
    /// Correlational and interventional means differ in sign.
    pub sign_differs: bool,
    /// The planted weight (planted judge only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planted_weight: Option<f64>,
}

/// The causal report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausalReport {
    /// Per-factor rows.
    pub factors: Vec<CausalFactor>,
    /// Steerability threshold.
    pub threshold: f64,
    /// Judge spec.
    pub judge: String,
    /// Notes (e.g. observational-only).
    pub notes: Vec<String>,
    /// Steering multiplier m.
    #[serde(default)]
    pub multiplier: f64,
    /// Spearman correlation between planted weights and interventional means over the
    /// steerable factors (planted judge, at least 2 steerable factors).
    #[serde(default)]
    pub spearman_planted: Option<f64>,
}

/// Fits a no-intercept Bayesian logistic regression on standardised rows; one [`Effect`] per
/// column.
pub fn fit_effects(
    rows: &[Vec<f64>],
    first_wins: &[bool],
    prior_scale: f64,
) -> Result<Vec<Effect>, DissectError> {
    let p = rows.first().map(Vec::len).unwrap_or(0);
    if rows.is_empty() || p == 0 {
        return Err(DissectError::Empty("no pairs to fit".into()));
    }
    let sd: Vec<f64> = (0..p)
        .map(|j| {
            let r = (rows.iter().map(|r| r[j] * r[j]).sum::<f64>() / rows.len() as f64).sqrt();
            if r > 0.0 {
                r
            } else {
                1.0
            }
        })
        .collect();
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&sd).map(|(v, s)| v / s).collect())
        .collect();
    let fit = laplace::fit(&Posterior::new(&x, first_wins, p, prior_scale))?;
    Ok((0..p)
        .map(|j| Effect {
            mean: fit.mean[j],
            lo95: fit.lo95[j],
            hi95: fit.hi95[j],
        })
        .collect())
}

/// The observational fit on the pairs data, over the requested factors (ties dropped).
pub fn correlational(data: &[Judgement], factors: &[usize]) -> Result<Vec<Effect>, DissectError> {
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for j in data {
        let w = match j.winner {
            Winner::A => true,
            Winner::B => false,
            Winner::Tie => continue,
        };
        let (a, b) = (measure(&j.response_a), measure(&j.response_b));
        rows.push(factors.iter().map(|&k| a[k] - b[k]).collect());
        y.push(w);
    }
    fit_effects(&rows, &y, 1.0)
}

/// A model judge: P(the first answer is better) for `(prompt, first, second)`.
pub type ModelJudgeFn<'a> = dyn Fn(&str, &str, &str) -> Result<f64, DissectError> + 'a;

/// How a judge decides between a steered and an unsteered answer.
pub enum CausalJudge<'a> {
    /// The planted rule; decisions are seeded Bernoulli draws.
    Planted(PlantedJudge),
    /// A loaded model compared pairwise in both orders; decisions are seeded Bernoulli draws
    /// of its probability.
    Model(Box<ModelJudgeFn<'a>>),
    /// An existing label column: observational only.
    Column(String),
}

impl CausalJudge<'_> {
    fn prob_first(&self, prompt: &str, a: &str, b: &str) -> Result<f64, DissectError> {
        match self {
            CausalJudge::Planted(p) => Ok(p.prob_first(a, b)),
            CausalJudge::Model(f) => f(prompt, a, b),
            CausalJudge::Column(c) => Err(DissectError::BadOption(format!(
                "judge column:{c} cannot compare generated answers"
            ))),
        }
    }
}

/// Generates an answer to a held-out prompt with the vector for `factor` at `multiplier`.
pub type Generate<'a> = dyn FnMut(&str, usize, f64) -> Result<String, DissectError> + 'a;

/// Settings of [`run_causal`].
#[derive(Debug, Clone)]
pub struct CausalConfig {
    /// Factor indices (into [`FACTORS`]).
    pub factors: Vec<usize>,
    /// Steering multiplier m.
    pub multiplier: f64,
    /// Steerability threshold.
    pub threshold: f64,
    /// Seed of the judge's draws.
    pub seed: u64,
}

/// Runs the causal dissection: correlational fit on `data`, then per factor generation at
/// −m, 0, +m on `prompts`, steerability, judged interventional pairs and a pooled fit.
pub fn run_causal(
    cfg: &CausalConfig,
    data: &[Judgement],
    prompts: &[String],
    judge: &CausalJudge<'_>,
    judge_spec: &str,
    generate: &mut Generate<'_>,
    progress: &dyn ProgressSink,
) -> Result<CausalReport, DissectError> {
    if cfg.factors.is_empty() {
        return Err(DissectError::Empty("no factors requested".into()));
    }
    let corr = correlational(data, &cfg.factors)?;
    let mut notes = Vec::new();
    let interventional = match judge {
        CausalJudge::Planted(_) | CausalJudge::Model(_) => true,
        CausalJudge::Column(c) => {
            notes.push(format!(
                "judge column:{c} is observational only: no interventional effects were measured"
            ));
            false
        }
    };
    if interventional && prompts.is_empty() {
        return Err(DissectError::Empty("no held-out prompts".into()));
    }
    if !cfg.multiplier.is_finite() || cfg.multiplier == 0.0 {
        return Err(DissectError::BadOption(format!(
            "multiplier {}: must be a finite non-zero number",
            cfg.multiplier
        )));
    }
    let sd_data: [f64; 9] = {
        let all: Vec<[f64; 9]> = data
            .iter()
            .flat_map(|j| [measure(&j.response_a), measure(&j.response_b)])
            .collect();
        let n = all.len().max(1) as f64;
        std::array::from_fn(|i| {
            let m = all.iter().map(|v| v[i]).sum::<f64>() / n;
            let v = all.iter().map(|x| (x[i] - m).powi(2)).sum::<f64>() / n;
            if v > 0.0 {
                v.sqrt()
            } else {
                1.0
            }
        })
    };
    let mut rows_out = Vec::new();
    let mut int_rows: Vec<Vec<f64>> = Vec::new();
    let mut int_y = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let total = (cfg.factors.len() * prompts.len() * 3) as u64;
    let mut step = 0u64;
    let mut steerable_flags = Vec::new();
    for (fi, &k) in cfg.factors.iter().enumerate() {
        if !interventional {
            rows_out.push(CausalFactor {
                name: FACTORS[k].into(),
                correlational: corr[fi],
                steerability: 0.0,
                steerable: false,
                interventional: None,
                moved_with: Vec::new(),
                sign_differs: false,
                planted_weight: None,
            });
            steerable_flags.push(false);
            continue;
        }
        let mut sums = [[0.0f64; 9]; 3];
        let mut answers: Vec<[String; 3]> = Vec::new();
        for prompt in prompts {
            let mut trio: [String; 3] = Default::default();
            for (s, sign) in [-1.0, 0.0, 1.0].iter().enumerate() {
                if progress.is_cancelled() {
                    return Err(DissectError::Cancelled);
                }
                trio[s] = generate(prompt, k, sign * cfg.multiplier)?;
                let m = measure(&trio[s]);
                for i in 0..9 {
                    sums[s][i] += m[i];
                }
                step += 1;
                progress.report(Progress::new(
                    format!("causal: {}", FACTORS[k]),
                    step,
                    Some(total),
                ));
            }
            answers.push(trio);
        }
        let n = prompts.len().max(1) as f64;
        let moves: [f64; 9] = std::array::from_fn(|i| {
            (sums[2][i] - sums[0][i]) / n / (2.0 * cfg.multiplier.abs().max(1e-12)) / sd_data[i]
        });
        let steer = moves[k];
        // A vector that moves the factor against its sign still moves it (the fit below uses
        // the measured differences), so the magnitude decides.
        let steerable = steer.abs() >= cfg.threshold && steer != 0.0;
        let moved_with = (0..9)
            .filter(|&i| i != k && moves[i].abs() >= cfg.threshold)
            .map(|i| FACTORS[i].to_string())
            .collect();
        if steerable {
            for (trio, prompt) in answers.iter().zip(prompts) {
                for s in [0usize, 2] {
                    if progress.is_cancelled() {
                        return Err(DissectError::Cancelled);
                    }
                    let (st, un) = (&trio[s], &trio[1]);
                    let p = judge.prob_first(prompt, st, un)?;
                    let wins = rng.random::<f64>() < p;
                    let (ms, mu) = (measure(st), measure(un));
                    int_rows.push(cfg.factors.iter().map(|&j| ms[j] - mu[j]).collect());
                    int_y.push(wins);
                }
            }
        }
        steerable_flags.push(steerable);
        rows_out.push(CausalFactor {
            name: FACTORS[k].into(),
            correlational: corr[fi],
            steerability: steer,
            steerable,
            interventional: None,
            moved_with,
            sign_differs: false,
            planted_weight: match judge {
                CausalJudge::Planted(p) => Some(p.weights[k]),
                _ => None,
            },
        });
    }
    if interventional && steerable_flags.iter().any(|s| *s) {
        // Fit only the steerable factors' columns (the others never moved on purpose).
        let cols: Vec<usize> = (0..cfg.factors.len())
            .filter(|&i| steerable_flags[i])
            .collect();
        let rows: Vec<Vec<f64>> = int_rows
            .iter()
            .map(|r| cols.iter().map(|&i| r[i]).collect())
            .collect();
        let eff = fit_effects(&rows, &int_y, 1.0)?;
        for (c, &fi) in cols.iter().enumerate() {
            let row = &mut rows_out[fi];
            let e = eff[c];
            row.sign_differs = e.mean.signum() != row.correlational.mean.signum();
            row.interventional = Some(e);
        }
    }
    let spearman_planted = {
        let (w, e): (Vec<f64>, Vec<f64>) = rows_out
            .iter()
            .filter_map(|r| Some((r.planted_weight?, r.interventional?.mean)))
            .unzip();
        spearman(&w, &e)
    };
    for r in rows_out.iter().filter(|r| interventional && !r.steerable) {
        notes.push(format!(
            "{}: not steerable (|steerability| {:.3} < threshold {})",
            r.name, r.steerability, cfg.threshold
        ));
    }
    Ok(CausalReport {
        factors: rows_out,
        threshold: cfg.threshold,
        judge: judge_spec.into(),
        notes,
        multiplier: cfg.multiplier,
        spearman_planted,
    })
}

/// Spearman rank correlation (average ranks for ties, [`crate::numeric::stats::spearman`]);
/// `None` under 2 points or when a side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let r = crate::numeric::stats::spearman(x, y);
    r.is_finite().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_planted_factors_on_text() {
        let t = "# Title\nI might be wrong about this, but\n- one\n- two\n```\nx\n```\nOk? 🙂\nWhat do you think?";
        let m = measure(t);
        assert_eq!(&m[1..], &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert!(m[0] > 0.0);
        assert_eq!(measure("plain text.")[1..], [0.0; 8]);
    }

    #[test]
    fn unknown_factor_is_named() {
        let e = factor_index("verbosity").unwrap_err().to_string();
        assert!(e.contains("verbosity") && e.contains("length"), "{e}");
    }

    #[test]
    fn missing_truth_file_names_the_path() {
        let e = PlantedJudge::from_file(Path::new("/nonexistent/x.truth.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.truth.json"), "{e}");
    }

    #[test]
    fn spearman_matches_hand_values() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0], &[1.0]), None);
    }

    fn fake(prompt: &str, factor: usize, m: f64) -> Result<String, DissectError> {
        // only the length factor responds to steering: 70 + 60·m extra words
        let extra = if factor == 0 {
            (70.0 + 60.0 * m) as usize
        } else {
            70
        };
        Ok(format!("{prompt} {}", "word ".repeat(extra)))
    }

    fn synth_data() -> Vec<Judgement> {
        crate::data::synth::generate(&crate::data::synth::SynthOptions { n: 300, seed: 4 })
            .judgements
    }

    #[test]
    fn planted_length_effect_recovered_and_unmoved_factor_not_steerable() {
        let mut w = [0.0; 9];
        w[0] = 3.0;
        let cfg = CausalConfig {
            factors: vec![0, 8],
            multiplier: 1.0,
            threshold: 0.1,
            seed: 7,
        };
        let prompts: Vec<String> = (0..40).map(|i| format!("Prompt {i}")).collect();
        let r = run_causal(
            &cfg,
            &synth_data(),
            &prompts,
            &CausalJudge::Planted(PlantedJudge { weights: w }),
            "planted:test",
            &mut fake,
            &crate::jobs::NoProgress,
        )
        .unwrap();
        let len = &r.factors[0];
        assert!(len.steerable, "{len:?}");
        let e = len.interventional.unwrap();
        assert!(e.mean > 0.0 && e.lo95 > 0.0, "{e:?}");
        let emo = &r.factors[1];
        assert!(!emo.steerable && emo.interventional.is_none(), "{emo:?}");
        // flip the planted sign: the recovered sign flips
        w[0] = -3.0;
        let r2 = run_causal(
            &cfg,
            &synth_data(),
            &prompts,
            &CausalJudge::Planted(PlantedJudge { weights: w }),
            "planted:test",
            &mut fake,
            &crate::jobs::NoProgress,
        )
        .unwrap();
        assert!(r2.factors[0].interventional.unwrap().hi95 < 0.0);
    }

    #[test]
    fn column_judge_is_observational_only() {
        let cfg = CausalConfig {
            factors: vec![0],
            multiplier: 1.0,
            threshold: 0.1,
            seed: 7,
        };
        let r = run_causal(
            &cfg,
            &synth_data(),
            &["p".into()],
            &CausalJudge::Column("winner".into()),
            "column:winner",
            &mut fake,
            &crate::jobs::NoProgress,
        )
        .unwrap();
        assert!(r.factors[0].interventional.is_none());
        assert!(r.notes[0].contains("observational only"));
    }

    #[test]
    fn too_few_pairs_is_an_error() {
        let e = select_pairs(&synth_data()[..1], 0, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("need at least 2"), "{e}");
    }
}
