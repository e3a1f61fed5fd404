//! Errors of the dissection module.
use std::path::PathBuf;

/// Everything that can go wrong while extracting factors, fitting or reading judgements.
#[derive(Debug, thiserror::Error)]
pub enum DissectError {
    /// A judgements file could not be read.
    #[error("cannot read {path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a JSONL judgements file is not a valid judgement.
    #[error("{path} line {line}: {message}", path = .path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (names the field).
        message: String,
    },
    /// A factor annotation is unusable (e.g. not finite).
    #[error("pair {id}: factor `{factor}`: {message}")]
    BadFactor {
        /// Pair id.
        id: String,
        /// Factor name.
        factor: String,
        /// What is wrong.
        message: String,
    },
    /// An unknown factor source, group key or option value.
    #[error("{0}")]
    BadOption(String),
    /// Nothing to fit (no non-tie pairs, no factors, empty group, ...).
    #[error("nothing to fit: {0}")]
    Empty(String),
    /// A numerical failure (non-finite potential at initialisation, singular system, ...).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// The user cancelled the job.
    #[error("cancelled")]
    Cancelled,
}
