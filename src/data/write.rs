//! Writing records in steerlab's native formats (JSONL with the canonical field names of each
//! layout, or CSV), atomically (a unique temporary name, then a rename).
use super::error::DataError;
use super::types::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// A record as a JSON object with the canonical field names of its layout (what the readers
/// detect without a mapping).
pub fn record_to_json(r: &Record) -> Value {
    let v = match r {
        Record::Pair(x) => serde_json::to_value(x),
        Record::Judgement(x) => serde_json::to_value(x),
        Record::AbItem(x) => serde_json::to_value(x),
        Record::Feedback(x) => serde_json::to_value(x),
        Record::Prompt(x) => serde_json::to_value(x),
    };
    let mut v = v.unwrap_or_else(|e| json!({ "error": e.to_string() }));
    // Extra columns are written as top-level columns, as they were read (never over a field).
    if let Value::Object(o) = &mut v {
        if let Some(Value::Object(extra)) = o.remove("extra") {
            for (k, x) in extra {
                o.entry(k).or_insert(x);
            }
        }
    }
    v
}

/// Writes a file atomically: `fill` writes to a temporary name unique to this writer in the
/// target's folder, which is then renamed to `path` (see [`crate::report::atomic`]). Refuses to
/// replace anything that is not a regular file; the temporary file never survives a failure.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), DataError> {
    crate::report::atomic::write_with(path, fill).map_err(|e| DataError::io(path, e))
}

/// Writes JSON values, one per line, atomically.
pub fn write_json_lines<'a>(
    path: &Path,
    values: impl IntoIterator<Item = &'a Value>,
) -> Result<(), DataError> {
    write_atomic(path, |w| {
        for v in values {
            serde_json::to_writer(&mut *w, v)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Writes records as native JSONL, atomically.
pub fn write_jsonl(path: &Path, records: &[Record]) -> Result<(), DataError> {
    let values: Vec<Value> = records.iter().map(record_to_json).collect();
    write_json_lines(path, &values)
}

/// Writes records as CSV (columns of the first record's layout; message-list prompts and
/// factor objects as JSON text), atomically. All records must be of one kind.
pub fn write_csv(path: &Path, records: &[Record]) -> Result<(), DataError> {
    let values: Vec<Value> = records.iter().map(record_to_json).collect();
    let columns: Vec<String> = match values.first() {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if let Some(i) = records
        .iter()
        .position(|r| std::mem::discriminant(r) != std::mem::discriminant(&records[0]))
    {
        return Err(DataError::Invalid(format!(
            "cannot write records of different kinds to one CSV file (record {} differs from the first)",
            i + 1
        )));
    }
    write_atomic(path, |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(&columns)?;
        for v in &values {
            let row: Vec<String> = columns
                .iter()
                .map(|c| match v.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                })
                .collect();
            cw.write_record(&row)?;
        }
        cw.flush()
    })
}
