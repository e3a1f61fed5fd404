//! Readers, layouts, records and error paths of `steerlab::data`, against the committed corpus
//! in tests/fixtures/data (made by scripts/make_data_fixtures.py; `expected/` holds what
//! Python's json/csv/pyarrow readers see in the good files).
use serde_json::Value;
use std::path::{Path, PathBuf};
use steerlab::data::*;

fn fixture(p: &str) -> PathBuf {
    steerlab::testing::fixture_path("data").join(p)
}

fn rows(path: &Path) -> Vec<Row> {
    RowReader::open(path, &ReadOptions::default())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn expected(name: &str) -> Vec<Value> {
    let t = std::fs::read_to_string(fixture(&format!("expected/{name}.json"))).unwrap();
    match serde_json::from_str(&t).unwrap() {
        Value::Array(v) => v,
        _ => panic!("expected an array"),
    }
}

fn load(p: &str) -> Dataset {
    load_dataset(&fixture(p), &LoadOptions::default()).unwrap()
}

fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| num_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| num_eq(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn readers_match_python_reference_readers() {
    for name in [
        "pairs.jsonl",
        "ultrafeedback.json",
        "ab_items.json",
        "pairs.csv",
        "arena.csv",
        "feedback.tsv",
        "pairs.parquet",
        "ultrafeedback.parquet",
        "judgements.parquet",
    ] {
        let got = rows(&fixture(&format!("good/{name}")));
        let want = expected(name);
        assert_eq!(got.len(), want.len(), "{name}: row count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = Value::Object(g.fields.clone());
            assert!(num_eq(&g, w), "{name} row {}: got {g}\nwant {w}", i + 1);
            assert_eq!(got[i].loc.row, i as u64 + 1);
        }
    }
}

#[test]
fn line_numbers_are_file_lines() {
    // pairs.jsonl has a blank line after the first record.
    let r = rows(&fixture("good/pairs.jsonl"));
    assert_eq!(
        r.iter().map(|r| r.loc.line.unwrap()).collect::<Vec<_>>(),
        vec![1, 4, 5]
    );
    // pairs.csv: header on line 1; the second record's cell spans two lines.
    let r = rows(&fixture("good/pairs.csv"));
    assert_eq!(
        r.iter().map(|r| r.loc.line.unwrap()).collect::<Vec<_>>(),
        vec![2, 3, 5]
    );
    // ultrafeedback.json: elements of two arrays, with their group and starting line.
    let r = rows(&fixture("good/ultrafeedback.json"));
    assert_eq!(r[0].group.as_deref(), Some("train_prefs"));
    assert_eq!(r[2].group.as_deref(), Some("test_prefs"));
    assert_eq!(r[0].loc.line, Some(3));
    // Parquet rows have numbers, not lines.
    let r = rows(&fixture("good/pairs.parquet"));
    assert_eq!(r[6].loc, Loc::row(7));
}

#[test]
fn format_detection_by_content_and_extension() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], Format)] = &[
        (
            "a.json",
            b"{\"prompt\": \"p\"}\n{\"prompt\": \"q\"}\n",
            Format::Jsonl,
        ),
        (
            "a.json",
            b"{\"data\": [\n{\"prompt\": \"p\"}]}",
            Format::Json,
        ),
        ("a.txt", b"[{\"prompt\": \"p\"}]", Format::Json),
        ("a", b"{\"prompt\": \"p\"}\n", Format::Jsonl),
        ("a.dat", b"prompt,chosen\np,c\n", Format::Csv),
        ("a.dat", b"prompt\tchosen\np\tc\n", Format::Tsv),
        ("a.tsv", b"prompt\tchosen,x\n", Format::Tsv),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(
            detect_format(&p).unwrap(),
            *want,
            "{name}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(
        detect_format(&fixture("good/pairs.parquet")).unwrap(),
        Format::Parquet
    );
    let mut p = dir.path().join("renamed.bin");
    std::fs::copy(fixture("good/pairs.parquet"), &p).unwrap();
    assert_eq!(detect_format(&p).unwrap(), Format::Parquet);
    p = dir.path().join("x.json");
    std::fs::write(&p, b"prompt,chosen\n").unwrap();
    assert!(matches!(detect_format(&p), Err(DataError::Syntax { .. })));
}

#[test]
fn plain_pairs_and_csv_pairs() {
    let ds = load("good/pairs.jsonl");
    assert_eq!(ds.report.layout, Layout::Pair);
    assert_eq!(ds.report.format, Format::Jsonl);
    let p = ds.pairs();
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0].prompt,
        Prompt::Text("What is the capital of France?".into())
    );
    assert_eq!(p[0].chosen, "Paris.");
    assert_eq!(p[0].id, "pairs:1");
    assert_eq!(p[1].chosen, "¡Hola! 👋");

    let ds = load("good/pairs.csv");
    assert_eq!(ds.report.ignored_columns, vec!["note".to_string()]);
    let p = ds.pairs();
    assert_eq!(p[0].prompt, Prompt::Text("Say \"hi\"".into()));
    assert_eq!(p[1].prompt, Prompt::Text("Two\nlines".into()));
    assert_eq!(p[1].chosen, "a,b,c");
    assert_eq!(p[1].rejected, "\"quoted\"");
    assert_eq!(p[2].rejected, "日本語");
}

#[test]
fn hh_rlhf_transcripts_become_messages() {
    let p = load("good/hh_rlhf.jsonl").pairs();
    assert_eq!(p[0].prompt, Prompt::Text("How do I boil an egg?".into()));
    assert_eq!(p[0].chosen, "Put it in boiling water for 9 minutes.");
    assert_eq!(p[0].rejected, "Eggs are from chickens.");
    assert_eq!(
        p[1].prompt,
        Prompt::Messages(vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello! How can I help?"),
            Message::new("user", "Tell me a joke"),
        ])
    );
    assert_eq!(p[1].rejected, "No.");
    assert_eq!(
        parse_transcript("Human: is not a transcript without an assistant"),
        None
    );
    assert_eq!(
        parse_transcript("\n\nHuman: q\n\nAssistant:"),
        Some(vec![
            Message::new("user", "q"),
            Message::new("assistant", "")
        ])
    );
}

#[test]
fn ultrafeedback_message_lists_share_the_prompt_prefix() {
    let ds = load("good/ultrafeedback.json");
    let p = ds.pairs();
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].prompt, Prompt::Text("Write a haiku about rain".into()));
    assert_eq!(p[0].chosen, "Soft rain on the roof");
    assert_eq!(
        p[1].prompt,
        Prompt::Messages(vec![
            Message::new("system", "Be brief."),
            Message::new("user", "Name a prime")
        ])
    );
    assert_eq!((p[1].chosen.as_str(), p[1].rejected.as_str()), ("7", "9"));
    assert_eq!(p[2].id, "ultrafeedback:test_prefs:66");
    let pq = load("good/ultrafeedback.parquet").pairs();
    assert_eq!(pq[1].prompt, Prompt::Text("Name a prime".into()));
    assert_eq!((pq[1].chosen.as_str(), pq[1].rejected.as_str()), ("7", "9"));
}

#[test]
fn ab_items_judgements_and_feedback() {
    let ab = load("good/ab_items.json").ab_items();
    assert_eq!(ab.len(), 2);
    assert_eq!(ab[1].answer_matching_behavior, "(B)");
    assert_eq!(ab[1].answer_not_matching_behavior, " (A)");

    let ds = load("good/judgements.jsonl");
    assert_eq!(ds.report.layout, Layout::Judgement);
    let j = ds.judgements();
    assert_eq!(
        j.iter().map(|j| j.winner).collect::<Vec<_>>(),
        vec![Winner::A, Winner::B, Winner::Tie]
    );
    assert_eq!(j[0].annotator.as_deref(), Some("w7"));
    assert_eq!(j[0].factors_b["hedging"], 1.0);
    assert_eq!(j[1].judge.as_deref(), Some("gpt-4"));
    assert!(j[2].factors_a.is_empty() && j[2].judge.is_none());
    assert_eq!(ds.pairs().len(), 2, "the tie has no pair form");

    let j = load("good/judgements.parquet").judgements();
    assert_eq!(j[0].winner, Winner::A);
    assert_eq!(j[1].winner, Winner::Tie);
    assert_eq!(j[1].factors_a["length"], 1.5);
    assert_eq!(j[1].factors_a["refusal"], 1.0);

    let ds = load("good/arena.csv");
    let j = ds.judgements();
    assert_eq!(
        j.iter().map(|j| j.winner).collect::<Vec<_>>(),
        vec![Winner::A, Winner::Tie, Winner::B]
    );

    let ds = load("good/feedback.tsv");
    assert_eq!(ds.report.format, Format::Tsv);
    assert_eq!(ds.report.fields[&Field::Response], "completion");
    let f = ds.feedback();
    assert_eq!(
        f.iter().map(|f| f.label).collect::<Vec<_>>(),
        vec![true, false, true, false]
    );
}

#[test]
fn unknown_layouts_need_a_mapping() {
    let path = fixture("good/needs_mapping.csv");
    let e = load_dataset(&path, &LoadOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Layout { .. }));
    for part in ["needs_mapping.csv", "question, good, bad", "--map"] {
        assert!(msg.contains(part), "{msg}");
    }
    let opts = LoadOptions {
        mapping: ColumnMapping::parse("prompt=question, chosen=good,rejected=bad").unwrap(),
        ..Default::default()
    };
    let ds = load_dataset(&path, &opts).unwrap();
    let p = ds.pairs();
    assert_eq!(
        (
            p[1].prompt.to_plain().as_str(),
            p[1].chosen.as_str(),
            p[1].rejected.as_str()
        ),
        ("Q2", "yes", "no")
    );
    // The same columns as an A/B item set, by mapping and forced layout.
    let opts = LoadOptions {
        mapping: ColumnMapping::parse(
            "layout=ab,answer_matching_behavior=good,answer_not_matching_behavior=bad",
        )
        .unwrap(),
        ..Default::default()
    };
    assert_eq!(
        load_dataset(&path, &opts).unwrap().ab_items()[0].answer_matching_behavior,
        "right"
    );
    // Mapping errors.
    for (spec, want) in [
        ("prompt", "not of the form"),
        ("nonsense=x", "unknown field"),
        ("prompt=a,prompt=b", "twice"),
        ("layout=weird", "unknown layout"),
    ] {
        let e = ColumnMapping::parse(spec).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}: {e}");
    }
    let opts = LoadOptions {
        mapping: ColumnMapping::parse("chosen=nope").unwrap(),
        ..Default::default()
    };
    let e = load_dataset(&path, &opts).unwrap_err().to_string();
    assert!(
        e.contains("no column `nope`") && e.contains("question, good, bad"),
        "{e}"
    );
    let m = ColumnMapping::parse("layout=pair,prompt=q").unwrap();
    assert_eq!(ColumnMapping::parse(&m.to_spec()).unwrap(), m);
}

/// (file, Some(line) for an error located in the file / None for a file-level error, words
/// the message must contain).
const BAD: &[(&str, Option<u64>, &[&str])] = &[
    ("non_utf8.jsonl", Some(2), &["invalid UTF-8", "0xe9"]),
    (
        "non_utf8.csv",
        Some(3),
        &["field `chosen`", "invalid UTF-8"],
    ),
    ("truncated.json", Some(3), &["truncated"]),
    ("truncated.jsonl", Some(2), &["invalid JSON", "EOF"]),
    (
        "wrong_type.jsonl",
        Some(2),
        &["field `chosen`", "found a number"],
    ),
    (
        "missing_field.jsonl",
        Some(2),
        &["field `rejected`", "missing"],
    ),
    ("null_field.jsonl", Some(2), &["field `prompt`", "null"]),
    (
        "unterminated_quote.csv",
        Some(3),
        &["unterminated quoted field", "line 3"],
    ),
    ("stray_quote.csv", Some(2), &["after the closing quote"]),
    ("field_count.csv", Some(3), &["2 fields", "3 columns"]),
    ("bad_winner.jsonl", Some(2), &["field `winner`", "both"]),
    (
        "bad_winner_cols.csv",
        Some(3),
        &["exactly one of winner_model_a"],
    ),
    ("bad_label.csv", Some(3), &["field `label`", "maybe"]),
    (
        "bad_factors.jsonl",
        Some(1),
        &["field `factors_a`", "`length`"],
    ),
    (
        "not_object.jsonl",
        Some(2),
        &["expected a JSON object", "array"],
    ),
    (
        "trailing_comma.json",
        Some(1),
        &["expected a record", "`]`"],
    ),
    ("bad_syntax.json", Some(2), &["invalid JSON", "column 16"]),
    (
        "garbage_after.json",
        Some(1),
        &["after the end of the JSON document"],
    ),
    (
        "hh_mismatch.jsonl",
        Some(1),
        &["field `rejected`", "share the prompt"],
    ),
    (
        "ends_with_user.jsonl",
        Some(1),
        &["field `chosen`", "assistant"],
    ),
    (
        "bad_message.jsonl",
        Some(1),
        &["field `chosen`", "no `role`"],
    ),
    (
        "ab_two_answers.json",
        Some(1),
        &["answer_matching_behavior", "2 answers"],
    ),
    ("empty.jsonl", None, &["empty"]),
    ("blank.jsonl", None, &["empty"]),
    ("empty.csv", None, &["empty"]),
    ("header_only.csv", None, &["empty"]),
    ("empty_array.json", None, &["empty"]),
    ("no_arrays.json", Some(1), &["no array of records"]),
    ("scalar.json", Some(1), &["expected JSON"]),
    ("duplicate_header.csv", Some(1), &["column `chosen` twice"]),
    ("truncated.parquet", None, &["invalid Parquet", "footer"]),
    ("corrupt_pages.parquet", None, &["invalid Parquet"]),
    ("not_really.parquet", None, &["magic"]),
    // Found by cargo-fuzz: the parquet crate panics in its footer decoder; caught and reported.
    (
        "parquet_decoder_panic.parquet",
        None,
        &["invalid Parquet", "decoder failed"],
    ),
    (
        "unknown_layout.jsonl",
        None,
        &["columns found: bad, good, question", "--map"],
    ),
    ("partial_layout.jsonl", None, &["lacks rejected"]),
    ("ambiguous.jsonl", None, &["several layouts", "--layout"]),
];

#[test]
fn every_bad_file_gives_a_located_error() {
    for (name, line, words) in BAD {
        let path = fixture(&format!("bad/{name}"));
        let err = load_dataset(&path, &LoadOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{name}: loaded without error"));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("bad/{name}")),
            "{name}: no file in `{msg}`"
        );
        for w in *words {
            assert!(msg.contains(w), "{name}: `{w}` not in `{msg}`");
        }
        match line {
            Some(l) => {
                assert_eq!(err.loc().and_then(|x| x.line), Some(*l), "{name}: {msg}");
                assert!(msg.contains(&format!("line {l}")), "{name}: {msg}");
            }
            None => assert!(
                err.loc().is_none(),
                "{name}: expected a file-level error, got `{msg}`"
            ),
        }
    }
}

#[test]
fn skip_invalid_keeps_the_good_rows_and_lists_the_bad() {
    let opts = LoadOptions {
        skip_invalid: true,
        ..Default::default()
    };
    let ds = load_dataset(&fixture("bad/field_count.csv"), &opts).unwrap();
    assert_eq!(ds.records.len(), 1);
    assert_eq!(ds.report.invalid, 2);
    assert_eq!(
        ds.report
            .skipped
            .iter()
            .map(|s| s.loc.line.unwrap())
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    let ds = load_dataset(&fixture("bad/wrong_type.jsonl"), &opts).unwrap();
    assert_eq!(
        (ds.report.rows, ds.report.valid, ds.report.invalid),
        (3, 1, 2)
    );
    assert_eq!(ds.report.skipped[0].field.as_deref(), Some("chosen"));
    // After an unterminated quote the rest of the file is unreadable: one good row, one skipped.
    let ds = load_dataset(&fixture("bad/unterminated_quote.csv"), &opts).unwrap();
    assert_eq!((ds.report.valid, ds.report.invalid), (1, 1));
    // Parquet nulls are per row.
    let ds = load_dataset(&fixture("good/pairs.parquet"), &opts).unwrap();
    assert_eq!((ds.report.valid, ds.report.invalid), (6, 1));
    assert_eq!(ds.report.skipped[0].loc, Loc::row(4));
    assert_eq!(ds.report.skipped[0].field.as_deref(), Some("rejected"));
    // check_dataset reports every invalid row even without skip_invalid.
    let r = check_dataset(
        &fixture("bad/not_object.jsonl"),
        &LoadOptions::default(),
        &steerlab::jobs::NoProgress,
    )
    .unwrap();
    assert_eq!((r.valid, r.invalid), (1, 2));
    assert!(r.summary().contains("line 3: expected a JSON object"));
    // limit
    let opts = LoadOptions {
        limit: Some(2),
        ..Default::default()
    };
    let ds = load_dataset(&fixture("good/pairs.jsonl"), &opts).unwrap();
    assert_eq!(ds.records.len(), 2);
    assert!(ds.report.stopped_at_limit);
}

/// A file with a 20 MB record between two good ones, in each text format.
#[test]
fn a_20_mb_record_is_reported_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(20 << 20);
    let good = r#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#;
    let files = [
        (2, "big.jsonl", format!("{good}\n{{\"prompt\": \"p\", \"chosen\": \"{big}\", \"rejected\": \"b\"}}\n{good}\n")),
        (2, "big.json", format!("[{good},\n{{\"prompt\": \"p\", \"chosen\": \"{big}\", \"rejected\": \"b\"}},\n{good}]")),
        (3, "big.csv", format!("prompt,chosen,rejected\np,a,b\np,\"{big}\",b\np,a,b\n")),
    ];
    for (line, name, content) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let e = load_dataset(&path, &LoadOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("20.0 MiB") && msg.contains("limit"),
            "{name}: {msg}"
        );
        assert_eq!(e.loc().and_then(|l| l.line), Some(line), "{name}: {msg}");
        let ds = load_dataset(
            &path,
            &LoadOptions {
                skip_invalid: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((ds.report.valid, ds.report.invalid), (2, 1), "{name}");
        // A raised limit reads it.
        let opts = LoadOptions {
            max_record_bytes: 32 << 20,
            ..Default::default()
        };
        let ds = load_dataset(&path, &opts).unwrap();
        assert_eq!(ds.pairs()[1].chosen.len(), 20 << 20, "{name}");
    }
}

#[test]
fn preview_and_row_counts() {
    let p = preview(&fixture("good/pairs.parquet"), 2).unwrap();
    assert_eq!(p.columns, vec!["prompt", "chosen", "rejected", "score"]);
    assert_eq!(p.rows.len(), 2);
    assert!(p.more);
    assert_eq!(p.rows[1].cells.as_ref().unwrap()[3].as_deref(), Some("0.5"));
    assert_eq!(count_rows(&fixture("good/pairs.parquet")).unwrap(), 7);
    let r = preview_range(&fixture("good/pairs.parquet"), &p.columns, 3, 10).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].loc, Loc::row(4));
    assert_eq!(r[0].cells.as_ref().unwrap()[2], None, "null cell");
    assert_eq!(
        r[3].cells.as_ref().unwrap()[1].as_deref(),
        Some("good answer 6")
    );

    let p = preview(&fixture("good/ultrafeedback.json"), 10).unwrap();
    assert!(!p.more);
    assert_eq!(p.rows.len(), 3);
    let chosen = p.columns.iter().position(|c| c == "chosen").unwrap();
    assert_eq!(
        p.rows[0].cells.as_ref().unwrap()[chosen].as_deref(),
        Some("user: Write a haiku about rain\nassistant: Soft rain on the roof")
    );
    assert_eq!(count_rows(&fixture("good/pairs.csv")).unwrap(), 3);
    let r = preview_range(&fixture("good/pairs.jsonl"), &["chosen".into()], 1, 1).unwrap();
    assert_eq!(
        r[0].cells.as_ref().unwrap()[0].as_deref(),
        Some("¡Hola! 👋")
    );
    // Invalid rows show their error in place.
    let p = preview(&fixture("bad/not_object.jsonl"), 5).unwrap();
    assert!(p.rows[1]
        .cells
        .as_ref()
        .unwrap_err()
        .contains("expected a JSON object"));
    assert_eq!(count_rows(&fixture("bad/not_object.jsonl")).unwrap(), 3);
    assert!(preview(&fixture("bad/truncated.parquet"), 5).is_err());
}

#[test]
fn records_round_trip_through_native_jsonl_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    for src in [
        "good/judgements.jsonl",
        "good/ultrafeedback.json",
        "good/ab_items.json",
        "good/feedback.tsv",
        "good/hh_rlhf.jsonl",
    ] {
        let ds = load(src);
        let out = dir.path().join("out.jsonl");
        write_jsonl(&out, &ds.records).unwrap();
        assert!(!dir.path().join("out.jsonl.tmp").exists());
        let back = load_dataset(&out, &LoadOptions::default()).unwrap();
        assert_eq!(back.records, ds.records, "{src} via JSONL");
        let out = dir.path().join("out.csv");
        write_csv(&out, &ds.records).unwrap();
        let back = load_dataset(&out, &LoadOptions::default()).unwrap();
        assert_eq!(back.records, ds.records, "{src} via CSV");
    }
    let prompts = vec![Record::Prompt(PromptItem {
        id: "x".into(),
        prompt: Prompt::Text("p".into()),
        category: Some("c".into()),
    })];
    let out = dir.path().join("p.jsonl");
    write_jsonl(&out, &prompts).unwrap();
    let back = load_dataset(&out, &LoadOptions::default()).unwrap();
    assert_eq!(back.report.layout, Layout::Prompts);
    assert_eq!(back.records, prompts);
}

/// The row index reads any window of rows of every format, invalid rows included, and agrees
/// with a plain sequential read.
#[test]
fn row_index_gives_random_access() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("many.jsonl");
    let mut s = String::new();
    for i in 0..3000 {
        if i == 1234 {
            s += "not json\n\n";
        }
        s +=
            &format!("{{\"prompt\": \"p{i}\", \"chosen\": \"line\\n{i}\", \"rejected\": \"r\"}}\n");
    }
    std::fs::write(&big, s).unwrap();
    let files = [
        big.clone(),
        fixture("good/pairs.csv"),
        fixture("good/ultrafeedback.json"),
        fixture("good/pairs.parquet"),
        fixture("good/feedback.tsv"),
        fixture("bad/field_count.csv"),
    ];
    for path in files {
        let idx = RowIndex::build(&path, &steerlab::jobs::NoProgress).unwrap();
        let all = preview_range(&path, idx.columns(), 0, usize::MAX).unwrap();
        assert_eq!(idx.len(), all.len() as u64, "{}", path.display());
        assert_eq!(idx.len(), count_rows(&path).unwrap());
        for start in [0, 1, idx.len() / 2, idx.len().saturating_sub(2)] {
            let got = idx.rows(start, 3).unwrap();
            let want: Vec<_> = all.iter().skip(start as usize).take(3).cloned().collect();
            assert_eq!(got, want, "{} from row {start}", path.display());
        }
        assert!(idx.rows(idx.len(), 3).unwrap().is_empty());
    }
    let idx = RowIndex::build(&big, &steerlab::jobs::NoProgress).unwrap();
    let r = idx.rows(1234, 2).unwrap();
    assert_eq!(r[0].loc, Loc::line(1235, 1235));
    assert!(r[0].cells.is_err());
    assert_eq!(r[1].loc, Loc::line(1236, 1237));
    let chosen = idx.columns().iter().position(|c| c == "chosen").unwrap();
    assert_eq!(
        r[1].cells.as_ref().unwrap()[chosen].as_deref(),
        Some("line\n1234")
    );
}
