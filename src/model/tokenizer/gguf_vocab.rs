//! [`TextTokenizer`] from GGUF metadata: llama.cpp's byte-level BPE (`gpt2`, with the
//! pre-tokenizer named by `tokenizer.ggml.pre`) and sentencepiece BPE (`llama`) vocabularies.
//! Must not read tensors.
use super::{bad, TextTokenizer, SUPPORTED_PRE_TOKENIZERS};
use crate::model::Result;
use candle_core::quantized::gguf_file;
use std::path::Path;
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
impl TextTokenizer {
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
                                let field = || format!("tokenizer.ggml.scores[{i}]");
                                let f = x
                                    .to_f32()
                                    .map_err(|_| bad(path, field(), "expected a float"))?;
                                // Scores rank the merges: a NaN has no place in that order.
                                if f.is_nan() {
                                    return Err(bad(path, field(), "is NaN (scores rank merges)"));
                                }
                                Ok(f)
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
            chat_template_origin: format!("{}: tokenizer.chat_template", path.display()),
            source: path.to_path_buf(),
        };
        t.add_end_of_turn_ids();
        Ok(t)
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
    merges.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
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
