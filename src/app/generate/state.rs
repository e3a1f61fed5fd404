//! The Generate feature's state: what to generate and a streamed generation through
//! `crate::model` (the panel runs it on a job and shows the text as it arrives).
use anyhow::Context as _;

use crate::data::Message;
use crate::jobs::{Progress, ProgressSink};
use crate::model::{GenerateOptions, Hooks, Model};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSettings {
    /// The prompt text.
    pub prompt: String,
    /// Wrap the prompt as a user turn with the model's chat template.
    pub chat: bool,
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Sampling seed.
    pub seed: u64,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        Self {
            prompt: "What is the capital of France?".into(),
            chat: true,
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 0.9,
            seed: 0,
        }
    }
}

/// Generates from `model`, handing each decoded piece to `on_text` as it arrives; stops early
/// when the sink is cancelled. Returns the number of generated tokens.
pub fn generate(
    model: &Model,
    s: &GenerateSettings,
    sink: &dyn ProgressSink,
    on_text: &mut dyn FnMut(&str),
) -> anyhow::Result<usize> {
    let tok = model.tokenizer().context("this model has no tokenizer")?;
    let ids = if s.chat {
        let text = tok.apply_chat_template(&[Message::new("user", s.prompt.clone())], true)?;
        tok.encode(&text, false)?
    } else {
        tok.encode(&s.prompt, true)?
    };
    let opts = GenerateOptions {
        max_new_tokens: s.max_new_tokens,
        temperature: s.temperature,
        top_p: s.top_p,
        seed: s.seed,
        stop_at_eos: true,
    };
    let total = s.max_new_tokens as u64;
    let mut n = 0u64;
    let hooks = Hooks::new();
    let out = model.generate(&ids, &opts, &hooks, &mut |_id, piece| {
        n += 1;
        on_text(piece);
        sink.report(Progress::new("generating", n, Some(total)));
        !sink.is_cancelled()
    })?;
    Ok(out.len())
}
