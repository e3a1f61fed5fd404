//! `--model hf:ORG/NAME[@REVISION]` from a fake Hugging Face hub cache laid out like the real one
//! (`models--ORG--NAME/{refs,snapshots,blobs}`, snapshot files symlinked into `blobs/`) around
//! the tiny fixtures, and `--model smollm2`-style short names: resolution, loading (single and
//! sharded safetensors), and the errors a user sees.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use steerlab::model::load::hf_cache::{resolve_in, HfCacheError};
use steerlab::model::{Batch, Hooks, LoadOptions, Model};
use steerlab::testing::fixture;

const MAIN: &str = "0123456789abcdef0123456789abcdef01234567";
const OLD: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Stores `bytes` as a blob (named by a fake hash) and links `snapshot/name` to it.
fn add_file(repo: &Path, snapshot: &str, name: &str, bytes: &[u8]) {
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = format!("{:016x}{}", bytes.len(), name.replace(['.', '-'], ""));
    std::fs::write(blobs.join(&blob), bytes).unwrap();
    let snap = repo.join("snapshots").join(snapshot);
    std::fs::create_dir_all(&snap).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob), snap.join(name)).unwrap();
    #[cfg(not(unix))]
    std::fs::write(snap.join(name), bytes).unwrap();
}

fn set_ref(repo: &Path, name: &str, hash: &str) {
    let p = repo.join("refs").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, hash).unwrap();
}

/// A hub cache with `tiny/llama` (main = the llama fixture, tag `v1` and an older commit = the
/// qwen2 fixture sharded in two files with an index) and `tiny/gguf-only` (no config, one GGUF).
fn fake_cache() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    let repo = hub.join("models--tiny--llama");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        add_file(
            &repo,
            MAIN,
            f,
            &std::fs::read(fixture("llama").join(f)).unwrap(),
        );
    }
    set_ref(&repo, "main", MAIN);
    // The older commit: qwen2, sharded.
    add_file(
        &repo,
        OLD,
        "config.json",
        &std::fs::read(fixture("qwen2").join("config.json")).unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    steerlab::testing::write_sharded("qwen2", tmp.path());
    for file in steerlab::testing::SHARD_FILES {
        add_file(
            &repo,
            OLD,
            file,
            &std::fs::read(tmp.path().join(file)).unwrap(),
        );
    }
    set_ref(&repo, "v1", OLD);
    set_ref(&repo, "refs/pr/1", OLD);
    // A GGUF-only repository.
    let g = hub.join("models--tiny--gguf-only");
    add_file(&g, MAIN, "README.md", b"tiny");
    add_file(
        &g,
        MAIN,
        "tiny-q8_0.gguf",
        &std::fs::read(fixture_gguf()).unwrap(),
    );
    set_ref(&g, "main", MAIN);
    dir
}

fn fixture_gguf() -> PathBuf {
    steerlab::testing::fixture_path("gguf/tiny_llama.gguf")
}

fn logits(model: &Model) -> Vec<f32> {
    let b = Batch::from_sequences(&[vec![1, 2, 3, 50]], 0, &Device::Cpu).unwrap();
    let l = model.forward(&b, &mut Hooks::new()).unwrap();
    l.flatten_all().unwrap().to_vec1().unwrap()
}

fn load(p: &Path) -> Model {
    Model::load(p, &LoadOptions::default()).unwrap()
}

#[test]
fn refs_hashes_and_prefixes_resolve_to_snapshots() {
    let c = fake_cache();
    let hub = c.path().join("hub");
    let main = hub.join("models--tiny--llama/snapshots").join(MAIN);
    let old = hub.join("models--tiny--llama/snapshots").join(OLD);
    assert_eq!(resolve_in(&hub, "test", "tiny/llama").unwrap(), main);
    assert_eq!(resolve_in(&hub, "test", "tiny/llama@main").unwrap(), main);
    assert_eq!(resolve_in(&hub, "test", "tiny/llama@v1").unwrap(), old);
    assert_eq!(
        resolve_in(&hub, "test", "tiny/llama@refs/pr/1").unwrap(),
        old
    );
    assert_eq!(
        resolve_in(&hub, "test", &format!("tiny/llama@{OLD}")).unwrap(),
        old
    );
    assert_eq!(resolve_in(&hub, "test", "tiny/llama@fedcba9").unwrap(), old);
    // A GGUF-only snapshot resolves to its one .gguf file.
    assert_eq!(
        resolve_in(&hub, "test", "tiny/gguf-only").unwrap(),
        hub.join("models--tiny--gguf-only/snapshots")
            .join(MAIN)
            .join("tiny-q8_0.gguf")
    );
}

#[test]
fn cached_models_load_like_their_folders() {
    let c = fake_cache();
    let hub = c.path().join("hub");
    let m = load(&resolve_in(&hub, "test", "tiny/llama").unwrap());
    assert_eq!(m.name(), "tiny/llama@0123456");
    assert!(m.tokenizer().is_some(), "tokenizer.json through a symlink");
    assert_eq!(logits(&m), logits(&load(&fixture("llama"))));
    // The sharded revision (index + two shards, all symlinks).
    let q = load(&resolve_in(&hub, "test", "tiny/llama@v1").unwrap());
    assert_eq!(q.info().architecture, "qwen2");
    assert_eq!(logits(&q), logits(&load(&fixture("qwen2"))));
    let g = load(&resolve_in(&hub, "test", "tiny/gguf-only").unwrap());
    assert_eq!(logits(&g), logits(&load(&fixture_gguf())));
}

#[test]
fn errors_name_what_is_missing_and_list_what_is_cached() {
    let c = fake_cache();
    let hub = c.path().join("hub");
    let e = resolve_in(&c.path().join("nope"), "$HF_HOME/hub", "tiny/llama").unwrap_err();
    assert!(matches!(e, HfCacheError::NoCache { .. }), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("nope") && s.contains("$HF_HOME/hub") && s.contains("tiny/llama"),
        "{s}"
    );

    let s = resolve_in(&hub, "test", "tiny/absent")
        .unwrap_err()
        .to_string();
    assert!(
        s.contains("tiny/absent") && s.contains("tiny/gguf-only, tiny/llama"),
        "{s}"
    );

    let s = resolve_in(&hub, "test", "tiny/llama@v2")
        .unwrap_err()
        .to_string();
    assert!(
        s.contains("`v2`") && s.contains("main, refs/pr/1, v1") && s.contains(MAIN),
        "{s}"
    );
    // A ref pointing at a snapshot that is not there (interrupted download).
    set_ref(&hub.join("models--tiny--llama"), "broken", "aaaaaaaaaa");
    let s = resolve_in(&hub, "test", "tiny/llama@broken")
        .unwrap_err()
        .to_string();
    assert!(s.contains("`broken`"), "{s}");

    for bad in ["../../etc", "a/b/c", "tiny/llama@../x", ""] {
        let e = resolve_in(&hub, "test", bad).unwrap_err();
        assert!(matches!(e, HfCacheError::BadSpec { .. }), "{bad}: {e}");
    }

    // Two GGUF files and no config: ambiguous, both listed.
    let g = hub.join("models--tiny--gguf-only");
    add_file(&g, MAIN, "tiny-f16.gguf", b"x");
    let s = resolve_in(&hub, "test", "tiny/gguf-only")
        .unwrap_err()
        .to_string();
    assert!(
        s.contains("tiny-f16.gguf") && s.contains("tiny-q8_0.gguf"),
        "{s}"
    );
}

fn steerlab(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steerlab"));
    cmd.args(args)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn cli_reads_the_cache_from_hf_home_and_hf_hub_cache() {
    let c = fake_cache();
    let out = steerlab(
        &["info", "--model", "hf:tiny/llama@v1", "--json"],
        &[("HF_HOME", c.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "qwen2");
    assert_eq!(v["name"], "tiny/llama@fedcba9");

    let hub = c.path().join("hub");
    let out = steerlab(
        &[
            "generate",
            "--model",
            "hf:tiny/llama",
            "--prompt",
            "a b",
            "--max-new-tokens",
            "2",
        ],
        &[("HF_HUB_CACHE", &hub)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = steerlab(
        &["info", "--model", "hf:tiny/other"],
        &[("HF_HOME", c.path())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tiny/other") && err.contains("tiny/llama"),
        "{err}"
    );
}

#[test]
fn short_names_resolve_in_the_steerlab_cache_and_unknown_names_list_them() {
    let home = tempfile::tempdir().unwrap();
    // Not fetched yet: the message says how to fetch it.
    let out = steerlab(
        &["info", "--model", "smollm2"],
        &[("STEERLAB_HOME", home.path())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("smollm2") && err.contains("fetch-defaults.sh"),
        "{err}"
    );
    // Fetched (a stand-in file at the short name's place): loaded from there.
    std::fs::create_dir_all(home.path().join("models")).unwrap();
    std::fs::copy(
        fixture_gguf(),
        home.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    for name in ["smollm2", "SmolLM2"] {
        let out = steerlab(
            &["info", "--model", name, "--json"],
            &[("STEERLAB_HOME", home.path())],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], "tiny-llama-fixture");
    }
    // An unknown bare name lists the short names and the hf: form.
    let out = steerlab(
        &["info", "--model", "smollm3"],
        &[("STEERLAB_HOME", home.path())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("`smollm3`") && err.contains("smollm2") && err.contains("hf:ORG/NAME"),
        "{err}"
    );
    // A path still gets the loader's own message.
    let out = steerlab(
        &["info", "--model", "missing/model.gguf"],
        &[("STEERLAB_HOME", home.path())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing/model.gguf"),
        "{err}"
    );
}
