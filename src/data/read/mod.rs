//! Streaming readers: JSONL, JSON (array, or object of arrays), CSV/TSV and Parquet, each an
//! iterator of rows (a JSON object per record) with the record's line or row number. Memory is
//! bounded by one record (at most `max_record_bytes`) plus one Parquet batch, whatever the file
//! size. This module knows nothing about layouts or record types: see `layout` and `convert`.
mod bytes;
mod csv;
pub mod guard;
mod json;
mod jsonl;
mod parquet;
mod source;
mod text;

use super::error::{DataError, Loc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use self::source::{detect_compression, Compression};
use self::source::{format_extension, open_source};
use self::text::describe_byte;
pub use self::text::{json_type, Row};

pub use self::csv::CsvRows;
pub use self::json::JsonRows;
pub use self::jsonl::JsonlRows;
pub use self::parquet::ParquetRows;

/// Bytes read from the start of a file to detect its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Default cap on the bytes of one record (a JSONL line, a JSON array element, a CSV record).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 8 << 20;

/// A dataset file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A JSON array of objects, or an object whose values are such arrays (`{"data": [...]}`).
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The lowercase name (`jsonl`, `json`, `csv`, `tsv`, `parquet`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Parquet => "parquet",
        }
    }

    /// Parses a format name (as [`Format::name`] prints it; `ndjson` is accepted for JSONL).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "parquet" | "pq" => Format::Parquet,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Detects the format of `path` from its content (decompressed when the file is gzip or zstd,
/// told by its magic bytes), using the extension (before a `.gz`/`.zst` suffix) to break ties.
///
/// Parquet is recognised by its `PAR1` magic; a first non-blank character `[` means JSON; `{`
/// means JSONL when the extension says so, or when the first line is a complete JSON value
/// (followed by another `{`, for a `.json` file); otherwise JSON. Anything else is CSV (or TSV
/// when the extension says so or the first line has tabs but no commas).
pub fn detect_format(path: &Path) -> Result<Format, DataError> {
    let (mut f, compression) = open_source(path)?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut f)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| match compression {
            Compression::None => DataError::io(path, e),
            // `head` keeps what was decompressed before the error.
            _ => {
                let line = 1 + head.iter().filter(|&&b| b == b'\n').count() as u64;
                DataError::io(path, bytes::damaged(e, line, head.len() as u64))
            }
        })?;
    let ext = format_extension(path, compression);
    let by_ext = Format::from_name(&ext);
    if compression != Compression::None
        && (head.starts_with(b"PAR1") || by_ext == Some(Format::Parquet))
    {
        return Err(DataError::Parquet {
            path: path.to_path_buf(),
            at: None,
            msg: "a compressed Parquet file cannot be read in place (Parquet needs random access \
                  and compresses its pages itself): decompress it first"
                .into(),
        });
    }
    if head.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    if by_ext == Some(Format::Parquet) {
        return Err(DataError::Parquet {
            path: path.to_path_buf(),
            at: None,
            msg: "the file does not start with the Parquet magic bytes `PAR1`".into(),
        });
    }
    let body = head
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&head);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    };
    match body[first] {
        b'[' => return Ok(Format::Json),
        b'{' => {
            if by_ext == Some(Format::Jsonl) {
                return Ok(Format::Jsonl);
            }
            // JSON Lines has a complete object on its first line; a `.json` file must also
            // have another record after it (a one-line `{"data": [...]}` is a JSON document).
            let line_end = body[first..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|p| first + p);
            let line = &body[first..line_end.unwrap_or(body.len())];
            let complete = serde_json::from_slice::<Value>(line).is_ok();
            let next_is_object = line_end.is_some_and(|e| {
                body[e..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
            });
            // A first line longer than the sniffed head cannot be parsed here: trust the
            // extension (JSON only when it says `.json`).
            let cut = line_end.is_none() && head.len() == SNIFF_BYTES;
            let jsonl = if cut {
                by_ext != Some(Format::Json)
            } else {
                complete && (next_is_object || by_ext != Some(Format::Json))
            };
            return Ok(if jsonl { Format::Jsonl } else { Format::Json });
        }
        _ => {}
    }
    match by_ext {
        Some(Format::Tsv) => Ok(Format::Tsv),
        Some(Format::Csv) => Ok(Format::Csv),
        Some(Format::Json) | Some(Format::Jsonl) => Err(DataError::Syntax {
            path: path.to_path_buf(),
            loc: Loc::line(
                1,
                1 + body[..first].iter().filter(|&&b| b == b'\n').count() as u64,
            ),
            msg: format!(
                "expected JSON (`[` or `{{`), found {}",
                describe_byte(body[first])
            ),
        }),
        _ => {
            let line_end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            let line = &body[..line_end];
            if std::str::from_utf8(line).is_err() && ext.is_empty() {
                return Err(DataError::UnknownFormat {
                    path: path.to_path_buf(),
                    detail: "the first line is not text".into(),
                });
            }
            let tabs = line.iter().filter(|&&b| b == b'\t').count();
            let commas = line.iter().filter(|&&b| b == b',').count();
            Ok(if tabs > 0 && commas == 0 {
                Format::Tsv
            } else {
                Format::Csv
            })
        }
    }
}

/// Options of the row readers.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The format, or `None` to detect it.
    pub format: Option<Format>,
    /// Cap on one record's bytes; longer records are reported (and skipped), never buffered.
    pub max_record_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            format: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// A streaming reader over the rows of a file of any supported format.
pub enum RowReader {
    /// JSON lines.
    Jsonl(JsonlRows),
    /// A JSON document.
    Json(JsonRows),
    /// CSV or TSV.
    Csv(CsvRows),
    /// Parquet.
    Parquet(Box<ParquetRows>),
}

impl RowReader {
    /// Opens `path` (detecting the format unless given).
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self, DataError> {
        let format = match opts.format {
            Some(f) => f,
            None => detect_format(path)?,
        };
        let max = opts.max_record_bytes.max(1024);
        Ok(match format {
            Format::Jsonl => RowReader::Jsonl(JsonlRows::open(path, max)?),
            Format::Json => RowReader::Json(JsonRows::open(path, max)?),
            Format::Csv => RowReader::Csv(CsvRows::open(path, b',', max)?),
            Format::Tsv => RowReader::Csv(CsvRows::open(path, b'\t', max)?),
            Format::Parquet => RowReader::Parquet(Box::new(ParquetRows::open(path)?)),
        })
    }

    /// The detected or given format.
    pub fn format(&self) -> Format {
        match self {
            RowReader::Jsonl(_) => Format::Jsonl,
            RowReader::Json(_) => Format::Json,
            RowReader::Csv(c) => {
                if c.delimiter() == b'\t' {
                    Format::Tsv
                } else {
                    Format::Csv
                }
            }
            RowReader::Parquet(_) => Format::Parquet,
        }
    }

    /// The columns declared by the file (CSV header, Parquet schema); `None` for JSON formats,
    /// whose columns are the keys of the rows.
    pub fn declared_columns(&self) -> Option<Vec<String>> {
        match self {
            RowReader::Csv(c) => Some(c.columns().to_vec()),
            RowReader::Parquet(p) => Some(p.columns().to_vec()),
            _ => None,
        }
    }

    /// Byte offset where the last returned record starts (0 for Parquet).
    pub fn last_start(&self) -> u64 {
        match self {
            RowReader::Jsonl(r) => r.last_start(),
            RowReader::Json(r) => r.last_start(),
            RowReader::Csv(r) => r.last_start(),
            RowReader::Parquet(_) => 0,
        }
    }

    /// The file.
    pub fn path(&self) -> &PathBuf {
        match self {
            RowReader::Jsonl(r) => r.path(),
            RowReader::Json(r) => r.path(),
            RowReader::Csv(r) => r.path(),
            RowReader::Parquet(r) => r.path(),
        }
    }
}

impl Iterator for RowReader {
    type Item = Result<Row, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RowReader::Jsonl(r) => r.next(),
            RowReader::Json(r) => r.next(),
            RowReader::Csv(r) => r.next(),
            RowReader::Parquet(r) => r.next(),
        }
    }
}

/// The dataset's name as record ids use it: the file name without its format extension and any
/// compression suffix (`hh.jsonl.gz` → `hh`).
pub(crate) fn dataset_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for _ in 0..2 {
        if let Some((head, ext)) = stem.rsplit_once('.') {
            let ext = ext.to_ascii_lowercase();
            let known = Format::from_name(&ext).is_some()
                || ["gz", "gzip", "zst", "zstd"].contains(&ext.as_str());
            if known && !head.is_empty() {
                stem = head;
                continue;
            }
        }
        break;
    }
    if stem == name {
        // an unknown extension: drop it as `file_stem` does
        return path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    stem.to_string()
}
