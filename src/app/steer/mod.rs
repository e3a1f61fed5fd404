//! The Steer feature: train (BiPO, CAA, PCA), combine, slide, sweep and export steering
//! vectors. `state.rs`: what it owns ([`SteerState`], a field of `AppState`); `actions.rs`:
//! its jobs and actions; `panel.rs`: the view.
mod actions;
mod panel;
mod state;

pub use actions::{score_and_generate, train, ScoreResult};
pub use panel::SteerPanel;
pub use state::*;
