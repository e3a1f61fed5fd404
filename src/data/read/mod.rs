//! Streaming readers: JSONL, JSON (array, or object of arrays), CSV/TSV and Parquet, each an
//! iterator of rows (a JSON object per record) with the record's line or row number. Memory is
//! bounded by one record (at most `max_record_bytes`) plus one Parquet batch, whatever the file
//! size. This module knows nothing about layouts or record types: see `layout` and `convert`.
mod bytes;
mod csv;
mod json;
mod jsonl;
mod parquet;

use super::error::{DataError, Loc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use self::bytes::ByteSource;

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
        .map_err(|e| DataError::io(path, e))?;
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

pub(crate) fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// One record as read from the file: field name → value (CSV cells are strings; Parquet
/// values become JSON numbers, strings, lists and objects).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Where it is.
    pub loc: Loc,
    /// Its fields.
    pub fields: Map<String, Value>,
    /// For JSON files holding an object of arrays: the key of the array this row came from.
    pub group: Option<String>,
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

/// A dataset file's bytes as the text readers see them: the file itself, or the decompressed
/// stream of a gzip or zstd file.
pub(crate) type Source = Box<dyn Read + Send>;

/// How a dataset file is compressed, told by its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (`1f 8b`), one member or several (as `cat a.gz b.gz` makes).
    Gzip,
    /// Zstandard (`28 b5 2f fd`), one frame or several.
    Zstd,
}

impl Compression {
    /// The usual file suffixes of this compression (without the dot).
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Compression::None => &[],
            Compression::Gzip => &["gz", "gzip"],
            Compression::Zstd => &["zst", "zstd"],
        }
    }
}

/// Tells whether `path` is gzip- or zstd-compressed from its magic bytes. Special files (FIFOs,
/// devices) are refused here, before any reader opens them: a FIFO would block, and sniffing
/// the format and then reopening it would lose what was read.
pub fn detect_compression(path: &Path) -> Result<Compression, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(DataError::Invalid(format!(
            "{}: not a regular file (a folder, FIFO or device cannot be read as a dataset)",
            path.display()
        )));
    }
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut n = 0;
    while n < magic.len() {
        match f
            .read(&mut magic[n..])
            .map_err(|e| DataError::io(path, e))?
        {
            0 => break,
            k => n += k,
        }
    }
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// Opens `path` as a stream of (decompressed) bytes, with the compression found.
pub(crate) fn open_source(path: &Path) -> Result<(Source, Compression), DataError> {
    let c = detect_compression(path)?;
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let src: Source = match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| DataError::io(path, e))?)
        }
    };
    Ok((src, c))
}

/// A line-counting source over `path`'s (decompressed) bytes from byte `offset` of the text (for
/// readers resuming at an indexed record: a plain file seeks, a compressed one is decompressed
/// from its start and the first `offset` bytes skipped).
pub(crate) fn source_at(path: &Path, offset: u64) -> Result<ByteSource<Source>, DataError> {
    use std::io::{Seek, SeekFrom};
    let (mut src, c) = open_source(path)?;
    if offset > 0 {
        if c == Compression::None {
            let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| DataError::io(path, e))?;
            src = Box::new(f);
        } else {
            let skipped = std::io::copy(&mut (&mut src).take(offset), &mut std::io::sink())
                .map_err(|e| DataError::io(path, e))?;
            if skipped < offset {
                return Err(DataError::Invalid(format!(
                    "{}: the decompressed text is shorter than offset {offset}; the file changed since it was indexed",
                    path.display()
                )));
            }
        }
    }
    Ok(ByteSource::new_at(src, 1, offset).decompressed(c != Compression::None))
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

/// The extension that names the format: the last one, or the one before a compression suffix
/// (`hh.jsonl.gz` → `jsonl`).
fn format_extension(path: &Path, c: Compression) -> String {
    let ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let last = ext(path);
    let suffixes: &[&str] = if c == Compression::None {
        &["gz", "gzip", "zst", "zstd"]
    } else {
        c.suffixes()
    };
    if suffixes.contains(&last.as_str()) {
        path.file_stem()
            .map(|s| ext(Path::new(s)))
            .unwrap_or_default()
    } else {
        last
    }
}

/// Validates UTF-8, naming the first bad byte's offset within the record.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "invalid UTF-8 (byte 0x{:02x} at offset {} of the record); re-encode the file as UTF-8",
            bytes[e.valid_up_to()],
            e.valid_up_to()
        )
    })
}

/// Names a JSON value's type for messages ("a string", "an array", ...).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Human-readable size ("20.0 MB").
pub(crate) fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// serde_json's message without its " at line L column C" suffix (positions are reported
/// relative to the file by the callers).
pub(crate) fn json_msg(e: &serde_json::Error) -> String {
    let mut s = e.to_string();
    if let Some(i) = s.rfind(" at line ") {
        s.truncate(i);
    }
    s
}
