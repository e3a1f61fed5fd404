//! Special functions shared by the methods: the logistic function and softplus, `log(eᵃ + eᵇ)`,
//! the complementary error function and the standard normal distribution (cdf, log-cdf, log-pdf,
//! two-sided p-values).
//!
//! Pure scalar functions; no I/O, no randomness, no method-specific code.

/// `log(1 + exp(x))`, stable for large |x|.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The logistic function 1 / (1 + exp(−x)), stable for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(exp(a) + exp(b))`.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// `log erfc(x)` for x ≥ 0 by the Chebyshev-fitted rational form of Press et al. (Numerical
/// Recipes §6.2; fractional error < 1.2e-7), evaluated in log space so it never underflows.
fn log_erfc_nonneg(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + poly
}

/// The complementary error function.
pub fn erfc(x: f64) -> f64 {
    if x >= 0.0 {
        log_erfc_nonneg(x).exp()
    } else {
        2.0 - log_erfc_nonneg(-x).exp()
    }
}

/// Standard normal cdf Φ(x).
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// `log Φ(x)`, accurate far into the lower tail.
pub fn norm_log_cdf(x: f64) -> f64 {
    let z = -x / std::f64::consts::SQRT_2;
    if z >= 0.0 {
        (0.5f64).ln() + log_erfc_nonneg(z)
    } else {
        norm_cdf(x).ln()
    }
}

/// `log φ(x)`, the standard normal log density.
pub fn norm_log_pdf(x: f64) -> f64 {
    -0.5 * x * x - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// Two-sided p-value of a standard-normal statistic.
pub fn normal_two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        // reference values from scipy.stats.norm.cdf / logcdf
        assert!((norm_cdf(1.959963984540054) - 0.975).abs() < 1e-7);
        assert!((norm_cdf(-1.0) - 0.15865525393145707).abs() < 1e-7);
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_log_cdf(-10.0) - (-53.23128515051247)).abs() < 1e-5);
        assert!((norm_log_cdf(-40.0) - (-804.6084420137538)).abs() < 1e-4);
    }

    #[test]
    fn erfc_and_p_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((normal_two_sided_p(1.959_964) - 0.05).abs() < 1e-6);
        assert!((normal_two_sided_p(-2.575_829) - 0.01).abs() < 1e-6);
    }
}
