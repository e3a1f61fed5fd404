//! Set-up shared by the CLI tests (`mod cli;` in tests/steer_*.rs): running the release binary,
//! a tiny fixture model, and small pair / A/B files. Test scaffolding only; what a test checks
//! stays in its own file.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `steerlab ARGS`: (success, stdout, stderr).
pub fn steerlab(args: &[&str]) -> (bool, String, String) {
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

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Writes `n` preference pairs (`id` p0…, `prompt` "tell me about item i") whose chosen and
/// rejected answers `answers(i)` gives.
pub fn write_pairs(path: &Path, n: usize, answers: impl Fn(usize) -> (&'static str, &'static str)) {
    let mut lines = String::new();
    for i in 0..n {
        let (c, r) = answers(i);
        lines +=
            &serde_json::json!({"id": format!("p{i}"), "prompt": format!("tell me about item {i}"),
            "chosen": c, "rejected": r})
            .to_string();
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// Writes `n` A/B items (`id` a0…) whose matching answer is "it is good".
pub fn write_ab(path: &Path, n: usize) {
    let mut lines = String::new();
    for i in 0..n {
        lines +=
            &serde_json::json!({"id": format!("a{i}"), "question": format!("what about item {i}?"),
            "answer_matching_behavior": "it is good", "answer_not_matching_behavior": "it is bad"})
            .to_string();
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// A temporary folder with a tiny seeded Llama (3 blocks), a pair file and an A/B file.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub model: PathBuf,
    pub pairs: PathBuf,
    pub ab: PathBuf,
}

impl Fixture {
    /// `n_pairs` pairs with `answers(i)`, `n_ab` A/B items.
    pub fn new(
        n_pairs: usize,
        answers: impl Fn(usize) -> (&'static str, &'static str),
        n_ab: usize,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let model = root.join("model");
        std::fs::create_dir(&model).unwrap();
        steerlab::testing::write_tiny_llama(&model, 3, 5);
        let pairs = root.join("pairs.jsonl");
        write_pairs(&pairs, n_pairs, answers);
        let ab = root.join("ab.jsonl");
        write_ab(&ab, n_ab);
        Fixture {
            _dir: dir,
            root,
            model,
            pairs,
            ab,
        }
    }
}
