//! In-process, seeded random-mutation fuzzing of the dataset readers (a stand-in for
//! `cargo fuzz` that runs on the stable toolchain with the normal dev build).
//!
//! Each execution mutates an input from the seed corpus (fuzz/corpus/fuzz_<target>/, shared with the cargo-fuzz targets), writes it to
//! a scratch file and runs it through the reader with the format forced, then through
//! detection + `load_dataset` (skipping invalid rows), `preview` and `count_rows`. Any panic is
//! a crash: the input is saved under fuzz/artifacts/ and the run fails.
//!
//!   cargo run --example fuzz_readers -- [EXECS_PER_TARGET] [SEED]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use steerlab::data::{self, Format, LoadOptions, ReadOptions, RowReader};

/// A tiny xorshift generator (seeded, reproducible).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\n",
    b"\r\n",
    b",",
    b"\t",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\"\"",
    b"null",
    b"\xff",
    b"\xe9",
    b"\xef\xbb\xbf",
    b"PAR1",
    b"\n\nHuman:",
    b"\n\nAssistant:",
    b"\"role\"",
    b"\"content\"",
    b"\"chosen\"",
    b"\"winner\"",
    b"\"factors_a\": {\"x\": \"y\"}",
    b"1e999",
    b"-0",
    b"\"\\ud800\"",
    b"0",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = input[a..b].to_vec();
                let i = rng.below(len + 1);
                input.splice(i..i, chunk);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let i = rng.below(len + 1);
                    input.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ if len > 0 => {
                // Overwrite a little-endian u32 (lengths and offsets in Parquet).
                let i = rng.below(len);
                let v = match rng.below(4) {
                    0 => 0u32,
                    1 => u32::MAX,
                    2 => 0x7fff_ffff,
                    _ => rng.next() as u32,
                };
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if i + k < input.len() {
                        input[i + k] = *b;
                    }
                }
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

fn exercise(path: &Path, format: Format) {
    let opts = ReadOptions {
        format: Some(format),
        max_record_bytes: 1 << 16,
    };
    if let Ok(r) = RowReader::open(path, &opts) {
        for row in r.take(10_000) {
            let _ = row;
        }
    }
    let lo = LoadOptions {
        skip_invalid: true,
        max_record_bytes: 1 << 16,
        ..Default::default()
    };
    let _ = data::load_dataset(path, &lo);
    let lo = LoadOptions {
        format: Some(format),
        ..lo
    };
    let _ = data::load_dataset(path, &lo);
    let _ = data::preview(path, 5);
    let _ = data::count_rows(path);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let execs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let scratch = std::env::temp_dir().join(format!("steerlab-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    // Panics are caught and counted; keep the default hook quiet meanwhile.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashes = 0;
    for (target, format, ext) in [
        ("jsonl", Format::Jsonl, "jsonl"),
        ("json", Format::Json, "json"),
        ("csv", Format::Csv, "csv"),
        ("parquet", Format::Parquet, "parquet"),
    ] {
        let dir = root.join("corpus").join(format!("fuzz_{target}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let corpus: Vec<Vec<u8>> = files
            .iter()
            .map(|f| std::fs::read(f).expect("corpus file"))
            .collect();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ target.len() as u64 | 1);
        let path = scratch.join(format!("input.{ext}"));
        for i in 0..execs {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &corpus, &mut input);
            std::fs::write(&path, &input).expect("scratch write");
            if catch_unwind(AssertUnwindSafe(|| exercise(&path, format))).is_err() {
                crashes += 1;
                let art = root.join("artifacts").join(target);
                std::fs::create_dir_all(&art).expect("artifacts dir");
                let out = art.join(format!("crash-{seed}-{i}.{ext}"));
                std::fs::write(&out, &input).expect("artifact write");
                eprintln!(
                    "{target}: CRASH on execution {i}, input saved to {}",
                    out.display()
                );
            }
        }
        println!(
            "{target}: {execs} executions, corpus {} files, seed {seed}",
            corpus.len()
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if crashes > 0 {
        eprintln!("{crashes} crashing inputs");
        std::process::exit(1);
    }
    println!("no crashes");
}
