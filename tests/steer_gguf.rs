//! GGUF control vectors checked by an independent reader/writer: llama.cpp's Python `gguf`
//! package via `scripts/check_gguf_vector.py`, run by the Python that `scripts/pyenv.sh` makes
//! on first use in the steerlab cache (only Python 3 itself must be installed).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use steerlab::steer::gguf::{export_control_vector, import_control_vector};
use steerlab::steer::{SteeringVector, VectorMeta};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("check_gguf_vector.py")
}

/// The interpreter with `gguf` installed (`scripts/pyenv.sh` creates it once, then reuses it).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyenv.sh"))
            .output()
            .expect("bash must be installed to prepare the Python readers");
        assert!(
            out.status.success(),
            "scripts/pyenv.sh could not prepare the Python readers:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn run_script(args: &[&Path], mode: &str) {
    let out = Command::new(python())
        .arg(script())
        .arg(mode)
        .args(args)
        .output()
        .expect("the Python from scripts/pyenv.sh could not be started");
    assert!(
        out.status.success(),
        "check_gguf_vector.py {mode} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spec_json(hint: &str, layers: &BTreeMap<usize, Vec<f32>>) -> String {
    let dirs: serde_json::Map<String, serde_json::Value> = layers
        .iter()
        .map(|(l, d)| (l.to_string(), serde_json::json!(d)))
        .collect();
    serde_json::json!({"model_hint": hint, "directions": dirs}).to_string()
}

#[test]
fn exported_gguf_is_read_by_the_python_gguf_package() {
    let dir = tempfile::tempdir().unwrap();
    let mut layers = BTreeMap::new();
    // width 7 (not a multiple of 8 floats): exercises alignment padding between tensors
    for l in [1usize, 14, 29] {
        layers.insert(
            l,
            (0..7)
                .map(|i| ((l * 7 + i) as f32 * 0.37).sin())
                .collect::<Vec<f32>>(),
        );
    }
    let v = SteeringVector::new(layers.clone(), VectorMeta::new("bipo", "tiny", 7)).unwrap();
    let gguf_path = dir.path().join("v.gguf");
    export_control_vector(&v, "llama", &gguf_path).unwrap();
    let spec = dir.path().join("expected.json");
    std::fs::write(&spec, spec_json("llama", &layers)).unwrap();
    run_script(&[&gguf_path, &spec], "check");

    // The checker must be able to fail: a wrong expectation is reported.
    let mut wrong = layers.clone();
    wrong.get_mut(&14).unwrap()[3] += 0.5;
    std::fs::write(&spec, spec_json("llama", &wrong)).unwrap();
    let out = Command::new(python())
        .arg(script())
        .arg("check")
        .arg(&gguf_path)
        .arg(&spec)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the checker accepted wrong values");
}

#[test]
fn repeng_style_gguf_written_by_python_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let mut layers = BTreeMap::new();
    for l in [2usize, 5, 9] {
        layers.insert(
            l,
            (0..12)
                .map(|i| (i as f32 - 6.0) * 0.25 + l as f32)
                .collect::<Vec<f32>>(),
        );
    }
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, spec_json("mistral", &layers)).unwrap();
    let gguf_path = dir.path().join("repeng.gguf");
    run_script(&[&gguf_path, &spec], "write");
    let v = import_control_vector(&gguf_path).unwrap();
    assert_eq!(v.layers, layers);
    assert_eq!(v.meta.model, "mistral");
    assert_eq!(v.meta.method, "import");
    assert_eq!(v.hidden_size(), 12);
    let msg = v.check_width(576).unwrap_err().to_string();
    assert!(
        msg.contains("repeng.gguf") && msg.contains("12") && msg.contains("576"),
        "{msg}"
    );
}
