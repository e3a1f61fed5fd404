//! Fuzz target: a GGUF control vector.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = steerlab_fuzz::scratch_file("vector.gguf", data);
    steerlab::testing::fuzz::gguf_vector(&p);
});
