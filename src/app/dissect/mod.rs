//! The Dissect feature: factor-level dissection of preference labels. `state.rs`: settings,
//! the fit job, report export and the vector → factor link; `panel.rs`: the view (settings and
//! results), with its larger views beside it: `forest.rs` (forest plot and top pairs),
//! `judges.rs` (judge versus judge), `waterfall.rs` (one pair's contributions), `groups.rs` (annotator groups against the pooled fit), `causal.rs` (the causal dissection, issue 24); `style.rs` what they share.
pub mod causal;
mod forest;
mod groups;
mod judges;
mod panel;
mod state;
mod style;
mod waterfall;

pub use panel::DissectPanel;
pub use state::*;
