//! `steerlab serve`: an OpenAI-compatible local HTTP server where each request may choose its
//! steering vectors by name (`"steering": [{"vector": NAME, "scale": S}]`).
//!
//! - [`request`]: parsing and validation of request bodies (errors name the field).
//! - [`vectors`]: the vectors a server may apply, by name, and the hooks of a request.
//! - [`scheduler`]: the worker that owns the model and interleaves token steps of concurrent
//!   requests, with a bounded queue and cancellation on client disconnect.
//! - [`server`]: the axum router, API key, body limit, JSON and server-sent-event answers.
//!
//! Design notes: `docs/design/serve.md`. Sampling and hooks are the engine's
//! ([`crate::model::Generation`]), so a greedy steered request gives what
//! `steerlab generate --steer` gives.
pub mod config;
mod error;
pub mod request;
pub mod scheduler;
pub mod server;
pub mod vectors;

pub use config::{Limits, ServeConfig};
pub use error::{Result, ServeError};
pub use server::Server;
pub use vectors::VectorStore;
