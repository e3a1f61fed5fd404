//! The Steer panel's layer × strength landscape: a sweep (`crate::steer::sweep::run_sweep`)
//! on a background job whose points fill a heatmap live; clicking a cell sets the vector's
//! layer and the strength slider (and lists that layer's vector once the sweep has made it);
//! the tuner's Pareto front (score shift against KL, `crate::steer::tune`) under a KL budget.
//! State, job and view of this one section; no algorithm code.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points};

use crate::app::job_list::JobId;
use crate::app::state::AppState;
use crate::data::Prompt;
use crate::steer::bipo::Provenance;
use crate::steer::side_effects::{MeterConfig, DEFAULT_NEUTRAL_PROMPTS};
use crate::steer::sweep::{self, Point, SweepConfig, SweepInputs, SweepReport};
use crate::steer::tune::{self, Budgets};
use crate::steer::{prepare, train, BipoConfig, Method, Objective, SteeringVector};

use super::state::{running, SteerState};

/// What the landscape section owns (a field of [`SteerState`]).
pub struct Landscape {
    /// Method making each layer's vector (CAA by default: cheap).
    pub method: Method,
    /// Layers to sweep, comma-separated, or `all`.
    pub layers: String,
    /// Multipliers, comma-separated.
    pub multipliers: String,
    /// Multipliers are relative strengths (‖αv‖ / mean residual norm).
    pub relative: bool,
    /// KL budget of the Pareto front's chosen point (nats).
    pub max_kl: f64,
    /// Points finished so far (the job appends; the view reads).
    pub live: Arc<Mutex<Vec<Point>>>,
    /// The grid being (or last) swept.
    pub grid: Option<(Vec<usize>, Vec<f64>)>,
    /// The finished sweep.
    pub report: Option<SweepReport>,
    /// Its per-layer vectors.
    pub vectors: BTreeMap<usize, SteeringVector>,
    /// The cell clicked last: (layer, multiplier).
    pub selected: Option<(usize, f64)>,
    /// The running job.
    pub job: Option<JobId>,
    /// Why the last sweep failed or could not start.
    pub error: Option<String>,
}

impl Default for Landscape {
    fn default() -> Self {
        Self {
            method: Method::Caa,
            layers: "all".into(),
            multipliers: "-2,-1,0,1,2".into(),
            relative: false,
            max_kl: 0.3,
            live: Arc::default(),
            grid: None,
            report: None,
            vectors: BTreeMap::new(),
            selected: None,
            job: None,
            error: None,
        }
    }
}

/// Parses `a,b,c` multipliers (finite, within the sweep's limit, at least one).
pub fn parse_multipliers(s: &str) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(
            part.parse::<f64>()
                .with_context(|| format!("multipliers: `{part}` is not a number"))?,
        );
    }
    sweep::check_grid(&[0], &out, 1)?;
    Ok(out)
}

/// Parses `all` or `a,b,c` layers of a model with `n_layers` blocks.
pub fn parse_layers(s: &str, n_layers: usize) -> anyhow::Result<Vec<usize>> {
    let layers: Vec<usize> = if s.trim().eq_ignore_ascii_case("all") {
        (0..n_layers).collect()
    } else {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<usize>()
                    .with_context(|| format!("layers: `{p}` is not a block index (or `all`)"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut layers = layers;
    layers.sort_unstable();
    layers.dedup();
    sweep::check_grid(&layers, &[0.0], n_layers)?;
    Ok(layers)
}

impl Landscape {
    /// True while the sweep runs.
    pub fn sweeping(state: &AppState) -> bool {
        running(state, state.steer.landscape.job)
    }

    /// Points so far (live while running, then the report's).
    pub fn points(&self) -> Vec<Point> {
        match &self.report {
            Some(r) => r.points.clone(),
            None => self.live.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }

    /// Starts the sweep on the training and evaluation data of the Steer panel.
    pub fn start(state: &mut AppState) {
        let l = &mut state.steer.landscape;
        l.error = None;
        let Some(m) = &state.model else {
            l.error = Some("Load a model first.".into());
            return;
        };
        let model = m.model.clone();
        let (layers, mults) = match (
            parse_layers(&l.layers, model.n_layers()),
            parse_multipliers(&l.multipliers),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                l.error = Some(e.to_string());
                return;
            }
        };
        let Some((train_path, train_records)) = SteerState::train_records(state) else {
            state.steer.landscape.error = Some("Open a training dataset first.".into());
            return;
        };
        let Some(eval_records) = SteerState::eval_records(state) else {
            state.steer.landscape.error = Some("Choose an A/B evaluation set first.".into());
            return;
        };
        let l = &mut state.steer.landscape;
        let method = l.method;
        let relative = l.relative;
        l.live = Arc::default();
        l.report = None;
        l.vectors.clear();
        l.selected = None;
        l.grid = Some((layers.clone(), mults.clone()));
        let live = l.live.clone();
        let dataset = super::state::file_name(&train_path);
        let id = state.spawn_job(
            "Layer × strength sweep",
            move |ctx| {
                let tok = model.tokenizer().context("the model has no tokenizer")?;
                let prepared = train::prepare(tok, &train_records, method, Objective::Dpo)?;
                let eval = prepare::eval_items(tok, &eval_records)?;
                let neutral = DEFAULT_NEUTRAL_PROMPTS
                    .iter()
                    .map(|s| prepare::prompt_ids(tok, &Prompt::Text(s.to_string())))
                    .collect::<crate::steer::Result<Vec<_>>>()?;
                let dec = tok.clone();
                let cfg = SweepConfig {
                    method,
                    layers,
                    multipliers: mults,
                    relative,
                    positions: Vec::new(),
                    batch_size: 8,
                    resamples: 200,
                    seed: 11,
                    bipo: BipoConfig::default(),
                };
                // A lighter meter than the CLI's: the panel wants the picture quickly.
                let meter = MeterConfig {
                    kl_tokens: 8,
                    gen_prompts: 2,
                    gen_tokens: 16,
                    resamples: 200,
                    seed: 17,
                    batch_size: 8,
                };
                let inputs = SweepInputs {
                    train: &prepared,
                    eval: &eval,
                    neutral: &neutral,
                    capability: None,
                    decode: Box::new(move |ids: &[u32]| dec.decode(ids, true).unwrap_or_default()),
                    prov: Provenance {
                        model: model.name().to_string(),
                        dataset: dataset.clone(),
                    },
                    train_hash: String::new(),
                    eval_name: String::new(),
                    eval_hash: String::new(),
                };
                let mut on_point = |p: &Point| {
                    if let Ok(mut v) = live.lock() {
                        v.push(p.clone());
                    }
                };
                Ok(sweep::run_sweep(
                    &model,
                    inputs,
                    &cfg,
                    meter,
                    ctx,
                    &mut on_point,
                )?)
            },
            |res: Result<(SweepReport, BTreeMap<usize, SteeringVector>), String>,
             state: &mut AppState| {
                state.steer.landscape.job = None;
                match res {
                    Ok((report, vectors)) => {
                        state.steer.landscape.report = Some(report);
                        state.steer.landscape.vectors = vectors;
                    }
                    Err(e) => {
                        state.steer.landscape.error = state.job_failed("Layer sweep", e);
                    }
                }
            },
        );
        state.steer.landscape.job = Some(id);
    }

    /// Starts a sweep from a `LAYERS;MULTIPLIERS` spec (`STEERLAB_STEER_LANDSCAPE`).
    pub fn start_spec(state: &mut AppState, spec: &str) {
        let (layers, mults) = spec.split_once(';').unwrap_or((spec, "-2,-1,0,1,2"));
        state.steer.landscape.layers = layers.trim().to_string();
        state.steer.landscape.multipliers = mults.trim().to_string();
        Self::start(state);
    }

    /// A cell was clicked: the training layer and the strength slider follow it, and once the
    /// sweep has made that layer's vector it is listed (checked alone) and re-scored.
    pub fn select(state: &mut AppState, layer: usize, point: &Point) {
        let s = &mut state.steer;
        s.landscape.selected = Some((layer, point.multiplier));
        s.settings.layers = layer.to_string();
        s.settings.layers_edited = true;
        let alpha = point.alpha;
        if alpha.abs() > s.max_strength {
            s.max_strength = alpha.abs().ceil();
        }
        s.strength = alpha;
        if let Some(v) = s.landscape.vectors.get(&layer).cloned() {
            let name = format!("{} L{layer} (sweep)", v.meta.method);
            match s.vectors.iter().position(|e| e.name == name) {
                Some(i) => s.select_only(i),
                None => s.add_vector(name, v),
            }
        }
        s.mark_dirty();
    }
}

/// Cell text: the score, or `…` while pending.
fn cell_text(p: Option<&Point>) -> String {
    match p {
        Some(p) => format!("{:.2}", p.score.mean),
        None => "…".into(),
    }
}

/// The section's view (below the generations in the Steer panel).
pub fn ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.strong("Layer × strength");
    let sweeping = Landscape::sweeping(state);
    // Wraps, so the controls never push the right column past the window's edge.
    ui.horizontal_wrapped(|ui| {
        let l = &mut state.steer.landscape;
        ui.add_enabled_ui(!sweeping, |ui| {
            egui::ComboBox::from_id_salt("landscape_method")
                .selected_text(l.method.name())
                .show_ui(ui, |ui| {
                    for m in [Method::Caa, Method::Pca, Method::Probe, Method::Bipo] {
                        ui.selectable_value(&mut l.method, m, m.name());
                    }
                })
                .response
                .on_hover_text("Method making one vector per layer (BiPO trains once per layer: slow)");
            let lab = ui.label("Layers");
            ui.add(egui::TextEdit::singleline(&mut l.layers).desired_width(70.0))
                .labelled_by(lab.id)
                .on_hover_text("`all` or comma-separated 0-based blocks");
            let lab = ui.label("Multipliers");
            ui.add(egui::TextEdit::singleline(&mut l.multipliers).desired_width(110.0))
                .labelled_by(lab.id);
            ui.checkbox(&mut l.relative, "relative")
                .on_hover_text("Strengths as ‖αv‖ over the layer's mean residual norm, so layers compare");
        });
        let can = state.model.is_some() && state.steer.eval_source.is_some() && !sweeping;
        if ui
            .add_enabled(can, egui::Button::new("Sweep layers"))
            .on_hover_text("Train a vector per layer, score every (layer, multiplier) on the evaluation set and measure KL on neutral prompts")
            .clicked()
        {
            Landscape::start(state);
        }
        if sweeping {
            ui.add(egui::Spinner::new());
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
    });
    if let Some(e) = &state.steer.landscape.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let Some((layers, mults)) = state.steer.landscape.grid.clone() else {
        ui.weak("Sweep layers to see the behaviour score of every layer and strength.");
        return;
    };
    let points = state.steer.landscape.points();
    let base = state
        .steer
        .landscape
        .report
        .as_ref()
        .map(|r| r.baseline.mean);
    let mid = base
        .or_else(|| points.iter().find(|p| p.alpha == 0.0).map(|p| p.score.mean))
        .unwrap_or(0.5);
    let selected = state.steer.landscape.selected;
    let mut clicked: Option<(usize, Point)> = None;
    ui.label(format!(
        "Held-out behaviour score ({} of {} points{}); click a cell to use its layer and strength",
        points.len(),
        layers.len() * mults.len(),
        base.map(|b| format!(", unsteered {b:.3}"))
            .unwrap_or_default()
    ));
    egui::ScrollArea::both()
        .id_salt("landscape_grid")
        .max_height(260.0)
        .show(ui, |ui| {
            egui::Grid::new("landscape_cells")
                .spacing([2.0, 2.0])
                .show(ui, |ui| {
                    ui.label("");
                    for m in &mults {
                        ui.label(format!("×{m}"));
                    }
                    ui.end_row();
                    for &layer in &layers {
                        ui.label(format!("L{layer}"));
                        for &m in &mults {
                            let p = points
                                .iter()
                                .find(|p| p.layer == layer && p.multiplier == m);
                            let [r, g, b] = sweep::heat_colour(
                                p.map(|p| p.score.mean),
                                2.0 * mid - 1.0,
                                mid,
                                1.0,
                            );
                            let is_sel = selected == Some((layer, m));
                            let text = egui::RichText::new(cell_text(p))
                                .color(egui::Color32::BLACK)
                                .small();
                            let btn = egui::Button::new(text)
                                .fill(egui::Color32::from_rgb(r, g, b))
                                .stroke(if is_sel {
                                    egui::Stroke::new(2.0, egui::Color32::BLACK)
                                } else {
                                    egui::Stroke::NONE
                                })
                                .min_size(egui::vec2(40.0, 18.0));
                            let resp = ui.add_enabled(p.is_some(), btn);
                            // Name the cell for screen readers (and tests): layer, multiplier, score.
                            let label = format!("layer {layer} ×{m}: {}", cell_text(p));
                            let enabled = p.is_some();
                            resp.widget_info(|| {
                                egui::WidgetInfo::labeled(egui::Role::Button, enabled, &label)
                            });
                            let resp = match p {
                                Some(p) => resp.on_hover_text(format!(
                                    "layer {layer} × {m}: score {:.3} [{:.3}, {:.3}], KL {:.4}, repetition {:.3}, α {:.3}",
                                    p.score.mean, p.score.lo, p.score.hi, p.side.kl.mean, p.side.repetition.mean, p.alpha
                                )),
                                None => resp,
                            };
                            if resp.clicked() {
                                if let Some(p) = p {
                                    clicked = Some((layer, p.clone()));
                                }
                            }
                        }
                        ui.end_row();
                    }
                });
        });
    if let Some((layer, p)) = clicked {
        Landscape::select(state, layer, &p);
    }
    pareto_ui(ui, state);
}

/// The tuner's view of the finished sweep: every point's score shift against its KL, the
/// Pareto front, and the point chosen under the KL budget.
fn pareto_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(report) = state.steer.landscape.report.clone() else {
        return;
    };
    ui.horizontal(|ui| {
        let l = ui.label("KL budget (nats)");
        ui.add(
            egui::DragValue::new(&mut state.steer.landscape.max_kl)
                .range(0.0..=100.0)
                .speed(0.01),
        )
        .labelled_by(l.id);
    });
    let budgets = Budgets {
        max_kl: Some(state.steer.landscape.max_kl),
        max_capability_drop: None,
        max_repetition: None,
    };
    let pts = tune::tune_points(&report.points, &budgets, None);
    let base = report.baseline.mean;
    let mut out = Vec::new();
    for dir in [1.0, -1.0] {
        let front: Vec<usize> = tune::pareto_front(&pts, base, dir);
        let chosen = tune::choose(&pts, base, dir);
        out.push((dir, front, chosen));
    }
    let all: Vec<[f64; 2]> = pts.iter().map(|p| [p.kl, p.score - base]).collect();
    let accent = ui.visuals().strong_text_color();
    let mut chosen_text = Vec::new();
    Plot::new("landscape_pareto")
        .height(170.0)
        .x_axis_label("KL (nats)")
        .y_axis_label("score − unsteered")
        .show(ui, |plot| {
            plot.points(
                Points::new("points", PlotPoints::from(all))
                    .radius(2.5)
                    .color(egui::Color32::GRAY),
            );
            for (dir, front, chosen) in &out {
                let mut f: Vec<[f64; 2]> = front
                    .iter()
                    .map(|&i| [pts[i].kl, pts[i].score - base])
                    .collect();
                f.sort_by(|a, b| a[0].total_cmp(&b[0]));
                let name = if *dir > 0.0 {
                    "front (increase)"
                } else {
                    "front (decrease)"
                };
                let colour = if *dir > 0.0 {
                    egui::Color32::from_rgb(214, 39, 40)
                } else {
                    egui::Color32::from_rgb(31, 119, 180)
                };
                plot.line(Line::new(name, PlotPoints::from(f)).color(colour));
                if let Some(i) = chosen {
                    plot.points(
                        Points::new(
                            "chosen",
                            PlotPoints::from(vec![[pts[*i].kl, pts[*i].score - base]]),
                        )
                        .radius(5.0)
                        .color(accent),
                    );
                }
            }
        });
    for (dir, _, chosen) in &out {
        if let Some(i) = chosen {
            let p = &pts[*i];
            chosen_text.push(format!(
                "{}: {} layer {} × {} (score {:.3}, KL {:.3})",
                if *dir > 0.0 { "raise" } else { "lower" },
                p.method,
                p.layer,
                p.multiplier,
                p.score,
                p.kl
            ));
        }
    }
    if chosen_text.is_empty() {
        ui.weak("No steered point is within the KL budget.");
    } else {
        ui.label(format!(
            "Chosen within the budget — {}",
            chosen_text.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_and_refuse_bad_values() {
        assert_eq!(
            parse_multipliers("-1, 0,2.5").unwrap(),
            vec![-1.0, 0.0, 2.5]
        );
        assert!(parse_multipliers("").is_err());
        assert!(parse_multipliers("1,nan").is_err());
        assert!(parse_multipliers("1,x").is_err());
        assert_eq!(parse_layers("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_layers("2, 0,2", 3).unwrap(), vec![0, 2]);
        assert!(parse_layers("3", 3).is_err());
        assert!(parse_layers("", 3).is_err());
    }
}
