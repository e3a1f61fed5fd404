//! Fuzzing harness for steerlab's file readers. The dataset targets use the data module compiled
//! from ../src with its in-crate dependencies (jobs, numeric) and [`run`], which feeds bytes
//! through a reader with the format forced, then detection + `load_dataset`, `preview` and
//! `count_rows`. The compressed-dataset, model and vector targets use the whole library's
//! `steerlab::testing::fuzz` entry points with the scratch files and folders made here.
#![allow(dead_code, unused_imports)]

#[path = "../../src/jobs.rs"]
pub mod jobs;

#[path = "../../src/numeric/mod.rs"]
pub mod numeric;

#[path = "../../src/data/mod.rs"]
pub mod data;

/// The atomic writer the data module's writers use (std only).
pub mod report {
    #[path = "../../../src/report/atomic.rs"]
    pub mod atomic;
}

use data::{Format, LoadOptions, ReadOptions, RowReader};
use std::io::Write;
use std::path::PathBuf;

fn scratch(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("steerlab-fuzz-{}.{ext}", std::process::id()))
}

/// Runs one input through every reading path for `format`; any panic is a finding.
pub fn run(format: Format, bytes: &[u8]) {
    let path = scratch(format.name());
    {
        let mut f = std::fs::File::create(&path).expect("scratch file");
        f.write_all(bytes).expect("scratch write");
    }
    let opts = ReadOptions { format: Some(format), max_record_bytes: 1 << 16 };
    if let Ok(r) = RowReader::open(&path, &opts) {
        for row in r.take(10_000) {
            let _ = row;
        }
    }
    let lo = LoadOptions { skip_invalid: true, max_record_bytes: 1 << 16, ..Default::default() };
    let _ = data::load_dataset(&path, &lo);
    let lo = LoadOptions { format: Some(format), ..lo };
    let _ = data::load_dataset(&path, &lo);
    let _ = data::preview(&path, 5);
    let _ = data::count_rows(&path);
}

/// Runs compressed JSONL bytes (`ext` is `gz` or `zst`) through every reading path.
pub fn run_compressed(ext: &str, bytes: &[u8]) {
    let path = std::env::temp_dir().join(format!("steerlab-fuzz-{}.jsonl.{ext}", std::process::id()));
    std::fs::write(&path, bytes).expect("scratch write");
    steerlab::testing::fuzz::dataset(&path, steerlab::data::Format::Jsonl);
}

/// Writes `bytes` to a scratch file named `name` (unique to this process) and returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("steerlab-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).expect("scratch write");
    path
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("steerlab-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A tiny HF model folder (written once) whose `model.safetensors` is replaced by `bytes`.
pub fn model_dir(bytes: &[u8]) -> PathBuf {
    static INIT: std::sync::Once = std::sync::Once::new();
    let dir = scratch_dir("model");
    INIT.call_once(|| {
        steerlab::testing::write_tiny_llama(&dir, 1, 3);
        let _ = std::fs::remove_file(dir.join("tokenizer.json"));
        let _ = std::fs::remove_file(dir.join("tokenizer_config.json"));
    });
    std::fs::write(dir.join("model.safetensors"), bytes).expect("scratch write");
    dir
}

/// A folder with the test `tokenizer_config.json` and `bytes` as its `tokenizer.json`.
pub fn tokenizer_dir(bytes: &[u8]) -> PathBuf {
    static INIT: std::sync::Once = std::sync::Once::new();
    let dir = scratch_dir("tok");
    INIT.call_once(|| {
        let fx = steerlab::testing::fixture_path("tokenizer_hf");
        std::fs::copy(fx.join("tokenizer_config.json"), dir.join("tokenizer_config.json"))
            .expect("tokenizer_config.json");
    });
    std::fs::write(dir.join("tokenizer.json"), bytes).expect("scratch write");
    dir
}

/// Calls `f` with the test tokenizer (loaded once).
pub fn with_tokenizer(f: impl FnOnce(&mut steerlab::model::TextTokenizer)) {
    static TOK: std::sync::Mutex<Option<steerlab::model::TextTokenizer>> =
        std::sync::Mutex::new(None);
    let mut g = TOK.lock().unwrap_or_else(|e| e.into_inner());
    let t = g.get_or_insert_with(|| {
        steerlab::model::TextTokenizer::from_hf_dir(&steerlab::testing::fixture_path("tokenizer_hf"))
            .expect("test tokenizer")
    });
    f(t);
}
