//! The Data feature: open, check, map and split a preference dataset. `state.rs`: opening on a
//! job, the checked view of a file ([`DataView`], kept in `AppState::datasets`), splitting;
//! `panel.rs`: the view.
mod panel;
mod state;

pub use panel::DataPanel;
pub use state::*;
