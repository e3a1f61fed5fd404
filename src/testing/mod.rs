//! Test support shared by the integration tests, unit tests and examples (feature `testing`,
//! switched on for `cargo test` by the crate's dev-dependency on itself): model fixtures and
//! tiny random-init models ([`models`]), and closeness measures and assertions for tensors
//! ([`close`]), and what fuzzing feeds each file reader ([`fuzz`]).
//!
//! Helpers here may panic (they are for tests). Nothing in the library or the binary may use
//! this module: it is absent from a plain `cargo build`.
pub mod close;
pub mod fuzz;
pub mod models;

pub use crate::cli::bench::random_model;
pub use close::{assert_close, max_abs, max_abs_diff, rel_err};
pub use models::{
    default_model, fixture, fixture_path, load_fixture, tiny_llama, write_sharded,
    write_tiny_llama, SHARD_FILES, TINY_HIDDEN,
};
