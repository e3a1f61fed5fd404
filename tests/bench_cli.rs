//! The benchmark harness from the command line (`steerlab bench forward|bipo|sae|dissect
//! --json`), as BENCHMARKS.md runs it, on tiny inputs: each prints one JSON object with the
//! documented keys, and the numbers it reports are consistent with what is known independently
//! (BiPO's first step starts at loss ln 2 with the vector at zero; the gradient is the same with
//! every gradient-ops setting; NUTS and the Laplace approximation agree on the posterior means).
//! Speed itself is never asserted.
use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run steerlab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "steerlab bench {args:?} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("no output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing or not a number in {v}"))
}

const TINY: [&str; 8] = [
    "--random",
    "llama:tiny",
    "--batch",
    "2",
    "--seq",
    "16",
    "--iters",
    "2",
];

#[test]
fn forward_reports_throughput_and_memory() {
    let v = bench(&[&["forward"][..], &TINY[..]].concat());
    assert_eq!(v["bench"], "forward");
    assert!(num(&v, "tokens_per_s") > 0.0);
    assert!(num(&v, "peak_rss_mb") > 0.0);
    let ms = num(&v, "ms_per_iter");
    // tokens/s is batch × seq over the time of one iteration.
    let want = 2.0 * 16.0 / (ms / 1e3);
    assert!((num(&v, "tokens_per_s") - want).abs() <= 1e-6 * want.max(1.0));
}

#[test]
fn bipo_first_step_is_ln2_and_gradients_agree_across_grad_ops() {
    let run = |ops: &str| bench(&[&["bipo"][..], &TINY[..], &["--grad-ops", ops]].concat());
    let block = run("block");
    let composed = run("composed");
    for v in [&block, &composed] {
        assert_eq!(v["bench"], "bipo");
        // With the vector at zero the policy equals the reference: -log sigmoid(0) = ln 2.
        assert!((num(v, "first_loss") - std::f64::consts::LN_2).abs() < 1e-6);
        assert!(num(v, "ms_per_step") > 0.0 && num(v, "peak_rss_mb") > 0.0);
    }
    let (gb, gc) = (
        num(&block, "first_grad_norm"),
        num(&composed, "first_grad_norm"),
    );
    assert!(gb > 0.0 && gb.is_finite());
    assert!(
        (gb - gc).abs() <= 1e-4 * gc,
        "grad norm {gb} vs composed {gc}"
    );
    assert!(num(&block, "graph_nodes") < num(&composed, "graph_nodes"));
}

#[test]
fn sae_reports_samples_per_second() {
    let v = bench(&[
        "sae",
        "--n",
        "200",
        "--dim",
        "16",
        "--latents",
        "8",
        "--k",
        "2",
        "--epochs",
        "2",
    ]);
    assert_eq!(v["bench"], "sae");
    assert_eq!(num(&v, "n"), 200.0);
    assert!(num(&v, "samples_per_s") > 0.0 && num(&v, "seconds") > 0.0);
}

#[test]
fn dissect_nuts_and_laplace_agree_on_the_posterior_means() {
    let run = |s: &str| {
        bench(&[
            "dissect",
            "--pairs",
            "300",
            "--factors",
            "3",
            "--sampler",
            s,
        ])
    };
    let (nuts, laplace) = (run("nuts"), run("laplace"));
    let means = |v: &Value| -> Vec<f64> {
        v["mean"]
            .as_array()
            .expect("mean")
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (means(&nuts), means(&laplace));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 0.1, "NUTS {a:?} vs Laplace {b:?}");
    }
    assert!(num(&nuts, "s_per_fit") > 0.0);
}
