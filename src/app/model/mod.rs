//! The Model feature: load a model (HF folder or GGUF) and see its shape. `state.rs`: loading
//! and the summary shown (the model itself is `AppState::model`); `panel.rs`: the view.
mod panel;
mod state;

pub use panel::ModelPanel;
pub use state::*;
