//! Errors of the dissection module.
/// Everything that can go wrong while extracting factors or fitting.
#[derive(Debug, thiserror::Error)]
pub enum DissectError {
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
    /// A factor source could not read its file or run its model.
    #[error("factor source: {0}")]
    Source(String),
    /// The user cancelled the job.
    #[error("cancelled")]
    Cancelled,
}
