//! Errors of model loading and running. Every variant names the file and/or field at fault.
use std::path::PathBuf;

/// An error from the model module.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A required file is missing.
    #[error("{path}: missing ({what})", path = .path.display())]
    MissingFile {
        /// The path that was expected.
        path: PathBuf,
        /// What it should have contained.
        what: String,
    },
    /// A file could not be read or parsed; `field` names the key/tensor involved when known.
    #[error("{}", bad_file(path, field, message))]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The field, key or tensor name at fault ("-" if none; then left out of the message).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An architecture this engine does not implement.
    #[error("{path}: unsupported architecture `{model_type}` (supported: {supported})", path = .path.display())]
    UnsupportedArchitecture {
        /// The config or GGUF file.
        path: PathBuf,
        /// The `model_type` / `general.architecture` value.
        model_type: String,
        /// The values that are supported there, comma-separated.
        supported: String,
    },
    /// A hook name that does not exist (`blocks.{l}.hook_resid_post`, ...).
    #[error("bad hook point `{0}`")]
    BadHook(String),
    /// A vector whose width does not match the model.
    #[error("{what}: width {got} does not match the model's hidden size {expected}")]
    WidthMismatch {
        /// Which vector / hook.
        what: String,
        /// The model's hidden size.
        expected: usize,
        /// The vector's width.
        got: usize,
    },
    /// Invalid arguments to a model call (token ids out of range, empty batch, bad device...).
    #[error("{0}")]
    InvalidInput(String),
    /// The running job was asked to stop (see `crate::jobs::interrupt_scope`); nothing was
    /// changed by the interrupted pass.
    #[error("interrupted: the job was asked to stop")]
    Interrupted,
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Chat template failure.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// I/O failure.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `PATH: FIELD: MESSAGE`, or `PATH: MESSAGE` when no field is named (`-`).
fn bad_file(path: &std::path::Path, field: &str, message: &str) -> String {
    if field.is_empty() || field == "-" {
        format!("{}: {message}", path.display())
    } else {
        format!("{}: {field}: {message}", path.display())
    }
}

/// Result alias for the model module.
pub type Result<T> = std::result::Result<T, ModelError>;

/// [`ModelError::Interrupted`] when this thread's job was asked to stop
/// (`crate::jobs::interrupt_scope`), so a Stop during training lands within one block.
pub(crate) fn check_interrupt() -> Result<()> {
    if crate::jobs::interrupt_requested() {
        return Err(ModelError::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ModelError;

    #[test]
    fn a_bad_file_without_a_field_has_no_stray_dash() {
        let e = |field: &str| ModelError::BadFile {
            path: "m.gguf".into(),
            field: field.into(),
            message: "truncated".into(),
        };
        assert_eq!(e("-").to_string(), "m.gguf: truncated");
        assert_eq!(e("").to_string(), "m.gguf: truncated");
        assert_eq!(
            e("blk.0.ffn_up").to_string(),
            "m.gguf: blk.0.ffn_up: truncated"
        );
    }
}
