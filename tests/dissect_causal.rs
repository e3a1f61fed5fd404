//! `steerlab dissect causal` end to end on the tiny seeded Llama fixture with a planted judge:
//! a CAA vector per factor, steered generation at −m, 0, +m, the planted judge's choices and
//! the interventional fit. The planted length weight's sign is recovered (and flips when the
//! planted sign flips); the report set has the schema; bad input fails before work.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const FACTORS: [&str; 9] = [
    "length",
    "bullet_list",
    "headers",
    "code_block",
    "refusal",
    "empathy",
    "hedging",
    "question",
    "emoji",
];
const WORDS: [&str; 10] = [
    "rain", "bread", "train", "music", "map", "river", "stone", "light", "cloud", "paper",
];

fn steerlab(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama")
}

/// A deterministic pseudo-random stream (splitmix64), so the data does not depend on a crate.
struct Mix(u64);
impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    /// Short pairs (they fit the fixture's 128-token context) varying in length and lists,
    /// planted truth files with length weight ±40, and held-out prompts.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut r = Mix(3);
        let resp = |r: &mut Mix| {
            let n = 2 + r.next(15);
            let t: Vec<&str> = (0..n).map(|_| WORDS[r.next(10) as usize]).collect();
            let mut s = t.join(" ");
            if r.next(2) == 0 {
                s.push_str(&format!(
                    "\n- {}\n- {}",
                    WORDS[r.next(10) as usize],
                    WORDS[r.next(10) as usize]
                ));
            }
            s
        };
        let mut lines = String::new();
        for i in 0..160 {
            let (a, b) = (resp(&mut r), resp(&mut r));
            let row = serde_json::json!({
                "id": format!("p{i}"),
                "prompt": format!("Tell me about {}", WORDS[r.next(10) as usize]),
                "response_a": a, "response_b": b,
                "winner": if r.next(2) == 0 { "A" } else { "B" },
            });
            lines.push_str(&format!("{row}\n"));
        }
        std::fs::write(root.join("pairs.jsonl"), lines).unwrap();
        for (name, w) in [("pos", 40.0), ("neg", -40.0)] {
            let weights: serde_json::Map<String, Value> = FACTORS
                .iter()
                .map(|f| {
                    (
                        f.to_string(),
                        Value::from(if *f == "length" { w } else { 0.0 }),
                    )
                })
                .collect();
            let truth = serde_json::json!({"weights": {"judge": {"scenario": weights}}});
            std::fs::write(root.join(format!("{name}.truth.json")), truth.to_string()).unwrap();
        }
        let prompts: Vec<String> = (0..3)
            .flat_map(|i| {
                WORDS
                    .iter()
                    .map(move |w| format!("Say something about {w} {i}"))
            })
            .collect();
        std::fs::write(root.join("prompts.txt"), prompts.join("\n")).unwrap();
        Fixture { _dir: dir, root }
    }

    fn p(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    fn run(&self, truth: &str, out: &str, extra: &[&str]) -> (bool, String, String) {
        self.run_judge(&format!("planted:{}", self.p(truth)), out, extra)
    }

    fn run_judge(&self, judge: &str, out: &str, extra: &[&str]) -> (bool, String, String) {
        let judge = judge.to_string();
        let (m, data, prompts, out) = (
            model().display().to_string(),
            self.p("pairs.jsonl"),
            self.p("prompts.txt"),
            self.p(out),
        );
        let mut args = vec![
            "dissect",
            "causal",
            "--data",
            &data,
            "--factors",
            "length,bullet_list",
            "--judge",
            &judge,
            "--prompts",
            &prompts,
            "--max-prompts",
            "30",
            "--max-tokens",
            "32",
            "--model",
            &m,
            "--multiplier",
            "1",
            "--layer",
            "1",
            "--threshold",
            "0.05",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        steerlab(&args)
    }
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn planted_length_sign_is_recovered_and_the_report_set_has_the_schema() {
    let fx = Fixture::new();
    let (ok, out, err) = fx.run("pos.truth.json", "pos", &[]);
    assert!(ok, "{out}\n{err}");
    let r = report(&fx.root.join("pos"));
    let fs = r["factors"].as_array().unwrap();
    assert_eq!(fs.len(), 2);
    for f in fs {
        for k in ["mean", "lo95", "hi95"] {
            assert!(f["correlational"][k].is_f64(), "correlational.{k} in {f}");
        }
        assert!(f["name"].is_string() && f["steerability"].is_f64());
        assert!(
            f["steerable"].is_boolean() && f["moved_with"].is_array(),
            "{f}"
        );
        assert!(f.get("interventional").is_some(), "{f}");
    }
    let len = &fs[0];
    assert_eq!(len["name"], "length");
    assert_eq!(len["steerable"], true, "{len}");
    let i = &len["interventional"];
    assert!(i["lo95"].as_f64().unwrap() > 0.0, "planted +40: {i}");
    // The fixture never writes list lines: a factor the vector does not move gets no effect.
    let bl = &fs[1];
    assert_eq!(bl["steerable"], false, "{bl}");
    assert!(bl["interventional"].is_null(), "{bl}");
    for n in ["report.md", "report.html", "effects.svg", "answers.jsonl"] {
        let t = std::fs::read_to_string(fx.root.join("pos").join(n)).unwrap();
        assert!(!t.is_empty(), "{n}");
    }
    let html = std::fs::read_to_string(fx.root.join("pos/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("length"));
    // 30 prompts × 2 factors × (−m, 0, +m)
    let answers = std::fs::read_to_string(fx.root.join("pos/answers.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), 180);

    // Flip the planted sign: the recovered sign flips.
    let (ok, out, err) = fx.run("neg.truth.json", "neg", &[]);
    assert!(ok, "{out}\n{err}");
    let r = report(&fx.root.join("neg"));
    let i = &r["factors"][0]["interventional"];
    assert!(i["hi95"].as_f64().unwrap() < 0.0, "planted −40: {i}");
}

#[test]
fn a_model_judge_compares_steered_answers() {
    let fx = Fixture::new();
    // A judge model whose tokenizer has the answer letters (the generator's fixture has not).
    let jm = fx.root.join("judge_model");
    std::fs::create_dir(&jm).unwrap();
    steerlab::testing::write_tiny_llama(&jm, 2, 5);
    let judge = format!("model:{}", jm.display());
    let (ok, out, err) = fx.run_judge(&judge, "model", &[]);
    assert!(ok, "{out}\n{err}");
    let r = report(&fx.root.join("model"));
    assert_eq!(r["judge"], judge.as_str());
    // Same generation as with the planted judge, so length is steerable and gets an effect.
    let len = &r["factors"][0];
    assert_eq!(len["steerable"], true, "{len}");
    let i = &len["interventional"];
    let (lo, m, hi) = (
        i["lo95"].as_f64().unwrap(),
        i["mean"].as_f64().unwrap(),
        i["hi95"].as_f64().unwrap(),
    );
    assert!(lo < m && m < hi, "{i}");
    assert!(len.get("planted_weight").is_none(), "{len}");
}

#[test]
fn bad_input_fails_before_work_with_a_clear_message() {
    let fx = Fixture::new();
    std::fs::write(fx.root.join("empty.txt"), "\n  \n").unwrap();
    let (data, prompts, empty, out) = (
        fx.p("pairs.jsonl"),
        fx.p("prompts.txt"),
        fx.p("empty.txt"),
        fx.p("bad"),
    );
    let good_judge = format!("planted:{}", fx.p("pos.truth.json"));
    // (factors, judge, prompts, multiplier, expected text in the error)
    let cases = [
        (
            "length,verbosity",
            good_judge.as_str(),
            prompts.as_str(),
            "0.5",
            "verbosity",
        ),
        (
            "length",
            good_judge.as_str(),
            prompts.as_str(),
            "NaN",
            "--multiplier",
        ),
        (
            "length",
            good_judge.as_str(),
            empty.as_str(),
            "0.5",
            "holds no prompts",
        ),
        (
            "length",
            "planted:/nonexistent/x.truth.json",
            prompts.as_str(),
            "0.5",
            "/nonexistent/x.truth.json",
        ),
        (
            "length",
            "oracle",
            prompts.as_str(),
            "0.5",
            "planted:FILE.truth.json",
        ),
    ];
    for (factors, judge, p, m, needle) in cases {
        let (ok, _, err) = steerlab(&[
            "dissect",
            "causal",
            "--data",
            &data,
            "--factors",
            factors,
            "--judge",
            judge,
            "--prompts",
            p,
            "--multiplier",
            m,
            "--out",
            &out,
        ]);
        assert!(!ok, "{factors} {judge} {p} {m} should fail");
        assert!(err.contains(needle), "{needle}: {err}");
        // no model was loaded and nothing written
        assert!(!err.contains("steering"), "{err}");
        assert!(!fx.root.join("bad/report.json").exists());
    }
}
