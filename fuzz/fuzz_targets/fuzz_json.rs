//! Fuzz target: the json reader (and detection, layout, conversion, preview on the same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use steerlab_fuzz::data::Format;

fuzz_target!(|data: &[u8]| {
    steerlab_fuzz::run(Format::Json, data);
});
