//! GGUF loading against the Python `gguf` package (fixtures from scripts/make_gguf_fixtures.py):
//! dequantized values of every supported quant type, Q/K un-permutation, HF names, config, and
//! clear errors (no panics) on corrupt files.
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use steerlab::model::load::gguf::{read_gguf, read_gguf_header};
use steerlab::model::ModelError;
use steerlab::testing::{default_model, fixture_path};

fn fixture(name: &str) -> PathBuf {
    fixture_path("gguf").join(name)
}

fn load_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture JSON");
    serde_json::from_str(&text).expect("fixture JSON parses")
}

/// Compares the sampled values and sums of each fixture entry with the loaded tensors.
fn check_tensors(tensors: &HashMap<String, Tensor>, entries: &[Value]) {
    assert!(!entries.is_empty());
    for e in entries {
        let name = e["hf_name"].as_str().unwrap();
        let t = tensors
            .get(name)
            .unwrap_or_else(|| panic!("tensor {name} missing"));
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name} shape");
        assert_eq!(t.dtype(), DType::F32);
        let flat = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let idx = e["indices"].as_array().unwrap();
        let vals = e["values"].as_array().unwrap();
        for (i, v) in idx.iter().zip(vals) {
            let i = i.as_u64().unwrap() as usize;
            let want = v.as_f64().unwrap();
            let got = flat[i] as f64;
            assert!(
                (got - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{name} ({}) [{i}]: got {got}, gguf package says {want}",
                e["type"]
            );
        }
        let sum: f64 = flat.iter().map(|&x| x as f64).sum();
        let sum_abs: f64 = flat.iter().map(|&x| (x as f64).abs()).sum();
        let want_abs = e["sum_abs"].as_f64().unwrap();
        let want_sum = e["sum"].as_f64().unwrap();
        assert!(
            (sum_abs - want_abs).abs() <= 1e-5 * want_abs,
            "{name}: sum |x| {sum_abs} vs {want_abs}"
        );
        assert!(
            (sum - want_sum).abs() <= 1e-5 * want_abs,
            "{name}: sum {sum} vs {want_sum}"
        );
    }
}

#[test]
fn tiny_llama_every_quant_type_matches_gguf_package() {
    let exp = load_json("tiny_llama.json");
    let g = read_gguf(&fixture("tiny_llama.gguf"), &Device::Cpu, DType::F32).unwrap();
    let entries = exp["tensors"].as_array().unwrap();
    // every tensor of the file is covered, and they cover all the types we claim to support
    assert_eq!(g.tensors.len(), entries.len());
    let mut types: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    types.sort();
    types.dedup();
    for ty in [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(types.contains(&ty), "fixture lacks {ty}");
    }
    check_tensors(&g.tensors, entries);
    assert_eq!(g.name, exp["name"].as_str().unwrap());
    for (k, v) in exp["config"].as_object().unwrap() {
        let got = &g.config[k];
        match (got.as_f64(), v.as_f64()) {
            (Some(a), Some(b)) => assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "config {k}: {got} vs {v}"
            ),
            _ => assert_eq!(got, v, "config {k}"),
        }
    }
    assert_eq!(g.config["model_type"], "llama");
    assert!(g.tensors.contains_key("lm_head.weight"));
}

#[test]
fn dtype_conversion_is_applied() {
    let g = read_gguf(&fixture("tiny_llama.gguf"), &Device::Cpu, DType::BF16).unwrap();
    assert!(g.tensors.values().all(|t| t.dtype() == DType::BF16));
}

#[test]
fn default_model_dequantization_matches_gguf_package() {
    let path = default_model();
    let exp = load_json("smollm2_dequant.json");
    let g = read_gguf(&path, &Device::Cpu, DType::F32).unwrap();
    check_tensors(&g.tensors, exp["tensors"].as_array().unwrap());
    // Facts about this file (SmolLM2-135M-Instruct)
    let c = &g.config;
    assert_eq!(c["num_hidden_layers"], 30);
    assert_eq!(c["hidden_size"], 576);
    assert_eq!(c["num_attention_heads"], 9);
    assert_eq!(c["num_key_value_heads"], 3);
    assert_eq!(c["vocab_size"], 49152);
    assert_eq!(c["tie_word_embeddings"], true);
    assert!(!g.tensors.contains_key("lm_head.weight"));
    // 30 layers x 9 tensors + embedding + final norm
    assert_eq!(g.tensors.len(), 30 * 9 + 2);
    assert_eq!(g.tokenizer.vocab_size(), 49152);
}

fn expect_bad_file(path: &Path) -> String {
    match read_gguf(path, &Device::Cpu, DType::F32) {
        Ok(_) => panic!("{} loaded although it is corrupt", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            msg
        }
    }
}

#[test]
fn truncated_files_give_clear_errors() {
    let src = std::fs::read(fixture("tiny_llama.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let header_len = read_gguf_header(&fixture("tiny_llama.gguf"))
        .unwrap()
        .tensor_data_offset as usize;
    // cut inside the magic, the metadata, the tensor table and the tensor data
    for n in [
        0,
        3,
        10,
        100,
        5_000,
        header_len - 8,
        header_len + 1000,
        src.len() - 1,
    ] {
        let p = dir.path().join(format!("cut{n}.gguf"));
        std::fs::write(&p, &src[..n]).unwrap();
        let msg = expect_bad_file(&p);
        if n > header_len {
            assert!(msg.contains("truncated"), "cut at {n}: {msg}");
            assert!(
                msg.contains(".weight"),
                "cut at {n} should name the tensor: {msg}"
            );
        }
    }
}

#[test]
fn wrong_magic_and_garbage_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = std::fs::read(fixture("tiny_llama.gguf")).unwrap();
    src[..4].copy_from_slice(b"GGML");
    let p = dir.path().join("magic.gguf");
    std::fs::write(&p, &src).unwrap();
    let msg = expect_bad_file(&p);
    assert!(msg.contains("not a GGUF file"), "{msg}");

    // valid magic, absurd counts / corrupted tensor table
    let mut src = std::fs::read(fixture("tiny_llama.gguf")).unwrap();
    for b in &mut src[8..24] {
        *b = 0xff;
    }
    let p = dir.path().join("counts.gguf");
    std::fs::write(&p, &src).unwrap();
    expect_bad_file(&p);

    let missing = dir.path().join("nope.gguf");
    assert!(matches!(
        read_gguf(&missing, &Device::Cpu, DType::F32),
        Err(ModelError::MissingFile { .. })
    ));
}

#[test]
fn non_llama_architecture_is_rejected() {
    // the sentencepiece fixture has architecture "llama" but no model metadata or tensors
    let msg = expect_bad_file(&fixture("tiny_spm.gguf"));
    assert!(msg.contains("llama.embedding_length: missing"), "{msg}");

    // rewrite general.architecture's value "llama" -> "gemma" (same length) in a copy
    let mut src = std::fs::read(fixture("tiny_llama.gguf")).unwrap();
    let key = b"general.architecture";
    let pos = src.windows(key.len()).position(|w| w == key).unwrap();
    // key, then u32 type (8 = string), u64 length (5), then the bytes
    let val = pos + key.len() + 4 + 8;
    assert_eq!(&src[val..val + 5], b"llama");
    src[val..val + 5].copy_from_slice(b"gemma");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gemma.gguf");
    std::fs::write(&p, &src).unwrap();
    match read_gguf(&p, &Device::Cpu, DType::F32) {
        Err(ModelError::UnsupportedArchitecture { model_type, .. }) => {
            assert_eq!(model_type, "gemma")
        }
        other => panic!("expected UnsupportedArchitecture, got {other:?}"),
    }
}

#[test]
fn tokenizer_larger_than_embedding_is_rejected() {
    let msg = expect_bad_file(&fixture("tiny_bad_vocab.gguf"));
    assert!(
        msg.contains("tokenizer.ggml.tokens") && msg.contains("50 rows"),
        "{msg}"
    );
}

#[test]
fn tensor_shape_contradicting_metadata_is_rejected() {
    let msg = expect_bad_file(&fixture("tiny_bad_shape.gguf"));
    assert!(
        msg.contains("blk.0.attn_k.weight") && msg.contains("shape"),
        "{msg}"
    );
}
