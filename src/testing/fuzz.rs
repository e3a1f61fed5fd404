//! What fuzzing feeds each file reader: one function per target, shared by the stable
//! in-process harness (`examples/fuzz_readers.rs`) and the cargo-fuzz targets (`fuzz/`). Each
//! runs an input through every public reading path of its format and ignores the result: only
//! a panic, an abort or a hang is a finding. Inputs that need a file name are written by the
//! caller first.
use std::path::Path;

use crate::data::{self, Format, LoadOptions, Message, ReadOptions, RowReader};
use crate::model::load::config::ModelConfig;
use crate::model::load::gguf_check::check_header_from;
use crate::model::tokenizer::TextTokenizer;
use crate::model::Model;
use crate::steer::SteeringVector;

/// A dataset file (plain or gzip/zstd-compressed): the reader with `format` forced, detection
/// and loading (invalid rows skipped, with and without the forced format), preview and count.
pub fn dataset(path: &Path, format: Format) {
    let opts = ReadOptions {
        format: Some(format),
        max_record_bytes: 1 << 16,
    };
    if let Ok(r) = RowReader::open(path, &opts) {
        for row in r.take(10_000) {
            let _ = row;
        }
    }
    let lo = LoadOptions {
        skip_invalid: true,
        max_record_bytes: 1 << 16,
        ..Default::default()
    };
    let _ = data::load_dataset(path, &lo);
    let lo = LoadOptions {
        format: Some(format),
        ..lo
    };
    let _ = data::load_dataset(path, &lo);
    let _ = data::preview(path, 5);
    let _ = data::count_rows(path);
}

/// A GGUF model file holding `bytes` at `path`: the header check in memory, then the whole
/// load (candle's reader, config, tokenizer, tensors, model build) and one encode; a file that
/// loads is loaded once more with its blocks kept quantized.
pub fn gguf_model(path: &Path, bytes: &[u8]) {
    let _ = check_header_from(bytes, bytes.len() as u64, path);
    if let Ok(m) = Model::load(path, &crate::model::LoadOptions::default()) {
        if let Some(t) = m.tokenizer() {
            let _ = t.encode("Hi there 123", true);
        }
        // A file that loads is loaded again with its blocks kept quantized (block checks,
        // scale scan, Q/K row permutation).
        let q = crate::model::LoadOptions {
            weights: crate::model::WeightStorage::Quantized,
            ..Default::default()
        };
        let _ = Model::load(path, &q);
    }
}

/// An HF model folder (`config.json` + `model.safetensors`, the file being fuzzed).
pub fn safetensors_model(dir: &Path) {
    let _ = Model::load(dir, &crate::model::LoadOptions::default());
}

/// A `config.json` text.
pub fn config_json(bytes: &[u8], path: &Path) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if let Ok(c) = ModelConfig::from_json(&v, path) {
            let _ = c.rope_inv_freq();
        }
    }
}

/// A folder whose `tokenizer.json` is being fuzzed: load, encode, decode (ids in and out of
/// range) and the chat template.
pub fn tokenizer_dir(dir: &Path) {
    if let Ok(t) = TextTokenizer::from_hf_dir(dir) {
        if let Ok(ids) = t.encode("Hello, world! 12345 \u{e9}\u{1F600}", true) {
            let _ = t.decode(&ids, true);
        }
        let _ = t.decode(&[0, 1, 2, 3, 4, 5, u32::MAX], false);
        let _ = t.apply_chat_template(&[Message::new("user", "hi")], true);
    }
}

/// A chat template (any bytes, read as text) rendered for a short conversation.
pub fn chat_template(tok: &mut TextTokenizer, bytes: &[u8]) {
    tok.set_chat_template(Some(String::from_utf8_lossy(bytes).into_owned()));
    let msgs = [
        Message::new("system", "be brief"),
        Message::new("user", "hi"),
        Message::new("assistant", "hello"),
        Message::new("user", "again"),
    ];
    let _ = tok.apply_chat_template(&msgs, true);
    let _ = tok.apply_chat_template(&msgs[1..2], false);
}

/// A GGUF control vector file.
pub fn gguf_vector(path: &Path) {
    let _ = crate::steer::gguf::import_control_vector(path);
    let _ = SteeringVector::load_any(path);
}

/// A native safetensors vector file.
pub fn safetensors_vector(path: &Path) {
    let _ = SteeringVector::load(path);
}
