//! The fused CPU inference kernels (`model::fast::cpu_infer`: attention, RoPE, SwiGLU, residual +
//! RMSNorm) against candle's ops on whole models: logits of a padded batch and greedy
//! generation (the KV-cache path) must agree with the kernels on and off, for every fixture
//! family (llama, Llama-3 rope scaling, Mistral's sliding window, Qwen2 biases, Qwen3 q/k
//! norms). The transformers reference tests (`engine_hf.rs`) run with the kernels on.
//!
//! The only test binary that switches the kernels process-wide (on and off, and each
//! instruction-set path this CPU runs).
use candle_core::Device;
use steerlab::model::fast::{cpu_infer, cpu_matmul, cpu_path};
use steerlab::model::{Batch, GenerateOptions, Hooks, LoadOptions, Model};

use steerlab::testing::{fixture, rel_err};

#[test]
fn model_logits_and_generation_match_with_the_fused_kernels_on_and_off() {
    if !cpu_matmul::supported() {
        eprintln!("no AVX2/FMA: the fused kernels are never used here");
        return;
    }
    // Not gemma2: its soft-capped attention never reaches the fused kernel (arch/gemma2.rs).
    for arch in ["llama", "llama3", "mistral", "qwen2", "qwen3", "gemma3"] {
        let model = Model::load(&fixture(arch), &LoadOptions::default()).unwrap();
        let vocab = model.info().vocab_size as u32;
        // Three lengths, so the batch is padded and the mask has padded keys.
        let seqs: Vec<Vec<u32>> = [40u32, 23, 31]
            .iter()
            .enumerate()
            .map(|(s, &len)| {
                (0..len)
                    .map(|t| (t * 7 + s as u32 * 13 + 1) % vocab)
                    .collect()
            })
            .collect();
        let batch = Batch::from_sequences(&seqs, 0, &Device::Cpu).unwrap();
        let opts = GenerateOptions {
            max_new_tokens: 8,
            stop_at_eos: false,
            ..Default::default()
        };
        let run = |on: bool| {
            cpu_infer::set_enabled(on);
            let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
            let gen = model
                .generate(&seqs[0][..9], &opts, &Hooks::new(), &mut |_, _| true)
                .unwrap();
            (logits, gen)
        };
        let before = cpu_infer::attention_calls();
        let (on_logits, on_gen) = run(true);
        let used = cpu_infer::attention_calls() - before;
        // Every block of the batch forward and of each generation step.
        assert!(
            used >= model.n_layers() * 9,
            "{arch}: the fused attention ran {used} times"
        );
        let (off_logits, off_gen) = run(false);
        cpu_infer::set_enabled(true);
        let e = rel_err(&on_logits, &off_logits);
        assert!(e < 1e-4, "{arch}: logits differ by {e} relative");
        assert_eq!(on_gen, off_gen, "{arch}: greedy generation");
        // Every SIMD path this CPU runs (AVX-512, AVX2, NEON), forced process-wide.
        let best = cpu_path::current();
        for path in cpu_path::available().into_iter().filter(|p| p.simd()) {
            cpu_path::set_current(path).unwrap();
            let before = cpu_infer::attention_calls();
            let (logits, gen) = run(true);
            assert!(
                cpu_infer::attention_calls() > before,
                "{arch}: {path} not used"
            );
            let e = rel_err(&logits, &off_logits);
            assert!(e < 1e-4, "{arch}: {path}: logits differ by {e} relative");
            assert_eq!(gen, off_gen, "{arch}: {path}: greedy generation");
        }
        cpu_path::set_current(best).unwrap();
    }
}
