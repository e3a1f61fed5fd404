//! What a dissection returns: per-group posterior summaries, between-group similarity and
//! agreement (step 6 of [`super`]), the settings, the serialisable [`DissectResult`]
//! (`report.json`) and the per-pair contribution [`Waterfall`]. Must not fit anything.
use super::design::{group_label, Design};
use super::DissectConfig;
use crate::dissect::factors::FactorInfo;
use crate::numeric::{kendall_tau_b, pearson, sigmoid, spearman};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Posterior summary of one factor in one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorEstimate {
    /// Factor name.
    pub name: String,
    /// Short label.
    pub label: String,
    /// Posterior mean of the weight.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// 2.5% posterior quantile.
    pub lo95: f64,
    /// 97.5% posterior quantile.
    pub hi95: f64,
    /// GAIR's "probability preferred": 100·σ(mean), the chance (in %) that a response having
    /// more of this factor, all else equal, is preferred.
    pub prob_preferred: f64,
    /// Posterior probability that the weight is positive.
    pub prob_positive: f64,
    /// Split R-hat (NUTS only; worst over folds).
    pub rhat: Option<f64>,
    /// Effective sample size (NUTS only; smallest over folds).
    pub ess: Option<f64>,
    /// Pairs of the group where this factor's feature is non-zero (A and B differ).
    pub n_nonzero: usize,
}

/// Sampler statistics of one group (NUTS only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerStats {
    /// Divergent transitions, all chains and folds.
    pub divergences: usize,
    /// Mean acceptance statistic.
    pub mean_accept: f64,
    /// Mean leapfrog steps per draw.
    pub mean_leapfrog: f64,
    /// Mean adapted step size.
    pub step_size: f64,
}

/// The fit of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupResult {
    /// Group values (key → value); `{}` when not grouped.
    pub group: BTreeMap<String, String>,
    /// Display label ("judge=human, scenario=code", or "all").
    pub label: String,
    /// Non-tie pairs fitted.
    pub n_pairs: usize,
    /// Ties dropped.
    pub n_ties: usize,
    /// Share of pairs where A won, after orientation flips.
    pub frac_a_preferred: f64,
    /// In-sample accuracy of sign(x·mean) against the labels (pairs with x·mean = 0 skipped).
    pub accuracy: f64,
    /// Per-factor estimates, in design order.
    pub factors: Vec<FactorEstimate>,
    /// NUTS statistics.
    pub sampler_stats: Option<SamplerStats>,
}

/// Correlation matrices between groups' weight vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// Group labels (rows and columns).
    pub labels: Vec<String>,
    /// Pearson correlation of posterior means.
    pub pearson: Vec<Vec<f64>>,
    /// Spearman correlation of posterior means.
    pub spearman: Vec<Vec<f64>>,
}

/// Agreement of factor rankings between two groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// First group label.
    pub a: String,
    /// Second group label.
    pub b: String,
    /// Kendall τ-b of the posterior means.
    pub kendall_tau: f64,
    /// Factors whose 95% intervals exclude 0 in both groups with opposite signs.
    pub opposite_sign_factors: Vec<String>,
}

/// PROFILE-style agreement between groups' factor rankings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Group labels.
    pub labels: Vec<String>,
    /// Kendall τ-b matrix.
    pub kendall_tau: Vec<Vec<f64>>,
    /// Every pair of groups.
    pub pairs: Vec<PairAgreement>,
}

/// Settings and data counts, recorded in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The configuration used.
    #[serde(flatten)]
    pub config: DissectConfig,
    /// Pairs read (including ties).
    pub n_records: usize,
    /// Ties dropped.
    pub n_ties: usize,
    /// Whether A/B orientation was randomised (all labels were A).
    pub orientation_randomised: bool,
    /// Factors dropped because they were 0 for every pair.
    pub dropped_factors: Vec<String>,
    /// steerlab version.
    pub steerlab_version: String,
}

/// The complete, serialisable dissection (this is `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DissectResult {
    /// One entry per group.
    pub groups: Vec<GroupResult>,
    /// Between-group similarity of weight vectors.
    pub similarity: Similarity,
    /// Between-group agreement of factor rankings.
    pub agreement: Agreement,
    /// Settings and counts.
    pub settings: Settings,
    /// Factor definitions (name, label, source, kind, encoding, definition).
    pub factor_definitions: Vec<FactorInfo>,
    /// Annotator groups found in the data (`steerlab dissect --annotator-groups`), each with
    /// its members and refitted weights; absent when not asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotator_groups: Vec<crate::dissect::groups::AnnotatorGroup>,
    /// How those groups were found (K, BIC, per-annotator weights, pooled and group fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotator_grouping: Option<crate::dissect::groups::GroupingSummary>,
}

/// A fit together with the design it was fitted on (for waterfalls and the GUI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DissectOutput {
    /// The report.
    pub result: DissectResult,
    /// The design matrix.
    pub design: Design,
}

/// One factor's contribution to one pair's logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaterfallStep {
    /// Factor name.
    pub name: String,
    /// Factor label.
    pub label: String,
    /// Feature value x_j of the pair.
    pub x: f64,
    /// Posterior-mean weight w_j.
    pub weight: f64,
    /// w_j·x_j.
    pub contribution: f64,
}

/// Per-pair contribution breakdown: logit(P(A preferred)) = Σ w_j x_j.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waterfall {
    /// Pair id.
    pub pair_id: String,
    /// Group whose weights were used.
    pub group: String,
    /// Non-zero contributions, largest |w·x| first.
    pub steps: Vec<WaterfallStep>,
    /// Total logit.
    pub logit: f64,
    /// Model probability that A is preferred.
    pub prob_a: f64,
    /// The observed label: true when A was preferred.
    pub a_preferred: bool,
}

/// Pearson/Spearman similarity and Kendall-τ agreement between every pair of groups.
pub fn compare_groups(groups: &[GroupResult]) -> (Similarity, Agreement) {
    let labels: Vec<String> = groups.iter().map(|g| g.label.clone()).collect();
    let means: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| g.factors.iter().map(|f| f.mean).collect())
        .collect();
    let n = groups.len();
    let mut pe = vec![vec![1.0; n]; n];
    let mut sp = vec![vec![1.0; n]; n];
    let mut kt = vec![vec![1.0; n]; n];
    let mut pairs = Vec::new();
    for a in 0..n {
        for b in (a + 1)..n {
            pe[a][b] = pearson(&means[a], &means[b]);
            sp[a][b] = spearman(&means[a], &means[b]);
            kt[a][b] = kendall_tau_b(&means[a], &means[b]);
            pe[b][a] = pe[a][b];
            sp[b][a] = sp[a][b];
            kt[b][a] = kt[a][b];
            let opposite = groups[a]
                .factors
                .iter()
                .zip(&groups[b].factors)
                .filter(|(x, y)| (x.lo95 > 0.0 && y.hi95 < 0.0) || (x.hi95 < 0.0 && y.lo95 > 0.0))
                .map(|(x, _)| x.name.clone())
                .collect();
            pairs.push(PairAgreement {
                a: labels[a].clone(),
                b: labels[b].clone(),
                kendall_tau: kt[a][b],
                opposite_sign_factors: opposite,
            });
        }
    }
    (
        Similarity {
            labels: labels.clone(),
            pearson: pe,
            spearman: sp,
        },
        Agreement {
            labels,
            kendall_tau: kt,
            pairs,
        },
    )
}

impl DissectOutput {
    /// Index of the pair with this id in the design.
    pub fn pair_index(&self, id: &str) -> Option<usize> {
        self.design.ids.iter().position(|x| x == id)
    }

    /// Index of the group this pair belongs to.
    pub fn group_of(&self, pair: usize) -> Option<usize> {
        let label = group_label(self.design.group.get(pair)?);
        self.result.groups.iter().position(|g| g.label == label)
    }

    /// The contribution breakdown of pair `pair` (design index, original A/B orientation)
    /// under the posterior means of group `group` (default: the pair's own group).
    pub fn waterfall(&self, pair: usize, group: Option<usize>) -> Option<Waterfall> {
        let gi = match group {
            Some(g) => g,
            None => self.group_of(pair)?,
        };
        let g = self.result.groups.get(gi)?;
        let x = self.design.x.get(pair)?;
        let mut steps: Vec<WaterfallStep> = g
            .factors
            .iter()
            .zip(x)
            .filter(|(_, xv)| **xv != 0.0)
            .map(|(f, xv)| WaterfallStep {
                name: f.name.clone(),
                label: f.label.clone(),
                x: *xv,
                weight: f.mean,
                contribution: f.mean * xv,
            })
            .collect();
        steps.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        let logit: f64 = steps.iter().map(|s| s.contribution).sum();
        Some(Waterfall {
            pair_id: self.design.ids[pair].clone(),
            group: g.label.clone(),
            steps,
            logit,
            prob_a: sigmoid(logit),
            a_preferred: self.design.a_preferred[pair],
        })
    }
}
