//! A buffered byte source that counts lines and offsets, shared by the text readers.
use std::io::{self, BufRead, BufReader, Read};

/// A decompression error with where the decompressed text broke off: `line` is the 1-based
/// decompressed line being read, `offset` the decompressed bytes read before it.
pub(crate) fn damaged(e: io::Error, line: u64, offset: u64) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "{e}: the compressed data is cut short or damaged at decompressed line {line} \
             (after {offset} decompressed bytes)"
        ),
    )
}

/// Buffered bytes with the current 1-based line and byte offset.
pub(crate) struct ByteSource<R> {
    inner: BufReader<R>,
    line: u64,
    offset: u64,
    decompressed: bool,
}

/// Result of [`ByteSource::read_line_bounded`].
pub(crate) struct LineRead {
    /// Bytes in the line (without the `\n`), including those not stored.
    pub len: u64,
    /// False when the source was already at its end.
    pub any: bool,
}

impl<R: Read> ByteSource<R> {
    /// A source whose reader is already at byte `offset`, line `line`.
    pub fn new_at(r: R, line: u64, offset: u64) -> Self {
        Self {
            inner: BufReader::with_capacity(64 * 1024, r),
            line,
            offset,
            decompressed: false,
        }
    }

    /// The same source, its next byte on 1-based line `line`.
    pub fn at_line(mut self, line: u64) -> Self {
        self.line = line;
        self
    }

    /// Marks the bytes as decompressed text (lines and offsets count decompressed bytes).
    pub fn decompressed(mut self, yes: bool) -> Self {
        self.decompressed = yes;
        self
    }

    /// A record location on `line`, marked decompressed when the source is.
    pub fn loc(&self, row: u64, line: u64) -> crate::data::error::Loc {
        crate::data::error::Loc::line(row, line).in_decompressed(self.decompressed)
    }

    /// The 1-based line of the next byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The buffered bytes; a read error of a decompressed source names the decompressed line
    /// and byte where the compressed data broke off ([`damaged`]).
    fn fill(&mut self) -> io::Result<&[u8]> {
        let (line, offset, dec) = (self.line, self.offset, self.decompressed);
        self.inner.fill_buf().map_err(|e| match dec {
            true => damaged(e, line, offset),
            false => e,
        })
    }

    /// The next byte without consuming it.
    pub fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.fill()?.first().copied())
    }

    /// Consumes and returns the next byte.
    pub fn next_byte(&mut self) -> io::Result<Option<u8>> {
        let b = match self.fill()?.first().copied() {
            Some(b) => b,
            None => return Ok(None),
        };
        self.inner.consume(1);
        self.offset += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    /// Skips a UTF-8 byte-order mark at the current position.
    pub fn skip_bom(&mut self) -> io::Result<()> {
        let buf = self.fill()?;
        if buf.starts_with(b"\xEF\xBB\xBF") {
            self.inner.consume(3);
            self.offset += 3;
        }
        Ok(())
    }

    /// Skips ASCII whitespace.
    pub fn skip_ws(&mut self) -> io::Result<()> {
        while let Some(b) = self.peek()? {
            if b.is_ascii_whitespace() {
                self.next_byte()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Reads through the next `\n` (consumed, not stored), appending at most `limit` bytes of
    /// the line to `out`; the rest of an over-long line is read and dropped.
    pub fn read_line_bounded(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<LineRead> {
        let mut len = 0u64;
        let mut any = false;
        loop {
            let (line, offset, dec) = (self.line, self.offset, self.decompressed);
            let buf = self.inner.fill_buf().map_err(|e| match dec {
                true => damaged(e, line, offset),
                false => e,
            })?;
            if buf.is_empty() {
                return Ok(LineRead { len, any });
            }
            any = true;
            let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(p) => (p, true),
                None => (buf.len(), false),
            };
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&buf[..chunk.min(room)]);
            len += chunk as u64;
            let used = if done { chunk + 1 } else { chunk };
            self.inner.consume(used);
            self.offset += used as u64;
            if done {
                self.line += 1;
                return Ok(LineRead { len, any });
            }
        }
    }
}
