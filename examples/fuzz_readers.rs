//! In-process, seeded random-mutation fuzzing of every file reader (a stand-in for `cargo fuzz`
//! that runs on the stable toolchain with the normal build).
//!
//! Targets: the dataset readers (`jsonl`, `json`, `csv`, `parquet`, and gzip/zstd-compressed
//! JSONL: `gz`, `zst`), model files (`gguf_model`: header check, candle's reader, config,
//! tokenizer, tensors, model build; `st_model`: an HF folder's `model.safetensors`;
//! `config_json`; `tokenizer_json`; `chat_template`) and steering vectors (`gguf_vector`,
//! `st_vector`). Each execution mutates an input from the target's seed corpus (the dataset
//! targets read fuzz/corpus/fuzz_<target>/, shared with the cargo-fuzz targets; the others are
//! built from tests/fixtures at start-up, see [`seeds`]) and runs it through the reader. A panic
//! that reaches the harness is a crash (panics a reader catches itself, as the Parquet decoder's,
//! are not); an execution that runs 60 s is a hang. Either input is saved under fuzz/artifacts/
//! and the run fails.
//!
//!   cargo run --release --example fuzz_readers -- [EXECS_PER_TARGET] [SEED] [TARGET...]
//!   cargo run --release --example fuzz_readers -- seeds   (writes the seeds to fuzz/corpus/)
//!   cargo run --release --example fuzz_readers -- replay TARGET FILE   (one input, panics shown)
//!
//! A stack overflow aborts the process before any handler runs: with `FUZZ_KEEP_LAST=FILE` each
//! input is written to FILE before it runs, so the aborting one is kept.
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use steerlab::data::Format;
use steerlab::model::tokenizer::TextTokenizer;
use steerlab::model::Model;
use steerlab::steer::{SteeringVector, VectorMeta};

/// A tiny xorshift generator (seeded, reproducible).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\n",
    b"\r\n",
    b",",
    b"\t",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\"\"",
    b"null",
    b"\xff",
    b"\xe9",
    b"\xef\xbb\xbf",
    b"PAR1",
    b"\n\nHuman:",
    b"\n\nAssistant:",
    b"\"role\"",
    b"\"content\"",
    b"\"chosen\"",
    b"\"winner\"",
    b"\"factors_a\": {\"x\": \"y\"}",
    b"1e999",
    b"-0",
    b"\"\\ud800\"",
    b"0",
    b"\"dtype\":\"I32\"",
    b"\"data_offsets\":[0,4]",
    b"\"shape\":[]",
    b"{%",
    b"%}",
    b"{{",
    b"}}",
    b"{% for m in messages %}",
    b"{% endfor %}",
    b"{{ raise_exception('x') }}",
    b"loop.index",
    b"|tojson",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"NaN",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = input[a..b].to_vec();
                let i = rng.below(len + 1);
                input.splice(i..i, chunk);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let i = rng.below(len + 1);
                    input.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ if len > 0 => {
                // Overwrite a little-endian u32 or u64 (lengths, counts and offsets in Parquet,
                // GGUF and safetensors headers).
                let i = rng.below(len);
                let v: Vec<u8> = match rng.below(6) {
                    0 => 0u32.to_le_bytes().to_vec(),
                    1 => u32::MAX.to_le_bytes().to_vec(),
                    2 => 0x7fff_ffffu32.to_le_bytes().to_vec(),
                    3 => u64::MAX.to_le_bytes().to_vec(),
                    4 => (1u64 << rng.below(64)).to_le_bytes().to_vec(),
                    _ => (rng.next() as u32).to_le_bytes().to_vec(),
                };
                for (k, b) in v.iter().enumerate() {
                    if i + k < input.len() {
                        input[i + k] = *b;
                    }
                }
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What one target reads, and the scratch state it reads it with.
enum Target {
    Data(Format),
    GgufModel,
    StModel(PathBuf),
    ConfigJson,
    Tokenizer(PathBuf),
    ChatTemplate(Box<TextTokenizer>),
    GgufVector,
    StVector,
}

impl Target {
    /// Runs `input` (already written to `path`, the scratch file) through the reader.
    /// Whether the reader reads the scratch file (the others get the bytes only).
    fn reads_file(&self) -> bool {
        !matches!(self, Target::ConfigJson | Target::ChatTemplate(_))
    }

    fn exercise(&mut self, path: &Path, input: &[u8]) {
        use steerlab::testing::fuzz;
        match self {
            Target::Data(format) => fuzz::dataset(path, *format),
            Target::GgufModel => fuzz::gguf_model(path, input),
            Target::StModel(dir) => fuzz::safetensors_model(dir),
            Target::ConfigJson => fuzz::config_json(input, path),
            Target::Tokenizer(dir) => fuzz::tokenizer_dir(dir),
            Target::ChatTemplate(tok) => fuzz::chat_template(tok, input),
            Target::GgufVector => fuzz::gguf_vector(path),
            Target::StVector => fuzz::safetensors_vector(path),
        }
    }
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("corpus file"))
        .collect()
}

fn vector(layers: &[usize], hidden: usize, seed: u64) -> SteeringVector {
    let mut rng = Rng(seed | 1);
    let l = layers
        .iter()
        .map(|&l| {
            let v = (0..hidden)
                .map(|_| (rng.below(2000) as f32 - 1000.0) / 500.0)
                .collect();
            (l, v)
        })
        .collect();
    SteeringVector::new(l, VectorMeta::new("caa", "tiny", hidden)).expect("seed vector")
}

/// A small llama GGUF model: the sentencepiece vocabulary and metadata of
/// tests/fixtures/gguf/tiny_spm.gguf, one block of width 32, F32/F16/Q8_0/Q4_0 tensors.
fn tiny_gguf_model(scratch: &Path) -> Vec<u8> {
    let src = fixtures().join("gguf/tiny_spm.gguf");
    let mut f = std::fs::File::open(&src).expect("tiny_spm.gguf");
    let content = gguf_file::Content::read(&mut f).expect("tiny_spm.gguf header");
    let vocab = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(a)) => a.len(),
        _ => panic!("tiny_spm.gguf has no tokens"),
    };
    let (h, ff) = (32usize, 64usize);
    let mut md: Vec<(String, gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    use gguf_file::Value as V;
    for (k, v) in [
        ("llama.embedding_length", V::U32(h as u32)),
        ("llama.feed_forward_length", V::U32(ff as u32)),
        ("llama.block_count", V::U32(1)),
        ("llama.attention.head_count", V::U32(4)),
        ("llama.attention.head_count_kv", V::U32(2)),
        ("llama.context_length", V::U32(64)),
        ("llama.rope.freq_base", V::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
    ] {
        md.retain(|(key, _)| key != k);
        md.push((k.to_string(), v));
    }
    md.sort_by(|a, b| a.0.cmp(&b.0));
    let dev = Device::Cpu;
    let mut rng = Rng(99);
    let mut t = |shape: &[usize]| -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (rng.below(1000) as f32 - 500.0) / 1000.0)
            .collect();
        Tensor::from_vec(v, shape, &dev).expect("tensor")
    };
    let q = |x: Tensor, ty: GgmlDType| QTensor::quantize(&x, ty).expect("quantize");
    let tensors: Vec<(&str, QTensor)> = vec![
        ("token_embd.weight", q(t(&[vocab, h]), GgmlDType::Q8_0)),
        ("output_norm.weight", q(t(&[h]), GgmlDType::F32)),
        ("blk.0.attn_norm.weight", q(t(&[h]), GgmlDType::F32)),
        ("blk.0.ffn_norm.weight", q(t(&[h]), GgmlDType::F32)),
        ("blk.0.attn_q.weight", q(t(&[h, h]), GgmlDType::Q4_0)),
        ("blk.0.attn_k.weight", q(t(&[h / 2, h]), GgmlDType::F16)),
        ("blk.0.attn_v.weight", q(t(&[h / 2, h]), GgmlDType::F16)),
        ("blk.0.attn_output.weight", q(t(&[h, h]), GgmlDType::F32)),
        ("blk.0.ffn_gate.weight", q(t(&[ff, h]), GgmlDType::Q8_0)),
        ("blk.0.ffn_up.weight", q(t(&[ff, h]), GgmlDType::F16)),
        ("blk.0.ffn_down.weight", q(t(&[h, ff]), GgmlDType::F32)),
    ];
    let p = scratch.join("seed-model.gguf");
    let mut out = std::fs::File::create(&p).expect("seed model");
    let mdr: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tr: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut out, &mdr, &tr).expect("write seed model");
    drop(out);
    Model::load(&p, &steerlab::model::LoadOptions::default()).expect("the seed model loads");
    std::fs::read(&p).expect("seed model")
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// The target's seed corpus, its scratch file name, and its state.
fn seeds(name: &str, root: &Path, scratch: &Path) -> (Vec<Vec<u8>>, PathBuf, Target) {
    let corpus_dir = |t: &str| root.join("corpus").join(format!("fuzz_{t}"));
    match name {
        "jsonl" | "json" | "csv" | "parquet" => {
            let format = match name {
                "jsonl" => Format::Jsonl,
                "json" => Format::Json,
                "csv" => Format::Csv,
                _ => Format::Parquet,
            };
            (
                read_dir_files(&corpus_dir(name)),
                scratch.join(format!("input.{name}")),
                Target::Data(format),
            )
        }
        "gz" | "zst" => {
            let plain = read_dir_files(&corpus_dir("jsonl"));
            let corpus = plain
                .iter()
                .map(|b| {
                    if name == "gz" {
                        gzip(b)
                    } else {
                        zstd::encode_all(&b[..], 3).expect("zstd")
                    }
                })
                .collect();
            (
                corpus,
                scratch.join(format!("input.jsonl.{name}")),
                Target::Data(Format::Jsonl),
            )
        }
        "gguf_model" => {
            let g = fixtures().join("gguf");
            let corpus = vec![
                tiny_gguf_model(scratch),
                std::fs::read(g.join("tiny_spm.gguf")).expect("fixture"),
                std::fs::read(g.join("tiny_bad_vocab.gguf")).expect("fixture"),
            ];
            (corpus, scratch.join("input.gguf"), Target::GgufModel)
        }
        "st_model" => {
            let dir = scratch.join("st_model");
            std::fs::create_dir_all(&dir).expect("model dir");
            steerlab::testing::write_tiny_llama(&dir, 1, 3);
            // The tokenizer has a target of its own.
            let _ = std::fs::remove_file(dir.join("tokenizer.json"));
            let _ = std::fs::remove_file(dir.join("tokenizer_config.json"));
            let w = std::fs::read(dir.join("model.safetensors")).expect("weights");
            Model::load(&dir, &steerlab::model::LoadOptions::default()).expect("seed loads");
            let mut small = std::collections::HashMap::new();
            small.insert(
                "model.norm.weight".to_string(),
                Tensor::ones(16, DType::F16, &Device::Cpu).expect("t"),
            );
            let p = scratch.join("small.safetensors");
            candle_core::safetensors::save(&small, &p).expect("save");
            let corpus = vec![w, std::fs::read(&p).expect("small")];
            (corpus, dir.join("model.safetensors"), Target::StModel(dir))
        }
        "config_json" => {
            let m = fixtures().join("models");
            let mut corpus: Vec<Vec<u8>> = ["llama", "llama3", "mistral", "qwen2", "qwen3"]
                .iter()
                .map(|a| std::fs::read(m.join(a).join("config.json")).expect("config"))
                .collect();
            corpus.push(
                br#"{"model_type":"llama","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":4,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}"#
                    .to_vec(),
            );
            (corpus, scratch.join("config.json"), Target::ConfigJson)
        }
        "tokenizer_json" => {
            let dir = scratch.join("tok");
            std::fs::create_dir_all(&dir).expect("tok dir");
            let hf = fixtures().join("tokenizer_hf");
            std::fs::copy(
                hf.join("tokenizer_config.json"),
                dir.join("tokenizer_config.json"),
            )
            .expect("tokenizer_config");
            let mut corpus = vec![std::fs::read(hf.join("tokenizer.json")).expect("tok")];
            for a in ["llama", "qwen2"] {
                let p = fixtures().join("models").join(a).join("tokenizer.json");
                if let Ok(b) = std::fs::read(p) {
                    corpus.push(b);
                }
            }
            (corpus, dir.join("tokenizer.json"), Target::Tokenizer(dir))
        }
        "chat_template" => {
            let t: serde_json::Value = serde_json::from_slice(
                &std::fs::read(fixtures().join("tokenizer_hf/templates_expected.json"))
                    .expect("templates"),
            )
            .expect("templates json");
            let corpus: Vec<Vec<u8>> = t["renders"]
                .as_array()
                .expect("renders")
                .iter()
                .filter_map(|r| r["template"].as_str().map(|s| s.as_bytes().to_vec()))
                .collect();
            let tok = TextTokenizer::from_hf_dir(&fixtures().join("tokenizer_hf")).expect("tok");
            (
                corpus,
                scratch.join("template.jinja"),
                Target::ChatTemplate(Box::new(tok)),
            )
        }
        "gguf_vector" => {
            let mut corpus = Vec::new();
            for (i, (layers, hidden)) in [(vec![1usize, 2, 5], 8usize), (vec![3], 16)]
                .into_iter()
                .enumerate()
            {
                let p = scratch.join(format!("seed{i}.gguf"));
                steerlab::steer::gguf::export_control_vector(
                    &vector(&layers, hidden, i as u64 + 5),
                    "tiny",
                    &p,
                )
                .expect("export");
                corpus.push(std::fs::read(&p).expect("seed"));
            }
            (corpus, scratch.join("input.gguf"), Target::GgufVector)
        }
        "st_vector" => {
            let mut corpus = Vec::new();
            for (i, (layers, hidden)) in [(vec![0usize, 2], 8usize), (vec![4], 4)]
                .into_iter()
                .enumerate()
            {
                let p = scratch.join(format!("seed{i}.safetensors"));
                vector(&layers, hidden, i as u64 + 9)
                    .save(&p)
                    .expect("save");
                corpus.push(std::fs::read(&p).expect("seed"));
            }
            (corpus, scratch.join("input.safetensors"), Target::StVector)
        }
        other => panic!("unknown target {other}"),
    }
}

const ALL: &[&str] = &[
    "jsonl",
    "json",
    "csv",
    "parquet",
    "gz",
    "zst",
    "gguf_model",
    "st_model",
    "config_json",
    "tokenizer_json",
    "chat_template",
    "gguf_vector",
    "st_vector",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // Scratch files live in memory where a tmpfs is mounted (each execution writes one).
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let scratch = tmp.join(format!("steerlab-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    if args.get(1).map(String::as_str) == Some("seeds") {
        // Seed corpora for the cargo-fuzz targets of the model and vector readers.
        for t in &ALL[4..] {
            let (corpus, path, _) = seeds(t, &root, &scratch);
            let dir = root.join("corpus").join(format!("fuzz_{t}"));
            std::fs::create_dir_all(&dir).expect("corpus dir");
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
            for (i, c) in corpus.iter().enumerate() {
                std::fs::write(dir.join(format!("seed{i}.{ext}")), c).expect("seed");
            }
            println!("{t}: {} seeds in {}", corpus.len(), dir.display());
        }
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    }
    if args.get(1).map(String::as_str) == Some("replay") {
        let (Some(target), Some(file)) = (args.get(2), args.get(3)) else {
            panic!("usage: replay TARGET FILE");
        };
        let (_, path, mut state) = seeds(target, &root, &scratch);
        let input = std::fs::read(file).expect("input file");
        std::fs::write(&path, &input).expect("scratch write");
        state.exercise(&path, &input);
        let _ = std::fs::remove_dir_all(&scratch);
        println!("{target}: {file} ran without a panic");
        return;
    }
    let execs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let targets: Vec<&str> = if args.len() > 3 {
        args[3..].iter().map(String::as_str).collect()
    } else {
        ALL.to_vec()
    };
    // Panics are caught and counted; keep the default hook quiet meanwhile.
    std::panic::set_hook(Box::new(|_| {}));
    // A watchdog: an execution running 60 s is a hang; its input is saved and the run fails.
    let started = Arc::new(AtomicU64::new(u64::MAX));
    let current: Arc<Mutex<(String, Vec<u8>)>> = Arc::default();
    {
        let (started, current, root) = (started.clone(), current.clone(), root.clone());
        let t0 = Instant::now();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let s = started.load(Ordering::Relaxed);
            if s != u64::MAX && t0.elapsed().as_secs().saturating_sub(s) >= 60 {
                let (target, input) = current.lock().map(|g| g.clone()).unwrap_or_default();
                let art = root.join("artifacts").join(&target);
                let _ = std::fs::create_dir_all(&art);
                let out = art.join(format!("hang-{}", std::process::id()));
                let _ = std::fs::write(&out, input);
                eprintln!("{target}: HANG (60 s), input saved to {}", out.display());
                std::process::exit(2);
            }
        });
    }
    let t0 = Instant::now();
    let mut crashes = 0;
    for target in targets {
        let (corpus, path, mut state) = seeds(target, &root, &scratch);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("bin")
            .to_string();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ target.len() as u64 | 1);
        let t_start = Instant::now();
        let reads_file = state.reads_file();
        // FUZZ_KEEP_LAST=FILE: every input is written there before it runs, so an input that
        // aborts the process (a stack overflow, which no harness can catch) is kept.
        let keep_last = std::env::var_os("FUZZ_KEEP_LAST").map(PathBuf::from);
        let mut input = Vec::new();
        for i in 0..execs {
            input.clear();
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            mutate(&mut rng, &corpus, &mut input);
            if reads_file {
                std::fs::write(&path, &input).expect("scratch write");
            }
            if let Some(k) = &keep_last {
                std::fs::write(k, &input).expect("FUZZ_KEEP_LAST write");
            }
            if let Ok(mut g) = current.lock() {
                g.0.clear();
                g.0.push_str(target);
                g.1.clone_from(&input);
            }
            started.store(t0.elapsed().as_secs(), Ordering::Relaxed);
            let r = catch_unwind(AssertUnwindSafe(|| state.exercise(&path, &input)));
            started.store(u64::MAX, Ordering::Relaxed);
            if (i + 1) % 50_000 == 0 {
                // Interim counts, so a run cut short still says how far it got.
                eprintln!(
                    "{target}: {} executions so far, seed {seed}, {crashes} crashes, {:.0} exec/s",
                    i + 1,
                    (i + 1) as f64 / t_start.elapsed().as_secs_f64().max(1e-9)
                );
            }
            if r.is_err() {
                crashes += 1;
                let art = root.join("artifacts").join(target);
                std::fs::create_dir_all(&art).expect("artifacts dir");
                let out = art.join(format!("crash-{seed}-{i}.{ext}"));
                std::fs::write(&out, &input).expect("artifact write");
                eprintln!(
                    "{target}: CRASH on execution {i}, input saved to {}",
                    out.display()
                );
            }
        }
        let secs = t_start.elapsed().as_secs_f64();
        println!(
            "{target}: {execs} executions, corpus {} inputs, seed {seed}, {secs:.0} s, {:.0} exec/s",
            corpus.len(),
            execs as f64 / secs.max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if crashes > 0 {
        eprintln!("{crashes} crashing inputs");
        std::process::exit(1);
    }
    println!("no crashes");
}
