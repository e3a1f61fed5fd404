//! Fuzz target: a native safetensors steering vector.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = steerlab_fuzz::scratch_file("vector.safetensors", data);
    steerlab::testing::fuzz::safetensors_vector(&p);
});
