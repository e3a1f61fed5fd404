//! Text tokenizers and chat templates for the engine: a [`TextTokenizer`] is built either from a
//! Hugging Face folder (`tokenizer.json`, `tokenizer_config.json`, `generation_config.json`) or
//! from the metadata of a GGUF file (byte-level BPE or sentencepiece vocabularies as llama.cpp
//! stores them). It also renders the model's Jinja chat template (HF semantics: trim/lstrip
//! blocks, `raise_exception`, `strftime_now`, Python string methods).
//!
//! This module must not run models or touch weights: it only maps text to ids and back.
use super::{ModelError, Result};
use crate::data::Message;
use candle_core::quantized::gguf_file;
use std::path::{Path, PathBuf};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip as StripDecoder;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

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

/// A tokenizer with its special tokens and (optionally) a chat template.
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

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        bad(
            path,
            format!("line {} column {}", e.line(), e.column()),
            format!("invalid JSON: {e}"),
        )
    })
}

/// A special token given in `tokenizer_config.json` either as a string or as an AddedToken
/// object (`{"content": "<s>", ...}`).
fn special_token_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

/// Ids given as a number or a list of numbers (`eos_token_id` in generation/model configs).
fn json_ids(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (required), `tokenizer_config.json` (special tokens and
    /// `chat_template`, a string or a list of named templates), `chat_template.jinja` (newer
    /// folders) and `generation_config.json` / `config.json` (extra EOS ids) from a HF folder.
    /// Padding and truncation stored in `tokenizer.json` are disabled.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            return Err(ModelError::MissingFile {
                path: tok_path,
                what: "the tokenizer (tokenizer.json)".into(),
            });
        }
        let mut inner = Tokenizer::from_file(&tok_path)
            .map_err(|e| bad(&tok_path, "-", format!("cannot load tokenizer: {e}")))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| bad(&tok_path, "truncation", e.to_string()))?;

        let cfg_path = dir.join("tokenizer_config.json");
        let cfg = if cfg_path.exists() {
            Some(read_json(&cfg_path)?)
        } else {
            None
        };

        let mut chat_template = None;
        if let Some(cfg) = &cfg {
            chat_template = match cfg.get("chat_template") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Array(list)) => {
                    let named = |n: &str| {
                        list.iter()
                            .find(|t| t.get("name").and_then(|x| x.as_str()) == Some(n))
                    };
                    let chosen = named("default").or_else(|| list.first());
                    match chosen
                        .and_then(|t| t.get("template"))
                        .and_then(|t| t.as_str())
                    {
                        Some(t) => Some(t.to_string()),
                        None => return Err(bad(
                            &cfg_path,
                            "chat_template",
                            "a list of templates needs objects with `name` and `template` strings",
                        )),
                    }
                }
                Some(_) => {
                    return Err(bad(
                        &cfg_path,
                        "chat_template",
                        "expected a string or a list",
                    ))
                }
            };
        }
        if chat_template.is_none() {
            let jinja = dir.join("chat_template.jinja");
            if jinja.exists() {
                chat_template =
                    Some(std::fs::read_to_string(&jinja).map_err(|e| ModelError::Io {
                        path: jinja.clone(),
                        source: e,
                    })?);
            }
        }
        if chat_template.is_none() {
            let json = dir.join("chat_template.json");
            if json.exists() {
                let v = read_json(&json)?;
                chat_template = v
                    .get("chat_template")
                    .and_then(|t| t.as_str())
                    .map(String::from);
            }
        }

        let resolve = |key: &str| -> Result<Option<(String, u32)>> {
            let Some(cfg) = &cfg else { return Ok(None) };
            let Some(v) = cfg.get(key) else {
                return Ok(None);
            };
            if v.is_null() {
                return Ok(None);
            }
            let Some(s) = special_token_string(v) else {
                return Err(bad(
                    &cfg_path,
                    key,
                    "expected a string or an object with `content`",
                ));
            };
            Ok(inner.token_to_id(&s).map(|id| (s, id)))
        };
        let mut bos = resolve("bos_token")?;
        let mut eos = resolve("eos_token")?;
        let pad = resolve("pad_token")?;
        let unk = resolve("unk_token")?;

        // generation_config.json / config.json: ids win where the tokenizer config is silent.
        let mut extra_eos_ids = Vec::new();
        for name in ["generation_config.json", "config.json"] {
            let p = dir.join(name);
            if !p.exists() {
                continue;
            }
            let v = read_json(&p)?;
            let ids = json_ids(v.get("eos_token_id"));
            if eos.is_none() {
                if let Some(&id) = ids.first() {
                    eos = inner.id_to_token(id).map(|s| (s, id));
                }
            }
            extra_eos_ids.extend(ids);
            if bos.is_none() {
                if let Some(&id) = json_ids(v.get("bos_token_id")).first() {
                    bos = inner.id_to_token(id).map(|s| (s, id));
                }
            }
        }

        let vocab_size = inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map(|m| m as usize + 1)
            .unwrap_or(0);
        let mut t = TextTokenizer {
            inner,
            prepend_bos: false,
            append_eos: false,
            bos,
            eos,
            pad,
            unk,
            extra_eos_ids,
            vocab_size,
            chat_template,
            source: dir.to_path_buf(),
        };
        t.add_end_of_turn_ids();
        Ok(t)
    }

    /// Builds the tokenizer llama.cpp describes in a GGUF file's metadata: byte-level BPE
    /// (`tokenizer.ggml.model` = `gpt2`; the pre-tokenizer is chosen from `tokenizer.ggml.pre`)
    /// or sentencepiece BPE (`llama`; merges rebuilt from `tokenizer.ggml.scores`). Control
    /// tokens become special tokens, user-defined tokens added tokens; BOS/EOS/PAD/UNK ids,
    /// `add_bos_token`/`add_eos_token` and `tokenizer.chat_template` are taken from metadata.
    /// `path` is only used in error messages.
    pub fn from_gguf_metadata(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = &content.metadata;
        let get_str = |key: &str| -> Result<Option<String>> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v
                    .to_string()
                    .map(|s| Some(s.clone()))
                    .map_err(|_| bad(path, key, "expected a string")),
            }
        };
        let get_id = |key: &str| -> Result<Option<u32>> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => gguf_int(v).map(|x| Some(x as u32)).ok_or_else(|| {
                    bad(
                        path,
                        key,
                        format!("expected an integer token id, got {v:?}"),
                    )
                }),
            }
        };
        let get_bool = |key: &str| -> Result<Option<bool>> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v
                    .to_bool()
                    .map(Some)
                    .map_err(|_| bad(path, key, "expected a bool")),
            }
        };
        let string_array = |key: &str| -> Result<Option<Vec<String>>> {
            let Some(v) = md.get(key) else {
                return Ok(None);
            };
            let arr = v
                .to_vec()
                .map_err(|_| bad(path, key, "expected an array"))?;
            arr.iter()
                .enumerate()
                .map(|(i, x)| {
                    x.to_string()
                        .cloned()
                        .map_err(|_| bad(path, format!("{key}[{i}]"), "expected a string"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };

        let model_kind = get_str("tokenizer.ggml.model")?.ok_or_else(|| {
            bad(
                path,
                "tokenizer.ggml.model",
                "missing: the file has no tokenizer",
            )
        })?;
        let tokens = string_array("tokenizer.ggml.tokens")?
            .ok_or_else(|| bad(path, "tokenizer.ggml.tokens", "missing"))?;
        if tokens.is_empty() {
            return Err(bad(path, "tokenizer.ggml.tokens", "empty vocabulary"));
        }
        let token_types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(v) => {
                let arr = v
                    .to_vec()
                    .map_err(|_| bad(path, "tokenizer.ggml.token_type", "expected an array"))?;
                let tt = arr
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        gguf_int(x).ok_or_else(|| {
                            bad(
                                path,
                                format!("tokenizer.ggml.token_type[{i}]"),
                                "expected an integer",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                if tt.len() != tokens.len() {
                    return Err(bad(
                        path,
                        "tokenizer.ggml.token_type",
                        format!(
                            "has {} entries but there are {} tokens",
                            tt.len(),
                            tokens.len()
                        ),
                    ));
                }
                tt
            }
        };
        let check_id = |key: &str, id: Option<u32>| -> Result<Option<(String, u32)>> {
            match id {
                None => Ok(None),
                Some(i) => match tokens.get(i as usize) {
                    Some(s) => Ok(Some((s.clone(), i))),
                    None => Err(bad(
                        path,
                        key,
                        format!(
                            "token id {i} is outside the vocabulary of {} tokens",
                            tokens.len()
                        ),
                    )),
                },
            }
        };
        let bos = check_id(
            "tokenizer.ggml.bos_token_id",
            get_id("tokenizer.ggml.bos_token_id")?,
        )?;
        let eos = check_id(
            "tokenizer.ggml.eos_token_id",
            get_id("tokenizer.ggml.eos_token_id")?,
        )?;
        let pad_id = get_id("tokenizer.ggml.padding_token_id")?;
        let pad = check_id("tokenizer.ggml.padding_token_id", pad_id)?;
        let unk_id = get_id("tokenizer.ggml.unknown_token_id")?;
        let unk = check_id("tokenizer.ggml.unknown_token_id", unk_id)?;
        let eot = check_id(
            "tokenizer.ggml.eot_token_id",
            get_id("tokenizer.ggml.eot_token_id")?,
        )?;

        let mut vocab = Vocab::default();
        for (i, t) in tokens.iter().enumerate() {
            // Duplicate spellings keep their first id, as llama.cpp's text-to-token map does.
            vocab.entry(t.clone()).or_insert(i as u32);
        }

        let (mut inner, default_add_bos) = match model_kind.as_str() {
            "gpt2" => {
                let merges = parse_merges(path, string_array("tokenizer.ggml.merges")?)?;
                let pre = get_str("tokenizer.ggml.pre")?.unwrap_or_else(|| "default".into());
                build_byte_level(path, vocab, merges, &pre)?
            }
            "llama" => {
                let scores = match md.get("tokenizer.ggml.scores") {
                    None => {
                        return Err(bad(
                            path,
                            "tokenizer.ggml.scores",
                            "missing (needed by a sentencepiece vocabulary)",
                        ))
                    }
                    Some(v) => {
                        let arr = v
                            .to_vec()
                            .map_err(|_| bad(path, "tokenizer.ggml.scores", "expected an array"))?;
                        arr.iter()
                            .enumerate()
                            .map(|(i, x)| {
                                x.to_f32().map_err(|_| {
                                    bad(
                                        path,
                                        format!("tokenizer.ggml.scores[{i}]"),
                                        "expected a float",
                                    )
                                })
                            })
                            .collect::<Result<Vec<f32>>>()?
                    }
                };
                if scores.len() != tokens.len() {
                    return Err(bad(
                        path,
                        "tokenizer.ggml.scores",
                        format!(
                            "has {} entries but there are {} tokens",
                            scores.len(),
                            tokens.len()
                        ),
                    ));
                }
                let add_space = get_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
                (
                    build_sentencepiece(
                        path,
                        &tokens,
                        &token_types,
                        &scores,
                        vocab,
                        unk.as_ref(),
                        add_space,
                    )?,
                    true,
                )
            }
            other => {
                return Err(bad(
                    path,
                    "tokenizer.ggml.model",
                    format!("unsupported tokenizer model `{other}` (supported: gpt2, llama)"),
                ))
            }
        };

        // Control tokens are matched whole and skipped by decode(skip_special); user-defined
        // tokens are matched whole but kept.
        let mut specials: Vec<AddedToken> = Vec::new();
        let mut users: Vec<AddedToken> = Vec::new();
        for (t, &ty) in tokens.iter().zip(&token_types) {
            if ty == TOKEN_TYPE_CONTROL {
                specials.push(AddedToken::from(t.clone(), true).normalized(false));
            } else if ty == TOKEN_TYPE_USER_DEFINED {
                users.push(AddedToken::from(t.clone(), false).normalized(false));
            }
        }
        for (s, _) in [&bos, &eos, &eot].into_iter().flatten() {
            specials.push(AddedToken::from(s.clone(), true).normalized(false));
        }
        if !users.is_empty() {
            inner.add_tokens(users).map_err(|e| {
                bad(
                    path,
                    "tokenizer.ggml.token_type",
                    format!("user-defined tokens: {e}"),
                )
            })?;
        }
        if !specials.is_empty() {
            inner.add_special_tokens(specials).map_err(|e| {
                bad(
                    path,
                    "tokenizer.ggml.token_type",
                    format!("control tokens: {e}"),
                )
            })?;
        }

        let prepend_bos = get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
        let append_eos = get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        if prepend_bos && bos.is_none() {
            return Err(bad(
                path,
                "tokenizer.ggml.add_bos_token",
                "is true but there is no bos_token_id",
            ));
        }
        if append_eos && eos.is_none() {
            return Err(bad(
                path,
                "tokenizer.ggml.add_eos_token",
                "is true but there is no eos_token_id",
            ));
        }
        let chat_template = get_str("tokenizer.chat_template")?;
        let mut t = TextTokenizer {
            inner,
            prepend_bos,
            append_eos,
            bos,
            eos,
            pad,
            unk,
            extra_eos_ids: eot.map(|(_, id)| vec![id]).unwrap_or_default(),
            vocab_size: tokens.len(),
            chat_template,
            source: path.to_path_buf(),
        };
        t.add_end_of_turn_ids();
        Ok(t)
    }

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
        let enc = self
            .inner
            .encode_fast(text, add_special)
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
        self.inner
            .decode(ids, skip_special)
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
        render_chat_template(tpl, ctx)
    }
}

fn gguf_int(v: &gguf_file::Value) -> Option<i64> {
    use gguf_file::Value::*;
    Some(match v {
        U8(x) => *x as i64,
        I8(x) => *x as i64,
        U16(x) => *x as i64,
        I16(x) => *x as i64,
        U32(x) => *x as i64,
        I32(x) => *x as i64,
        U64(x) => i64::try_from(*x).ok()?,
        I64(x) => *x,
        _ => return None,
    })
}

fn parse_merges(path: &Path, merges: Option<Vec<String>>) -> Result<Vec<(String, String)>> {
    let merges = merges.ok_or_else(|| {
        bad(
            path,
            "tokenizer.ggml.merges",
            "missing (needed by a BPE vocabulary)",
        )
    })?;
    merges
        .into_iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(bad(
                path,
                format!("tokenizer.ggml.merges[{i}]"),
                format!("`{m}` is not two tokens separated by a space"),
            )),
        })
        .collect()
}

// Split regexes of llama.cpp's byte-level pre-tokenizers (llama-vocab.cpp), one per family.
const RE_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` values this module knows.
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

fn split(path: &Path, re: &str) -> Result<PreTokenizerWrapper> {
    Split::new(
        SplitPattern::Regex(re.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map(Into::into)
    .map_err(|e| bad(path, "tokenizer.ggml.pre", format!("bad split regex: {e}")))
}

fn build_byte_level(
    path: &Path,
    vocab: Vocab,
    merges: Vec<(String, String)>,
    pre: &str,
) -> Result<(Tokenizer, bool)> {
    // How text is split before the byte-level mapping; whether merges are skipped for words
    // that are whole vocabulary entries (llama.cpp `ignore_merges`); NFC normalisation.
    enum PreSplit {
        /// The GPT-2 regex of the byte-level step itself:
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
        Gpt2,
        /// Every digit isolated, then the GPT-2 regex (SmolLM, StarCoder).
        DigitsThenGpt2,
        /// A family regex; the byte-level step then maps bytes only.
        Regex(&'static str),
    }
    let (pre_split, ignore_merges, nfc) = match pre {
        "default" | "gpt2" | "gpt-2" | "phi-2" | "olmo" | "mpt" | "stablelm2" | "jina-es"
        | "jina-de" | "poro-chat" | "viking" => (PreSplit::Gpt2, false, false),
        "smollm" | "starcoder" | "refact" => (PreSplit::DigitsThenGpt2, false, false),
        "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe" | "falcon3" | "dbrx" => {
            (PreSplit::Regex(RE_LLAMA3), true, false)
        }
        "qwen2" | "deepseek-r1-qwen" => (PreSplit::Regex(RE_QWEN2), false, true),
        "gpt-4o" | "llama4" => (PreSplit::Regex(RE_GPT4O), false, false),
        "tekken" => (PreSplit::Regex(RE_TEKKEN), false, false),
        other => {
            return Err(bad(
                path,
                "tokenizer.ggml.pre",
                format!(
                    "unsupported pre-tokenizer `{other}` (supported: {})",
                    SUPPORTED_PRE_TOKENIZERS.join(", ")
                ),
            ))
        }
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| {
            bad(
                path,
                "tokenizer.ggml.merges",
                format!("cannot build BPE: {e}"),
            )
        })?;
    let mut tok = Tokenizer::new(bpe);
    let pre_tok: PreTokenizerWrapper = match pre_split {
        PreSplit::Gpt2 => ByteLevel::new(false, true, true).into(),
        PreSplit::DigitsThenGpt2 => PreSequence::new(vec![
            split(path, r"\p{N}")?,
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        PreSplit::Regex(re) => PreSequence::new(vec![
            split(path, re)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
    };
    tok.with_pre_tokenizer(Some(pre_tok));
    if nfc {
        tok.with_normalizer(Some(NFC))
            .map_err(|e| bad(path, "tokenizer.ggml.pre", e.to_string()))?;
    }
    tok.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    Ok((tok, false))
}

/// Sentencepiece BPE (Llama 2, Mistral): `▁` for spaces, optional leading `▁`, byte fallback
/// `<0xNN>` tokens, merges ranked by the score of the merged piece (llama.cpp merges the adjacent
/// pair whose result scores highest).
fn build_sentencepiece(
    path: &Path,
    tokens: &[String],
    token_types: &[i64],
    scores: &[f32],
    vocab: Vocab,
    unk: Option<&(String, u32)>,
    add_space_prefix: bool,
) -> Result<Tokenizer> {
    // Candidate merges: every split of a normal vocabulary piece into two vocabulary pieces.
    let mut merges: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        if token_types[id] != 1 || t.chars().count() < 2 {
            continue;
        }
        for (pos, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(pos);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                if token_types[ia as usize] == 1 && token_types[ib as usize] == 1 {
                    merges.push((scores[id], id as u32, ia, ib));
                }
            }
        }
    }
    // Highest merged score first; ties by the merged id, then by the left piece's id.
    merges.sort_by(|x, y| {
        y.0.partial_cmp(&x.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(x.1.cmp(&y.1))
            .then(x.2.cmp(&y.2))
    });
    let merges: Vec<(String, String)> = merges
        .into_iter()
        .map(|(_, _, a, b)| (tokens[a as usize].clone(), tokens[b as usize].clone()))
        .collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some((u, _)) = unk {
        builder = builder.unk_token(u.clone());
    }
    let bpe = builder.build().map_err(|e| {
        bad(
            path,
            "tokenizer.ggml.tokens",
            format!("cannot build BPE: {e}"),
        )
    })?;
    let mut tok = Tokenizer::new(bpe);
    let replace = Replace::new(" ", "\u{2581}")
        .map_err(|e| bad(path, "tokenizer.ggml.model", e.to_string()))?;
    let norm = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("\u{2581}".into()).into(), replace.into()])
    } else {
        NormalizerSequence::new(vec![replace.into()])
    };
    tok.with_normalizer(Some(norm))
        .map_err(|e| bad(path, "tokenizer.ggml.model", e.to_string()))?;
    let to_space = Replace::new("\u{2581}", " ")
        .map_err(|e| bad(path, "tokenizer.ggml.model", e.to_string()))?;
    let mut steps: Vec<DecoderWrapper> = vec![
        to_space.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        steps.push(StripDecoder::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(steps)));
    Ok(tok)
}

// ---------------------------------------------------------------------------------------------
// Chat templates

fn template_error(e: minijinja::Error) -> ModelError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ModelError::ChatTemplate(msg)
}

fn render_chat_template(template: &str, ctx: minijinja::Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<minijinja::Value, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
    env.add_filter("tojson", tojson);
    env.set_unknown_method_callback(py_method);
    let template = strip_generation_tags(template);
    let tpl = env.template_from_str(&template).map_err(template_error)?;
    tpl.render(ctx).map_err(template_error)
}

/// Removes HF's `{% generation %}` / `{% endgeneration %}` tags (they only mark assistant text
/// for training masks), keeping their content; whitespace control on these two tags is ignored.
fn strip_generation_tags(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let inner = rest[start + 2..start + len]
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if inner != "generation" && inner != "endgeneration" {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// `tojson` as HF defines it (`json.dumps(x, ensure_ascii=False, indent=indent)`, keys in
/// insertion order, Python's `", "` / `": "` separators).
fn tojson(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(&value, indent, 0, &mut out)?;
    Ok(out)
}

fn py_json(
    v: &minijinja::Value,
    indent: Option<usize>,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => out.push_str(
            &serde_json::Value::String(v.as_str().unwrap_or_default().into()).to_string(),
        ),
        ValueKind::Map => {
            let keys: Vec<minijinja::Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&serde_json::Value::String(k.to_string()).to_string());
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => match v.try_iter() {
            Ok(items) => {
                let items: Vec<minijinja::Value> = items.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, level + 1);
                    py_json(x, indent, level + 1, out)?;
                }
                newline(out, level);
                out.push(']');
            }
            Err(_) => out.push_str(&serde_json::Value::String(v.to_string()).to_string()),
        },
    }
    Ok(())
}

/// Python methods HF templates call on strings and dicts (`.strip()`, `.startswith()`,
/// `.split()`, `.items()`, `.get()` ...).
fn py_method(
    _state: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value};
    let arg_str =
        |i: usize| -> Option<String> { args.get(i).and_then(|a| a.as_str().map(String::from)) };
    let unknown = || Error::new(ErrorKind::UnknownMethod, format!("unknown method {method}"));
    if let Some(s) = value.as_str() {
        let chars = arg_str(0);
        let strip_set = |c: char| match &chars {
            Some(set) => set.contains(c),
            None => c.is_whitespace(),
        };
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(strip_set)),
            "lstrip" => Value::from(s.trim_start_matches(strip_set)),
            "rstrip" => Value::from(s.trim_end_matches(strip_set)),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "title" => {
                let mut out = String::with_capacity(s.len());
                let mut prev_alpha = false;
                for c in s.chars() {
                    if prev_alpha {
                        out.extend(c.to_lowercase());
                    } else {
                        out.extend(c.to_uppercase());
                    }
                    prev_alpha = c.is_alphabetic();
                }
                Value::from(out)
            }
            "capitalize" => {
                let mut it = s.chars();
                let out: String = match it.next() {
                    Some(f) => f
                        .to_uppercase()
                        .chain(it.as_str().to_lowercase().chars())
                        .collect(),
                    None => String::new(),
                };
                Value::from(out)
            }
            "startswith" | "endswith" => {
                let pats: Vec<String> = match args.first() {
                    Some(a) if a.as_str().is_some() => {
                        vec![a.as_str().unwrap_or_default().to_string()]
                    }
                    Some(a) => a
                        .try_iter()?
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect(),
                    None => return Err(Error::new(ErrorKind::MissingArgument, method.to_string())),
                };
                let hit = pats.iter().any(|p| {
                    if method == "startswith" {
                        s.starts_with(p.as_str())
                    } else {
                        s.ends_with(p.as_str())
                    }
                });
                Value::from(hit)
            }
            "split" => {
                let max = args
                    .get(1)
                    .and_then(|a| i64::try_from(a.clone()).ok())
                    .unwrap_or(-1);
                let parts: Vec<Value> = match arg_str(0) {
                    Some(sep) if max >= 0 => s
                        .splitn(max as usize + 1, sep.as_str())
                        .map(Value::from)
                        .collect(),
                    Some(sep) => s.split(sep.as_str()).map(Value::from).collect(),
                    None => s.split_whitespace().map(Value::from).collect(),
                };
                Value::from(parts)
            }
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => Value::from(s.replace(a.as_str(), &b)),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)")),
            },
            "find" => match arg_str(0) {
                Some(p) => Value::from(
                    s.find(p.as_str())
                        .map(|i| s[..i].chars().count() as i64)
                        .unwrap_or(-1),
                ),
                None => return Err(Error::new(ErrorKind::MissingArgument, "find(sub)")),
            },
            "count" => match arg_str(0) {
                Some(p) if !p.is_empty() => Value::from(s.matches(p.as_str()).count()),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "count(sub)")),
            },
            "join" => match args.first() {
                Some(a) => {
                    let items: Vec<String> = a.try_iter()?.map(|x| x.to_string()).collect();
                    Value::from(items.join(s))
                }
                None => return Err(Error::new(ErrorKind::MissingArgument, "join(items)")),
            },
            "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            "isspace" => Value::from(!s.is_empty() && s.chars().all(char::is_whitespace)),
            _ => return Err(unknown()),
        });
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        return Ok(match method {
            "items" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    out.push(Value::from(vec![k, v]));
                }
                Value::from(out)
            }
            "keys" => Value::from(value.try_iter()?.collect::<Vec<_>>()),
            "values" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    out.push(value.get_item(&k)?);
                }
                Value::from(out)
            }
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let v = value.get_item(&key)?;
                if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    v
                }
            }
            _ => return Err(unknown()),
        });
    }
    Err(unknown())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `strftime_now(fmt)`: the current UTC time, supporting `%Y %m %d %-d %e %B %b %A %a %H %M %S %%`.
fn strftime_now(fmt: &str) -> std::result::Result<String, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(strftime(fmt, secs))
}

/// Formats a unix time (UTC) with a strftime subset.
fn strftime(fmt: &str, unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let tod = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let wd = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = it.next().unwrap_or('%');
        let no_pad = spec == '-';
        if no_pad {
            spec = it.next().unwrap_or('d');
        }
        let num = |v: i64| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:02}")
            }
        };
        match spec {
            'Y' => out.push_str(&y.to_string()),
            'm' => out.push_str(&num(m)),
            'd' => out.push_str(&num(d)),
            'e' => out.push_str(&format!("{d:>2}")),
            'B' => out.push_str(MONTHS[(m - 1) as usize]),
            'b' => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            'A' => out.push_str(WEEKDAYS[wd]),
            'a' => out.push_str(&WEEKDAYS[wd][..3]),
            'H' => out.push_str(&num(tod / 3600)),
            'M' => out.push_str(&num(tod / 60 % 60)),
            'S' => out.push_str(&num(tod % 60)),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-02-29 13:05:09 UTC was a Thursday.
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %A %b", 1_709_211_909),
            "2024-02-29 13:05:09 Thursday Feb"
        );
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
        assert_eq!(strftime("%-d %B", 86_400 * 40), "10 February");
    }

    #[test]
    fn template_python_methods_and_errors() {
        let ctx = minijinja::context! { x => "  Hi there  ", d => minijinja::context!{ a => 1 } };
        let out = render_chat_template(
            "{{ x.strip() }}|{{ x.strip().lower().startswith(('hi', 'yo')) }}|{{ x.split()|length }}|{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}|{{ d.get('b', 7) }}",
            ctx,
        )
        .unwrap();
        assert_eq!(out, "Hi there|True|2|a=1|7");
        let err = render_chat_template(
            "{{ raise_exception('roles must alternate') }}",
            minijinja::context! {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }

    #[test]
    fn tojson_matches_python_spacing() {
        let ctx =
            minijinja::context! { t => minijinja::context!{ name => "f", args => vec![1, 2] } };
        let out = render_chat_template("{{ t|tojson }}", ctx).unwrap();
        assert_eq!(out, r#"{"name": "f", "args": [1, 2]}"#);
    }
}
