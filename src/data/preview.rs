//! Cheap looks at a file for the GUI: the first rows as column → text cells, the row count, and
//! a [`RowIndex`] (byte offset of every record) for random access, so a virtualised table can
//! show any rows of a large file. Never loads the file.
use super::error::{DataError, Loc};
use super::load::open_with_columns;
use super::read::{Format, ParquetRows, ReadOptions, RowReader, DEFAULT_MAX_RECORD_BYTES};
use crate::jobs::{Progress, ProgressSink};
use serde_json::Value;
use std::path::Path;
use std::path::PathBuf;

/// Longest cell text a preview keeps (characters); longer cells end with `…`.
pub const PREVIEW_CELL_CHARS: usize = 400;

/// One previewed row: its location and one text cell per column (`None` where absent or null), or
/// the reason it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    /// Where.
    pub loc: Loc,
    /// Cells in the order of [`Preview::columns`]; `Err` holds the row's error message.
    pub cells: Result<Vec<Option<String>>, String>,
}

/// The first rows of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Detected format.
    pub format: Format,
    /// Columns (header / schema / keys of the first rows).
    pub columns: Vec<String>,
    /// The rows read.
    pub rows: Vec<PreviewRow>,
    /// True when the file has more rows than were read.
    pub more: bool,
}

/// Renders a cell for display: strings as they are, message lists as `role: content` lines,
/// other values as compact JSON; clipped to [`PREVIEW_CELL_CHARS`].
pub fn cell_text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Array(items)
            if items.iter().all(|m| m.get("role").is_some()) && !items.is_empty() =>
        {
            items
                .iter()
                .map(|m| {
                    let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
                    let content = m.get("content").and_then(Value::as_str).unwrap_or("");
                    format!("{role}: {content}")
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        other => other.to_string(),
    };
    if s.chars().count() > PREVIEW_CELL_CHARS {
        let mut t: String = s.chars().take(PREVIEW_CELL_CHARS).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn to_preview_row(
    columns: &[String],
    item: Result<super::read::Row, DataError>,
) -> Result<PreviewRow, DataError> {
    match item {
        Ok(row) => Ok(PreviewRow {
            loc: row.loc,
            cells: Ok(columns
                .iter()
                .map(|c| row.fields.get(c).filter(|v| !v.is_null()).map(cell_text))
                .collect()),
        }),
        Err(e) => match e.loc() {
            Some(loc) => Ok(PreviewRow {
                loc,
                cells: Err(e.reason()),
            }),
            None => Err(e),
        },
    }
}

/// Reads the first `n` rows of `path` as text cells (invalid rows are included with their
/// error). Costs O(n) rows, whatever the file size.
pub fn preview(path: &Path, n: usize) -> Result<Preview, DataError> {
    let opts = ReadOptions {
        format: None,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
    };
    let opened = open_with_columns(path, &opts)?;
    let format = opened.reader.format();
    let columns = opened.columns;
    let mut rows = Vec::new();
    let mut it = opened.buffered.into_iter().chain(opened.reader);
    let mut more = false;
    for item in it.by_ref() {
        if rows.len() == n {
            more = true;
            break;
        }
        match to_preview_row(&columns, item) {
            Ok(r) => rows.push(r),
            Err(e) if rows.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Preview {
        format,
        columns,
        rows,
        more,
    })
}

/// Counts the rows of `path` (invalid rows included): from the footer for Parquet, by one
/// streaming pass otherwise.
pub fn count_rows(path: &Path) -> Result<u64, DataError> {
    let opts = ReadOptions {
        format: None,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
    };
    let reader = RowReader::open(path, &opts)?;
    if let RowReader::Parquet(p) = &reader {
        return Ok(p.total_rows());
    }
    let mut n = 0;
    for item in reader {
        match item {
            Ok(_) => n += 1,
            Err(e) if e.loc().is_some() => n += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads rows `start .. start + n` (0-based) as text cells. Parquet seeks through the footer;
/// text formats stream from the start (callers showing large text files page forward).
pub fn preview_range(
    path: &Path,
    columns: &[String],
    start: u64,
    n: usize,
) -> Result<Vec<PreviewRow>, DataError> {
    let opts = ReadOptions {
        format: None,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
    };
    let reader = match RowReader::open(path, &opts)? {
        RowReader::Parquet(_) => RowReader::Parquet(Box::new(ParquetRows::open_at(path, start)?)),
        other => other,
    };
    let skip = if matches!(reader, RowReader::Parquet(_)) {
        0
    } else {
        start as usize
    };
    let mut rows = Vec::with_capacity(n.min(1024));
    for item in reader.skip(skip).take(n) {
        match to_preview_row(columns, item) {
            Ok(r) => rows.push(r),
            Err(e) if rows.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(rows)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    line: u64,
    group: u32,
}

const NO_GROUP: u32 = u32::MAX;

/// Where every record of a file starts, for random access: one streaming pass to build (24
/// bytes per row for text formats; nothing for Parquet, which seeks through its footer).
#[derive(Debug, Clone)]
pub struct RowIndex {
    path: PathBuf,
    format: Format,
    columns: Vec<String>,
    entries: Vec<Entry>,
    groups: Vec<String>,
    parquet_rows: u64,
}

impl RowIndex {
    /// Scans `path` once (reporting progress, honouring cancellation).
    pub fn build(path: &Path, progress: &dyn ProgressSink) -> Result<Self, DataError> {
        let opts = ReadOptions {
            format: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        };
        let columns = open_with_columns(path, &opts)?.columns;
        let mut reader = RowReader::open(path, &opts)?;
        let format = reader.format();
        let mut me = Self {
            path: path.to_path_buf(),
            format,
            columns,
            entries: Vec::new(),
            groups: Vec::new(),
            parquet_rows: 0,
        };
        if let RowReader::Parquet(p) = &reader {
            me.parquet_rows = p.total_rows();
            return Ok(me);
        }
        while let Some(item) = reader.next() {
            let (line, group) = match &item {
                Ok(row) => (row.loc.line.unwrap_or(0), row.group.clone()),
                Err(e) => match e.loc() {
                    Some(loc) => (
                        loc.line.unwrap_or(0),
                        match &reader {
                            RowReader::Json(j) => j.current_group(),
                            _ => None,
                        },
                    ),
                    None => break,
                },
            };
            let group = match group {
                None => NO_GROUP,
                Some(g) => match me.groups.iter().position(|x| *x == g) {
                    Some(i) => i as u32,
                    None => {
                        me.groups.push(g);
                        (me.groups.len() - 1) as u32
                    }
                },
            };
            me.entries.push(Entry {
                offset: reader.last_start(),
                line,
                group,
            });
            if me.entries.len().is_multiple_of(65536) {
                progress.report(Progress::new(
                    "indexing rows",
                    me.entries.len() as u64,
                    None,
                ));
                if progress.is_cancelled() {
                    return Err(DataError::Cancelled);
                }
            }
        }
        Ok(me)
    }

    /// Number of rows (invalid rows included).
    pub fn len(&self) -> u64 {
        match self.format {
            Format::Parquet => self.parquet_rows,
            _ => self.entries.len() as u64,
        }
    }

    /// True when the file has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's columns.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Rows `start .. start + n` (0-based) as text cells, read from their indexed offsets.
    pub fn rows(&self, start: u64, n: usize) -> Result<Vec<PreviewRow>, DataError> {
        if start >= self.len() || n == 0 {
            return Ok(Vec::new());
        }
        let opts = ReadOptions {
            format: Some(self.format),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        };
        let reader = match self.format {
            Format::Parquet => {
                RowReader::Parquet(Box::new(ParquetRows::open_at(&self.path, start)?))
            }
            _ => {
                let e = self.entries[start as usize];
                let mut r = RowReader::open(&self.path, &opts)?;
                match &mut r {
                    RowReader::Jsonl(x) => x.seek(e.offset, e.line, start)?,
                    RowReader::Csv(x) => x.seek(e.offset, e.line, start)?,
                    RowReader::Json(x) => {
                        let g = self.groups.get(e.group as usize).cloned();
                        x.seek(e.offset, e.line, start, g)?
                    }
                    RowReader::Parquet(_) => {}
                }
                r
            }
        };
        let mut rows = Vec::with_capacity(n.min(1024));
        for item in reader.take(n) {
            match to_preview_row(&self.columns, item) {
                Ok(r) => rows.push(r),
                Err(e) if rows.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(rows)
    }
}
