//! The views: the [`Panel`] trait every feature's `panel.rs` implements, and [`create`], the
//! one place that maps a [`PanelId`] to its view. To add a panel: a folder
//! `src/app/<feature>/` with `state.rs` (what it owns, its jobs; a field of `AppState`) and
//! `panel.rs` (the view), a `PanelId` variant (`super::nav`) and its arm here; the compiler
//! lists the `match` arms to fill.
use eframe::egui;

use super::nav::PanelId;
use super::state::AppState;

/// A view over [`AppState`]. Panels hold only view state (text being typed, selections); they
/// change state directly or queue an `AppCommand` (`state.send`) that the shell applies after
/// the frame.
pub trait Panel {
    /// Draws the panel into the central area.
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState);
}

/// A fresh view of panel `id`.
pub fn create(id: PanelId) -> Box<dyn Panel> {
    match id {
        PanelId::Model => Box::new(super::model::ModelPanel::default()),
        PanelId::Generate => Box::new(super::generate::GeneratePanel::default()),
        PanelId::Data => Box::new(super::data::DataPanel::default()),
        PanelId::Features => Box::new(super::features::FeaturesPanel),
        PanelId::Steer => Box::new(super::steer::SteerPanel::default()),
        PanelId::Dissect => Box::new(super::dissect::DissectPanel::default()),
    }
}
