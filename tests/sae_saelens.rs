//! SAELens interop (issue 19, items 1 and 2): steerlab's SAE folders in SAELens' format and
//! back, SAELens SAEs run as SAELens runs them (reference outputs written by SAELens itself:
//! `scripts/make_saelens_fixtures.py`), `sae encode`, and SAELens SAEs on a model's residual
//! stream (import checks, top-activating tokens, logit lens, steering vectors) on a tiny Llama.
use std::path::{Path, PathBuf};
use std::process::Command;

use steerlab::jobs::NoProgress as NullSink;
use steerlab::model::{Batch, Hooks, LoadOptions, Model};
use steerlab::sae::embed::f32_safetensors;
use steerlab::sae::encode::AnySae;
use steerlab::sae::import::{
    feature_steering_vector, import_saelens, logit_lens, top_activating_tokens,
};
use steerlab::sae::llm::load_tokenizer;
use steerlab::sae::saelens::{read_saelens, Architecture};
use steerlab::sae::{read_sae, train_sae, write_sae, SaeConfig};
use steerlab::testing::{fixture_path, write_tiny_llama};

fn fixture(name: &str) -> PathBuf {
    fixture_path("saelens").join(name)
}

fn load_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, t.shape().to_vec())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// SAELens' own encode/decode of the fixture inputs are reproduced within 1e-5 by every
/// architecture steerlab reads.
#[test]
fn saelens_fixtures_encode_as_saelens_does() {
    for name in ["standard", "topk", "topk_rescaled", "jumprelu"] {
        let dir = fixture(name);
        let s = read_saelens(&dir).unwrap();
        assert_eq!((s.d_in, s.d_sae), (16, 24), "{name}");
        assert_eq!(s.hook_name(), Some("blocks.1.hook_resid_post"));
        let exp = dir.join("expected.safetensors");
        let (x, _) = load_f32(&exp, "inputs");
        let (acts, _) = load_f32(&exp, "activations");
        let (recon, _) = load_f32(&exp, "reconstructions");
        let a = s.encode(&x);
        assert!(
            max_diff(&a, &acts) < 1e-5,
            "{name}: {}",
            max_diff(&a, &acts)
        );
        // the same zero pattern (no activation flipped at a threshold or the k-th place)
        assert!(
            a.iter().zip(&acts).all(|(p, q)| (*p == 0.0) == (*q == 0.0)),
            "{name}"
        );
        let r = s.decode(&acts);
        assert!(max_diff(&r, &recon) < 1e-5, "{name}");
        if let Architecture::TopK { k, .. } = s.arch {
            assert!(a
                .chunks(24)
                .all(|row| row.iter().filter(|v| **v != 0.0).count() <= k));
        }
    }
}

/// A trained signed SAE is written as SAELens' `jumprelu` with 2M mirrored latents, with
/// portable names and every training setting carried; steerlab reads it back bit for bit, and
/// the SAELens form (as any SAELens reader runs it) encodes exactly as the signed SAE.
#[test]
fn signed_sae_round_trips_through_the_saelens_form() {
    let (d, rows) = (12, 300);
    let mut x = Vec::with_capacity(rows * d);
    let mut state = 7u64;
    for _ in 0..rows * d {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x.push(((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0);
    }
    let cfg = SaeConfig {
        latents: 8,
        k: 2,
        prefixes: vec![4, 8],
        max_epochs: 3,
        batch_size: 64,
        seed: 3,
        ..Default::default()
    };
    let (sae, _) = train_sae(&x, &[], d, &cfg, &NullSink).unwrap();
    assert!(sae.threshold > 0.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sae");
    write_sae(
        &dir,
        &sae,
        "minilm:/home/someone/.cache/steerlab/models/all-MiniLM-L6-v2",
        serde_json::json!({"dataset": "d.jsonl"}),
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("cfg.json")).unwrap();
    assert!(!text.contains("/home/someone"), "{text}");
    let cfg_json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg_json["architecture"], "jumprelu");
    assert_eq!(cfg_json["d_sae"], 16);
    let md = &cfg_json["metadata"];
    assert_eq!(md["sae_lens_version"], "6.54.12");
    assert_eq!(md["model_name"], "all-MiniLM-L6-v2");
    assert_eq!(md["steerlab"]["embedder"], "minilm:all-MiniLM-L6-v2");
    assert_eq!(
        md["steerlab"]["matryoshka_prefixes"],
        serde_json::json!([4, 8])
    );
    assert_eq!(
        md["steerlab"]["saelens_prefixes"],
        serde_json::json!([8, 16])
    );
    assert_eq!(md["steerlab"]["activation_fn"], "signed_batchtopk");
    assert_eq!(md["steerlab"]["k"], 2);
    // SAELens' strict state-dict load: exactly these tensors.
    let bytes = std::fs::read(dir.join("sae_weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names().into_iter().collect();
    names.sort();
    assert_eq!(names, ["W_dec", "W_enc", "b_dec", "b_enc", "threshold"]);

    assert_eq!(read_sae(&dir).unwrap(), sae);
    let AnySae::Signed(back) = AnySae::read(&dir).unwrap() else {
        panic!("read as a foreign SAE")
    };
    assert_eq!(back, sae);
    let foreign = read_saelens(&dir).unwrap();
    let z = foreign.encode(&x);
    let a = sae.encode(&x);
    let folded: Vec<f32> = z.chunks_exact(2).map(|c| c[0] - c[1]).collect();
    assert_eq!(folded, a);
    assert!(max_diff(&foreign.decode(&z), &sae.decode(&a)) < 1e-5);
    // A SAELens SAE from elsewhere is not mistaken for steerlab's.
    let e = read_sae(&fixture("jumprelu")).unwrap_err().to_string();
    assert!(e.contains("steerlab sae import"), "{e}");
}

/// Folders written before the SAELens export (`batchtopk`, scalar threshold, `k` tensor) still
/// read.
#[test]
fn legacy_batchtopk_folders_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (d, m) = (3, 2);
    let w_enc = [0.5f32, -1.0, 0.25, 2.0, 1.0, 0.0];
    let w_dec = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
    let bytes = f32_safetensors(
        &[
            ("W_enc", &w_enc, vec![d, m]),
            ("b_enc", &[0.0, 0.1], vec![m]),
            ("W_dec", &w_dec, vec![m, d]),
            ("b_dec", &[0.0, 0.0, 0.5], vec![d]),
            ("threshold", &[0.3], vec![]),
            ("k", &[1.0], vec![]),
        ],
        None,
    )
    .unwrap();
    std::fs::write(dir.join("sae_weights.safetensors"), bytes).unwrap();
    std::fs::write(
        dir.join("cfg.json"),
        r#"{"architecture":"batchtopk","d_in":3,"d_sae":2,"k":1,"matryoshka_prefixes":[1,2],"hook_name":"minilm:/x/y"}"#,
    )
    .unwrap();
    let s = read_sae(dir).unwrap();
    assert_eq!((s.threshold, s.k, s.prefixes.clone()), (0.3, 1, vec![1, 2]));
    assert_eq!(s.w_enc, w_enc);
}

fn steerlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steerlab"))
}

/// `sae encode --inputs` on SAELens' fixtures writes SAELens' activations and reconstructions;
/// a width mismatch is refused with both widths named.
#[test]
fn sae_encode_rows_matches_saelens() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["topk", "jumprelu"] {
        let dir = fixture(name);
        let out = tmp.path().join(format!("{name}.safetensors"));
        let o = steerlab()
            .args(["sae", "encode", "--sae"])
            .arg(&dir)
            .arg("--inputs")
            .arg(dir.join("expected.safetensors"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let exp = dir.join("expected.safetensors");
        for t in ["inputs", "activations", "reconstructions"] {
            let (got, shape) = load_f32(&out, t);
            let (want, wshape) = load_f32(&exp, t);
            assert_eq!(shape, wshape);
            assert!(max_diff(&got, &want) < 1e-5, "{name} {t}");
        }
    }
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(
        &bad,
        f32_safetensors(&[("inputs", &[0.0; 10], vec![2, 5])], None).unwrap(),
    )
    .unwrap();
    let o = steerlab()
        .args(["sae", "encode", "--sae"])
        .arg(fixture("topk"))
        .arg("--inputs")
        .arg(&bad)
        .arg("--out")
        .arg(tmp.path().join("x.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("width 5") && err.contains("16"),
        "{err}"
    );
}

fn tiny_model(dir: &Path, layers: usize) -> Model {
    write_tiny_llama(dir, layers, 5);
    Model::load(dir, &LoadOptions::default()).unwrap()
}

/// Copies a fixture SAE with another `hook_name` (and optionally `d_in` mismatching weights
/// left as they are).
fn with_hook(src: &Path, dst: &Path, hook: &str) {
    std::fs::create_dir_all(dst).unwrap();
    std::fs::copy(
        src.join("sae_weights.safetensors"),
        dst.join("sae_weights.safetensors"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("cfg.json")).unwrap()).unwrap();
    cfg["metadata"]["hook_name"] = hook.into();
    std::fs::write(dst.join("cfg.json"), cfg.to_string()).unwrap();
}

/// Import checks the hook and width against the model with messages naming the field.
#[test]
fn import_checks_hook_and_width() {
    let tmp = tempfile::tempdir().unwrap();
    let mdir = tmp.path().join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    let model = tiny_model(&mdir, 2);
    let rs = import_saelens(&fixture("topk"), &model).unwrap();
    assert_eq!(rs.steer_layer, Some(1));
    let cases = [
        ("blocks.5.hook_resid_post", "block 5 does not exist"),
        ("blocks.1.hook_mlp_out", "not the residual stream"),
        (
            "resid_post_1",
            "steerlab imports SAEs on the residual stream",
        ),
    ];
    for (hook, want) in cases {
        let d = tmp.path().join(hook.replace('.', "_"));
        with_hook(&fixture("topk"), &d, hook);
        let e = import_saelens(&d, &model).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("cfg.json"), "{hook}: {e}");
    }
    let d = tmp.path().join("pre0");
    with_hook(&fixture("jumprelu"), &d, "blocks.0.hook_resid_pre");
    let rs0 = import_saelens(&d, &model).unwrap();
    assert_eq!(rs0.steer_layer, None);
    assert!(feature_steering_vector(&rs0, 0, 1.0).is_err());
    // d_in against the hidden size: a 16-wide SAE on a model of width 16 * 2 is refused.
    let big = tmp.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("topk").join("cfg.json")).unwrap())
            .unwrap();
    cfg["d_in"] = 32.into();
    std::fs::write(big.join("cfg.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        fixture("topk").join("sae_weights.safetensors"),
        big.join("sae_weights.safetensors"),
    )
    .unwrap();
    let e = steerlab::sae::saelens::read_saelens(&big)
        .unwrap_err()
        .to_string();
    assert!(e.contains("W_enc") && e.contains("d_in = 32"), "{e}");
}

/// Top-activating tokens equal the SAE applied to the residual at that position (computed
/// here from `forward_to`), the logit lens equals the tied unembedding of the RMS-normed
/// decoder row (computed here from the weights file), and the steering vector is the decoder
/// direction at the hook's layer.
#[test]
fn imported_features_tokens_lens_and_vector() {
    let tmp = tempfile::tempdir().unwrap();
    let mdir = tmp.path().join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    let model = tiny_model(&mdir, 2);
    let tok = load_tokenizer(&mdir).unwrap();
    let rs = import_saelens(&fixture("jumprelu"), &model).unwrap();
    let texts = [
        "The cat sat on the mat.",
        "Hello there, general Kenobi!",
        "1 2 3 4 5",
    ];
    let feats = [0usize, 3, 7];
    let got = top_activating_tokens(&model, &tok, &rs, &texts, &feats, 3, 2, &NullSink).unwrap();
    assert_eq!(got.len(), 3);
    // reference: every position of every text, encoded one by one
    let mut all: Vec<Vec<(f32, usize, usize)>> = vec![Vec::new(); 3];
    for (ti, t) in texts.iter().enumerate() {
        let ids = tok.encode(t, true).unwrap();
        let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, model.device()).unwrap();
        let r = model.forward_to(2, &batch, &mut Hooks::new()).unwrap();
        let r = r.to_vec3::<f32>().unwrap().remove(0);
        let from = usize::from(ids.len() > 1);
        for (p, row) in r.iter().enumerate().skip(from) {
            let a = rs.sae.encode(row);
            for (fi, &f) in feats.iter().enumerate() {
                if a[f] != 0.0 {
                    all[fi].push((a[f], ti, p));
                }
            }
        }
    }
    let mut any = false;
    for (fi, ft) in got.iter().enumerate() {
        assert_eq!(ft.fired, all[fi].len());
        all[fi].sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(ft.examples.len(), all[fi].len().min(3));
        for (e, r) in ft.examples.iter().zip(&all[fi]) {
            assert!(
                (e.activation - r.0).abs() < 1e-4,
                "{} vs {}",
                e.activation,
                r.0
            );
            assert_eq!((e.text, e.position), (r.1, r.2));
            any = true;
        }
    }
    assert!(any, "no feature fired on the test texts");

    // A tokenizer that adds no BOS (as SmolLM2's): the first word is the attention sink and is
    // skipped too; every other position is read.
    let nobos = tmp.path().join("nobos");
    std::fs::create_dir_all(&nobos).unwrap();
    for f in std::fs::read_dir(&mdir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, nobos.join(f.file_name().unwrap())).unwrap();
    }
    let mut tj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(nobos.join("tokenizer.json")).unwrap())
            .unwrap();
    tj["post_processor"] = serde_json::Value::Null;
    std::fs::write(nobos.join("tokenizer.json"), tj.to_string()).unwrap();
    let tok2 = load_tokenizer(&nobos).unwrap();
    let lens: Vec<usize> = texts
        .iter()
        .map(|t| tok2.encode(t, true).unwrap().len())
        .collect();
    for (t, &n) in texts.iter().zip(&lens) {
        assert_eq!(n + 1, tok.encode(t, true).unwrap().len(), "BOS still added");
    }
    let got = top_activating_tokens(&model, &tok2, &rs, &texts, &feats, 50, 2, &NullSink).unwrap();
    for ft in &got {
        assert_eq!(ft.positions, lens.iter().map(|n| n - 1).sum::<usize>());
        assert!(ft.examples.iter().all(|e| e.position >= 1), "{ft:?}");
    }

    let lens = logit_lens(&model, &tok, &rs, 3, 5).unwrap();
    let (emb, shape) = load_f32(&mdir.join("model.safetensors"), "model.embed_tokens.weight");
    let h = shape[1];
    let row = rs.sae.decoder_row(3);
    let rms = (row.iter().map(|v| v * v).sum::<f32>() / h as f32 + 1e-5).sqrt();
    let logits: Vec<f32> = emb
        .chunks_exact(h)
        .map(|e| e.iter().zip(row).map(|(a, b)| a * b / rms).sum())
        .collect();
    let best = logits.iter().cloned().fold(f32::MIN, f32::max);
    let worst = logits.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        (lens.promoted[0].1 - best).abs() < 1e-3,
        "{:?} {best}",
        lens.promoted[0]
    );
    assert!((lens.suppressed[0].1 - worst).abs() < 1e-3);
    assert!(lens.promoted.windows(2).all(|w| w[0].1 >= w[1].1));

    let v = feature_steering_vector(&rs, 3, 4.0).unwrap();
    let dir = &v.layers[&1];
    let n = dir.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((n - 4.0).abs() < 1e-4);
    let len = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(dir
        .iter()
        .zip(row)
        .all(|(a, b)| (a / 4.0 - b / len).abs() < 1e-5));
}

/// `sae import --json` and `sae to-vector` on a SAELens folder, end to end.
#[test]
fn import_and_to_vector_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let mdir = tmp.path().join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    write_tiny_llama(&mdir, 2, 5);
    let data = tmp.path().join("p.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\":\"Hi\",\"chosen\":\"Good morning to you.\",\"rejected\":\"Go away now.\"}\n\
         {\"prompt\":\"Q\",\"chosen\":\"The answer is four.\",\"rejected\":\"No idea at all.\"}\n",
    )
    .unwrap();
    let o = steerlab()
        .args(["sae", "import"])
        .arg(fixture("standard"))
        .arg("--model")
        .arg(&mdir)
        .arg("--data")
        .arg(&data)
        .args(["--features", "1,2", "--top", "2", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["architecture"], "standard");
    assert_eq!(j["steer_layer"], 1);
    assert_eq!(j["logit_lens"].as_array().unwrap().len(), 2);
    assert_eq!(j["top_tokens"][0]["feature"], 1);
    let out = tmp.path().join("v.safetensors");
    let o = steerlab()
        .args(["sae", "to-vector", "--sae"])
        .arg(fixture("standard"))
        .args(["--feature", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--norm"), "{err}");
    let o = steerlab()
        .args(["sae", "to-vector", "--sae"])
        .arg(fixture("standard"))
        .args(["--feature", "2", "--norm", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = steerlab::steer::SteeringVector::load_any(&out).unwrap();
    assert_eq!(v.layers.keys().copied().collect::<Vec<_>>(), [1]);
}
