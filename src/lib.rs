//! steerlab: activation steering and preference interpretability for language models.
//!
//! The library owns all computation; the `app` (GUI) and `cli` modules only call it.
pub mod data;
pub mod dissect;
pub mod jobs;
pub mod model;
pub mod numeric;
pub mod paths;
pub mod report;
pub mod sae;
pub mod serve;
pub mod steer;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub mod app;
pub mod cli;
