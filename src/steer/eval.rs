//! Behaviour evaluation (DESIGN.md §3): the A/B behaviour score — the mean over items of
//! `p(matching) / (p(matching) + p(non-matching))`, `p` the probability of the whole answer
//! after the chat-formatted question — at each multiplier of a sweep, for several vectors side
//! by side; and steered generations. Inputs are token ids; no tokenization or UI here.
use super::collect::{add_steering, score_completions, Completion};
use super::error::{Result, SteerError};
use super::vector::SteeringVector;
use crate::jobs::{NoProgress, Progress, ProgressSink};
use crate::model::{GenerateOptions, Hooks, Model};
use serde::Serialize;

/// One A/B item as token ids: the same prompt with the behaviour-matching and the
/// non-matching answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbTokens {
    /// Prompt + matching answer.
    pub matching: Completion,
    /// Prompt + non-matching answer.
    pub non_matching: Completion,
}

/// `p_m / (p_m + p_n) = σ(log p_m − log p_n)` for one item, computed stably.
pub fn item_score(logp_matching: f64, logp_non: f64) -> f64 {
    let z = logp_matching - logp_non;
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Mean of [`item_score`] over items.
pub fn behaviour_score_from_logprobs(logp_matching: &[f64], logp_non: &[f64]) -> Result<f64> {
    if logp_matching.len() != logp_non.len() || logp_matching.is_empty() {
        return Err(SteerError::Invalid(format!(
            "behaviour score needs as many matching as non-matching log-probs, at least one ({} vs {})",
            logp_matching.len(),
            logp_non.len()
        )));
    }
    let s: f64 = logp_matching
        .iter()
        .zip(logp_non)
        .map(|(m, n)| item_score(*m, *n))
        .sum();
    Ok(s / logp_matching.len() as f64)
}

/// The behaviour score of `items` with `hooks` applied (e.g. [`super::collect::steering_hooks`]).
pub fn behaviour_score(
    model: &Model,
    items: &[AbTokens],
    hooks: &Hooks,
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<f64> {
    let mut all: Vec<Completion> = Vec::with_capacity(items.len() * 2);
    for it in items {
        all.push(it.matching.clone());
        all.push(it.non_matching.clone());
    }
    let lp = score_completions(model, &all, hooks, batch_size, progress)?;
    let m: Vec<f64> = lp.iter().step_by(2).copied().collect();
    let n: Vec<f64> = lp.iter().skip(1).step_by(2).copied().collect();
    behaviour_score_from_logprobs(&m, &n)
}

/// One point of a sweep (the `--json` row of `steerlab steer eval`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The vector's name (its file, or the name given).
    pub vector: String,
    /// The multiplier.
    pub multiplier: f64,
    /// The behaviour score.
    pub score: f64,
}

/// The behaviour score of every named vector at every multiplier. Multiplier 0 (no steering)
/// is scored once and shared by all vectors.
pub fn sweep(
    model: &Model,
    items: &[AbTokens],
    vectors: &[(String, SteeringVector)],
    multipliers: &[f64],
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<Vec<SweepPoint>> {
    for (_, v) in vectors {
        v.check_model(model.hidden_size(), model.n_layers())?;
    }
    let total = (vectors.len() * multipliers.len()) as u64;
    let mut baseline: Option<f64> = None;
    let mut out = Vec::new();
    for (name, v) in vectors {
        for &m in multipliers {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let score = if m == 0.0 {
                match baseline {
                    Some(b) => b,
                    None => {
                        let b =
                            behaviour_score(model, items, &Hooks::new(), batch_size, &NoProgress)?;
                        baseline = Some(b);
                        b
                    }
                }
            } else {
                let mut hooks = Hooks::new();
                add_steering(&mut hooks, model, v, m)?;
                behaviour_score(model, items, &hooks, batch_size, &NoProgress)?
            };
            out.push(SweepPoint {
                vector: name.clone(),
                multiplier: m,
                score,
            });
            progress.report(
                Progress::new(format!("{name} × {m}"), out.len() as u64, Some(total))
                    .metric("score", score),
            );
        }
    }
    Ok(out)
}

/// One steered generation.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeredGeneration {
    /// Index of the prompt in the input list.
    pub prompt_index: usize,
    /// The multiplier (0 = unsteered).
    pub multiplier: f64,
    /// The generated token ids.
    pub ids: Vec<u32>,
}

/// Generates from every prompt at every multiplier with `scale × Σ vectors` applied
/// (`vectors` are `(vector, weight)` pairs combined as in [`SteeringVector::compose`]).
pub fn steered_generations(
    model: &Model,
    prompts: &[Vec<u32>],
    vectors: &[(&SteeringVector, f64)],
    multipliers: &[f64],
    opts: &GenerateOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<SteeredGeneration>> {
    let total = (prompts.len() * multipliers.len()) as u64;
    let mut out = Vec::new();
    for &m in multipliers {
        let mut hooks = Hooks::new();
        if m != 0.0 {
            for (v, w) in vectors {
                add_steering(&mut hooks, model, v, m * w)?;
            }
        }
        for (i, p) in prompts.iter().enumerate() {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let ids = model.generate(p, opts, &hooks, &mut |_, _| !progress.is_cancelled())?;
            out.push(SteeredGeneration {
                prompt_index: i,
                multiplier: m,
                ids,
            });
            progress.report(Progress::new("generating", out.len() as u64, Some(total)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_score_is_the_probability_ratio() {
        // p_m = 0.2, p_n = 0.05 → 0.8
        let s = item_score(0.2f64.ln(), 0.05f64.ln());
        assert!((s - 0.8).abs() < 1e-12);
        assert!((item_score(-3.0, -3.0) - 0.5).abs() < 1e-15);
        // extreme log-probs stay finite
        assert!((item_score(-1.0, -2000.0) - 1.0).abs() < 1e-12);
        assert!(item_score(-2000.0, -1.0) < 1e-300);
        let b = behaviour_score_from_logprobs(&[0.2f64.ln(), -1.0], &[0.05f64.ln(), -1.0]).unwrap();
        assert!((b - 0.65).abs() < 1e-12);
        assert!(behaviour_score_from_logprobs(&[], &[]).is_err());
    }
}
