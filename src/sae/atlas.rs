//! The feature atlas of an SAE run: a 2-D map of the features and clusters of related ones.
//!
//! 1. **Representation** of each feature: its decoder direction (unit norm, `W_dec` row), or its
//!    activation profile over the pairs (the column of `activations`, scaled to unit norm so
//!    that frequency does not dominate; a feature that never fires is the zero profile).
//! 2. **Projection**: PCA of those rows (linfa-reduction, `crate::numeric::cluster::pca`) on up
//!    to [`CLUSTER_DIMS`] components. The map shows the first two; the clusters use all kept
//!    components (less noise than the raw width, and fast for thousands of features).
//! 3. **Clusters**: seeded k-means (linfa-clustering) in that space; K fixed, or `auto`: the K
//!    in 2..=min(10, M − 1) with the best silhouette (ties: the smaller K). Clusters are
//!    ordered by size (then by their smallest feature index) and named by the labels of their
//!    top features (largest |effect on preference|, else most prevalent).
//!
//! `crate::sae::pipeline::build_atlas` builds it from a run's report; this file knows only the
//! SAE and a [`FeatureSummary`] per feature.
//!
//! t-SNE (linfa-tsne) is not used: its initial embedding takes no seed, so the map would change
//! from run to run (docs/design/linfa.md). Same inputs and seed: the same atlas.
use super::error::SaeError;
use super::model::Sae;
use crate::numeric::cluster::{self, ClusterCount};
use serde::{Deserialize, Serialize};

/// Largest number of principal components the clusters are found in.
pub const CLUSTER_DIMS: usize = 10;
/// Largest K tried by `auto`.
pub const MAX_AUTO_CLUSTERS: usize = 10;

/// What each feature is represented by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Representation {
    /// The decoder direction (`W_dec` row).
    #[default]
    Decoder,
    /// The activation profile over the pairs (unit-norm column of the activations).
    Activations,
}

impl std::str::FromStr for Representation {
    type Err = SaeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "decoder" => Ok(Representation::Decoder),
            "activations" | "profiles" => Ok(Representation::Activations),
            other => Err(SaeError::Config(format!(
                "unknown atlas representation `{other}` (expected `decoder` or `activations`)"
            ))),
        }
    }
}

/// Settings of an atlas.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AtlasConfig {
    /// Feature representation.
    pub representation: Representation,
    /// Number of clusters.
    pub clusters: ClusterCount,
    /// Seed of k-means.
    pub seed: u64,
}

/// One feature on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturePoint {
    /// Latent index.
    pub index: usize,
    /// First map coordinate (PC 1).
    pub x: f64,
    /// Second map coordinate (PC 2).
    pub y: f64,
    /// Cluster number.
    pub cluster: usize,
    /// Effect on preference (log-odds per sd), when fitted.
    pub effect: Option<f64>,
    /// Fraction of pairs where the feature fires.
    pub prevalence: f64,
    /// Short label: the description, else the distinctive words.
    pub label: String,
    /// The top pair: its id and the start of the feature's side.
    pub top_pair: Option<String>,
}

/// One cluster of features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCluster {
    /// Cluster number (position in [`Atlas::clusters`]).
    pub id: usize,
    /// Name: the labels of its top two features.
    pub name: String,
    /// Member features, top features first (by |effect|, else prevalence).
    pub members: Vec<usize>,
    /// Mean effect on preference of the members that have one.
    pub mean_effect: Option<f64>,
    /// Map position of the cluster's centre (mean of its members' x and y).
    pub centre: [f64; 2],
}

/// The map and clusters of an SAE's features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Atlas {
    /// The settings used.
    pub config: AtlasConfig,
    /// Principal components the clusters were found in.
    pub components: usize,
    /// Share of the representation's variance on the map's two axes.
    pub explained: [f64; 2],
    /// Share of the variance in all kept components.
    pub explained_kept: f64,
    /// The number of clusters.
    pub k: usize,
    /// Silhouette of the chosen partition (in the cluster space); none with one cluster.
    pub silhouette: Option<f64>,
    /// `auto` only: (K, silhouette) for every K tried.
    pub k_scores: Vec<(usize, f64)>,
    /// The features, in index order.
    pub points: Vec<FeaturePoint>,
    /// The clusters, largest first.
    pub clusters: Vec<FeatureCluster>,
}

/// What the atlas needs to know about one feature besides the SAE (made from a run's report
/// by `crate::sae::pipeline::build_atlas`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSummary {
    /// Latent index.
    pub index: usize,
    /// Fraction of pairs where it fires.
    pub prevalence: f64,
    /// Effect on preference, when fitted.
    pub effect: Option<f64>,
    /// Short label.
    pub label: String,
    /// The top pair, as text.
    pub top_pair: Option<String>,
}

/// The rows the atlas is computed from (one per feature), see the module docs.
fn representation(
    sae: &Sae,
    activations: Option<&[f32]>,
    rep: Representation,
) -> Result<Vec<Vec<f64>>, SaeError> {
    let m = sae.d_sae;
    match rep {
        Representation::Decoder => Ok((0..m)
            .map(|j| sae.direction(j).iter().map(|v| *v as f64).collect())
            .collect()),
        Representation::Activations => {
            let acts = activations.ok_or_else(|| {
                SaeError::Data("the activation-profile atlas needs the run's activations".into())
            })?;
            if acts.is_empty() || acts.len() % m != 0 {
                return Err(SaeError::Data(format!(
                    "activations hold {} values, not a multiple of {m} features",
                    acts.len()
                )));
            }
            let n = acts.len() / m;
            let mut rows: Vec<Vec<f64>> = (0..m)
                .map(|j| (0..n).map(|i| acts[i * m + j] as f64).collect())
                .collect();
            for r in &mut rows {
                if let Some(v) = r.iter().find(|v| !v.is_finite()) {
                    return Err(SaeError::Data(format!("activations hold {v}")));
                }
                let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm > 0.0 {
                    r.iter_mut().for_each(|v| *v /= norm);
                }
            }
            Ok(rows)
        }
    }
}

fn cluster_err(e: cluster::ClusterError) -> SaeError {
    SaeError::Data(format!("feature atlas: {e}"))
}

/// Builds the atlas of `sae`'s features. `features` (one per latent, in index order) gives
/// labels, effects, prevalence and top pairs; `activations` (`[pairs, latents]`) is needed for
/// [`Representation::Activations`]. Needs at least 3 features; a fixed K must be from 2 to the
/// number of features.
pub fn build(
    sae: &Sae,
    features: &[FeatureSummary],
    activations: Option<&[f32]>,
    cfg: &AtlasConfig,
) -> Result<Atlas, SaeError> {
    let m = sae.d_sae;
    if m < 3 {
        return Err(SaeError::Data(format!(
            "a feature atlas needs at least 3 features, the SAE has {m}"
        )));
    }
    if features.len() != m {
        return Err(SaeError::Data(format!(
            "the report lists {} features, the SAE has {m}",
            features.len()
        )));
    }
    if let ClusterCount::Fixed(k) = cfg.clusters {
        if k < 2 || k > m {
            return Err(SaeError::Config(format!(
                "{k} clusters: must be from 2 to the number of features ({m}), or auto"
            )));
        }
    }
    let rows = representation(sae, activations, cfg.representation)?;
    let dims = rows[0].len();
    let comps = CLUSTER_DIMS.min(m - 1).min(dims).max(2.min(dims));
    let proj = cluster::pca(&rows, comps).map_err(cluster_err)?;
    let space = &proj.scores;
    let (labels, k_scores) = match cfg.clusters {
        ClusterCount::Fixed(k) => (
            cluster::kmeans(space, k, cfg.seed)
                .map_err(cluster_err)?
                .labels,
            Vec::new(),
        ),
        ClusterCount::Auto => {
            let mut best: Option<(f64, Vec<usize>)> = None;
            let mut scores = Vec::new();
            for k in 2..=MAX_AUTO_CLUSTERS.min(m - 1) {
                let fit = cluster::kmeans(space, k, cfg.seed).map_err(cluster_err)?;
                let used = fit.labels.iter().max().map_or(0, |x| x + 1);
                if used < 2 {
                    continue;
                }
                let s = cluster::silhouette(space, &fit.labels).map_err(cluster_err)?;
                scores.push((k, s));
                if best.as_ref().is_none_or(|(b, _)| s > *b + 1e-12) {
                    best = Some((s, fit.labels));
                }
            }
            let (_, labels) = best.ok_or_else(|| {
                SaeError::Data("feature atlas: every feature falls in one cluster".into())
            })?;
            (labels, scores)
        }
    };
    let k = labels.iter().max().map_or(0, |x| x + 1);
    let silhouette = if k >= 2 {
        Some(cluster::silhouette(space, &labels).map_err(cluster_err)?).filter(|s| s.is_finite())
    } else {
        None
    };
    // Order clusters by size (largest first), then by their smallest member.
    let mut order: Vec<usize> = (0..k).collect();
    let size = |c: usize| labels.iter().filter(|&&l| l == c).count();
    let first = |c: usize| labels.iter().position(|&l| l == c).unwrap_or(usize::MAX);
    order.sort_by(|&a, &b| size(b).cmp(&size(a)).then(first(a).cmp(&first(b))));
    let mut rank = vec![0; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    let points: Vec<FeaturePoint> = features
        .iter()
        .enumerate()
        .map(|(j, f)| FeaturePoint {
            index: f.index,
            x: space[j][0],
            y: space[j].get(1).copied().unwrap_or(0.0),
            cluster: rank[labels[j]],
            effect: f.effect.filter(|c| c.is_finite()),
            prevalence: f.prevalence,
            label: f.label.clone(),
            top_pair: f.top_pair.clone(),
        })
        .collect();
    let clusters = (0..k)
        .map(|c| {
            let mut members: Vec<&FeaturePoint> =
                points.iter().filter(|p| p.cluster == c).collect();
            let key = |p: &FeaturePoint| p.effect.map_or(-1.0, f64::abs);
            members.sort_by(|a, b| {
                key(b)
                    .total_cmp(&key(a))
                    .then(b.prevalence.total_cmp(&a.prevalence))
                    .then(a.index.cmp(&b.index))
            });
            let effects: Vec<f64> = members.iter().filter_map(|p| p.effect).collect();
            let n = members.len().max(1) as f64;
            FeatureCluster {
                id: c,
                name: members
                    .iter()
                    .take(2)
                    .map(|p| p.label.clone())
                    .collect::<Vec<_>>()
                    .join(" · "),
                members: members.iter().map(|p| p.index).collect(),
                mean_effect: if effects.is_empty() {
                    None
                } else {
                    Some(effects.iter().sum::<f64>() / effects.len() as f64)
                },
                centre: [
                    members.iter().map(|p| p.x).sum::<f64>() / n,
                    members.iter().map(|p| p.y).sum::<f64>() / n,
                ],
            }
        })
        .collect();
    Ok(Atlas {
        config: *cfg,
        components: comps,
        explained: [
            proj.explained[0],
            proj.explained.get(1).copied().unwrap_or(0.0),
        ],
        explained_kept: proj.explained.iter().sum(),
        k,
        silhouette,
        k_scores,
        points,
        clusters,
    })
}
