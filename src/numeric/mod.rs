//! Numerics shared by the methods (`dissect`, `sae`, `steer`, `data`): special functions
//! ([`special`]), descriptive statistics and rank correlations ([`stats`]), small dense linear
//! algebra ([`linalg`]), civil-date arithmetic ([`date`]), the FNV-1a hash of cache keys
//! ([`hash`]) and seeded clustering and projection on top of linfa ([`cluster`]).
//!
//! Each routine is written once here and every caller uses it. Pure functions on scalars and
//! slices: this module must not do I/O, draw random numbers (except [`cluster`]'s k-means,
//! from the seed its caller passes), touch tensors or know about any method's data types.
pub mod cluster;
pub mod date;
pub mod hash;
pub mod linalg;
pub mod special;
pub mod stats;

pub use special::{
    erfc, log_add_exp, norm_cdf, norm_log_cdf, norm_log_pdf, normal_two_sided_p, sigmoid, softplus,
};
pub use stats::{
    kendall_tau_b, mean, mean_sd, pearson, pearson_or_zero, quantile, quantile_sorted, ranks,
    sample_var, spearman, top_abs_indices,
};
