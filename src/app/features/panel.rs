//! Features panel (WIMHF feature discovery): pick the embedder and the SAE settings, train on
//! the active dataset in a background job with live plots (loss, FVE, L0, dead fraction),
//! browse the features in a table sortable by effect, prevalence and fidelity, read a feature's
//! top pairs side by side with their differing words highlighted, see the features on a map or
//! in clusters (`atlas.rs`), write a feature as a steering
//! vector (LLM embedder only) and export the run folder. Calls `crate::app::features` (which
//! calls `crate::sae`); no algorithm here.
use eframe::egui;
use egui::text::LayoutJob;
use egui::{Color32, TextFormat};
use egui_plot::{Line, Plot};

use super::state::{self as feat, EmbedderChoice, FeatureView, SortKey};
use crate::app::dialogs::DialogRequest;
use crate::app::nav::{PanelId, Selection};
use crate::app::state::AppState;
use crate::app::view::Panel;
use crate::app::widgets;
use crate::sae::interpret::{diff_spans, TopPair};
use crate::sae::pipeline::FeatureReport;

/// View state of the Features panel (everything lives in `AppState::features`).
#[derive(Default)]
pub struct FeaturesPanel;

fn labelled_drag<N: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut N,
    range: std::ops::RangeInclusive<N>,
    speed: f64,
    tip: &str,
) {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(value).range(range).speed(speed))
        .labelled_by(l.id)
        .on_hover_text(tip);
}

impl FeaturesPanel {
    fn settings_ui(ui: &mut egui::Ui, state: &mut AppState) {
        let n_layers = state.model.as_ref().map(|m| m.summary.n_layers);
        let data_name = state
            .active_dataset
            .and_then(|i| state.datasets.get(i))
            .map(|d| match &d.hf_split {
                Some(s) => format!(
                    "{} (split {s}, {} records)",
                    d.path.display(),
                    d.records.len()
                ),
                None => format!("{} ({} records)", d.path.display(), d.records.len()),
            });
        let s = &mut state.features.settings;
        ui.horizontal_wrapped(|ui| {
            ui.strong("Data:");
            match &data_name {
                Some(n) => ui.label(n),
                None => ui.weak("none — open a dataset in the Data panel"),
            };
        });
        ui.horizontal_wrapped(|ui| {
            ui.strong("Embedder:");
            ui.radio_value(&mut s.embedder, EmbedderChoice::MiniLm, "MiniLM")
                .on_hover_text(
                    "all-MiniLM-L6-v2 sentence embeddings of each response (the paper's setting \
                     uses a sentence encoder)",
                );
            let llm = ui
                .add_enabled(
                    n_layers.is_some(),
                    egui::RadioButton::new(s.embedder == EmbedderChoice::Llm, "LLM layer"),
                )
                .on_hover_text(
                    "Mean-pooled residual stream of the loaded model after this block. Only \
                     these features can become steering vectors.",
                )
                .on_disabled_hover_text("Load a model in the Model panel first");
            if llm.clicked() {
                s.embedder = EmbedderChoice::Llm;
                if let Some(n) = n_layers {
                    if s.layer == 0 {
                        s.layer = n / 2;
                    }
                }
            }
            let max = n_layers.unwrap_or(1).saturating_sub(1);
            s.layer = s.layer.min(max);
            ui.add_enabled_ui(s.embedder == EmbedderChoice::Llm, |ui| {
                labelled_drag(
                    ui,
                    "Layer",
                    &mut s.layer,
                    0..=max,
                    0.1,
                    "0-based block whose output is pooled (default: the middle layer)",
                );
            });
            ui.checkbox(&mut s.include_prompt, "Prompt + response")
                .on_hover_text(
                    "Embed the prompt with each response (paper default: response only)",
                );
        });
        ui.horizontal_wrapped(|ui| {
            ui.strong("SAE:");
            let c = &mut s.sae;
            labelled_drag(
                ui,
                "Latents M",
                &mut c.latents,
                2..=4096,
                0.2,
                "Number of features (paper default 32)",
            );
            labelled_drag(
                ui,
                "K",
                &mut c.k,
                1..=256,
                0.1,
                "Active features per pair on average, BatchTopK (paper default 4)",
            );
            c.k = c.k.min(c.latents);
            labelled_drag(
                ui,
                "Seed",
                &mut c.seed,
                0..=u64::MAX,
                0.2,
                "Initialisation, shuffling and splits (same seed, same run)",
            );
            let l = ui.label("Learning rate");
            ui.add(
                egui::DragValue::new(&mut c.lr)
                    .range(1e-6..=1e-1)
                    .speed(1e-5)
                    .max_decimals(5),
            )
            .labelled_by(l.id)
            .on_hover_text("Adam learning rate (paper default 5e-4)");
            labelled_drag(
                ui,
                "Batch",
                &mut c.batch_size,
                8..=4096,
                1.0,
                "Rows per step (paper default 256)",
            );
            labelled_drag(
                ui,
                "Max epochs",
                &mut c.max_epochs,
                1..=1000,
                0.2,
                "Upper bound on epochs (paper default 50)",
            );
            labelled_drag(
                ui,
                "Patience",
                &mut c.patience,
                1..=100,
                0.1,
                "Epochs without validation improvement before stopping (paper default 3)",
            );
            // Custom prefixes are a CLI option; the panel uses the default (8, M).
            c.prefixes.clear();
        });
        ui.horizontal_wrapped(|ui| {
            ui.add_enabled_ui(n_layers.is_some(), |ui| {
                ui.checkbox(&mut s.describe, "Describe with the LLM")
                    .on_hover_text(
                        "The loaded model proposes a description from each feature's top pairs \
                         and judges it on held-out pairs (fidelity; kept if p <= 0.05/M). Slow \
                         on a CPU.",
                    );
                labelled_drag(
                    ui,
                    "Fidelity pairs",
                    &mut s.fidelity_pairs,
                    4..=500,
                    0.2,
                    "Held-out pairs judged per feature",
                );
            });
            if n_layers.is_none() {
                s.describe = false;
            }
        });
    }

    fn actions_ui(ui: &mut egui::Ui, state: &mut AppState) {
        let running = state
            .features
            .job
            .is_some_and(|id| state.jobs.is_running(id));
        let blocker = feat::run_blocker(state);
        ui.horizontal(|ui| {
            let train = ui
                .add_enabled(blocker.is_none(), egui::Button::new("Train"))
                .on_hover_text(
                    "Embed, train the SAE, interpret and write the run folder (Ctrl+Enter)",
                )
                .on_disabled_hover_text(blocker.clone().unwrap_or_default());
            let key = blocker.is_none()
                && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Enter));
            if train.clicked() || key {
                feat::start_run(state);
            }
            if ui
                .add_enabled(running, egui::Button::new("Cancel"))
                .on_hover_text("Stop training and keep the best weights so far")
                .clicked()
            {
                if let Some(id) = state.features.job {
                    state.jobs.cancel(id);
                }
            }
            if running {
                ui.add(egui::Spinner::new());
            }
            ui.separator();
            if ui
                .button("Open run…")
                .on_hover_text("Open an output folder of `steerlab sae run` or of this panel")
                .clicked()
            {
                state.ask(
                    DialogRequest::folder("Open feature run folder"),
                    |state, dir| feat::open_run(state, &dir),
                );
            }
            if ui
                .add_enabled(
                    state.features.active.is_some(),
                    egui::Button::new("Export…"),
                )
                .on_hover_text(
                    "Write the run folder (SAE, activations, report.json/.md/.html) to a folder",
                )
                .clicked()
            {
                feat::export_active(state);
            }
            ui.separator();
            super::imported::actions_ui(ui, state);
        });
        if let Some(e) = &state.features.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }

    fn plots_ui(ui: &mut egui::Ui, state: &AppState) {
        let live = state
            .features
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        let from_run = live.steps.is_empty();
        let steps: Vec<[f64; 5]> = if from_run {
            state
                .features
                .active_run()
                .map(|r| {
                    r.result
                        .report
                        .history
                        .steps
                        .iter()
                        .map(|s| [s.step as f64, s.loss, s.fve, s.l0, s.dead_fraction])
                        .collect()
                })
                .unwrap_or_default()
        } else {
            live.steps.clone()
        };
        if steps.is_empty() {
            return;
        }
        if !live.stage.is_empty() && !from_run {
            ui.weak(format!("{} · step {}", live.stage, steps.len()));
        }
        let names = ["loss", "FVE", "L0", "dead fraction"];
        ui.columns(4, |cols| {
            for (c, ui) in cols.iter_mut().enumerate() {
                ui.label(names[c]);
                let pts: Vec<[f64; 2]> = steps.iter().map(|s| [s[0], s[c + 1]]).collect();
                let ymax = pts.iter().map(|p| p[1]).fold(0.0f64, f64::max);
                let mut plot = Plot::new(("sae_live", c))
                    .height(110.0)
                    .allow_drag(false)
                    .allow_zoom(false)
                    .allow_scroll(false)
                    .show_x(false);
                // L0 (exactly K per row in training) and the dead fraction are flat for long
                // stretches: show them from 0 so a constant does not fill the plot.
                if c >= 2 {
                    plot =
                        plot.include_y(0.0)
                            .include_y(if c == 3 { 1.0 } else { ymax * 1.25 + 0.5 });
                }
                plot.show(ui, |p| p.line(Line::new(names[c], pts)));
            }
        });
    }

    fn table_ui(ui: &mut egui::Ui, state: &mut AppState) {
        let Some(run) = state.features.active_run() else {
            return;
        };
        let feats = &run.result.report.features;
        let order = feat::sorted_features(feats, state.features.sort, state.features.descending);
        let mut clicked_sort = None;
        let mut clicked_row = None;
        let selected = state.features.selected;
        let (sort, desc) = (state.features.sort, state.features.descending);
        egui::ScrollArea::both()
            .id_salt("feature_table")
            .max_height(330.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                egui::Grid::new("features_grid")
                    .striped(true)
                    .num_columns(6)
                    .spacing([10.0, 3.0])
                    .show(ui, |ui| {
                        let mut header =
                            |ui: &mut egui::Ui, name: &str, key: SortKey, tip: &str| {
                                let arrow = if sort == key {
                                    if desc {
                                        " (desc)"
                                    } else {
                                        " (asc)"
                                    }
                                } else {
                                    ""
                                };
                                if ui
                                    .add(egui::Button::new(format!("{name}{arrow}")).frame(false))
                                    .on_hover_text(tip)
                                    .clicked()
                                {
                                    clicked_sort = Some(key);
                                }
                            };
                        header(ui, "#", SortKey::Index, "Sort by feature index");
                        header(
                            ui,
                            "prevalence",
                            SortKey::Prevalence,
                            "Fraction of pairs where the feature fires",
                        );
                        header(
                            ui,
                            "effect",
                            SortKey::Effect,
                            "Log-odds of preference per sd of the feature, controlling for \
                             length (95% CI); sorted by |effect|",
                        );
                        ui.strong("p (Bonf.)");
                        header(
                            ui,
                            "fidelity",
                            SortKey::Fidelity,
                            "Correlation of the activation with the LLM's judgement of the \
                             description on held-out pairs (kept: p <= 0.05/M)",
                        );
                        ui.strong("description / distinctive words");
                        ui.end_row();
                        for &j in &order {
                            let Some(f) = feats.iter().find(|f| f.index == j) else {
                                continue;
                            };
                            if ui
                                .selectable_label(selected == Some(j), format!("#{j}"))
                                .on_hover_text("Show this feature's top pairs")
                                .clicked()
                            {
                                clicked_row = Some(j);
                            }
                            // Every cell of the row selects the feature.
                            let mut cell = |ui: &mut egui::Ui, text: String| {
                                if ui
                                    .add(egui::Label::new(text).sense(egui::Sense::click()))
                                    .on_hover_text("Show this feature's top pairs")
                                    .clicked()
                                {
                                    clicked_row = Some(j);
                                }
                            };
                            cell(ui, format!("{:.3}", f.prevalence));
                            cell(
                                ui,
                                match &f.effect {
                                    Some(e) => format!(
                                        "{:+.3} [{:+.2}, {:+.2}]",
                                        e.coef, e.ci95.0, e.ci95.1
                                    ),
                                    None => "–".into(),
                                },
                            );
                            cell(
                                ui,
                                match &f.effect {
                                    Some(e) => format!("{:.2e}", e.p_bonferroni),
                                    None => "–".into(),
                                },
                            );
                            cell(
                                ui,
                                match &f.fidelity {
                                    Some(x) => {
                                        format!("{:+.2}{}", x.r, if x.kept { " kept" } else { "" })
                                    }
                                    None => "–".into(),
                                },
                            );
                            let text = widgets::printable(ui.ctx(), &feature_label(f));
                            if ui
                                .add(egui::Label::new(clip(&text, 56)).sense(egui::Sense::click()))
                                .on_hover_text(&text)
                                .clicked()
                            {
                                clicked_row = Some(j);
                            }
                            ui.end_row();
                        }
                    });
            });
        if let Some(k) = clicked_sort {
            let f = &mut state.features;
            if f.sort == k {
                f.descending = !f.descending;
            } else {
                f.sort = k;
                f.descending = k != SortKey::Index;
            }
        }
        if let Some(j) = clicked_row {
            state.features.selected = Some(j);
        }
    }

    fn feature_view_ui(ui: &mut egui::Ui, state: &mut AppState) {
        let Some(run) = state.features.active_run() else {
            return;
        };
        let Some(j) = state.features.selected else {
            ui.weak("Select a feature in the table to see its top pairs.");
            return;
        };
        let Some(f) = run.result.report.features.iter().find(|f| f.index == j) else {
            return;
        };
        let site = run.llm_site();
        let f = f.clone();
        ui.heading(format!("Feature {j}"));
        if let Some(d) = &f.description {
            ui.label(format!("Description: {d}"));
        }
        if let Some(x) = &f.fidelity {
            ui.label(format!(
                "Fidelity r = {:+.3} (p = {:.2e}, n = {}){}",
                x.r,
                x.p,
                x.n,
                if x.kept {
                    ", kept"
                } else {
                    ", not significant"
                }
            ));
        }
        ui.label(format!(
            "Fires on {:.1}% of pairs, mean |activation| {:.3}; {} top pairs.",
            100.0 * f.prevalence,
            f.mean_abs_active,
            f.n_top
        ));
        if let Some(e) = &f.effect {
            ui.label(format!(
                "Effect on preference: {:+.3} log-odds per sd [{:+.2}, {:+.2}], Bonferroni p {:.2e}",
                e.coef, e.ci95.0, e.ci95.1, e.p_bonferroni
            ));
        }
        let ctx = ui.ctx().clone();
        let words = |g: &[crate::sae::interpret::NGram]| {
            g.iter()
                .take(6)
                .map(|x| widgets::printable(&ctx, &x.text))
                .collect::<Vec<_>>()
                .join(", ")
        };
        ui.label(format!(
            "More on the feature's side: {}",
            words(&f.ngrams_toward)
        ));
        ui.label(format!("More on the other side: {}", words(&f.ngrams_away)));
        ui.horizontal(|ui| {
            let tip = match &site {
                Some(s) => format!(
                    "Write the decoder direction as a steering vector at layer {}, scaled to \
                     the mean |activation| ({:.3})",
                    s.layer, f.mean_abs_active
                ),
                None => String::new(),
            };
            if ui
                .add_enabled(site.is_some(), egui::Button::new("Use as steering vector"))
                .on_hover_text(tip)
                .on_disabled_hover_text(
                    "Only features of an SAE trained on the LLM embedder are residual directions",
                )
                .clicked()
            {
                feat::feature_to_vector(state, j);
            }
        });
        if let Some(p) = &state.features.last_vector {
            ui.add(
                egui::Label::new(
                    egui::RichText::new(format!("last vector: {}", p.display())).weak(),
                )
                .wrap(),
            );
        }
        ui.separator();
        for (n, p) in f.top_pairs.iter().take(5).enumerate() {
            pair_ui(ui, n, p);
        }
        if f.top_pairs.is_empty() {
            ui.weak("The feature never fires.");
        }
    }
}

/// The last `n` characters of `s`, with "..." in front when cut (paths: the folder name shows).
fn clip_start(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len > n {
        format!("...{}", s.chars().skip(len - n).collect::<String>())
    } else {
        s.to_string()
    }
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    let t: String = one_line.chars().take(n).collect();
    if t.len() < one_line.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// The description, else the distinctive words.
fn feature_label(f: &FeatureReport) -> String {
    if let Some(d) = &f.description {
        return d.clone();
    }
    let t: Vec<&str> = f
        .ngrams_toward
        .iter()
        .take(4)
        .map(|g| g.text.as_str())
        .collect();
    let a: Vec<&str> = f
        .ngrams_away
        .iter()
        .take(3)
        .map(|g| g.text.as_str())
        .collect();
    if t.is_empty() && a.is_empty() {
        return String::new();
    }
    format!("+ {} | - {}", t.join(", "), a.join(", "))
}

/// One top pair: the feature's side and the other side next to each other, the words that
/// differ highlighted.
fn pair_ui(ui: &mut egui::Ui, n: usize, p: &TopPair) {
    ui.label(
        egui::RichText::new(format!(
            "Pair {} · {} · |activation| {:.3}{}",
            n + 1,
            p.id,
            p.activation,
            if p.swapped { " · sides swapped" } else { "" }
        ))
        .strong(),
    );
    let (sa, sb) = diff_spans(&p.a, &p.b);
    let text_color = ui.visuals().text_color();
    let font = egui::TextStyle::Body.resolve(ui.style());
    let mk = |text: &str, spans: &[crate::sae::interpret::Span], bg: Color32, width: f32| {
        let mut job = LayoutJob::default();
        for s in spans {
            job.append(
                &text[s.range.clone()],
                0.0,
                TextFormat {
                    font_id: font.clone(),
                    color: text_color,
                    background: if s.changed { bg } else { Color32::TRANSPARENT },
                    ..Default::default()
                },
            );
        }
        job.wrap.max_width = width;
        job
    };
    let green = Color32::from_rgba_unmultiplied(60, 170, 80, 90);
    let red = Color32::from_rgba_unmultiplied(200, 80, 60, 90);
    ui.columns(2, |cols| {
        let w = cols[0].available_width();
        cols[0].weak("A — the feature's side");
        cols[0].label(mk(&p.a, &sa, green, w));
        let w = cols[1].available_width();
        cols[1].weak("B — the other side");
        cols[1].label(mk(&p.b, &sb, red, w));
    });
    ui.add_space(6.0);
}

impl Panel for FeaturesPanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        if let Some(e) = state.features.pending_train {
            state.features.settings.embedder = e;
            if feat::run_blocker(state).is_none() {
                state.features.pending_train = None;
                feat::start_run(state);
            }
        }
        if state.features.pending_apply
            && state.features.active_run().is_some()
            && super::imported::apply_blocker(state).is_none()
        {
            state.features.pending_apply = false;
            super::imported::start_apply(state);
        }
        // A run folder clicked in the sidebar (or linked from another panel).
        if let Some(Selection::Artifact(a)) = state.take_selection(PanelId::Features) {
            let shown = state
                .features
                .runs
                .iter()
                .position(|r| r.out_dir.as_deref() == Some(a.path.as_path()));
            match shown {
                Some(i) => state.features.active = Some(i),
                None => feat::open_run(state, &a.path),
            }
        }
        ui.heading("Features");
        ui.weak(
            "What does this preference data reward? A sparse autoencoder on the embedding \
             differences of each pair finds features; each gets its top pairs, an effect on \
             preference and (with the LLM) a description.",
        );
        ui.add_space(4.0);
        Self::settings_ui(ui, state);
        Self::actions_ui(ui, state);
        ui.separator();
        Self::plots_ui(ui, state);
        super::imported::imported_ui(ui, state);
        if state.features.runs.is_empty() {
            return;
        }
        ui.horizontal(|ui| {
            let l = ui.strong("Run:");
            let f = &mut state.features;
            let current = f.active_run().map(|r| r.name.clone()).unwrap_or_default();
            egui::ComboBox::from_id_salt("feature_run")
                .selected_text(clip(&current, 40))
                .show_ui(ui, |ui| {
                    for (i, r) in f.runs.iter().enumerate() {
                        if ui.selectable_label(f.active == Some(i), &r.name).clicked() {
                            f.active = Some(i);
                            f.selected = None;
                        }
                    }
                })
                .response
                .labelled_by(l.id);
        });
        if let Some(d) = state.features.active_run().and_then(|r| r.out_dir.clone()) {
            let full = d.display().to_string();
            ui.weak(format!("folder: {}", clip_start(&full, 80)))
                .on_hover_text(full);
        }
        if let Some(r) = state.features.active_run() {
            let rep = &r.result.report;
            let o = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
            ui.label(format!(
                "{} pairs · {} · M = {}, K = {} · {} epochs (kept {}) · val FVE {:.3}, L0 {:.2}",
                rep.n_pairs,
                rep.embedder,
                rep.options.sae.latents,
                rep.options.sae.k,
                rep.history.epochs,
                rep.history.best_epoch + 1,
                rep.val_fve,
                rep.val_l0
            ));
            ui.label(format!(
                "Held-out AUC: length {}, LASSO top-5 {}, top-10 {}, all features {}, dense probe {}",
                o(rep.auc.length_only),
                o(rep.auc.top5),
                o(rep.auc.top10),
                o(rep.auc.all_features),
                o(rep.auc.dense_probe)
            ));
        }
        super::imported::applied_ui(ui, state);
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            let v = &mut state.features.view;
            ui.selectable_value(v, FeatureView::Table, "Table")
                .on_hover_text("The sortable feature table");
            ui.selectable_value(v, FeatureView::Map, "Map")
                .on_hover_text(
                "2-D map of the features (PCA): colour = effect on preference, size = frequency",
            );
            ui.selectable_value(v, FeatureView::Clusters, "Clusters")
                .on_hover_text("k-means clusters of the features, named by their top features");
        });
        if state.features.view != FeatureView::Table {
            super::atlas::atlas_ui(ui, state);
            ui.separator();
            Self::feature_view_ui(ui, state);
            return;
        }
        // Table and feature side by side where both fit (wide windows); else the feature
        // below the table, so neither is cut.
        if ui.available_width() >= 1600.0 {
            // Leave room for the separator and the central panel's scroll bar.
            let half = (ui.available_width() - 40.0) / 2.0;
            ui.horizontal_top(|ui| {
                ui.allocate_ui_with_layout(
                    egui::vec2(half, 340.0),
                    egui::Layout::top_down(egui::Align::Min),
                    |ui| {
                        ui.set_width(half);
                        Self::table_ui(ui, state);
                    },
                );
                ui.separator();
                ui.allocate_ui_with_layout(
                    egui::vec2(half, 0.0),
                    egui::Layout::top_down(egui::Align::Min),
                    |ui| {
                        ui.set_width(half);
                        Self::feature_view_ui(ui, state);
                    },
                );
            });
        } else {
            Self::table_ui(ui, state);
            ui.separator();
            Self::feature_view_ui(ui, state);
        }
    }
}
