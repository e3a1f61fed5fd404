//! Annotator groups: which groups of annotators prefer what (PRISM / PAL-style pluralism),
//! found from the data rather than given.
//!
//! Steps of [`annotator_groups`], on the design of a finished dissection (same factors, same
//! encoding, same orientation flips):
//! 1. the non-tie pairs are split by the annotator column; annotators with fewer than
//!    `min_pairs` pairs are left out of the clustering (listed, not grouped);
//! 2. each kept annotator gets its own weights: MAP + Laplace fit of its pairs (the
//!    dissection's prior), posterior means and sds;
//! 3. the weight vectors are divided, factor by factor, by the median posterior sd over
//!    annotators, so that estimation noise is about one unit in every direction;
//! 4. seeded k-means (linfa, `crate::numeric::cluster`) clusters them into K groups; with
//!    `auto`, K ∈ 1..=min(max_groups, annotators / 2) minimises the BIC of the partition read as
//!    a spherical Gaussian mixture (K = 1 means no group structure was found), among partitions
//!    whose groups all have at least 2 annotators (a lone annotator is an outlier, not a
//!    group); the silhouette of the chosen partition is reported too;
//! 5. groups are numbered by size (largest first, then by their first member id) and each is
//!    refitted on all its members' pairs with the dissection's own sampler and folds
//!    (posterior means and 95% intervals), next to a pooled fit of every grouped annotator.
//!
//! The result goes into `report.json` as `annotator_groups` (group, members, factor means and
//! intervals) and `annotator_grouping` (how K was chosen, per-annotator weights, the pooled
//! and per-group fits). Must not do file I/O or printing.
use super::error::DissectError;
use super::fit::{fit_group, DissectConfig, DissectOutput, GroupResult, Sampler};
use super::laplace;
use super::posterior::Posterior;
use crate::data::{Judgement, Winner};
use crate::jobs::{Progress, ProgressSink};
use crate::numeric::cluster::{self, ClusterCount};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest K (fixed or tried by `auto`).
pub const MAX_GROUPS: usize = 20;

/// Settings of the annotator grouping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupingConfig {
    /// The column naming each pair's annotator (`annotator`, `judge` or any extra column).
    pub column: String,
    /// K, or `auto`.
    pub groups: ClusterCount,
    /// Largest K tried by `auto`.
    pub max_groups: usize,
    /// Annotators with fewer non-tie pairs are not grouped.
    pub min_pairs: usize,
    /// Seed of k-means (the refits use the dissection's seed).
    pub seed: u64,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        Self {
            column: "annotator".into(),
            groups: ClusterCount::Auto,
            max_groups: 6,
            min_pairs: 20,
            seed: 0,
        }
    }
}

/// One factor of a group, as `report.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFactor {
    /// Factor name.
    pub name: String,
    /// Posterior mean of the group's weight.
    pub mean: f64,
    /// 2.5% quantile.
    pub lo95: f64,
    /// 97.5% quantile.
    pub hi95: f64,
}

/// One annotator group (`report.json` → `annotator_groups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorGroup {
    /// Group number (0 = largest).
    pub group: usize,
    /// Annotator ids, sorted.
    pub members: Vec<String>,
    /// The group's refitted weights.
    pub factors: Vec<GroupFactor>,
}

/// One annotator's own weights (step 2 of the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorWeights {
    /// Annotator id.
    pub id: String,
    /// Non-tie pairs.
    pub n_pairs: usize,
    /// Its group (none when it had too few pairs).
    pub group: Option<usize>,
    /// Posterior means (MAP + Laplace), in factor order; empty when not fitted.
    pub mean: Vec<f64>,
    /// Posterior sds; empty when not fitted.
    pub sd: Vec<f64>,
    /// Position on the annotator map (first two principal components of the scaled weights);
    /// none when not grouped.
    pub map: Option<[f64; 2]>,
}

/// How the groups were found, and the fits behind them (`report.json` →
/// `annotator_grouping`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupingSummary {
    /// The settings.
    pub config: GroupingConfig,
    /// The number of groups found or asked for.
    pub k: usize,
    /// `auto`: (K, BIC) for every K tried; the smallest wins.
    pub bic: Vec<(usize, f64)>,
    /// Silhouette of the chosen partition (none for K = 1).
    pub silhouette: Option<f64>,
    /// Factor names, in weight order.
    pub factors: Vec<String>,
    /// The noise scale each factor's weights were divided by before clustering.
    pub scale: Vec<f64>,
    /// Every annotator, with its own weights and group.
    pub annotators: Vec<AnnotatorWeights>,
    /// Pairs without a value in the annotator column.
    pub pairs_without_annotator: usize,
    /// The pooled fit of every grouped annotator's pairs.
    pub pooled: GroupResult,
    /// The full fit of each group (same order as `annotator_groups`).
    pub fits: Vec<GroupResult>,
}

/// Annotator groups and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// The groups.
    pub groups: Vec<AnnotatorGroup>,
    /// The details.
    pub summary: GroupingSummary,
}

impl Grouping {
    /// Stores the grouping in the dissection's result (`report.json`).
    pub fn attach(self, out: &mut DissectOutput) {
        out.result.annotator_groups = self.groups;
        out.result.annotator_grouping = Some(self.summary);
    }
}

/// Median of finite values (NaN when none).
fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Finds annotator groups in the data behind `out` (a finished dissection of `data` with
/// `cfg`); see the module docs. Errors: a missing column, too few annotators with enough pairs
/// for the asked K (at least 2 per group; `auto` needs 4), K outside 2..=[`MAX_GROUPS`].
pub fn annotator_groups(
    data: &[Judgement],
    out: &DissectOutput,
    cfg: &DissectConfig,
    g: &GroupingConfig,
    sink: &dyn ProgressSink,
) -> Result<Grouping, DissectError> {
    let column = g.column.trim();
    if column.is_empty() {
        return Err(DissectError::BadOption(
            "the annotator column name is empty".into(),
        ));
    }
    if let ClusterCount::Fixed(k) = g.groups {
        if !(2..=MAX_GROUPS).contains(&k) {
            return Err(DissectError::BadOption(format!(
                "--annotator-groups {k}: must be from 2 to {MAX_GROUPS}, or `auto` (one group is the pooled fit)"
            )));
        }
    }
    if g.max_groups < 1 || g.max_groups > MAX_GROUPS {
        return Err(DissectError::BadOption(format!(
            "largest number of groups {}: must be from 1 to {MAX_GROUPS}",
            g.max_groups
        )));
    }
    if g.min_pairs == 0 {
        return Err(DissectError::BadOption(
            "minimum pairs per annotator must be at least 1".into(),
        ));
    }
    if !data.iter().any(|j| j.key(column).is_some()) {
        let avail: Vec<String> = super::fit::available_group_keys(data)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        return Err(DissectError::BadOption(format!(
            "annotator column `{column}`: no record has it (columns that could name annotators: {})",
            if avail.is_empty() {
                "none".to_string()
            } else {
                avail.join(", ")
            }
        )));
    }
    let design = &out.design;
    // Design rows are the non-tie judgements in data order (see fit::build_design).
    let who: Vec<Option<&str>> = data
        .iter()
        .filter(|j| j.winner != Winner::Tie)
        .map(|j| j.key(column))
        .collect();
    if who.len() != design.x.len() {
        return Err(DissectError::BadOption(format!(
            "the dissection has {} pairs, the data {} non-tie pairs: run the grouping on the data that was dissected",
            design.x.len(),
            who.len()
        )));
    }
    let mut rows_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut without = 0;
    for (i, w) in who.iter().enumerate() {
        match w {
            Some(a) => rows_of.entry(*a).or_default().push(i),
            None => without += 1,
        }
    }
    let kept: Vec<(&str, &Vec<usize>)> = rows_of
        .iter()
        .filter(|(_, r)| r.len() >= g.min_pairs)
        .map(|(a, r)| (*a, r))
        .collect();
    let need = match g.groups {
        ClusterCount::Fixed(k) => 2 * k,
        ClusterCount::Auto => 4,
    };
    if kept.len() < need {
        return Err(DissectError::Empty(format!(
            "{} of {} annotators (column `{column}`) have at least {} non-tie pairs; {} groups need at least {need} such annotators (use fewer groups, more data, or a lower minimum)",
            kept.len(),
            rows_of.len(),
            g.min_pairs,
            g.groups
        )));
    }
    let p = design.factors.len();
    // Step 2: one MAP + Laplace fit per kept annotator.
    let mut weights: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(kept.len());
    for (n, (a, rows)) in kept.iter().enumerate() {
        if sink.is_cancelled() {
            return Err(DissectError::Cancelled);
        }
        let (x, y) = oriented(design, rows);
        let post = Posterior::new(&x, &y, p, cfg.prior_scale);
        let fit = laplace::fit(&post).map_err(|e| match e {
            DissectError::Numerical(m) => DissectError::Numerical(format!("annotator {a}: {m}")),
            other => other,
        })?;
        weights.push((fit.mean, fit.sd));
        sink.report(Progress::new(
            "annotator weights",
            n as u64 + 1,
            Some(kept.len() as u64),
        ));
    }
    // Step 3: divide by the typical noise of each factor.
    let scale: Vec<f64> = (0..p)
        .map(|j| {
            let m = median(weights.iter().map(|(_, sd)| sd[j]).collect());
            if m.is_finite() && m > 1e-9 {
                m
            } else {
                1.0
            }
        })
        .collect();
    let z: Vec<Vec<f64>> = weights
        .iter()
        .map(|(m, _)| m.iter().zip(&scale).map(|(w, s)| w / s).collect())
        .collect();
    // Step 4: k-means, K fixed or by BIC.
    let n = z.len();
    let (labels, bic) = match g.groups {
        ClusterCount::Fixed(k) => (
            cluster::kmeans(&z, k, g.seed).map_err(cluster_err)?.labels,
            Vec::new(),
        ),
        ClusterCount::Auto => {
            let top = g.max_groups.min(n / 2).max(1);
            let mut scores = Vec::new();
            let mut best: Option<(f64, Vec<usize>)> = None;
            for k in 1..=top {
                let fit = cluster::kmeans(&z, k, g.seed).map_err(cluster_err)?;
                let b = cluster::kmeans_bic(n, p, &fit.labels, fit.sse);
                scores.push((k, b));
                // A group of one annotator is an outlier, not a group: such partitions are
                // listed but not chosen.
                let used = fit.labels.iter().max().map_or(0, |m| m + 1);
                let smallest = (0..used)
                    .map(|c| fit.labels.iter().filter(|&&l| l == c).count())
                    .min()
                    .unwrap_or(0);
                if k > 1 && smallest < 2 {
                    continue;
                }
                if best.as_ref().is_none_or(|(bb, _)| b < *bb - 1e-9) {
                    best = Some((b, fit.labels));
                }
            }
            (best.expect("K = 1 is always tried").1, scores)
        }
    };
    let k = labels.iter().max().map_or(1, |m| m + 1);
    let silhouette = if k >= 2 {
        Some(cluster::silhouette(&z, &labels).map_err(cluster_err)?).filter(|s| s.is_finite())
    } else {
        None
    };
    // Step 5: number groups by size, then by first member id (kept is sorted by id).
    let mut order: Vec<usize> = (0..k).collect();
    let size = |c: usize| labels.iter().filter(|&&l| l == c).count();
    order.sort_by(|&a, &b| size(b).cmp(&size(a)).then(a.cmp(&b)));
    let mut rank = vec![0; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    let group_of: Vec<usize> = labels.iter().map(|&l| rank[l]).collect();
    let map: Vec<[f64; 2]> = match cluster::pca(&z, 2.min(p)) {
        Ok(pr) => pr
            .scores
            .iter()
            .map(|r| [r[0], r.get(1).copied().unwrap_or(0.0)])
            .collect(),
        Err(e) => {
            sink.log(&format!("no annotator map: {e}"));
            vec![[f64::NAN; 2]; n]
        }
    };
    let per_fit: u64 = match cfg.sampler {
        Sampler::Nuts => (cfg.nuts.chains * (cfg.nuts.warmup + cfg.nuts.draws)) as u64,
        Sampler::Laplace => 1,
    } * cfg.folds.max(1) as u64;
    let total = per_fit * (k as u64 + 1);
    let done = std::sync::atomic::AtomicU64::new(0);
    let cancelled = || sink.is_cancelled();
    let fit_rows_as = |rows: &[usize], gi: usize, label: &str| {
        let stage = format!("annotator group fit: {label}");
        let tick = |t: u64| {
            let d = done.fetch_add(t, std::sync::atomic::Ordering::Relaxed) + t;
            sink.report(Progress::new(stage.clone(), d, Some(total)));
        };
        let gvals = BTreeMap::from([("annotator_group".to_string(), label.to_string())]);
        fit_group(design, rows, gi, label, &gvals, 0, cfg, &tick, &cancelled)
    };
    let all_rows: Vec<usize> = {
        let mut r: Vec<usize> = kept.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        r.sort_unstable();
        r
    };
    let pooled = fit_rows_as(&all_rows, 0, "pooled")?;
    let mut groups = Vec::with_capacity(k);
    let mut fits = Vec::with_capacity(k);
    for gi in 0..k {
        if cancelled() {
            return Err(DissectError::Cancelled);
        }
        let members: Vec<usize> = (0..n).filter(|&i| group_of[i] == gi).collect();
        let mut rows: Vec<usize> = members
            .iter()
            .flat_map(|&i| kept[i].1.iter().copied())
            .collect();
        rows.sort_unstable();
        let fit = fit_rows_as(&rows, gi + 1, &format!("group {gi}"))?;
        groups.push(AnnotatorGroup {
            group: gi,
            members: members.iter().map(|&i| kept[i].0.to_string()).collect(),
            factors: fit
                .factors
                .iter()
                .map(|f| GroupFactor {
                    name: f.name.clone(),
                    mean: f.mean,
                    lo95: f.lo95,
                    hi95: f.hi95,
                })
                .collect(),
        });
        fits.push(fit);
    }
    let mut annotators: Vec<AnnotatorWeights> = Vec::with_capacity(rows_of.len());
    let mut next_kept = 0;
    for (a, rows) in &rows_of {
        if next_kept < kept.len() && kept[next_kept].0 == *a {
            let (m, sd) = weights[next_kept].clone();
            annotators.push(AnnotatorWeights {
                id: a.to_string(),
                n_pairs: rows.len(),
                group: Some(group_of[next_kept]),
                mean: m,
                sd,
                map: Some(map[next_kept]).filter(|p| p[0].is_finite() && p[1].is_finite()),
            });
            next_kept += 1;
        } else {
            annotators.push(AnnotatorWeights {
                id: a.to_string(),
                n_pairs: rows.len(),
                group: None,
                mean: Vec::new(),
                sd: Vec::new(),
                map: None,
            });
        }
    }
    Ok(Grouping {
        groups,
        summary: GroupingSummary {
            config: GroupingConfig {
                column: column.to_string(),
                ..g.clone()
            },
            k,
            bic,
            silhouette,
            factors: design.factors.iter().map(|f| f.name.clone()).collect(),
            scale,
            annotators,
            pairs_without_annotator: without,
            pooled,
            fits,
        },
    })
}

/// The design rows `rows` in fitting orientation (flips applied), as the fit sees them.
fn oriented(design: &super::fit::Design, rows: &[usize]) -> (Vec<Vec<f64>>, Vec<bool>) {
    let x = rows
        .iter()
        .map(|&i| {
            let s = if design.flipped[i] { -1.0 } else { 1.0 };
            design.x[i].iter().map(|v| s * v).collect()
        })
        .collect();
    let y = rows
        .iter()
        .map(|&i| design.a_preferred[i] != design.flipped[i])
        .collect();
    (x, y)
}

fn cluster_err(e: cluster::ClusterError) -> DissectError {
    DissectError::Numerical(format!("annotator clustering: {e}"))
}

/// Adjusted Rand index between found groups and known ones (`truth`: annotator id → group);
/// annotators missing from either side are skipped. None when fewer than 2 are shared.
pub fn adjusted_rand_index(
    found: &[AnnotatorGroup],
    truth: &BTreeMap<String, usize>,
) -> Option<f64> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for g in found {
        for m in &g.members {
            if let Some(&t) = truth.get(m) {
                a.push(g.group);
                b.push(t);
            }
        }
    }
    (a.len() >= 2).then(|| cluster::adjusted_rand_index(&a, &b))
}
