//! Where a vector acts: the per-token projection strip of a sequence on a steering direction
//! (how far each position's residual after block `L` points along `v_L`), and the vector's
//! logit lens (the tokens its direction promotes and suppresses when read through the final
//! norm and the unembedding).
//!
//! The strip reads the model unsteered: it shows where the model itself represents the
//! direction in a prompt and a (possibly steered) generation. No tokenization of user text and
//! no UI here; [`strip_svg`] draws a strip for reports.
use serde::Serialize;

use super::error::{Result, SteerError};
use super::SteeringVector;
use crate::model::{Batch, Hooks, Model};
use candle_core::{DType, Tensor};

/// One position of a projection strip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StripToken {
    /// Token id.
    pub id: u32,
    /// Its text (for display).
    pub text: String,
    /// Projection of the residual on the unit direction, `x·v/‖v‖`.
    pub projection: f64,
    /// Cosine between the residual and the direction.
    pub cosine: f64,
    /// True for the prompt's positions, false for generated ones.
    pub prompt: bool,
}

/// Projections of every position of `ids` (the first `prompt_len` being the prompt) on the
/// direction of `v` at `layer`, read after block `layer` of an unsteered forward pass.
pub fn projection_strip(
    model: &Model,
    v: &SteeringVector,
    layer: usize,
    ids: &[u32],
    prompt_len: usize,
    token_text: &dyn Fn(u32) -> String,
) -> Result<Vec<StripToken>> {
    v.check_model(model.hidden_size(), model.n_layers())?;
    let d = v.layers.get(&layer).ok_or_else(|| {
        SteerError::Invalid(format!(
            "{}: no direction at layer {layer} (it has {:?})",
            v.display_name(),
            v.meta.layers
        ))
    })?;
    if ids.is_empty() {
        return Err(SteerError::Invalid(
            "the projection strip needs at least one token".into(),
        ));
    }
    let norm = d.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(SteerError::Invalid(format!(
            "{}: the direction at layer {layer} is zero",
            v.display_name()
        )));
    }
    let unit: Vec<f64> = d.iter().map(|x| *x as f64 / norm).collect();
    let batch = Batch::from_sequences(&[ids.to_vec()], 0, model.device())?;
    // The residual entering block layer + 1 is the output of block layer.
    let resid = model
        .forward_to(layer + 1, &batch, &mut Hooks::new())?
        .to_dtype(DType::F64)?
        .squeeze(0)?
        .to_vec2::<f64>()?;
    Ok(resid
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (x, &id))| {
            let p: f64 = x.iter().zip(&unit).map(|(a, u)| a * u).sum();
            let xn = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            StripToken {
                id,
                text: token_text(id),
                projection: p,
                cosine: if xn > 0.0 { p / xn } else { 0.0 },
                prompt: i < prompt_len,
            }
        })
        .collect())
}

/// One token of a logit lens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LensToken {
    /// Token id.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Logit of the direction read through the final norm and the unembedding, minus the
    /// mean logit over the vocabulary.
    pub logit: f64,
}

/// The tokens a direction promotes and suppresses most.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogitLens {
    /// The layer whose direction was read.
    pub layer: usize,
    /// Highest logits first.
    pub promoted: Vec<LensToken>,
    /// Lowest logits first.
    pub suppressed: Vec<LensToken>,
}

/// The logit lens of `v`'s direction at `layer`: `lm_head(final_norm(v))`, centred over the
/// vocabulary, its `k` highest and `k` lowest tokens.
pub fn logit_lens(
    model: &Model,
    v: &SteeringVector,
    layer: usize,
    k: usize,
    token_text: &dyn Fn(u32) -> String,
) -> Result<LogitLens> {
    v.check_model(model.hidden_size(), model.n_layers())?;
    let d = v.layers.get(&layer).ok_or_else(|| {
        SteerError::Invalid(format!(
            "{}: no direction at layer {layer} (it has {:?})",
            v.display_name(),
            v.meta.layers
        ))
    })?;
    if d.iter().all(|x| *x == 0.0) {
        return Err(SteerError::Invalid(format!(
            "{}: the direction at layer {layer} is zero",
            v.display_name()
        )));
    }
    let x = Tensor::from_slice(d, (1, 1, d.len()), model.device())?.to_dtype(model.dtype())?;
    let h = model.final_norm(&x, &Hooks::new())?;
    let logits = model
        .lm_head(&h)?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    lens_from_logits(&logits, layer, k, token_text)
}

/// The `k` highest and lowest entries of `logits` (centred on their mean).
pub fn lens_from_logits(
    logits: &[f64],
    layer: usize,
    k: usize,
    token_text: &dyn Fn(u32) -> String,
) -> Result<LogitLens> {
    if logits.is_empty() || logits.iter().any(|x| !x.is_finite()) {
        return Err(SteerError::Invalid(
            "the logit lens is empty or not finite (the model produced NaN or infinite logits)"
                .into(),
        ));
    }
    let mean = logits.iter().sum::<f64>() / logits.len() as f64;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let k = k.min(logits.len());
    let tok = |i: usize| LensToken {
        id: i as u32,
        text: token_text(i as u32),
        logit: logits[i] - mean,
    };
    Ok(LogitLens {
        layer,
        promoted: idx[..k].iter().map(|&i| tok(i)).collect(),
        suppressed: idx.iter().rev().take(k).map(|&i| tok(i)).collect(),
    })
}

/// Colour of a projection on a blue (negative) – white – red (positive) scale up to `±max`.
pub fn strip_colour(p: f64, max: f64) -> [u8; 3] {
    super::sweep::heat_colour(Some(p), -max.max(1e-12), 0.0, max.max(1e-12))
}

/// An SVG of the strip: tokens in reading order, wrapped into lines, each on a cell coloured by
/// its projection (generated tokens underlined), with a title.
pub fn strip_svg(title: &str, strip: &[StripToken]) -> String {
    use std::fmt::Write;
    let max = strip
        .iter()
        .map(|t| t.projection.abs())
        .fold(0.0f64, f64::max);
    let width = 900.0;
    let (line_h, char_w, pad) = (22.0, 7.2, 4.0);
    let mut cells = String::new();
    let (mut x, mut y) = (10.0, 40.0);
    for t in strip {
        let shown: String = t
            .text
            .chars()
            .map(|c| if c == '\n' { '⏎' } else { c })
            .collect();
        let w = shown.chars().count().max(1) as f64 * char_w + pad;
        if x + w > width - 10.0 && x > 10.0 {
            x = 10.0;
            y += line_h + 4.0;
        }
        let [r, g, b] = strip_colour(t.projection, max);
        let _ = write!(
            cells,
            "<g><title>{} projection {:.3} (cos {:.3})</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{line_h}\" fill=\"rgb({r},{g},{b})\"/>",
            crate::report::escape_html(&shown),
            t.projection,
            t.cosine,
            y - 15.0
        );
        let _ = write!(
            cells,
            "<text x=\"{:.1}\" y=\"{y:.1}\" font-family=\"monospace\" font-size=\"12\"{}>{}</text></g>",
            x + pad / 2.0,
            if t.prompt { "" } else { " text-decoration=\"underline\"" },
            crate::report::escape_html(&shown)
        );
        x += w + 1.0;
    }
    let height = y + line_h + 10.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" viewBox=\"0 0 {width} {height:.0}\"><text x=\"10\" y=\"16\" font-family=\"sans-serif\" font-size=\"13\">{} (red: along the vector, blue: against; |max| {:.3}; generated tokens underlined)</text>{cells}</svg>",
        crate::report::escape_html(title),
        max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lens_picks_the_extremes_centred() {
        let logits = [1.0, 5.0, -3.0, 0.0, 2.0];
        let l = lens_from_logits(&logits, 3, 2, &|i| format!("t{i}")).unwrap();
        // mean 1.0
        assert_eq!(l.promoted.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(
            l.suppressed.iter().map(|t| t.id).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(l.promoted[0].logit, 4.0);
        assert_eq!(l.suppressed[0].logit, -4.0);
        assert_eq!(l.promoted[0].text, "t1");
        assert!(lens_from_logits(&[1.0, f64::NAN], 0, 1, &|_| String::new()).is_err());
        assert!(lens_from_logits(&[], 0, 1, &|_| String::new()).is_err());
        // k larger than the vocabulary
        assert_eq!(
            lens_from_logits(&logits, 0, 9, &|_| String::new())
                .unwrap()
                .promoted
                .len(),
            5
        );
    }

    #[test]
    fn strip_svg_escapes_and_marks_generated_tokens() {
        let strip = vec![
            StripToken {
                id: 0,
                text: "<a>".into(),
                projection: 1.0,
                cosine: 0.5,
                prompt: true,
            },
            StripToken {
                id: 1,
                text: "b\n".into(),
                projection: -2.0,
                cosine: -0.1,
                prompt: false,
            },
        ];
        let s = strip_svg("t & u", &strip);
        assert!(s.contains("&lt;a&gt;") && s.contains("t &amp; u") && s.contains("b⏎"));
        assert_eq!(s.matches("text-decoration=\"underline\"").count(), 1);
        // the strongest negative token is saturated blue
        assert!(s.contains("rgb(65,135,255)"));
    }
}
