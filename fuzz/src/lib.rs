//! Fuzzing harness for steerlab's dataset readers: the data module compiled from ../src with
//! its in-crate dependencies (jobs, numeric), and [`run`], which feeds bytes through a reader with the
//! format forced, then detection + `load_dataset`, `preview` and `count_rows`.
#![allow(dead_code, unused_imports)]

#[path = "../../src/jobs.rs"]
pub mod jobs;

#[path = "../../src/numeric/mod.rs"]
pub mod numeric;

#[path = "../../src/data/mod.rs"]
pub mod data;

use data::{Format, LoadOptions, ReadOptions, RowReader};
use std::io::Write;
use std::path::PathBuf;

fn scratch(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("steerlab-fuzz-{}.{ext}", std::process::id()))
}

/// Runs one input through every reading path for `format`; any panic is a finding.
pub fn run(format: Format, bytes: &[u8]) {
    let path = scratch(format.name());
    {
        let mut f = std::fs::File::create(&path).expect("scratch file");
        f.write_all(bytes).expect("scratch write");
    }
    let opts = ReadOptions { format: Some(format), max_record_bytes: 1 << 16 };
    if let Ok(r) = RowReader::open(&path, &opts) {
        for row in r.take(10_000) {
            let _ = row;
        }
    }
    let lo = LoadOptions { skip_invalid: true, max_record_bytes: 1 << 16, ..Default::default() };
    let _ = data::load_dataset(&path, &lo);
    let lo = LoadOptions { format: Some(format), ..lo };
    let _ = data::load_dataset(&path, &lo);
    let _ = data::preview(&path, 5);
    let _ = data::count_rows(&path);
}
