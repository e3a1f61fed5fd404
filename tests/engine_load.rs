//! Loading HF folders: sharded checkpoints, and clear errors (naming file and field) for
//! missing files, unknown architectures, truncated or incomplete safetensors.
use std::path::Path;

use candle_core::{Device, Tensor};
use steerlab::model::{Batch, Hooks, LoadOptions, Model, ModelError};
use steerlab::testing::fixture;

fn copy_fixture(arch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(arch).join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn load_err(path: &Path) -> ModelError {
    Model::load(path, &LoadOptions::default()).unwrap_err()
}

fn logits(model: &Model) -> Tensor {
    let b = Batch::from_sequences(&[vec![1, 2, 3, 50]], 0, &Device::Cpu).unwrap();
    model.forward(&b, &mut Hooks::new()).unwrap()
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("qwen2").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    steerlab::testing::write_sharded("qwen2", dir.path());
    let sharded = Model::load(dir.path(), &LoadOptions::default()).unwrap();
    let single = Model::load(&fixture("qwen2"), &LoadOptions::default()).unwrap();
    let d = steerlab::testing::max_abs_diff(&logits(&sharded), &logits(&single));
    assert_eq!(d, 0.0);

    // A shard listed in the index but absent is named.
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
}

#[test]
fn missing_model_config_and_weights_are_named() {
    let e = load_err(Path::new("/nonexistent/steerlab-model"));
    assert!(matches!(e, ModelError::MissingFile { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::copy(
        fixture("llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn unknown_model_type_is_named() {
    let dir = copy_fixture("llama");
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"llama\"", "\"gpt_neox\""),
    )
    .unwrap();
    match load_err(dir.path()) {
        ModelError::UnsupportedArchitecture {
            path,
            model_type,
            supported,
        } => {
            assert_eq!(model_type, "gpt_neox");
            assert_eq!(
                supported,
                "llama, mistral, qwen2, qwen3, gemma2, gemma3_text, gemma3, phi3, mixtral, qwen3_moe"
            );
            assert!(path.ends_with("config.json"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn malformed_config_names_the_line_or_field() {
    let dir = copy_fixture("llama");
    std::fs::write(
        dir.path().join("config.json"),
        "{\n \"model_type\": \"llama\",\n oops }",
    )
    .unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(e.contains("config.json") && e.contains("line 3"), "{e}");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 64}"#,
    )
    .unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(
        e.contains("num_attention_heads") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors_is_named() {
    let dir = copy_fixture("mistral");
    let p = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    match load_err(dir.path()) {
        ModelError::BadFile { path, .. } => assert_eq!(path, p),
        e => panic!("{e}"),
    }
    std::fs::write(&p, b"garbage").unwrap();
    assert!(load_err(dir.path())
        .to_string()
        .contains("model.safetensors"));
}

#[test]
fn missing_or_misshapen_tensor_is_named() {
    let dir = copy_fixture("llama");
    let p = dir.path().join("model.safetensors");
    let mut all = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    all.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&all, &p).unwrap();
    match load_err(dir.path()) {
        ModelError::BadFile { path, field, .. } => {
            assert_eq!(path, p);
            assert_eq!(field, "model.layers.1.mlp.up_proj.weight");
        }
        e => panic!("{e}"),
    }
    // Untied config without lm_head.weight.
    let mut all =
        candle_core::safetensors::load(fixture("llama").join("model.safetensors"), &Device::Cpu)
            .unwrap();
    all.remove("lm_head.weight");
    all.insert(
        "model.norm.weight".into(),
        Tensor::zeros(63, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&all, &p).unwrap();
    let e = load_err(dir.path()).to_string();
    assert!(
        e.contains("model.norm.weight") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn device_and_dtype_strings() {
    assert!(LoadOptions::parse("cpu", "bf16").is_ok());
    let e = LoadOptions::parse("tpu", "f32").unwrap_err().to_string();
    assert!(e.contains("tpu"), "{e}");
    let e = LoadOptions::parse("cpu", "int8").unwrap_err().to_string();
    assert!(e.contains("int8"), "{e}");
    #[cfg(not(feature = "cuda"))]
    {
        let e = LoadOptions::parse("cuda:1", "f32").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
