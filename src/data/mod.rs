//! Preference data: record types, readers for JSONL/JSON/CSV/Parquet, format detection and
//! column mapping, validation with file/line/field errors, splits, planted synthetic data and
//! the real default sets. Must not contain model or statistics code.
mod types;
pub use types::*;
