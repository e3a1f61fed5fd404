//! MCMC convergence diagnostics on draws of one scalar across chains: split R-hat and the
//! effective sample size (Geyer's initial monotone sequence on the multi-chain autocorrelation,
//! as in Stan and `numpyro.diagnostics.effective_sample_size`).
//!
//! Input layout: `chains[c][t]`, every chain of equal length.

use crate::numeric::{mean, sample_var as var1};

/// Potential scale reduction R-hat computed on split chains (each chain cut in two halves),
/// BDA3 §11.4. NaN with fewer than 4 draws per chain; 1.0 when every draw is equal.
pub fn split_rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains.iter().map(Vec::len).min().unwrap_or(0);
    if n < 4 {
        return f64::NAN;
    }
    let half = n / 2;
    let mut split: Vec<&[f64]> = Vec::new();
    for c in chains {
        split.push(&c[..half]);
        split.push(&c[n - half..n]);
    }
    rhat_of(&split)
}

fn rhat_of(chains: &[&[f64]]) -> f64 {
    let m = chains.len() as f64;
    let n = chains[0].len() as f64;
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let w = chains.iter().map(|c| var1(c)).sum::<f64>() / m;
    let b = n * var1(&means);
    if w == 0.0 {
        return if b == 0.0 { 1.0 } else { f64::INFINITY };
    }
    let var_plus = (n - 1.0) / n * w + b / n;
    (var_plus / w).sqrt()
}

/// Autocovariance of one chain at lags 0..n (biased, divided by n), direct O(n·L) up to `max_lag`.
fn autocov(c: &[f64], max_lag: usize) -> Vec<f64> {
    let n = c.len();
    let m = mean(c);
    let d: Vec<f64> = c.iter().map(|x| x - m).collect();
    (0..=max_lag.min(n - 1))
        .map(|lag| {
            d[..n - lag]
                .iter()
                .zip(&d[lag..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / n as f64
        })
        .collect()
}

/// Effective sample size across chains (Stan's multi-chain estimator with Geyer's initial
/// positive and monotone sequence). NaN with fewer than 4 draws per chain.
pub fn ess(chains: &[Vec<f64>]) -> f64 {
    let n = chains.iter().map(Vec::len).min().unwrap_or(0);
    let m = chains.len();
    if n < 4 || m == 0 {
        return f64::NAN;
    }
    let chains: Vec<&[f64]> = chains.iter().map(|c| &c[..n]).collect();
    let nf = n as f64;
    // autocovariances, computed lazily in blocks of lags for speed
    let mut max_lag = 64.min(n - 1);
    let mut acov: Vec<Vec<f64>> = chains.iter().map(|c| autocov(c, max_lag)).collect();
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let mean_var = acov.iter().map(|a| a[0]).sum::<f64>() / m as f64 * nf / (nf - 1.0);
    let var_plus = mean_var * (nf - 1.0) / nf + if m > 1 { var1(&means) } else { 0.0 };
    if var_plus == 0.0 {
        return m as f64 * nf;
    }
    let rho = |acov: &Vec<Vec<f64>>, t: usize| -> f64 {
        let mean_acov = acov.iter().map(|a| a[t]).sum::<f64>() / m as f64;
        1.0 - (mean_var - mean_acov) / var_plus
    };
    // Geyer: sum pairs P_k = rho_{2k} + rho_{2k+1} while positive, enforce monotone decrease
    let mut tau_sum = 0.0;
    let mut prev_pair = f64::INFINITY;
    let mut k = 0usize;
    loop {
        let t0 = 2 * k;
        let t1 = 2 * k + 1;
        if t1 >= n {
            break;
        }
        if t1 > max_lag {
            max_lag = (max_lag * 4).min(n - 1);
            acov = chains.iter().map(|c| autocov(c, max_lag)).collect();
        }
        let r0 = if t0 == 0 { 1.0 } else { rho(&acov, t0) };
        let pair = r0 + rho(&acov, t1);
        if pair < 0.0 {
            break;
        }
        let pair = pair.min(prev_pair);
        prev_pair = pair;
        tau_sum += pair;
        k += 1;
    }
    let tau = -1.0 + 2.0 * tau_sum;
    let tau = tau.max(1.0 / (m as f64 * nf).log10().max(1.0));
    m as f64 * nf / tau
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    #[test]
    fn independent_draws_have_rhat_near_one_and_full_ess() {
        let mut rng = StdRng::seed_from_u64(3);
        let chains: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..1000).map(|_| rng.sample(StandardNormal)).collect())
            .collect();
        let r = split_rhat(&chains);
        assert!((r - 1.0).abs() < 0.01, "{r}");
        let e = ess(&chains);
        assert!(e > 3000.0 && e < 5000.0, "{e}");
    }

    #[test]
    fn ar1_chains_have_the_theoretical_ess_and_shifted_chains_fail_rhat() {
        // AR(1) with phi = 0.9: tau = (1 + phi) / (1 - phi) = 19
        let mut rng = StdRng::seed_from_u64(5);
        let chains: Vec<Vec<f64>> = (0..4)
            .map(|_| {
                let mut x = 0.0;
                (0..20000)
                    .map(|_| {
                        let e: f64 = rng.sample(StandardNormal);
                        x = 0.9 * x + e;
                        x
                    })
                    .collect()
            })
            .collect();
        let e = ess(&chains);
        let expect = 80000.0 / 19.0;
        assert!((e / expect - 1.0).abs() < 0.2, "{e} vs {expect}");
        let mut shifted = chains.clone();
        shifted[0].iter_mut().for_each(|v| *v += 3.0);
        assert!(split_rhat(&shifted) > 1.1);
        // a constant random-walk drift inside chains is caught by the split
        let drift: Vec<Vec<f64>> = (0..4)
            .map(|_| {
                (0..400)
                    .map(|t| t as f64 / 100.0 + rng.random::<f64>())
                    .collect()
            })
            .collect();
        assert!(split_rhat(&drift) > 1.1);
    }
}
