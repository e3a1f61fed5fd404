//! The Dissect panel's Causal view (issue 24): choose factors, judge and held-out prompts, run
//! `crate::dissect::causal` with the loaded model on a background job (progress and cancel in
//! the job list), and show its table and the correlational-vs-interventional scatter. The
//! steering, generation and fits are the library's; nothing here computes an effect.
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points};

use super::state::ExportFormat;
use crate::app::artifacts::ArtifactKind;
use crate::app::export::save_bytes_as;
use crate::app::job_list::JobId;
use crate::app::state::AppState;
use crate::app::widgets;
use crate::data::synth::FACTORS;
use crate::dissect::causal::{self, CausalConfig, CausalJudge, CausalReport};
use crate::dissect::causal_model::{self, GeneratorOptions, JudgeSpec, SteeredGenerator};
use crate::dissect::causal_report;

/// Settings and last result of the Causal view.
pub struct CausalUi {
    /// Which planted factors to steer.
    pub factors: [bool; 9],
    /// `planted:FILE.truth.json`, `column:NAME` or `model:` (the loaded model judges).
    pub judge: String,
    /// Held-out prompts file (.txt, one per line, or a dataset).
    pub prompts: String,
    /// At most this many prompts.
    pub max_prompts: usize,
    /// Steering multiplier (relative to the layer's mean residual norm).
    pub multiplier: f64,
    /// Steerability threshold.
    pub threshold: f64,
    /// New tokens per answer.
    pub max_tokens: usize,
    /// Seed.
    pub seed: u64,
    /// The running job.
    pub job: Option<JobId>,
    /// The last report.
    pub report: Option<CausalReport>,
    /// Why the last run failed.
    pub error: Option<String>,
    /// Where the last export went.
    pub last_export: Option<std::path::PathBuf>,
}

impl Default for CausalUi {
    fn default() -> Self {
        let mut factors = [false; 9];
        factors[0] = true;
        factors[1] = true;
        Self {
            factors,
            judge: String::new(),
            prompts: String::new(),
            max_prompts: 6,
            multiplier: 0.5,
            threshold: 0.1,
            max_tokens: 48,
            seed: 0,
            job: None,
            report: None,
            error: None,
            last_export: None,
        }
    }
}

/// Starts the causal dissection of the active dataset with the loaded model; errors (no
/// data, no model, bad judge or prompts) are shown in the view before any work.
pub fn start(state: &mut AppState) {
    let Some((_, data)) = super::state::active_data(state) else {
        state.dissect.causal.error = Some("Open a dataset first.".into());
        return;
    };
    let Some(model) = state.model.as_ref().map(|m| m.model.clone()) else {
        state.dissect.causal.error = Some("Load a model first (Model panel).".into());
        return;
    };
    let c = &state.dissect.causal;
    let factors: Vec<usize> = (0..9).filter(|&i| c.factors[i]).collect();
    let checked = (|| {
        if factors.is_empty() {
            return Err("Choose at least one factor.".to_string());
        }
        if !c.multiplier.is_finite() || c.multiplier <= 0.0 {
            return Err(format!("multiplier {}: must be above 0", c.multiplier));
        }
        let spec: JudgeSpec = c.judge.trim().parse().map_err(|e| format!("{e}"))?;
        let prompts =
            causal_model::read_prompts(std::path::Path::new(c.prompts.trim()), c.max_prompts)
                .map_err(|e| format!("prompts: {e}"))?;
        Ok((spec, prompts))
    })();
    let (spec, prompts) = match checked {
        Ok(x) => x,
        Err(e) => {
            state.dissect.causal.error = Some(e);
            return;
        }
    };
    let cfg = CausalConfig {
        factors: factors.clone(),
        multiplier: c.multiplier,
        threshold: c.threshold,
        seed: c.seed,
    };
    let opts = GeneratorOptions {
        max_tokens: c.max_tokens,
        seed: c.seed,
        ..Default::default()
    };
    let judge_text = c.judge.trim().to_string();
    if let Some(j) = state.dissect.causal.job.take() {
        state.jobs.cancel(j);
    }
    state.dissect.causal.error = None;
    let id = state.spawn_job(
        "Causal dissection",
        move |ctx| {
            let mut g = SteeredGenerator::build(&model, &data, &factors, &prompts, &opts, ctx)?;
            let judge = match spec {
                JudgeSpec::Planted(p) => CausalJudge::Planted(p),
                JudgeSpec::Column(c) => CausalJudge::Column(c),
                // The loaded model judges its own answers.
                JudgeSpec::Model(_) => {
                    CausalJudge::Model(causal_model::model_judge(&model, &crate::jobs::NoProgress)?)
                }
            };
            Ok(causal::run_causal(
                &cfg,
                &data,
                &prompts,
                &judge,
                &judge_text,
                &mut |p: &str, k: usize, m: f64| g.generate(p, k, m),
                ctx,
            )?)
        },
        |res: Result<CausalReport, String>, state: &mut AppState| {
            state.dissect.causal.job = None;
            match res {
                Ok(r) => {
                    state.info(format!(
                        "Causal dissection: {} factor(s), {} steerable",
                        r.factors.len(),
                        r.factors.iter().filter(|f| f.steerable).count()
                    ));
                    state.dissect.causal.report = Some(r);
                }
                Err(e) => state.dissect.causal.error = state.job_failed("Causal dissection", e),
            }
        },
    );
    state.dissect.causal.job = Some(id);
}

/// The view: settings, run/cancel, the table and the scatter.
pub fn show(ui: &mut egui::Ui, state: &mut AppState) {
    ui.label(
        "Steer the loaded model along each factor (a CAA vector from pairs that differ mostly in it), \
         answer held-out prompts at −m, 0, +m, and fit the judge's choices between steered and \
         unsteered answers: the interventional effect, beside the correlational weight.",
    );
    let running = state
        .dissect
        .causal
        .job
        .is_some_and(|j| state.jobs.is_running(j));
    let c = &mut state.dissect.causal;
    ui.horizontal_wrapped(|ui| {
        ui.label("Factors:");
        for (i, f) in FACTORS.iter().enumerate() {
            ui.checkbox(&mut c.factors[i], *f);
        }
    });
    egui::Grid::new("causal_settings")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("Judge");
            ui.add(
                egui::TextEdit::singleline(&mut c.judge)
                    .hint_text("planted:FILE.truth.json | model: | column:NAME")
                    .desired_width(420.0),
            );
            ui.end_row();
            ui.label("Held-out prompts");
            ui.add(
                egui::TextEdit::singleline(&mut c.prompts)
                    .hint_text("prompts.txt (one per line) or a dataset")
                    .desired_width(420.0),
            );
            ui.end_row();
        });
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("Prompts ≤");
        ui.add(egui::DragValue::new(&mut c.max_prompts).range(1..=1000))
            .labelled_by(l.id);
        let l = ui.label("Multiplier ±");
        ui.add(
            egui::DragValue::new(&mut c.multiplier)
                .range(0.01..=10.0)
                .speed(0.05),
        )
        .labelled_by(l.id)
        .on_hover_text("Relative to the mean residual norm at the steering layer (60% depth).");
        let l = ui.label("Threshold");
        ui.add(
            egui::DragValue::new(&mut c.threshold)
                .range(0.0..=10.0)
                .speed(0.01),
        )
        .labelled_by(l.id);
        let l = ui.label("Tokens");
        ui.add(egui::DragValue::new(&mut c.max_tokens).range(1..=1024))
            .labelled_by(l.id);
        let l = ui.label("Seed");
        ui.add(egui::DragValue::new(&mut c.seed)).labelled_by(l.id);
    });
    let mut go = false;
    let mut stop = None;
    ui.horizontal(|ui| {
        if running {
            ui.spinner();
            if ui.button("Cancel causal run").clicked() {
                stop = c.job;
            }
        } else if ui.button("Run causal dissection").clicked() {
            go = true;
        }
    });
    if let Some(e) = &c.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    if let Some(j) = stop {
        state.jobs.cancel(j);
    }
    if go {
        start(state);
    }
    if state.dissect.causal.report.is_some() {
        ui.horizontal(|ui| {
            let fmts = ExportFormat::ALL.map(ExportFormat::format);
            let chosen = widgets::export_menu(ui, "Export causal report...", &fmts);
            if let Some(fmt) = ExportFormat::ALL
                .into_iter()
                .find(|f| Some(f.format()) == chosen)
            {
                export(state, fmt);
            }
            if let Some(p) = &state.dissect.causal.last_export {
                ui.weak(format!("last: {}", p.display()));
            }
        });
    }
    if let Some(r) = &state.dissect.causal.report {
        report(ui, r);
    }
}

/// Saves the last causal report as HTML (table and scatter), Markdown or `report.json`, the
/// formats `steerlab dissect causal` writes (`causal_report`), atomically, to a chosen file.
pub fn export(state: &mut AppState, fmt: ExportFormat) {
    let Some(r) = state.dissect.causal.report.as_ref() else {
        state.error("Nothing to export: run the causal dissection first.");
        return;
    };
    let bytes = match fmt {
        ExportFormat::Html => causal_report::html(r).into_bytes(),
        ExportFormat::Markdown => causal_report::markdown(r).into_bytes(),
        ExportFormat::Json => match serde_json::to_vec_pretty(r) {
            Ok(b) => b,
            Err(e) => {
                state.error(format!("Could not encode the causal report as JSON: {e}"));
                return;
            }
        },
    };
    save_bytes_as(
        state,
        "Export causal report",
        "causal",
        fmt.format(),
        Some(ArtifactKind::Report),
        bytes,
        |state, r| {
            if let Ok(p) = r {
                state.dissect.causal.last_export = Some(p);
            }
        },
    );
}

fn fmt_effect(e: &causal::Effect) -> String {
    format!("{:+.2} [{:+.2}, {:+.2}]", e.mean, e.lo95, e.hi95)
}

fn report(ui: &mut egui::Ui, r: &CausalReport) {
    ui.separator();
    let mut head = format!(
        "Judge {}, m = ±{}, threshold {}",
        r.judge, r.multiplier, r.threshold
    );
    if let Some(s) = r.spearman_planted {
        head.push_str(&format!("; Spearman(planted, interventional) {s:.2}"));
    }
    ui.label(head);
    egui::Grid::new("causal_table")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            for h in [
                "factor",
                "correlational (95%)",
                "steerability",
                "steerable",
                "interventional (95%)",
                "sign",
                "moved with",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for f in &r.factors {
                ui.label(&f.name);
                ui.label(fmt_effect(&f.correlational));
                ui.label(format!("{:+.3}", f.steerability));
                ui.label(if f.steerable { "yes" } else { "no" });
                ui.label(
                    f.interventional
                        .as_ref()
                        .map(fmt_effect)
                        .unwrap_or_else(|| "not steerable".into()),
                );
                ui.label(if f.sign_differs { "≠ differs" } else { "" });
                ui.label(f.moved_with.join(", "));
                ui.end_row();
            }
        });
    let pts: Vec<(&str, causal::Effect, causal::Effect)> = r
        .factors
        .iter()
        .filter_map(|f| Some((f.name.as_str(), f.correlational, f.interventional?)))
        .collect();
    if pts.is_empty() {
        ui.weak("No steerable factor: nothing to plot.");
        return;
    }
    Plot::new("causal_scatter")
        .height(260.0)
        .x_axis_label("correlational weight")
        .y_axis_label("interventional effect")
        .legend(egui_plot::Legend::default())
        .show(ui, |p| {
            // One colour and one legend entry per factor: the point and both interval bars.
            for (k, (name, c, i)) in pts.iter().enumerate() {
                let col = super::style::GROUP_COLORS[k % super::style::GROUP_COLORS.len()];
                p.line(
                    Line::new(
                        *name,
                        PlotPoints::from(vec![[c.lo95, i.mean], [c.hi95, i.mean]]),
                    )
                    .color(col),
                );
                p.line(
                    Line::new(
                        *name,
                        PlotPoints::from(vec![[c.mean, i.lo95], [c.mean, i.hi95]]),
                    )
                    .color(col),
                );
                p.points(
                    Points::new(*name, vec![[c.mean, i.mean]])
                        .radius(4.0)
                        .color(col),
                );
            }
        });
}
