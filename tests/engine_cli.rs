//! `steerlab info|run|generate` end to end on the tiny llama fixture (which has a tokenizer and
//! a ChatML template), including steering files and bad input.
use std::path::Path;
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use steerlab::testing::{fixture, rel_err};

fn steerlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn info_prints_text_and_json() {
    let m = fixture("llama");
    let m = m.to_str().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&steerlab(&["info", "--model", m, "--json"]))).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_layers"], 3);
    assert_eq!(v["hidden_size"], 64);
    assert_eq!(v["vocab_size"], 96);
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["dtype"], "f32");
    let text = ok(&steerlab(&["info", "--model", m, "--dtype", "bf16"]));
    assert!(text.contains("layers") && text.contains("bf16"), "{text}");
}

#[test]
fn run_writes_logits_and_every_residual() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cache.safetensors");
    let m = fixture("llama");
    ok(&steerlab(&[
        "run",
        "--model",
        m.to_str().unwrap(),
        "--ids",
        "1,17,5,88,23,42,9,61,3",
        "--cache",
        out.to_str().unwrap(),
    ]));
    let cache = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let r = candle_core::safetensors::load(m.join("reference.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(cache.len(), 1 + 3);
    assert!(rel_err(&cache["logits"], &r["logits_0"]) < 1e-4);
    for l in 0..3 {
        let got = &cache[&format!("blocks.{l}.hook_resid_post")];
        assert_eq!(got.dims(), &[9, 64]);
        assert!(rel_err(got, &r[&format!("resid_post_0_l{l}")]) < 1e-4);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // --prompt with the chat template: one row per token of the rendered prompt.
    ok(&steerlab(&[
        "run",
        "--model",
        m.to_str().unwrap(),
        "--prompt",
        "what is the capital?",
        "--chat",
        "--cache",
        out.to_str().unwrap(),
    ]));
    let cache = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let t = cache["logits"].dim(0).unwrap();
    // <|im_start|> user what is the capital? <|im_end|> <|im_start|> assistant: well over 6 tokens.
    assert!(t > 6, "{t}");
}

/// Writes a bare native vector file (`layers.{L}` tensors) for the fixture's width.
fn write_vector(path: &Path, layer: usize, width: usize) {
    let v = Tensor::randn(0f32, 1.0, width, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([(format!("layers.{layer}"), v)]),
        path,
    )
    .unwrap();
}

#[test]
fn generate_streams_and_steering_changes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("llama");
    let m = m.to_str().unwrap();
    let base = [
        "generate",
        "--model",
        m,
        "--prompt",
        "the capital of france is",
        "--max-new-tokens",
        "12",
    ];
    let plain = ok(&steerlab(&base));
    let vec_path = dir.path().join("v.safetensors");
    write_vector(&vec_path, 1, 64);
    let zero = format!("{}:0", vec_path.display());
    let strong = format!("{}:40", vec_path.display());
    let mut args = base.to_vec();
    args.extend(["--steer", &zero]);
    assert_eq!(
        ok(&steerlab(&args)),
        plain,
        "a zero-scaled vector changed the output"
    );
    let mut args = base.to_vec();
    args.extend(["--steer", &strong]);
    let steered = ok(&steerlab(&args));
    assert_ne!(steered, plain, "steering had no effect");
    // Sampling with a seed is reproducible.
    let mut args = base.to_vec();
    args.extend(["--temperature", "1.0", "--top-p", "0.9", "--seed", "3"]);
    assert_eq!(ok(&steerlab(&args)), ok(&steerlab(&args)));
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let e = fails(&steerlab(&["info", "--model", "/nonexistent/model-dir"]));
    assert!(e.contains("/nonexistent/model-dir"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let m = fixture("llama");
    // Wrong width of a steering vector.
    let v = dir.path().join("narrow.safetensors");
    write_vector(&v, 0, 32);
    let e = fails(&steerlab(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--prompt",
        "hi",
        "--steer",
        v.to_str().unwrap(),
    ]));
    assert!(e.contains("32") && e.contains("64"), "{e}");
    // Missing vector file.
    let e = fails(&steerlab(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--prompt",
        "hi",
        "--steer",
        "/nonexistent/v.safetensors:2",
    ]));
    assert!(e.contains("/nonexistent/v.safetensors"), "{e}");
    // A model without tokenizer cannot take --prompt.
    let out = dir.path().join("c.safetensors");
    let e = fails(&steerlab(&[
        "run",
        "--model",
        fixture("qwen2").to_str().unwrap(),
        "--prompt",
        "hi",
        "--cache",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("tokenizer"), "{e}");
    // Token ids outside the vocabulary.
    let e = fails(&steerlab(&[
        "run",
        "--model",
        m.to_str().unwrap(),
        "--ids",
        "1,500",
        "--cache",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("500"), "{e}");
    assert!(!out.exists());
}

#[test]
fn tokenizer_larger_than_the_vocabulary_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
        std::fs::copy(fixture("llama").join(f), dir.path().join(f)).unwrap();
    }
    let mut tok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llama").join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    for (i, extra) in ["<extra_a>", "<extra_b>"].iter().enumerate() {
        tok["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
            "id": 96 + i, "content": extra, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }));
    }
    std::fs::write(dir.path().join("tokenizer.json"), tok.to_string()).unwrap();
    let e = fails(&steerlab(&[
        "info",
        "--model",
        dir.path().to_str().unwrap(),
    ]));
    assert!(
        e.contains("tokenizer.json") && e.contains("98") && e.contains("96"),
        "{e}"
    );
}
