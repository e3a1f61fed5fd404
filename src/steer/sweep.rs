//! The layer × strength landscape of a steering method: one vector per layer, the held-out
//! behaviour score of every (layer, multiplier) with a bootstrap interval, and the side effects
//! of every point ([`super::side_effects`]). `--relative` strengths are ‖αv‖ over the mean
//! residual norm at that layer, so layers compare. Also the report folder (report.json, the
//! heatmap as SVG and PNG, report.html).
//!
//! Grids and budgets are checked before any model work ([`check_grid`]). This module trains
//! through [`super::train()`] and scores through [`super::eval::AbScorer`]; no UI code here.
use std::collections::BTreeMap;
use std::path::Path;

use candle_core::DType;
use serde::Serialize;

use super::bipo::{BipoConfig, Provenance};
use super::collect::{add_steering, positions_from_meta};
use super::error::{Result, SteerError};
use super::eval::{item_score, AbScorer, AbTokens};
use super::side_effects::{bootstrap_mean, Estimate, SideEffectMeter, SideEffects};
use super::train::{self, Method, Prepared};
use super::SteeringVector;
use crate::jobs::{Metric, Progress, ProgressSink};
use crate::model::{Batch, HookPoint, Hooks, Model};

/// Largest |multiplier| a grid may hold (as the CLI's `--multipliers`).
pub const MAX_MULTIPLIER: f64 = 1e4;

/// Checks a sweep grid before any work: multipliers non-empty, finite and within ±1e4, layers
/// non-empty and inside a model of `n_layers` blocks.
pub fn check_grid(layers: &[usize], multipliers: &[f64], n_layers: usize) -> Result<()> {
    if multipliers.is_empty() {
        return Err(SteerError::Invalid(
            "--multipliers: the grid is empty (give at least one value)".into(),
        ));
    }
    if let Some(m) = multipliers
        .iter()
        .find(|m| !m.is_finite() || m.abs() > MAX_MULTIPLIER)
    {
        return Err(SteerError::Invalid(format!(
            "--multipliers: {m} is not a finite number from -{MAX_MULTIPLIER} to {MAX_MULTIPLIER}"
        )));
    }
    if layers.is_empty() {
        return Err(SteerError::Invalid("--layers: no layer given".into()));
    }
    if let Some(&layer) = layers.iter().find(|&&l| l >= n_layers) {
        return Err(SteerError::LayerOutOfRange {
            what: "--layers".into(),
            layer,
            n_layers,
        });
    }
    Ok(())
}

/// Checks a side-effect budget: finite and non-negative (`name` is the flag).
pub fn check_budget(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(SteerError::Invalid(format!(
            "{name} {v}: a budget must be a finite number ≥ 0"
        )));
    }
    Ok(())
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// The method making each layer's vector.
    pub method: Method,
    /// Steered blocks (one vector each).
    pub layers: Vec<usize>,
    /// Multipliers (with `relative`: strengths ‖αv‖ / mean residual norm).
    pub multipliers: Vec<f64>,
    /// Interpret `multipliers` as relative strengths.
    pub relative: bool,
    /// Positions to try (`all`, `prompt`, `generated`); empty: each vector's own.
    pub positions: Vec<String>,
    /// A/B items per forward pass.
    pub batch_size: usize,
    /// Bootstrap resamples and seed for the score intervals.
    pub resamples: usize,
    /// Seed of the score bootstrap.
    pub seed: u64,
    /// BiPO settings (its `layers` are replaced per layer).
    pub bipo: BipoConfig,
}

/// One (method, positions, layer, multiplier) point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Method name.
    pub method: String,
    /// Positions the vector is added at.
    pub positions: String,
    /// The steered block.
    pub layer: usize,
    /// The multiplier as asked (relative strength with `--relative`).
    pub multiplier: f64,
    /// The multiplier applied to the vector (α).
    pub alpha: f64,
    /// ‖αv‖ over the layer's mean residual norm.
    pub relative_strength: f64,
    /// Held-out behaviour score (mean over items) with its bootstrap interval.
    pub score: Estimate,
    /// Side effects.
    pub side: SideEffects,
}

/// A finished sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The model.
    pub model: String,
    /// The training data set (file name) and its FNV-1a 64 content hash.
    pub train_data: String,
    /// Hash of the training file (hex).
    pub train_hash: String,
    /// The held-out A/B set (file name).
    pub eval_data: String,
    /// Hash of the held-out file (hex).
    pub eval_hash: String,
    /// Held-out items scored.
    pub n_eval: usize,
    /// Neutral prompts KL is averaged over.
    pub n_neutral: usize,
    /// Methods swept.
    pub methods: Vec<String>,
    /// Layers swept.
    pub layers: Vec<usize>,
    /// Multipliers swept.
    pub multipliers: Vec<f64>,
    /// Multipliers are relative strengths.
    pub relative: bool,
    /// Unsteered held-out score.
    pub baseline: Estimate,
    /// Unsteered side effects (KL 0 by definition).
    pub baseline_side: SideEffects,
    /// Mean residual norm at each layer (neutral prompts, every position but the first).
    pub residual_norms: BTreeMap<usize, f64>,
    /// ‖v‖ of each method's vector at each layer.
    pub vector_norms: BTreeMap<String, BTreeMap<usize, f64>>,
    /// Every point.
    pub points: Vec<Point>,
}

/// Trains one vector per layer: CAA and PCA in one pass over all layers (their per-layer
/// directions are independent), BiPO once per layer.
pub fn train_per_layer(
    model: &Model,
    data: &Prepared,
    layers: &[usize],
    bipo: &BipoConfig,
    batch_size: usize,
    prov: &Provenance,
    sink: &dyn ProgressSink,
) -> Result<BTreeMap<usize, SteeringVector>> {
    let split = |v: SteeringVector| -> Result<BTreeMap<usize, SteeringVector>> {
        v.layers
            .iter()
            .map(|(l, d)| {
                let mut meta = v.meta.clone();
                meta.layers = vec![*l];
                Ok((
                    *l,
                    SteeringVector::new(std::iter::once((*l, d.clone())).collect(), meta)?,
                ))
            })
            .collect()
    };
    match data.method() {
        Method::Bipo => {
            let mut out = BTreeMap::new();
            for &l in layers {
                let cfg = BipoConfig {
                    layers: vec![l],
                    ..bipo.clone()
                };
                let t = train::train(model, data, None, &cfg, batch_size, prov, sink)?;
                if let train::Trained::Bipo { outcome, .. } = &t {
                    if outcome.steps == 0 {
                        return Err(SteerError::Invalid(format!(
                            "BiPO at layer {l} stopped before its first step ({:?})",
                            outcome.stop
                        )));
                    }
                }
                out.insert(l, t.into_vector());
            }
            Ok(out)
        }
        _ => {
            let cfg = BipoConfig {
                layers: layers.to_vec(),
                ..bipo.clone()
            };
            split(train::train(model, data, None, &cfg, batch_size, prov, sink)?.into_vector())
        }
    }
}

/// Mean residual norm after each of `layers` over `prompts` (every position but the first,
/// whose norm is an outlier in most models).
pub fn residual_norms(
    model: &Model,
    prompts: &[Vec<u32>],
    layers: &[usize],
) -> Result<BTreeMap<usize, f64>> {
    let top = layers.iter().copied().max().unwrap_or(0);
    let mut sum: BTreeMap<usize, (f64, usize)> = layers.iter().map(|&l| (l, (0.0, 0))).collect();
    for p in prompts.iter().filter(|p| p.len() > 1) {
        let batch = Batch::from_sequences(std::slice::from_ref(p), 0, model.device())?;
        let mut hooks = Hooks::new();
        for &l in layers.iter().filter(|&&l| l < top) {
            hooks.capture(HookPoint::ResidPost(l));
        }
        // The residual entering block top + 1 is the output of block top (as in
        // `collect::activations_at`).
        let last = model.forward_to(top + 1, &batch, &mut hooks)?;
        for &l in layers {
            let x = if l == top {
                last.to_dtype(DType::F64)?
            } else {
                match hooks.captured(HookPoint::ResidPost(l)) {
                    Some(x) => x.to_dtype(DType::F64)?,
                    None => continue,
                }
            };
            let norms = x.sqr()?.sum(2)?.sqrt()?.flatten_all()?.to_vec1::<f64>()?;
            let e = sum.get_mut(&l).expect("layer listed");
            for n in norms.iter().skip(1) {
                e.0 += n;
                e.1 += 1;
            }
        }
    }
    sum.into_iter()
        .map(|(l, (s, n))| {
            if n == 0 {
                Err(SteerError::Invalid(format!(
                    "layer {l}: no residual captured for the norm (prompts too short?)"
                )))
            } else {
                Ok((l, s / n as f64))
            }
        })
        .collect()
}

/// Per-item behaviour scores under `hooks`.
fn item_scores(scorer: &AbScorer, hooks: &Hooks, sink: &dyn ProgressSink) -> Result<Vec<f64>> {
    let (m, n) = scorer.logprobs(hooks, sink)?;
    Ok(m.iter().zip(&n).map(|(a, b)| item_score(*a, *b)).collect())
}

/// Scores every (layer, multiplier) of `vectors` (one method) at each of `positions`;
/// `on_point` sees each point as it is finished (the panel's live heatmap).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_grid(
    model: &Model,
    scorer: &AbScorer,
    meter: &SideEffectMeter,
    vectors: &BTreeMap<usize, SteeringVector>,
    norms: &BTreeMap<usize, f64>,
    cfg: &SweepConfig,
    sink: &dyn ProgressSink,
    on_point: &mut dyn FnMut(&Point),
) -> Result<Vec<Point>> {
    let positions: Vec<String> = if cfg.positions.is_empty() {
        vec![String::new()]
    } else {
        cfg.positions.clone()
    };
    for p in positions.iter().filter(|p| !p.is_empty()) {
        if positions_from_meta(p).is_none() {
            return Err(SteerError::Invalid(format!(
                "--positions `{p}`: expected all, prompt or generated"
            )));
        }
    }
    let total = (positions.len() * vectors.len() * cfg.multipliers.len()) as u64;
    let mut out = Vec::new();
    for pos in &positions {
        for (&l, v) in vectors {
            let mut v = v.clone();
            if !pos.is_empty() {
                v.meta.positions = pos.clone();
            }
            let vnorm = v.norms().get(&l).copied().unwrap_or(0.0) as f64;
            let rnorm = norms.get(&l).copied().unwrap_or(f64::NAN);
            for &m in &cfg.multipliers {
                if sink.is_cancelled() {
                    return Err(SteerError::Invalid("cancelled".into()));
                }
                let alpha = if cfg.relative {
                    if vnorm <= 0.0 {
                        return Err(SteerError::Invalid(format!(
                            "layer {l}: the {} vector is zero; relative strengths are undefined",
                            cfg.method.name()
                        )));
                    }
                    m * rnorm / vnorm
                } else {
                    m
                };
                let mut hooks = Hooks::new();
                if alpha != 0.0 {
                    add_steering(&mut hooks, model, &v, alpha)?;
                }
                let quiet = Quiet(sink);
                let scores = item_scores(scorer, &hooks, &quiet)?;
                let score = bootstrap_mean(&scores, cfg.resamples, cfg.seed)?;
                let side = meter.measure(&hooks, &quiet)?;
                let p = Point {
                    method: cfg.method.name().to_string(),
                    positions: v.meta.positions.clone(),
                    layer: l,
                    multiplier: m,
                    alpha,
                    relative_strength: (alpha * vnorm).abs() / rnorm,
                    score,
                    side,
                };
                on_point(&p);
                out.push(p);
                sink.report(
                    Progress::new(format!("layer {l} × {m}"), out.len() as u64, Some(total))
                        .metric(Metric::Score, score.mean),
                );
            }
        }
    }
    Ok(out)
}

/// Forwards only cancellation (inner loops report no progress of their own).
struct Quiet<'a>(&'a dyn ProgressSink);

impl ProgressSink for Quiet<'_> {
    fn report(&self, _: Progress) {}
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn interrupt_probe(&self) -> Option<crate::jobs::InterruptProbe> {
        self.0.interrupt_probe()
    }
}

/// The inputs of a sweep besides the grid.
pub struct SweepInputs<'a> {
    /// Training data, prepared for the method.
    pub train: &'a Prepared,
    /// Held-out A/B items.
    pub eval: &'a [AbTokens],
    /// Neutral chat-formatted prompts.
    pub neutral: &'a [Vec<u32>],
    /// Optional capability A/B set.
    pub capability: Option<&'a [AbTokens]>,
    /// Decodes ids to text.
    pub decode: super::side_effects::Decode<'a>,
    /// Provenance: model, train file name + hash, eval file name + hash.
    pub prov: Provenance,
    /// Training file hash.
    pub train_hash: String,
    /// Held-out file name.
    pub eval_name: String,
    /// Held-out file hash.
    pub eval_hash: String,
}

/// Runs a whole sweep: trains per layer, prepares the scorer and the side-effect meter, scores
/// every point. Returns the report and the per-layer vectors.
pub fn run_sweep(
    model: &Model,
    inputs: SweepInputs<'_>,
    cfg: &SweepConfig,
    meter_cfg: super::side_effects::MeterConfig,
    sink: &dyn ProgressSink,
    on_point: &mut dyn FnMut(&Point),
) -> Result<(SweepReport, BTreeMap<usize, SteeringVector>)> {
    check_grid(&cfg.layers, &cfg.multipliers, model.n_layers())?;
    if inputs.eval.is_empty() {
        return Err(SteerError::Invalid(
            "the held-out set has no A/B items".into(),
        ));
    }
    let mut layers = cfg.layers.clone();
    layers.sort_unstable();
    layers.dedup();
    sink.report(Progress::new("training per layer", 0, None));
    let vectors = train_per_layer(
        model,
        inputs.train,
        &layers,
        &cfg.bipo,
        cfg.batch_size.max(8),
        &inputs.prov,
        sink,
    )?;
    sink.report(Progress::new("preparing held-out items", 0, None));
    let split = layers[0] + 1;
    let scorer = AbScorer::new(model, inputs.eval, split, cfg.batch_size, &Quiet(sink))?;
    sink.report(Progress::new("preparing side-effect prompts", 0, None));
    let meter = SideEffectMeter::new(
        model,
        inputs.neutral,
        inputs.capability,
        meter_cfg,
        inputs.decode,
        &Quiet(sink),
    )?;
    let norms = residual_norms(model, inputs.neutral, &layers)?;
    let base_scores = item_scores(&scorer, &Hooks::new(), &Quiet(sink))?;
    let baseline = bootstrap_mean(&base_scores, cfg.resamples, cfg.seed)?;
    let baseline_side = meter.measure(&Hooks::new(), &Quiet(sink))?;
    let cfg_sorted = SweepConfig {
        layers: layers.clone(),
        ..cfg.clone()
    };
    let points = evaluate_grid(
        model,
        &scorer,
        &meter,
        &vectors,
        &norms,
        &cfg_sorted,
        sink,
        on_point,
    )?;
    let vector_norms = BTreeMap::from([(
        cfg.method.name().to_string(),
        vectors
            .iter()
            .map(|(l, v)| (*l, v.norms().get(l).copied().unwrap_or(0.0) as f64))
            .collect(),
    )]);
    Ok((
        SweepReport {
            model: inputs.prov.model.clone(),
            train_data: inputs.prov.dataset.clone(),
            train_hash: inputs.train_hash,
            eval_data: inputs.eval_name,
            eval_hash: inputs.eval_hash,
            n_eval: inputs.eval.len(),
            n_neutral: meter.n_neutral(),
            methods: vec![cfg.method.name().to_string()],
            layers,
            multipliers: cfg.multipliers.clone(),
            relative: cfg.relative,
            baseline,
            baseline_side,
            residual_norms: norms,
            vector_norms,
            points,
        },
        vectors,
    ))
}

/// The heatmap grid of one metric: rows = layers, columns = multipliers (first method and
/// positions of the report); `None` where a point is missing.
pub fn grid(
    points: &[Point],
    layers: &[usize],
    multipliers: &[f64],
    metric: impl Fn(&Point) -> f64,
) -> Vec<Vec<Option<f64>>> {
    let (method, positions) = match points.first() {
        Some(p) => (p.method.clone(), p.positions.clone()),
        None => (String::new(), String::new()),
    };
    layers
        .iter()
        .map(|&l| {
            multipliers
                .iter()
                .map(|&m| {
                    points
                        .iter()
                        .find(|p| {
                            p.layer == l
                                && p.multiplier == m
                                && p.method == method
                                && p.positions == positions
                        })
                        .map(&metric)
                })
                .collect()
        })
        .collect()
}

/// Colour of `v` on a blue–white–red scale centred on `mid` (grey when missing).
pub fn heat_colour(v: Option<f64>, lo: f64, mid: f64, hi: f64) -> [u8; 3] {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return [204, 204, 204];
    };
    let t = if v >= mid {
        ((v - mid) / (hi - mid).max(1e-12)).clamp(0.0, 1.0)
    } else {
        -((mid - v) / (mid - lo).max(1e-12)).clamp(0.0, 1.0)
    };
    if t >= 0.0 {
        [255, (255.0 - 170.0 * t) as u8, (255.0 - 190.0 * t) as u8]
    } else {
        [(255.0 + 190.0 * t) as u8, (255.0 + 120.0 * t) as u8, 255]
    }
}

/// Writes the sweep folder `dir`: `report.json` (the marker, written last), `heatmap.svg`,
/// `heatmap.png` (cells only, 24 px each, same colours) and `report.html`.
/// `extra_json`, when given, is written as report.json instead of the sweep report; `also` writes further files
/// into the folder before the marker.
pub fn write_report(
    dir: &Path,
    report: &SweepReport,
    extra_json: Option<serde_json::Value>,
    also: &dyn Fn(&Path) -> Result<()>,
) -> Result<()> {
    let io = |e: std::io::Error| SteerError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut json = serde_json::to_value(report)
        .map_err(|e| SteerError::Invalid(format!("report.json: {e}")))?;
    if let Some(extra) = extra_json {
        json = extra;
    }
    let cols: Vec<String> = report
        .multipliers
        .iter()
        .map(|m| {
            if report.relative {
                format!("{m}·‖r‖")
            } else {
                format!("×{m}")
            }
        })
        .collect();
    let rows: Vec<String> = report.layers.iter().map(|l| format!("layer {l}")).collect();
    let scores = grid(&report.points, &report.layers, &report.multipliers, |p| {
        p.score.mean
    });
    let base = report.baseline.mean;
    let heat = crate::report::svg::Heatmap {
        title: format!(
            "held-out behaviour score ({}; unsteered {:.3})",
            report.methods.join(", "),
            base
        ),
        rows: rows.clone(),
        cols: cols.clone(),
        values: scores
            .iter()
            .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            .collect(),
        min: 2.0 * base - 1.0,
        max: 1.0,
    };
    let svg = crate::report::svg::heatmap(&heat);
    let kl = grid(&report.points, &report.layers, &report.multipliers, |p| {
        p.side.kl.mean
    });
    let kl_max = kl
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1e-9);
    let kl_heat = crate::report::svg::Heatmap {
        title: "KL(steered ‖ unsteered), nats".into(),
        rows,
        cols,
        values: kl
            .iter()
            .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            .collect(),
        min: -kl_max,
        max: kl_max,
    };
    let kl_svg = crate::report::svg::heatmap(&kl_heat);
    // PNG raster of the score cells.
    let cell = 24usize;
    let (w, h) = (
        cell * report.multipliers.len().max(1),
        cell * report.layers.len().max(1),
    );
    let mut rgb = vec![255u8; w * h * 3];
    for (r, row) in scores.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let colour = heat_colour(*v, 2.0 * base - 1.0, base, 1.0);
            for y in r * cell..(r + 1) * cell - 1 {
                for x in c * cell..(c + 1) * cell - 1 {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    let png =
        encode_png(w, h, &rgb).map_err(|e| SteerError::Invalid(format!("heatmap.png: {e}")))?;
    let mut table = crate::report::Table::new([
        "method",
        "positions",
        "layer",
        "mult",
        "α",
        "rel",
        "score",
        "95% CI",
        "KL",
        "KL 95% CI",
        "distinct-2",
        "compr.",
        "capability",
    ]);
    for p in &report.points {
        table.row([
            p.method.clone(),
            p.positions.clone(),
            p.layer.to_string(),
            format!("{}", p.multiplier),
            format!("{:.3}", p.alpha),
            format!("{:.3}", p.relative_strength),
            format!("{:.4}", p.score.mean),
            format!("[{:.3}, {:.3}]", p.score.lo, p.score.hi),
            format!("{:.4}", p.side.kl.mean),
            format!("[{:.4}, {:.4}]", p.side.kl.lo, p.side.kl.hi),
            format!("{:.3}", p.side.distinct2.mean),
            format!("{:.2}", p.side.compression.mean),
            p.side
                .capability
                .map(|c| format!("{:.3}", c.mean))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut page = crate::report::HtmlPage::new("steerlab steering sweep");
    page.p(&format!(
        "Model {}; trained on {} (FNV-1a {}), scored on {} held-out items of {} (FNV-1a {}); \
         KL over {} neutral prompts. Unsteered score {:.4} [{:.4}, {:.4}].",
        report.model,
        report.train_data,
        report.train_hash,
        report.n_eval,
        report.eval_data,
        report.eval_hash,
        report.n_neutral,
        base,
        report.baseline.lo,
        report.baseline.hi
    ));
    page.svg(&svg);
    page.svg(&kl_svg);
    page.h2("Every point");
    page.table(&table);
    page.h2("Unsteered sample generations");
    page.pre(&report.baseline_side.samples.join("\n---\n"));
    let html = page.finish();
    let json_text = serde_json::to_string_pretty(&json)
        .map_err(|e| SteerError::Invalid(format!("report.json: {e}")))?;
    crate::report::atomic::write_dir_atomic(dir, "report.json", io, |d| {
        let w = |name: &str, bytes: &[u8]| {
            crate::report::atomic::write_bytes(&d.join(name), bytes).map_err(|e| SteerError::Io {
                path: d.join(name),
                source: e,
            })
        };
        w("heatmap.svg", svg.as_bytes())?;
        w("kl_heatmap.svg", kl_svg.as_bytes())?;
        w("heatmap.png", &png)?;
        w("report.html", html.as_bytes())?;
        also(d)?;
        w("report.json", json_text.as_bytes())
    })
}

/// An 8-bit RGB PNG of `w × h` pixels.
fn encode_png(w: usize, h: usize, rgb: &[u8]) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_grids_are_refused_with_the_flag_named() {
        let e = check_grid(&[1], &[], 4).unwrap_err().to_string();
        assert!(e.contains("--multipliers") && e.contains("empty"), "{e}");
        for bad in [f64::NAN, f64::INFINITY, 2e4] {
            let e = check_grid(&[1], &[1.0, bad], 4).unwrap_err().to_string();
            assert!(e.contains("--multipliers") && e.contains("finite"), "{e}");
        }
        let e = check_grid(&[1, 4], &[1.0], 4).unwrap_err().to_string();
        assert!(e.contains("--layers") && e.contains("layer 4"), "{e}");
        assert!(check_grid(&[], &[1.0], 4).is_err());
        assert!(check_grid(&[0, 3], &[-1.0, 0.0, 2.5], 4).is_ok());
        for bad in [f64::NAN, -0.1, f64::INFINITY] {
            let e = check_budget("--max-kl", bad).unwrap_err().to_string();
            assert!(e.contains("--max-kl"), "{e}");
        }
        assert!(check_budget("--max-kl", 0.0).is_ok());
    }

    #[test]
    fn heat_colours_are_white_at_the_midpoint() {
        assert_eq!(heat_colour(Some(0.5), 0.0, 0.5, 1.0), [255, 255, 255]);
        assert_eq!(heat_colour(Some(1.0), 0.0, 0.5, 1.0), [255, 85, 65]);
        assert_eq!(heat_colour(Some(0.0), 0.0, 0.5, 1.0), [65, 135, 255]);
        assert_eq!(heat_colour(None, 0.0, 0.5, 1.0), [204, 204, 204]);
    }
}
