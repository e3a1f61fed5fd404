//! Tokenizers and chat templates against independent references (fixtures from
//! scripts/make_gguf_fixtures.py): transformers' GGUF tokenizer loader and jinja2 chat rendering,
//! sentencepiece itself, and transformers' HF-folder tokenizers.
use serde_json::Value;
use std::path::{Path, PathBuf};
use steerlab::data::Message;
use steerlab::model::load::gguf::read_gguf_header;
use steerlab::model::{ModelError, TextTokenizer};

fn fixtures() -> PathBuf {
    steerlab::testing::fixture_path("")
}

fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

fn gguf_tokenizer(path: &Path) -> TextTokenizer {
    let content = read_gguf_header(path).unwrap();
    TextTokenizer::from_gguf_metadata(&content, path).unwrap()
}

/// Checks ids, decodes, special ids and chat renderings against a transformers fixture.
fn check_against_transformers(tok: &TextTokenizer, exp: &Value) {
    assert_eq!(tok.vocab_size() as u64, exp["vocab_size"].as_u64().unwrap());
    assert_eq!(
        tok.bos_token_id().map(u64::from),
        exp["bos_token_id"].as_u64()
    );
    assert_eq!(
        tok.pad_token_id().map(u64::from),
        exp["pad_token_id"].as_u64()
    );
    let eos = exp["eos_token_id"].as_u64().unwrap() as u32;
    assert!(tok.eos_token_ids().contains(&eos));
    let cases = exp["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        assert_eq!(tok.encode(text, false).unwrap(), want, "ids of {text:?}");
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&c["ids_add_special"]),
            "ids (special) of {text:?}"
        );
        assert_eq!(
            tok.decode(&want, false).unwrap(),
            c["decoded"].as_str().unwrap(),
            "decode of {text:?}"
        );
        assert_eq!(
            tok.decode(&want, true).unwrap(),
            c["decoded_skip_special"].as_str().unwrap(),
            "decode(skip_special) of {text:?}"
        );
    }
    let chats = exp["chat"].as_array().unwrap();
    assert!(!chats.is_empty());
    assert!(tok.has_chat_template());
    for ch in chats {
        let got = tok
            .apply_chat_template(
                &messages(&ch["messages"]),
                ch["add_generation_prompt"].as_bool().unwrap(),
            )
            .unwrap();
        assert_eq!(got, ch["text"].as_str().unwrap());
    }
}

#[test]
fn default_model_tokenizer_matches_transformers() {
    let path = steerlab::testing::default_model();
    let tok = gguf_tokenizer(&path);
    let exp = load_json(&fixtures().join("gguf/smollm2_tokenizer.json"));
    check_against_transformers(&tok, &exp);
    // <|im_end|> (id 2) ends a turn; digits are split one by one
    assert_eq!(tok.eos_token_ids(), vec![2]);
    assert_eq!(tok.token_str(2).as_deref(), Some("<|im_end|>"));
    let digits = tok.encode("2024", false).unwrap();
    assert_eq!(digits.len(), 4);
}

#[test]
fn tiny_gguf_tokenizer_matches_transformers() {
    let tok = gguf_tokenizer(&fixtures().join("gguf/tiny_llama.gguf"));
    let exp = load_json(&fixtures().join("gguf/tiny_llama.json"));
    check_against_transformers(&tok, &exp["tokenizer"]);
    // add_bos_token is set in this file
    assert_eq!(tok.encode("hello", true).unwrap()[0], 1);
    assert!(tok.eos_token_ids().contains(&2));
}

#[test]
fn sentencepiece_gguf_matches_sentencepiece() {
    let tok = gguf_tokenizer(&fixtures().join("gguf/tiny_spm.gguf"));
    let exp = load_json(&fixtures().join("gguf/tiny_spm.json"));
    assert_eq!(tok.vocab_size() as u64, exp["vocab_size"].as_u64().unwrap());
    for c in exp["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        assert_eq!(
            tok.encode(text, false).unwrap(),
            want,
            "sentencepiece ids of {text:?}"
        );
        let mut with_bos = vec![1];
        with_bos.extend(&want);
        assert_eq!(tok.encode(text, true).unwrap(), with_bos);
        assert_eq!(
            tok.decode(&want, true).unwrap(),
            c["decoded"].as_str().unwrap()
        );
    }
    assert!(!tok.has_chat_template());
    assert!(matches!(
        tok.apply_chat_template(&[Message::new("user", "hi")], true),
        Err(ModelError::ChatTemplate(_))
    ));
}

#[test]
fn handmade_hf_folder_matches_transformers() {
    let dir = fixtures().join("tokenizer_hf");
    let tok = TextTokenizer::from_hf_dir(&dir).unwrap();
    let exp = load_json(&dir.join("expected.json"));
    for c in exp["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&c["ids"]),
            "ids of {text:?}"
        );
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&c["ids_add_special"]),
            "ids (special) of {text:?}"
        );
    }
    assert_eq!(
        tok.bos_token_id().map(u64::from),
        exp["bos_token_id"].as_u64()
    );
    assert_eq!(
        tok.pad_token_id().map(u64::from),
        exp["pad_token_id"].as_u64()
    );
    // eos from tokenizer_config plus generation_config's [2, 3] and the template's markers
    let eos = tok.eos_token_ids();
    assert!(eos.contains(&(exp["eos_token_id"].as_u64().unwrap() as u32)));
    assert!(eos.contains(&3), "{eos:?}");
    // the list-form chat_template picks the `default` entry; jinja2 rendering matches
    let ch = &exp["chat"];
    let got = tok
        .apply_chat_template(&messages(&ch["messages"]), true)
        .unwrap();
    assert_eq!(got, ch["text"].as_str().unwrap());
    // raise_exception surfaces as an error carrying the template's message
    let err = tok
        .apply_chat_template(&messages(&exp["bad_chat"]), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(exp["bad_chat_error"].as_str().unwrap()),
        "{err}"
    );
}

#[test]
fn minilm_folder_matches_transformers_without_padding() {
    let dir = steerlab::paths::default_embedder_dir();
    assert!(
        dir.exists(),
        "the default embedder is missing at {}: fetch it with scripts/fetch-defaults.sh",
        dir.display()
    );
    let tok = TextTokenizer::from_hf_dir(&dir).unwrap();
    let exp = load_json(&fixtures().join("tokenizer_hf/minilm_expected.json"));
    for c in exp["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&c["ids"]),
            "ids of {text:?}"
        );
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&c["ids_add_special"]),
            "ids (special) of {text:?}"
        );
    }
}

#[test]
fn hf_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    match TextTokenizer::from_hf_dir(dir.path()) {
        Err(ModelError::MissingFile { path, .. }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("expected MissingFile, got {other:?}"),
    }
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    let err = TextTokenizer::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");

    std::fs::copy(
        fixtures().join("tokenizer_hf/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"chat_template\": 5}",
    )
    .unwrap();
    let err = TextTokenizer::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("chat_template"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"eos_token\": \"</s>\",\n  oops}",
    )
    .unwrap();
    let err = TextTokenizer::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn decode_rejects_out_of_range_ids() {
    let tok = gguf_tokenizer(&fixtures().join("gguf/tiny_llama.gguf"));
    let n = tok.vocab_size() as u32;
    assert!(matches!(
        tok.decode(&[n + 10], false),
        Err(ModelError::Tokenizer(_))
    ));
}

#[test]
fn chat_templates_in_popular_styles_render_like_jinja2() {
    let mut tok = TextTokenizer::from_hf_dir(&fixtures().join("tokenizer_hf")).unwrap();
    let exp = load_json(&fixtures().join("tokenizer_hf/templates_expected.json"));
    let renders = exp["renders"].as_array().unwrap();
    assert!(renders.len() >= 8);
    for r in renders {
        tok.set_chat_template(Some(r["template"].as_str().unwrap().to_string()));
        let gen = r["add_generation_prompt"].as_bool().unwrap();
        let got = tok
            .apply_chat_template(&messages(&r["messages"]), gen)
            .unwrap();
        assert_eq!(
            got,
            r["text"].as_str().unwrap(),
            "template {} (generation prompt: {gen})",
            r["name"]
        );
    }
}
