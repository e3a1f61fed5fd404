//! The preference-objective family used by the BiPO trainer.
//!
//! Every objective sees implicit rewards `r(y) = log π_{d·v}(y|x) − log π₀(y|x)` (response tokens
//! only) and the batch direction `d ∈ {−1, +1}`:
//! - `dpo` (BiPO): `−log σ(d·β·h)` with the margin `h = r(y_w) − r(y_l)`;
//! - `ipo` (Azar et al.): `(d·h − 1/(2β))²`;
//! - `rdpo` (robust DPO, Chowdhury et al., known label-flip rate ε < ½):
//!   `[(1−ε)·(−log σ(d·β·h)) − ε·(−log σ(−d·β·h))] / (1 − 2ε)`;
//! - `bco` (binary classifier optimisation, unpaired thumbs up/down `s ∈ {+1, −1}`):
//!   `−log σ(d·s·(β·r(y)) − s·δ_d)`, where `δ_d` is a running mean of `β·r` for direction `d`
//!   (the reward shift). With `d = −1` thumbs-down responses play the "good" role, which is the
//!   bi-directional reading of BCO.
//!
//! Scalar reference functions (`*_scalar`) exist so tests can check the tensor versions
//! against hand-computed values. No model code here.
use candle_core::Tensor;
use std::fmt;
use std::str::FromStr;

/// Which preference objective to optimise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// BiPO's DPO loss.
    Dpo,
    /// Identity preference optimisation (squared loss).
    Ipo,
    /// Robust DPO with a known label-flip rate `eps` in `[0, 0.5)`.
    Rdpo {
        /// Label-flip rate.
        eps: f64,
    },
    /// Unpaired binary feedback (thumbs up/down).
    Bco,
}

impl Objective {
    /// The name stored in vector metadata (`dpo`, `ipo`, `rdpo`, `bco`).
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Dpo => "dpo",
            Objective::Ipo => "ipo",
            Objective::Rdpo { .. } => "rdpo",
            Objective::Bco => "bco",
        }
    }

    /// True for objectives on unpaired feedback.
    pub fn is_unpaired(&self) -> bool {
        matches!(self, Objective::Bco)
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Rdpo { eps } => write!(f, "rdpo(eps={eps})"),
            o => f.write_str(o.name()),
        }
    }
}

impl FromStr for Objective {
    type Err = String;
    /// Parses `dpo`, `ipo`, `bco`, `rdpo` (ε = 0.1) or `rdpo:EPS`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "dpo" | "bipo" => Ok(Objective::Dpo),
            "ipo" => Ok(Objective::Ipo),
            "bco" => Ok(Objective::Bco),
            "rdpo" => Ok(Objective::Rdpo { eps: 0.1 }),
            _ => {
                if let Some(e) = s.strip_prefix("rdpo:") {
                    let eps: f64 = e
                        .parse()
                        .map_err(|_| format!("rdpo: `{e}` is not a number"))?;
                    if !(0.0..0.5).contains(&eps) {
                        return Err(format!(
                            "rdpo: the label-flip rate must be in [0, 0.5), got {eps}"
                        ));
                    }
                    Ok(Objective::Rdpo { eps })
                } else {
                    Err(format!(
                        "unknown objective `{s}` (expected dpo, ipo, rdpo, rdpo:EPS or bco)"
                    ))
                }
            }
        }
    }
}

/// `log(1 + eˣ)`, numerically stable ([`crate::numeric::softplus`]).
pub fn softplus_scalar(x: f64) -> f64 {
    crate::numeric::softplus(x)
}

/// Per-pair loss of a paired objective for margin `h`, direction `d`, strength `beta`.
/// Panics if called with [`Objective::Bco`] (use [`bco_scalar`]).
pub fn paired_scalar(obj: Objective, beta: f64, d: f64, h: f64) -> f64 {
    match obj {
        Objective::Dpo => softplus_scalar(-d * beta * h),
        Objective::Ipo => (d * h - 1.0 / (2.0 * beta)).powi(2),
        Objective::Rdpo { eps } => {
            ((1.0 - eps) * softplus_scalar(-d * beta * h) - eps * softplus_scalar(d * beta * h))
                / (1.0 - 2.0 * eps)
        }
        Objective::Bco => panic!("bco is unpaired: use bco_scalar"),
    }
}

/// Per-response BCO loss: reward `r`, label `s = ±1`, direction `d`, shift `delta`.
pub fn bco_scalar(beta: f64, d: f64, s: f64, r: f64, delta: f64) -> f64 {
    softplus_scalar(-(d * s * beta * r - s * delta))
}

/// Elementwise stable softplus on a tensor (differentiable).
pub fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    let pos = x.relu()?;
    let tail = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    pos + tail
}

/// Mean paired loss over a batch of margins `h` ([B]) for direction `d`.
pub fn paired_loss(obj: Objective, beta: f64, d: f64, h: &Tensor) -> candle_core::Result<Tensor> {
    let per = match obj {
        Objective::Dpo => softplus(&h.affine(-d * beta, 0.0)?)?,
        Objective::Ipo => h.affine(d, -1.0 / (2.0 * beta))?.sqr()?,
        Objective::Rdpo { eps } => {
            let a = softplus(&h.affine(-d * beta, 0.0)?)?;
            let b = softplus(&h.affine(d * beta, 0.0)?)?;
            ((a * (1.0 - eps))? - (b * eps)?)?.affine(1.0 / (1.0 - 2.0 * eps), 0.0)?
        }
        Objective::Bco => {
            return Err(candle_core::Error::Msg(
                "bco is unpaired: use bco_loss".into(),
            ));
        }
    };
    per.mean_all()
}

/// Mean BCO loss over rewards `r` ([B]) with labels `s` ([B], ±1), direction `d`, shift `delta`.
pub fn bco_loss(
    beta: f64,
    d: f64,
    s: &Tensor,
    r: &Tensor,
    delta: f64,
) -> candle_core::Result<Tensor> {
    // z = d·s·β·r − s·δ = s ⊙ (d·β·r − δ)
    let z = s.mul(&r.affine(d * beta, -delta)?)?;
    softplus(&z.neg()?)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn scalar_losses_match_hand_values() {
        // DPO at zero margin: log 2
        assert!(
            (paired_scalar(Objective::Dpo, 0.1, 1.0, 0.0) - std::f64::consts::LN_2).abs() < 1e-12
        );
        // DPO: β=0.5, h=2, d=1 → log(1+e^{-1}) = 0.31326168751822286
        assert!(
            (paired_scalar(Objective::Dpo, 0.5, 1.0, 2.0) - 0.313_261_687_518_222_86).abs() < 1e-12
        );
        // d = −1 mirrors: log(1+e^{1}) = 1.3132616875182228
        assert!(
            (paired_scalar(Objective::Dpo, 0.5, -1.0, 2.0) - 1.313_261_687_518_222_8).abs() < 1e-12
        );
        // IPO: β=0.25 → target 2; h=3, d=1: (3-2)^2 = 1; d=-1: (-3-2)^2 = 25
        assert!((paired_scalar(Objective::Ipo, 0.25, 1.0, 3.0) - 1.0).abs() < 1e-12);
        assert!((paired_scalar(Objective::Ipo, 0.25, -1.0, 3.0) - 25.0).abs() < 1e-12);
        // rDPO, ε=0.2, β=1, h=1: (0.8·log(1+e^{-1}) − 0.2·log(1+e)) / 0.6
        let want = (0.8 * 0.313_261_687_518_222_86 - 0.2 * 1.313_261_687_518_222_8) / 0.6;
        assert!((paired_scalar(Objective::Rdpo { eps: 0.2 }, 1.0, 1.0, 1.0) - want).abs() < 1e-12);
        // rDPO with ε=0 is DPO
        assert!(
            (paired_scalar(Objective::Rdpo { eps: 0.0 }, 0.3, -1.0, 0.7)
                - paired_scalar(Objective::Dpo, 0.3, -1.0, 0.7))
            .abs()
                < 1e-12
        );
        // BCO: β=0.5, r=2, δ=0.5; thumbs up, d=1: z = 1 - 0.5 = 0.5 → log(1+e^{-0.5}) = 0.4740769841801067
        assert!((bco_scalar(0.5, 1.0, 1.0, 2.0, 0.5) - 0.474_076_984_180_106_7).abs() < 1e-12);
        // thumbs down, d=1: z = -(1) + 0.5 = -0.5 → log(1+e^{0.5}) = 0.9740769841801067
        assert!((bco_scalar(0.5, 1.0, -1.0, 2.0, 0.5) - 0.974_076_984_180_106_7).abs() < 1e-12);
    }

    #[test]
    fn tensor_losses_equal_the_scalar_references() {
        let dev = Device::Cpu;
        let hs = [-2.0f64, -0.3, 0.0, 0.8, 3.5];
        let h = Tensor::new(&hs.map(|x| x as f32), &dev).unwrap();
        for obj in [
            Objective::Dpo,
            Objective::Ipo,
            Objective::Rdpo { eps: 0.15 },
        ] {
            for d in [-1.0, 1.0] {
                let got = paired_loss(obj, 0.7, d, &h)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64;
                let want = hs
                    .iter()
                    .map(|&x| paired_scalar(obj, 0.7, d, x))
                    .sum::<f64>()
                    / hs.len() as f64;
                assert!((got - want).abs() < 1e-5, "{obj} d={d}: {got} vs {want}");
            }
        }
        let s = Tensor::new(&[1.0f32, -1.0, 1.0, -1.0, 1.0], &dev).unwrap();
        let ss = [1.0, -1.0, 1.0, -1.0, 1.0];
        for d in [-1.0, 1.0] {
            let got = bco_loss(0.7, d, &s, &h, 0.2)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64;
            let want = hs
                .iter()
                .zip(ss)
                .map(|(&r, s)| bco_scalar(0.7, d, s, r, 0.2))
                .sum::<f64>()
                / 5.0;
            assert!((got - want).abs() < 1e-5, "bco d={d}: {got} vs {want}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("dpo".parse::<Objective>().unwrap(), Objective::Dpo);
        assert_eq!(
            "rdpo:0.25".parse::<Objective>().unwrap(),
            Objective::Rdpo { eps: 0.25 }
        );
        assert!("rdpo:0.5".parse::<Objective>().is_err());
        assert!("kto".parse::<Objective>().is_err());
    }
}
