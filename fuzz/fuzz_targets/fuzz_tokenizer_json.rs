//! Fuzz target: a tokenizer.json (load, encode, decode, chat template).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = steerlab_fuzz::tokenizer_dir(data);
    steerlab::testing::fuzz::tokenizer_dir(&dir);
});
