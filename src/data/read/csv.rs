//! CSV/TSV with a header row (RFC 4180 quoting: `"` around fields, `""` inside them; CRLF or
//! LF; cells may span lines). A small state machine rather than the `csv` crate so that an
//! unterminated quote, a stray character after a closing quote and an over-long record are
//! reported with their line, and a huge record is never buffered.
use super::bytes::ByteSource;
use super::source::Source;
use super::text::{describe_byte, human_bytes, utf8, Row};
use crate::data::error::DataError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Streaming CSV/TSV rows; every cell is a JSON string.
pub struct CsvRows {
    path: PathBuf,
    src: ByteSource<Source>,
    delim: u8,
    max: usize,
    columns: Vec<String>,
    row: u64,
    done: bool,
    last_start: u64,
}

enum RecErr {
    /// Recoverable: the record is bad but the reader is at the start of the next one.
    Bad(String),
    /// Unrecoverable (end of file inside quotes, I/O).
    Fatal(String),
    Io(std::io::Error),
}

struct RawRecord {
    fields: Vec<Vec<u8>>,
    bytes: u64,
}

impl CsvRows {
    /// Opens a CSV (`delim` = `,`) or TSV (`\t`) file and reads its header.
    pub fn open(path: &Path, delim: u8, max: usize) -> Result<Self, DataError> {
        let mut src = super::source::source_at(path, 0)?;
        src.skip_bom().map_err(|e| DataError::io(path, e))?;
        let mut me = Self {
            path: path.to_path_buf(),
            src,
            delim,
            max,
            columns: Vec::new(),
            row: 0,
            done: false,
            last_start: 0,
        };
        let line = me.src.line();
        let loc = me.src.loc(0, line);
        let header = loop {
            match me.read_record() {
                Ok(None) => {
                    return Err(DataError::Empty {
                        path: path.to_path_buf(),
                    })
                }
                Ok(Some(r)) if r.fields.len() == 1 && r.fields[0].is_empty() => continue,
                Ok(Some(r)) => break r,
                Err(RecErr::Io(e)) => return Err(DataError::io(path, e)),
                Err(RecErr::Bad(m)) | Err(RecErr::Fatal(m)) => {
                    return Err(DataError::Syntax {
                        path: path.to_path_buf(),
                        loc,
                        msg: format!("in the header row: {m}"),
                    })
                }
            }
        };
        if header.bytes as usize > max {
            return Err(DataError::Syntax {
                path: path.to_path_buf(),
                loc,
                msg: "the header row is over the record size limit".into(),
            });
        }
        let mut columns: Vec<String> = Vec::with_capacity(header.fields.len());
        for (i, f) in header.fields.iter().enumerate() {
            let name = utf8(f)
                .map_err(|m| DataError::Syntax {
                    path: path.to_path_buf(),
                    loc,
                    msg: format!("in the header row, column {}: {m}", i + 1),
                })?
                .trim()
                .to_string();
            let name = if name.is_empty() {
                format!("column_{}", i + 1)
            } else {
                name
            };
            if columns.contains(&name) {
                return Err(DataError::Syntax {
                    path: path.to_path_buf(),
                    loc,
                    msg: format!("the header names column `{name}` twice"),
                });
            }
            columns.push(name);
        }
        me.columns = columns;
        Ok(me)
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

    /// The header's column names (empty names become `column_N`).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The field delimiter.
    pub fn delimiter(&self) -> u8 {
        self.delim
    }

    /// The file.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Reads one record (`None` at the end of the file). Cell bytes beyond `max` in total are
    /// dropped but counted, so the caller can report the size.
    fn read_record(&mut self) -> Result<Option<RawRecord>, RecErr> {
        let mut fields: Vec<Vec<u8>> = vec![Vec::new()];
        let mut bytes: u64 = 0;
        let max = self.max as u64;
        let push = |fields: &mut Vec<Vec<u8>>, bytes: &mut u64, b: u8| {
            *bytes += 1;
            if *bytes <= max {
                fields.last_mut().expect("one field").push(b);
            }
        };
        let start_line = self.src.line();
        if self.src.peek().map_err(RecErr::Io)?.is_none() {
            return Ok(None);
        }
        let mut at_field_start = true;
        loop {
            let b = match self.src.next_byte().map_err(RecErr::Io)? {
                None => return Ok(Some(RawRecord { fields, bytes })),
                Some(b) => b,
            };
            if at_field_start && b == b'"' {
                at_field_start = false;
                let open_line = self.src.line();
                // Quoted field.
                loop {
                    match self.src.next_byte().map_err(RecErr::Io)? {
                        None => {
                            return Err(RecErr::Fatal(format!(
                                "unterminated quoted field: the quote opened at line {open_line} (record starting at line {start_line}) is never closed"
                            )))
                        }
                        Some(b'"') => match self.src.peek().map_err(RecErr::Io)? {
                            Some(b'"') => {
                                self.src.next_byte().map_err(RecErr::Io)?;
                                push(&mut fields, &mut bytes, b'"');
                            }
                            Some(c) if c == self.delim || c == b'\n' || c == b'\r' => break,
                            None => break,
                            Some(c) => {
                                let line = self.src.line();
                                self.skip_to_line_end()?;
                                return Err(RecErr::Bad(format!(
                                    "unexpected {} after the closing quote of a field (line {line}); double quotes inside a quoted field must be written `\"\"`",
                                    describe_byte(c)
                                )));
                            }
                        },
                        Some(c) => push(&mut fields, &mut bytes, c),
                    }
                }
                continue;
            }
            at_field_start = false;
            if b == self.delim {
                fields.push(Vec::new());
                at_field_start = true;
            } else if b == b'\n' {
                if let Some(f) = fields.last_mut() {
                    if f.last() == Some(&b'\r') {
                        f.pop();
                    }
                }
                return Ok(Some(RawRecord { fields, bytes }));
            } else if b == b'\r' && self.src.peek().map_err(RecErr::Io)? == Some(b'\n') {
                // CRLF: the `\n` ends the record next.
            } else {
                push(&mut fields, &mut bytes, b);
            }
        }
    }

    fn skip_to_line_end(&mut self) -> Result<(), RecErr> {
        while let Some(b) = self.src.next_byte().map_err(RecErr::Io)? {
            if b == b'\n' {
                break;
            }
        }
        Ok(())
    }
}

impl Iterator for CsvRows {
    type Item = Result<Row, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let line = self.src.line();
            self.last_start = self.src.offset();
            let rec = self.read_record();
            let loc = self.src.loc(self.row + 1, line);
            let syntax = |msg| DataError::Syntax {
                path: self.path.clone(),
                loc,
                msg,
            };
            let rec = match rec {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(r)) => r,
                Err(RecErr::Io(e)) => {
                    self.done = true;
                    return Some(Err(DataError::io(&self.path, e)));
                }
                Err(RecErr::Fatal(m)) => {
                    self.done = true;
                    self.row += 1;
                    return Some(Err(syntax(m)));
                }
                Err(RecErr::Bad(m)) => {
                    self.row += 1;
                    return Some(Err(syntax(m)));
                }
            };
            if rec.fields.len() == 1 && rec.fields[0].is_empty() {
                continue; // blank line
            }
            self.row += 1;
            if rec.bytes as usize > self.max {
                return Some(Err(syntax(format!(
                    "the record is {} long, over the {} limit for one record (raise it with --max-record-mb)",
                    human_bytes(rec.bytes),
                    human_bytes(self.max as u64)
                ))));
            }
            if rec.fields.len() != self.columns.len() {
                return Some(Err(syntax(format!(
                    "the record has {} fields but the header has {} columns (an unquoted `{}` or newline inside a cell?)",
                    rec.fields.len(),
                    self.columns.len(),
                    if self.delim == b'\t' { "\\t".to_string() } else { (self.delim as char).to_string() }
                ))));
            }
            let mut fields = Map::new();
            for (name, cell) in self.columns.iter().zip(rec.fields) {
                match String::from_utf8(cell) {
                    Ok(s) => {
                        fields.insert(name.clone(), Value::String(s));
                    }
                    Err(e) => {
                        let m = utf8(e.as_bytes()).err().unwrap_or_default();
                        return Some(Err(DataError::Field {
                            path: self.path.clone(),
                            loc,
                            field: name.clone(),
                            msg: m,
                        }));
                    }
                }
            }
            return Some(Ok(Row {
                loc,
                fields,
                group: None,
            }));
        }
    }
}
