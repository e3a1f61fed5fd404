//! The design matrix of a dissection (steps 1–4 of [`super`]): ties dropped, factors extracted
//! from the sources and encoded, all-zero factors dropped, orientation randomised for
//! chosen/rejected data, and each pair's group values. Must not fit anything.
use super::{check_group_keys, DissectConfig};
use crate::data::{Judgement, Winner};
use crate::dissect::error::DissectError;
use crate::dissect::factors::{
    encode, AnnotationFactors, ComputedFactors, FactorInfo, FactorSource, PairValue,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The encoded data set: one row per non-tie pair, in the original A/B orientation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Design {
    /// The factors (columns).
    pub factors: Vec<FactorInfo>,
    /// Pair ids.
    pub ids: Vec<String>,
    /// Features, one row per pair.
    pub x: Vec<Vec<f64>>,
    /// True when A was preferred.
    pub a_preferred: Vec<bool>,
    /// Whether the pair was flipped for fitting (step 3 of the module docs).
    pub flipped: Vec<bool>,
    /// Group values per pair (key → value; missing values are `"(none)"`).
    pub group: Vec<BTreeMap<String, String>>,
    /// Each pair's raw factor values before encoding (f(A) and f(B), or a comparison), same
    /// shape as `x`; kept for showing a factor's top pairs, not serialised.
    #[serde(skip)]
    pub raw: Vec<Vec<PairValue>>,
}

pub(super) fn group_value(j: &Judgement, key: &str) -> String {
    j.key(key).unwrap_or("(none)").to_string()
}

pub(super) fn group_label(g: &BTreeMap<String, String>) -> String {
    if g.is_empty() {
        "all".to_string()
    } else {
        g.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The built-in factor sources.
pub fn builtin_sources() -> Vec<Box<dyn FactorSource>> {
    vec![Box::new(ComputedFactors), Box::new(AnnotationFactors)]
}

/// Builds the design matrix from non-tie judgements using `sources` and the selection.
/// Returns the design, the dropped-factor names and whether orientation was randomised.
pub fn build_design(
    data: &[Judgement],
    sources: &[Box<dyn FactorSource>],
    cfg: &DissectConfig,
) -> Result<(Design, Vec<String>, bool), DissectError> {
    check_group_keys(data, &cfg.group_by)?;
    let kept: Vec<&Judgement> = data.iter().filter(|j| j.winner != Winner::Tie).collect();
    if kept.is_empty() {
        return Err(DissectError::Empty("no non-tie judgements".into()));
    }
    let owned: Vec<Judgement> = kept.iter().map(|j| (*j).clone()).collect();
    let selection: Vec<String> = if cfg.factors.is_empty() {
        let has_cols = owned
            .iter()
            .any(|j| !j.factors_a.is_empty() || !j.factors_b.is_empty());
        vec![if has_cols { "columns" } else { "computed" }.to_string()]
    } else {
        cfg.factors.clone()
    };
    // (source index, factors of that source)
    let mut chosen: Vec<(usize, Vec<FactorInfo>)> = Vec::new();
    let offered: Vec<Vec<FactorInfo>> = sources
        .iter()
        .map(|s| s.factors(&owned))
        .collect::<Result<_, _>>()?;
    for token in &selection {
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        let picks: Vec<(usize, FactorInfo)> =
            if let Some(si) = sources.iter().position(|s| s.id() == token) {
                if offered[si].is_empty() {
                    return Err(DissectError::Empty(format!(
                        "factor source `{token}` has no factors in this data"
                    )));
                }
                offered[si].iter().cloned().map(|f| (si, f)).collect()
            } else {
                let hits: Vec<(usize, FactorInfo)> = offered
                    .iter()
                    .enumerate()
                    .flat_map(|(si, fs)| {
                        fs.iter()
                            .filter(|f| f.name == token)
                            .cloned()
                            .map(move |f| (si, f))
                    })
                    .collect();
                if hits.is_empty() {
                    let ids: Vec<&str> = sources.iter().map(|s| s.id()).collect();
                    return Err(DissectError::BadOption(format!(
                        "unknown factor or source `{token}` (sources: {}; or a factor name)",
                        ids.join(", ")
                    )));
                }
                hits.into_iter().take(1).collect()
            };
        for (si, f) in picks {
            let slot = match chosen.iter_mut().find(|(i, _)| *i == si) {
                Some(s) => s,
                None => {
                    chosen.push((si, Vec::new()));
                    chosen.last_mut().expect("just pushed")
                }
            };
            if !slot.1.iter().any(|g| g.name == f.name) {
                slot.1.push(f);
            }
        }
    }
    let mut factors: Vec<FactorInfo> = Vec::new();
    let mut values: Vec<Vec<PairValue>> = vec![Vec::new(); owned.len()];
    for (si, fs) in &chosen {
        for (row, j) in values.iter_mut().zip(&owned) {
            row.extend(sources[*si].values(j, fs)?);
        }
        factors.extend(fs.iter().cloned());
    }
    if factors.is_empty() {
        return Err(DissectError::Empty("no factors selected".into()));
    }
    let x = encode(&values, &mut factors);
    // drop all-zero factors
    let keep: Vec<usize> = (0..factors.len())
        .filter(|&c| x.iter().any(|r| r[c] != 0.0))
        .collect();
    let dropped: Vec<String> = (0..factors.len())
        .filter(|c| !keep.contains(c))
        .map(|c| factors[c].name.clone())
        .collect();
    if keep.is_empty() {
        return Err(DissectError::Empty(
            "every selected factor is equal for A and B in every pair".into(),
        ));
    }
    let factors: Vec<FactorInfo> = keep.iter().map(|&c| factors[c].clone()).collect();
    let x: Vec<Vec<f64>> = x
        .iter()
        .map(|r| keep.iter().map(|&c| r[c]).collect())
        .collect();
    let raw: Vec<Vec<PairValue>> = values
        .iter()
        .map(|r| keep.iter().map(|&c| r[c]).collect())
        .collect();
    let a_preferred: Vec<bool> = owned.iter().map(|j| j.winner == Winner::A).collect();
    let randomise = a_preferred.iter().all(|&a| a);
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5EED_F11B);
    let flipped: Vec<bool> = owned
        .iter()
        .map(|_| randomise && rng.random::<bool>())
        .collect();
    let group = owned
        .iter()
        .map(|j| {
            cfg.group_by
                .iter()
                .map(|k| (k.clone(), group_value(j, k)))
                .collect()
        })
        .collect();
    let design = Design {
        factors,
        ids: owned.iter().map(|j| j.id.clone()).collect(),
        x,
        a_preferred,
        flipped,
        group,
        raw,
    };
    Ok((design, dropped, randomise))
}
