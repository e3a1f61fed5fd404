//! A small judgements reader for `steerlab dissect` until the data layer's
//! `crate::data::load_dataset` is on main: JSONL (one object a line) or a JSON array.
//!
//! Accepted records: pairwise judgements (`prompt`, `response_a`, `response_b`, `winner` =
//! `a`|`b`|`tie`, optional `id`, `judge`, `annotator`, `scenario`, `factors_a`, `factors_b`) and
//! chosen/rejected pairs (`prompt`, `chosen`, `rejected`; read as A = chosen, winner A), the
//! latter also with optional `judge`/`annotator`/`scenario`. Errors name the file, line and field.
use super::error::DissectError;
use crate::data::{Judgement, Prompt, Winner};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn field_str(o: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_record(v: &Value, path: &Path, line: usize) -> Result<Judgement, DissectError> {
    let bad = |m: String| DissectError::BadRecord {
        path: path.to_path_buf(),
        line,
        message: m,
    };
    let o = v
        .as_object()
        .ok_or_else(|| bad("record is not a JSON object".into()))?;
    let prompt = match o.get("prompt") {
        None | Some(Value::Null) => Prompt::Text(String::new()),
        Some(p) => serde_json::from_value::<Prompt>(p.clone()).map_err(|e| {
            bad(format!(
                "field `prompt`: expected a string or a list of messages ({e})"
            ))
        })?,
    };
    let text = |k: &str| -> Result<String, DissectError> {
        match o.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(bad(format!("field `{k}` must be a string"))),
            None => Err(bad(format!("missing field `{k}`"))),
        }
    };
    let (a, b, winner) = if o.contains_key("response_a") || o.contains_key("winner") {
        let w = field_str(o, "winner")
            .ok_or_else(|| bad("missing field `winner` (a, b or tie)".into()))?;
        let winner = match w.trim().to_ascii_lowercase().as_str() {
            "a" | "model_a" | "response_a" => Winner::A,
            "b" | "model_b" | "response_b" => Winner::B,
            "tie" | "draw" | "tie (bothbad)" => Winner::Tie,
            other => return Err(bad(format!("field `winner`: `{other}` is not a, b or tie"))),
        };
        (text("response_a")?, text("response_b")?, winner)
    } else if o.contains_key("chosen") {
        (text("chosen")?, text("rejected")?, Winner::A)
    } else {
        return Err(bad(
            "not a judgement (response_a/response_b/winner) or a pair (chosen/rejected)".into(),
        ));
    };
    let factors = |k: &str| -> Result<BTreeMap<String, f64>, DissectError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(name, val)| {
                    let x = match val {
                        Value::Number(n) => n.as_f64(),
                        Value::Bool(b) => Some(f64::from(u8::from(*b))),
                        _ => None,
                    };
                    x.filter(|x| x.is_finite())
                        .map(|x| (name.clone(), x))
                        .ok_or_else(|| bad(format!("field `{k}.{name}` must be a finite number")))
                })
                .collect(),
            Some(_) => Err(bad(format!(
                "field `{k}` must be an object of factor name -> number"
            ))),
        }
    };
    Ok(Judgement {
        id: field_str(o, "id").unwrap_or_else(|| format!("line{line}")),
        prompt,
        response_a: a,
        response_b: b,
        winner,
        judge: field_str(o, "judge"),
        annotator: field_str(o, "annotator"),
        scenario: field_str(o, "scenario"),
        factors_a: factors("factors_a")?,
        factors_b: factors("factors_b")?,
    })
}

/// Reads judgements from a `.jsonl` file (one object a line) or a `.json` array.
pub fn read_judgements(path: &Path) -> Result<Vec<Judgement>, DissectError> {
    let text = std::fs::read_to_string(path).map_err(|e| DissectError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let arr: Vec<Value> =
            serde_json::from_str(trimmed).map_err(|e| DissectError::BadRecord {
                path: path.to_path_buf(),
                line: e.line(),
                message: format!("invalid JSON: {e}"),
            })?;
        return arr
            .iter()
            .enumerate()
            .map(|(i, v)| parse_record(v, path, i + 1))
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| DissectError::BadRecord {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("invalid JSON: {e}"),
        })?;
        out.push(parse_record(&v, path, i + 1)?);
    }
    if out.is_empty() {
        return Err(DissectError::Empty(format!(
            "{} has no records",
            path.display()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_judgements_pairs_and_reports_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"kind":"judgement","id":"x","prompt":[{"role":"user","content":"hi"}],"response_a":"a","response_b":"b","winner":"B","judge":"human","factors_a":{"polite":1,"ok":true},"factors_b":{"polite":0}}"#,
                "\n\n",
                r#"{"prompt":"p","chosen":"c","rejected":"r","scenario":"code"}"#,
                "\n"
            ),
        )
        .unwrap();
        let js = read_judgements(&p).unwrap();
        assert_eq!(js.len(), 2);
        assert_eq!(js[0].winner, Winner::B);
        assert_eq!(js[0].factors_a["ok"], 1.0);
        assert_eq!(js[0].judge.as_deref(), Some("human"));
        assert_eq!((js[1].response_a.as_str(), js[1].winner), ("c", Winner::A));
        assert_eq!(js[1].id, "line3");
        assert_eq!(js[1].scenario.as_deref(), Some("code"));

        std::fs::write(&p, "{\"response_a\":\"a\",\"response_b\":\"b\",\"winner\":\"a\",\"factors_a\":{\"x\":\"high\"}}\n").unwrap();
        let e = read_judgements(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("factors_a.x"), "{e}");
        std::fs::write(&p, "[{\"chosen\":\"c\"}]").unwrap();
        let e = read_judgements(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("rejected"), "{e}");
    }
}
