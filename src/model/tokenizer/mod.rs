//! Text tokenizers and chat templates for the engine: a [`TextTokenizer`] is built either from a
//! Hugging Face folder (`hf.rs`: `tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`) or from the metadata of a GGUF file (`gguf_vocab.rs`: byte-level BPE
//! or sentencepiece vocabularies as llama.cpp stores them). It also renders the model's Jinja chat
//! template (`chat_template.rs`: HF semantics: trim/lstrip blocks, `raise_exception`,
//! `strftime_now`, Python string methods).
//!
//! This module must not run models or touch weights: it only maps text to ids and back.
mod chat_template;
mod gguf_vocab;
mod hf;

use chat_template::render_chat_template;

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::data::read::guard::{catch_quiet, panic_text};
use crate::data::Message;
use crate::model::{ModelError, Result};

/// End-of-turn markers of common chat templates; when the template mentions one that is in the
/// vocabulary, generation stops on it too.
const END_OF_TURN_MARKERS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_turn|>",
    "<|endofturn|>",
    "[/INST]",
];

/// The `tokenizer.ggml.pre` values the GGUF vocabularies (`gguf_vocab.rs`) know.
pub const SUPPORTED_PRE_TOKENIZERS: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "phi-2",
    "olmo",
    "mpt",
    "stablelm2",
    "jina-es",
    "jina-de",
    "poro-chat",
    "viking",
    "smollm",
    "starcoder",
    "refact",
    "llama-bpe",
    "llama3",
    "llama-v3",
    "smaug-bpe",
    "falcon3",
    "dbrx",
    "qwen2",
    "deepseek-r1-qwen",
    "gpt-4o",
    "llama4",
    "tekken",
];

/// A tokenizer with its special tokens and (optionally) a chat template.
/// A panic inside the tokenizers crate, as an error.
fn library_failed(what: &str, p: &(dyn std::any::Any + Send)) -> ModelError {
    ModelError::Tokenizer(format!(
        "{what}: the tokenizers library failed ({}); the tokenizer file is probably corrupt",
        panic_text(p)
    ))
}

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Prepend the BOS id on `encode(.., true)` (GGUF `add_bos_token`; HF folders use their
    /// post-processor instead).
    prepend_bos: bool,
    /// Append the EOS id on `encode(.., true)` (GGUF `add_eos_token`).
    append_eos: bool,
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
    pad: Option<(String, u32)>,
    unk: Option<(String, u32)>,
    extra_eos_ids: Vec<u32>,
    vocab_size: usize,
    chat_template: Option<String>,
    /// Where the chat template came from (file and key), for error messages.
    chat_template_origin: String,
    source: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn bad(path: &Path, field: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

impl TextTokenizer {
    /// Adds the ids of end-of-turn markers the chat template writes (e.g. `<|im_end|>`).
    fn add_end_of_turn_ids(&mut self) {
        let Some(tpl) = &self.chat_template else {
            return;
        };
        for m in END_OF_TURN_MARKERS {
            if tpl.contains(m) {
                if let Some(id) = self.inner.token_to_id(m) {
                    self.extra_eos_ids.push(id);
                }
            }
        }
    }

    /// Token ids of `text`; with `add_special`, BOS/EOS (GGUF flags) or the HF post-processor's
    /// special tokens are added. Special-token strings in `text` map to their ids.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        // The tokenizers crate panics on some corrupt files (a post-processor naming a special
        // token it lacks): caught quietly and reported as an error.
        let enc = catch_quiet(|| self.inner.encode_fast(text, add_special))
            .map_err(|p| library_failed("encode", &*p))?
            .map_err(|e| ModelError::Tokenizer(format!("encode: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special {
            if self.prepend_bos {
                if let Some((_, b)) = &self.bos {
                    ids.insert(0, *b);
                }
            }
            if self.append_eos {
                if let Some((_, e)) = &self.eos {
                    ids.push(*e);
                }
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; with `skip_special`, special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad_id) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            return Err(ModelError::Tokenizer(format!(
                "decode: token id {bad_id} is outside the vocabulary of {} tokens",
                self.vocab_size
            )));
        }
        catch_quiet(|| self.inner.decode(ids, skip_special))
            .map_err(|p| library_failed("decode", &*p))?
            .map_err(|e| ModelError::Tokenizer(format!("decode: {e}")))
    }

    /// Number of token ids (highest id + 1, added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Ids that end generation: the EOS token, configured extra EOS ids and end-of-turn markers
    /// the chat template writes. Sorted, without duplicates.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eos.iter().map(|(_, i)| *i).collect();
        v.extend(&self.extra_eos_ids);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The BOS id, if the tokenizer has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|(_, i)| *i)
    }

    /// The padding id, if configured.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad.as_ref().map(|(_, i)| *i)
    }

    /// The unknown-token id, if configured.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.unk.as_ref().map(|(_, i)| *i)
    }

    /// The vocabulary spelling of one id (byte-level tokens show as `Ġ`-style strings).
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of an exact vocabulary spelling.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Whether a chat template is available.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// The raw chat template source, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Replaces (or removes) the chat template.
    pub fn set_chat_template(&mut self, template: Option<String>) {
        self.chat_template = template;
        self.chat_template_origin = format!(
            "{}: chat template (set by the caller)",
            self.source.display()
        );
        self.add_end_of_turn_ids();
    }

    /// Renders `messages` with the chat template as HF `apply_chat_template(tokenize=False)`
    /// does. Errors when there is no template or it fails (including `raise_exception`).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let Some(tpl) = &self.chat_template else {
            return Err(ModelError::ChatTemplate(format!(
                "{}: the tokenizer has no chat template",
                self.source.display()
            )));
        };
        let tok =
            |t: &Option<(String, u32)>| t.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => tok(&self.bos),
            eos_token => tok(&self.eos),
            pad_token => tok(&self.pad),
            unk_token => tok(&self.unk),
            tools => minijinja::Value::from(()),
            documents => minijinja::Value::from(()),
        };
        render_chat_template(tpl, ctx).map_err(|e| match e {
            ModelError::ChatTemplate(m) => {
                ModelError::ChatTemplate(format!("{}: {m}", self.chat_template_origin))
            }
            other => other,
        })
    }
}
