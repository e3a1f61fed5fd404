//! Fuzz target: a model config.json.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    steerlab::testing::fuzz::config_json(data, std::path::Path::new("config.json"));
});
