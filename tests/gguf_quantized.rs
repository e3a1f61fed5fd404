//! The default GGUF model (SmolLM2-135M-Instruct, Q4_1 with a Q8_0 embedding) loaded with
//! `--weights quantized` (blocks kept in memory, quantized kernels) against the same file
//! dequantized at load (`--weights f32`): logits on the ChatML prompt, a BiPO-style loss and
//! its gradient with respect to a steering vector (cached residual, blocks from the steered
//! layer on, LM head + log-softmax node), within 1e-3 relative; greedy text equal.
use candle_core::{DType, Device, Tensor, Var};
use steerlab::data::Message;
use steerlab::model::load::WeightStorage;
use steerlab::model::{Batch, GenerateOptions, HookPoint, Hooks, LoadOptions, Model, Positions};

fn load(weights: WeightStorage) -> Model {
    let opts = LoadOptions {
        weights,
        ..LoadOptions::default()
    };
    Model::load(&steerlab::testing::default_model(), &opts).unwrap()
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    let d = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let s = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    d / s.max(1e-30)
}

/// Loss `-Σ log p(next token)` over the response half of `ids`, steered by `v` at
/// `ResidPost(layer - 1)` from a cached residual, and its gradient with respect to `v`.
fn steered_loss(model: &Model, ids: &[u32], layer: usize, v0: &Tensor) -> (f64, Tensor) {
    let batch = Batch::from_sequences(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    let resid = model.forward_to(layer, &batch, &mut Hooks::new()).unwrap();
    let v = Var::from_tensor(v0).unwrap();
    let mut hooks = Hooks::new();
    hooks.add(
        HookPoint::ResidPost(layer - 1),
        v.as_tensor().clone(),
        1.0,
        Positions::All,
    );
    let hidden = model
        .forward_hidden_from(layer, &resid, &batch, &mut hooks)
        .unwrap();
    let t = ids.len();
    let p = t / 2;
    let rows = Tensor::from_vec(
        (p - 1..t - 1).map(|r| r as u32).collect::<Vec<_>>(),
        t - p,
        &Device::Cpu,
    )
    .unwrap();
    let h = hidden.squeeze(0).unwrap().index_select(&rows, 0).unwrap();
    let targets = Tensor::new(&ids[p..], &Device::Cpu).unwrap();
    let loss = model
        .target_logprobs(&h, &targets)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap();
    let g = loss.backward().unwrap();
    let grad = g
        .get(v.as_tensor())
        .expect("no gradient reached the vector")
        .clone();
    (loss.to_scalar::<f32>().unwrap() as f64, grad)
}

#[test]
fn quantized_weights_match_the_dequantized_model() {
    let dense = load(WeightStorage::Dense);
    let quant = load(WeightStorage::Quantized);
    assert_eq!(dense.info().n_params, quant.info().n_params);
    let tok = dense.tokenizer().unwrap();
    let msgs = vec![Message::new("user", "What is the capital of France?")];
    let prompt = tok.apply_chat_template(&msgs, true).unwrap();
    let ids = tok.encode(&prompt, true).unwrap();

    // Logits at every position.
    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
    let ld = dense.forward(&batch, &mut Hooks::new()).unwrap();
    let lq = quant.forward(&batch, &mut Hooks::new()).unwrap();
    let e = rel(&lq, &ld);
    println!("logits: max relative difference {e:e}");
    assert!(e < 1e-3, "logits differ by {e} (relative)");

    // BiPO-style loss and gradient through quantized blocks and the tied quantized head.
    let v0 = Tensor::randn(0f32, 2.0, dense.hidden_size(), &Device::Cpu).unwrap();
    let (loss_d, g_d) = steered_loss(&dense, &ids, 15, &v0);
    let (loss_q, g_q) = steered_loss(&quant, &ids, 15, &v0);
    let le = (loss_q - loss_d).abs() / loss_d.abs();
    let ge = rel(&g_q, &g_d);
    println!("loss {loss_d} vs {loss_q} (rel {le:e}); gradient rel {ge:e}");
    assert!(le < 1e-3, "loss {loss_q} vs {loss_d}");
    assert!(ge < 1e-3, "gradient differs by {ge} (relative)");

    // Greedy generation (KV-cache steps run the small-batch kernels).
    let opts = GenerateOptions {
        max_new_tokens: 16,
        ..Default::default()
    };
    let gd = dense
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    let gq = quant
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    let (td, tq) = (
        tok.decode(&gd, true).unwrap(),
        tok.decode(&gq, true).unwrap(),
    );
    println!("greedy: {tq:?}");
    assert_eq!(tq, td);
}
