//! GGUF files of every supported architecture against the HF folder they were converted from
//! (`scripts/make_gguf_family_fixtures.py`, written as llama.cpp's converter does): `llama` with
//! Llama 3.1's `rope_freqs.weight`, `qwen2` (q/k/v biases, no Q/K permutation) and `qwen3` (q/k
//! norms). Logits and every residual agree; an unknown `general.architecture` is refused with
//! the list of supported ones.
use std::path::PathBuf;

use candle_core::{DType, Device};
use steerlab::model::load::gguf::read_gguf;
use steerlab::model::{Batch, HookPoint, Hooks, LoadOptions, Model, ModelError, RopeScaling};
use steerlab::testing::{assert_close, fixture, fixture_path};

fn gguf(name: &str) -> PathBuf {
    fixture_path("gguf").join(name)
}

fn load(p: &std::path::Path) -> Model {
    Model::load(p, &LoadOptions::default()).unwrap()
}

/// Logits and every `hook_resid_post` of the GGUF load equal the HF-folder load's.
fn same_as_folder(arch: &str, expect_type: &str) {
    let from_gguf = load(&gguf(&format!("tiny_{arch}.gguf")));
    let from_hf = load(&fixture(arch));
    assert_eq!(from_gguf.info().architecture, expect_type);
    assert_eq!(from_gguf.n_layers(), from_hf.n_layers());
    assert_eq!(
        from_gguf.config().tie_word_embeddings,
        from_hf.config().tie_word_embeddings
    );
    // Long enough for the llama3 fixture's scaled low frequencies to matter.
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 96).collect();
    let b = Batch::from_sequences(&[ids], 0, &Device::Cpu).unwrap();
    let mut hg = Hooks::new();
    let mut hh = Hooks::new();
    for l in 0..from_hf.n_layers() {
        hg.capture(HookPoint::ResidPost(l));
        hh.capture(HookPoint::ResidPost(l));
    }
    let lg = from_gguf.forward(&b, &mut hg).unwrap();
    let lh = from_hf.forward(&b, &mut hh).unwrap();
    assert_close(&format!("{arch} logits"), &lg, &lh, 1e-5);
    for l in 0..from_hf.n_layers() {
        let p = HookPoint::ResidPost(l);
        assert_close(
            &format!("{arch} {p}"),
            hg.captured(p).unwrap(),
            hh.captured(p).unwrap(),
            1e-5,
        );
    }
}

#[test]
fn qwen2_gguf_matches_its_hf_folder() {
    same_as_folder("qwen2", "qwen2");
}

#[test]
fn qwen3_gguf_matches_its_hf_folder() {
    same_as_folder("qwen3", "qwen3");
}

#[test]
fn llama3_rope_freqs_match_the_configs_llama3_scaling() {
    let g = load(&gguf("tiny_llama3.gguf"));
    let h = load(&fixture("llama3"));
    match &g.config().rope_scaling {
        Some(RopeScaling::Factors { factors }) => {
            assert_eq!(factors.len(), g.config().head_dim / 2);
            // The fixture scales its lowest frequencies by 8 and keeps its highest.
            assert_eq!(factors[0], 1.0);
            assert_eq!(*factors.last().unwrap(), 8.0);
        }
        other => panic!("expected per-frequency factors, got {other:?}"),
    }
    assert!(matches!(
        h.config().rope_scaling,
        Some(RopeScaling::Llama3 { .. })
    ));
    for (a, b) in g
        .config()
        .rope_inv_freq()
        .iter()
        .zip(h.config().rope_inv_freq())
    {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "inv_freq {a} vs {b}");
    }
    same_as_folder("llama3", "llama");
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    // Rewrite general.architecture "qwen3" -> "qwen9" (same length) in a copy.
    let mut src = std::fs::read(gguf("tiny_qwen3.gguf")).unwrap();
    let key = b"general.architecture";
    let pos = src.windows(key.len()).position(|w| w == key).unwrap();
    let val = pos + key.len() + 4 + 8;
    assert_eq!(&src[val..val + 5], b"qwen3");
    src[val..val + 5].copy_from_slice(b"qwen9");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("qwen9.gguf");
    std::fs::write(&p, &src).unwrap();
    let e = read_gguf(&p, &Device::Cpu, DType::F32).unwrap_err();
    assert!(
        matches!(&e, ModelError::UnsupportedArchitecture { model_type, .. } if model_type == "qwen9"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("qwen9.gguf")
            && msg.contains("`qwen9`")
            && msg.contains("llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3"),
        "{msg}"
    );
}

#[test]
fn qwen2_gguf_without_biases_names_the_missing_tensor() {
    // Rename the first q bias so the file no longer has it (same length: a letter changed).
    let mut src = std::fs::read(gguf("tiny_qwen2.gguf")).unwrap();
    let key = b"blk.0.attn_q.bias";
    let pos = src.windows(key.len()).position(|w| w == key).unwrap();
    src[pos + 11] = b'Q';
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nobias.gguf");
    std::fs::write(&p, &src).unwrap();
    let msg = Model::load(&p, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nobias.gguf"), "{msg}");
    assert!(
        msg.contains("blk.0.attn_Q.bias") || msg.contains("blk.0.attn_q.bias"),
        "{msg}"
    );
}
