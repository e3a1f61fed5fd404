//! JSON Lines: one object per line, blank lines ignored, each line capped in size.
use super::bytes::ByteSource;
use super::source::Source;
use super::text::{human_bytes, json_msg, json_type, utf8, Row};
use crate::data::error::{DataError, Loc};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Streaming JSONL rows.
pub struct JsonlRows {
    path: PathBuf,
    src: ByteSource<Source>,
    buf: Vec<u8>,
    max: usize,
    row: u64,
    done: bool,
    last_start: u64,
}

impl JsonlRows {
    /// Opens a JSONL file; lines longer than `max` bytes are reported, not buffered.
    pub fn open(path: &Path, max: usize) -> Result<Self, DataError> {
        let mut src = super::source::source_at(path, 0)?;
        src.skip_bom().map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            src,
            buf: Vec::new(),
            max,
            row: 0,
            done: false,
            last_start: 0,
        })
    }

    /// Moves to the record starting at byte `offset` on `line`, numbering it `row + 1`.
    pub fn seek(&mut self, offset: u64, line: u64, row: u64) -> Result<(), DataError> {
        self.src = super::source::source_at(&self.path, offset)?.at_line(line);
        self.row = row;
        self.done = false;
        Ok(())
    }

    /// Byte offset where the last returned record starts.
    pub fn last_start(&self) -> u64 {
        self.last_start
    }

    /// The file.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    fn err(&self, loc: Loc, msg: String) -> DataError {
        DataError::Syntax {
            path: self.path.clone(),
            loc,
            msg,
        }
    }
}

impl Iterator for JsonlRows {
    type Item = Result<Row, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let line = self.src.line();
            self.last_start = self.src.offset();
            self.buf.clear();
            let r = match self.src.read_line_bounded(&mut self.buf, self.max + 1) {
                Ok(r) => r,
                Err(e) => {
                    self.done = true;
                    return Some(Err(DataError::io(&self.path, e)));
                }
            };
            if !r.any {
                self.done = true;
                return None;
            }
            if self.buf.iter().all(|b| b.is_ascii_whitespace()) && r.len as usize <= self.max {
                continue;
            }
            self.row += 1;
            let loc = self.src.loc(self.row, line);
            if r.len as usize > self.max {
                return Some(Err(self.err(
                    loc,
                    format!(
                        "the line is {} long, over the {} limit for one record (raise it with --max-record-mb)",
                        human_bytes(r.len),
                        human_bytes(self.max as u64)
                    ),
                )));
            }
            let mut bytes: &[u8] = &self.buf;
            if let Some(b) = bytes.strip_suffix(b"\r") {
                bytes = b;
            }
            let text = match utf8(bytes) {
                Ok(t) => t,
                Err(m) => return Some(Err(self.err(loc, m))),
            };
            return Some(match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => Ok(Row {
                    loc,
                    fields,
                    group: None,
                }),
                Ok(other) => Err(self.err(
                    loc,
                    format!(
                        "expected a JSON object (one record per line), found {}",
                        json_type(&other)
                    ),
                )),
                Err(e) => Err(self.err(
                    loc,
                    format!("invalid JSON at column {}: {}", e.column(), json_msg(&e)),
                )),
            });
        }
        None
    }
}
