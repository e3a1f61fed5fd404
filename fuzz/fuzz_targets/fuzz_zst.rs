//! Fuzz target: zstd-compressed JSONL (the zstd decoder under every dataset reading path).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    steerlab_fuzz::run_compressed("zst", data);
});
