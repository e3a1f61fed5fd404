//! SAELens SAEs trained on a language model's residual stream (`standard`, `topk`,
//! `jumprelu`; `hook_name` `blocks.N.hook_resid_post` or `blocks.N.hook_resid_pre`), used with
//! a loaded model: which tokens of a dataset each feature fires on most (with context), its
//! logit lens (the decoder direction through the final norm and the unembedding: the tokens it
//! promotes and suppresses), and its decoder direction as a native steering vector.
//!
//! Must not train SAEs or write files (the CLI and the app save what these functions return);
//! the model only runs forward.
use super::error::SaeError;
use super::saelens::{read_saelens, SaelensSae};
use crate::data::batching::{BatchBudget, BatchPlan};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, HookPoint, Hooks, Model, TextTokenizer};
use crate::steer::vector::VectorMeta;
use crate::steer::SteeringVector;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A SAELens SAE checked against a model: where it reads and where its directions steer.
#[derive(Debug, Clone)]
pub struct ResidualSae {
    /// The SAE folder.
    pub dir: PathBuf,
    /// The SAE.
    pub sae: SaelensSae,
    /// Where it reads (`metadata.hook_name`).
    pub hook: HookPoint,
    /// The block after which its directions live (`resid_post N` → N, `resid_pre N` → N − 1);
    /// None for `blocks.0.hook_resid_pre` (the embeddings: no block output to steer).
    pub steer_layer: Option<usize>,
    /// Differences from the model worth a note (e.g. another model name).
    pub notes: Vec<String>,
}

/// Reads a SAELens SAE folder and checks it against `model`: the hook must be a residual-stream
/// hook of an existing block and `d_in` the model's hidden size.
pub fn import_saelens(dir: &Path, model: &Model) -> Result<ResidualSae, SaeError> {
    let sae = read_saelens(dir)?;
    let cfg_path = dir.join("cfg.json");
    if sae.steerlab().is_some() {
        return Err(SaeError::file(
            &cfg_path,
            "a `steerlab sae run` folder (features of pooled embedding differences), not an SAE \
             trained on a model's residual stream: use `steerlab sae to-vector`/`project` on it",
        ));
    }
    let hook_name = sae.hook_name().ok_or_else(|| {
        SaeError::file(
            &cfg_path,
            "metadata.hook_name missing: cannot tell where in the model the SAE reads \
             (expected e.g. blocks.6.hook_resid_post)",
        )
    })?;
    let hook: HookPoint = hook_name.parse().map_err(|_| {
        SaeError::file(
            &cfg_path,
            format!(
                "hook_name `{hook_name}`: steerlab imports SAEs on the residual stream \
                 (blocks.N.hook_resid_post or blocks.N.hook_resid_pre)"
            ),
        )
    })?;
    let n = model.n_layers();
    let steer_layer = match hook {
        HookPoint::ResidPost(l) if l < n => Some(l),
        HookPoint::ResidPre(l) if l < n => l.checked_sub(1),
        HookPoint::ResidPost(l) | HookPoint::ResidPre(l) => {
            return Err(SaeError::file(
                &cfg_path,
                format!(
                    "hook_name `{hook_name}`: block {l} does not exist (the model `{}` has {n} \
                     blocks, 0..{})",
                    model.name(),
                    n - 1
                ),
            ))
        }
        _ => {
            return Err(SaeError::file(
                &cfg_path,
                format!(
                    "hook_name `{hook_name}` is not the residual stream (steerlab imports SAEs \
                     on blocks.N.hook_resid_post or blocks.N.hook_resid_pre)"
                ),
            ))
        }
    };
    if sae.d_in != model.hidden_size() {
        return Err(SaeError::file(
            &cfg_path,
            format!(
                "d_in = {} but the model `{}` has hidden size {}: the SAE was trained on another \
                 model",
                sae.d_in,
                model.name(),
                model.hidden_size()
            ),
        ));
    }
    let mut notes = Vec::new();
    if let Some(m) = sae.model_name() {
        if !m.is_empty() && m != model.name() {
            notes.push(format!(
                "the SAE names the model `{m}`; it is used with `{}` (same hidden size)",
                model.name()
            ));
        }
    }
    Ok(ResidualSae {
        dir: dir.to_path_buf(),
        sae,
        hook,
        steer_layer,
        notes,
    })
}

/// One token where a feature fires, with its context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenExample {
    /// Index of the text in the input list.
    pub text: usize,
    /// Token position in that text (0 = the first token, BOS when the tokenizer adds one).
    pub position: usize,
    /// The feature's activation there.
    pub activation: f32,
    /// The token.
    pub token: String,
    /// Up to `context` tokens before it.
    pub before: String,
    /// Up to `context` tokens after it.
    pub after: String,
}

/// A feature's top-activating tokens over a set of texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureTokens {
    /// Latent index.
    pub feature: usize,
    /// Largest activations first.
    pub examples: Vec<TokenExample>,
    /// Token positions where the feature is non-zero.
    pub fired: usize,
    /// Token positions looked at.
    pub positions: usize,
}

/// Longest text in tokens read by [`top_activating_tokens`].
pub const MAX_TOKENS: usize = 256;

/// Runs the model over `texts` (BOS added as the tokenizer does, at most [`MAX_TOKENS`] tokens
/// each; the first position is skipped, BOS or not: it carries the attention sink), encodes the
/// residual at the SAE's hook at every position, and keeps each of `features`' `top` largest
/// activations with `context` tokens either side. Reports progress; cancellable.
#[allow(clippy::too_many_arguments)]
pub fn top_activating_tokens(
    model: &Model,
    tok: &TextTokenizer,
    rs: &ResidualSae,
    texts: &[&str],
    features: &[usize],
    top: usize,
    context: usize,
    sink: &dyn ProgressSink,
) -> Result<Vec<FeatureTokens>, SaeError> {
    let d_sae = rs.sae.d_sae;
    if let Some(&f) = features.iter().find(|&&f| f >= d_sae) {
        return Err(SaeError::Config(format!(
            "feature {f} does not exist (the SAE has {d_sae} features, 0..{})",
            d_sae - 1
        )));
    }
    let mut seqs = Vec::with_capacity(texts.len());
    for t in texts {
        let mut ids = tok.encode(t, true)?;
        ids.truncate(MAX_TOKENS);
        seqs.push(ids);
    }
    let upto = match rs.hook {
        HookPoint::ResidPre(l) => l,
        other => other.layer() + 1,
    };
    let pad = tok
        .pad_token_id()
        .or_else(|| tok.eos_token_ids().first().copied())
        .unwrap_or(0);
    // (activation, text, position) candidates per feature, pruned to `top` now and then.
    let mut cand: Vec<Vec<(f32, usize, usize)>> = vec![Vec::new(); features.len()];
    let mut fired = vec![0usize; features.len()];
    let mut positions = 0usize;
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let plan = BatchPlan::by_length(&lens, BatchBudget::rows(8));
    let mut done = 0u64;
    for idx in plan.batches() {
        if sink.is_cancelled() {
            return Err(SaeError::Data(
                "cancelled while reading feature activations".into(),
            ));
        }
        let chunk: Vec<Vec<u32>> = idx
            .iter()
            .map(|&i| seqs[i].clone())
            .filter(|s| !s.is_empty())
            .collect();
        let texts_in: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| !seqs[i].is_empty())
            .collect();
        done += idx.len() as u64;
        if chunk.is_empty() {
            continue;
        }
        let batch = Batch::from_sequences(&chunk, pad, model.device())?;
        let resid = model.forward_to(upto, &batch, &mut Hooks::new())?;
        let resid = resid.to_dtype(DType::F32)?.to_vec3::<f32>()?;
        for ((row, ids), &ti) in resid.iter().zip(&chunk).zip(&texts_in) {
            // The first position is the attention sink whether or not it is a BOS token
            // (SmolLM2 adds none, and its first word then carries the sink's huge activations).
            let from = usize::from(ids.len() > 1);
            let x: Vec<f32> = row[from..ids.len()].iter().flatten().copied().collect();
            let acts = rs.sae.encode(&x);
            positions += ids.len() - from;
            for (p, a) in acts.chunks_exact(d_sae).enumerate() {
                for (fi, &f) in features.iter().enumerate() {
                    let v = a[f];
                    if v != 0.0 {
                        fired[fi] += 1;
                        cand[fi].push((v, ti, p + from));
                        if cand[fi].len() > 4 * top.max(8) {
                            prune(&mut cand[fi], top);
                        }
                    }
                }
            }
        }
        sink.report(Progress::new(
            "feature activations",
            done,
            Some(texts.len() as u64),
        ));
    }
    let mut out = Vec::with_capacity(features.len());
    for (fi, &f) in features.iter().enumerate() {
        prune(&mut cand[fi], top);
        let mut examples = Vec::with_capacity(cand[fi].len());
        for &(activation, ti, p) in &cand[fi] {
            let ids = &seqs[ti];
            let lo = p.saturating_sub(context);
            let hi = (p + 1 + context).min(ids.len());
            examples.push(TokenExample {
                text: ti,
                position: p,
                activation,
                token: tok.decode(&ids[p..p + 1], false)?,
                before: tok.decode(&ids[lo..p], true)?,
                after: tok.decode(&ids[p + 1..hi], true)?,
            });
        }
        out.push(FeatureTokens {
            feature: f,
            examples,
            fired: fired[fi],
            positions,
        });
    }
    Ok(out)
}

/// Keeps the `top` largest activations (ties by text, then position), largest first.
fn prune(c: &mut Vec<(f32, usize, usize)>, top: usize) {
    c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    c.truncate(top);
}

/// The tokens a feature's decoder direction promotes and suppresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitLens {
    /// Latent index.
    pub feature: usize,
    /// Largest logits first: (token, logit).
    pub promoted: Vec<(String, f32)>,
    /// Smallest logits first.
    pub suppressed: Vec<(String, f32)>,
}

/// The logit lens of `feature`: its decoder row through the model's final norm and unembedding,
/// the `n` highest and `n` lowest tokens.
pub fn logit_lens(
    model: &Model,
    tok: &TextTokenizer,
    rs: &ResidualSae,
    feature: usize,
    n: usize,
) -> Result<LogitLens, SaeError> {
    if feature >= rs.sae.d_sae {
        return Err(SaeError::Config(format!(
            "feature {feature} does not exist (the SAE has {} features)",
            rs.sae.d_sae
        )));
    }
    let row = rs.sae.decoder_row(feature).to_vec();
    let d = Tensor::from_vec(row, (1, 1, rs.sae.d_in), model.device())?.to_dtype(model.dtype())?;
    let normed = model.final_norm(&d, &Hooks::new())?;
    let logits: Vec<f32> = model
        .lm_head(&normed)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b)));
    let name = |i: usize| -> Result<(String, f32), SaeError> {
        Ok((tok.decode(&[i as u32], false)?, logits[i]))
    };
    let n = n.min(idx.len());
    Ok(LogitLens {
        feature,
        promoted: idx[..n]
            .iter()
            .map(|&i| name(i))
            .collect::<Result<_, _>>()?,
        suppressed: idx[idx.len() - n..]
            .iter()
            .rev()
            .map(|&i| name(i))
            .collect::<Result<_, _>>()?,
    })
}

/// Feature `feature`'s decoder direction (unit length × `norm`) as a native steering vector at
/// the SAE's steering layer, with the SAE folder, feature and norm in its metadata.
pub fn feature_steering_vector(
    rs: &ResidualSae,
    feature: usize,
    norm: f32,
) -> Result<SteeringVector, SaeError> {
    let d_sae = rs.sae.d_sae;
    if feature >= d_sae {
        return Err(SaeError::Config(format!(
            "feature {feature} does not exist (the SAE has {d_sae} features, 0..{})",
            d_sae - 1
        )));
    }
    if !norm.is_finite() || norm == 0.0 {
        return Err(SaeError::Config(format!(
            "the vector norm must be a finite non-zero number, got {norm}"
        )));
    }
    let layer = rs.steer_layer.ok_or_else(|| {
        SaeError::Config(format!(
            "{}: the SAE reads {} (the embeddings), which no block output steers",
            rs.dir.display(),
            rs.hook
        ))
    })?;
    let row = rs.sae.decoder_row(feature);
    let len = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    if len == 0.0 || !len.is_finite() {
        return Err(SaeError::Data(format!(
            "feature {feature} has a zero decoder direction"
        )));
    }
    let dir: Vec<f32> = row.iter().map(|v| v / len * norm).collect();
    let name = rs
        .dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut meta = VectorMeta::new(
        format!(
            "saelens(feature {feature} of {name}, {} {}, norm {norm})",
            rs.sae.arch.name(),
            rs.hook
        ),
        rs.sae.model_name().unwrap_or_default(),
        rs.sae.d_in,
    );
    meta.note = format!(
        "decoder direction of SAELens feature {feature}, read at {}",
        rs.hook
    );
    SteeringVector::new(BTreeMap::from([(layer, dir)]), meta)
        .map_err(|e| SaeError::Data(e.to_string()))
}
