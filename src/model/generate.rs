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

/// One sequence being generated token by token ([`Model::start_generation`]): holds its KV
/// cache, hooks and random state, so several can advance in turn on one model.
pub struct Generation<'m> {
    model: &'m Model,
    prompt: Vec<u32>,
    opts: GenerateOptions,
    hooks: Hooks,
    exec: Exec,
    eos: HashSet<u32>,
    undecodable: Option<std::ops::Range<usize>>,
    rng: rand::rngs::StdRng,
    cache: Vec<LayerCache>,
    ctx: usize,
    out: Vec<u32>,
    emitted: usize,
    /// The last sampled token, fed to the model on the next step.
    pending: Option<u32>,
    started: bool,
    done: bool,
}

impl Generation<'_> {
    /// Runs one forward (the prefill on the first call, else the previous token) and samples
    /// the next token: `Some((id, text it completes))`, or `None` once generation has ended
    /// (end of sequence, `max_new_tokens` or the context reached).
    pub fn step(&mut self) -> Result<Option<(u32, String)>> {
        if self.done {
            return Ok(None);
        }
        let prompt_len = self.prompt.len();
        let m = self.model;
        let mut logits = if !self.started {
            self.started = true;
            if self.opts.max_new_tokens == 0 {
                self.done = true;
                return Ok(None);
            }
            m.decode_step(
                &self.prompt,
                0,
                prompt_len,
                &mut self.hooks,
                &mut self.cache,
                self.exec,
            )?
        } else {
            let Some(next) = self.pending.take() else {
                self.done = true;
                return Ok(None);
            };
            let offset = prompt_len + self.out.len() - 1;
            m.decode_step(
                &[next],
                offset,
                prompt_len,
                &mut self.hooks,
                &mut self.cache,
                self.exec,
            )?
        };
        // Rows of the embedding the tokenizer has no token for are never sampled.
        if let Some(r) = &self.undecodable {
            let from = r.start.min(logits.len());
            logits[from..].fill(f32::NEG_INFINITY);
        }
        let next = sample(&logits, &self.opts, &mut self.rng)?;
        if self.opts.stop_at_eos && self.eos.contains(&next) {
            self.done = true;
            return Ok(None);
        }
        self.out.push(next);
        let piece = m.new_text(&self.out, &mut self.emitted)?;
        // Feeding `next` would run past the context: stop, as llama.cpp does.
        if self.out.len() >= self.opts.max_new_tokens || prompt_len + self.out.len() > self.ctx {
            self.done = true;
        } else {
            self.pending = Some(next);
        }
        Ok(Some((next, piece)))
    }

    /// True once [`Generation::step`] has nothing more to give.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// True when generation stopped at `max_new_tokens` or the context (not at an EOS token).
    pub fn hit_length_limit(&self) -> bool {
        self.done && self.pending.is_none() && !self.out.is_empty() && {
            let n = self.out.len();
            n >= self.opts.max_new_tokens || self.prompt.len() + n > self.ctx
        }
    }

    /// The prompt length in tokens.
    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// The tokens produced so far (EOS excluded).
    pub fn tokens(&self) -> &[u32] {
        &self.out
    }

    /// The tokens produced, consuming the generation.
    pub fn into_tokens(self) -> Vec<u32> {
        self.out
    }
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
        let mut g = self.start_generation(prompt_ids, opts, hooks)?;
        while let Some((id, piece)) = g.step()? {
            if !on_token(id, &piece) {
                break;
            }
        }
        Ok(g.into_tokens())
    }

    /// Prepares a generation that advances one token per [`Generation::step`] call, so a
    /// caller (the server's scheduler) can interleave several sequences on one model. Checks
    /// the prompt, the context length and the hooks now; the prefill runs on the first step.
    /// Stepping to the end gives exactly what [`Model::generate`] gives.
    pub fn start_generation(
        &self,
        prompt_ids: &[u32],
        opts: &GenerateOptions,
        hooks: &Hooks,
    ) -> Result<Generation<'_>> {
        if prompt_ids.is_empty() {
            return Err(ModelError::InvalidInput(
                "generate: the prompt has no tokens".into(),
            ));
        }
        self.check_ids(prompt_ids.iter().copied().max().unwrap_or(0))?;
        let ctx = self.config().max_position_embeddings;
        super::load::validate::context(prompt_ids.len(), ctx)?;
        let hooks = hooks.adds_only();
        self.check_hooks(&hooks)?;
        Ok(Generation {
            model: self,
            prompt: prompt_ids.to_vec(),
            opts: opts.clone(),
            hooks,
            // No gradient while generating: the one choice is the dtype's.
            exec: Exec::choose(self.dtype(), false, false, self.grad_ops()),
            eos: self.eos_token_ids().into_iter().collect(),
            undecodable: self.undecodable_ids(),
            rng: rand::rngs::StdRng::seed_from_u64(opts.seed),
            cache: vec![None; self.n_layers()],
            ctx,
            out: Vec::new(),
            emitted: 0,
            pending: None,
            started: false,
            done: false,
        })
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
