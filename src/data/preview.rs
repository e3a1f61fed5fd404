//! Cheap looks at a file for the GUI: the first rows as column → text cells, the row count, and
//! a row index for random access (virtualised tables over large files). Never loads the file.
use super::error::{DataError, Loc};
use super::load::open_with_columns;
use super::read::{Format, ParquetRows, ReadOptions, RowReader, DEFAULT_MAX_RECORD_BYTES};
use serde_json::Value;
use std::path::Path;

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
    let mut rows = Vec::with_capacity(n);
    for item in reader.skip(skip).take(n) {
        match to_preview_row(columns, item) {
            Ok(r) => rows.push(r),
            Err(e) if rows.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(rows)
}
