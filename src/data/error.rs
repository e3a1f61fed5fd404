//! Errors of the data layer. Every error names the file; row-level errors also name the line
//! (or row) and, where one is to blame, the field. No I/O or parsing happens here.
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Where a record sits in its file: the 1-based record number and, for text formats, the
/// 1-based line on which it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Loc {
    /// 1-based record number (data rows only: a CSV header or blank JSONL lines do not count).
    pub row: u64,
    /// 1-based line where the record starts (JSONL, JSON, CSV); `None` for Parquet.
    pub line: Option<u64>,
    /// True when `line` counts lines of the decompressed text of a gzip or zstd file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decompressed: bool,
}

impl Loc {
    /// A record of a text file.
    pub fn line(row: u64, line: u64) -> Self {
        Self {
            row,
            line: Some(line),
            decompressed: false,
        }
    }
    /// A record of a binary (Parquet) file.
    pub fn row(row: u64) -> Self {
        Self {
            row,
            line: None,
            decompressed: false,
        }
    }
    /// The same place, marked as a line of decompressed text when `yes`.
    pub fn in_decompressed(mut self, yes: bool) -> Self {
        self.decompressed = yes;
        self
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.decompressed) {
            (Some(l), false) => write!(f, "line {l}"),
            (Some(l), true) => write!(f, "decompressed line {l}"),
            (None, _) => write!(f, "row {}", self.row),
        }
    }
}

/// Everything that can go wrong reading, validating, converting or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds no records at all.
    #[error("{}: the file is empty (no records)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Neither the extension nor the content tells which format the file is in.
    #[error("{}: cannot tell the file format ({detail}); use a .jsonl, .json, .csv, .tsv or .parquet file", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What was seen.
        detail: String,
    },
    /// The bytes of one record are malformed (bad JSON, bad CSV quoting, non-UTF-8, too long).
    #[error("{}, {loc}: {msg}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The record.
        loc: Loc,
        /// What is wrong.
        msg: String,
    },
    /// A record parsed but one of its fields is missing or has the wrong type or value.
    #[error("{}, {loc}, field `{field}`: {msg}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The record.
        loc: Loc,
        /// The field (the column name in the file).
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// The Parquet file is corrupt or uses something this reader cannot decode.
    #[error("{}: invalid Parquet file{}: {msg}", path.display(), at.map(|r| format!(" (near row {r})")).unwrap_or_default())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The first row that could not be decoded, if known.
        at: Option<u64>,
        /// The decoder's message.
        msg: String,
    },
    /// The columns match no known layout (or several): a mapping is needed.
    #[error("{}: {detail}; columns found: {}. Name the columns with a mapping, e.g. --map prompt=question,chosen=good,rejected=bad (and --layout pair|judgement|ab|feedback|prompts if still ambiguous)", path.display(), columns.join(", "))]
    Layout {
        /// The file.
        path: PathBuf,
        /// The columns the file has.
        columns: Vec<String>,
        /// Why no layout fits.
        detail: String,
    },
    /// A `--map` specification is malformed or names columns the file does not have.
    #[error("column mapping: {0}")]
    Mapping(String),
    /// The user cancelled a long read.
    #[error("cancelled")]
    Cancelled,
    /// Invalid arguments to a data operation (split fractions, synthetic sizes, ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// The record the error is about, for row-level errors (which `skip_invalid` may skip).
    pub fn loc(&self) -> Option<Loc> {
        match self {
            DataError::Syntax { loc, .. } | DataError::Field { loc, .. } => Some(*loc),
            _ => None,
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            DataError::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The message without the file and location prefix.
    pub fn reason(&self) -> String {
        match self {
            DataError::Syntax { msg, .. } => msg.clone(),
            DataError::Field { field, msg, .. } => format!("field `{field}`: {msg}"),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
