//! Hostile model files (issue 17, items 3, 4 and 11): crafted GGUF headers (alignment, counts,
//! dimensions, types, offsets, nesting, version 1), configuration numbers that would give NaN
//! (HF `config.json` and GGUF metadata), checkpoints that disagree with their config, non-finite
//! and integer weights, prompts longer than the context, and an embedding with more rows than
//! the tokenizer has tokens. Every input is derived in the test from the committed tiny fixtures.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use steerlab::model::load::gguf::read_gguf;
use steerlab::model::{GenerateOptions, Hooks, LoadOptions, Model};
use steerlab::testing::{fixture_path, write_tiny_llama};

fn steerlab(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .env("STEERLAB_HOME", "/nonexistent-steerlab-home")
        .output()
        .expect("run steerlab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A GGUF file taken apart and put back together, so single fields can be made hostile.

const T_U32: u32 = 4;
const T_F32: u32 = 6;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;

struct TensorInfo {
    name: Vec<u8>,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

struct Gguf {
    version: u32,
    kvs: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<TensorInfo>,
    data: Vec<u8>,
}

struct Cur<'a>(&'a [u8], usize);

impl Cur<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.0[self.1..self.1 + n];
        self.1 += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn str(&mut self) -> Vec<u8> {
        let n = self.u64() as usize;
        self.take(n).to_vec()
    }
    fn skip_value(&mut self, ty: u32) {
        match ty {
            0 | 1 | 7 => {
                self.take(1);
            }
            2 | 3 => {
                self.take(2);
            }
            4..=6 => {
                self.take(4);
            }
            10..=12 => {
                self.take(8);
            }
            T_STRING => {
                self.str();
            }
            T_ARRAY => {
                let inner = self.u32();
                let n = self.u64();
                for _ in 0..n {
                    self.skip_value(inner);
                }
            }
            t => panic!("fixture has value type {t}"),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

impl Gguf {
    fn parse(bytes: &[u8]) -> Gguf {
        let mut c = Cur(bytes, 0);
        assert_eq!(c.take(4), b"GGUF");
        let version = c.u32();
        let n_tensors = c.u64();
        let n_kv = c.u64();
        let mut kvs = Vec::new();
        for _ in 0..n_kv {
            let key = String::from_utf8(c.str()).unwrap();
            let ty = c.u32();
            let start = c.1;
            c.skip_value(ty);
            kvs.push((key, ty, bytes[start..c.1].to_vec()));
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = c.str();
            let nd = c.u32();
            let dims = (0..nd).map(|_| c.u64()).collect();
            let ty = c.u32();
            let offset = c.u64();
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }
        let data_start = c.1.div_ceil(32) * 32;
        Gguf {
            version,
            kvs,
            tensors,
            data: bytes[data_start..].to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in &self.kvs {
            put_str(&mut out, k.as_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(v);
        }
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend_from_slice(&self.data);
        out
    }

    fn set(&mut self, key: &str, ty: u32, value: Vec<u8>) {
        match self.kvs.iter_mut().find(|kv| kv.0 == key) {
            Some(kv) => {
                kv.1 = ty;
                kv.2 = value;
            }
            None => self.kvs.push((key.to_string(), ty, value)),
        }
    }

    fn tensor(&mut self, name: &str) -> &mut TensorInfo {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name.as_bytes())
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    }
}

fn tiny_gguf() -> Gguf {
    Gguf::parse(&std::fs::read(fixture_path("gguf").join("tiny_llama.gguf")).unwrap())
}

/// Writes `g` and reads it as a model; returns the error text (it must be an error).
fn refused(dir: &Path, tag: &str, bytes: &[u8]) -> String {
    let p = dir.join(format!("{tag}.gguf"));
    std::fs::write(&p, bytes).unwrap();
    let e = match Model::load(&p, &LoadOptions::default()) {
        Ok(_) => panic!("{tag}: loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(s(&p)),
        "{tag}: error does not name the file: {e}"
    );
    e
}

#[test]
fn the_unmodified_fixture_round_trips() {
    let src = std::fs::read(fixture_path("gguf").join("tiny_llama.gguf")).unwrap();
    assert_eq!(Gguf::parse(&src).bytes(), src);
}

#[test]
fn gguf_header_numbers_are_checked_before_candle_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();

    let mut g = tiny_gguf();
    g.set("general.alignment", T_U32, 0u32.to_le_bytes().to_vec());
    let e = refused(dir, "align0", &g.bytes());
    assert!(
        e.contains("general.alignment") && e.contains("power of two"),
        "{e}"
    );

    let mut g = tiny_gguf();
    g.set("general.alignment", T_U32, 48u32.to_le_bytes().to_vec());
    let e = refused(dir, "align48", &g.bytes());
    assert!(e.contains("general.alignment"), "{e}");

    // A billion blocks: refused from the tensor count, before any list of that length exists.
    let mut g = tiny_gguf();
    g.set(
        "llama.block_count",
        T_U32,
        1_000_000_000u32.to_le_bytes().to_vec(),
    );
    let e = refused(dir, "blocks", &g.bytes());
    assert!(
        e.contains("llama.block_count") && e.contains("1000000000 blocks"),
        "{e}"
    );

    // Counts larger than the file can hold.
    let mut b = tiny_gguf().bytes();
    b[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = refused(dir, "tensor_count", &b);
    assert!(e.contains("cannot fit"), "{e}");
    let mut b = tiny_gguf().bytes();
    b[16..24].copy_from_slice(&1_000_000_000u64.to_le_bytes());
    let e = refused(dir, "kv_count", &b);
    assert!(e.contains("cannot fit"), "{e}");

    // Version 1 (u32 lengths): refused by version, never read as garbage names.
    let mut g = tiny_gguf();
    g.version = 1;
    let e = refused(dir, "v1", &g.bytes());
    assert!(e.contains("version 1"), "{e}");
}

#[test]
fn gguf_tensor_table_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();

    // Two tensors sharing bytes.
    let mut g = tiny_gguf();
    let first = g.tensors[0].offset;
    let second = g.tensors[1].name.clone();
    g.tensors[1].offset = first;
    let e = refused(dir, "overlap", &g.bytes());
    assert!(e.contains("overlaps"), "{e}");
    assert!(
        e.contains(&*String::from_utf8_lossy(&second))
            || e.contains(&*String::from_utf8_lossy(&g.tensors[0].name)),
        "{e}"
    );

    let mut g = tiny_gguf();
    g.tensors[2].offset += 4;
    let e = refused(dir, "misaligned", &g.bytes());
    assert!(e.contains("not a multiple of the alignment 32"), "{e}");

    let mut g = tiny_gguf();
    g.tensors[0].offset = 1 << 40;
    let e = refused(dir, "past_eof", &g.bytes());
    assert!(e.contains("past the end of the file"), "{e}");

    let mut g = tiny_gguf();
    g.tensor("output_norm.weight").dims = vec![];
    let e = refused(dir, "ndims0", &g.bytes());
    assert!(
        e.contains("output_norm.weight") && e.contains("0 dimensions"),
        "{e}"
    );
    assert!(!e.contains("unknown dtype"), "{e}");

    let mut g = tiny_gguf();
    g.tensor("output_norm.weight").dims = vec![1, 1, 1, 1, 64];
    let e = refused(dir, "ndims5", &g.bytes());
    assert!(e.contains("5 dimensions"), "{e}");

    let mut g = tiny_gguf();
    g.tensor("output_norm.weight").dims = vec![1 << 40, 1 << 40];
    let e = refused(dir, "overflow", &g.bytes());
    assert!(
        e.contains("output_norm.weight") && e.contains("multiply"),
        "{e}"
    );

    let mut g = tiny_gguf();
    g.tensor("output_norm.weight").ty = 99;
    let e = refused(dir, "dtype", &g.bytes());
    assert!(
        e.contains("output_norm.weight") && e.contains("type 99"),
        "{e}"
    );

    // A name of binary bytes is printed escaped, never raw.
    let mut g = tiny_gguf();
    g.tensors[0].name = vec![0xff, 0x01, b'x', 0x80];
    let e = refused(dir, "binary_name", &g.bytes());
    assert!(
        e.contains("tensor #0") && e.contains("not plain UTF-8"),
        "{e}"
    );
    assert!(!e.contains('\u{1}'), "{e:?}");
}

#[test]
fn gguf_metadata_nesting_and_sizes_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // 100 000 nested arrays: refused at the third level, no recursion to overflow the stack.
    let mut v = Vec::new();
    for _ in 0..100_000 {
        v.extend_from_slice(&T_ARRAY.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&T_U32.to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    v.extend_from_slice(&7u32.to_le_bytes());
    // The outer value's own header: an array of arrays, one element.
    let mut g = tiny_gguf();
    g.set("x.nested", T_ARRAY, v);
    let e = refused(dir, "nested", &g.bytes());
    assert!(e.contains("x.nested") && e.contains("nested deeper"), "{e}");

    // A string whose length runs past the end of the file.
    let mut g = tiny_gguf();
    let mut v = (1u64 << 50).to_le_bytes().to_vec();
    v.extend_from_slice(b"abc");
    g.set("x.long", T_STRING, v);
    let e = refused(dir, "long_string", &g.bytes());
    assert!(e.contains("x.long") && e.contains("does not fit"), "{e}");

    // An array claiming more elements than bytes left.
    let mut g = tiny_gguf();
    let mut v = T_U64.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    g.set("x.array", T_ARRAY, v);
    let e = refused(dir, "big_array", &g.bytes());
    assert!(e.contains("x.array") && e.contains("does not fit"), "{e}");
}

#[test]
fn gguf_config_numbers_are_refused_not_defaulted() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (key, value, want) in [
        ("llama.rope.freq_base", f32::NAN, "llama.rope.freq_base"),
        ("llama.rope.freq_base", -1.0, "llama.rope.freq_base"),
        ("llama.rope.freq_base", 0.0, "llama.rope.freq_base"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            -1e-5,
            "layer_norm_rms_epsilon",
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            f32::INFINITY,
            "layer_norm_rms_epsilon",
        ),
    ] {
        let mut g = tiny_gguf();
        g.set(key, T_F32, value.to_le_bytes().to_vec());
        let e = refused(dir, "num", &g.bytes());
        assert!(
            e.contains(want) && e.contains("finite"),
            "{key}={value}: {e}"
        );
    }
    let mut g = tiny_gguf();
    g.set("llama.rope.scaling.type", T_STRING, {
        let mut v = 6u64.to_le_bytes().to_vec();
        v.extend_from_slice(b"linear");
        v
    });
    g.set(
        "llama.rope.scaling.factor",
        T_F32,
        0f32.to_le_bytes().to_vec(),
    );
    let e = refused(dir, "factor0", &g.bytes());
    assert!(e.contains("rope.scaling.factor"), "{e}");
    let mut g = tiny_gguf();
    g.set("llama.context_length", T_U32, 0u32.to_le_bytes().to_vec());
    let e = refused(dir, "ctx0", &g.bytes());
    assert!(e.contains("llama.context_length"), "{e}");

    // The CLI says the same and exits 1 (never a panic or a NaN cache).
    let mut g = tiny_gguf();
    g.set("general.alignment", T_U32, 0u32.to_le_bytes().to_vec());
    let p = dir.join("cli.gguf");
    std::fs::write(&p, g.bytes()).unwrap();
    let cache = dir.join("c.safetensors");
    for args in [
        vec!["info", "--model", s(&p)],
        vec![
            "run",
            "--model",
            s(&p),
            "--ids",
            "1,2",
            "--cache",
            s(&cache),
        ],
    ] {
        let (rc, msg) = steerlab(&args);
        assert_eq!(rc, 1, "{args:?}: {msg}");
        assert!(
            msg.contains("general.alignment") && !msg.contains("panicked"),
            "{msg}"
        );
    }
    assert!(!cache.exists());
}

#[test]
fn non_finite_gguf_weights_are_named() {
    let d = tempfile::tempdir().unwrap();
    let mut g = tiny_gguf();
    let t = g.tensor("output_norm.weight");
    assert_eq!(t.ty, 0, "fixture's output_norm is F32");
    let off = t.offset as usize + 8;
    g.data[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = refused(d.path(), "nan_weight", &g.bytes());
    assert!(e.contains("model.norm.weight") && e.contains("NaN"), "{e}");
    // The reader alone (no model) still loads it: the check is where weights enter the model.
    read_gguf(&d.path().join("nan_weight.gguf"), &Device::Cpu, DType::F32).unwrap();
}

/// Fuzzing finding (gguf_model, 2026-12-02): a NaN among a sentencepiece vocabulary's
/// `tokenizer.ggml.scores` made the merge ranking's comparison inconsistent and the sort panic
/// ("does not correctly implement a total order"). A NaN score is now refused, naming it;
/// infinite scores rank like any other.
#[test]
fn a_nan_sentencepiece_score_is_refused_not_a_panic() {
    use steerlab::model::load::gguf::read_gguf_header;
    use steerlab::model::tokenizer::TextTokenizer;
    let d = tempfile::tempdir().unwrap();
    let src = std::fs::read(fixture_path("gguf").join("tiny_spm.gguf")).unwrap();
    let base = Gguf::parse(&src);
    let scores_at = |g: &mut Gguf, k: usize, v: f32| {
        let kv = g
            .kvs
            .iter_mut()
            .find(|kv| kv.0 == "tokenizer.ggml.scores")
            .expect("the fixture has scores");
        let n = u64::from_le_bytes(kv.2[4..12].try_into().unwrap()) as usize;
        assert!(k < n);
        kv.2[12 + 4 * k..16 + 4 * k].copy_from_slice(&v.to_le_bytes());
    };
    let load = |g: &Gguf, tag: &str| {
        let p = d.path().join(format!("{tag}.gguf"));
        std::fs::write(&p, g.bytes()).unwrap();
        let content = read_gguf_header(&p).unwrap();
        TextTokenizer::from_gguf_metadata(&content, &p).map(|_| ())
    };
    load(&base, "clean").unwrap();
    for k in [0usize, 5, 40] {
        let mut g = Gguf::parse(&src);
        scores_at(&mut g, k, f32::NAN);
        let e = load(&g, &format!("nan{k}")).unwrap_err().to_string();
        assert!(
            e.contains(&format!("tokenizer.ggml.scores[{k}]")) && e.contains("NaN"),
            "{e}"
        );
    }
    let mut g = Gguf::parse(&src);
    scores_at(&mut g, 40, f32::INFINITY);
    scores_at(&mut g, 41, f32::NEG_INFINITY);
    load(&g, "inf").unwrap();
}

/// Fuzzing finding (chat_template, 2026-12-02): a template whose macro calls itself recursed
/// until the stack overflowed and the process aborted (minijinja stops at 500 levels, too deep
/// for a thread's stack). Now an error, even on a 2 MiB thread (the app's job threads).
#[test]
fn a_self_recursive_chat_template_is_an_error_not_a_stack_overflow() {
    use steerlab::data::Message;
    use steerlab::model::tokenizer::TextTokenizer;
    let mut tok = TextTokenizer::from_hf_dir(&fixture_path("tokenizer_hf")).unwrap();
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut out = Vec::new();
            for t in [
                "{% macro m(x) %}{{ m(x) }}{% endmacro %}{{ m(messages) }}",
                "{% for a in messages recursive %}{{ loop(messages) }}{% endfor %}",
            ] {
                tok.set_chat_template(Some(t.to_string()));
                out.push(
                    tok.apply_chat_template(&[Message::new("user", "hi")], true)
                        .map_err(|e| e.to_string()),
                );
            }
            out
        })
        .unwrap();
    for r in h.join().expect("no stack overflow, no panic") {
        let e = r.unwrap_err();
        assert!(e.contains("recursion"), "{e}");
    }
    // A normal template nests far less than the limit.
    let tok = TextTokenizer::from_hf_dir(&fixture_path("tokenizer_hf")).unwrap();
    tok.apply_chat_template(&[Message::new("user", "hi")], true)
        .unwrap();
}

/// GGML block types: (type id, block bytes, byte offsets of the f16 scales), from ggml's block
/// layouts (independent of the library's own table).
const QUANT_SCALES: &[(u32, usize, &[usize])] = &[
    (2, 18, &[0]),      // Q4_0: d
    (3, 20, &[0, 2]),   // Q4_1: d, m
    (6, 22, &[0]),      // Q5_0: d
    (7, 24, &[0, 2]),   // Q5_1: d, m
    (8, 34, &[0]),      // Q8_0: d
    (12, 144, &[0, 2]), // Q4_K: d, dmin
    (13, 176, &[0, 2]), // Q5_K: d, dmin
    (14, 210, &[208]),  // Q6_K: d (last)
];

#[test]
fn non_finite_scales_in_quantized_gguf_weights_are_named_when_kept_quantized() {
    use steerlab::model::load::WeightStorage;
    let d = tempfile::tempdir().unwrap();
    let quantized = LoadOptions {
        weights: WeightStorage::Quantized,
        ..LoadOptions::default()
    };
    // The fixture itself loads both ways.
    let p = fixture_path("gguf").join("tiny_llama.gguf");
    Model::load(&p, &quantized).unwrap();
    let names: Vec<(String, u32)> = tiny_gguf()
        .tensors
        .iter()
        .map(|t| (String::from_utf8(t.name.clone()).unwrap(), t.ty))
        .collect();
    let mut tested = std::collections::BTreeSet::new();
    for (name, ty) in names {
        let Some(&(_, size, offsets)) = QUANT_SCALES.iter().find(|q| q.0 == ty) else {
            continue;
        };
        for (k, &o) in offsets.iter().enumerate() {
            for bad in [0x7e00u16, 0x7c00] {
                let mut g = tiny_gguf();
                let t = g.tensor(&name);
                // The second block of the tensor.
                let at = t.offset as usize + size + o;
                g.data[at..at + 2].copy_from_slice(&bad.to_le_bytes());
                let tag = format!("{}_{k}_{bad:x}", name.replace('.', "_"));
                let f = d.path().join(format!("{tag}.gguf"));
                std::fs::write(&f, g.bytes()).unwrap();
                let e = match Model::load(&f, &quantized) {
                    Ok(_) => panic!("{tag}: a NaN/inf scale loaded with --weights quantized"),
                    Err(e) => e.to_string(),
                };
                assert!(
                    e.contains(s(&f)) && e.contains("NaN or infinite") && e.contains("block 1"),
                    "{tag}: {e}"
                );
                // Dequantized at load (the default), the dense scan refuses it too.
                let e = refused(d.path(), &tag, &g.bytes());
                assert!(e.contains("NaN or infinite"), "{tag}: {e}");
                tested.insert(ty);
            }
        }
    }
    assert_eq!(
        tested.len(),
        QUANT_SCALES.len(),
        "block types covered: {tested:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// HF folders.

fn hf_model(dir: &Path) -> PathBuf {
    let m = dir.join("m");
    std::fs::create_dir(&m).unwrap();
    write_tiny_llama(&m, 2, 5);
    m
}

fn edit_config(m: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = m.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

fn edit_weights(m: &Path, f: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let p = m.join("model.safetensors");
    let mut t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    f(&mut t);
    candle_core::safetensors::save(&t, &p).unwrap();
}

/// `steerlab run` on `m`: exit 1 with a message containing each of `want`, and no cache.
fn run_refused(m: &Path, ids: &str, want: &[&str]) {
    let cache = m.join("cache.safetensors");
    let (rc, msg) = steerlab(&["run", "--model", s(m), "--ids", ids, "--cache", s(&cache)]);
    assert_eq!(rc, 1, "{want:?}: {msg}");
    for w in want {
        assert!(msg.contains(w), "{want:?}: {msg}");
    }
    assert!(!cache.exists(), "{want:?}: a cache was written");
}

#[test]
fn config_numbers_that_would_give_nan_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = hf_model(d.path());
    let cache = m.join("cache.safetensors");
    let (rc, msg) = steerlab(&[
        "run",
        "--model",
        s(&m),
        "--ids",
        "1,2,3",
        "--cache",
        s(&cache),
    ]);
    assert_eq!(rc, 0, "the unmodified model runs: {msg}");
    std::fs::remove_file(&cache).unwrap();
    let good = std::fs::read_to_string(m.join("config.json")).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("rope_theta", serde_json::json!(0.0), "rope_theta"),
        ("rope_theta", serde_json::json!(-10000.0), "rope_theta"),
        ("rms_norm_eps", serde_json::json!(-1e-5), "rms_norm_eps"),
        (
            "rope_scaling",
            serde_json::json!({"rope_type": "linear", "factor": 0.0}),
            "rope_scaling.factor",
        ),
        (
            "max_position_embeddings",
            serde_json::json!(0),
            "max_position_embeddings",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(1),
            "num_hidden_layers",
        ),
    ];
    for (key, value, want) in cases {
        std::fs::write(m.join("config.json"), &good).unwrap();
        edit_config(&m, |c| c[key] = value);
        run_refused(&m, "1,2,3", &["config.json", want]);
    }
    std::fs::write(m.join("config.json"), &good).unwrap();
    edit_config(&m, |c| {
        c["model_type"] = "mistral".into();
        c["sliding_window"] = 0.into();
    });
    run_refused(&m, "1,2,3", &["sliding_window"]);
}

#[test]
fn prompts_longer_than_the_context_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = hf_model(d.path());
    edit_config(&m, |c| c["max_position_embeddings"] = 4.into());
    run_refused(&m, "1,2,3,4,5", &["5 tokens", "context is 4"]);
    let model = Model::load(&m, &LoadOptions::default()).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 10,
        stop_at_eos: false,
        ..Default::default()
    };
    let e = model
        .generate(&[5, 6, 7, 8, 9], &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap_err();
    assert!(e.to_string().contains("context is 4"), "{e}");
    // Generation stops when the context is full instead of running past it.
    let out = model
        .generate(&[5, 6], &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    assert_eq!(
        out.len(),
        3,
        "positions 0..4 fed, the last token is never fed"
    );
}

#[test]
fn bad_weights_are_named() {
    let d = tempfile::tempdir().unwrap();
    let m = hf_model(d.path());
    let orig = std::fs::read(m.join("model.safetensors")).unwrap();
    edit_weights(&m, |t| {
        let w = t["model.layers.1.mlp.up_proj.weight"].clone();
        let mut v = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[7] = f32::INFINITY;
        t.insert(
            "model.layers.1.mlp.up_proj.weight".into(),
            Tensor::from_vec(v, w.dims(), &Device::Cpu).unwrap(),
        );
    });
    run_refused(
        &m,
        "1,2",
        &["model.layers.1.mlp.up_proj.weight", "NaN or infinite"],
    );
    std::fs::write(m.join("model.safetensors"), &orig).unwrap();
    edit_weights(&m, |t| {
        let w = t["model.norm.weight"].clone();
        t.insert("model.norm.weight".into(), w.to_dtype(DType::U32).unwrap());
    });
    run_refused(&m, "1,2", &["model.norm.weight", "U32", "F16, BF16, F32"]);
}

/// An embedding of 400 rows with a tokenizer of 320 tokens, and an LM head whose extra rows
/// dominate every logit: unmasked, greedy decoding would pick an id the tokenizer cannot decode.
#[test]
fn ids_past_the_tokenizer_are_never_sampled() {
    let d = tempfile::tempdir().unwrap();
    let m = hf_model(d.path());
    edit_config(&m, |c| {
        c["vocab_size"] = 400.into();
        c["tie_word_embeddings"] = false.into();
    });
    edit_weights(&m, |t| {
        let e = t["model.embed_tokens.weight"].clone();
        let hidden = e.dim(1).unwrap();
        let extra = Tensor::randn(0f32, 0.3, (80, hidden), &Device::Cpu).unwrap();
        let embed = Tensor::cat(&[&e, &extra], 0).unwrap();
        // Rows 320.. are ±100 × a few random directions: one sign always wins by far.
        let dirs = Tensor::randn(0f32, 1.0, (40, hidden), &Device::Cpu).unwrap();
        let big = Tensor::cat(&[&(&dirs * 100.0).unwrap(), &(&dirs * -100.0).unwrap()], 0).unwrap();
        let head = Tensor::cat(&[&e, &big], 0).unwrap();
        t.insert("model.embed_tokens.weight".into(), embed);
        t.insert("lm_head.weight".into(), head);
    });
    let model = Model::load(&m, &LoadOptions::default()).unwrap();
    assert_eq!(model.undecodable_ids(), Some(320..400));
    for temperature in [0.0, 1.0] {
        let opts = GenerateOptions {
            max_new_tokens: 12,
            temperature,
            stop_at_eos: false,
            seed: 3,
            ..Default::default()
        };
        let out = model
            .generate(&[5, 6, 7], &opts, &Hooks::new(), &mut |_, _| true)
            .unwrap();
        assert_eq!(out.len(), 12);
        assert!(out.iter().all(|&i| i < 320), "{out:?}");
    }
    let (rc, msg) = steerlab(&[
        "generate",
        "--model",
        s(&m),
        "--prompt",
        "hello",
        "--max-new-tokens",
        "6",
    ]);
    assert_eq!(rc, 0, "{msg}");
    assert_eq!(msg.matches("never sampled").count(), 1, "{msg}");
}

/// Found by fuzzing: `{%}` made the generation-tag filter slice backwards (a panic).
#[test]
fn a_malformed_chat_template_is_an_error() {
    let dir = fixture_path("tokenizer_hf");
    let mut t = steerlab::model::TextTokenizer::from_hf_dir(&dir).unwrap();
    let msgs = [steerlab::data::Message::new("user", "hi")];
    for tpl in ["{%}", "a{%}b{% endfor %}", "{% generation %}{%}", "{%"] {
        t.set_chat_template(Some(tpl.to_string()));
        let e = t.apply_chat_template(&msgs, true).unwrap_err();
        assert!(e.to_string().contains("chat template"), "{tpl}: {e}");
    }
}

/// Found by fuzzing: a tokenizer.json whose decoder is malformed JSON inside made the
/// tokenizers crate panic; it is a load error naming the file, printed without a panic line.
#[test]
fn a_tokenizer_the_library_panics_on_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture_path("tokenizer_hf");
    let text = std::fs::read_to_string(fx.join("tokenizer.json")).unwrap();
    // Invalid JSON inside the decoder object (what the fuzzer found: `true` became `tbue`).
    let at = text.find("\"decoder\"").unwrap();
    let t = at + text[at..].find("true").unwrap();
    let broken = format!("{}tbue{}", &text[..t], &text[t + 4..]);
    std::fs::write(d.path().join("tokenizer.json"), broken).unwrap();
    let e = steerlab::model::TextTokenizer::from_hf_dir(d.path()).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

/// Issue 17, item 12: an error whose text already includes its cause prints it once; a caught
/// Parquet decoder panic prints the reader's message and no `panicked at` line.
#[test]
fn messages_say_each_thing_once() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.jsonl");
    for args in [
        vec!["data", "check", s(&missing)],
        vec![
            "steer",
            "export",
            "--vector",
            s(&missing),
            "--out",
            "x.gguf",
        ],
    ] {
        let (rc, msg) = steerlab(&args);
        assert_eq!(rc, 1, "{msg}");
        assert_eq!(msg.matches("(os error 2)").count(), 1, "{msg}");
    }
    let bad = fixture_path("data/bad/parquet_decoder_panic.parquet");
    let (rc, msg) = steerlab(&["data", "check", s(&bad)]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("the file is probably corrupt"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

/// Found by fuzzing: a post-processor whose template names a special token missing from its
/// `special_tokens` made the tokenizers crate panic at the first encode; refused at load.
#[test]
fn a_post_processor_naming_a_missing_token_is_refused_at_load() {
    let d = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(fixture_path("tokenizer_hf").join("tokenizer.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let st = v["post_processor"]["special_tokens"]
        .as_object_mut()
        .unwrap();
    let entry = st.remove("<s>").expect("fixture's template uses <s>");
    st.insert("<renamed>".into(), entry);
    std::fs::write(d.path().join("tokenizer.json"), v.to_string()).unwrap();
    let e = steerlab::model::TextTokenizer::from_hf_dir(d.path()).unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("tokenizer.json")
            && e.contains("post_processor")
            && e.contains("library failed"),
        "{e}"
    );
}

/// Fuzz finding (chat_template seeds 202, 209): a template that stores a namespace in itself
/// and prints it aborted the process with a stack overflow. Now an error naming the file and
/// key the template came from, also on a small thread.
#[test]
fn a_self_containing_namespace_template_is_an_error_naming_its_source() {
    use steerlab::data::Message;
    use steerlab::model::tokenizer::TextTokenizer;
    let d = tempfile::tempdir().unwrap();
    let fx = fixture_path("tokenizer_hf");
    for f in std::fs::read_dir(&fx).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.path().join(f.file_name().unwrap())).unwrap();
    }
    let cfg_path = d.path().join("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["chat_template"] =
        "{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns.n }}{{ messages[0].content }}"
            .into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let tok = TextTokenizer::from_hf_dir(d.path()).unwrap();
    let e = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            tok.apply_chat_template(&[Message::new("user", "hi")], true)
                .unwrap_err()
                .to_string()
        })
        .unwrap()
        .join()
        .expect("no stack overflow, no panic");
    assert!(
        e.contains("tokenizer_config.json: chat_template") && e.contains("namespace"),
        "{e}"
    );
}
