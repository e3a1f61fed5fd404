//! Fuzz target: a GGUF model file (header check, candle's reader, config, tokenizer, tensors, model build).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = steerlab_fuzz::scratch_file("model.gguf", data);
    steerlab::testing::fuzz::gguf_model(&p, data);
});
