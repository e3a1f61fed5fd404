//! Fuzz target: a chat template rendered with the test tokenizer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    steerlab_fuzz::with_tokenizer(|t| steerlab::testing::fuzz::chat_template(t, data));
});
