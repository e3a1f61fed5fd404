//! [`Source`]: what `Model::build` needs besides the weights. Must not read files.
use std::path::PathBuf;

use super::config::ModelConfig;
use crate::model::tokenizer::TextTokenizer;

/// What a model is built from besides its weights.
pub(crate) struct Source {
    pub config: ModelConfig,
    pub config_json: serde_json::Value,
    pub name: String,
    /// The tokenizer and the file it came from (for error messages).
    pub tokenizer: Option<(TextTokenizer, PathBuf)>,
}
