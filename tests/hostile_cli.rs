//! Hostile inputs against the release binary (issue 17): outputs that are devices, missing
//! folders or the same file twice; non-finite numbers; unbounded sizes; incomplete SAE folders;
//! FIFOs as vectors. Every case must fail fast with exit 1 and a message naming the flag or file,
//! leave no temporary file behind, and never touch what it refused to replace. No model needed:
//! every check runs before a model is loaded.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use steerlab::steer::{SteeringVector, VectorMeta};

fn steerlab(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args(args)
        .env("STEERLAB_HOME", "/nonexistent-steerlab-home")
        .output()
        .expect("run steerlab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn vector(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("v.safetensors");
    let v = SteeringVector::new(
        BTreeMap::from([(1usize, vec![0.5f32, -1.0, 2.0, 0.25])]),
        VectorMeta::new("caa", "tiny", 4),
    )
    .unwrap();
    v.save(&p).unwrap();
    p
}

fn pairs(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("pairs.jsonl");
    let mut t = String::new();
    for i in 0..6 {
        t.push_str(&format!(
            "{{\"id\":\"p{i}\",\"prompt\":\"q{i}\",\"chosen\":\"good {i}\",\"rejected\":\"bad {i}\"}}\n"
        ));
    }
    std::fs::write(&p, t).unwrap();
    p
}

fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn export_never_replaces_a_device_or_folder() {
    let d = tempfile::tempdir().unwrap();
    let v = vector(d.path());
    let (rc, msg) = steerlab(&["steer", "export", "--vector", s(&v), "--out", "/dev/null"]);
    assert_eq!(rc, 1, "{msg}");
    assert!(
        msg.contains("--out /dev/null") && msg.contains("character device"),
        "{msg}"
    );
    let (rc, msg) = steerlab(&["steer", "export", "--vector", s(&v), "--out", s(d.path())]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("a directory"), "{msg}");
    let (rc, msg) = steerlab(&["steer", "export", "--vector", s(&v), "--out", s(&v)]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("is the input --vector"), "{msg}");
    let out = d.path().join("v.gguf");
    let (rc, msg) = steerlab(&["steer", "export", "--vector", s(&v), "--out", s(&out)]);
    assert_eq!(rc, 0, "{msg}");
    assert!(out.is_file());
    assert!(
        hidden_files(d.path()).is_empty(),
        "{:?}",
        hidden_files(d.path())
    );
}

#[test]
fn outputs_are_checked_before_the_work_starts() {
    let d = tempfile::tempdir().unwrap();
    let data = pairs(d.path());
    let missing = d.path().join("no-such-dir").join("v.safetensors");
    // The model does not exist either: the output check must come first.
    let (rc, msg) = steerlab(&[
        "steer",
        "train",
        "--method",
        "caa",
        "--data",
        s(&data),
        "--out",
        s(&missing),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(
        msg.contains("--out") && msg.contains("does not exist"),
        "{msg}"
    );
    let (rc, msg) = steerlab(&["sae", "run", "--data", s(&data), "--out", s(&data)]);
    assert_eq!(rc, 1, "{msg}");
    assert!(
        msg.contains("--out") && msg.contains("not a folder"),
        "{msg}"
    );
    let (rc, msg) = steerlab(&["dissect", "--data", s(&data), "--out", s(&data)]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("not a folder"), "{msg}");
}

#[test]
fn split_refuses_one_file_for_two_outputs() {
    let d = tempfile::tempdir().unwrap();
    let data = pairs(d.path());
    let before = std::fs::read(&data).unwrap();
    let same = d.path().join("out.jsonl");
    let (rc, msg) = steerlab(&[
        "data",
        "split",
        s(&data),
        "--out-train",
        s(&same),
        "--out-test",
        &format!("{}/./out.jsonl", s(d.path())),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("same file"), "{msg}");
    assert!(!same.exists());
    let other = d.path().join("test.jsonl");
    let (rc, msg) = steerlab(&[
        "data",
        "split",
        s(&data),
        "--out-train",
        s(&data),
        "--out-test",
        s(&other),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("is the input file"), "{msg}");
    assert_eq!(std::fs::read(&data).unwrap(), before);
    let (rc, msg) = steerlab(&["data", "check", s(&data), "--limit", "0"]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("--limit 0") && !msg.contains("empty"), "{msg}");
}

#[test]
fn numbers_are_validated_where_they_enter() {
    let d = tempfile::tempdir().unwrap();
    let v = vector(d.path());
    let data = pairs(d.path());
    for m in ["nan", "inf", "1e309"] {
        let (rc, msg) = steerlab(&[
            "steer",
            "eval",
            "--data",
            s(&data),
            "--vectors",
            s(&v),
            "--multipliers",
            m,
        ]);
        assert_eq!(rc, 1, "{m}: {msg}");
        assert!(
            msg.contains("--multipliers") && msg.contains("finite"),
            "{msg}"
        );
    }
    let spec = format!("{}:nan", s(&v));
    let (rc, msg) = steerlab(&["generate", "--prompt", "hi", "--steer", &spec]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("--steer") && msg.contains("finite"), "{msg}");
    for (flag, val) in [
        ("--temperature", "-1"),
        ("--top-p", "nan"),
        ("--top-p", "2"),
    ] {
        let arg = format!("{flag}={val}");
        let (rc, msg) = steerlab(&["generate", "--prompt", "hi", &arg]);
        assert_eq!(rc, 1, "{msg}");
        assert!(msg.contains(flag), "{msg}");
    }
    let (rc, msg) = steerlab(&[
        "sae",
        "run",
        "--data",
        s(&data),
        "--lr",
        "1e30",
        "--out",
        s(&d.path().join("sae")),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("learning rate"), "{msg}");
    let (rc, msg) = steerlab(&[
        "sae",
        "run",
        "--data",
        s(&data),
        "--latents",
        "0",
        "--out",
        s(&d.path().join("sae")),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(
        msg.contains("latents") && !msg.contains("prefixes"),
        "{msg}"
    );
    assert!(!d.path().join("sae").exists());
}

#[test]
fn sizes_have_documented_limits() {
    let d = tempfile::tempdir().unwrap();
    let data = pairs(d.path());
    let out = d.path().join("synth.jsonl");
    let (rc, msg) = steerlab(&["data", "synth", "--out", s(&out), "--n", "100000000000"]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("--n") && msg.contains("Limits"), "{msg}");
    for (flag, val) in [("--chains", "100000"), ("--draws", "100000000")] {
        let (rc, msg) = steerlab(&[
            "dissect",
            "--data",
            s(&data),
            flag,
            val,
            "--out",
            s(&d.path().join("r")),
        ]);
        assert_eq!(rc, 1, "{msg}");
        assert!(msg.contains(flag) && msg.contains("Limits"), "{msg}");
    }
    let (rc, msg) = steerlab(&[
        "sae",
        "run",
        "--data",
        s(&data),
        "--latents",
        "10000000",
        "--out",
        s(&d.path().join("sae")),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("latents"), "{msg}");
}

#[test]
fn an_incomplete_sae_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let sae = d.path().join("sae");
    std::fs::create_dir(&sae).unwrap();
    // What an interrupted run into an existing folder leaves: activations, no report.json.
    let acts = steerlab::sae::embed::f32_safetensors(
        &[("activations", &[1.0f32, 2.0], vec![1, 2])],
        Some([("pair_ids".to_string(), "[\"p0\"]".to_string())].into()),
    )
    .unwrap();
    std::fs::write(sae.join("activations.safetensors"), acts).unwrap();
    let data = d.path().join("j.jsonl");
    std::fs::write(
        &data,
        "{\"id\":\"p0\",\"prompt\":\"q\",\"response_a\":\"a\",\"response_b\":\"b\",\"winner\":\"A\"}\n",
    )
    .unwrap();
    let err = steerlab::dissect::sources::SaeFactors::load("sae", &sae, &[])
        .err()
        .expect("refused");
    assert!(err.to_string().contains("incomplete"), "{err}");
    let spec = format!("sae:{}", s(&sae));
    let (rc, msg) = steerlab(&[
        "dissect",
        "--data",
        s(&data),
        "--factors",
        &spec,
        "--out",
        s(&d.path().join("r")),
    ]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("incomplete"), "{msg}");
}

#[cfg(unix)]
#[test]
fn a_fifo_vector_is_refused_up_front() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("v.safetensors");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = d.path().join("v.gguf");
    // Would block forever if the FIFO were opened.
    let (rc, msg) = steerlab(&["steer", "export", "--vector", s(&fifo), "--out", s(&out)]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("FIFO"), "{msg}");
    let spec = format!("{}:2", s(&fifo));
    let (rc, msg) = steerlab(&["generate", "--prompt", "hi", "--steer", &spec]);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("--steer") && msg.contains("FIFO"), "{msg}");
}
