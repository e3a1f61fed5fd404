//! The autotuner's decisions over sweep points: which points meet the side-effect budgets, the
//! Pareto front (behaviour shift up; KL, repetition and capability drop down), the chosen
//! point, and the certificate stored in the chosen vector's metadata. The search itself is a
//! sweep ([`super::sweep`]) over layer × multiplier × positions × method; no model calls here.
use serde::Serialize;

use super::error::{Result, SteerError};
use super::sweep::Point;
use super::SteeringVector;

/// Side-effect budgets (each `None` = unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budgets {
    /// Largest mean KL(steered ‖ unsteered), nats.
    pub max_kl: Option<f64>,
    /// Largest drop of capability accuracy below the unsteered accuracy.
    pub max_capability_drop: Option<f64>,
    /// Largest repetition (1 − distinct-2 of steered generations).
    pub max_repetition: Option<f64>,
}

/// One point in the tuner's report (the schema plus intervals).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunePoint {
    /// Steered block.
    pub layer: usize,
    /// Multiplier as asked (relative strength with `--relative`).
    pub multiplier: f64,
    /// α applied to the vector.
    pub alpha: f64,
    /// Positions.
    pub positions: String,
    /// Method.
    pub method: String,
    /// Held-out behaviour score.
    pub score: f64,
    /// Its 95 % bootstrap interval.
    pub score_ci: [f64; 2],
    /// Mean KL, nats.
    pub kl: f64,
    /// Its 95 % bootstrap interval.
    pub kl_ci: [f64; 2],
    /// 1 − distinct-2.
    pub repetition: f64,
    /// Its 95 % bootstrap interval.
    pub repetition_ci: [f64; 2],
    /// Capability accuracy (null without a capability set).
    pub capability: Option<f64>,
    /// Within every budget.
    pub feasible: bool,
}

/// Converts sweep points, marking each against `budgets` (`base_capability`: the unsteered
/// accuracy).
pub fn tune_points(
    points: &[Point],
    budgets: &Budgets,
    base_capability: Option<f64>,
) -> Vec<TunePoint> {
    points
        .iter()
        .map(|p| {
            let cap = p.side.capability.map(|c| c.mean);
            let feasible = budgets.max_kl.is_none_or(|k| p.side.kl.mean <= k)
                && budgets
                    .max_repetition
                    .is_none_or(|r| p.side.repetition.mean <= r)
                && match (budgets.max_capability_drop, cap, base_capability) {
                    (Some(d), Some(c), Some(b)) => b - c <= d,
                    _ => true,
                };
            TunePoint {
                layer: p.layer,
                multiplier: p.multiplier,
                alpha: p.alpha,
                positions: p.positions.clone(),
                method: p.method.clone(),
                score: p.score.mean,
                score_ci: [p.score.lo, p.score.hi],
                kl: p.side.kl.mean,
                kl_ci: [p.side.kl.lo, p.side.kl.hi],
                repetition: p.side.repetition.mean,
                repetition_ci: [p.side.repetition.lo, p.side.repetition.hi],
                capability: cap,
                feasible,
            }
        })
        .collect()
}

/// The objectives of a point, all "larger is better": the behaviour shift in the asked
/// direction, −KL, −repetition, capability.
fn objectives(p: &TunePoint, baseline: f64, direction: f64) -> [f64; 4] {
    [
        direction * (p.score - baseline),
        -p.kl,
        -p.repetition,
        p.capability.unwrap_or(0.0),
    ]
}

/// Indices of the points no other point dominates (at least as good in every objective and
/// better in one).
pub fn pareto_front(points: &[TunePoint], baseline: f64, direction: f64) -> Vec<usize> {
    let obj: Vec<[f64; 4]> = points
        .iter()
        .map(|p| objectives(p, baseline, direction))
        .collect();
    (0..points.len())
        .filter(|&i| {
            !(0..points.len()).any(|j| {
                j != i
                    && obj[j].iter().zip(&obj[i]).all(|(a, b)| a >= b)
                    && obj[j].iter().zip(&obj[i]).any(|(a, b)| a > b)
            })
        })
        .collect()
}

/// The feasible steered point (multiplier ≠ 0) with the largest behaviour shift in `direction`
/// (+1 raise the score, −1 lower it); ties go to the lower KL. `None` when no point fits.
pub fn choose(points: &[TunePoint], baseline: f64, direction: f64) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.feasible && p.alpha != 0.0)
        .max_by(|(_, a), (_, b)| {
            let sa = direction * (a.score - baseline);
            let sb = direction * (b.score - baseline);
            sa.total_cmp(&sb).then(b.kl.total_cmp(&a.kl))
        })
        .map(|(i, _)| i)
}

/// The llama.cpp flags that reproduce `p` with the chosen vector exported to `GGUF` (the vector
/// already carries α), or why llama.cpp cannot.
pub fn llama_cpp_flags(p: &TunePoint, gguf_name: &str) -> std::result::Result<String, String> {
    if p.positions != "all" {
        return Err(format!(
            "positions `{}`: llama.cpp adds control vectors at every position, so it cannot reproduce this point",
            p.positions
        ));
    }
    if p.layer == 0 {
        return Err("layer 0: llama.cpp control vectors cannot steer block 0's output".into());
    }
    Ok(format!(
        "--control-vector {gguf_name} --control-vector-layer-range {l} {l}",
        l = p.layer
    ))
}

/// The chosen vector: `v`'s direction at the chosen layer times α (so scale 1 applies the
/// point), positions set, and the certificate in its metadata (`steerlab.certificate`, JSON).
pub fn certified_vector(
    v: &SteeringVector,
    p: &TunePoint,
    certificate: &serde_json::Value,
) -> Result<SteeringVector> {
    let d = v.layers.get(&p.layer).ok_or_else(|| {
        SteerError::Invalid(format!("the {} vector has no layer {}", p.method, p.layer))
    })?;
    let scaled: Vec<f32> = d.iter().map(|x| (*x as f64 * p.alpha) as f32).collect();
    let mut meta = v.meta.clone();
    meta.positions = p.positions.clone();
    meta.note = format!(
        "steerlab steer tune: α = {} folded in (apply at scale 1); see steerlab.certificate",
        p.alpha
    );
    meta.extra.insert(
        "steerlab.certificate".into(),
        serde_json::to_string(certificate)
            .map_err(|e| SteerError::Invalid(format!("certificate: {e}")))?,
    );
    SteeringVector::new(std::iter::once((p.layer, scaled)).collect(), meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(layer: usize, alpha: f64, score: f64, kl: f64, rep: f64) -> TunePoint {
        TunePoint {
            layer,
            multiplier: alpha,
            alpha,
            positions: "all".into(),
            method: "caa".into(),
            score,
            score_ci: [score, score],
            kl,
            kl_ci: [kl, kl],
            repetition: rep,
            repetition_ci: [rep, rep],
            capability: None,
            feasible: true,
        }
    }

    #[test]
    fn front_and_choice_follow_the_budgets() {
        let mut pts = vec![
            pt(4, 0.0, 0.6, 0.0, 0.1),
            pt(4, 1.0, 0.7, 0.1, 0.1),
            pt(4, 2.0, 0.9, 0.5, 0.1),
            pt(8, 1.0, 0.65, 0.2, 0.1), // dominated by (4, 1.0)
            pt(8, 2.0, 0.95, 2.0, 0.6),
        ];
        let front = pareto_front(&pts, 0.6, 1.0);
        assert_eq!(front, vec![0, 1, 2, 4]);
        // KL ≤ 0.6 → (4, 2.0); KL ≤ 0.15 → (4, 1.0)
        for (k, want) in [(0.6, 2), (0.15, 1), (10.0, 4)] {
            for p in pts.iter_mut() {
                p.feasible = p.kl <= k;
            }
            assert_eq!(choose(&pts, 0.6, 1.0), Some(want), "budget {k}");
        }
        // asking to lower the score: nothing lowers it, the least raise wins
        assert_eq!(choose(&pts, 0.6, -1.0), Some(3));
        for p in pts.iter_mut() {
            p.feasible = p.alpha == 0.0;
        }
        assert_eq!(choose(&pts, 0.6, 1.0), None);
    }

    #[test]
    fn llama_flags_only_for_all_positions() {
        let p = pt(12, 2.0, 0.9, 0.1, 0.1);
        assert_eq!(
            llama_cpp_flags(&p, "v.gguf").unwrap(),
            "--control-vector v.gguf --control-vector-layer-range 12 12"
        );
        let mut g = p.clone();
        g.positions = "generated".into();
        assert!(llama_cpp_flags(&g, "v.gguf").is_err());
    }
}
