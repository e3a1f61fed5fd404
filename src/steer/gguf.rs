//! GGUF control vectors (llama.cpp `--control-vector`, repeng `export_gguf`): export a
//! [`SteeringVector`] and import such files back.
//!
//! Layout written: GGUF v3, `general.architecture = "controlvector"`,
//! `controlvector.model_hint` (string), `controlvector.layer_count` (u32), provenance keys
//! `steerlab.*` (strings, ignored by llama.cpp), and one F32 1-D tensor `direction.{N}` per
//! layer, data aligned to 32 bytes.
//!
//! Index convention (checked against llama.cpp's loader, see docs/design/vector-format.md):
//! llama.cpp adds `direction.N` to the output of the 0-based block `N` (`build_cvec(cur, il)` at
//! the end of block `il`), and rejects `direction.0`. steerlab's `layers.N` is the same 0-based
//! block output, so `layers.N ↔ direction.N` with no shift; a vector on layer 0 cannot be
//! exported. repeng uses the same numbering (its `direction.{layer}` is read from
//! `hidden_states[layer + 1]`, the output of block `layer`).
//!
//! Positions: llama.cpp adds a control vector at every token position, prompt included, and has
//! no key for anything else. So a `.gguf` control vector always means positions `all`: the export
//! writes `steerlab.positions = all` (with a `steerlab.note` and a warning from
//! [`llama_cpp_positions_change`] when the vector was meant for other positions, as CAA's
//! `generated`), and an import is `all` whatever the file says, so one file behaves one way in
//! both tools. llama.cpp's own `cvector-generator` names the direction measured at the output of
//! block `N-1` `direction.N` (its files carry `controlvector.layer_count` as an i32, repeng's and
//! steerlab's as a u32); such an import keeps llama.cpp's placement and says so in its note.
//!
//! This module only reads and writes files; it has no model code.
use super::error::{bad, io_err, Result, SteerError};
use super::vector::{write_atomic, SteeringVector, VectorMeta};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
const ALIGNMENT: usize = 32;
const GGML_TYPE_F32: u32 = 0;
const GGML_TYPE_F16: u32 = 1;
/// Deepest nesting of metadata arrays accepted (llama.cpp's writers never nest).
const MAX_ARRAY_DEPTH: usize = 4;
// GGUF metadata value types and the dimension limit, shared with the model reader.
use crate::model::load::gguf_check::{
    GGML_MAX_DIMS, T_ARRAY, T_BOOL, T_F32, T_F64, T_I16, T_I32, T_I64, T_I8, T_STRING, T_U16,
    T_U32, T_U64, T_U8,
};

/// A scalar GGUF metadata value (arrays are skipped on import).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    U32(u32),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array,
}

impl SteeringVector {
    /// Loads `path` as a native `.safetensors` vector, or as a GGUF control vector
    /// (llama.cpp / repeng) when it ends in `.gguf`. (Here rather than in `vector.rs`, so the
    /// native format does not depend on this one.)
    pub fn load_any(path: &Path) -> Result<Self> {
        crate::report::atomic::require_regular_file(path).map_err(io_err(path))?;
        let is_gguf = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            import_control_vector(path)
        } else {
            Self::load(path)
        }
    }
}

/// Writes `v` as a llama.cpp control vector. `model_hint` goes to `controlvector.model_hint`
/// (repeng puts the HF `model_type` there, e.g. `llama`; llama.cpp does not check it).
/// Fails if the vector has a direction for block 0, which llama.cpp cannot apply.
pub fn export_control_vector(v: &SteeringVector, model_hint: &str, path: &Path) -> Result<()> {
    if v.layers.contains_key(&0) {
        return Err(SteerError::Invalid(format!(
            "{}: llama.cpp control vectors cannot steer the output of block 0 (direction.0 is rejected by its loader); drop layer 0 before exporting",
            v.display_name()
        )));
    }
    if let Some(msg) = llama_cpp_mode_refusal(v) {
        return Err(SteerError::Invalid(msg));
    }
    let m = &v.meta;
    let note = match (llama_cpp_positions_change(v), m.note.is_empty()) {
        (Some(change), true) => change,
        (Some(change), false) => format!("{} {change}", m.note),
        (None, _) => m.note.clone(),
    };
    let mut kv: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::Str("controlvector".into())),
        (
            "controlvector.model_hint",
            Value::Str(model_hint.to_string()),
        ),
        (
            "controlvector.layer_count",
            Value::U32(v.layers.len() as u32),
        ),
        ("steerlab.method", Value::Str(m.method.clone())),
        ("steerlab.model", Value::Str(m.model.clone())),
        ("steerlab.site", Value::Str(m.site.clone())),
        ("steerlab.positions", Value::Str("all".into())),
        ("steerlab.objective", Value::Str(m.objective.clone())),
        ("steerlab.dataset", Value::Str(m.dataset.clone())),
    ];
    if !m.created.is_empty() {
        kv.push(("steerlab.created", Value::Str(m.created.clone())));
    }
    if let Some(b) = m.beta {
        kv.push(("steerlab.beta", Value::Str(b.to_string())));
    }
    if !note.is_empty() {
        kv.push(("steerlab.note", Value::Str(note)));
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(v.layers.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, val) in &kv {
        put_str(&mut out, k);
        match val {
            Value::Str(s) => {
                out.extend_from_slice(&T_STRING.to_le_bytes());
                put_str(&mut out, s);
            }
            Value::U32(x) => {
                out.extend_from_slice(&T_U32.to_le_bytes());
                out.extend_from_slice(&x.to_le_bytes());
            }
            _ => unreachable!("the writer only emits strings and u32"),
        }
    }
    let tensor_bytes = v.hidden_size() * 4;
    let stride = tensor_bytes.div_ceil(ALIGNMENT) * ALIGNMENT;
    for (i, l) in v.layers.keys().enumerate() {
        put_str(&mut out, &format!("direction.{l}"));
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(v.hidden_size() as u64).to_le_bytes());
        out.extend_from_slice(&GGML_TYPE_F32.to_le_bytes());
        out.extend_from_slice(&((i * stride) as u64).to_le_bytes());
    }
    pad_to(&mut out, ALIGNMENT);
    for d in v.layers.values() {
        for x in d {
            out.extend_from_slice(&x.to_le_bytes());
        }
        pad_to(&mut out, ALIGNMENT);
    }
    write_atomic(path, &out)
}

/// Why llama.cpp cannot reproduce `v`, when its intervention mode is not plain addition
/// (llama.cpp's `--control-vector` only adds; norm-preserving addition, ablation, clamping
/// and conditional steering have no counterpart there), else `None`.
pub fn llama_cpp_mode_refusal(v: &SteeringVector) -> Option<String> {
    let mode = v.meta.intervention.as_str();
    let conditional = v.meta.extra.contains_key("steerlab.condition");
    if (mode.is_empty() || mode == "add") && !conditional {
        return None;
    }
    let what = if conditional {
        format!("conditional (CAST) `{mode}`")
    } else {
        format!("`{mode}`")
    };
    Some(format!(
        "{}: its intervention is {what}, which llama.cpp cannot express (--control-vector only \
         adds a fixed direction at every position); export refused. Expressible: add.",
        v.display_name()
    ))
}

/// What changes when `v` becomes a llama.cpp control vector, which is added at every position
/// (prompt included): `None` when `v` is already meant for all positions, else a warning that
/// names the positions it was made for and what applying it everywhere changes.
pub fn llama_cpp_positions_change(v: &SteeringVector) -> Option<String> {
    let p = v.meta.positions.as_str();
    if p == "all" {
        return None;
    }
    let which = match p {
        "generated" => "only to generated tokens (after the prompt)",
        "prompt" => "only to prompt tokens",
        other => other,
    };
    Some(format!(
        "{} was made to be added {which} (positions `{p}`), but llama.cpp adds a control vector at \
         every position, prompt included, so the exported file says positions `all` and steerlab \
         applies it that way too when it is loaded back. Steering the prompt as well changes the \
         text from the first generated token at large scales; compare `steerlab generate --steer \
         FILE.gguf:S` with the original vector before relying on the scale.",
        v.display_name()
    ))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(
                    self.path,
                    what,
                    format!("file ends early (needs {n} bytes at offset {})", self.pos),
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(self.path, what, "string is not UTF-8"))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// One metadata value of type `ty`; `depth` counts enclosing arrays (bounded, so a file of
    /// nested arrays cannot exhaust the stack).
    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            T_U8 => Value::Int(self.take(1, key)?[0] as i64),
            T_I8 => Value::Int(self.take(1, key)?[0] as i8 as i64),
            T_U16 => {
                Value::Int(u16::from_le_bytes(self.take(2, key)?.try_into().expect("2")) as i64)
            }
            T_I16 => {
                Value::Int(i16::from_le_bytes(self.take(2, key)?.try_into().expect("2")) as i64)
            }
            T_U32 => Value::U32(self.u32(key)?),
            T_I32 => Value::Int(self.u32(key)? as i32 as i64),
            T_F32 => {
                Value::Float(f32::from_le_bytes(self.take(4, key)?.try_into().expect("4")) as f64)
            }
            T_BOOL => Value::Bool(self.take(1, key)?[0] != 0),
            T_STRING => Value::Str(self.string(key)?),
            T_U64 => Value::Int(self.u64(key)? as i64),
            T_I64 => Value::Int(self.u64(key)? as i64),
            T_F64 => Value::Float(f64::from_le_bytes(
                self.take(8, key)?.try_into().expect("8"),
            )),
            T_ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(bad(
                        self.path,
                        key,
                        format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels"),
                    ));
                }
                let inner = self.u32(key)?;
                let n = self.u64(key)?;
                // Every element takes at least one byte: a count the rest of the file cannot
                // hold is refused before looping over it.
                if n > self.remaining() as u64 {
                    return Err(bad(
                        self.path,
                        key,
                        format!(
                            "array of {n} elements does not fit in the {} bytes left",
                            self.remaining()
                        ),
                    ));
                }
                for _ in 0..n {
                    self.value(inner, key, depth + 1)?;
                }
                Value::Array
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

/// Reads a llama.cpp / repeng control vector (`direction.{N}` tensors, F32 or F16, 1-D).
/// `direction.N` becomes steerlab layer `N` (same 0-based block output). The method is
/// recorded as `import` unless the file carries steerlab provenance keys.
pub fn import_control_vector(path: &Path) -> Result<SteeringVector> {
    let buf = std::fs::read(path).map_err(io_err(path))?;
    let mut r = Reader {
        buf: &buf,
        pos: 0,
        path,
    };
    if r.take(4, "magic")? != MAGIC {
        return Err(bad(path, "magic", "not a GGUF file"));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(bad(
            path,
            "version",
            format!("GGUF version {version} is not supported (2 or 3)"),
        ));
    }
    let n_tensors = r.u64("tensor_count")?;
    let n_kv = r.u64("kv_count")?;
    // A key-value pair takes at least 12 bytes (key length + type), a tensor entry at least 24
    // (name length + dims + type + offset): counts the file cannot hold are refused up front.
    for (what, n, min) in [("kv_count", n_kv, 12u64), ("tensor_count", n_tensors, 24)] {
        if n.saturating_mul(min) > r.remaining() as u64 {
            return Err(bad(
                path,
                what,
                format!(
                    "{n} entries cannot fit in the {} bytes after the header",
                    r.remaining()
                ),
            ));
        }
    }
    let mut kv = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32(&key)?;
        let val = r.value(ty, &key, 0)?;
        kv.insert(key, val);
    }
    match kv.get("general.architecture") {
        Some(Value::Str(a)) if a == "controlvector" => {}
        Some(Value::Str(a)) => {
            return Err(bad(
                path,
                "general.architecture",
                format!("is `{a}`, not `controlvector`: not a control vector"),
            ))
        }
        _ => {
            return Err(bad(
                path,
                "general.architecture",
                "missing: not a control vector",
            ))
        }
    }
    let alignment = match kv.get("general.alignment") {
        Some(Value::U32(a)) if a.is_power_of_two() => *a as usize,
        Some(_) => return Err(bad(path, "general.alignment", "must be a u32 power of two")),
        None => ALIGNMENT,
    };
    struct Info {
        name: String,
        layer: usize,
        ty: u32,
        offset: usize,
        bytes: usize,
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32(&name)?;
        if n_dims == 0 || n_dims > GGML_MAX_DIMS {
            return Err(bad(
                path,
                &name,
                format!("{n_dims} dimensions (a GGML tensor has 1 to {GGML_MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(r.u64(&name)?);
        }
        let ty = r.u32(&name)?;
        let offset = r.u64(&name)?;
        if offset % alignment as u64 != 0 {
            return Err(bad(
                path,
                &name,
                format!("data offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        let Some(idx) = name.strip_prefix("direction.") else {
            continue;
        };
        let layer: usize = idx
            .parse()
            .map_err(|_| bad(path, &name, "expected `direction.{N}` with an integer N"))?;
        if layer == 0 {
            return Err(bad(
                path,
                &name,
                "direction.0 is invalid (llama.cpp numbers directions from 1)",
            ));
        }
        if dims.len() != 1 {
            return Err(bad(
                path,
                &name,
                format!("expected a 1-D tensor, found dims {dims:?}"),
            ));
        }
        if ty != GGML_TYPE_F32 && ty != GGML_TYPE_F16 {
            return Err(bad(
                path,
                &name,
                format!("tensor type {ty} is not F32 (0) or F16 (1)"),
            ));
        }
        let elem: u64 = if ty == GGML_TYPE_F32 { 4 } else { 2 };
        // Sizes and offsets are checked (no overflow, inside the file) before any use.
        let bytes = dims[0].checked_mul(elem);
        let span_end = bytes.and_then(|b| offset.checked_add(b));
        let (Some(bytes), Some(span_end)) = (bytes, span_end) else {
            return Err(bad(
                path,
                &name,
                format!("{} elements at offset {offset} overflow", dims[0]),
            ));
        };
        if span_end > buf.len() as u64 {
            return Err(bad(
                path,
                &name,
                "tensor data lies beyond the end of the file",
            ));
        }
        infos.push(Info {
            name,
            layer,
            ty,
            offset: offset as usize,
            bytes: bytes as usize,
        });
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    // Tensors may not share bytes (a crafted file could make two directions alias).
    let mut spans: Vec<(usize, usize, &str)> = infos
        .iter()
        .map(|i| (i.offset, i.offset + i.bytes, i.name.as_str()))
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(
                path,
                w[1].2,
                format!("its data overlaps `{}`'s", w[0].2),
            ));
        }
    }
    let mut layers = BTreeMap::new();
    let mut width = None;
    for info in &infos {
        let start = data_start + info.offset;
        let end = start + info.bytes;
        if end > buf.len() {
            return Err(bad(
                path,
                &info.name,
                "tensor data lies beyond the end of the file",
            ));
        }
        let raw = &buf[start..end];
        let d: Vec<f32> = if info.ty == GGML_TYPE_F32 {
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            raw.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()
        };
        if d.iter().any(|x| !x.is_finite()) {
            return Err(bad(path, &info.name, "contains NaN or infinite values"));
        }
        match width {
            None => width = Some(d.len()),
            Some(w) if w != d.len() => {
                return Err(bad(
                    path,
                    &info.name,
                    format!("width {} differs from the other directions' {w}", d.len()),
                ))
            }
            _ => {}
        }
        if layers.insert(info.layer, d).is_some() {
            return Err(bad(path, &info.name, "appears twice"));
        }
    }
    let hidden = width.ok_or_else(|| bad(path, "-", "no `direction.{N}` tensors"))?;
    let s = |k: &str| match kv.get(k) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let mut meta = VectorMeta::new(
        s("steerlab.method").unwrap_or_else(|| "import".into()),
        "",
        hidden,
    );
    meta.model = s("steerlab.model")
        .or_else(|| s("controlvector.model_hint"))
        .unwrap_or_default();
    // A control vector is applied at every position (llama.cpp has no other mode): an older
    // steerlab export that recorded other positions is read as `all`, and says so.
    meta.positions = "all".into();
    let mut notes = Vec::new();
    if let Some(n) = s("steerlab.note") {
        notes.push(n);
    }
    if let Some(p) = s("steerlab.positions").filter(|p| p != "all") {
        if !notes.iter().any(|n| n.contains("positions `all`")) {
            notes.push(format!(
                "exported with positions `{p}`; as a GGUF control vector it is applied at every \
                 position, as llama.cpp does"
            ));
        }
    }
    let from_cvector_generator = matches!(kv.get("controlvector.layer_count"), Some(Value::Int(_)))
        && !kv.keys().any(|k| k.starts_with("steerlab."));
    if from_cvector_generator {
        notes.push(
            "written by llama.cpp's cvector-generator, which names the direction measured at the \
             output of block N-1 `direction.N`: llama.cpp, and steerlab on import, add it to the \
             output of block N, one block after where it was measured"
                .into(),
        );
    }
    meta.note = notes.join(" ");
    if let Some(x) = s("steerlab.objective") {
        meta.objective = x;
    }
    if let Some(x) = s("steerlab.dataset") {
        meta.dataset = x;
    } else {
        meta.dataset = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    if let Some(x) = s("steerlab.created") {
        meta.created = x;
    }
    meta.beta = s("steerlab.beta").and_then(|b| b.parse().ok());
    let mut v = SteeringVector::new(layers, meta)?;
    v.source = Some(path.to_path_buf());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(hidden: usize, layers: &[usize]) -> SteeringVector {
        let map = layers
            .iter()
            .map(|&l| {
                (
                    l,
                    (0..hidden)
                        .map(|i| (l * 100 + i) as f32 * 0.01 - 0.3)
                        .collect(),
                )
            })
            .collect();
        let mut meta = VectorMeta::new("caa", "SmolLM2-135M-Instruct", hidden);
        meta.beta = Some(0.1);
        SteeringVector::new(map, meta).unwrap()
    }

    #[test]
    fn export_then_import_is_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.gguf");
        // width 5 → 20 data bytes, exercises the 32-byte padding between tensors
        let v = sample(5, &[1, 14, 29]);
        export_control_vector(&v, "llama", &p).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[..4], b"GGUF");
        let w = import_control_vector(&p).unwrap();
        assert_eq!(w.layers, v.layers);
        assert_eq!(w.meta.method, "caa");
        assert_eq!(w.meta.model, "SmolLM2-135M-Instruct");
        assert_eq!(w.meta.beta, Some(0.1));
        let w2 = SteeringVector::load_any(&p).unwrap();
        assert_eq!(w2.layers, v.layers);
    }

    #[test]
    fn layer_zero_is_refused_and_foreign_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero.gguf");
        let msg = export_control_vector(&sample(4, &[0, 3]), "llama", &p)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("block 0"), "{msg}");
        std::fs::write(&p, b"GGUF\x03\x00\x00\x00").unwrap();
        let msg = import_control_vector(&p).unwrap_err().to_string();
        assert!(
            msg.contains("zero.gguf") && msg.contains("ends early"),
            "{msg}"
        );
    }

    /// A GGUF file from raw parts: metadata `(key, type, value bytes)`, tensor infos
    /// `(name, dims, type, offset)` and the data section (placed at the next 32-byte boundary).
    fn craft(
        kvs: &[(&str, u32, Vec<u8>)],
        tensors: &[(&str, Vec<u64>, u32, u64)],
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(kvs.len() as u64 + 1).to_le_bytes());
        put_str(&mut out, "general.architecture");
        out.extend_from_slice(&T_STRING.to_le_bytes());
        put_str(&mut out, "controlvector");
        for (k, ty, v) in kvs {
            put_str(&mut out, k);
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(v);
        }
        for (name, dims, ty, offset) in tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        pad_to(&mut out, ALIGNMENT);
        out.extend_from_slice(data);
        out
    }

    fn import_err(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crafted.gguf");
        std::fs::write(&p, bytes).unwrap();
        let e = import_control_vector(&p).unwrap_err().to_string();
        assert!(e.contains("crafted.gguf"), "{e}");
        e
    }

    const F32S: [u8; 32] = [0; 32];

    #[test]
    fn nested_metadata_arrays_are_bounded_not_recursed_into_overflow() {
        // 200 000 levels of arrays of one array: 2.4 MB that used to overflow the stack.
        let mut v = Vec::new();
        for _ in 0..200_000 {
            v.extend_from_slice(&T_ARRAY.to_le_bytes());
            v.extend_from_slice(&1u64.to_le_bytes());
        }
        v.extend_from_slice(&T_U8.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        let e = import_err(&craft(&[("x", T_ARRAY, v)], &[], &[]));
        assert!(e.contains("nested deeper"), "{e}");
        // An array count the file cannot hold fails at once.
        let mut v = T_U8.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let e = import_err(&craft(&[("x", T_ARRAY, v)], &[], &[]));
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn sizes_offsets_alignment_and_overlap_are_checked() {
        let one = |dims: Vec<u64>, offset: u64| {
            craft(&[], &[("direction.1", dims, GGML_TYPE_F32, offset)], &F32S)
        };
        // element count × 4 overflows u64
        let e = import_err(&one(vec![u64::MAX / 2], 0));
        assert!(e.contains("overflow"), "{e}");
        // element count whose byte size used to wrap to a small number
        let e = import_err(&one(vec![(1u64 << 62) + 1], 0));
        assert!(e.contains("overflow") || e.contains("beyond"), "{e}");
        // misaligned offset
        let e = import_err(&one(vec![4], 4));
        assert!(e.contains("not a multiple"), "{e}");
        // beyond the end
        let e = import_err(&one(vec![4], 64));
        assert!(e.contains("beyond"), "{e}");
        // zero or too many dimensions
        let e = import_err(&one(vec![], 0));
        assert!(e.contains("dimensions"), "{e}");
        // two directions over the same bytes
        let e = import_err(&craft(
            &[],
            &[
                ("direction.1", vec![4], GGML_TYPE_F32, 0),
                ("direction.2", vec![4], GGML_TYPE_F32, 0),
            ],
            &F32S,
        ));
        assert!(e.contains("overlaps"), "{e}");
        // alignment 0 (used to divide by zero in readers) and non-powers of two
        for a in [0u32, 24] {
            let e = import_err(&craft(
                &[("general.alignment", T_U32, a.to_le_bytes().to_vec())],
                &[],
                &[],
            ));
            assert!(e.contains("power of two"), "{e}");
        }
        // counts the file cannot hold
        let mut b = craft(&[], &[], &[]);
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = import_err(&b);
        assert!(e.contains("cannot fit"), "{e}");
        // the well-formed twin loads
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.gguf");
        std::fs::write(&p, one(vec![4], 0)).unwrap();
        assert_eq!(import_control_vector(&p).unwrap().hidden_size(), 4);
    }

    #[test]
    fn a_gguf_vector_means_all_positions_in_both_tools() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("caa.gguf");
        let mut v = sample(4, &[2]);
        v.meta.positions = "generated".into();
        let warning =
            llama_cpp_positions_change(&v).expect("generated-only differs from llama.cpp");
        assert!(
            warning.contains("every position") && warning.contains("generated"),
            "{warning}"
        );
        export_control_vector(&v, "llama", &p).unwrap();
        let back = import_control_vector(&p).unwrap();
        assert_eq!(back.meta.positions, "all");
        assert!(
            back.meta.note.contains("every position"),
            "{}",
            back.meta.note
        );
        // a vector already meant for every position exports without a note
        let all = sample(4, &[2]);
        assert!(llama_cpp_positions_change(&all).is_none());
        export_control_vector(&all, "llama", &p).unwrap();
        assert!(import_control_vector(&p).unwrap().meta.note.is_empty());
    }

    #[test]
    fn cvector_generator_files_say_where_their_directions_were_measured() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cvgen.gguf");
        let file = craft(
            &[
                ("controlvector.model_hint", T_STRING, {
                    let mut b = Vec::new();
                    put_str(&mut b, "llama");
                    b
                }),
                (
                    "controlvector.layer_count",
                    T_I32,
                    1i32.to_le_bytes().to_vec(),
                ),
            ],
            &[("direction.5", vec![8], GGML_TYPE_F32, 0)],
            &F32S,
        );
        std::fs::write(&p, file).unwrap();
        let v = import_control_vector(&p).unwrap();
        assert_eq!(v.meta.layers, vec![5]);
        assert!(
            v.meta.note.contains("cvector-generator") && v.meta.note.contains("N-1"),
            "{}",
            v.meta.note
        );
        // steerlab's own export (layer_count as u32) carries no such note
        let q = dir.path().join("own.gguf");
        export_control_vector(&sample(8, &[5]), "llama", &q).unwrap();
        assert!(!import_control_vector(&q)
            .unwrap()
            .meta
            .note
            .contains("cvector-generator"));
    }
}
