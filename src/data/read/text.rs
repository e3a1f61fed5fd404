//! The row type the readers yield and the small text helpers they share (UTF-8 checks, type
//! names and sizes for messages). No I/O.
use crate::data::error::Loc;
use serde_json::{Map, Value};

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

pub(crate) fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
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
