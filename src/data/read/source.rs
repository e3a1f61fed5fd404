//! Where the text readers' bytes come from: the file itself, or the decompressed stream of a
//! gzip or zstd file (told by magic bytes), with random access by offset. Knows nothing of formats.
use super::bytes::ByteSource;
use crate::data::error::DataError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::Path;

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

/// The extension that names the format: the last one, or the one before a compression suffix
/// (`hh.jsonl.gz` → `jsonl`).
pub(crate) fn format_extension(path: &Path, c: Compression) -> String {
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
