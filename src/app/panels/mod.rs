//! The workbench's panels. Each is a small struct in its own file implementing [`Panel`]; the
//! shell shows the one selected in the sidebar. To add a panel: write its file, add a variant
//! to [`PanelId`] and its arms in `PanelId::{title, key, create}` (the compiler lists them).
use eframe::egui;
use serde::{Deserialize, Serialize};

use super::state::AppState;

mod data;
mod dissect;
mod features;
mod generate;
mod model;
mod steer;

pub use data::DataPanel;
pub use dissect::DissectPanel;
pub use features::FeaturesPanel;
pub use generate::GeneratePanel;
pub use model::ModelPanel;
pub use steer::SteerPanel;

/// A view over [`AppState`]. Panels hold only view state (text being typed, selections).
pub trait Panel {
    /// Draws the panel into the central area.
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState);
}

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

    /// A fresh panel of this kind.
    pub fn create(self) -> Box<dyn Panel> {
        match self {
            PanelId::Model => Box::new(ModelPanel::default()),
            PanelId::Generate => Box::new(GeneratePanel::default()),
            PanelId::Data => Box::new(DataPanel::default()),
            PanelId::Features => Box::new(FeaturesPanel::default()),
            PanelId::Steer => Box::new(SteerPanel::default()),
            PanelId::Dissect => Box::new(DissectPanel::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for p in PanelId::ALL {
            assert_eq!(PanelId::from_key(p.key()), Some(*p));
            assert_eq!(PanelId::from_key(&p.key().to_uppercase()), Some(*p));
        }
        assert_eq!(PanelId::from_key("steer-typo"), None);
    }
}
