//! Errors of the steering module. Every variant that concerns a file names it.
use std::path::PathBuf;

/// An error from the steering module.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// I/O failure on a named file.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A vector file could not be parsed; `field` names the key or tensor at fault.
    #[error("{}: {}{}", .path.display(), if .field == "-" || .field.is_empty() { String::new() } else { format!("{}: ", .field) }, .message)]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The metadata key or tensor name at fault ("-" if none).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A vector whose width does not match the model (or another vector).
    #[error("{what}: vector width {got} does not match the model's hidden size {expected}")]
    WidthMismatch {
        /// The vector (its file when it came from one).
        what: String,
        /// The model's hidden size.
        expected: usize,
        /// The vector's width.
        got: usize,
    },
    /// A layer index outside the model.
    #[error(
        "{what}: layer {layer} does not exist (the model has {n_layers} blocks, 0..{n_layers})"
    )]
    LayerOutOfRange {
        /// The vector or option at fault.
        what: String,
        /// The requested layer.
        layer: usize,
        /// The model's block count.
        n_layers: usize,
    },
    /// Invalid arguments or data given to an algorithm.
    #[error("{0}")]
    Invalid(String),
    /// Training diverged (NaN or infinite loss); the last good vector is kept.
    #[error("training stopped at step {step}: the loss became {value} (not finite); the last good vector (from step {last_good_step}) was kept — lower the learning rate or beta")]
    NonFinite {
        /// The step where it happened.
        step: usize,
        /// The offending loss value.
        value: f64,
        /// The step of the kept vector.
        last_good_step: usize,
    },
    /// An error from the model engine.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for the steering module.
pub type Result<T> = std::result::Result<T, SteerError>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SteerError + '_ {
    move |source| SteerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn bad(
    path: &std::path::Path,
    field: impl Into<String>,
    message: impl Into<String>,
) -> SteerError {
    SteerError::BadFile {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}
