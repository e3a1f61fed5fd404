//! Datasets as other tools ship them: gzip- and zstd-compressed files read exactly like their
//! plain twins (told by magic bytes, not by name), errors name the decompressed line, special files
//! are refused at once; model-written-evals rows with several non-matching answers become one A/B
//! item each; `data check` reports only the fields a file has.
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

#[test]
fn model_written_evals_rows_with_several_answers_become_one_item_each() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("philpapers2020.jsonl");
    std::fs::write(
        &p,
        concat!(
            r#"{"question": "Q1 (A) x (B) y (C) z", "answer_matching_behavior": " (A)", "answer_not_matching_behavior": [" (B)", " (C)"]}"#,
            "\n",
            r#"{"question": "Q2", "answer_matching_behavior": [" (B)"], "answer_not_matching_behavior": " (A)"}"#,
            "\n",
        ),
    )
    .unwrap();
    let d = load_dataset(&p, &LoadOptions::default()).unwrap();
    let items = d.ab_items();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [
            "philpapers2020:1#1",
            "philpapers2020:1#2",
            "philpapers2020:2"
        ]
    );
    assert_eq!(items[1].answer_matching_behavior, " (A)");
    assert_eq!(items[1].answer_not_matching_behavior, " (C)");
    assert_eq!((d.report.expanded_rows, d.report.expanded_items), (1, 2));
    assert!(d
        .report
        .summary()
        .contains("1 rows with several non-matching answers became 2 A/B items"));
    // Several *matching* answers stay an error: which one is the behaviour is ambiguous.
    let e = load_dataset(&fixture("bad/ab_two_answers.json"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("answer_matching_behavior") && e.contains("2 answers"),
        "{e}"
    );
}

#[test]
fn check_reports_only_the_fields_a_file_has() {
    let d = load_dataset(&fixture("good/hh_rlhf.jsonl"), &LoadOptions::default()).unwrap();
    let fields: Vec<String> = d.report.fields.values().cloned().collect();
    assert_eq!(
        fields,
        ["chosen", "rejected"],
        "HH files have only chosen/rejected"
    );
    assert!(d
        .report
        .summary()
        .contains("fields:  chosen=chosen, rejected=rejected"));
    // a declared-column format keeps its mapping
    let d = load_dataset(&fixture("good/pairs.csv"), &LoadOptions::default()).unwrap();
    assert!(d.report.fields.values().any(|c| c == "prompt"));
}

/// Writes pairs `ids` as a Parquet file with id/prompt/chosen/rejected string columns, as
/// `datasets` writes Hub shards; `chosen` is null at `chosen_null_at` (an invalid row).
fn write_parquet_pairs(path: &Path, ids: &[usize], chosen_null_at: Option<usize>) {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let col = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            ids.iter().map(|&i| f(i)).collect::<Vec<Option<String>>>(),
        ))
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("id", col(&|i| Some(format!("p{i}")))),
        ("prompt", col(&|i| Some(format!("question {i}?")))),
        (
            "chosen",
            col(&|i| (Some(i) != chosen_null_at).then(|| format!("good answer {i}"))),
        ),
        ("rejected", col(&|i| Some(format!("bad answer {i}")))),
    ])
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn pair_ids(ds: &Dataset) -> Vec<String> {
    ds.pairs().into_iter().map(|p| p.id).collect()
}

/// A Hugging Face datasets folder (`data/SPLIT-0000i-of-0000N.parquet`, as the Hub lays them
/// out) opens as one dataset per split, shards in order; the split is chosen or the only one
/// taken; missing shards, unknown splits and an unchosen split among several are errors that
/// say what to do; the CLI reads it with --split.
#[test]
fn hugging_face_shard_folders_read_one_split_as_one_dataset() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("hh-like");
    let data = repo.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_parquet_pairs(&data.join("train-00000-of-00002.parquet"), &[0, 1, 2], None);
    write_parquet_pairs(&data.join("train-00001-of-00002.parquet"), &[3, 4], Some(4));
    write_parquet_pairs(&data.join("test-00000-of-00001.parquet"), &[10, 11], None);
    std::fs::write(repo.join("README.md"), "---\nconfigs: []\n---\n").unwrap();

    let split = |s: Option<&str>, skip: bool, limit: Option<usize>| LoadOptions {
        split: s.map(String::from),
        skip_invalid: skip,
        limit,
        ..LoadOptions::default()
    };
    let train = load_dataset(&repo, &split(Some("train"), true, None)).unwrap();
    assert_eq!(pair_ids(&train), ["p0", "p1", "p2", "p3"]);
    assert_eq!((train.report.rows, train.report.invalid), (5, 1));
    assert_eq!(train.report.path, repo);
    let skipped = train.report.skipped[0].to_string();
    assert!(
        skipped.contains("train-00001-of-00002.parquet") && skipped.contains("row 2"),
        "{skipped}"
    );
    // Without --skip-invalid the bad row is an error naming its shard file.
    let e = load_dataset(&repo, &split(Some("train"), false, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("train-00001-of-00002.parquet"), "{e}");
    // The limit counts across shards.
    let first4 = load_dataset(&repo, &split(Some("train"), true, Some(4))).unwrap();
    assert_eq!(pair_ids(&first4), ["p0", "p1", "p2", "p3"]);
    let test = load_dataset(&data, &split(Some("test"), false, None)).unwrap();
    assert_eq!(pair_ids(&test), ["p10", "p11"]);

    let e = load_dataset(&repo, &split(None, true, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--split") && e.contains("test (1 shard)") && e.contains("train (2 shards)"),
        "{e}"
    );
    let e = load_dataset(&repo, &split(Some("validation"), true, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no split `validation`"), "{e}");

    // A folder with one split needs no choice; a missing shard is named.
    let one = d.path().join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::copy(
        data.join("test-00000-of-00001.parquet"),
        one.join("test-00000-of-00001-0a1b2c.parquet"),
    )
    .unwrap();
    assert_eq!(
        pair_ids(&load_dataset(&one, &LoadOptions::default()).unwrap()),
        ["p10", "p11"]
    );
    std::fs::copy(
        data.join("test-00000-of-00001.parquet"),
        one.join("train-00001-of-00003.parquet"),
    )
    .unwrap();
    let e = load_dataset(&one, &split(Some("train"), true, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shard 0")
            && e.contains("train-00000-of-00003.parquet")
            && e.contains("missing"),
        "{e}"
    );
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = load_dataset(&empty, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no dataset shards"), "{e}");

    // The CLI: data check and data convert with --split.
    let bin = env!("CARGO_BIN_EXE_steerlab");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let r = repo.to_str().unwrap();
    let (code, text) = run(&["data", "check", r, "--split", "test", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\"valid\": 2"), "{text}");
    let out = d.path().join("train.jsonl");
    let (code, text) = run(&[
        "data",
        "convert",
        r,
        "--split",
        "train",
        "--skip-invalid",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        load_dataset(&out, &LoadOptions::default())
            .unwrap()
            .pairs()
            .len(),
        4
    );
    let (code, text) = run(&["data", "check", r]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--split"), "{text}");
}

/// `--split` is one shared flag on every command that reads a dataset path: `steer train` and
/// `steer verify` read the chosen split of a Hugging Face datasets folder (a tiny llama model
/// keeps it fast), refuse a folder with several splits without it, and read the split asked for.
#[test]
fn split_flag_reads_a_datasets_folder_in_steer_commands() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("hh-like");
    let data = repo.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_parquet_pairs(&data.join("train-00000-of-00002.parquet"), &[0, 1, 2], None);
    write_parquet_pairs(&data.join("train-00001-of-00002.parquet"), &[3, 4], Some(4));
    write_parquet_pairs(
        &data.join("test-00000-of-00001.parquet"),
        &[10, 11, 12],
        None,
    );
    let model = fixture("../models/llama");
    let bin = env!("CARGO_BIN_EXE_steerlab");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (r, m) = (repo.to_str().unwrap(), model.to_str().unwrap());
    let vec = d.path().join("v.safetensors");
    let v = vec.to_str().unwrap();
    let train = |split: Option<&str>| {
        let mut args = vec![
            "steer", "train", "--model", m, "--data", r, "--method", "caa", "--layers", "1",
            "--json", "--out", v,
        ];
        if let Some(s) = split {
            args.extend(["--split", s]);
        }
        run(&args)
    };
    let (code, out, err) = train(Some("test"));
    assert_eq!(code, Some(0), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["pairs"], 3, "{out}");
    let meta = steerlab::steer::SteeringVector::load(&vec).unwrap().meta;
    assert_eq!(meta.dataset, "hh-like[test]");
    // The train split has a null `chosen` in its second shard: reading it fails there.
    let (code, _, err) = train(Some("train"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("train-00001-of-00002.parquet"), "{err}");
    let (code, _, err) = train(None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--split") && err.contains("test (1 shard)"),
        "{err}"
    );

    let (code, out, err) = run(&[
        "steer", "verify", v, "--model", m, "--data", r, "--split", "test", "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["sign_check"]["1"]["pairs"], 3, "{out}");
    let (code, _, err) = run(&[
        "steer",
        "verify",
        v,
        "--model",
        m,
        "--data",
        r,
        "--split",
        "validation",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no split `validation`"), "{err}");
}
