//! Steer panel: pick training and A/B evaluation data, choose the method (BiPO with its
//! objective family, CAA, PCA), layers and hyper-parameters (tooltips give the paper's and
//! steerlab's defaults), train on a background job with live loss / margin / held-out plots,
//! combine vectors, slide the strength (debounced re-scoring and steered vs unsteered answers),
//! sweep the behaviour curve, and export. All work runs through [`SteerState`]'s job starters;
//! this file only draws.
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points, VLine};

use super::state::{default_layer, usable, EvalSource, Method, SteerState};
use crate::app::command::AppCommand;
use crate::app::nav::{PanelId, Selection};
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::app::view::Panel;
use crate::app::widgets::{
    button_width, export_menu, param, param_bool, param_choice, param_log, Format, PathField,
    PickKind,
};
use crate::steer::BipoConfig;

/// What a vector can be exported as: native safetensors (with provenance) or a llama.cpp
/// control vector.
const VECTOR_FORMATS: &[Format] = &[Format::SAFETENSORS, Format::GGUF];

/// View state of the Steer panel (typed paths).
#[derive(Debug, Default)]
pub struct SteerPanel {
    train_path: PathField,
    eval_path: PathField,
    vector_path: PathField,
    /// What the path fields were last synced to (they show what is loaded).
    train_shown: Option<std::path::PathBuf>,
    eval_shown: Option<std::path::PathBuf>,
    /// The BiPO time estimate and what it was computed for (data, size, settings).
    estimate: Option<(EstimateKey, Option<f64>)>,
}

/// What a BiPO estimate depends on: model, data file, records, epochs, batch, layers,
/// objective.
type EstimateKey = (
    Option<std::path::PathBuf>,
    std::path::PathBuf,
    usize,
    usize,
    usize,
    String,
    String,
);

fn data_filter() -> Vec<FileFilter> {
    vec![FileFilter::datasets()]
}

/// Line colours of the Steer panel's plots (distinct in both themes).
const PLOT_COLORS: [egui::Color32; 4] = [
    egui::Color32::from_rgb(230, 90, 80),
    egui::Color32::from_rgb(80, 150, 230),
    egui::Color32::from_rgb(90, 190, 110),
    egui::Color32::from_rgb(200, 120, 220),
];

/// A key under a plot: a coloured dash and a name per line (instead of a legend drawn over the
/// lines).
fn plot_key(ui: &mut egui::Ui, entries: &[(&str, egui::Color32)]) {
    ui.horizontal_wrapped(|ui| {
        for (name, color) in entries {
            let (r, _) = ui.allocate_exact_size(egui::vec2(14.0, 3.0), egui::Sense::hover());
            ui.painter().rect_filled(r, 1.0, *color);
            ui.weak(*name);
        }
    });
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn short(p: &std::path::Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

impl SteerPanel {
    fn data_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.strong("Data");
        // Training data: an opened dataset, or a file opened here.
        let names: Vec<std::path::PathBuf> = state
            .datasets
            .iter()
            .filter(|d| usable(d))
            .map(|d| d.path.clone())
            .collect();
        let current = SteerState::train_records(state).map(|(p, _)| p);
        if current.is_some() && current != self.train_shown {
            self.train_shown = current.clone();
            self.train_path.text = current
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
        }
        let eval_now = state
            .steer
            .eval_source
            .as_ref()
            .map(|e| e.path().to_path_buf());
        if eval_now.is_some() && eval_now != self.eval_shown {
            self.eval_shown = eval_now.clone();
            self.eval_path.text = eval_now
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
        }
        ui.horizontal(|ui| {
            let l = ui.label("Train on").on_hover_text(
                "Chosen/rejected pairs or A/B items (BiPO dpo/ipo/rdpo, CAA, PCA), or thumbs-up/down \
                 feedback (BiPO bco). A dataset split in the Data panel trains on its train side.",
            );
            egui::ComboBox::from_id_salt("steer_train_src")
                .selected_text(
                    current
                        .as_deref()
                        .map(|p| ellipsize(&short(p), 30))
                        .unwrap_or_else(|| "none".into()),
                )
                .width(220.0)
                .show_ui(ui, |ui| {
                    for p in &names {
                        if ui
                            .selectable_label(current.as_ref() == Some(p), ellipsize(&short(p), 60))
                            .on_hover_text(p.display().to_string())
                            .clicked()
                        {
                            state.steer.train_source = Some(p.clone());
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            if let Some((_, recs)) = SteerState::train_records(state) {
                ui.weak(format!("{} records", recs.len()));
            }
        });
        let buttons = [("Open data…", PickKind::File(data_filter()))];
        if let Some(p) = self.train_path.show(ui, "Training file", &buttons, state) {
            state.steer.train_source = Some(p.clone());
            state.send(AppCommand::OpenDataset(p));
        }
        // Evaluation set.
        ui.horizontal(|ui| {
            let l = ui.label("Evaluate on").on_hover_text(
                "Held-out A/B items (question, answer_matching_behavior, answer_not_matching_behavior), \
                 or pairs scored chosen vs rejected. Behaviour score = mean p(matching)/(p(matching)+p(non-matching)) \
                 over whole answers (DESIGN.md §3).",
            );
            let shown = match &state.steer.eval_source {
                None => "none".to_string(),
                Some(EvalSource::Dataset(p)) => ellipsize(&short(p), 30),
                Some(EvalSource::SplitTest(p)) => {
                    format!("{} (held-out side)", ellipsize(&short(p), 18))
                }
            };
            let mut choice = None;
            egui::ComboBox::from_id_salt("steer_eval_src")
                .selected_text(shown)
                .width(220.0)
                .show_ui(ui, |ui| {
                    if ui.selectable_label(state.steer.eval_source.is_none(), "none").clicked() {
                        choice = Some(None);
                    }
                    for d in state.datasets.iter().filter(|d| usable(d)) {
                        let src = EvalSource::Dataset(d.path.clone());
                        let mut text = ellipsize(&short(&d.path), 60);
                        if SteerState::overlaps_training(state, &src) {
                            text.push_str(" (overlaps training)");
                        }
                        if ui
                            .selectable_label(state.steer.eval_source.as_ref() == Some(&src), text)
                            .clicked()
                        {
                            choice = Some(Some(src));
                        }
                        if d.split.is_some() {
                            let src = EvalSource::SplitTest(d.path.clone());
                            if ui
                                .selectable_label(
                                    state.steer.eval_source.as_ref() == Some(&src),
                                    format!("{} (held-out side)", ellipsize(&short(&d.path), 60)),
                                )
                                .clicked()
                            {
                                choice = Some(Some(src));
                            }
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            if let Some(c) = choice {
                state.steer.eval_source = c;
                state.steer.eval_chosen = true;
                state.steer.mark_dirty();
            }
            if let Some(recs) = SteerState::eval_records(state) {
                ui.weak(format!("{} items", recs.len()));
            }
        });
        let buttons = [("Open A/B set…", PickKind::File(data_filter()))];
        if let Some(p) = self.eval_path.show(ui, "Evaluation file", &buttons, state) {
            // Keep training where it is: opening a file makes it the active dataset, which
            // an unpinned "Train on" would otherwise follow.
            if state.steer.train_source.is_none() {
                state.steer.train_source = SteerState::train_records(state).map(|(p, _)| p);
            }
            state.steer.eval_source = Some(EvalSource::Dataset(p.clone()));
            state.steer.eval_chosen = true;
            state.send(AppCommand::OpenDataset(p));
            state.steer.mark_dirty();
        }
    }

    fn settings_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        let n_layers = state.model.as_ref().map(|m| m.summary.n_layers);
        let training = SteerState::training(state);
        let s = &mut state.steer.settings;
        if let (false, Some(n)) = (s.layers_edited, n_layers) {
            s.layers = default_layer(n).to_string();
        }
        ui.strong("Method");
        ui.add_enabled_ui(!training, |ui| {
            ui.horizontal(|ui| {
                let tips = [
                    (Method::Bipo, "BiPO", "Bi-directional preference optimisation (Cao et al. 2024): trains v so that +v raises and −v lowers the likelihood of the chosen over the rejected response"),
                    (Method::Caa, "CAA", "Contrastive activation addition (Rimsky et al.): mean of (matching − non-matching) activations at the answer-letter token; no training"),
                    (Method::Pca, "PCA", "repeng's pca_diff: first principal component of the pair differences at the last token, sign fixed so positives project higher"),
                    (Method::Probe, "Probe", "Normal of a logistic regression (linfa-logistic, L2) separating chosen from rejected activations at the last token, sign fixed so chosen projects higher"),
                ];
                for (m, label, tip) in tips {
                    ui.selectable_value(&mut s.method, m, label).on_hover_text(tip);
                }
                ui.separator();
                let l = ui.label("Layers").on_hover_text(
                    "Comma-separated 0-based blocks whose output is steered (resid_post). \
                     steerlab default: 14/30 of the depth (block 14 of SmolLM2's 30); the paper steers one middle layer.",
                );
                let r = ui
                    .add(egui::TextEdit::singleline(&mut s.layers).desired_width(60.0))
                    .labelled_by(l.id);
                if r.changed() {
                    s.layers_edited = true;
                }
                if let Some(n) = n_layers {
                    ui.weak(format!("(0–{})", n - 1));
                }
            });
            let d = BipoConfig::default();
            let bipo = s.method == Method::Bipo;
            egui::Grid::new("steer_batch").num_columns(4).spacing([8.0, 4.0]).show(ui, |ui| {
                param(ui, "Batch size", &mut s.bipo.batch_size, 1..=256, d.batch_size,
                    "Pairs per optimiser step (also the forward batch of CAA/PCA). Paper: 4.");
                ui.end_row();
            });
            if !bipo {
                ui.weak("CAA and PCA use only the batch size (forward-pass batch); the settings below are BiPO's.");
            }
            // BiPO-only settings: greyed out for CAA and PCA, which do not read them.
            ui.add_enabled_ui(bipo, |ui| {
                egui::Grid::new("steer_objective").num_columns(4).spacing([8.0, 4.0]).show(ui, |ui| {
                    let objectives: Vec<String> =
                        ["dpo", "ipo", "rdpo", "bco"].iter().map(|o| o.to_string()).collect();
                    param_choice(ui, "Objective", &mut s.objective, &objectives, "dpo".to_string(),
                        "dpo = BiPO (paper); ipo: squared loss; rdpo: robust DPO with a known label-flip \
                         rate epsilon; bco: unpaired thumbs-up/down feedback.");
                    if s.objective == "rdpo" {
                        param(ui, "Epsilon", &mut s.rdpo_eps, 0.0..=0.49, 0.1,
                            "rdpo: the known fraction of flipped labels (rDPO, Chowdhury et al. 2024).");
                    }
                    ui.end_row();
                });
                egui::Grid::new("steer_params").num_columns(4).spacing([8.0, 4.0]).show(ui, |ui| {
                    let b = &mut s.bipo;
                    param(ui, "Epochs", &mut b.epochs, 1..=1000, d.epochs,
                        "Passes over the data. Paper: 5-20, until the held-out score saturates.");
                    param(ui, "Beta", &mut b.beta, 0.001..=10.0, d.beta,
                        "Temperature of the preference objective. Paper: 0.1.");
                    ui.end_row();
                    // The slider keeps the rate within 1e-5..1; the trainer also rejects a
                    // non-positive rate and stops on divergence.
                    param_log(ui, "Learning rate", &mut b.lr, 1e-5..=1.0, d.lr, LR_TIP);
                    param(ui, "Seed", &mut b.seed, 0..=u64::MAX, d.seed,
                        "Seed of the shuffles and of the +/- direction draws. Paper: 11.");
                    ui.end_row();
                    param(ui, "Weight decay", &mut b.weight_decay, 0.0..=1.0, d.weight_decay,
                        "AdamW weight decay. Paper: 0.05.");
                    ui.end_row();
                    let tip = "Linear warm-up steps before the cosine decay. Paper: 100 (for thousands \
                               of steps). steerlab: 10% of all steps (at least 1).";
                    let mut auto = b.warmup_steps.is_none();
                    ui.label("Warm-up").on_hover_text(tip);
                    param_bool(ui, "10% of the steps", &mut auto, true, tip);
                    if auto {
                        b.warmup_steps = None;
                    } else {
                        let mut w = b.warmup_steps.unwrap_or(10);
                        let l = ui.label("Warm-up steps").on_hover_text(tip);
                        ui.add(egui::DragValue::new(&mut w).range(0..=100_000))
                            .labelled_by(l.id)
                            .on_hover_text(tip);
                        b.warmup_steps = Some(w);
                    }
                    ui.end_row();
                });
            });
        });
        if state.steer.settings.method == Method::Bipo {
            if let Some((path, recs)) = SteerState::train_records(state) {
                let b = &state.steer.settings.bipo;
                let total = b.total_steps(recs.len());
                let s = &state.steer.settings;
                let key = (
                    state.model.as_ref().map(|m| m.path.clone()),
                    path,
                    recs.len(),
                    b.epochs,
                    b.batch_size,
                    s.layers.clone(),
                    s.objective.clone(),
                );
                if self.estimate.as_ref().map(|e| &e.0) != Some(&key) {
                    let secs = state.model.as_ref().and_then(|m| {
                        SteerState::bipo_estimate(&m.model, &recs, &state.steer.settings)
                    });
                    self.estimate = Some((key, secs));
                }
                let b = &state.steer.settings.bipo;
                let mut line = format!(
                    "{total} steps ({} records, {} epochs, batch {}), warm-up {} steps",
                    recs.len(),
                    b.epochs,
                    b.batch_size,
                    b.warmup_for(total)
                );
                if let Some(secs) = self.estimate.as_ref().and_then(|e| e.1) {
                    line.push_str(&format!(
                        "; estimate about {} on an idle 2-core CPU (longer when it is busy; the running job's ETA is measured)",
                        crate::jobs::format_duration(std::time::Duration::from_secs_f64(secs))
                    ));
                }
                ui.weak(line);
            }
        }
        ui.horizontal(|ui| {
            let can =
                state.model.is_some() && !training && SteerState::train_records(state).is_some();
            if ui
                .add_enabled(can, egui::Button::new("Train"))
                .on_hover_text("Train a vector with these settings (Ctrl+T)")
                .clicked()
                || (can && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::T)))
            {
                SteerState::start_training(state);
            }
            if training {
                if ui
                    .button("Stop training")
                    .on_hover_text("Cancel: BiPO keeps the last good vector")
                    .clicked()
                {
                    if let Some(id) = state.steer.train_job {
                        state.jobs.cancel(id);
                    }
                }
                ui.add(egui::Spinner::new());
            }
            if state.model.is_none() {
                ui.weak("Load a model in the Model panel first.");
            }
        });
        if let Some(e) = &state.steer.train_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some(s) = &state.steer.train_summary {
            ui.weak(s);
        }
    }

    fn vectors_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.strong("Vectors");
        if state.steer.vectors.is_empty() {
            ui.weak("None yet: train one, or load a .safetensors / GGUF control vector.");
        }
        let mut changed = false;
        let mut remove = None;
        let mut export = None;
        let mut as_factor = None;
        // One wrapped row per vector (a fixed grid spilled into the right column with long
        // names): the name is shortened (full name on hover), the buttons wrap to a new line.
        let row_w = ui.available_width();
        for (i, e) in state.steer.vectors.iter_mut().enumerate() {
            ui.push_id(("steer_vector_row", i), |ui| {
                ui.set_max_width(row_w);
                ui.horizontal_wrapped(|ui| {
                    changed |= ui
                        .checkbox(&mut e.enabled, ellipsize(&e.name, 32))
                        .on_hover_text(format!("{}: include in the combination", e.name))
                        .changed();
                    let l = ui.label("scale");
                    changed |= ui
                        .add(
                            egui::DragValue::new(&mut e.weight)
                                .speed(0.05)
                                .range(-100.0..=100.0),
                        )
                        .labelled_by(l.id)
                        .on_hover_text("This vector's weight in the combination Σ scale·v")
                        .changed();
                    let norms: Vec<String> = e
                        .vector
                        .norms()
                        .iter()
                        .map(|(l, n)| format!("L{l} |v| {n:.2}"))
                        .collect();
                    ui.weak(format!(
                        "{} · {} · width {}",
                        e.vector.meta.method,
                        ellipsize(&norms.join(", "), 48),
                        e.vector.hidden_size()
                    ))
                    .on_hover_text(e.vector.display_name());
                    if let Some(f) = export_menu(ui, "Export...", VECTOR_FORMATS) {
                        export = Some((i, f));
                    }
                    if ui
                        .small_button("Remove")
                        .on_hover_text("Remove from the list")
                        .clicked()
                    {
                        remove = Some(i);
                    }
                    if ui
                        .small_button("Use as factor")
                        .on_hover_text("Vector -> dissection factor: explain preferences by this vector's projection (Dissect panel)")
                        .clicked()
                    {
                        as_factor = Some(i);
                    }
                });
                // A note carried in the file (e.g. llama.cpp's positions on a GGUF import).
                if !e.vector.meta.note.trim().is_empty() {
                    ui.add(egui::Label::new(
                        egui::RichText::new(format!("note: {}", e.vector.meta.note.trim())).weak(),
                    ).wrap());
                }
            });
            ui.add_space(2.0);
        }
        if let Some((i, f)) = export {
            SteerState::export_entry(state, i, f);
        }
        if let Some(e) = as_factor.and_then(|i| state.steer.vectors.get(i).cloned()) {
            crate::app::dissect::use_vector_as_factor(state, &e.vector, &e.name);
        }
        if let Some(i) = remove {
            state.steer.vectors.remove(i);
            changed = true;
        }
        if changed {
            state.steer.mark_dirty();
        }
        let buttons = [(
            "Load vector…",
            PickKind::File(vec![FileFilter::new(
                "Steering vector",
                &["safetensors", "gguf"],
            )]),
        )];
        if let Some(p) = self.vector_path.show(ui, "Vector file", &buttons, state) {
            SteerState::load_vector(state, &p);
        }
        let any = state.steer.vectors.iter().any(|e| e.enabled);
        let f = ui
            .add_enabled_ui(any, |ui| {
                export_menu(ui, "Export combination...", VECTOR_FORMATS)
            })
            .inner;
        ui.weak("Export combination: the checked vectors, each times its scale (or one row's Export...)");
        if let Some(f) = f {
            SteerState::export_combination(state, f);
        }
        if let Some(p) = &state.steer.last_export {
            ui.weak(format!("Exported {}", p.display()));
        }
        if let Some(e) = &state.steer.vector_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }

    fn serve_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.strong("Serve");
        ui.horizontal_wrapped(|ui| {
            let mut on = state.steer.server.is_some();
            let r = ui
                .add_enabled(
                    on || state.model.is_some(),
                    egui::Checkbox::new(&mut on, "Serve OpenAI API"),
                )
                .on_hover_text(
                    "Serve the loaded model and the listed vectors on loopback: OpenAI clients \
                     choose vectors per request with \"steering\": [{\"vector\": NAME, \"scale\": S}]",
                );
            let l = ui.label("Port");
            ui.add_enabled(
                state.steer.server.is_none(),
                egui::DragValue::new(&mut state.steer.serve_port).range(0..=65535),
            )
            .labelled_by(l.id)
            .on_hover_text("TCP port on 127.0.0.1 (0 picks a free one)");
            if r.changed() {
                if on {
                    SteerState::start_server(state);
                } else {
                    SteerState::stop_server(state);
                }
            }
        });
        if let Some(s) = &state.steer.server {
            ui.label(format!("Serving at {}", s.url()));
            let curl = s.curl_example();
            let l = ui.label("curl");
            let mut c = curl.as_str();
            ui.add(
                egui::TextEdit::multiline(&mut c)
                    .desired_rows(3)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(l.id);
            if ui
                .small_button("Copy curl")
                .on_hover_text("Copy the curl line")
                .clicked()
            {
                ui.ctx().copy_text(curl.clone());
            }
            ui.weak("Vectors as listed when the server started: switch off and on to refresh.");
        }
        if let Some(e) = &state.steer.serve_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }

    fn training_plots(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        let live = state
            .steer
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        if live.steps.is_empty() && live.epochs.is_empty() {
            return;
        }
        ui.strong("Training");
        let h = 120.0;
        // Loss and margin have different scales: one plot each (no shared axis), and the keys
        // are drawn under the plots, so no legend covers a line.
        let loss: Vec<[f64; 2]> = live.steps.iter().map(|s| [s.step as f64, s.loss]).collect();
        let acc: Vec<[f64; 2]> = live
            .steps
            .iter()
            .map(|s| [s.step as f64, s.margin_accuracy])
            .collect();
        let plus: Vec<[f64; 2]> = live
            .epochs
            .iter()
            .map(|e| [e.epoch as f64, e.plus])
            .collect();
        let minus: Vec<[f64; 2]> = live
            .epochs
            .iter()
            .map(|e| [e.epoch as f64, e.minus])
            .collect();
        let (c_loss, c_acc) = (PLOT_COLORS[0], PLOT_COLORS[1]);
        let (c_plus, c_minus) = (PLOT_COLORS[2], PLOT_COLORS[3]);
        ui.columns(3, |cols| {
            Plot::new("steer_loss")
                .height(h)
                .x_axis_label("step")
                .y_axis_label("loss")
                .include_y(0.0)
                .show(&mut cols[0], |p| {
                    p.line(Line::new("loss", PlotPoints::from(loss)).color(c_loss));
                });
            plot_key(&mut cols[0], &[("loss (batch)", c_loss)]);
            Plot::new("steer_margin")
                .height(h)
                .x_axis_label("step")
                .y_axis_label("fraction")
                .include_y(0.0)
                .include_y(1.0)
                .show(&mut cols[1], |p| {
                    p.line(Line::new("positive margin", PlotPoints::from(acc)).color(c_acc));
                });
            plot_key(&mut cols[1], &[("positive margin", c_acc)]);
            Plot::new("steer_heldout")
                .height(h)
                .x_axis_label("epoch")
                .y_axis_label("score")
                .include_y(0.0)
                .include_y(1.0)
                .show(&mut cols[2], |p| {
                    p.line(Line::new("held-out ×+1", PlotPoints::from(plus.clone())).color(c_plus));
                    p.points(
                        Points::new("", PlotPoints::from(plus))
                            .radius(3.0)
                            .color(c_plus),
                    );
                    p.line(
                        Line::new("held-out ×-1", PlotPoints::from(minus.clone())).color(c_minus),
                    );
                    p.points(
                        Points::new("", PlotPoints::from(minus))
                            .radius(3.0)
                            .color(c_minus),
                    );
                });
            plot_key(&mut cols[2], &[("held-out ×+1", c_plus), ("×-1", c_minus)]);
        });
        if let Some(last) = live.steps.last() {
            ui.weak(format!(
                "step {}: loss {:.4}, positive margin {:.2}, |v| {:.3}",
                last.step, last.loss, last.margin_accuracy, last.norm
            ));
        }
    }

    fn strength_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.strong("Strength and behaviour");
        let any = state.steer.vectors.iter().any(|e| e.enabled);
        let max = state.steer.max_strength;
        ui.horizontal(|ui| {
            let l = ui.label("Strength").on_hover_text(
                "Multiplier of the combination added to the residual stream; moving it re-scores the \
                 behaviour and regenerates the steered answer",
            );
            let r = ui
                .add_enabled(
                    any,
                    egui::Slider::new(&mut state.steer.strength, -max..=max).step_by(0.05),
                )
                .labelled_by(l.id);
            if r.changed() {
                state.steer.mark_dirty();
            }
            let can_sweep = any
                && state.model.is_some()
                && state.steer.eval_source.is_some()
                && !SteerState::sweeping(state);
            if ui
                .add_enabled(can_sweep, egui::Button::new("Sweep"))
                .on_hover_text("Behaviour score of each checked vector at multipliers −4…+4")
                .clicked()
            {
                SteerState::start_sweep(state);
            }
            if SteerState::scoring(state) || SteerState::sweeping(state) {
                ui.add(egui::Spinner::new());
            }
        });
        match state.steer.score {
            Some(s) => {
                ui.label(format!(
                    "Behaviour score at ×{:+.2}: {:.3}",
                    s.multiplier, s.score
                ));
            }
            None if state.steer.eval_source.is_none() => {
                ui.weak("Choose an evaluation set to score the behaviour.");
            }
            None => {}
        }
        if let Some(e) = &state.steer.score_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if !state.steer.sweep.is_empty() || state.steer.score.is_some() {
            let mut names: Vec<String> = Vec::new();
            for p in &state.steer.sweep {
                if !names.contains(&p.vector) {
                    names.push(p.vector.clone());
                }
            }
            let sweep = state.steer.sweep.clone();
            let score = state.steer.score;
            let strength = state.steer.strength;
            let color = |i: usize| PLOT_COLORS[i % PLOT_COLORS.len()];
            let marker = ui.visuals().strong_text_color();
            Plot::new("steer_curve")
                .height(170.0)
                .x_axis_label("multiplier")
                .y_axis_label("behaviour score")
                .include_y(0.0)
                .include_y(1.0)
                .include_x(-max)
                .include_x(max)
                .show(ui, |p| {
                    for (i, n) in names.iter().enumerate() {
                        let pts: Vec<[f64; 2]> = sweep
                            .iter()
                            .filter(|x| &x.vector == n)
                            .map(|x| [x.multiplier, x.score])
                            .collect();
                        p.line(Line::new(n.clone(), PlotPoints::from(pts.clone())).color(color(i)));
                        p.points(
                            Points::new("", PlotPoints::from(pts))
                                .radius(2.5)
                                .color(color(i)),
                        );
                    }
                    p.vline(VLine::new("strength", strength).color(marker));
                    if let Some(s) = score {
                        p.points(
                            Points::new(
                                "score at strength",
                                PlotPoints::from(vec![[s.multiplier, s.score]]),
                            )
                            .radius(5.0)
                            .color(marker),
                        );
                    }
                });
            let short_names: Vec<String> = names.iter().map(|n| ellipsize(n, 28)).collect();
            let mut key: Vec<(&str, egui::Color32)> = short_names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), color(i)))
                .collect();
            key.push(("strength / score at strength", marker));
            plot_key(ui, &key);
        }
    }

    fn generation_section(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.strong("Steered generation");
        ui.horizontal(|ui| {
            let l = ui.label("Prompt");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut state.steer.prompt).desired_width(
                        (ui.available_width()
                            - button_width(ui, "Tokens")
                            - button_width(ui, "Regenerate")
                            - 60.0
                            - 4.0 * ui.spacing().item_spacing.x)
                            .max(60.0),
                    ),
                )
                .labelled_by(l.id);
            let l = ui.label("Tokens");
            ui.add(egui::DragValue::new(&mut state.steer.max_new_tokens).range(1..=512))
                .labelled_by(l.id)
                .on_hover_text("Greedy answers of at most this many tokens");
            let any = state.steer.vectors.iter().any(|e| e.enabled);
            let go = ui
                .add_enabled(
                    any && state.model.is_some(),
                    egui::Button::new("Regenerate"),
                )
                .on_hover_text("Answer the prompt with and without steering (Ctrl+G)")
                .clicked();
            let entered = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let key =
                any && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::G));
            if go || entered || key {
                state.steer.dirty_since = Some(std::time::Instant::now() - state.steer.debounce);
            }
        });
        let (unsteered, steered, mult) = match &state.steer.generations {
            Some(g) => (g.unsteered.clone(), g.steered.clone(), g.multiplier),
            None => (String::new(), String::new(), state.steer.strength),
        };
        ui.columns(2, |cols| {
            let l = cols[0].label("Unsteered answer");
            let mut u = unsteered.as_str();
            cols[0]
                .add(
                    egui::TextEdit::multiline(&mut u)
                        .desired_rows(5)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(l.id);
            let l = cols[1].label(format!("Steered answer (×{mult:+.2})"));
            let mut s = steered.as_str();
            cols[1]
                .add(
                    egui::TextEdit::multiline(&mut s)
                        .desired_rows(5)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(l.id);
        });
    }
}

const LR_TIP: &str = "Peak AdamW learning rate (warm-up, then cosine decay to 0). Paper: 5e-4 with 100 warm-up \
steps, which assumes thousands of steps: on a 100-pair set (75 steps) it leaves |v| about 0.3 against a residual \
norm in the hundreds, i.e. no steering. steerlab: 0.02 with a 10% warm-up (docs/results/steering.md).";

impl Panel for SteerPanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        if let Some(wait) = SteerState::tick(state) {
            ui.ctx().request_repaint_after(wait);
        }
        // A vector clicked in the sidebar (or linked): checked alone, loaded if not listed.
        match state.take_selection(PanelId::Steer) {
            Some(Selection::Artifact(a)) => SteerState::open_vector(state, &a.path),
            Some(Selection::Vector { path, .. }) => SteerState::open_vector(state, &path),
            _ => {}
        }
        ui.heading("Steer");
        match &state.model {
            Some(m) => ui.label(format!(
                "Model: {} · {} blocks · hidden {}",
                m.summary.name, m.summary.n_layers, m.summary.hidden_size
            )),
            None => ui.label("Load a model in the Model panel first."),
        };
        ui.add_space(4.0);
        ui.columns(2, |cols| {
            let (left, right) = cols.split_at_mut(1);
            let left = &mut left[0];
            let right = &mut right[0];
            self.data_section(left, state);
            left.separator();
            self.settings_section(left, state);
            left.separator();
            self.vectors_section(left, state);
            left.separator();
            self.serve_section(left, state);
            self.training_plots(right, state);
            self.strength_section(right, state);
            right.separator();
            self.generation_section(right, state);
            right.separator();
            super::landscape::ui(right, state);
        });
    }
}
