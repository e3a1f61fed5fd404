//! Errors of the SAE module. Each names the file, row or setting at fault.
use std::path::PathBuf;

/// An error from feature discovery.
#[derive(Debug, thiserror::Error)]
pub enum SaeError {
    /// A setting is out of range or inconsistent.
    #[error("SAE settings: {0}")]
    Config(String),
    /// The data cannot be used (too few pairs, no labels, ...).
    #[error("{0}")]
    Data(String),
    /// A file could not be read, parsed or written.
    #[error("{path}: {message}", path = .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The embedding model failed.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl SaeError {
    /// A file error.
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        SaeError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
