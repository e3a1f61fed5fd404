//! End to end on the default GGUF model (SmolLM2-135M-Instruct Q4_1): `read_gguf` feeds the
//! engine (`Model::from_parts`), its logits match transformers' own GGUF loader (fixture from
//! scripts/make_gguf_fixtures.py) on the ChatML prompt at every position, and the greedy answer to
//! "What is the capital of France?" is "The capital of France is Paris."
use candle_core::{DType, Device};
use serde_json::Value;
use steerlab::data::Message;
use steerlab::model::{Batch, GenerateOptions, Hooks, Model, TextTokenizer};

fn default_model() -> (Model, TextTokenizer) {
    let path = steerlab::testing::default_model();
    let g = steerlab::model::load::gguf::read_gguf(&path, &Device::Cpu, DType::F32).unwrap();
    let model = Model::from_parts(
        &g.config,
        g.tensors,
        None,
        &g.name,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    (model, g.tokenizer)
}

fn fixture() -> Value {
    let p = steerlab::testing::fixture_path("gguf/smollm2_logits.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn default_gguf_matches_transformers_and_answers_paris() {
    let (model, tok) = default_model();
    let exp = fixture();
    let msgs = vec![Message::new("user", "What is the capital of France?")];
    let prompt = tok.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(prompt, exp["prompt"].as_str().unwrap());
    let ids = tok.encode(&prompt, true).unwrap();
    assert_eq!(ids, u32s(&exp["ids"]));

    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
    let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
    let logits = logits
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let probe = u32s(&exp["probe_ids"]);
    let mut worst = 0f64;
    for (p, pos) in exp["positions"].as_array().unwrap().iter().enumerate() {
        let row = &logits[p];
        let top = u32s(&pos["top_ids"]);
        // the reference's best token is ours too
        let ours = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        assert_eq!(ours as u32, top[0], "argmax at position {p}");
        let vals = pos["top_values"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pos["probe_values"].as_array().unwrap());
        for (id, want) in top.iter().chain(&probe).zip(vals) {
            let want = want.as_f64().unwrap();
            let diff = (row[*id as usize] as f64 - want).abs();
            worst = worst.max(diff);
            assert!(
                diff <= 1e-3,
                "logit[{p}, {id}]: {} vs transformers {want}",
                row[*id as usize]
            );
        }
    }
    println!("largest logit difference to transformers: {worst:e}");

    let opts = GenerateOptions {
        max_new_tokens: 16,
        ..Default::default()
    };
    let out = model
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    let text = tok.decode(&out, true).unwrap();
    assert!(text.contains("Paris"), "greedy answer: {text:?}");
    assert_eq!(text, exp["greedy_text"].as_str().unwrap());
}
