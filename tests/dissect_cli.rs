//! `steerlab dissect` end to end: reads judgements through the data layer, writes
//! report.json/md/html, prints JSON with `--json`, and reports bad input with file, line and field.
use std::process::Command;

fn write_data(path: &std::path::Path) {
    let mut lines = Vec::new();
    for i in 0..120 {
        let judge = if i % 2 == 0 { "human" } else { "model" };
        // A is polite in even-numbered thirds; the judge prefers politeness
        let polite_a = (i / 3) % 2;
        let winner = if (i * 7) % 10 < 8 {
            if polite_a == 1 {
                "a"
            } else {
                "b"
            }
        } else if polite_a == 1 {
            "b"
        } else {
            "a"
        };
        let winner = if i % 25 == 0 { "tie" } else { winner };
        lines.push(format!(
            r#"{{"id":"p{i}","prompt":"q{i}","response_a":"Sure! Here is a list:\n- one\n- two","response_b":"No.","winner":"{winner}","judge":"{judge}","factors_a":{{"polite":{polite_a},"length":{}}},"factors_b":{{"polite":{},"length":2.5}}}}"#,
            (i % 5) as f64 + 0.5,
            1 - polite_a
        ));
    }
    std::fs::write(path, lines.join("\n")).unwrap();
}

#[test]
fn cli_writes_reports_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("j.jsonl");
    write_data(&data);
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(["dissect", "--data"])
        .arg(&data)
        .args([
            "--by",
            "judge",
            "--sampler",
            "laplace",
            "--prior-scale",
            "1.0",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
    assert_eq!(v["settings"]["n_ties"], 5);
    let polite = v["groups"][0]["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "polite")
        .unwrap();
    assert!(polite["mean"].as_f64().unwrap() > 0.5, "{polite}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(file, v);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Kendall") && !html.contains("<script"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Group: judge=human") && md.contains("| polite |"));

    // computed factors + NUTS with a short run, human-readable summary
    let o = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(["dissect", "--data"])
        .arg(&data)
        .args([
            "--factors",
            "computed,polite",
            "--warmup",
            "100",
            "--draws",
            "100",
            "--chains",
            "2",
            "--out",
        ])
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("polite") && s.contains("list_items") && s.contains("rhat"),
        "{s}"
    );
    assert!(
        !s.contains("code_blocks"),
        "all-zero factors are dropped: {s}"
    );
}

#[test]
fn cli_reports_bad_records_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    std::fs::write(&data, "{\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"winner\":\"a\"}\n{\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"winner\":\"maybe\"}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(["dissect", "--data"])
        .arg(&data)
        .args(["--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bad.jsonl, line 2") && e.contains("winner") && e.contains("maybe"),
        "{e}"
    );
}
