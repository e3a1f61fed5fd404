//! The arithmetic of the intervention modes besides plain addition: norm-preserving addition,
//! directional ablation, clamping a projection, and the per-sequence gate of conditional
//! steering (CAST). [`super::hooks`] decides where and when they run; this module only turns a
//! residual `[B, T, H]` into the edited one and must not know about layers, files or models.
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor, D};

use super::{ModelError, Result};

/// How a direction `v` acts on the residual `x` at a weighted position (weight `w`, 1 unless a
/// mask says otherwise; `u = v / ‖v‖`, `s` the scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EditMode {
    /// `x + s·w·v` (llama.cpp's and repeng's control vectors).
    #[default]
    Add,
    /// `x + s·w·v`, then rescaled to `‖x‖`: each position keeps its residual norm.
    AddNormalized,
    /// `x − s·w·(x·u)·u`: at `s = 1` the component along `v` is removed.
    Ablate,
    /// `x + w·(s − x·u)·u`: the projection on `u` is set to `s`.
    Clamp,
}

impl EditMode {
    /// Every mode, in menu order.
    pub const ALL: [EditMode; 4] = [
        EditMode::Add,
        EditMode::AddNormalized,
        EditMode::Ablate,
        EditMode::Clamp,
    ];

    /// The name used in `--steer V:SCALE:MODE` and `steerlab.intervention`.
    pub fn name(self) -> &'static str {
        match self {
            EditMode::Add => "add",
            EditMode::AddNormalized => "add_normalized",
            EditMode::Ablate => "ablate",
            EditMode::Clamp => "clamp",
        }
    }

    /// True for the mode llama.cpp's `--control-vector` can express (plain addition).
    pub fn llama_cpp_expressible(self) -> bool {
        self == EditMode::Add
    }
}

impl fmt::Display for EditMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EditMode {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ModelError::BadHook(format!(
                    "unknown intervention mode `{s}` (expected add, add_normalized, ablate or clamp)"
                ))
            })
    }
}

/// The condition of conditional steering (CAST): the edit applies to a sequence only when the
/// cosine similarity between its residual at the last prompt token (at the edit's hook point,
/// before any edit there) and `vector` is above `threshold`.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The condition direction, shape `[hidden]`.
    pub vector: Tensor,
    /// Cosine threshold in [−1, 1].
    pub threshold: f64,
}

/// `v / ‖v‖`, failing on a zero vector (ablating or clamping along no direction is meaningless).
fn unit(v: &Tensor, what: &str) -> Result<Tensor> {
    let n = v
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    if !(n.is_finite() && n > 0.0) {
        return Err(ModelError::BadHook(format!(
            "{what}: the direction has zero or non-finite norm"
        )));
    }
    Ok((v / n.sqrt())?)
}

/// Applies `mode` with direction `v` (`[H]`) and scale `s` to `x` (`[B, T, H]`); `w` is `None`
/// (every position, weight 1) or `[B, T, 1]` weights in `x`'s dtype.
pub fn apply_edit(
    x: &Tensor,
    mode: EditMode,
    v: &Tensor,
    s: f64,
    w: Option<&Tensor>,
) -> Result<Tensor> {
    let v = v.to_dtype(x.dtype())?;
    let weighted = |delta: Tensor| -> Result<Tensor> {
        Ok(match w {
            None => delta,
            Some(w) => w.broadcast_mul(&delta)?,
        })
    };
    Ok(match mode {
        EditMode::Add => x.broadcast_add(&weighted(
            (v * s)?.reshape((1, 1, ()))?.broadcast_as(x.shape())?,
        )?)?,
        EditMode::AddNormalized => {
            let y = x.broadcast_add(&weighted(
                (v * s)?.reshape((1, 1, ()))?.broadcast_as(x.shape())?,
            )?)?;
            let nx = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
            let ny = y
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12, f64::MAX)?;
            y.broadcast_mul(&(nx / ny)?)?
        }
        EditMode::Ablate | EditMode::Clamp => {
            let u = unit(&v, mode.name())?;
            let h = u.dim(0)?;
            // x·u per position, [B, T, 1]
            let proj = x.broadcast_matmul(&u.reshape((h, 1))?)?;
            let coef = if mode == EditMode::Ablate {
                (proj * (-s))?
            } else {
                (proj.neg()? + s)?
            };
            let delta = coef.broadcast_mul(&u.reshape((1, 1, h))?)?;
            (x + weighted(delta)?)?
        }
    })
}

/// The CAST gate of each sequence: 1 where `cos(x[b, last_b], c) > threshold`, else 0, as
/// `[B, 1, 1]` in `x`'s dtype; `last[b]` is the index (within this call) of sequence `b`'s last
/// prompt token.
pub fn condition_gate(x: &Tensor, cond: &Condition, last: &[usize]) -> Result<Tensor> {
    let (b, _, h) = x.dims3()?;
    let c = unit(&cond.vector.to_dtype(DType::F32)?, "condition")?;
    let x32 = x.to_dtype(DType::F32)?;
    let mut gate = Vec::with_capacity(b);
    for (row, &t) in last.iter().enumerate().take(b) {
        let r = x32.get(row)?.get(t)?;
        let n = r.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
        let dot = (&r * &c)?.sum_all()?.to_scalar::<f32>()?;
        let cos = if n > 0.0 { dot / n } else { 0.0 };
        gate.push(if cos as f64 > cond.threshold {
            1f32
        } else {
            0f32
        });
    }
    let _ = h;
    Ok(Tensor::from_vec(gate, (b, 1, 1), x.device())?.to_dtype(x.dtype())?)
}

/// Cosine similarity of each row of `rows` with `c` (the quantity CAST thresholds), in f64.
pub fn cosines(rows: &[Vec<f32>], c: &[f32]) -> Vec<f64> {
    let cn: f64 = c.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    rows.iter()
        .map(|r| {
            let rn: f64 = r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let d: f64 = r.iter().zip(c).map(|(a, b)| *a as f64 * *b as f64).sum();
            if rn > 0.0 && cn > 0.0 {
                d / (rn * cn)
            } else {
                0.0
            }
        })
        .collect()
}

/// Grid search of CAST's threshold on labelled prompts: `scores` are the condition cosines,
/// `labels` whether steering should apply. Candidates are the midpoints between consecutive
/// distinct scores (and one below the lowest); returns the threshold with the highest accuracy
/// (the lowest such one on ties) and that accuracy. Fails on empty, mismatched or non-finite
/// input, or when every label is the same (no threshold to learn).
pub fn choose_threshold(scores: &[f64], labels: &[bool]) -> Result<(f64, f64)> {
    if scores.is_empty() || scores.len() != labels.len() {
        return Err(ModelError::InvalidInput(format!(
            "CAST threshold: {} scores for {} labels (need as many, at least one)",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(ModelError::InvalidInput(
            "CAST threshold: a condition score is not finite".into(),
        ));
    }
    if labels.iter().all(|l| *l) || labels.iter().all(|l| !*l) {
        return Err(ModelError::InvalidInput(
            "CAST threshold: the labelled prompts need both labels (steer and do not steer)".into(),
        ));
    }
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.dedup();
    let mut cands = vec![sorted[0] - 1e-6];
    cands.extend(sorted.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    let mut best = (cands[0], -1.0);
    for &t in &cands {
        let correct = scores
            .iter()
            .zip(labels)
            .filter(|(s, l)| (**s > t) == **l)
            .count();
        let acc = correct as f64 / scores.len() as f64;
        if acc > best.1 {
            best = (t, acc);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn x() -> Tensor {
        // one sequence, two positions: (3, 4) and (0, 2)
        Tensor::new(&[[[3f64, 4.0], [0.0, 2.0]]], &Device::Cpu).unwrap()
    }

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        t.get(0).unwrap().to_vec2().unwrap()
    }

    fn close(a: &[Vec<f64>], b: &[Vec<f64>]) {
        for (ra, rb) in a.iter().zip(b) {
            for (p, q) in ra.iter().zip(rb) {
                assert!((p - q).abs() < 1e-12, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn modes_match_hand_computation() {
        let v = Tensor::new(&[2f64, 0.0], &Device::Cpu).unwrap();
        // add: x + 1.5·(2, 0)
        let y = apply_edit(&x(), EditMode::Add, &v, 1.5, None).unwrap();
        close(&rows(&y), &[vec![6.0, 4.0], vec![3.0, 2.0]]);
        // add_normalized: (6, 4)·5/√52 and (3, 2)·2/√13
        let y = apply_edit(&x(), EditMode::AddNormalized, &v, 1.5, None).unwrap();
        let (a, b) = (5.0 / 52f64.sqrt(), 2.0 / 13f64.sqrt());
        close(&rows(&y), &[vec![6.0 * a, 4.0 * a], vec![3.0 * b, 2.0 * b]]);
        for (r, n) in rows(&y).iter().zip([5.0, 2.0]) {
            assert!(((r[0] * r[0] + r[1] * r[1]).sqrt() - n).abs() < 1e-12);
        }
        // ablate: the first coordinate (u = (1, 0)) is removed; half-strength halves it
        let y = apply_edit(&x(), EditMode::Ablate, &v, 1.0, None).unwrap();
        close(&rows(&y), &[vec![0.0, 4.0], vec![0.0, 2.0]]);
        let y = apply_edit(&x(), EditMode::Ablate, &v, 0.5, None).unwrap();
        close(&rows(&y), &[vec![1.5, 4.0], vec![0.0, 2.0]]);
        // clamp to −1 along u = (1, 0)
        let y = apply_edit(&x(), EditMode::Clamp, &v, -1.0, None).unwrap();
        close(&rows(&y), &[vec![-1.0, 4.0], vec![-1.0, 2.0]]);
        // an oblique direction: u = (0.6, 0.8); x·u = 5 and 1.6
        let v = Tensor::new(&[3f64, 4.0], &Device::Cpu).unwrap();
        let y = apply_edit(&x(), EditMode::Ablate, &v, 1.0, None).unwrap();
        close(
            &rows(&y),
            &[vec![0.0, 0.0], vec![0.0 - 1.6 * 0.6, 2.0 - 1.6 * 0.8]],
        );
        let y = apply_edit(&x(), EditMode::Clamp, &v, 2.0, None).unwrap();
        close(
            &rows(&y),
            &[
                vec![3.0 - 3.0 * 0.6, 4.0 - 3.0 * 0.8],
                vec![0.4 * 0.6, 2.0 + 0.4 * 0.8],
            ],
        );
    }

    #[test]
    fn weights_select_positions() {
        let v = Tensor::new(&[1f64, 0.0], &Device::Cpu).unwrap();
        let w = Tensor::new(&[[[0f64], [1.0]]], &Device::Cpu).unwrap();
        let y = apply_edit(&x(), EditMode::Clamp, &v, 7.0, Some(&w)).unwrap();
        close(&rows(&y), &[vec![3.0, 4.0], vec![7.0, 2.0]]);
        let y = apply_edit(&x(), EditMode::AddNormalized, &v, 1.0, Some(&w)).unwrap();
        let b = 2.0 / 5f64.sqrt();
        close(&rows(&y), &[vec![3.0, 4.0], vec![1.0 * b, 2.0 * b]]);
    }

    #[test]
    fn zero_direction_is_refused_for_projections() {
        let v = Tensor::new(&[0f64, 0.0], &Device::Cpu).unwrap();
        assert!(apply_edit(&x(), EditMode::Ablate, &v, 1.0, None).is_err());
        assert!(apply_edit(&x(), EditMode::Clamp, &v, 1.0, None).is_err());
    }

    #[test]
    fn gate_thresholds_cosine_at_last_prompt_token() {
        // row 0 ends at t = 1 with (0, 2): cos with (0, 1) = 1; row 1 ends at t = 0 with (3, 4): 0.8
        let x = Tensor::new(
            &[[[3f64, 4.0], [0.0, 2.0]], [[3.0, 4.0], [0.0, 2.0]]],
            &Device::Cpu,
        )
        .unwrap();
        let c = Condition {
            vector: Tensor::new(&[0f64, 1.0], &Device::Cpu).unwrap(),
            threshold: 0.9,
        };
        let g = condition_gate(&x, &c, &[1, 0]).unwrap();
        assert_eq!(
            g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            [1.0, 0.0]
        );
        let c = Condition {
            threshold: 0.7,
            ..c
        };
        let g = condition_gate(&x, &c, &[1, 0]).unwrap();
        assert_eq!(
            g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            [1.0, 1.0]
        );
    }

    #[test]
    fn threshold_grid_search_separates_labels() {
        let (t, acc) =
            choose_threshold(&[0.1, 0.2, 0.6, 0.8], &[false, false, true, true]).unwrap();
        assert!((t - 0.4).abs() < 1e-12 && acc == 1.0);
        // one mislabelled point: best accuracy 3/4
        let (_, acc) =
            choose_threshold(&[0.1, 0.7, 0.6, 0.8], &[false, false, true, true]).unwrap();
        assert!((acc - 0.75).abs() < 1e-12);
        assert!(choose_threshold(&[], &[]).is_err());
        assert!(choose_threshold(&[0.1, 0.2], &[true, true]).is_err());
        assert!(choose_threshold(&[f64::NAN, 0.2], &[true, false]).is_err());
        let c = cosines(&[vec![3.0, 4.0]], &[1.0, 0.0]);
        assert!((c[0] - 0.6).abs() < 1e-12);
    }
}
