//! The dissection pipeline: judgements → design matrix → per-group fits (with K-fold averaging)
//! → comparisons (similarity, agreement) → a serialisable [`DissectResult`]; plus the per-pair
//! contribution [`Waterfall`].
//!
//! Steps of [`run_dissection`]:
//! 1. ties are dropped (counted per group);
//! 2. factors are extracted from the chosen sources over all remaining pairs and encoded
//!    (sign or standardised difference, see `factors`); factors that are 0 for every pair are
//!    dropped (they carry no information);
//! 3. when every label is "A" (chosen/rejected data), each pair's A/B order is flipped with
//!    probability ½ (seeded): x → −x and the label → B. The likelihood depends only on
//!    label·x, so the posterior is unchanged; the flip only makes orientation-dependent
//!    summaries (share of A wins, accuracy) meaningful;
//! 4. pairs are grouped by the values of the `group_by` keys (`judge`, `annotator`,
//!    `scenario` or any extra column kept by the reader); without keys there is one group `{}` holding every pair;
//! 5. each group is fitted with NUTS or MAP + Laplace. With K > 1 folds (GAIR's recipe) the
//!    group's pairs are shuffled (seeded), split into K contiguous folds, the model is fitted on
//!    each training set (all folds but one) and means, sds and interval bounds are averaged
//!    over the K fits; R-hat reports the worst and ESS the smallest over folds;
//! 6. groups are compared by Pearson/Spearman correlation of their posterior-mean vectors
//!    (GAIR's similarity) and Kendall τ-b of the factor rankings they induce (PROFILE-style
//!    agreement).
//!
//!
//! Files: [`design`] builds the encoded design matrix (steps 1–4), [`result`] holds the
//! serialisable result types, the group comparisons (step 6) and the waterfall; this file fits
//! the groups (step 5) and runs the pipeline.
//!
//! Must not do file I/O or printing: the CLI and app call it and write reports.
mod design;
mod result;

pub use design::{build_design, builtin_sources, Design};
use design::{group_label, group_value};
pub use result::{
    compare_groups, Agreement, DissectOutput, DissectResult, FactorEstimate, GroupResult,
    PairAgreement, SamplerStats, Settings, Similarity, Waterfall, WaterfallStep,
};

use super::diagnostics::{ess, split_rhat};
use super::error::DissectError;
use super::factors::FactorSource;
use super::laplace;
use super::nuts::{self, NutsConfig};
use super::posterior::Posterior;
use crate::data::{Judgement, Winner};
use crate::jobs::{Progress, ProgressSink};
use crate::numeric::{mean_sd, quantile_sorted, sigmoid};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which posterior computation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Full NUTS sampling (slow, exact up to Monte Carlo error).
    Nuts,
    /// MAP + Laplace approximation (fast, for live use).
    Laplace,
}

impl std::str::FromStr for Sampler {
    type Err = DissectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "nuts" => Ok(Sampler::Nuts),
            "laplace" | "map" => Ok(Sampler::Laplace),
            other => Err(DissectError::BadOption(format!(
                "unknown sampler `{other}` (expected `nuts` or `laplace`)"
            ))),
        }
    }
}

/// Everything that configures a dissection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DissectConfig {
    /// Factor selection: source ids (`computed`, `columns`) and/or individual factor names.
    /// Empty = `columns` when the data has annotations, else `computed`.
    pub factors: Vec<String>,
    /// Group keys: `judge`, `annotator`, `scenario` or any other column of the data.
    pub group_by: Vec<String>,
    /// Posterior computation.
    pub sampler: Sampler,
    /// Laplace prior scale b (GAIR: 0.1).
    pub prior_scale: f64,
    /// K for K-fold averaging (1 = fit on all pairs once; GAIR uses 10).
    pub folds: usize,
    /// NUTS settings (its `seed` is overridden by `seed`).
    pub nuts: NutsConfig,
    /// Seed for orientation flips, fold shuffles and the sampler.
    pub seed: u64,
}

impl Default for DissectConfig {
    fn default() -> Self {
        Self {
            factors: Vec::new(),
            group_by: Vec::new(),
            sampler: Sampler::Nuts,
            prior_scale: 0.1,
            folds: 1,
            nuts: NutsConfig::default(),
            seed: 0,
        }
    }
}

/// The typed keys pairs can be grouped by; any extra column of the data works too
/// (see [`available_group_keys`]).
pub const GROUP_KEYS: [&str; 3] = ["judge", "annotator", "scenario"];

/// The keys `data` can be grouped by: `judge`/`annotator`/`scenario` where some record has
/// them, then every extra column, sorted (each with the number of distinct values).
pub fn available_group_keys(data: &[Judgement]) -> Vec<(String, usize)> {
    let mut values: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for j in data {
        for k in GROUP_KEYS {
            if let Some(v) = j.key(k) {
                values.entry(k.to_string()).or_default().insert(v);
            }
        }
        for (k, v) in &j.extra {
            values.entry(k.clone()).or_default().insert(v);
        }
    }
    let mut out: Vec<(String, usize)> = GROUP_KEYS
        .iter()
        .filter_map(|k| values.get(*k).map(|v| (k.to_string(), v.len())))
        .collect();
    out.extend(
        values
            .iter()
            .filter(|(k, _)| !GROUP_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.len())),
    );
    out
}

/// Checks that every key names a typed field or column some record has.
pub(super) fn check_group_keys(data: &[Judgement], keys: &[String]) -> Result<(), DissectError> {
    for k in keys {
        if !data.iter().any(|j| j.key(k).is_some()) {
            let avail: Vec<String> = available_group_keys(data)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            return Err(DissectError::BadOption(format!(
                "cannot group by `{k}`: no record has that column (available: {})",
                if avail.is_empty() {
                    "none".to_string()
                } else {
                    avail.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// Summary of one fit (one fold).
struct OneFit {
    mean: Vec<f64>,
    sd: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    pos: Vec<f64>,
    rhat: Option<Vec<f64>>,
    ess: Option<Vec<f64>>,
    stats: Option<SamplerStats>,
}

fn fit_rows(
    design: &Design,
    rows: &[usize],
    cfg: &DissectConfig,
    seed: u64,
    tick: &(dyn Fn(u64) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<OneFit, DissectError> {
    let p = design.factors.len();
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|&i| {
            let s = if design.flipped[i] { -1.0 } else { 1.0 };
            design.x[i].iter().map(|v| s * v).collect()
        })
        .collect();
    let y: Vec<bool> = rows
        .iter()
        .map(|&i| design.a_preferred[i] != design.flipped[i])
        .collect();
    let post = Posterior::new(&x, &y, p, cfg.prior_scale);
    match cfg.sampler {
        Sampler::Laplace => {
            let f = laplace::fit(&post)?;
            tick(1);
            Ok(OneFit {
                mean: f.mean,
                sd: f.sd,
                lo: f.lo95,
                hi: f.hi95,
                pos: f.prob_positive,
                rhat: None,
                ess: None,
                stats: None,
            })
        }
        Sampler::Nuts => {
            let ncfg = NutsConfig {
                seed,
                ..cfg.nuts.clone()
            };
            let out = nuts::sample(&post, &ncfg, tick, cancelled)?;
            let mut fit = OneFit {
                mean: Vec::new(),
                sd: Vec::new(),
                lo: Vec::new(),
                hi: Vec::new(),
                pos: Vec::new(),
                rhat: Some(Vec::new()),
                ess: Some(Vec::new()),
                stats: Some(SamplerStats {
                    divergences: out.divergences,
                    mean_accept: out.mean_accept,
                    mean_leapfrog: out.mean_leapfrog,
                    step_size: out.step_size.iter().sum::<f64>() / out.step_size.len() as f64,
                }),
            };
            for j in 0..p {
                let chains: Vec<Vec<f64>> = out
                    .draws
                    .iter()
                    .map(|c| c.iter().map(|d| d[j]).collect())
                    .collect();
                let mut flat: Vec<f64> = chains.iter().flatten().copied().collect();
                let (m, sd) = mean_sd(&flat);
                let pos = flat.iter().filter(|v| **v > 0.0).count() as f64 / flat.len() as f64;
                flat.sort_by(|a, b| a.total_cmp(b));
                fit.mean.push(m);
                fit.sd.push(sd);
                fit.lo.push(quantile_sorted(&flat, 0.025));
                fit.hi.push(quantile_sorted(&flat, 0.975));
                fit.pos.push(pos);
                if let Some(r) = fit.rhat.as_mut() {
                    r.push(split_rhat(&chains));
                }
                if let Some(e) = fit.ess.as_mut() {
                    e.push(ess(&chains));
                }
            }
            Ok(fit)
        }
    }
}

/// Fits the pairs `rows` of the design as one group (K-fold averaged when `cfg.folds > 1`;
/// `gi` varies the fold shuffle and sampler seeds between groups) and summarises them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_group(
    design: &Design,
    rows: &[usize],
    gi: usize,
    label: &str,
    gvals: &BTreeMap<String, String>,
    n_ties: usize,
    cfg: &DissectConfig,
    tick: &(dyn Fn(u64) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<GroupResult, DissectError> {
    let folds = cfg.folds.max(1);
    let fold_sets: Vec<Vec<usize>> = if folds <= 1 {
        vec![rows.to_vec()]
    } else {
        if rows.len() < folds {
            return Err(DissectError::Empty(format!(
                "group {label} has {} pairs, fewer than {folds} folds",
                rows.len()
            )));
        }
        let mut shuffled = rows.to_vec();
        shuffled.shuffle(&mut StdRng::seed_from_u64(cfg.seed.wrapping_add(gi as u64)));
        let n = shuffled.len();
        (0..folds)
            .map(|k| {
                let start = k * n / folds;
                let end = start + n / folds;
                shuffled[..start]
                    .iter()
                    .chain(&shuffled[end..])
                    .copied()
                    .collect()
            })
            .collect()
    };
    let p = design.factors.len();
    let mut acc = OneFit {
        mean: vec![0.0; p],
        sd: vec![0.0; p],
        lo: vec![0.0; p],
        hi: vec![0.0; p],
        pos: vec![0.0; p],
        rhat: None,
        ess: None,
        stats: None,
    };
    let kf = fold_sets.len() as f64;
    for (k, train) in fold_sets.iter().enumerate() {
        let seed = cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add((gi * 1000 + k) as u64);
        let f = fit_rows(design, train, cfg, seed, tick, cancelled)?;
        for j in 0..p {
            acc.mean[j] += f.mean[j] / kf;
            acc.sd[j] += f.sd[j] / kf;
            acc.lo[j] += f.lo[j] / kf;
            acc.hi[j] += f.hi[j] / kf;
            acc.pos[j] += f.pos[j] / kf;
        }
        if let Some(r) = f.rhat {
            let a = acc.rhat.get_or_insert_with(|| vec![f64::NEG_INFINITY; p]);
            for j in 0..p {
                a[j] = if r[j].is_nan() {
                    f64::NAN
                } else {
                    a[j].max(r[j])
                };
            }
        }
        if let Some(e) = f.ess {
            let a = acc.ess.get_or_insert_with(|| vec![f64::INFINITY; p]);
            for j in 0..p {
                a[j] = a[j].min(e[j]);
            }
        }
        if let Some(s) = f.stats {
            let a = acc.stats.get_or_insert(SamplerStats {
                divergences: 0,
                mean_accept: 0.0,
                mean_leapfrog: 0.0,
                step_size: 0.0,
            });
            a.divergences += s.divergences;
            a.mean_accept += s.mean_accept / kf;
            a.mean_leapfrog += s.mean_leapfrog / kf;
            a.step_size += s.step_size / kf;
        }
    }
    let factors: Vec<FactorEstimate> = design
        .factors
        .iter()
        .enumerate()
        .map(|(j, f)| FactorEstimate {
            name: f.name.clone(),
            label: f.label.clone(),
            mean: acc.mean[j],
            sd: acc.sd[j],
            lo95: acc.lo[j],
            hi95: acc.hi[j],
            prob_preferred: 100.0 * sigmoid(acc.mean[j]),
            prob_positive: acc.pos[j],
            rhat: acc.rhat.as_ref().map(|r| r[j]),
            ess: acc.ess.as_ref().map(|e| e[j]),
            n_nonzero: rows.iter().filter(|&&i| design.x[i][j] != 0.0).count(),
        })
        .collect();
    let (mut correct, mut counted, mut a_wins) = (0usize, 0usize, 0usize);
    for &i in rows {
        let s = if design.flipped[i] { -1.0 } else { 1.0 };
        let a = design.a_preferred[i] != design.flipped[i];
        a_wins += usize::from(a);
        let m: f64 = design.x[i]
            .iter()
            .zip(&acc.mean)
            .map(|(x, w)| s * x * w)
            .sum();
        if m != 0.0 {
            counted += 1;
            correct += usize::from((m > 0.0) == a);
        }
    }
    Ok(GroupResult {
        group: gvals.clone(),
        label: label.to_string(),
        n_pairs: rows.len(),
        n_ties,
        frac_a_preferred: a_wins as f64 / rows.len() as f64,
        accuracy: if counted > 0 {
            correct as f64 / counted as f64
        } else {
            f64::NAN
        },
        factors,
        sampler_stats: acc.stats,
    })
}

/// Runs the whole dissection with the built-in sources. Reports progress to `sink` and
/// returns [`DissectError::Cancelled`] once `sink.is_cancelled()`.
pub fn run_dissection(
    data: &[Judgement],
    cfg: &DissectConfig,
    sink: &dyn ProgressSink,
) -> Result<DissectOutput, DissectError> {
    run_dissection_with(data, &builtin_sources(), cfg, sink)
}

/// [`run_dissection`] with caller-supplied factor sources (SAE features, vectors, ...).
pub fn run_dissection_with(
    data: &[Judgement],
    sources: &[Box<dyn FactorSource>],
    cfg: &DissectConfig,
    sink: &dyn ProgressSink,
) -> Result<DissectOutput, DissectError> {
    if !(cfg.prior_scale > 0.0 && cfg.prior_scale.is_finite()) {
        return Err(DissectError::BadOption(format!(
            "prior scale must be > 0 (got {})",
            cfg.prior_scale
        )));
    }
    cfg.nuts.validate()?;
    let folds = cfg.folds.max(1);
    sink.report(Progress::new("extracting factors", 0, None));
    let (design, dropped, randomised) = build_design(data, sources, cfg)?;
    for d in &dropped {
        sink.log(&format!(
            "factor `{d}` is equal for A and B in every pair: dropped"
        ));
    }
    // groups in first-appearance order, then sorted by label for stable output
    let mut groups: BTreeMap<String, (BTreeMap<String, String>, Vec<usize>)> = BTreeMap::new();
    for (i, g) in design.group.iter().enumerate() {
        groups
            .entry(group_label(g))
            .or_insert_with(|| (g.clone(), Vec::new()))
            .1
            .push(i);
    }
    let mut ties: BTreeMap<String, usize> = BTreeMap::new();
    for j in data.iter().filter(|j| j.winner == Winner::Tie) {
        let g: BTreeMap<String, String> = cfg
            .group_by
            .iter()
            .map(|k| (k.clone(), group_value(j, k)))
            .collect();
        *ties.entry(group_label(&g)).or_default() += 1;
    }
    let per_fit: u64 = match cfg.sampler {
        Sampler::Nuts => (cfg.nuts.chains * (cfg.nuts.warmup + cfg.nuts.draws)) as u64,
        Sampler::Laplace => 1,
    };
    let total = per_fit * (folds * groups.len()) as u64;
    let done = AtomicU64::new(0);
    let mut results = Vec::new();
    for (gi, (label, (gvals, rows))) in groups.iter().enumerate() {
        let stage = format!("group {}/{}: {label}", gi + 1, groups.len());
        let tick = |k: u64| {
            let d = done.fetch_add(k, Ordering::Relaxed) + k;
            sink.report(Progress::new(stage.clone(), d, Some(total)));
        };
        let cancelled = || sink.is_cancelled();
        if cancelled() {
            return Err(DissectError::Cancelled);
        }
        results.push(fit_group(
            &design,
            rows,
            gi,
            label,
            gvals,
            ties.get(label).copied().unwrap_or(0),
            cfg,
            &tick,
            &cancelled,
        )?);
    }
    let (similarity, agreement) = compare_groups(&results);
    let n_ties = data.iter().filter(|j| j.winner == Winner::Tie).count();
    let result = DissectResult {
        groups: results,
        similarity,
        agreement,
        settings: Settings {
            config: cfg.clone(),
            n_records: data.len(),
            n_ties,
            orientation_randomised: randomised,
            dropped_factors: dropped,
            steerlab_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        factor_definitions: design.factors.clone(),
        annotator_groups: Vec::new(),
        annotator_grouping: None,
    };
    sink.report(Progress::new("done", total, Some(total)));
    Ok(DissectOutput { result, design })
}
