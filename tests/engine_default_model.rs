//! `Model::load` on the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF): metadata,
//! the tokenizer from GGUF metadata, and the streamed greedy ChatML answer. (Logits against
//! transformers are checked in `tests/gguf_e2e.rs`.) Needs the default model in the cache
//! (`scripts/fetch-defaults.sh`; `.ci/run` fetches it).
use steerlab::data::Message;
use steerlab::model::{GenerateOptions, Hooks, LoadOptions, Model};

#[test]
fn default_model_loads_and_streams_paris() {
    let p = steerlab::testing::default_model();
    let model = Model::load(&p, &LoadOptions::default()).unwrap();
    let info = model.info();
    assert_eq!(
        (
            info.architecture.as_str(),
            info.n_layers,
            info.hidden_size,
            info.vocab_size
        ),
        ("llama", 30, 576, 49152)
    );
    // 134.5 M parameters (tied embeddings counted once).
    assert!(
        (134_000_000..135_000_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    let tok = model
        .tokenizer()
        .expect("the GGUF tokenizer is attached to the model");
    let text = tok
        .apply_chat_template(
            &[Message::new("user", "What is the capital of France?")],
            true,
        )
        .unwrap();
    let ids = tok.encode(&text, false).unwrap();
    let mut streamed = String::new();
    let opts = GenerateOptions {
        max_new_tokens: 16,
        ..Default::default()
    };
    let out = model
        .generate(&ids, &opts, &Hooks::new(), &mut |_, piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    let answer = tok.decode(&out, true).unwrap();
    assert_eq!(streamed, answer);
    assert!(
        answer.starts_with("The capital of France is Paris."),
        "{answer:?}"
    );
    // Stopped at <|im_end|> before the limit, and the EOS token is not part of the output.
    assert!(out.len() < 16, "{answer:?}");
    assert!(!out.iter().any(|id| model.eos_token_ids().contains(id)));
}
