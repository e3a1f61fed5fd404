//! The candle BERT encoder matches Hugging Face transformers on all-MiniLM-L6-v2
//! (fixture from scripts/make_sae_fixtures.py). Skips when the default embedder is not fetched.
use steerlab::model::arch::bert::BertEncoder;

#[test]
fn minilm_matches_transformers_reference() {
    let dir = steerlab::paths::default_embedder_dir();
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "skipping: {} not fetched (scripts/fetch-defaults.sh)",
            dir.display()
        );
        return;
    }
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/sae/minilm_reference.json")).unwrap();
    let sents: Vec<String> = fx["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let refs: Vec<Vec<f64>> = fx["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let enc = BertEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(enc.dim(), 384);
    let texts: Vec<&str> = sents.iter().map(|s| s.as_str()).collect();
    // Batch size 2 mixes lengths differently from the reference's single padded batch.
    let got = enc.embed(&texts, 2).unwrap();
    for (i, (g, r)) in got.iter().zip(&refs).enumerate() {
        let worst = g
            .iter()
            .zip(r)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "sentence {i}: max abs diff {worst}");
    }
}
