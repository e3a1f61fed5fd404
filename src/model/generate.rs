//! Autoregressive generation with a KV cache: greedy or temperature/top-p sampling with a
//! seed, stop at EOS, `Add` interventions honoured during prefill and decoding, and streamed
//! text. Must not contain steering logic beyond applying the given hooks.
use std::collections::HashSet;

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};

use super::arch::decoder::LayerCache;
use super::engine::Model;
use super::fast::Exec;
use super::hooks::{Hooks, PosCtx};
use super::{ModelError, Result};

/// Sampling settings for [`Model::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Maximum number of tokens to produce.
    pub max_new_tokens: usize,
    /// Softmax temperature; `<= 0` means greedy (argmax).
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Random seed (same seed, same prompt, same model: same output).
    pub seed: u64,
    /// Stop at the model's end-of-sequence tokens (not included in the output).
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_at_eos: true,
        }
    }
}

/// Picks the next token from `logits` (f32, one row).
pub(crate) fn sample(logits: &[f32], opts: &GenerateOptions, rng: &mut impl Rng) -> Result<u32> {
    if logits.iter().any(|x| x.is_nan()) {
        return Err(ModelError::InvalidInput(
            "the model produced NaN logits".into(),
        ));
    }
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or(0)
    };
    if opts.temperature <= 0.0 {
        return Ok(argmax());
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l as f64 - max) / opts.temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    if opts.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut cum = 0.0;
        let mut keep = 0;
        for p in &probs {
            cum += p.1;
            keep += 1;
            if cum >= opts.top_p {
                break;
            }
        }
        probs.truncate(keep.max(1));
    }
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for &(id, p) in &probs {
        if u < p {
            return Ok(id);
        }
        u -= p;
    }
    Ok(probs.last().map(|p| p.0).unwrap_or_else(argmax))
}

impl Model {
    /// Runs `ids` at absolute positions `offset..` through the whole model with the KV cache,
    /// returning the last position's logits.
    fn decode_step(
        &self,
        ids: &[u32],
        offset: usize,
        prompt_len: usize,
        hooks: &mut Hooks,
        cache: &mut Vec<LayerCache>,
        exec: Exec,
    ) -> Result<Vec<f32>> {
        let t = ids.len();
        let ids = Tensor::new(ids, self.device())?.reshape((1, t))?;
        let x = self.embed(&ids)?;
        let pos = PosCtx {
            batch: 1,
            len: t,
            offset,
            prompt_lens: Some(vec![prompt_len]),
        };
        let x = self.run_blocks(0..self.n_layers(), x, &pos, None, hooks, exec, Some(cache))?;
        let last = x.narrow(1, t - 1, 1)?;
        let h = self.final_norm(&last, hooks)?;
        Ok(self
            .lm_head(&h)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?)
    }

    /// Generates up to `opts.max_new_tokens` tokens after `prompt_ids`, returning the new ids
    /// (EOS excluded). `Add` interventions apply to the prefill (positions `< prompt_len`
    /// count as prompt) and to every decoded token; captures are ignored. `on_token` receives
    /// each new id and the text it completes (empty while a multi-byte character is pending
    /// or when the model has no tokenizer); returning `false` stops generation.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        opts: &GenerateOptions,
        hooks: &Hooks,
        on_token: &mut dyn FnMut(u32, &str) -> bool,
    ) -> Result<Vec<u32>> {
        if prompt_ids.is_empty() {
            return Err(ModelError::InvalidInput(
                "generate: the prompt has no tokens".into(),
            ));
        }
        self.check_ids(prompt_ids.iter().copied().max().unwrap_or(0))?;
        let ctx = self.config().max_position_embeddings;
        super::load::validate::context(prompt_ids.len(), ctx)?;
        let undecodable = self.undecodable_ids();
        let mut hooks = hooks.adds_only();
        self.check_hooks(&hooks)?;
        // No gradient while generating: the one choice is the dtype's.
        let exec = Exec::choose(self.dtype(), false, false, self.grad_ops());
        let eos: HashSet<u32> = self.eos_token_ids().into_iter().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
        let mut cache: Vec<LayerCache> = vec![None; self.n_layers()];
        let prompt_len = prompt_ids.len();
        let mut logits =
            self.decode_step(prompt_ids, 0, prompt_len, &mut hooks, &mut cache, exec)?;
        let mut out: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        while out.len() < opts.max_new_tokens {
            // Rows of the embedding the tokenizer has no token for are never sampled.
            if let Some(r) = &undecodable {
                let from = r.start.min(logits.len());
                logits[from..].fill(f32::NEG_INFINITY);
            }
            let next = sample(&logits, opts, &mut rng)?;
            if opts.stop_at_eos && eos.contains(&next) {
                break;
            }
            out.push(next);
            let piece = self.new_text(&out, &mut emitted)?;
            // Feeding `next` would run past the context: stop, as llama.cpp does.
            if !on_token(next, &piece)
                || out.len() >= opts.max_new_tokens
                || prompt_len + out.len() > ctx
            {
                break;
            }
            let offset = prompt_len + out.len() - 1;
            logits = self.decode_step(&[next], offset, prompt_len, &mut hooks, &mut cache, exec)?;
        }
        Ok(out)
    }

    /// Token ids the model can produce but its tokenizer cannot decode (an embedding padded
    /// past the vocabulary): [`Model::generate`] never samples them. `None` when every row
    /// decodes or there is no tokenizer.
    pub fn undecodable_ids(&self) -> Option<std::ops::Range<usize>> {
        let n = self.tokenizer()?.vocab_size();
        (n < self.config().vocab_size).then(|| n..self.config().vocab_size)
    }

    /// End-of-sequence ids from the tokenizer and the config.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut ids = self.config().eos_token_ids.clone();
        if let Some(t) = self.tokenizer() {
            ids.extend(t.eos_token_ids());
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The text completed by the last token of `ids`: decodes all of `ids` (so multi-token
    /// characters and decoder merges come out right) and returns what follows the `emitted`
    /// bytes already streamed; holds back text ending in an incomplete character (U+FFFD).
    fn new_text(&self, ids: &[u32], emitted: &mut usize) -> Result<String> {
        let Some(tok) = self.tokenizer() else {
            return Ok(String::new());
        };
        let text = tok.decode(ids, true)?;
        if text.ends_with('\u{FFFD}') || text.len() <= *emitted || !text.is_char_boundary(*emitted)
        {
            return Ok(String::new());
        }
        let piece = text[*emitted..].to_string();
        *emitted = text.len();
        Ok(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_top_p_truncates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let logits = [0.0f32, 3.0, 1.0, -1.0];
        let greedy = GenerateOptions::default();
        assert_eq!(sample(&logits, &greedy, &mut rng).unwrap(), 1);
        // top_p tiny: only the most likely token survives.
        let o = GenerateOptions {
            temperature: 1.0,
            top_p: 0.01,
            ..Default::default()
        };
        for _ in 0..20 {
            assert_eq!(sample(&logits, &o, &mut rng).unwrap(), 1);
        }
        // Temperature 1: empirical frequencies follow the softmax.
        let o = GenerateOptions {
            temperature: 1.0,
            ..Default::default()
        };
        let mut counts = [0usize; 4];
        let n = 20000;
        for _ in 0..n {
            counts[sample(&logits, &o, &mut rng).unwrap() as usize] += 1;
        }
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let p = (l as f64).exp() / z;
            let f = counts[i] as f64 / n as f64;
            assert!((f - p).abs() < 0.015, "token {i}: {f} vs {p}");
        }
    }

    #[test]
    fn nan_logits_are_an_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!(sample(&[0.0, f32::NAN], &GenerateOptions::default(), &mut rng).is_err());
    }
}
