//! The Features feature (WIMHF feature discovery): SAE runs on preference embedding
//! differences. `state.rs`: runs, settings, live metrics and the actions on them; `panel.rs`:
//! the view; `imported.rs`: imported SAELens SAEs and runs applied to new data; `atlas.rs`: the
//! feature map and cluster views.
mod atlas;
pub mod imported;
mod panel;
mod state;

pub use panel::FeaturesPanel;
pub use state::*;
