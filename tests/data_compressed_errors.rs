//! Every error about a compressed dataset names the decompressed line (issue 19, item 4):
//! syntax errors inside the stream, and gzip/zstd data cut short or damaged (while sniffing the
//! format at the start and in the middle of a long file).
use std::io::{Read, Write};
use std::path::Path;

use steerlab::data::{load_dataset, LoadOptions};

/// 4000 distinct JSONL pair lines (so the compressed file is long and compresses poorly enough
/// to be cut in the middle of the text).
fn jsonl_text() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..4000u64 {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        s.push_str(&format!(
            "{{\"prompt\":\"q{i} {h:x}\",\"chosen\":\"yes {}\",\"rejected\":\"no {}\"}}\n",
            h >> 7,
            h >> 13
        ));
    }
    s.into_bytes()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 3).unwrap()
}

/// Newlines in what a reference decoder yields before failing, + 1: the last line it reaches.
fn reference_last_line(name: &str, bytes: &[u8]) -> u64 {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut r: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else {
        Box::new(zstd::stream::read::Decoder::new(bytes).unwrap())
    };
    loop {
        match r.read(&mut buf) {
            Ok(0) => panic!("{name}: the reference decoder saw no error"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    1 + out.iter().filter(|&&b| b == b'\n').count() as u64
}

fn load_err(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    match load_dataset(&p, &LoadOptions::default()) {
        Ok(_) => panic!("{name}: loaded a damaged file"),
        Err(e) => e.to_string(),
    }
}

/// The decompressed line number in a message (`decompressed line N`).
fn line_in(msg: &str) -> u64 {
    let i = msg.find("decompressed line ").expect(msg) + "decompressed line ".len();
    msg[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .expect(msg)
}

#[test]
fn cut_short_compressed_files_name_the_decompressed_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = jsonl_text();
    for (name, packed) in [
        ("cut.jsonl.gz", gzip(&text)),
        ("cut.jsonl.zst", zstd(&text)),
    ] {
        // in the middle of the text, and within the first bytes (the format sniff)
        for frac in [2usize, 40] {
            let cut = &packed[..packed.len() / frac];
            let msg = load_err(dir.path(), name, cut);
            assert!(msg.contains("cut short or damaged"), "{name}: {msg}");
            let line = line_in(&msg);
            let reference = reference_last_line(name, cut);
            assert!(
                line >= 1 && line <= reference,
                "{name} 1/{frac}: line {line} vs reference {reference}: {msg}"
            );
            if frac == 2 {
                assert!(line > 100, "{name}: {msg}");
            }
        }
    }
    // A flipped byte in the deflate data.
    let mut bad = gzip(&text);
    let i = bad.len() / 2;
    bad[i] ^= 0xff;
    let msg = load_err(dir.path(), "flip.jsonl.gz", &bad);
    assert!(msg.contains("decompressed line "), "{msg}");
}

#[test]
fn syntax_errors_in_compressed_files_name_the_decompressed_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = jsonl_text();
    text.extend_from_slice(b"{\"prompt\": broken\n");
    let opts = LoadOptions {
        skip_invalid: false,
        ..LoadOptions::default()
    };
    for (name, packed) in [
        ("bad.jsonl.gz", gzip(&text)),
        ("bad.jsonl.zst", zstd(&text)),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, packed).unwrap();
        let msg = match load_dataset(&p, &opts) {
            Ok(ds) => format!("{:?}", ds.report),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains("decompressed line 4001"), "{name}: {msg}");
    }
}
