//! Faults against the release binary (issue 17): a write that fails midway (the file-size limit
//! of a child shell, as a full disk does) leaves neither a temporary file nor an incomplete
//! output, and keeps an existing output intact; SIGINT during `steer train` saves the last good
//! vector, says where and exits non-zero; a second signal quits at once with status 130.
#![cfg(unix)]
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use steerlab::steer::{SteeringVector, VectorMeta};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs steerlab under `ulimit -f` (512-byte blocks) with SIGXFSZ ignored, so a write past the
/// limit fails with EFBIG as on a full disk.
fn steerlab_limited(blocks: u32, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .env("STEERLAB_HOME", "/nonexistent-steerlab-home");
    let out = cmd.output().expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_write_that_fails_midway_leaves_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let v = d.path().join("v.safetensors");
    // 3 layers × 4096 floats: 48 KiB of tensor data, far past the 8 KiB limit below.
    let layers: BTreeMap<usize, Vec<f32>> = (1..4)
        .map(|l| (l, (0..4096).map(|i| (i % 7) as f32 - 3.0).collect()))
        .collect();
    SteeringVector::new(layers, VectorMeta::new("caa", "tiny", 4096))
        .unwrap()
        .save(&v)
        .unwrap();
    let before = files_in(d.path());

    // A new output: nothing appears.
    let out = d.path().join("v.gguf");
    let (rc, msg) = steerlab_limited(
        16,
        &["steer", "export", "--vector", s(&v), "--out", s(&out)],
    );
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("v.gguf"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert_eq!(files_in(d.path()), before, "{msg}");

    // An existing output: kept byte for byte.
    std::fs::write(&out, b"previous export").unwrap();
    let (rc, msg) = steerlab_limited(
        16,
        &["steer", "export", "--vector", s(&v), "--out", s(&out)],
    );
    assert_eq!(rc, 1, "{msg}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous export");
    let mut want = before.clone();
    want.push("v.gguf".into());
    want.sort();
    assert_eq!(files_in(d.path()), want);

    // A dataset written by `data synth`: the same.
    let synth = d.path().join("synth.jsonl");
    let (rc, msg) = steerlab_limited(16, &["data", "synth", "--out", s(&synth), "--n", "2000"]);
    assert_eq!(rc, 1, "{msg}");
    assert!(!synth.exists(), "{msg}");
    assert_eq!(files_in(d.path()), want);

    // Without the limit the same commands succeed (the limit, not the input, made them fail).
    let (rc, msg) = steerlab_limited(
        1 << 20,
        &["steer", "export", "--vector", s(&v), "--out", s(&out)],
    );
    assert_eq!(rc, 0, "{msg}");
    assert_eq!(SteeringVector::load_any(&out).unwrap().hidden_size(), 4096);
}

fn training_setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    steerlab::testing::write_tiny_llama(&model, 2, 5);
    let pairs = dir.join("pairs.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        lines +=
            &serde_json::json!({"id": format!("p{i}"), "prompt": format!("tell me about item {i}"),
            "chosen": "yes it is good", "rejected": "no it is bad"})
            .to_string();
        lines.push('\n');
    }
    std::fs::write(&pairs, lines).unwrap();
    (model, pairs)
}

/// Starts `steer train` (BiPO, effectively endless) and returns it once a training step has
/// reported a loss; `lines` receives the rest of its stderr.
fn start_training(
    model: &Path,
    pairs: &Path,
    out: &Path,
) -> (std::process::Child, mpsc::Receiver<String>, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args([
            "steer",
            "train",
            "--model",
            s(model),
            "--data",
            s(pairs),
            "--method",
            "bipo",
            "--layers",
            "1",
            "--epochs",
            "100000",
            "--batch-size",
            "2",
            "--out",
            s(out),
        ])
        .env("STEERLAB_HOME", "/nonexistent-steerlab-home")
        .env("STEERLAB_PROGRESS_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        // Generous: only a bound against a broken binary, not a speed assertion.
        let Ok(line) = rx.recv_timeout(Duration::from_secs(300)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no training progress: {seen:?}");
        };
        let training = line.starts_with("progress:") && line.contains("loss=");
        seen.push(line);
        if training {
            return (child, rx, seen);
        }
    }
}

fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

#[test]
fn sigint_during_training_saves_the_last_good_vector() {
    let d = tempfile::tempdir().unwrap();
    let (model, pairs) = training_setup(d.path());
    let out = d.path().join("v.safetensors");
    let (mut child, rx, mut seen) = start_training(&model, &pairs, &out);
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(l);
    }
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("interrupted after") && text.contains(s(&out)),
        "{text}"
    );
    let v = SteeringVector::load(&out).unwrap();
    assert_eq!(v.meta.layers, vec![1]);
    assert!(v.norms()[&1].is_finite());
    // Only the vector: no temporary file beside it.
    let names = files_in(d.path());
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn a_second_signal_quits_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (model, pairs) = training_setup(d.path());
    let out = d.path().join("v.safetensors");
    let (mut child, rx, mut seen) = start_training(&model, &pairs, &out);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(l);
    }
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("quitting without saving"), "{text}");
}
