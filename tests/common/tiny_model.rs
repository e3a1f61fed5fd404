//! The tiny seeded random-init Llama HF folder of `steerlab::testing` under the names the GUI
//! steering tests use (`#[path]`-included by tests/app_steer.rs). Test scaffolding only.
pub use steerlab::testing::{write_tiny_llama as write, TINY_HIDDEN as HIDDEN};
