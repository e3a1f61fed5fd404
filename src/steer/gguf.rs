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

// GGUF metadata value types.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

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
    let m = &v.meta;
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
        ("steerlab.positions", Value::Str(m.positions.clone())),
        ("steerlab.objective", Value::Str(m.objective.clone())),
        ("steerlab.dataset", Value::Str(m.dataset.clone())),
        ("steerlab.created", Value::Str(m.created.clone())),
    ];
    if let Some(b) = m.beta {
        kv.push(("steerlab.beta", Value::Str(b.to_string())));
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
    fn value(&mut self, ty: u32, key: &str) -> Result<Value> {
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
                let inner = self.u32(key)?;
                let n = self.u64(key)?;
                for _ in 0..n {
                    self.value(inner, key)?;
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
    let mut kv = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32(&key)?;
        let val = r.value(ty, &key)?;
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
        Some(Value::U32(a)) if *a > 0 => *a as usize,
        Some(_) => return Err(bad(path, "general.alignment", "must be a positive u32")),
        None => ALIGNMENT,
    };
    struct Info {
        name: String,
        layer: usize,
        n: usize,
        ty: u32,
        offset: usize,
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32(&name)?;
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(r.u64(&name)? as usize);
        }
        let ty = r.u32(&name)?;
        let offset = r.u64(&name)? as usize;
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
        infos.push(Info {
            name,
            layer,
            n: dims[0],
            ty,
            offset,
        });
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let mut layers = BTreeMap::new();
    let mut width = None;
    for info in &infos {
        let elem = if info.ty == GGML_TYPE_F32 { 4 } else { 2 };
        let start = data_start + info.offset;
        let end = start + info.n * elem;
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
    if let Some(x) = s("steerlab.positions") {
        meta.positions = x;
    }
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
}
