//! Factor → its top pairs: the pairs of a fitted design ranked by how much a factor differs
//! between their two responses (|x_j|, the encoded difference A − B), with each response's raw
//! value, the observed winner and the factor's contribution to the pair's logit.
//!
//! Ranking only: no fitting, no I/O, no UI (the Dissect panel shows the result side by side).
use super::factors::PairValue;
use super::fit::DissectOutput;
use crate::data::{Judgement, Winner};
use crate::numeric::top_abs_indices;

/// One pair where a factor differs, as returned by [`DissectOutput::top_pairs`].
#[derive(Debug, Clone, PartialEq)]
pub struct FactorPair {
    /// Index of the pair in the design (`design.ids[pair]`).
    pub pair: usize,
    /// The pair's id.
    pub id: String,
    /// The encoded difference x_j (A − B; standardised, or its sign for sign-encoded factors).
    pub x: f64,
    /// The factor's raw value for response A, when the source gives one per response.
    pub value_a: Option<f64>,
    /// The factor's raw value for response B, when the source gives one per response.
    pub value_b: Option<f64>,
    /// True when A was preferred.
    pub a_preferred: bool,
    /// True when the preferred response has more of the factor (x > 0 and A won, or x < 0
    /// and B won).
    pub winner_has_more: bool,
    /// w_j · x_j under the posterior mean of the pair's own group (0 if it has no group).
    pub contribution: f64,
}

impl DissectOutput {
    /// Index of the factor called `name` (or labelled so) in the design, if it was fitted.
    pub fn factor_index(&self, name: &str) -> Option<usize> {
        let f = &self.design.factors;
        f.iter()
            .position(|x| x.name == name)
            .or_else(|| f.iter().position(|x| x.label == name))
    }

    /// The `k` pairs with the largest |x_j| for factor `factor` (design column), largest first;
    /// pairs where the factor is equal for both responses are left out. Ties keep design order.
    pub fn top_pairs(&self, factor: usize, k: usize) -> Vec<FactorPair> {
        let d = &self.design;
        // The factor's column (NaN where a row lacks it, so that row is left out).
        let col: Vec<f64> =
            d.x.iter()
                .map(|r| r.get(factor).copied().unwrap_or(f64::NAN))
                .collect();
        top_abs_indices(&col, k, |x| x != 0.0 && x.is_finite())
            .into_iter()
            .map(|i| {
                let x = col[i];
                let (value_a, value_b) = match d.raw.get(i).and_then(|r| r.get(factor)) {
                    Some(PairValue::Responses(a, b)) => (Some(*a), Some(*b)),
                    _ => (None, None),
                };
                let a_preferred = d.a_preferred[i];
                let weight = self
                    .group_of(i)
                    .and_then(|g| self.result.groups[g].factors.get(factor))
                    .map(|f| f.mean)
                    .unwrap_or(0.0);
                FactorPair {
                    pair: i,
                    id: d.ids[i].clone(),
                    x,
                    value_a,
                    value_b,
                    a_preferred,
                    winner_has_more: (x > 0.0) == a_preferred,
                    contribution: weight * x,
                }
            })
            .collect()
    }

    /// The judgement behind design pair `pair`, from the data the fit ran on: the `pair`-th
    /// non-tie judgement when its id matches (ids need not be unique), else the first with
    /// that id.
    pub fn judgement_of<'a>(&self, pair: usize, data: &'a [Judgement]) -> Option<&'a Judgement> {
        let id = self.design.ids.get(pair)?;
        data.iter()
            .filter(|j| j.winner != Winner::Tie)
            .nth(pair)
            .filter(|j| &j.id == id)
            .or_else(|| data.iter().find(|j| &j.id == id))
    }
}

#[cfg(test)]
mod tests {
    use crate::data::{Judgement, Prompt, Winner};
    use crate::dissect::{run_dissection_with, DissectConfig, FactorSource};
    use std::collections::BTreeMap;

    fn j(id: &str, a: &str, b: &str, winner: Winner) -> Judgement {
        Judgement {
            id: id.into(),
            prompt: Prompt::Text("q".into()),
            response_a: a.into(),
            response_b: b.into(),
            winner,
            judge: None,
            annotator: None,
            scenario: None,
            factors_a: BTreeMap::new(),
            factors_b: BTreeMap::new(),
            extra: Default::default(),
        }
    }

    #[test]
    fn pairs_rank_by_the_length_difference_with_raw_values() {
        // Response lengths in words are planted; the computed `length` factor is
        // ln(1 + words), so |f(A) - f(B)| orders the pairs big (ln 41/3 = 2.6), mid2 (ln 16/4 =
        // 1.4), mid (ln 21/9 = 0.85), small (ln 6/5 = 0.18), known without the fit.
        let words = |n: usize| vec!["word"; n].join(" ");
        let data = vec![
            j("small", &words(5), &words(4), Winner::A),
            j("tie", &words(9), &words(1), Winner::Tie),
            j("big", &words(2), &words(40), Winner::A),
            j("same", &words(7), &words(7), Winner::B),
            j("mid", &words(20), &words(8), Winner::B),
            j("mid2", &words(3), &words(15), Winner::B),
        ];
        let cfg = DissectConfig {
            factors: vec!["length".into()],
            prior_scale: 1.0,
            ..Default::default()
        };
        let sources: Vec<Box<dyn FactorSource>> = crate::dissect::fit::builtin_sources();
        let out =
            run_dissection_with(&data, &sources, &cfg, &crate::jobs::NoProgress).expect("fit");
        let f = out.factor_index("length").expect("length fitted");
        let top = out.top_pairs(f, 10);
        let ids: Vec<&str> = top.iter().map(|p| p.id.as_str()).collect();
        // Ties are dropped from the design; "same" has no difference.
        assert_eq!(ids, ["big", "mid2", "mid", "small"]);
        assert_eq!(out.top_pairs(f, 2).len(), 2);
        let big = &top[0];
        let (a, b) = (big.value_a.unwrap(), big.value_b.unwrap());
        assert!((a - 3f64.ln()).abs() < 1e-12 && (b - 41f64.ln()).abs() < 1e-12);
        assert!(big.x < 0.0);
        assert!(big.a_preferred && !big.winner_has_more);
        let mid = &top[2];
        assert!(mid.x > 0.0 && !mid.a_preferred && !mid.winner_has_more);
        assert!(top[1].winner_has_more, "mid2: B longer and B won");
        let w = out.result.groups[0].factors[f].mean;
        assert!((big.contribution - w * big.x).abs() < 1e-12);
        // The judgement behind each design row is found in the original data.
        for p in &top {
            assert_eq!(out.judgement_of(p.pair, &data).unwrap().id, p.id);
        }
        assert_eq!(out.factor_index("no-such-factor"), None);
    }
}
