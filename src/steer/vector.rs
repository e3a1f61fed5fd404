//! The steering vector type and its native file format (safetensors, docs/design/vector-format.md).
//!
//! A [`SteeringVector`] holds one direction per 0-based block index `L`; the direction is added
//! (× a multiplier) to the residual stream *after* block `L` (`blocks.L.hook_resid_post`).
//! On disk: one F32 tensor `layers.{L}` of shape `[hidden]` per layer, and `__metadata__` keys
//! `steerlab.*` describing how it was made. This module does no training and no model calls.
use super::error::{bad, io_err, Result, SteerError};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// How a vector was made (the `steerlab.*` metadata of the native format).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMeta {
    /// `bipo`, `caa`, `pca`, `import`, `compose(...)`.
    pub method: String,
    /// Name of the model it was trained on (file stem or GGUF `general.name`).
    pub model: String,
    /// Width of every direction.
    pub hidden_size: usize,
    /// The layers it has directions for (sorted).
    pub layers: Vec<usize>,
    /// Where it is added: `resid_post`.
    pub site: String,
    /// At which positions it is meant to be added: `all`, `prompt`, `generated`.
    pub positions: String,
    /// Training objective (`dpo`, `ipo`, `rdpo`, `bco`), or `-` for CAA/PCA.
    pub objective: String,
    /// β of the preference objective, when there is one.
    pub beta: Option<f64>,
    /// Name of the data set it was made from.
    pub dataset: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Anything a user must know about how the file was made or converted (a GGUF import's
    /// position change, llama.cpp's cvector-generator layer shift); empty when nothing.
    pub note: String,
    /// How the vector acts (`steerlab.intervention`: `add`, `add_normalized`, `ablate`, `clamp`;
    /// see [`crate::model::EditMode`]); written only when not `add`.
    pub intervention: String,
    /// Further `steerlab.*` keys (content hash, sign check, tuning certificate), kept verbatim.
    pub extra: BTreeMap<String, String>,
}

impl VectorMeta {
    /// Metadata for a new vector made now by `method` on `model`.
    pub fn new(method: impl Into<String>, model: impl Into<String>, hidden_size: usize) -> Self {
        Self {
            method: method.into(),
            model: model.into(),
            hidden_size,
            layers: Vec::new(),
            site: "resid_post".into(),
            positions: "all".into(),
            objective: "-".into(),
            beta: None,
            dataset: "-".into(),
            created: creation_stamp(),
            note: String::new(),
            intervention: "add".into(),
            extra: BTreeMap::new(),
        }
    }
}

/// A steering vector: one direction per layer plus its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringVector {
    /// 0-based block index → direction of width `meta.hidden_size`.
    pub layers: BTreeMap<usize, Vec<f32>>,
    /// Provenance; `meta.layers` and `meta.hidden_size` are kept in sync by the constructors.
    pub meta: VectorMeta,
    /// The file it was loaded from, if any (used in error messages).
    pub source: Option<PathBuf>,
}

impl SteeringVector {
    /// Builds a vector from per-layer directions. All directions must have `meta.hidden_size`
    /// entries and be finite; `meta.layers` is set from the map.
    pub fn new(layers: BTreeMap<usize, Vec<f32>>, mut meta: VectorMeta) -> Result<Self> {
        if layers.is_empty() {
            return Err(SteerError::Invalid(
                "a steering vector needs at least one layer".into(),
            ));
        }
        for (l, d) in &layers {
            if d.len() != meta.hidden_size {
                return Err(SteerError::Invalid(format!(
                    "layer {l}: direction has {} entries, expected hidden size {}",
                    d.len(),
                    meta.hidden_size
                )));
            }
            if d.iter().any(|x| !x.is_finite()) {
                return Err(SteerError::Invalid(format!(
                    "layer {l}: direction is not finite"
                )));
            }
        }
        meta.layers = layers.keys().copied().collect();
        Ok(Self {
            layers,
            meta,
            source: None,
        })
    }

    /// Width of the directions.
    pub fn hidden_size(&self) -> usize {
        self.meta.hidden_size
    }

    /// A short human name: the file it came from, else `method vector`.
    pub fn display_name(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => format!("{} vector", self.meta.method),
        }
    }

    /// Fails with a clear error (naming the file and both widths) unless the vector's width is
    /// `hidden`.
    pub fn check_width(&self, hidden: usize) -> Result<()> {
        if self.hidden_size() != hidden {
            return Err(SteerError::WidthMismatch {
                what: self.display_name(),
                expected: hidden,
                got: self.hidden_size(),
            });
        }
        Ok(())
    }

    /// Fails unless every layer is a block index `< n_layers` and the width is `hidden`.
    pub fn check_model(&self, hidden: usize, n_layers: usize) -> Result<()> {
        self.check_width(hidden)?;
        if let Some(&layer) = self.layers.keys().find(|&&l| l >= n_layers) {
            return Err(SteerError::LayerOutOfRange {
                what: self.display_name(),
                layer,
                n_layers,
            });
        }
        Ok(())
    }

    /// Euclidean norm of the direction at each layer.
    pub fn norms(&self) -> BTreeMap<usize, f32> {
        self.layers
            .iter()
            .map(|(l, d)| (*l, d.iter().map(|x| x * x).sum::<f32>().sqrt()))
            .collect()
    }

    /// This vector multiplied by `s` (same metadata).
    pub fn scaled(&self, s: f32) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|(l, d)| (*l, d.iter().map(|x| x * s).collect()))
            .collect();
        Self {
            layers,
            meta: self.meta.clone(),
            source: self.source.clone(),
        }
    }

    /// The sum of several scaled vectors, `Σ sᵢ·vᵢ`, layer by layer (a layer missing from a
    /// vector counts as zero there). Vectors of any method may be mixed; widths must agree.
    pub fn compose(parts: &[(&SteeringVector, f32)]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| SteerError::Invalid("compose needs at least one vector".into()))?
            .0;
        let hidden = first.hidden_size();
        let mut layers: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        let mut names = Vec::new();
        for (v, s) in parts {
            v.check_width(hidden)?;
            for (l, d) in &v.layers {
                let acc = layers.entry(*l).or_insert_with(|| vec![0.0; hidden]);
                for (a, x) in acc.iter_mut().zip(d) {
                    *a += s * x;
                }
            }
            names.push(format!("{}×{}", v.meta.method, s));
        }
        let mut meta = VectorMeta::new(format!("compose({})", names.join(" + ")), "", hidden);
        meta.model = first.meta.model.clone();
        meta.site = first.meta.site.clone();
        meta.positions = first.meta.positions.clone();
        Self::new(layers, meta)
    }

    /// Writes the native safetensors file atomically (`path.tmp`, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<u8>)> = self
            .layers
            .iter()
            .map(|(l, d)| {
                (
                    format!("layers.{l}"),
                    d.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (name, b) in &bytes {
            let view = TensorView::new(Dtype::F32, vec![self.hidden_size()], b)
                .map_err(|e| bad(path, name.as_str(), e.to_string()))?;
            views.push((name.clone(), view));
        }
        let out = safetensors::serialize(views, Some(self.metadata_map()))
            .map_err(|e| bad(path, "-", e.to_string()))?;
        write_atomic(path, &canonical_header(out).map_err(|m| bad(path, "-", m))?)
    }

    fn metadata_map(&self) -> HashMap<String, String> {
        let m = &self.meta;
        let layers = self
            .layers
            .keys()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut h = HashMap::new();
        h.insert("steerlab.method".into(), m.method.clone());
        h.insert("steerlab.model".into(), m.model.clone());
        h.insert("steerlab.hidden_size".into(), m.hidden_size.to_string());
        h.insert("steerlab.layers".into(), layers);
        h.insert("steerlab.site".into(), m.site.clone());
        h.insert("steerlab.positions".into(), m.positions.clone());
        h.insert("steerlab.objective".into(), m.objective.clone());
        h.insert(
            "steerlab.beta".into(),
            m.beta.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
        );
        h.insert("steerlab.dataset".into(), m.dataset.clone());
        if !m.created.is_empty() {
            h.insert("steerlab.created".into(), m.created.clone());
        }
        if !m.note.is_empty() {
            h.insert("steerlab.note".into(), m.note.clone());
        }
        if !m.intervention.is_empty() && m.intervention != "add" {
            h.insert("steerlab.intervention".into(), m.intervention.clone());
        }
        for (k, v) in &m.extra {
            h.entry(k.clone()).or_insert_with(|| v.clone());
        }
        h
    }

    /// Reads a native vector file. F16/BF16 tensors are widened to F32; tensors not named
    /// `layers.{L}` are rejected. Metadata keys are optional (a bare file of `layers.{L}`
    /// tensors loads with method `import`), but present ones must agree with the tensors.
    pub fn load(path: &Path) -> Result<Self> {
        crate::report::atomic::require_regular_file(path).map_err(io_err(path))?;
        let buf = std::fs::read(path).map_err(io_err(path))?;
        let st = safetensors::SafeTensors::deserialize(&buf)
            .map_err(|e| bad(path, "-", format!("not a safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&buf)
            .map_err(|e| bad(path, "__metadata__", e.to_string()))?;
        let md = header.metadata().clone().unwrap_or_default();
        let mut layers = BTreeMap::new();
        let mut width: Option<usize> = None;
        for (name, view) in st.iter() {
            let layer = name
                .strip_prefix("layers.")
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| {
                    bad(
                        path,
                        name,
                        "expected tensors named `layers.{L}` (L = 0-based block index)",
                    )
                })?;
            if view.shape().len() != 1 {
                return Err(bad(
                    path,
                    name,
                    format!("expected a 1-D tensor, found shape {:?}", view.shape()),
                ));
            }
            let data = decode_floats(view.dtype(), view.data()).map_err(|m| bad(path, name, m))?;
            match width {
                None => width = Some(data.len()),
                Some(w) if w != data.len() => {
                    return Err(bad(
                        path,
                        name,
                        format!("width {} differs from the other layers' {w}", data.len()),
                    ))
                }
                _ => {}
            }
            if data.iter().any(|x| !x.is_finite()) {
                return Err(bad(path, name, "contains NaN or infinite values"));
            }
            layers.insert(layer, data);
        }
        let hidden = width.ok_or_else(|| bad(path, "-", "no `layers.{L}` tensors"))?;
        let get = |k: &str| md.get(k).cloned();
        if let Some(h) = get("steerlab.hidden_size") {
            let h: usize = h.trim().parse().map_err(|_| {
                bad(
                    path,
                    "steerlab.hidden_size",
                    format!("`{h}` is not an integer"),
                )
            })?;
            if h != hidden {
                return Err(bad(
                    path,
                    "steerlab.hidden_size",
                    format!("says {h} but the tensors have width {hidden}"),
                ));
            }
        }
        if let Some(ls) = get("steerlab.layers") {
            let mut listed = Vec::new();
            for part in ls.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                listed.push(part.parse::<usize>().map_err(|_| {
                    bad(
                        path,
                        "steerlab.layers",
                        format!("`{part}` is not a layer index"),
                    )
                })?);
            }
            listed.sort_unstable();
            let have: Vec<usize> = layers.keys().copied().collect();
            if listed != have {
                return Err(bad(
                    path,
                    "steerlab.layers",
                    format!("lists {listed:?} but the file has tensors for {have:?}"),
                ));
            }
        }
        let beta = match get("steerlab.beta") {
            None => None,
            Some(b) if b.trim() == "-" || b.trim().is_empty() => None,
            Some(b) => Some(
                b.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(path, "steerlab.beta", format!("`{b}` is not a number")))?,
            ),
        };
        let meta = VectorMeta {
            method: get("steerlab.method").unwrap_or_else(|| "import".into()),
            model: get("steerlab.model").unwrap_or_default(),
            hidden_size: hidden,
            layers: layers.keys().copied().collect(),
            site: get("steerlab.site").unwrap_or_else(|| "resid_post".into()),
            positions: get("steerlab.positions").unwrap_or_else(|| "all".into()),
            objective: get("steerlab.objective").unwrap_or_else(|| "-".into()),
            beta,
            dataset: get("steerlab.dataset").unwrap_or_else(|| "-".into()),
            created: get("steerlab.created").unwrap_or_default(),
            note: get("steerlab.note").unwrap_or_default(),
            intervention: get("steerlab.intervention").unwrap_or_else(|| "add".into()),
            extra: md
                .iter()
                .filter(|(k, _)| k.starts_with("steerlab.") && !KNOWN_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if let Err(e) = meta.intervention.parse::<crate::model::EditMode>() {
            return Err(bad(path, "steerlab.intervention", e.to_string()));
        }
        if meta.site != "resid_post" {
            return Err(bad(
                path,
                "steerlab.site",
                format!("`{}` is not supported (only resid_post)", meta.site),
            ));
        }
        Ok(Self {
            layers,
            meta,
            source: Some(path.to_path_buf()),
        })
    }
}

/// The `steerlab.*` keys [`VectorMeta`] has fields for (others go to `extra`).
const KNOWN_KEYS: [&str; 12] = [
    "steerlab.method",
    "steerlab.model",
    "steerlab.hidden_size",
    "steerlab.layers",
    "steerlab.site",
    "steerlab.positions",
    "steerlab.objective",
    "steerlab.beta",
    "steerlab.dataset",
    "steerlab.created",
    "steerlab.note",
    "steerlab.intervention",
];

fn decode_floats(dtype: Dtype, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        Dtype::BF16 => Ok(data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        Dtype::F64 => Ok(data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()),
        other => Err(format!(
            "dtype {other:?} is not a float type (expected F32)"
        )),
    }
}

/// Writes `bytes` to `path` atomically (a temporary name unique to this writer, then a rename;
/// see [`crate::report::atomic`]). Refuses to replace anything that is not a regular file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::report::atomic::write_bytes(path, bytes).map_err(io_err(path))
}

/// The current time as RFC 3339 UTC (`2026-11-26T18:30:00Z`).
/// The `created` stamp of a new vector: none by default, so the same inputs and seed give
/// byte-identical files; `SOURCE_DATE_EPOCH` (seconds, the reproducible-builds convention) records
/// that time, and `STEERLAB_STAMP_CREATED=1` the current time.
pub fn creation_stamp() -> String {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0)
    {
        return rfc3339_from_unix(secs);
    }
    if std::env::var("STEERLAB_STAMP_CREATED").is_ok_and(|v| v == "1") {
        return now_rfc3339();
    }
    String::new()
}

/// Rewrites a serialized safetensors file's JSON header with sorted keys (the `safetensors`
/// crate writes its metadata map in hash order, which changes from run to run), padded with
/// spaces to 8 bytes as the format requires. The tensor data is unchanged.
fn canonical_header(file: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let n = file
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or("serialized file shorter than its header length")?;
    let end = 8usize
        .checked_add(n)
        .filter(|&e| e <= file.len())
        .ok_or("serialized header longer than the file")?;
    // serde_json's map is ordered by key (no `preserve_order` in this build).
    let header: serde_json::Value =
        serde_json::from_slice(&file[8..end]).map_err(|e| e.to_string())?;
    let mut h = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + file.len() - end);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&file[end..]);
    Ok(out)
}

/// The current time, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (proleptic Gregorian calendar).
pub fn rfc3339_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::numeric::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec2(hidden: usize) -> SteeringVector {
        let mut layers = BTreeMap::new();
        layers.insert(3, (0..hidden).map(|i| i as f32 * 0.5 - 1.0).collect());
        layers.insert(14, (0..hidden).map(|i| (i as f32).sin()).collect());
        let mut meta = VectorMeta::new("bipo", "tiny", hidden);
        meta.objective = "dpo".into();
        meta.beta = Some(0.1);
        meta.dataset = "planted".into();
        SteeringVector::new(layers, meta).unwrap()
    }

    #[test]
    fn same_vector_gives_byte_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vec2(5);
        v.meta.note = "a note".into();
        assert!(v.meta.created.is_empty(), "no time stamp unless asked");
        let bytes: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("v{i}.safetensors"));
                v.save(&p).unwrap();
                std::fs::read(&p).unwrap()
            })
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] == w[1]));
        let header_len = u64::from_le_bytes(bytes[0][..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let back = SteeringVector::load(&dir.path().join("v0.safetensors")).unwrap();
        assert_eq!(back.meta, v.meta);
        assert_eq!(back.layers, v.layers);
    }

    #[test]
    fn round_trip_keeps_values_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.safetensors");
        let v = vec2(7);
        v.save(&p).unwrap();
        assert!(!dir.path().join("v.safetensors.tmp").exists());
        let w = SteeringVector::load(&p).unwrap();
        assert_eq!(w.layers, v.layers);
        assert_eq!(w.meta, v.meta);
        assert_eq!(w.source.as_deref(), Some(p.as_path()));
    }

    #[test]
    fn width_mismatch_names_file_and_both_widths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("narrow.safetensors");
        vec2(7).save(&p).unwrap();
        let w = SteeringVector::load(&p).unwrap();
        let msg = w.check_width(576).unwrap_err().to_string();
        assert!(
            msg.contains("narrow.safetensors") && msg.contains('7') && msg.contains("576"),
            "{msg}"
        );
        assert!(w.check_width(7).is_ok());
        let msg = w.check_model(7, 10).unwrap_err().to_string();
        assert!(msg.contains("layer 14"), "{msg}");
    }

    #[test]
    fn compose_is_the_scaled_sum() {
        let a = vec2(4);
        let mut b_layers = BTreeMap::new();
        b_layers.insert(14, vec![1.0, 2.0, 3.0, 4.0]);
        b_layers.insert(20, vec![1.0, 1.0, 1.0, 1.0]);
        let b = SteeringVector::new(b_layers, VectorMeta::new("caa", "tiny", 4)).unwrap();
        let c = SteeringVector::compose(&[(&a, 2.0), (&b, -0.5)]).unwrap();
        assert_eq!(c.meta.layers, vec![3, 14, 20]);
        for i in 0..4 {
            assert!((c.layers[&3][i] - 2.0 * a.layers[&3][i]).abs() < 1e-6);
            let want = 2.0 * a.layers[&14][i] - 0.5 * (i as f32 + 1.0);
            assert!((c.layers[&14][i] - want).abs() < 1e-6);
            assert!((c.layers[&20][i] + 0.5).abs() < 1e-6);
        }
        let other = vec2(5);
        assert!(SteeringVector::compose(&[(&a, 1.0), (&other, 1.0)]).is_err());
        let s = a.scaled(-3.0);
        assert!((s.norms()[&3] - 3.0 * a.norms()[&3]).abs() < 1e-4);
    }

    #[test]
    fn bad_files_get_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, b"not a safetensors file").unwrap();
        let msg = SteeringVector::load(&p).unwrap_err().to_string();
        assert!(msg.contains("bad.safetensors"), "{msg}");
        // A tensor with a foreign name.
        let data = vec![0u8; 8];
        let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        let out = safetensors::serialize(vec![("weight", view)], None).unwrap();
        std::fs::write(&p, out).unwrap();
        let msg = SteeringVector::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("weight") && msg.contains("layers.{L}"),
            "{msg}"
        );
        // Metadata that disagrees with the tensors.
        let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        let mut md = HashMap::new();
        md.insert("steerlab.hidden_size".to_string(), "3".to_string());
        let out = safetensors::serialize(vec![("layers.1", view)], Some(md)).unwrap();
        std::fs::write(&p, out).unwrap();
        let msg = SteeringVector::load(&p).unwrap_err().to_string();
        assert!(msg.contains("steerlab.hidden_size"), "{msg}");
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
