//! `steerlab steer train|eval|export` end to end on a tiny seeded random-init HF model (with the
//! test tokenizer fixture): files are written, `eval --json` has exactly the documented shape,
//! and the exported GGUF imports back to the same vector.
mod cli;
use cli::*;
use std::path::{Path, PathBuf};

use steerlab::steer::SteeringVector;

fn tiny_hf_model(dir: &Path) {
    steerlab::testing::write_tiny_llama(dir, 2, 5);
}

#[test]
fn train_eval_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model: PathBuf = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    tiny_hf_model(&model);
    let pairs = dir.path().join("pairs.jsonl");
    write_pairs(&pairs, 6, |_| ("yes it is good", "no it is bad"));
    let ab = dir.path().join("ab.jsonl");
    let mut lines = String::new();
    for i in 0..3 {
        lines += &serde_json::json!({"id": format!("a{i}"), "question": format!("is item {i} good? (A) yes (B) no"),
            "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"})
        .to_string();
        lines.push('\n');
    }
    std::fs::write(&ab, lines).unwrap();

    let bipo = dir.path().join("bipo.safetensors");
    let (ok, out, err) = steerlab(&[
        "steer",
        "train",
        "--model",
        &s(&model),
        "--data",
        &s(&pairs),
        "--method",
        "bipo",
        "--layers",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--heldout",
        &s(&ab),
        "--out",
        &s(&bipo),
        "--json",
    ]);
    assert!(ok, "train bipo failed: {out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["steps"], 6);
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    let v = SteeringVector::load(&bipo).unwrap();
    assert_eq!(v.meta.method, "bipo");
    assert_eq!(v.meta.objective, "dpo");
    assert_eq!(v.meta.layers, vec![1]);

    let caa = dir.path().join("caa.safetensors");
    let (ok, out, err) = steerlab(&[
        "steer",
        "train",
        "--model",
        &s(&model),
        "--data",
        &s(&ab),
        "--method",
        "caa",
        "--layers",
        "0,1",
        "--out",
        &s(&caa),
    ]);
    assert!(ok, "train caa failed: {out}{err}");
    assert_eq!(SteeringVector::load(&caa).unwrap().meta.layers, vec![0, 1]);

    let vectors = format!("{},{}", s(&bipo), s(&caa));
    let (ok, out, err) = steerlab(&[
        "steer",
        "eval",
        "--model",
        &s(&model),
        "--data",
        &s(&ab),
        "--vectors",
        &vectors,
        "--multipliers",
        "-1,0,2",
        "--json",
    ]);
    assert!(ok, "eval failed: {out}{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let obj = j.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["results"]);
    let rows = j["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for (i, r) in rows.iter().enumerate() {
        let o = r.as_object().unwrap();
        let mut keys: Vec<&String> = o.keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["multiplier", "score", "vector"]);
        assert_eq!(r["multiplier"].as_f64().unwrap(), [-1.0, 0.0, 2.0][i % 3]);
        let sc = r["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sc));
    }
    // multiplier 0 is the same unsteered score for both vectors
    assert_eq!(rows[1]["score"], rows[4]["score"]);

    let gguf = dir.path().join("bipo.gguf");
    let (ok, out, err) = steerlab(&[
        "steer",
        "export",
        "--vector",
        &s(&bipo),
        "--format",
        "gguf",
        "--out",
        &s(&gguf),
    ]);
    assert!(ok, "export failed: {out}{err}");
    let back = SteeringVector::load_any(&gguf).unwrap();
    assert_eq!(back.layers, SteeringVector::load(&bipo).unwrap().layers);

    // CAA has a layer-0 direction: llama.cpp cannot take it, and the error says so
    let (ok, _, err) = steerlab(&["steer", "export", "--vector", &s(&caa), "--out", &s(&gguf)]);
    assert!(!ok && err.contains("block 0"), "{err}");
    // a vector from another model width is refused with both widths named
    let narrow = dir.path().join("narrow.safetensors");
    let mut layers = std::collections::BTreeMap::new();
    layers.insert(1usize, vec![0.5f32; 7]);
    SteeringVector::new(layers, steerlab::steer::VectorMeta::new("caa", "other", 7))
        .unwrap()
        .save(&narrow)
        .unwrap();
    let (ok, _, err) = steerlab(&[
        "steer",
        "eval",
        "--model",
        &s(&model),
        "--data",
        &s(&ab),
        "--vectors",
        &s(&narrow),
    ]);
    assert!(
        !ok && err.contains("narrow.safetensors") && err.contains('7') && err.contains("16"),
        "{err}"
    );
}
