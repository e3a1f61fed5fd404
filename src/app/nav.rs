//! Navigation: which panel ([`PanelId`]: sidebar order, titles, the `STEERLAB_PANEL` keys,
//! the persisted last panel) and cross-links between panels ([`Navigation`], [`Selection`]).
//! No view code: state code names panels through this module, never through a view type.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::artifacts::Artifact;

/// Which panel; also the persisted "last panel" and the `STEERLAB_PANEL` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PanelId {
    /// Load a model and see its shape.
    Model,
    /// Prompt the model, streamed.
    Generate,
    /// Open, check, map and split a preference dataset.
    Data,
    /// Train, combine, slide and export steering vectors.
    Steer,
    /// Feature discovery (SAE on preference embedding differences).
    Features,
    /// Factor-level dissection of preference labels.
    Dissect,
}

impl PanelId {
    /// Every panel, in sidebar order.
    pub const ALL: &'static [PanelId] = &[
        PanelId::Model,
        PanelId::Generate,
        PanelId::Data,
        PanelId::Steer,
        PanelId::Features,
        PanelId::Dissect,
    ];

    /// The sidebar label.
    pub fn title(self) -> &'static str {
        match self {
            PanelId::Model => "Model",
            PanelId::Generate => "Generate",
            PanelId::Data => "Data",
            PanelId::Features => "Features",
            PanelId::Steer => "Steer",
            PanelId::Dissect => "Dissect",
        }
    }

    /// The lowercase key used by `STEERLAB_PANEL`.
    pub fn key(self) -> &'static str {
        match self {
            PanelId::Model => "model",
            PanelId::Generate => "generate",
            PanelId::Data => "data",
            PanelId::Features => "features",
            PanelId::Steer => "steer",
            PanelId::Dissect => "dissect",
        }
    }

    /// Parses a key (case-insensitive).
    pub fn from_key(key: &str) -> Option<PanelId> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.key().eq_ignore_ascii_case(key.trim()))
    }

    /// The panel that opens `a`: the one it names, else its kind's default owner (`None` when
    /// this build has neither, e.g. settings written by a build with other panels).
    pub fn owner_of(a: &Artifact) -> Option<PanelId> {
        PanelId::from_key(&a.owner).or_else(|| PanelId::from_key(a.kind.default_owner()))
    }
}

/// What a cross-link points at; the target panel decides what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Open an artifact (clicked in the sidebar).
    Artifact(Artifact),
    /// A feature of an SAE (feature → steering vector: train on the pairs it fires on).
    Feature {
        /// The SAE folder.
        sae: PathBuf,
        /// Feature index.
        index: usize,
    },
    /// A steering vector (vector → dissection factor: use its projection as a factor).
    Vector {
        /// The vector file.
        path: PathBuf,
        /// Layer, if one of several.
        layer: Option<usize>,
    },
    /// A dissection factor (factor → its top pairs).
    Factor {
        /// Factor name.
        name: String,
    },
    /// Rows of a dataset (e.g. a factor's or a feature's top pairs), best first.
    Pairs {
        /// The dataset file.
        dataset: PathBuf,
        /// Record indices into it.
        rows: Vec<usize>,
        /// Why these rows ("top pairs of factor `length`").
        label: String,
    },
}

/// A pending request to show `panel` with `selection`.
#[derive(Debug, Clone, PartialEq)]
pub struct Navigation {
    /// The panel to show.
    pub panel: PanelId,
    /// What it should select.
    pub selection: Selection,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::artifacts::{ArtifactKind, Artifacts};

    #[test]
    fn keys_round_trip() {
        for p in PanelId::ALL {
            assert_eq!(PanelId::from_key(p.key()), Some(*p));
            assert_eq!(PanelId::from_key(&p.key().to_uppercase()), Some(*p));
        }
        assert_eq!(PanelId::from_key("steer-typo"), None);
    }

    #[test]
    fn owner_falls_back_to_the_kind_default_and_survives_unknown_keys() {
        let mut a = Artifacts::default();
        a.add_owned("no-such-panel", ArtifactKind::Dataset, "d", "/d.csv");
        a.add(ArtifactKind::Model, "m", "/m.gguf");
        let v: Vec<_> = a.iter().map(PanelId::owner_of).collect();
        assert_eq!(v, [Some(PanelId::Model), Some(PanelId::Data)]);
        // Round trip through JSON keeps everything, including the unknown owner key.
        let s = serde_json::to_string(&a).unwrap();
        let back: Artifacts = serde_json::from_str(&s).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.iter().nth(1).unwrap().owner, "no-such-panel");
    }
}
