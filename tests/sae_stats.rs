//! Expressed-preference statistics recover planted coefficients: logistic IRLS (estimates and
//! Wald intervals), the LASSO entry order with an unpenalised confounder, and penalised fits.
#![allow(clippy::needless_range_loop)] // index loops over several parallel arrays read clearer
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use steerlab::sae::stats::{auc, lasso_entry_order, logistic_irls, logistic_penalised};

fn sample(n: usize, cols: usize, coef: &[f64], b0: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * cols);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..cols).map(|_| StandardNormal.sample(&mut rng)).collect();
        let eta = b0 + row.iter().zip(coef).map(|(a, b)| a * b).sum::<f64>();
        y.push(if rng.random::<f64>() < 1.0 / (1.0 + (-eta).exp()) {
            1.0
        } else {
            0.0
        });
        x.extend(row);
    }
    (x, y)
}

#[test]
fn irls_recovers_planted_coefficients_within_their_intervals() {
    let coef = [1.0, -0.5, 0.0];
    let (x, y) = sample(5000, 3, &coef, 0.3, 11);
    let fit = logistic_irls(&x, 3, &y, true).unwrap();
    assert!(fit.converged);
    let truth = [0.3, 1.0, -0.5, 0.0];
    for i in 0..4 {
        let (lo, hi) = fit.ci95(i);
        assert!((hi - lo - 2.0 * 1.959_964 * fit.se[i]).abs() < 1e-12);
        // 4 SE margin: fails only if the estimator is biased or the SEs are wrong.
        assert!(
            (fit.coef[i] - truth[i]).abs() < 4.0 * fit.se[i],
            "coef {i}: {fit:?}"
        );
        assert!(
            fit.se[i] > 0.02 && fit.se[i] < 0.06,
            "se {i}: {}",
            fit.se[i]
        );
    }
    assert!(fit.p[1] < 1e-10 && fit.p[2] < 1e-10);
    assert!(fit.p[3] > 1e-3);
}

#[test]
fn lasso_enters_planted_features_first_with_length_unpenalised() {
    // Column 0 plays "length": strong, unpenalised. Features 3, 7, 1 carry decreasing signal.
    let mut coef = vec![0.0; 10];
    coef[0] = 1.5;
    coef[3] = 1.2;
    coef[7] = -0.8;
    coef[1] = 0.4;
    let (x, y) = sample(4000, 10, &coef, 0.0, 5);
    let mut pen = vec![true; 10];
    pen[0] = false;
    let (order, entry) = lasso_entry_order(&x, 10, &y, &pen, 40);
    assert_eq!(&order[..3], &[3, 7, 1], "order {order:?}");
    assert!(entry[0].is_none(), "the unpenalised column never 'enters'");
    // A strong penalty keeps only the top feature; the free column stays large.
    let lam = entry[7].unwrap() * 1.05;
    let (_, beta) = logistic_penalised(&x, 10, &y, &pen, lam, 0.0, None, 2000);
    assert!(
        beta[3] > 0.0 && beta[7] == 0.0 && beta[1] == 0.0,
        "{beta:?}"
    );
    assert!(beta[0] > 1.0, "{beta:?}");
    // Without a penalty, coordinate descent reaches the IRLS solution.
    let (b0, free) = logistic_penalised(&x, 10, &y, &[false; 10], 0.0, 0.0, None, 5000);
    let irls = logistic_irls(&x, 10, &y, true).unwrap();
    assert!((b0 - irls.coef[0]).abs() < 1e-3);
    for j in 0..10 {
        assert!(
            (free[j] - irls.coef[j + 1]).abs() < 1e-3,
            "col {j}: {} vs {}",
            free[j],
            irls.coef[j + 1]
        );
    }
    // The fitted score ranks held-out data well above chance.
    let (xt, yt) = sample(2000, 10, &coef, 0.0, 6);
    let score: Vec<f64> = xt
        .chunks_exact(10)
        .map(|r| b0 + r.iter().zip(&free).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    assert!(auc(&score, &yt).unwrap() > 0.8);
}
