//! The Generate feature: prompt the loaded model, streamed. `state.rs`: settings and the
//! streaming call; `panel.rs`: the view (it owns its running generation).
mod panel;
mod state;

pub use panel::GeneratePanel;
pub use state::*;
