//! WIMHF-style feature discovery on preference data: embed both responses of each
//! pair, train a sparse autoencoder on the embedding differences, interpret its features (top
//! pairs, distinctive n-grams, optional local-LLM descriptions with fidelity), measure which
//! features the labels reward (logistic regression, LASSO, held-out AUC) and write SAELens-layout
//! outputs with reports, map and cluster the features ([`atlas`]), and link features to steering vectors. Must not contain model internals (the engine owns those), file-format
//! readers for datasets (the data layer owns those) or GUI/CLI code.
pub mod atlas;
pub mod dense;
pub mod embed;
pub mod encode;
mod error;
pub mod import;
pub mod interpret;
pub mod link;
pub mod llm;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod saelens;
pub mod stats;

pub use atlas::{Atlas, AtlasConfig, Representation};
pub use embed::{Embedder, MiniLmEmbedder};
pub use error::SaeError;
pub use link::{feature_vector, project_steering_vector, project_vector, SaeFolder, VectorScale};
pub use model::{train_sae, Sae, SaeConfig, StepMetrics, TrainHistory};
pub use output::{read_outputs, read_sae, write_outputs, write_outputs_with, write_sae};
pub use pipeline::{
    analyse, build_atlas, embed_pairs_layers, run, PairSet, RunOptions, RunResult, SaeReport,
};
