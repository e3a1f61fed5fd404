//! JSON documents: a top-level array of objects, or an object whose values are arrays of
//! objects (`{"data": [...]}`, `{"train": [...], "test": [...]}`; other values are skipped).
//! Elements are cut out of the byte stream one at a time (string- and bracket-aware) and only
//! then parsed, so a huge array never has to fit in memory.
use super::bytes::ByteSource;
use super::source::Source;
use super::text::{describe_byte, human_bytes, json_msg, json_type, utf8, Row};
use crate::data::error::DataError;
use serde_json::Value;
use std::path::{Path, PathBuf};

enum State {
    Array {
        group: Option<String>,
        first: bool,
        open_line: u64,
    },
    Object {
        first: bool,
    },
    End,
    Done,
}

/// Streaming rows of a JSON document.
pub struct JsonRows {
    path: PathBuf,
    src: ByteSource<Source>,
    state: State,
    buf: Vec<u8>,
    max: usize,
    row: u64,
    arrays: usize,
    last_start: u64,
}

enum Captured {
    Ok,
    TooLong(u64),
}

enum CapErr {
    Eof,
    Unexpected(u8),
    Io(std::io::Error),
}

impl From<std::io::Error> for CapErr {
    fn from(e: std::io::Error) -> Self {
        CapErr::Io(e)
    }
}

impl JsonRows {
    /// Opens a JSON document; elements longer than `max` bytes are reported, not buffered.
    pub fn open(path: &Path, max: usize) -> Result<Self, DataError> {
        let mut src = super::source::source_at(path, 0)?;
        let io = |e| DataError::io(path, e);
        src.skip_bom().map_err(io)?;
        src.skip_ws().map_err(io)?;
        let line = src.line();
        let state = match src.next_byte().map_err(io)? {
            None => {
                return Err(DataError::Empty {
                    path: path.to_path_buf(),
                })
            }
            Some(b'[') => State::Array {
                group: None,
                first: true,
                open_line: line,
            },
            Some(b'{') => State::Object { first: true },
            Some(b) => {
                return Err(DataError::Syntax {
                    path: path.to_path_buf(),
                    loc: src.loc(1, line),
                    msg: format!(
                        "expected a JSON array `[` or object `{{` at the start, found {}",
                        describe_byte(b)
                    ),
                })
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            src,
            state,
            buf: Vec::new(),
            max,
            row: 0,
            arrays: 0,
            last_start: 0,
        })
    }

    /// Moves to the array element starting at byte `offset` on `line` (of the array under key
    /// `group`, if any), numbering it `row + 1`.
    pub fn seek(
        &mut self,
        offset: u64,
        line: u64,
        row: u64,
        group: Option<String>,
    ) -> Result<(), DataError> {
        self.src = super::source::source_at(&self.path, offset)?.at_line(line);
        self.row = row;
        self.arrays = 1;
        self.state = State::Array {
            group,
            first: true,
            open_line: line,
        };
        Ok(())
    }

    /// Byte offset where the last returned record starts.
    pub fn last_start(&self) -> u64 {
        self.last_start
    }

    /// The key of the array being read (for `{"key": [...]}` documents).
    pub fn current_group(&self) -> Option<String> {
        match &self.state {
            State::Array { group, .. } => group.clone(),
            _ => None,
        }
    }

    /// The file.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    fn fatal(&mut self, line: u64, msg: String) -> Option<Result<Row, DataError>> {
        self.state = State::Done;
        Some(Err(DataError::Syntax {
            path: self.path.clone(),
            loc: self.src.loc(self.row + 1, line),
            msg,
        }))
    }

    /// Cuts the next JSON value out of the stream into `self.buf` (up to `max` bytes).
    fn capture(&mut self) -> Result<Captured, CapErr> {
        self.buf.clear();
        let max = self.max;
        let mut len: u64 = 0;
        let mut push = |buf: &mut Vec<u8>, b: u8| {
            len += 1;
            if buf.len() <= max {
                buf.push(b);
            }
        };
        let first = self.src.peek()?.ok_or(CapErr::Eof)?;
        match first {
            b'"' => {
                self.src.next_byte()?;
                push(&mut self.buf, b'"');
                let mut esc = false;
                loop {
                    let b = self.src.next_byte()?.ok_or(CapErr::Eof)?;
                    push(&mut self.buf, b);
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        break;
                    }
                }
            }
            b'{' | b'[' => {
                let (mut depth, mut in_str, mut esc) = (0u64, false, false);
                loop {
                    let b = self.src.next_byte()?.ok_or(CapErr::Eof)?;
                    push(&mut self.buf, b);
                    if in_str {
                        if esc {
                            esc = false;
                        } else if b == b'\\' {
                            esc = true;
                        } else if b == b'"' {
                            in_str = false;
                        }
                    } else {
                        match b {
                            b'"' => in_str = true,
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            b']' | b'}' | b',' | b':' => return Err(CapErr::Unexpected(first)),
            _ => {
                while let Some(b) = self.src.peek()? {
                    if b.is_ascii_whitespace() || matches!(b, b',' | b']' | b'}' | b':') {
                        break;
                    }
                    self.src.next_byte()?;
                    push(&mut self.buf, b);
                }
            }
        }
        Ok(if len as usize > self.max {
            Captured::TooLong(len)
        } else {
            Captured::Ok
        })
    }

    fn cap_err(&mut self, e: CapErr, line: u64, what: &str) -> Option<Result<Row, DataError>> {
        match e {
            CapErr::Io(e) => {
                self.state = State::Done;
                Some(Err(DataError::io(&self.path, e)))
            }
            CapErr::Eof => self.fatal(
                line,
                format!("unexpected end of file inside {what} (the JSON is truncated)"),
            ),
            CapErr::Unexpected(b) => {
                self.fatal(line, format!("expected {what}, found {}", describe_byte(b)))
            }
        }
    }

    fn parse_element(&mut self, line: u64) -> Result<Row, DataError> {
        self.row += 1;
        let loc = self.src.loc(self.row, line);
        let syntax = |msg| DataError::Syntax {
            path: self.path.clone(),
            loc,
            msg,
        };
        let text = utf8(&self.buf).map_err(syntax)?;
        let group = match &self.state {
            State::Array { group, .. } => group.clone(),
            _ => None,
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => Ok(Row { loc, fields, group }),
            Ok(other) => Err(syntax(format!(
                "expected a JSON object (one record per array element), found {}",
                json_type(&other)
            ))),
            Err(e) if e.line() <= 1 => Err(syntax(format!(
                "invalid JSON at column {}: {}",
                e.column(),
                json_msg(&e)
            ))),
            Err(e) => Err(syntax(format!(
                "invalid JSON at line {}, column {}: {}",
                line + e.line() as u64 - 1,
                e.column(),
                json_msg(&e)
            ))),
        }
    }
}

impl Iterator for JsonRows {
    type Item = Result<Row, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Err(e) = self.src.skip_ws() {
                self.state = State::Done;
                return Some(Err(DataError::io(&self.path, e)));
            }
            let line = self.src.line();
            let peek = match self.src.peek() {
                Ok(p) => p,
                Err(e) => {
                    self.state = State::Done;
                    return Some(Err(DataError::io(&self.path, e)));
                }
            };
            match &mut self.state {
                State::Done => return None,
                State::End => {
                    return match peek {
                        None if self.arrays == 0 => self.fatal(
                            line,
                            "the JSON object holds no array of records; expected `[{...}, ...]` or `{\"data\": [{...}, ...]}`".into(),
                        ),
                        None => {
                            self.state = State::Done;
                            None
                        }
                        Some(b) => self.fatal(
                            line,
                            format!(
                                "unexpected {} after the end of the JSON document (is this JSON Lines? name it .jsonl)",
                                describe_byte(b)
                            ),
                        ),
                    };
                }
                State::Array {
                    first,
                    open_line,
                    group,
                } => {
                    let open_line = *open_line;
                    match peek {
                        None => {
                            return self.fatal(
                                line,
                                format!("unexpected end of file: the array opened at line {open_line} is not closed (the JSON is truncated)"),
                            )
                        }
                        Some(b']') => {
                            let _ = self.src.next_byte();
                            self.arrays += 1;
                            self.state = if group.is_some() {
                                State::Object { first: false }
                            } else {
                                State::End
                            };
                            continue;
                        }
                        Some(b',') if !*first => {
                            let _ = self.src.next_byte();
                            if let Err(e) = self.src.skip_ws() {
                                return Some(Err(DataError::io(&self.path, e)));
                            }
                        }
                        Some(b) if !*first => {
                            return self.fatal(
                                line,
                                format!("expected `,` or `]` after a record, found {}", describe_byte(b)),
                            )
                        }
                        Some(_) => {}
                    }
                    *first = false;
                    let line = self.src.line();
                    self.last_start = self.src.offset();
                    return match self.capture() {
                        Err(e) => self.cap_err(e, line, "a record"),
                        Ok(Captured::TooLong(n)) => {
                            self.row += 1;
                            Some(Err(DataError::Syntax {
                                path: self.path.clone(),
                                loc: self.src.loc(self.row, line),
                                msg: format!(
                                    "the record is {} long, over the {} limit for one record (raise it with --max-record-mb)",
                                    human_bytes(n),
                                    human_bytes(self.max as u64)
                                ),
                            }))
                        }
                        Ok(Captured::Ok) => Some(self.parse_element(line)),
                    };
                }
                State::Object { first } => {
                    match peek {
                        None => {
                            return self.fatal(line, "unexpected end of file inside the top-level object (the JSON is truncated)".into())
                        }
                        Some(b'}') => {
                            let _ = self.src.next_byte();
                            self.state = State::End;
                            continue;
                        }
                        Some(b',') if !*first => {
                            let _ = self.src.next_byte();
                            if let Err(e) = self.src.skip_ws() {
                                return Some(Err(DataError::io(&self.path, e)));
                            }
                        }
                        Some(b) if !*first => {
                            return self.fatal(
                                line,
                                format!("expected `,` or `}}` in the top-level object, found {}", describe_byte(b)),
                            )
                        }
                        Some(_) => {}
                    }
                    *first = false;
                    let line = self.src.line();
                    match self.capture() {
                        Err(e) => return self.cap_err(e, line, "a key"),
                        Ok(Captured::TooLong(_)) => {
                            return self
                                .fatal(line, "a key of the top-level object is too long".into())
                        }
                        Ok(Captured::Ok) => {}
                    }
                    let key = match serde_json::from_slice::<Value>(&self.buf) {
                        Ok(Value::String(k)) => k,
                        _ => {
                            return self.fatal(
                                line,
                                "expected a quoted key in the top-level object".into(),
                            )
                        }
                    };
                    let r = self.src.skip_ws().and_then(|_| self.src.next_byte());
                    match r {
                        Ok(Some(b':')) => {}
                        Ok(Some(b)) => {
                            return self.fatal(
                                line,
                                format!(
                                    "expected `:` after key \"{key}\", found {}",
                                    describe_byte(b)
                                ),
                            )
                        }
                        Ok(None) => {
                            return self.fatal(
                                line,
                                "unexpected end of file (the JSON is truncated)".into(),
                            )
                        }
                        Err(e) => return Some(Err(DataError::io(&self.path, e))),
                    }
                    if let Err(e) = self.src.skip_ws() {
                        return Some(Err(DataError::io(&self.path, e)));
                    }
                    let vline = self.src.line();
                    match self.src.peek() {
                        Ok(Some(b'[')) => {
                            let _ = self.src.next_byte();
                            self.state = State::Array {
                                group: Some(key),
                                first: true,
                                open_line: vline,
                            };
                        }
                        Ok(_) => {
                            // A non-array value (metadata such as a version): skip it.
                            if let Err(e) = self.capture() {
                                return self.cap_err(e, vline, &format!("the value of \"{key}\""));
                            }
                        }
                        Err(e) => return Some(Err(DataError::io(&self.path, e))),
                    }
                }
            }
        }
    }
}
