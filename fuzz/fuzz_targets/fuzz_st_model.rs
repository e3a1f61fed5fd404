//! Fuzz target: an HF folder's model.safetensors (with a fixed tiny config.json).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = steerlab_fuzz::model_dir(data);
    steerlab::testing::fuzz::safetensors_model(&dir);
});
