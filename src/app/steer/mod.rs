//! The Steer feature: train (BiPO, CAA, PCA, probe), combine, slide, sweep and export steering
//! vectors. `state.rs`: what it owns ([`SteerState`], a field of `AppState`); `actions.rs`:
//! its jobs and actions; `panel.rs`: the view; `landscape.rs`: the layer × strength sweep
//! and its Pareto front (state, job and view of that section).
mod actions;
pub mod landscape;
mod panel;
mod state;

pub use actions::{score_and_generate, train, ScoreResult};
pub use panel::SteerPanel;
pub use state::*;
