//! What a steering intervention costs besides the behaviour it moves, measured per sweep point:
//! next-token KL(steered ‖ unsteered) on neutral prompts, repetition of steered generations
//! (distinct-2 and compression ratio) and capability (A/B accuracy on a multiple-choice set),
//! each with a percentile-bootstrap interval over prompts or items.
//!
//! The default neutral prompts are written for steerlab (see [`DEFAULT_NEUTRAL_PROMPTS`]). This
//! module measures; it does not train vectors, choose points or write files.
use std::io::Write;

use candle_core::{DType, Tensor, D};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::collect::{completion_batch, Completion};
use super::error::{Result, SteerError};
use super::eval::{AbScorer, AbTokens};
use crate::jobs::ProgressSink;
use crate::model::{GenerateOptions, Hooks, Model};

/// Neutral everyday requests with no sentiment, persona or refusal trigger, written by hand
/// for steerlab (public domain, no external source): the default prompts on which KL and
/// repetition are measured. Each is one user turn.
pub const DEFAULT_NEUTRAL_PROMPTS: [&str; 24] = [
    "Explain how a bicycle gear works.",
    "List three uses of a paper clip.",
    "What is the capital of Canada?",
    "Describe the water cycle in two sentences.",
    "How many minutes are in a day?",
    "Give me a recipe for boiled eggs.",
    "What does a librarian do?",
    "Summarize the rules of chess in a few lines.",
    "How do I convert Celsius to Fahrenheit?",
    "Name the planets of the solar system.",
    "What is photosynthesis?",
    "Write a short note reminding me to buy milk.",
    "How does a refrigerator keep food cold?",
    "What is the difference between weather and climate?",
    "Explain what a prime number is.",
    "How do you tie a basic knot?",
    "What are the primary colors?",
    "Describe how to plant a tomato seed.",
    "What is the boiling point of water at sea level?",
    "Explain what a spreadsheet is used for.",
    "How long does it take light from the Sun to reach Earth?",
    "What is a noun? Give an example.",
    "Describe the layout of a typical kitchen.",
    "How do trains stay on their tracks?",
];

/// Turns token ids into text (the model's tokenizer), for the compression ratio.
pub type Decode<'a> = Box<dyn Fn(&[u32]) -> String + 'a>;

/// A mean with a 95 % percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean over items.
    pub mean: f64,
    /// 2.5 % bootstrap quantile.
    pub lo: f64,
    /// 97.5 % bootstrap quantile.
    pub hi: f64,
}

/// The mean of `xs` with a 95 % percentile-bootstrap interval from `resamples` resamples
/// (seeded; deterministic). Fails on an empty or non-finite sample.
pub fn bootstrap_mean(xs: &[f64], resamples: usize, seed: u64) -> Result<Estimate> {
    if xs.is_empty() {
        return Err(SteerError::Invalid("bootstrap of an empty sample".into()));
    }
    if let Some(i) = xs.iter().position(|x| !x.is_finite()) {
        return Err(SteerError::Invalid(format!(
            "bootstrap: value {i} is {} (not finite)",
            xs[i]
        )));
    }
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    if resamples == 0 || n == 1 {
        return Ok(Estimate {
            mean,
            lo: mean,
            hi: mean,
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| means[((p * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Ok(Estimate {
        mean,
        lo: q(0.025),
        hi: q(0.975),
    })
}

/// Distinct-2 of a token sequence: distinct bigrams over bigrams (1 for fewer than 2 tokens:
/// nothing repeats).
pub fn distinct2(ids: &[u32]) -> f64 {
    if ids.len() < 2 {
        return 1.0;
    }
    let mut bigrams: Vec<(u32, u32)> = ids.windows(2).map(|w| (w[0], w[1])).collect();
    let total = bigrams.len();
    bigrams.sort_unstable();
    bigrams.dedup();
    bigrams.len() as f64 / total as f64
}

/// Compression ratio of a text: its UTF-8 bytes over their raw-deflate size (higher = more
/// repetitive; an empty text gives 1).
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 1.0;
    }
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    let out = enc.finish().unwrap_or_default();
    text.len() as f64 / out.len().max(1) as f64
}

/// Side effects of one intervention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideEffects {
    /// Mean next-token KL(steered ‖ unsteered) over the continuation tokens of each neutral
    /// prompt, in nats.
    pub kl: Estimate,
    /// Distinct-2 of steered greedy generations.
    pub distinct2: Estimate,
    /// Compression ratio of steered greedy generations.
    pub compression: Estimate,
    /// `1 − distinct-2`: the fraction of repeated bigrams (the repetition budget's quantity).
    pub repetition: Estimate,
    /// A/B accuracy on the capability set, when one was given.
    pub capability: Option<Estimate>,
    /// A few steered generations (text), for the report.
    pub samples: Vec<String>,
}

/// Settings of [`SideEffectMeter`].
#[derive(Debug, Clone)]
pub struct MeterConfig {
    /// Unsteered greedy continuation tokens per neutral prompt on which KL is measured.
    pub kl_tokens: usize,
    /// Neutral prompts generated from for repetition (the first ones).
    pub gen_prompts: usize,
    /// Tokens per repetition generation.
    pub gen_tokens: usize,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// A/B items per forward pass of the capability scorer.
    pub batch_size: usize,
}

impl Default for MeterConfig {
    fn default() -> Self {
        Self {
            kl_tokens: 12,
            gen_prompts: 4,
            gen_tokens: 24,
            resamples: 1000,
            seed: 17,
            batch_size: 8,
        }
    }
}

/// Measures [`SideEffects`] under many sets of hooks: the unsteered continuations and their
/// next-token distributions are computed once, at construction.
pub struct SideEffectMeter<'m> {
    model: &'m Model,
    cfg: MeterConfig,
    /// Neutral prompt + unsteered greedy continuation (prompt lengths set, so the positions
    /// `generated` are the continuation).
    continuations: Vec<Completion>,
    /// Unsteered log-probabilities at the continuation-predicting rows, `[N, V]` (f32).
    reference: Tensor,
    /// Owner (continuation index) of each row of `reference`.
    owner: Vec<usize>,
    gen_prompts: Vec<Vec<u32>>,
    capability: Option<AbScorer<'m>>,
    decode: Decode<'m>,
}

impl<'m> SideEffectMeter<'m> {
    /// Prepares the meter: `neutral` chat-formatted prompt ids (at least 2), an optional
    /// capability set (A/B items, the correct answer as `matching`), `decode` turning ids into
    /// text for the compression ratio.
    pub fn new(
        model: &'m Model,
        neutral: &[Vec<u32>],
        capability: Option<&[AbTokens]>,
        cfg: MeterConfig,
        decode: Decode<'m>,
        progress: &dyn ProgressSink,
    ) -> Result<Self> {
        if neutral.len() < 2 {
            return Err(SteerError::Invalid(format!(
                "side effects need at least 2 neutral prompts, got {}",
                neutral.len()
            )));
        }
        if cfg.kl_tokens == 0 || cfg.gen_tokens == 0 || cfg.gen_prompts == 0 {
            return Err(SteerError::Invalid(
                "side effects: KL tokens, generation tokens and generation prompts must be at least 1"
                    .into(),
            ));
        }
        let opts = GenerateOptions {
            max_new_tokens: cfg.kl_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_at_eos: true,
        };
        let mut continuations = Vec::new();
        for p in neutral {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let ids = model.generate(p, &opts, &Hooks::new(), &mut |_, _| true)?;
            if !ids.is_empty() {
                continuations.push(Completion {
                    prompt: p.clone(),
                    response: ids,
                });
            }
        }
        if continuations.len() < 2 {
            return Err(SteerError::Invalid(
                "side effects: the model ends its answer at once on almost every neutral prompt; no continuation to measure KL on".into(),
            ));
        }
        let (reference, owner) = continuation_logprobs(model, &continuations, &Hooks::new())?;
        let capability = match capability {
            None => None,
            Some(items) => Some(AbScorer::new(model, items, 0, cfg.batch_size, progress)?),
        };
        let gen_prompts = neutral.iter().take(cfg.gen_prompts).cloned().collect();
        Ok(Self {
            model,
            cfg,
            continuations,
            reference,
            owner,
            gen_prompts,
            capability,
            decode,
        })
    }

    /// Number of neutral prompts KL is averaged over.
    pub fn n_neutral(&self) -> usize {
        self.continuations.len()
    }

    /// Per-prompt mean KL(steered ‖ unsteered) over the continuation tokens.
    pub fn kl_per_prompt(&self, hooks: &Hooks) -> Result<Vec<f64>> {
        let (lp, _) = continuation_logprobs(self.model, &self.continuations, hooks)?;
        let p = lp.exp()?;
        let kl = (p * (&lp - &self.reference)?)?
            .sum(D::Minus1)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let mut sum = vec![0.0; self.continuations.len()];
        let mut cnt = vec![0usize; self.continuations.len()];
        for (k, o) in kl.into_iter().zip(&self.owner) {
            // Rounding can make a zero KL slightly negative.
            sum[*o] += k.max(0.0);
            cnt[*o] += 1;
        }
        Ok(sum
            .into_iter()
            .zip(cnt)
            .map(|(s, c)| s / c.max(1) as f64)
            .collect())
    }

    /// Every side effect of `hooks`.
    pub fn measure(&self, hooks: &Hooks, progress: &dyn ProgressSink) -> Result<SideEffects> {
        let cfg = &self.cfg;
        let kl = bootstrap_mean(&self.kl_per_prompt(hooks)?, cfg.resamples, cfg.seed)?;
        let opts = GenerateOptions {
            max_new_tokens: cfg.gen_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_at_eos: true,
        };
        let mut d2 = Vec::new();
        let mut cr = Vec::new();
        let mut samples = Vec::new();
        for p in &self.gen_prompts {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let ids = self
                .model
                .generate(p, &opts, hooks, &mut |_, _| !progress.is_cancelled())?;
            let text = (self.decode)(&ids);
            d2.push(distinct2(&ids));
            cr.push(compression_ratio(&text));
            samples.push(text);
        }
        let rep: Vec<f64> = d2.iter().map(|d| 1.0 - d).collect();
        let capability = match &self.capability {
            None => None,
            Some(s) => {
                let (m, n) = s.logprobs(hooks, progress)?;
                let acc: Vec<f64> = m
                    .iter()
                    .zip(&n)
                    .map(|(a, b)| if a > b { 1.0 } else { 0.0 })
                    .collect();
                Some(bootstrap_mean(&acc, cfg.resamples, cfg.seed + 3)?)
            }
        };
        Ok(SideEffects {
            kl,
            distinct2: bootstrap_mean(&d2, cfg.resamples, cfg.seed + 1)?,
            compression: bootstrap_mean(&cr, cfg.resamples, cfg.seed + 2)?,
            repetition: bootstrap_mean(&rep, cfg.resamples, cfg.seed + 1)?,
            capability,
            samples,
        })
    }
}

/// Log-softmax rows predicting each continuation token, `[N, V]` f32, and each row's owner.
fn continuation_logprobs(
    model: &Model,
    items: &[Completion],
    hooks: &Hooks,
) -> Result<(Tensor, Vec<usize>)> {
    let refs: Vec<&Completion> = items.iter().collect();
    let batch = completion_batch(&refs, model.device())?;
    let mut h = hooks.clone();
    h.clear_gates();
    let hidden = model.forward_hidden(&batch, &mut h)?;
    let (b, t, hs) = hidden.dims3()?;
    let mut rows = Vec::new();
    let mut owner = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let p = c.prompt.len();
        for j in 0..c.response.len() {
            rows.push((i * t + p + j - 1) as u32);
            owner.push(i);
        }
    }
    let n = rows.len();
    let sel = hidden
        .reshape((b * t, hs))?
        .index_select(&Tensor::from_vec(rows, n, model.device())?, 0)?;
    let logits = model.lm_head(&sel)?.to_dtype(DType::F32)?;
    Ok((candle_nn::ops::log_softmax(&logits, D::Minus1)?, owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_brackets_the_mean_and_is_deterministic() {
        let xs: Vec<f64> = (0..40).map(|i| (i % 7) as f64).collect();
        let a = bootstrap_mean(&xs, 500, 3).unwrap();
        let b = bootstrap_mean(&xs, 500, 3).unwrap();
        assert_eq!(a, b);
        let m = xs.iter().sum::<f64>() / 40.0;
        assert!((a.mean - m).abs() < 1e-12);
        assert!(a.lo < m && m < a.hi, "{a:?}");
        // a constant sample has a zero-width interval
        let c = bootstrap_mean(&[2.0; 10], 200, 1).unwrap();
        assert_eq!((c.lo, c.mean, c.hi), (2.0, 2.0, 2.0));
        assert!(bootstrap_mean(&[], 10, 1).is_err());
        assert!(bootstrap_mean(&[1.0, f64::NAN], 10, 1).is_err());
    }

    #[test]
    fn repetition_measures_match_hand_counts() {
        // bigrams (1,2) (2,1) (1,2) (2,1): 2 distinct of 4
        assert_eq!(distinct2(&[1, 2, 1, 2, 1]), 0.5);
        assert_eq!(distinct2(&[1, 2, 3]), 1.0);
        assert_eq!(distinct2(&[5]), 1.0);
        let rep = compression_ratio(&"the cat sat. ".repeat(30));
        let varied = compression_ratio("A quick brown fox jumps over the lazy dog near 42 rivers.");
        assert!(rep > 5.0 && varied < 1.5, "{rep} {varied}");
    }
}
