//! `steerlab data ...` end to end: exit codes, listed rows, JSON output, written files.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(p: &str) -> PathBuf {
    steerlab::testing::fixture_path("data").join(p)
}

fn steerlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_exit_codes_and_listing() {
    let bad = fixture("bad/field_count.csv");
    let bad = bad.to_str().unwrap();
    let o = steerlab(&["data", "check", bad]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("line 3: the record has 2 fields")
            && t.contains("line 4:")
            && t.contains("--skip-invalid"),
        "{t}"
    );

    let o = steerlab(&["data", "check", bad, "--skip-invalid"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("line 4: the record has 4 fields"),
        "skipped rows are still listed"
    );

    let o = steerlab(&[
        "data",
        "check",
        fixture("good/arena.csv").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["layout"], "judgement");
    assert_eq!(v["format"], "csv");
    assert_eq!(v["valid"], 3);

    let o = steerlab(&[
        "data",
        "check",
        fixture("bad/unknown_layout.jsonl").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("columns found: bad, good, question"));

    let o = steerlab(&[
        "data",
        "check",
        fixture("good/needs_mapping.csv").to_str().unwrap(),
        "--map",
        "prompt=question,chosen=good,rejected=bad",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("layout:  pair"));
}

#[test]
fn synth_split_and_convert_write_files() {
    let dir = tempfile::tempdir().unwrap();
    let syn = dir.path().join("syn.jsonl");
    let o = steerlab(&[
        "data",
        "synth",
        "--out",
        syn.to_str().unwrap(),
        "--n",
        "200",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        dir.path().join("syn.truth.json").exists() && dir.path().join("syn.pairs.jsonl").exists()
    );
    let (tr, te) = (
        dir.path().join("train.jsonl"),
        dir.path().join("test.jsonl"),
    );
    let o = steerlab(&[
        "data",
        "split",
        syn.to_str().unwrap(),
        "--test",
        "0.25",
        "--seed",
        "1",
        "--by-prompt",
        "--out-train",
        tr.to_str().unwrap(),
        "--out-test",
        te.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&tr) + lines(&te), 200);
    assert!(lines(&te) >= 50);
    let csv = dir.path().join("pairs.csv");
    let o = steerlab(&[
        "data",
        "convert",
        fixture("good/hh_rlhf.jsonl").to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = steerlab(&["data", "check", csv.to_str().unwrap()]);
    assert!(
        o.status.success() && text(&o).contains("valid:   2"),
        "{}",
        text(&o)
    );
}
