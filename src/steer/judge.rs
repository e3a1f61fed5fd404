//! A local judge: any loaded language model rates responses on a 1–4 rubric (BiPO's behaviour
//! scale, or coherence) and compares two responses on a criterion, pairwise with the order
//! swapped.
//!
//! Both read the judge's **next-token distribution** after a judge prompt instead of sampling:
//! a rating is the expected value of the digits `1`–`4` (renormalised over the four), a
//! comparison is `p(A) / (p(A) + p(B))`. Each comparison is asked twice, with the responses in
//! both orders, and the two answers are combined into one preference probability; whether the
//! two orders agree is the judge's self-agreement (a position-biased judge picks the same
//! letter whatever the content). How much probability the judge puts on the allowed labels at
//! all is reported too (`label_mass`): a small model that would rather say something else is
//! not judging.
//!
//! The API is generic so other features reuse it: [`Judge::compare`] answers "for prompt P,
//! is answer A better than answer B on criterion C?" with an order-swapped probability.
//! No file reading and no UI here.
use serde::Serialize;

use super::error::{Result, SteerError};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, Hooks, Model, TextTokenizer};
use candle_core::{Tensor, D};

/// What a judge is asked about: the pairwise question and the 1–4 rating scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    /// Short name (`behaviour`, `coherence`, or the caller's).
    pub name: String,
    /// The pairwise question ("Which response … more?"), answered with A or B.
    pub pairwise: String,
    /// The rating question ("How … is the response?").
    pub rating: String,
    /// What 1, 2, 3 and 4 mean.
    pub scale: [String; 4],
}

impl Criterion {
    /// BiPO's behaviour rubric (1 = not at all … 4 = strongly) for a behaviour described in
    /// words, e.g. "speaks positively about what it describes".
    pub fn behaviour(description: &str) -> Self {
        let d = description.trim();
        Self {
            name: "behaviour".into(),
            pairwise: format!("Which response shows this behaviour more: {d}?"),
            rating: format!("How strongly does the response show this behaviour: {d}?"),
            scale: [
                "not at all, or the opposite".into(),
                "slightly".into(),
                "clearly".into(),
                "strongly, throughout the response".into(),
            ],
        }
    }

    /// Coherence and fluency of the text, whatever it says.
    pub fn coherence() -> Self {
        Self {
            name: "coherence".into(),
            pairwise: "Which response is more coherent and fluent?".into(),
            rating: "How coherent and fluent is the response?".into(),
            scale: [
                "incoherent: broken, looping or gibberish".into(),
                "partly coherent".into(),
                "mostly coherent, with small lapses".into(),
                "fully coherent and fluent".into(),
            ],
        }
    }

    /// A caller's criterion given as one pairwise question (its rating scale is generic).
    pub fn custom(name: &str, pairwise: &str) -> Self {
        Self {
            name: name.trim().into(),
            pairwise: pairwise.trim().into(),
            rating: format!("How well does the response meet this: {}", pairwise.trim()),
            scale: [
                "not at all".into(),
                "a little".into(),
                "mostly".into(),
                "fully".into(),
            ],
        }
    }

    fn check(&self) -> Result<()> {
        if self.pairwise.trim().is_empty() || self.rating.trim().is_empty() {
            return Err(SteerError::Invalid(format!(
                "judge criterion `{}`: the question is empty",
                self.name
            )));
        }
        Ok(())
    }
}

/// Two responses to compare for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The request both responses answer.
    pub prompt: String,
    /// Response A.
    pub a: String,
    /// Response B.
    pub b: String,
}

/// The judge's order-swapped answer to one [`Comparison`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Preference {
    /// p(A better) with A shown first.
    pub a_first: f64,
    /// p(A better) with A shown second (the judge saw it as "B").
    pub a_second: f64,
    /// Mean of the two: the preference probability for A.
    pub probability: f64,
    /// Both orders pick the same response (`a_first` and `a_second` on the same side of ½).
    pub consistent: bool,
    /// Mean probability the judge put on the two letters at all (before renormalising).
    pub label_mass: f64,
}

/// The judge's rating of one response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rating {
    /// Expected rating `Σ k·p(k)` over the digits 1–4 (renormalised), in [1, 4].
    pub expected: f64,
    /// The most probable digit.
    pub argmax: u8,
    /// Probability the judge put on the four digits at all.
    pub label_mass: f64,
}

/// Summary of many preferences: self-agreement and position bias.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    /// Comparisons summarised.
    pub n: usize,
    /// Fraction whose two orders pick the same response.
    pub self_agreement: f64,
    /// Mean p(first-shown response better) − ½ over both orders (0: no position bias).
    pub position_bias: f64,
    /// Mean label mass.
    pub label_mass: f64,
}

/// Self-agreement and position bias of `prefs` (`None` when empty).
pub fn agreement(prefs: &[Preference]) -> Option<Agreement> {
    if prefs.is_empty() {
        return None;
    }
    let n = prefs.len() as f64;
    Some(Agreement {
        n: prefs.len(),
        self_agreement: prefs.iter().filter(|p| p.consistent).count() as f64 / n,
        // p(first better): a_first in the first order, 1 − a_second in the second.
        position_bias: prefs
            .iter()
            .map(|p| (p.a_first + (1.0 - p.a_second)) / 2.0)
            .sum::<f64>()
            / n
            - 0.5,
        label_mass: prefs.iter().map(|p| p.label_mass).sum::<f64>() / n,
    })
}

/// A language model used as a judge.
pub struct Judge<'m> {
    model: &'m Model,
    tok: &'m TextTokenizer,
    batch_size: usize,
    letters: [u32; 2],
    digits: [u32; 4],
}

impl<'m> Judge<'m> {
    /// A judge on `model` (with its tokenizer), reading `batch_size` prompts per forward pass.
    /// Errors when the labels `A`, `B`, `1`–`4` are not single tokens of its vocabulary.
    pub fn new(model: &'m Model, batch_size: usize) -> Result<Self> {
        let tok = model
            .tokenizer()
            .ok_or_else(|| SteerError::Invalid("the judge model has no tokenizer".into()))?;
        let chat = tok.has_chat_template();
        let letters = [label_id(tok, "A", chat)?, label_id(tok, "B", chat)?];
        let digits = [
            label_id(tok, "1", chat)?,
            label_id(tok, "2", chat)?,
            label_id(tok, "3", chat)?,
            label_id(tok, "4", chat)?,
        ];
        Ok(Self {
            model,
            tok,
            batch_size: batch_size.max(1),
            letters,
            digits,
        })
    }

    /// The judge model's name.
    pub fn model_name(&self) -> &str {
        self.model.name()
    }

    /// Prompt ids: chat-formatted for a chat model, else the text, a newline and `Answer:`.
    fn prompt_ids(&self, text: &str) -> Result<Vec<u32>> {
        if self.tok.has_chat_template() {
            super::prepare::prompt_ids(self.tok, &crate::data::Prompt::Text(text.into()))
        } else {
            Ok(self.tok.encode(&format!("{text}\nAnswer:"), true)?)
        }
    }

    /// Compares the two responses of every item on `criterion`, each in both orders.
    pub fn compare(
        &self,
        items: &[Comparison],
        criterion: &Criterion,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<Preference>> {
        criterion.check()?;
        let mut prompts = Vec::with_capacity(2 * items.len());
        for it in items {
            prompts.push(self.prompt_ids(&pairwise_text(&it.prompt, &it.a, &it.b, criterion))?);
            prompts.push(self.prompt_ids(&pairwise_text(&it.prompt, &it.b, &it.a, criterion))?);
        }
        let lp = next_token_logprobs(
            self.model,
            &prompts,
            &self.letters,
            self.batch_size,
            "judging pairs",
            progress,
        )?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let (f, s) = (&lp[2 * i], &lp[2 * i + 1]);
                let a_first = crate::numeric::sigmoid(f[0] - f[1]);
                // second order: A is shown as "B"
                let a_second = crate::numeric::sigmoid(s[1] - s[0]);
                let mass = |v: &Vec<f64>| v[0].exp() + v[1].exp();
                Preference {
                    a_first,
                    a_second,
                    probability: (a_first + a_second) / 2.0,
                    consistent: (a_first > 0.5) == (a_second > 0.5),
                    label_mass: (mass(f) + mass(s)) / 2.0,
                }
            })
            .collect())
    }

    /// Rates every `(prompt, response)` on `criterion`'s 1–4 scale.
    pub fn rate(
        &self,
        items: &[(String, String)],
        criterion: &Criterion,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<Rating>> {
        criterion.check()?;
        let prompts = items
            .iter()
            .map(|(p, r)| self.prompt_ids(&rating_text(p, r, criterion)))
            .collect::<Result<Vec<_>>>()?;
        let lp = next_token_logprobs(
            self.model,
            &prompts,
            &self.digits,
            self.batch_size,
            "rating",
            progress,
        )?;
        Ok(lp.iter().map(|v| rating_from_logprobs(v)).collect())
    }
}

/// A [`Rating`] from the log-probabilities of the digits 1–4.
pub fn rating_from_logprobs(lp: &[f64]) -> Rating {
    let top = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = lp.iter().map(|l| (l - top).exp()).collect();
    let z: f64 = w.iter().sum();
    let expected = w
        .iter()
        .enumerate()
        .map(|(k, p)| (k + 1) as f64 * p / z)
        .sum();
    let argmax = w
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k as u8 + 1)
        .unwrap_or(1);
    Rating {
        expected,
        argmax,
        label_mass: lp.iter().map(|l| l.exp()).sum(),
    }
}

/// The single token of `label` as the judge's first answer token: for a chat model the bare
/// label (it opens the assistant turn), for a plain-text model the label after a space
/// (`Answer: A`); the other form when that one is not a single token.
fn label_id(tok: &TextTokenizer, label: &str, chat: bool) -> Result<u32> {
    let spaced = format!(" {label}");
    let forms = if chat {
        [label.to_string(), spaced]
    } else {
        [spaced, label.to_string()]
    };
    for f in &forms {
        let ids = tok.encode(f, false)?;
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
    }
    Err(SteerError::Invalid(format!(
        "the judge's vocabulary has no single token for the answer `{label}`"
    )))
}

fn pairwise_text(prompt: &str, first: &str, second: &str, c: &Criterion) -> String {
    format!(
        "Here is a request and two responses to it.\n\nRequest: {}\n\nResponse A: {}\n\nResponse B: {}\n\n{} Reply with the single letter A or B.",
        prompt.trim(),
        first.trim(),
        second.trim(),
        c.pairwise
    )
}

fn rating_text(prompt: &str, response: &str, c: &Criterion) -> String {
    format!(
        "Here is a request and a response to it.\n\nRequest: {}\n\nResponse: {}\n\n{}\n1 = {}\n2 = {}\n3 = {}\n4 = {}\nReply with a single number from 1 to 4.",
        prompt.trim(),
        response.trim(),
        c.rating,
        c.scale[0],
        c.scale[1],
        c.scale[2],
        c.scale[3]
    )
}

/// `log p(label | prompt)` of each label as the next token after each prompt (full softmax
/// over the vocabulary), `batch_size` prompts of similar length per forward pass.
pub fn next_token_logprobs(
    model: &Model,
    prompts: &[Vec<u32>],
    labels: &[u32],
    batch_size: usize,
    what: &str,
    progress: &dyn ProgressSink,
) -> Result<Vec<Vec<f64>>> {
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(SteerError::Invalid(format!("judge prompt {i} is empty")));
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].len());
    let mut out = vec![Vec::new(); prompts.len()];
    let device = model.device();
    let label_t = Tensor::from_slice(labels, labels.len(), device)?;
    let mut done = 0u64;
    for chunk in order.chunks(batch_size.max(1)) {
        if progress.is_cancelled() {
            return Err(SteerError::Invalid("cancelled".into()));
        }
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let batch = Batch::from_sequences(&seqs, super::collect::PAD, device)?;
        let t = batch.seq_len();
        let hidden = model.forward_hidden(&batch, &mut Hooks::new())?;
        let h = hidden.dim(2)?;
        let rows: Vec<u32> = seqs
            .iter()
            .enumerate()
            .map(|(b, s)| (b * t + s.len() - 1) as u32)
            .collect();
        let rows = Tensor::from_vec(rows, seqs.len(), device)?;
        let last = hidden
            .reshape((seqs.len() * t, h))?
            .index_select(&rows, 0)?;
        let logits = model.lm_head(&last)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp
            .index_select(&label_t, 1)?
            .to_dtype(candle_core::DType::F64)?
            .to_vec2::<f64>()?;
        for (&i, row) in chunk.iter().zip(picked) {
            if row.iter().any(|x| x.is_nan()) {
                return Err(SteerError::Invalid(format!(
                    "judge prompt {i}: the model produced non-finite log-probabilities"
                )));
            }
            out[i] = row;
        }
        done += chunk.len() as u64;
        progress.report(Progress::new(what, done, Some(prompts.len() as u64)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_expectations_over_the_four_digits() {
        let r = rating_from_logprobs(&[0.1f64.ln(), 0.1f64.ln(), 0.1f64.ln(), 0.2f64.ln()]);
        // renormalised: 0.2, 0.2, 0.2, 0.4 → 1·0.2 + 2·0.2 + 3·0.2 + 4·0.4 = 2.8
        assert!((r.expected - 2.8).abs() < 1e-12, "{}", r.expected);
        assert_eq!(r.argmax, 4);
        assert!((r.label_mass - 0.5).abs() < 1e-12);
        let r = rating_from_logprobs(&[-1000.0, -2000.0, -3000.0, -4000.0]);
        assert!((r.expected - 1.0).abs() < 1e-12 && r.argmax == 1);
    }

    #[test]
    fn agreement_counts_consistent_orders_and_position_bias() {
        let p = |a_first: f64, a_second: f64| Preference {
            a_first,
            a_second,
            probability: (a_first + a_second) / 2.0,
            consistent: (a_first > 0.5) == (a_second > 0.5),
            label_mass: 1.0,
        };
        // a judge that always says "A": p(A better) = 0.9 first, 0.1 second → inconsistent,
        // position bias +0.4
        let always_a = [p(0.9, 0.1), p(0.9, 0.1)];
        let a = agreement(&always_a).unwrap();
        assert_eq!(a.self_agreement, 0.0);
        assert!((a.position_bias - 0.4).abs() < 1e-12);
        // a content judge: prefers the same response in both orders, no bias
        let content = [p(0.8, 0.8), p(0.2, 0.2)];
        let a = agreement(&content).unwrap();
        assert_eq!(a.self_agreement, 1.0);
        assert!(a.position_bias.abs() < 1e-12);
        assert!(agreement(&[]).is_none());
    }

    #[test]
    fn judge_prompts_name_both_responses_and_the_scale() {
        let c = Criterion::behaviour("speaks positively");
        let t = pairwise_text(" P ", "first", "second", &c);
        assert!(t.contains("Request: P\n"));
        assert!(t.find("Response A: first").unwrap() < t.find("Response B: second").unwrap());
        assert!(t.contains("shows this behaviour more: speaks positively?"));
        let r = rating_text("P", "R", &Criterion::coherence());
        assert!(r.contains("1 = incoherent") && r.contains("4 = fully coherent"));
        assert!(Criterion::custom("x", "  ").check().is_err());
    }
}
