//! gzip- and zstd-compressed dataset files read exactly like their plain twins (told by magic
//! bytes, not by name), errors name the decompressed line, and special files are refused at once.
use std::io::Write;
use std::path::{Path, PathBuf};
use steerlab::data::*;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(p)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

fn rows(path: &Path) -> Vec<Row> {
    RowReader::open(path, &ReadOptions::default())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn compressed_files_read_like_their_plain_twins() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "pairs.jsonl",
        "hh_rlhf.jsonl",
        "pairs.csv",
        "feedback.tsv",
        "ab_items.json",
        "ultrafeedback.json",
        "judgements.jsonl",
    ] {
        let plain = fixture(&format!("good/{name}"));
        let bytes = std::fs::read(&plain).unwrap();
        let want = rows(&plain);
        let want_format = detect_format(&plain).unwrap();
        let want_records = load_dataset(&plain, &LoadOptions::default())
            .unwrap()
            .records;
        for (suffix, packed, c) in [
            ("gz", gzip(&bytes), Compression::Gzip),
            ("zst", zstd(&bytes), Compression::Zstd),
        ] {
            // by name, and by content alone (a misleading `.bin` name keeps the format's
            // extension before it only in the first case)
            for file in [format!("{name}.{suffix}"), format!("{name}.{suffix}.bin")] {
                let p = dir.path().join(&file);
                std::fs::write(&p, &packed).unwrap();
                assert_eq!(detect_compression(&p).unwrap(), c, "{file}");
                if file.ends_with(suffix) {
                    assert_eq!(detect_format(&p).unwrap(), want_format, "{file}");
                }
                let opts = ReadOptions {
                    format: Some(want_format),
                    ..Default::default()
                };
                let got: Vec<Row> = RowReader::open(&p, &opts)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(got.len(), want.len(), "{file}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.fields, w.fields, "{file}");
                    assert_eq!(g.loc.line, w.loc.line, "{file}: same (decompressed) lines");
                    assert_eq!(g.loc.decompressed, w.loc.line.is_some(), "{file}");
                }
                if file.ends_with(suffix) {
                    let d = load_dataset(&p, &LoadOptions::default()).unwrap();
                    assert_eq!(d.records, want_records, "{file}");
                    assert_eq!(count_rows(&p).unwrap(), want.len() as u64, "{file}");
                }
            }
        }
    }
}

#[test]
fn multi_member_gzip_and_random_access_into_compressed_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..500 {
        text +=
            &format!("{{\"prompt\": \"p{i}\", \"chosen\": \"c{i}\", \"rejected\": \"r{i}\"}}\n");
    }
    // `cat a.gz b.gz` is one valid gzip file of two members.
    let half = text.len() / 2;
    let cut = half + text[half..].find('\n').unwrap() + 1;
    let mut packed = gzip(&text.as_bytes()[..cut]);
    packed.extend(gzip(&text.as_bytes()[cut..]));
    let p = dir.path().join("two_members.jsonl.gz");
    std::fs::write(&p, &packed).unwrap();
    assert_eq!(rows(&p).len(), 500);
    let idx = RowIndex::build(&p, &steerlab::jobs::NoProgress).unwrap();
    assert_eq!(idx.len(), 500);
    let r = idx.rows(321, 2).unwrap();
    let chosen = idx.columns().iter().position(|c| c == "chosen").unwrap();
    assert_eq!(
        r[0].cells.as_ref().unwrap()[chosen].as_deref(),
        Some("c321")
    );
    assert_eq!(r[1].loc.line, Some(323));
}

#[test]
fn errors_in_compressed_files_name_the_decompressed_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n\n{\"prompt\": \"a\", \"chosen\": 5, \"rejected\": \"c\"}\nnot json\n";
    let p = dir.path().join("hh.jsonl.gz");
    std::fs::write(&p, gzip(text.as_bytes())).unwrap();
    let e = load_dataset(&p, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hh.jsonl.gz") && e.contains("decompressed line 3") && e.contains("chosen"),
        "{e}"
    );
    let e = RowReader::open(&p, &ReadOptions::default())
        .unwrap()
        .nth(2)
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("decompressed line 4"), "{e}");
    // A truncated stream is an I/O error naming the file, never a panic or a silent stop.
    let packed = gzip(text.repeat(200).as_bytes());
    let t = dir.path().join("cut.jsonl.gz");
    std::fs::write(&t, &packed[..packed.len() / 2]).unwrap();
    let opts = LoadOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let e = load_dataset(&t, &opts).unwrap_err().to_string();
    assert!(e.contains("cut.jsonl.gz"), "{e}");
    // Parquet cannot be read through a decompressor: said plainly.
    let q = dir.path().join("pairs.parquet.gz");
    std::fs::write(
        &q,
        gzip(&std::fs::read(fixture("good/pairs.parquet")).unwrap()),
    )
    .unwrap();
    let e = detect_format(&q).unwrap_err().to_string();
    assert!(e.contains("decompress it first"), "{e}");
}

#[test]
fn special_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = load_dataset(&fifo, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = load_dataset(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a regular file") || e.contains("folder"),
        "{e}"
    );
}
