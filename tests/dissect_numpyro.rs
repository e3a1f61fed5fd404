//! Our NUTS and MAP + Laplace posterior means against NumPyro NUTS on the same planted data
//! (fixture and reference from `scripts/numpyro_check.py`): within 0.05 for every weight.
use serde::Deserialize;
use steerlab::dissect::laplace;
use steerlab::dissect::nuts::{self, NutsConfig};
use steerlab::dissect::posterior::Posterior;

#[derive(Deserialize)]
struct Fixture {
    #[serde(rename = "X")]
    x: Vec<Vec<f64>>,
    y: Vec<u8>,
    prior_scales: Vec<f64>,
}

#[derive(Deserialize)]
struct Reference {
    fits: Vec<RefFit>,
}

#[derive(Deserialize)]
struct RefFit {
    prior_scale: f64,
    mean: Vec<f64>,
    sd: Vec<f64>,
    lo95: Vec<f64>,
    hi95: Vec<f64>,
}

fn load() -> (Fixture, Reference) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dissect/");
    let fx: Fixture =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}nuts_fixture.json")).unwrap())
            .unwrap();
    let rf: Reference = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}numpyro_posterior.json")).unwrap(),
    )
    .unwrap();
    (fx, rf)
}

fn posterior(fx: &Fixture, b: f64) -> Posterior {
    let y: Vec<bool> = fx.y.iter().map(|&v| v == 1).collect();
    Posterior::new(&fx.x, &y, fx.x[0].len(), b)
}

#[test]
fn nuts_means_match_numpyro() {
    let (fx, rf) = load();
    assert_eq!(fx.prior_scales.len(), rf.fits.len());
    for r in &rf.fits {
        let post = posterior(&fx, r.prior_scale);
        let out = nuts::sample(
            &post,
            &NutsConfig {
                seed: 11,
                ..NutsConfig::default()
            },
            &|_| {},
            &|| false,
        )
        .unwrap();
        assert_eq!(out.draws.len(), 4);
        assert_eq!(out.draws[0].len(), 2000);
        for j in 0..post.dim() {
            let chains: Vec<Vec<f64>> = out
                .draws
                .iter()
                .map(|c| c.iter().map(|d| d[j]).collect())
                .collect();
            let flat: Vec<f64> = chains.iter().flatten().copied().collect();
            let (m, sd) = steerlab::numeric::mean_sd(&flat);
            let lo = steerlab::numeric::quantile(&flat, 0.025);
            let hi = steerlab::numeric::quantile(&flat, 0.975);
            println!(
                "b={} w{j}: ours {m:.4} sd {sd:.4} [{lo:.3},{hi:.3}]  numpyro {:.4} sd {:.4} [{:.3},{:.3}]",
                r.prior_scale, r.mean[j], r.sd[j], r.lo95[j], r.hi95[j]
            );
            assert!(
                (m - r.mean[j]).abs() < 0.05,
                "b={} weight {j}: {m} vs {}",
                r.prior_scale,
                r.mean[j]
            );
            assert!(
                (sd - r.sd[j]).abs() < 0.2 * r.sd[j],
                "sd {j}: {sd} vs {}",
                r.sd[j]
            );
            assert!((lo - r.lo95[j]).abs() < 0.05 && (hi - r.hi95[j]).abs() < 0.05);
            let rhat = steerlab::dissect::diagnostics::split_rhat(&chains);
            assert!(rhat < 1.01, "rhat {rhat}");
            assert!(steerlab::dissect::diagnostics::ess(&chains) > 1000.0);
        }
        assert_eq!(out.divergences, 0);
    }
}

#[test]
fn laplace_means_match_numpyro() {
    let (fx, rf) = load();
    for r in &rf.fits {
        let post = posterior(&fx, r.prior_scale);
        let f = laplace::fit(&post).unwrap();
        for j in 0..post.dim() {
            println!(
                "b={} w{j}: laplace {:.4} (map {:.4}) sd {:.4}  numpyro {:.4} sd {:.4}",
                r.prior_scale, f.mean[j], f.map[j], f.sd[j], r.mean[j], r.sd[j]
            );
            assert!(
                (f.mean[j] - r.mean[j]).abs() < 0.05,
                "b={} weight {j}: {} vs {}",
                r.prior_scale,
                f.mean[j],
                r.mean[j]
            );
            assert!(
                (f.sd[j] - r.sd[j]).abs() < 0.25 * r.sd[j],
                "sd {j}: {} vs {}",
                f.sd[j],
                r.sd[j]
            );
        }
    }
}
