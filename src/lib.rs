//! steerlab: activation steering and preference interpretability for language models.
//!
//! The library owns all computation; the `app` (GUI) and `cli` modules only call it.
pub mod bench;
pub mod data;
pub mod dissect;
pub mod jobs;
pub mod model;
pub mod paths;
pub mod report;
pub mod sae;
pub mod steer;

pub mod app;
pub mod cli;
