//! [`TextTokenizer`] from a Hugging Face folder: `tokenizer.json`, special tokens and the chat
//! template from `tokenizer_config.json` (or `chat_template.jinja`), extra EOS ids from
//! `generation_config.json` / `config.json`. Must not touch GGUF files.
use std::path::Path;

use tokenizers::Tokenizer;

use super::{bad, TextTokenizer};
use crate::model::{ModelError, Result};

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
        // The tokenizers crate panics on some malformed files (a decoder it cannot build):
        // caught quietly and reported like any other parse error.
        let mut inner = match crate::data::read::guard::catch_quiet(|| {
            Tokenizer::from_file(&tok_path)
        }) {
            Ok(r) => r.map_err(|e| bad(&tok_path, "-", format!("cannot load tokenizer: {e}")))?,
            Err(p) => {
                let why = crate::data::read::guard::panic_text(&*p);
                return Err(bad(
                    &tok_path,
                    "-",
                    format!("cannot load tokenizer: the tokenizers library failed ({why}); the file is probably corrupt"),
                ));
            }
        };
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
        let mut origin = format!("{}: chat_template", cfg_path.display());
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
                origin = jinja.display().to_string();
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
                origin = format!("{}: chat_template", json.display());
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
            chat_template_origin: origin,
            source: dir.to_path_buf(),
        };
        t.add_end_of_turn_ids();
        // A file the tokenizers crate loads but then panics on (a post-processor naming a
        // special token it lacks) is refused here, naming it, rather than at the first prompt.
        if let Err(e) = t.encode("a", true) {
            return Err(bad(&tok_path, "post_processor", e.to_string()));
        }
        Ok(t)
    }
}
