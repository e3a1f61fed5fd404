//! Pre-validation of a GGUF model file's header, run before candle's `gguf_file` reader sees the
//! file: every count, length, size and offset is checked against the file size with checked
//! arithmetic before anything is allocated, metadata array nesting is bounded, and the tensor
//! table is checked for unknown types, bad dimensions, misaligned or overlapping data and data
//! past the end of the file. A few numbers the loader turns into the model's configuration
//! (`general.alignment`, `{arch}.block_count`, RoPE base, RMSNorm epsilon, RoPE scaling factor,
//! context length, sliding window) are refused here when absurd or not finite, because candle's
//! reader and the JSON config would otherwise divide by zero or silently replace a NaN.
//!
//! This module only reads the header (never tensor data) and builds nothing.
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::Path;

use crate::model::{ModelError, Result};

/// Deepest nesting of metadata arrays accepted (llama.cpp's writers never nest).
pub const MAX_ARRAY_DEPTH: usize = 2;
/// Most metadata array elements in one file, all arrays together (a 256k-token vocabulary with
/// scores, types and merges needs about 1M).
pub const MAX_METADATA_ELEMENTS: u64 = 1 << 24;
/// Longest tensor name accepted (ggml's own limit is 64 bytes).
pub const MAX_TENSOR_NAME: u64 = 256;
/// Most dimensions a GGML tensor has.
pub(crate) const GGML_MAX_DIMS: u32 = 4;
/// Alignment used when the file does not set `general.alignment`.
const DEFAULT_ALIGNMENT: u64 = 32;

/// Metadata value types of the GGUF format (also used by the vector reader, `steer::gguf`).
pub(crate) const T_U8: u32 = 0;
pub(crate) const T_I8: u32 = 1;
pub(crate) const T_U16: u32 = 2;
pub(crate) const T_I16: u32 = 3;
pub(crate) const T_U32: u32 = 4;
pub(crate) const T_I32: u32 = 5;
pub(crate) const T_F32: u32 = 6;
pub(crate) const T_BOOL: u32 = 7;
pub(crate) const T_STRING: u32 = 8;
pub(crate) const T_ARRAY: u32 = 9;
pub(crate) const T_U64: u32 = 10;
pub(crate) const T_I64: u32 = 11;
pub(crate) const T_F64: u32 = 12;

/// A GGML tensor type this engine can read: `(id, name, block size in elements, bytes per
/// block)`, the types candle's reader knows (ggml.h numbering).
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (30, "BF16", 1, 2),
];

/// A scalar metadata value kept for the checks below (strings only when short).
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    /// Any integer type, with the type id (candle honours `general.alignment` only for
    /// 8/16/32-bit types).
    Int(i128, u32),
    Float(f64),
    Str(String),
    Other,
}

fn bad(path: &Path, field: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// A name as it can be printed: itself when it is plain text, else escaped.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => s.to_string(),
        _ => format!("{:?}", String::from_utf8_lossy(bytes)),
    }
}

struct Header<'a, R: Read> {
    r: R,
    pos: u64,
    len: u64,
    path: &'a Path,
    elements: u64,
    scratch: Vec<u8>,
}

impl<R: Read> Header<'_, R> {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn ends_early(&self, what: &str, n: u64) -> ModelError {
        bad(
            self.path,
            what,
            format!(
                "the file ends early (needs {n} bytes at offset {}, {} left)",
                self.pos,
                self.remaining()
            ),
        )
    }

    /// Reads `n` bytes (already checked against the file size) into the scratch buffer.
    fn fill(&mut self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining() {
            return Err(self.ends_early(what, n));
        }
        self.scratch.clear();
        self.scratch.resize(n as usize, 0);
        self.r
            .read_exact(&mut self.scratch)
            .map_err(|_| self.ends_early(what, n))?;
        self.pos += n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.fill(N as u64, what)?;
        let mut b = [0u8; N];
        b.copy_from_slice(&self.scratch);
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A length-prefixed string's bytes (the length checked against the bytes left).
    fn string(&mut self, what: &str) -> Result<Vec<u8>> {
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(bad(
                self.path,
                what,
                format!(
                    "string of {n} bytes does not fit in the {} bytes left",
                    self.remaining()
                ),
            ));
        }
        self.fill(n, what)?;
        Ok(self.scratch.clone())
    }

    /// Skips (or keeps, when `keep`) one metadata value of type `ty`.
    fn value(&mut self, ty: u32, key: &str, depth: usize, keep: bool) -> Result<Scalar> {
        Ok(match ty {
            T_U8 => Scalar::Int(self.bytes::<1>(key)?[0] as i128, ty),
            T_I8 => Scalar::Int(self.bytes::<1>(key)?[0] as i8 as i128, ty),
            T_U16 => Scalar::Int(u16::from_le_bytes(self.bytes(key)?) as i128, ty),
            T_I16 => Scalar::Int(i16::from_le_bytes(self.bytes(key)?) as i128, ty),
            T_U32 => Scalar::Int(self.u32(key)? as i128, ty),
            T_I32 => Scalar::Int(i32::from_le_bytes(self.bytes(key)?) as i128, ty),
            T_U64 => Scalar::Int(self.u64(key)? as i128, ty),
            T_I64 => Scalar::Int(i64::from_le_bytes(self.bytes(key)?) as i128, ty),
            T_F32 => Scalar::Float(f32::from_le_bytes(self.bytes(key)?) as f64),
            T_F64 => Scalar::Float(f64::from_le_bytes(self.bytes(key)?)),
            T_BOOL => match self.bytes::<1>(key)?[0] {
                0 | 1 => Scalar::Other,
                b => {
                    return Err(bad(
                        self.path,
                        key,
                        format!("boolean byte {b} is not 0 or 1"),
                    ))
                }
            },
            T_STRING => {
                let s = self.string(key)?;
                if keep && s.len() <= 256 {
                    Scalar::Str(String::from_utf8_lossy(&s).into_owned())
                } else {
                    Scalar::Other
                }
            }
            T_ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(bad(
                        self.path,
                        key,
                        format!("metadata arrays nested deeper than {MAX_ARRAY_DEPTH} levels"),
                    ));
                }
                let inner = self.u32(key)?;
                let n = self.u64(key)?;
                let min = match inner {
                    T_U8 | T_I8 | T_BOOL => 1,
                    T_U16 | T_I16 => 2,
                    T_U32 | T_I32 | T_F32 => 4,
                    T_U64 | T_I64 | T_F64 | T_STRING => 8,
                    T_ARRAY => 12,
                    other => {
                        return Err(bad(
                            self.path,
                            key,
                            format!("array of unknown GGUF value type {other}"),
                        ))
                    }
                };
                if n.saturating_mul(min) > self.remaining() {
                    return Err(bad(
                        self.path,
                        key,
                        format!(
                            "array of {n} elements does not fit in the {} bytes left",
                            self.remaining()
                        ),
                    ));
                }
                self.elements = self.elements.saturating_add(n);
                if self.elements > MAX_METADATA_ELEMENTS {
                    return Err(bad(
                        self.path,
                        key,
                        format!(
                            "more than {MAX_METADATA_ELEMENTS} metadata array elements in all \
                             (README, \"Limits\")"
                        ),
                    ));
                }
                for _ in 0..n {
                    self.value(inner, key, depth + 1, false)?;
                }
                Scalar::Other
            }
            other => {
                return Err(bad(
                    self.path,
                    key,
                    format!("unknown GGUF value type {other}"),
                ))
            }
        })
    }
}

/// One entry of the tensor table, as checked.
struct Span {
    name: String,
    start: u64,
    end: u64,
}

/// Checks the header of the GGUF model file at `path` (see the module docs). Errors name the
/// file and the key or tensor at fault.
pub fn check_gguf_header(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let len = file
        .metadata()
        .map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    check_header_from(BufReader::new(file), len, path)
}

/// [`check_gguf_header`] on a reader of `len` bytes (in-memory inputs for tests and fuzzing).
pub fn check_header_from(r: impl Read, len: u64, path: &Path) -> Result<()> {
    let mut h = Header {
        r,
        pos: 0,
        len,
        path,
        elements: 0,
        scratch: Vec::new(),
    };
    if h.bytes::<4>("header")? != *b"GGUF" {
        return Err(bad(path, "header", "not a GGUF file (no `GGUF` magic)"));
    }
    let version = h.u32("version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(bad(
                path,
                "version",
                "GGUF version 1 is not supported (llama.cpp dropped it too): convert the file \
                 with a current llama.cpp",
            ))
        }
        v => {
            return Err(bad(
                path,
                "version",
                format!(
                    "GGUF version {v} is not supported (2 or 3; a big-endian file reads as \
                     50331648)"
                ),
            ))
        }
    }
    let n_tensors = h.u64("tensor_count")?;
    let n_kv = h.u64("metadata_kv_count")?;
    // A key-value pair takes at least 13 bytes (key length, type, one byte of value), a tensor
    // entry at least 32 (name length, n_dims, one dim, type, offset).
    let needed = n_kv
        .checked_mul(13)
        .and_then(|a| n_tensors.checked_mul(32).and_then(|b| a.checked_add(b)));
    if needed.is_none_or(|n| n > h.remaining()) {
        return Err(bad(
            path,
            "header",
            format!(
                "{n_tensors} tensors and {n_kv} metadata entries cannot fit in the {} bytes \
                 after the header",
                h.remaining()
            ),
        ));
    }
    let mut kv: HashMap<String, Scalar> = HashMap::new();
    for i in 0..n_kv {
        let key = h.string(&format!("metadata key #{i}"))?;
        let Ok(key) = String::from_utf8(key.clone()) else {
            return Err(bad(
                path,
                format!("metadata key #{i}"),
                format!("key {} is not UTF-8", printable(&key)),
            ));
        };
        let ty = h.u32(&key)?;
        let val = h.value(ty, &key, 0, true)?;
        if kv.insert(key.clone(), val).is_some() {
            return Err(bad(path, key, "metadata key appears twice"));
        }
    }
    let alignment = match kv.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Scalar::Int(a, ty))
            if matches!(*ty, T_U8 | T_U16 | T_U32 | T_I8 | T_I16 | T_I32)
                && *a > 0
                && (*a as u64).is_power_of_two() =>
        {
            *a as u64
        }
        Some(v) => {
            return Err(bad(
                path,
                "general.alignment",
                format!("{v:?} must be a positive power of two stored as a 32-bit integer"),
            ))
        }
    };
    let arch = match kv.get("general.architecture") {
        Some(Scalar::Str(a)) => Some(a.clone()),
        _ => None,
    };

    let mut names: HashSet<String> = HashSet::new();
    let mut entries: Vec<(String, u64, u64)> = Vec::new();
    for i in 0..n_tensors {
        let raw = h.string(&format!("tensor #{i} name"))?;
        let shown = printable(&raw);
        if raw.is_empty() || raw.len() as u64 > MAX_TENSOR_NAME {
            return Err(bad(
                path,
                format!("tensor #{i}"),
                format!(
                    "name of {} bytes (1 to {MAX_TENSOR_NAME} expected)",
                    raw.len()
                ),
            ));
        }
        let name = match String::from_utf8(raw) {
            Ok(n) if !n.chars().any(|c| c.is_control()) => n,
            _ => {
                return Err(bad(
                    path,
                    format!("tensor #{i}"),
                    format!("name {shown} is not plain UTF-8 text (corrupt tensor table?)"),
                ))
            }
        };
        let n_dims = h.u32(&name)?;
        if n_dims == 0 || n_dims > GGML_MAX_DIMS {
            return Err(bad(
                path,
                &name,
                format!("{n_dims} dimensions (a GGML tensor has 1 to {GGML_MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(h.u64(&name)?);
        }
        let ty = h.u32(&name)?;
        let offset = h.u64(&name)?;
        let Some(&(_, tname, block, type_size)) = GGML_TYPES.iter().find(|t| t.0 == ty) else {
            return Err(bad(
                path,
                &name,
                format!(
                    "unknown or unsupported GGML tensor type {ty} (supported: {})",
                    GGML_TYPES
                        .iter()
                        .map(|t| t.1)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if let Some(d) = dims.iter().position(|&d| d == 0 || d > i64::MAX as u64) {
            return Err(bad(
                path,
                &name,
                format!("dimension {d} is {} (must be 1 or more)", dims[d]),
            ));
        }
        let elems = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&e| e <= usize::MAX as u64 / 4);
        let Some(elems) = elems else {
            return Err(bad(
                path,
                &name,
                format!(
                    "dimensions {dims:?} multiply past the largest tensor this machine can address"
                ),
            ));
        };
        if dims[0] % block != 0 {
            return Err(bad(
                path,
                &name,
                format!(
                    "its rows of {} are not a whole number of {tname} blocks of {block}",
                    dims[0]
                ),
            ));
        }
        let Some(size) = (elems / block).checked_mul(type_size) else {
            return Err(bad(path, &name, "its size in bytes overflows"));
        };
        if offset % alignment != 0 {
            return Err(bad(
                path,
                &name,
                format!("data offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(bad(path, &name, "tensor name appears twice"));
        }
        entries.push((name, offset, size));
    }
    // Tensor data starts at the first aligned offset after the table.
    let data_start = h.pos.div_ceil(alignment).checked_mul(alignment);
    let mut spans = Vec::with_capacity(entries.len());
    for (name, offset, size) in entries {
        let start = data_start.and_then(|d| d.checked_add(offset));
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(start), Some(end)) if end <= len => spans.push(Span { name, start, end }),
            _ => {
                return Err(bad(
                    path,
                    &name,
                    format!(
                        "its {size} bytes of data at offset {offset} lie past the end of the \
                         file ({len} bytes; truncated file?)"
                    ),
                ))
            }
        }
    }
    spans.sort_by_key(|s| (s.start, s.end));
    for w in spans.windows(2) {
        if w[1].start < w[0].end {
            return Err(bad(
                path,
                &w[1].name,
                format!("its data overlaps tensor `{}`'s", w[0].name),
            ));
        }
    }
    if let Some(arch) = arch {
        check_numbers(&kv, &arch, n_tensors, path)?;
    }
    Ok(())
}

/// The `{arch}.*` numbers that become the model's configuration.
fn check_numbers(
    kv: &HashMap<String, Scalar>,
    arch: &str,
    n_tensors: u64,
    path: &Path,
) -> Result<()> {
    let key = |s: &str| format!("{arch}.{s}");
    let int = |k: &str| -> Result<Option<i128>> {
        match kv.get(k) {
            None => Ok(None),
            Some(Scalar::Int(v, _)) => Ok(Some(*v)),
            Some(v) => Err(bad(path, k, format!("{v:?} is not an integer"))),
        }
    };
    let float = |k: &str| -> Result<Option<f64>> {
        match kv.get(k) {
            None => Ok(None),
            Some(Scalar::Float(v)) => Ok(Some(*v)),
            Some(Scalar::Int(v, _)) => Ok(Some(*v as f64)),
            Some(v) => Err(bad(path, k, format!("{v:?} is not a number"))),
        }
    };
    let k = key("block_count");
    if let Some(b) = int(&k)? {
        // Every block has tensors of its own: more blocks than tensors is a corrupt count, and
        // refusing it here keeps the loader from building a list of that length.
        if b < 1 || b > n_tensors as i128 {
            return Err(bad(
                path,
                k,
                format!("{b} blocks, but the file has {n_tensors} tensors"),
            ));
        }
    }
    for (name, must) in [
        ("context_length", "a context of at least 1 token"),
        ("attention.sliding_window", "a window of at least 1 token"),
    ] {
        let k = key(name);
        if let Some(v) = int(&k)? {
            if v < 1 || v > u32::MAX as i128 {
                return Err(bad(path, k, format!("{v}: must be {must}")));
            }
        }
    }
    for (name, positive) in [
        ("rope.freq_base", true),
        ("rope.scaling.factor", true),
        ("attention.layer_norm_rms_epsilon", false),
    ] {
        let k = key(name);
        if let Some(v) = float(&k)? {
            let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
            if !ok {
                let want = if positive { "above 0" } else { "0 or more" };
                return Err(bad(path, k, format!("{v}: must be a finite number {want}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn type_table_matches_candle() {
        for (dt, id) in [
            (GgmlDType::F32, 0),
            (GgmlDType::F16, 1),
            (GgmlDType::Q4_0, 2),
            (GgmlDType::Q4_1, 3),
            (GgmlDType::Q5_0, 6),
            (GgmlDType::Q5_1, 7),
            (GgmlDType::Q8_0, 8),
            (GgmlDType::Q8_1, 9),
            (GgmlDType::Q2K, 10),
            (GgmlDType::Q3K, 11),
            (GgmlDType::Q4K, 12),
            (GgmlDType::Q5K, 13),
            (GgmlDType::Q6K, 14),
            (GgmlDType::Q8K, 15),
            (GgmlDType::BF16, 30),
        ] {
            let t = GGML_TYPES.iter().find(|t| t.0 == id).unwrap();
            assert_eq!(
                (t.2, t.3),
                (dt.block_size() as u64, dt.type_size() as u64),
                "{dt:?}"
            );
        }
    }
}
