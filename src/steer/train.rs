//! One entry point for making a steering vector with any method (BiPO with its objective
//! family, CAA, PCA, probe), shared by the app's Steer panel and `steerlab steer train`.
//!
//! Two steps, so a caller can name its data in error messages of the first one:
//! [`prepare`] tokenizes the records as the method needs them (contrast pairs for CAA/PCA,
//! pairs or thumbs-up/down feedback for BiPO), and [`train`] runs the method on them.
use std::collections::BTreeMap;

use crate::data::Record;
use crate::jobs::ProgressSink;
use crate::model::{Model, TextTokenizer};

use super::bipo::{train_bipo, BipoConfig, BipoOutcome, Provenance, TrainData};
use super::collect::Contrast;
use super::eval::AbTokens;
use super::pca::PcaDirection;
use super::probe::{ProbeConfig, ProbeDirection};
use super::{prepare as tokens, Objective, Result, SteeringVector};

/// How a vector is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Bi-directional preference optimisation (trained).
    Bipo,
    /// Contrastive activation addition (mean difference).
    Caa,
    /// First principal component of the pair differences (repeng).
    Pca,
    /// Normal of a logistic regression separating chosen from rejected activations.
    Probe,
}

impl Method {
    /// Every method, in menu order.
    pub const ALL: [Method; 4] = [Method::Bipo, Method::Caa, Method::Pca, Method::Probe];

    /// Lowercase name (`bipo`, `caa`, `pca`, `probe`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Bipo => "bipo",
            Method::Caa => "caa",
            Method::Pca => "pca",
            Method::Probe => "probe",
        }
    }

    /// Parses a name (case-insensitive, surrounding blanks ignored).
    pub fn from_name(s: &str) -> Option<Method> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// Training records tokenized for one method (see [`prepare`]).
pub enum Prepared {
    /// CAA, PCA or probe contrast pairs.
    Contrasts {
        /// [`Method::Caa`], [`Method::Pca`] or [`Method::Probe`].
        method: Method,
        /// The pairs.
        contrasts: Vec<Contrast>,
    },
    /// BiPO pairs or feedback.
    Bipo(TrainData),
}

impl Prepared {
    /// The method these inputs are for.
    pub fn method(&self) -> Method {
        match self {
            Prepared::Contrasts { method, .. } => *method,
            Prepared::Bipo(_) => Method::Bipo,
        }
    }

    /// Number of training items (pairs, A/B items or feedback rows).
    pub fn len(&self) -> usize {
        match self {
            Prepared::Contrasts { contrasts, .. } => contrasts.len(),
            Prepared::Bipo(d) => d.len(),
        }
    }

    /// True when there is nothing to train on.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokenizes `records` for `method`: contrast pairs for CAA (read at the answer letter), PCA
/// and the probe (last token), BiPO training data for `objective` (feedback for `bco`, pairs otherwise).
pub fn prepare(
    tok: &TextTokenizer,
    records: &[Record],
    method: Method,
    objective: Objective,
) -> Result<Prepared> {
    Ok(match method {
        Method::Caa | Method::Pca | Method::Probe => Prepared::Contrasts {
            method,
            contrasts: tokens::contrasts(tok, records, method == Method::Caa)?,
        },
        Method::Bipo => Prepared::Bipo(tokens::train_data(tok, records, objective)?),
    })
}

/// What [`train`] made, per method.
pub enum Trained {
    /// A CAA vector.
    Caa {
        /// The vector.
        vector: SteeringVector,
        /// Contrast pairs used.
        pairs: usize,
    },
    /// A PCA vector and its per-layer fit statistics.
    Pca {
        /// The vector.
        vector: SteeringVector,
        /// Contrast pairs used.
        pairs: usize,
        /// Explained variance and agreement per layer.
        stats: BTreeMap<usize, PcaDirection>,
    },
    /// A probe vector and its per-layer fit statistics.
    Probe {
        /// The vector.
        vector: SteeringVector,
        /// Contrast pairs used.
        pairs: usize,
        /// Training accuracy and pair agreement per layer.
        stats: BTreeMap<usize, ProbeDirection>,
    },
    /// A BiPO run (its vector is the last good one when cancelled or diverged).
    Bipo {
        /// The run.
        outcome: BipoOutcome,
        /// Training items.
        items: usize,
        /// Warm-up steps used.
        warmup_steps: usize,
    },
}

impl Trained {
    /// The vector made.
    pub fn vector(&self) -> &SteeringVector {
        match self {
            Trained::Caa { vector, .. }
            | Trained::Pca { vector, .. }
            | Trained::Probe { vector, .. } => vector,
            Trained::Bipo { outcome, .. } => &outcome.vector,
        }
    }

    /// The vector made, by value.
    pub fn into_vector(self) -> SteeringVector {
        match self {
            Trained::Caa { vector, .. }
            | Trained::Pca { vector, .. }
            | Trained::Probe { vector, .. } => vector,
            Trained::Bipo { outcome, .. } => outcome.vector,
        }
    }
}

/// Trains a vector on `data` with the method it was prepared for. `cfg.layers` are the steered
/// blocks for every method; BiPO uses the rest of `cfg` (and scores `heldout` A/B items at ±1
/// after each epoch); CAA, PCA and the probe (default [`ProbeConfig`]) read activations `batch_size` contrasts per forward pass.
pub fn train(
    model: &Model,
    data: &Prepared,
    heldout: Option<&[AbTokens]>,
    cfg: &BipoConfig,
    batch_size: usize,
    prov: &Provenance,
    sink: &dyn ProgressSink,
) -> Result<Trained> {
    let (model_name, dataset) = (prov.model.as_str(), prov.dataset.as_str());
    Ok(match data {
        Prepared::Contrasts {
            method: Method::Pca,
            contrasts,
        } => {
            let (vector, stats) = super::pca::train_pca(
                model,
                contrasts,
                &cfg.layers,
                batch_size,
                model_name,
                dataset,
                sink,
            )?;
            Trained::Pca {
                vector,
                pairs: contrasts.len(),
                stats,
            }
        }
        Prepared::Contrasts {
            method: Method::Probe,
            contrasts,
        } => {
            let (vector, stats) = super::probe::train_probe(
                model,
                contrasts,
                &cfg.layers,
                batch_size,
                &ProbeConfig::default(),
                model_name,
                dataset,
                sink,
            )?;
            Trained::Probe {
                vector,
                pairs: contrasts.len(),
                stats,
            }
        }
        Prepared::Contrasts { contrasts, .. } => Trained::Caa {
            vector: super::caa::train_caa(
                model,
                contrasts,
                &cfg.layers,
                batch_size,
                model_name,
                dataset,
                sink,
            )?,
            pairs: contrasts.len(),
        },
        Prepared::Bipo(d) => Trained::Bipo {
            outcome: train_bipo(model, d, heldout, cfg, prov, sink)?,
            items: d.len(),
            warmup_steps: cfg.warmup_for(cfg.total_steps(d.len())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
            assert_eq!(
                Method::from_name(&format!(" {} ", m.name().to_uppercase())),
                Some(m)
            );
        }
        assert_eq!(Method::from_name("lora"), None);
    }
}
