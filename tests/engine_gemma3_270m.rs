//! The second default model, Gemma 3 270M Q4_K_M GGUF (`--model gemma3-270m`), against
//! transformers loading the same file (`scripts/make_gemma3_270m_reference.py` wrote
//! `tests/fixtures/gguf/gemma3_270m_reference.json`): logits on a fixed prompt (the 32 highest
//! of every position and each row's log-sum-exp) within 1e-3 relative, the SentencePiece
//! tokenizer's ids on hard strings, the chat template, and the greedy continuation. Needs the
//! model in the cache (`scripts/fetch-defaults.sh`; the README's set-up fetches it).
use std::path::PathBuf;

use candle_core::{Device, D};
use steerlab::data::Message;
use steerlab::model::{Batch, GenerateOptions, Hooks, LoadOptions, Model, WeightStorage};
use steerlab::testing::fixture_path;

fn model_path() -> PathBuf {
    let p = steerlab::paths::resolve_model_spec(Some("gemma3-270m")).unwrap_or_else(|e| {
        panic!("Gemma 3 270M is missing ({e}): fetch it with scripts/fetch-defaults.sh (these tests need it)")
    });
    assert!(
        p.exists(),
        "Gemma 3 270M is missing at {}: fetch it with scripts/fetch-defaults.sh (these tests need it)",
        p.display()
    );
    p
}

fn reference() -> serde_json::Value {
    let p = fixture_path("gguf").join("gemma3_270m_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn gemma3_270m_matches_transformers() {
    // transformers dequantizes the file to f32: compare with the dequantized model, not the
    // default (quantized) one, whose agreement with it is tests/gguf_quantized.rs's business.
    let opts = LoadOptions {
        weights: WeightStorage::Dense,
        ..LoadOptions::default()
    };
    let model = Model::load(&model_path(), &opts).unwrap();
    let info = model.info();
    assert_eq!(
        (info.architecture.as_str(), info.n_layers, info.hidden_size),
        ("gemma3", 18, 640)
    );
    assert_eq!(info.attention, "15 sliding (512) / 3 global");
    let r = reference();
    let tok = model.tokenizer().expect("the GGUF tokenizer");
    let ids = u32s(&r["ids"]);
    assert_eq!(
        tok.encode(r["prompt"].as_str().unwrap(), true).unwrap(),
        ids
    );

    let b = Batch::from_sequences(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
    let logits = model
        .forward(&b, &mut Hooks::new())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let lse: Vec<f32> = {
        let max = logits.max_keepdim(D::Minus1).unwrap();
        let e = logits.broadcast_sub(&max).unwrap().exp().unwrap();
        (e.sum_keepdim(D::Minus1).unwrap().log().unwrap() + max)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let rows: Vec<Vec<f32>> = logits.to_vec2().unwrap();
    let top_ids: Vec<Vec<u32>> = serde_json::from_value(r["top_ids"].clone()).unwrap();
    let top: Vec<Vec<f32>> = serde_json::from_value(r["top_logits"].clone()).unwrap();
    let want_lse: Vec<f32> = serde_json::from_value(r["lse"].clone()).unwrap();
    for (t, row) in rows.iter().enumerate() {
        let scale = top[t].iter().fold(0f32, |m, x| m.max(x.abs()));
        let err = top_ids[t]
            .iter()
            .zip(&top[t])
            .map(|(&i, &w)| (row[i as usize] - w).abs())
            .fold(0f32, f32::max)
            / scale;
        assert!(
            err < 1e-3,
            "position {t}: top-32 logits relative error {err}"
        );
        let e = (lse[t] - want_lse[t]).abs() / want_lse[t].abs().max(1.0);
        assert!(
            e < 1e-3,
            "position {t}: log-sum-exp {} vs {}",
            lse[t],
            want_lse[t]
        );
        let argmax = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(argmax as u32, top_ids[t][0], "position {t}: argmax");
    }

    // Greedy continuation equals transformers' (KV cache here, as there).
    let opts = GenerateOptions {
        max_new_tokens: 8,
        stop_at_eos: false,
        ..Default::default()
    };
    let out = model
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    assert_eq!(
        tok.decode(&out, false).unwrap(),
        r["greedy"].as_str().unwrap()
    );
}

#[test]
fn gemma3_270m_tokenizer_and_template_match_transformers() {
    let p = model_path();
    let content = steerlab::model::load::gguf::read_gguf_header(&p).unwrap();
    let tok = steerlab::model::tokenizer::TextTokenizer::from_gguf_metadata(&content, &p).unwrap();
    let r = reference();
    for case in r["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode(text, false).unwrap();
        assert_eq!(got, u32s(&case["ids"]), "ids of {text:?}");
    }
    if let Some(chat) = r.get("chat").and_then(|c| c.as_str()) {
        let got = tok
            .apply_chat_template(&[Message::new("user", "Hi there")], true)
            .unwrap();
        assert_eq!(got, chat);
    }
}
