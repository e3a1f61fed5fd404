//! Dissect panel: pick factor sources and group keys, fit (Laplace live, NUTS on a background
//! job with progress and cancel), and read the result: a forest plot of weights with 95%
//! intervals per factor and group, a judge-versus-judge view (similarity matrix, Kendall τ,
//! weight scatter), a contribution waterfall for one pair, and report export. All computation
//! is `crate::dissect` (through `crate::app::dissect`).
use eframe::egui;
use egui_plot::{Bar, BarChart, HLine, Line, Plot, PlotPoints, Points, Text, VLine};

use super::{Panel, PanelId};
use crate::app::artifacts::Selection;
use crate::app::dissect::{self as ds, ExportFormat};
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::app::widgets::{self, kv_grid};
use crate::dissect::fit::available_group_keys;
use crate::dissect::{DissectOutput, NutsConfig, Sampler};

/// Tooltip of the prior scale.
pub const PRIOR_TIP: &str = "Scale b of the Laplace(0, b) prior on every weight. \
    GAIR's default b = 0.1 shrinks weights towards 0 on purpose (few factors stand out). \
    Use b = 1.0 to recover the size of planted weights (the evidence page: at least 90% coverage at 1.0).";

/// Tooltip of a steering-vector factor.
pub const VECTOR_TIP: &str = "Projection of the mean-pooled residual difference (after block LAYER) \
    on a steering vector: FILE@LAYER. Needs the model. The Steer panel's 'Use as factor' adds its vectors here.";
const FOLDS_TIP: &str = "K-fold averaging as GAIR does: fit on K-1 folds K times and average. \
    GAIR uses 10; 1 fits all pairs once (fast, for live use).";
const SEED_TIP: &str = "Seed of the fold split, the A/B orientation shuffle and the NUTS chains.";
const WARMUP_TIP: &str = "NUTS warm-up (adaptation) iterations per chain, discarded. GAIR: 500.";
const DRAWS_TIP: &str = "NUTS draws kept per chain. GAIR: 2000.";
const CHAINS_TIP: &str = "NUTS chains, run on threads; R-hat needs at least 2. GAIR: 4.";

/// Which result view is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum View {
    #[default]
    Forest,
    TopPairs,
    Judges,
    Waterfall,
}

/// View state of the Dissect panel.
#[derive(Default)]
pub struct DissectPanel {
    view: View,
    spearman: bool,
    /// Text typed to find a pair for the waterfall.
    pair_search: String,
}

const GROUP_COLORS: [egui::Color32; 8] = [
    egui::Color32::from_rgb(31, 119, 180),
    egui::Color32::from_rgb(255, 127, 14),
    egui::Color32::from_rgb(44, 160, 44),
    egui::Color32::from_rgb(214, 39, 40),
    egui::Color32::from_rgb(148, 103, 189),
    egui::Color32::from_rgb(140, 86, 75),
    egui::Color32::from_rgb(227, 119, 194),
    egui::Color32::from_rgb(127, 127, 127),
];

impl Panel for DissectPanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.heading("Dissect preferences");
        ui.label(
            "Explain the labels of a preference dataset as weights on named factors (Bayesian \
             logistic regression without intercept, Laplace prior), per judge, scenario or any column.",
        );
        if ds::take_navigation(state) {
            self.view = View::TopPairs;
        }
        let active = ds::active_data(state);
        ui.horizontal(|ui| {
            match &active {
                Some((p, d)) => {
                    ui.label(format!("Data: {} ({} pairs)", p.display(), d.len()));
                }
                None => {
                    ui.weak("No dataset open.");
                }
            }
            if ui.button("Open data…").clicked() {
                let filters = [FileFilter::new(
                    "Preference data",
                    &["jsonl", "json", "csv", "tsv", "parquet"],
                )];
                if let Some(p) = state.picker.pick_file("Dataset to dissect", &filters) {
                    super::DataPanel::start_open(state, p);
                }
            }
        });
        let Some((path, data)) = active else {
            return;
        };
        state.dissect.defaults_for_data(&path, &data);
        ui.separator();
        ui.columns(2, |cols| {
            cols[0].set_max_width(360.0);
            self.settings(&mut cols[0], state, &data);
            self.results(&mut cols[1], state, &data);
        });
        // Live refit: Laplace, no model-backed source, settings changed, nothing running.
        let s = &state.dissect;
        let changed = s.fitted.as_ref() != Some(&(path.clone(), s.config()));
        if s.live
            && s.sampler == Sampler::Laplace
            && !s.needs_model()
            && changed
            && !s.is_running(&state.jobs)
        {
            ds::start_fit(state);
        }
    }
}

impl DissectPanel {
    fn settings(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut AppState,
        data: &[crate::data::Judgement],
    ) {
        let has_model = state.model.is_some();
        let s = &mut state.dissect;
        ui.strong("Factors");
        ui.checkbox(&mut s.computed, "computed text factors")
            .on_hover_text("length, list items, headers, code blocks, bold, questions, hedges, refusal, apology, emoji, exclamations, links, readability");
        let has_cols = data
            .iter()
            .any(|j| !j.factors_a.is_empty() || !j.factors_b.is_empty());
        ui.add_enabled(
            has_cols,
            egui::Checkbox::new(&mut s.columns, "annotation columns"),
        )
        .on_hover_text("factors_a / factors_b of the data (GAIR's 29 properties are recognised)")
        .on_disabled_hover_text("this dataset has no factors_a / factors_b columns");
        ui.horizontal(|ui| {
            let l = ui.label("LLM judge:");
            ui.add(
                egui::TextEdit::singleline(&mut s.llm)
                    .desired_width(200.0)
                    .hint_text("friendly+clear+step_by_step"),
            )
            .labelled_by(l.id)
            .on_hover_text(
                "Factor names joined by +: the loaded model rates both responses 0-3 on each \
                 (GAIR's pairwise rating, both orders averaged; cached on disk). Slow: 4 forward passes per pair and factor.",
            );
        });
        if !s.llm.trim().is_empty() && !has_model {
            ui.colored_label(ui.visuals().warn_fg_color, "needs a loaded model");
        }
        ui.horizontal(|ui| {
            let l = ui.label("SAE folder:");
            ui.add(
                egui::TextEdit::singleline(&mut state.dissect.sae_dir)
                    .desired_width(170.0)
                    .hint_text("steerlab sae run --out"),
            )
            .labelled_by(l.id)
            .on_hover_text("Features of a `steerlab sae run` output folder (activations on e(A) - e(B), matched by pair id)");
            if ui.small_button("…").on_hover_text("Pick the SAE output folder").clicked() {
                if let Some(p) = state.picker.pick_folder("SAE output folder") {
                    state.dissect.sae_dir = p.display().to_string();
                }
            }
        });
        ui.label("Steering vectors:").on_hover_text(VECTOR_TIP);
        let mut remove = None;
        for (i, v) in state.dissect.vectors.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.monospace(clip_start(v, 40)).on_hover_text(v.as_str());
                if ui
                    .small_button("Remove")
                    .on_hover_text("Stop using this vector as a factor")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            state.dissect.vectors.remove(i);
        }
        let s = &mut state.dissect;
        ui.horizontal(|ui| {
            let l = ui.label("Vector:");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut s.vector_input)
                        .desired_width(170.0)
                        .hint_text("v.safetensors@14"),
                )
                .labelled_by(l.id)
                .on_hover_text(VECTOR_TIP);
            let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let add = ui
                .add_enabled(
                    !s.vector_input.trim().is_empty(),
                    egui::Button::new("Add vector"),
                )
                .on_hover_text("Use this FILE@LAYER as a factor (or press Enter)");
            if add.clicked() || entered {
                let spec = std::mem::take(&mut s.vector_input);
                s.add_vector(&spec);
            }
        });
        if !s.vectors.is_empty() && !has_model {
            ui.colored_label(ui.visuals().warn_fg_color, "needs a loaded model");
        }

        ui.add_space(6.0);
        ui.strong("Group by");
        let keys = available_group_keys(data);
        if keys.is_empty() {
            ui.weak("no judge, scenario or other short column in this data");
        }
        ui.horizontal_wrapped(|ui| {
            for (k, n) in &keys {
                let mut on = s.group_by.contains(k);
                let r = ui
                    .checkbox(&mut on, k.as_str())
                    .on_hover_text(format!("{n} distinct value(s)"));
                if r.changed() {
                    if on {
                        s.group_by.push(k.clone());
                    } else {
                        s.group_by.retain(|x| x != k);
                    }
                }
            }
        });

        ui.add_space(6.0);
        ui.strong("Model");
        ui.horizontal(|ui| {
            ui.radio_value(&mut s.sampler, Sampler::Laplace, "Laplace")
                .on_hover_text("MAP + Laplace approximation: milliseconds, means within 0.05 of NUTS on the test fixture");
            ui.radio_value(&mut s.sampler, Sampler::Nuts, "NUTS")
                .on_hover_text("Posterior sampling (GAIR: 500 warm-up, 2000 draws x 4 chains): runs in the background, with R-hat and ESS");
        });
        egui::Grid::new("dissect_params")
            .num_columns(2)
            .spacing([8.0, 4.0])
            .show(ui, |ui| {
                widgets::param(
                    ui,
                    "Prior scale b",
                    &mut s.prior_scale,
                    0.01..=10.0,
                    0.1,
                    PRIOR_TIP,
                );
                ui.end_row();
                widgets::param(ui, "Folds", &mut s.folds, 1..=20, 1, FOLDS_TIP);
                ui.end_row();
                widgets::param(ui, "Seed", &mut s.seed, 0..=9999, 1, SEED_TIP);
                ui.end_row();
                if s.sampler == Sampler::Nuts {
                    let d = NutsConfig::default();
                    widgets::param(
                        ui,
                        "Warm-up",
                        &mut s.nuts.warmup,
                        10..=5000,
                        d.warmup,
                        WARMUP_TIP,
                    );
                    ui.end_row();
                    widgets::param(
                        ui,
                        "Draws",
                        &mut s.nuts.draws,
                        10..=20000,
                        d.draws,
                        DRAWS_TIP,
                    );
                    ui.end_row();
                    widgets::param(
                        ui,
                        "Chains",
                        &mut s.nuts.chains,
                        2..=8,
                        d.chains,
                        CHAINS_TIP,
                    );
                    ui.end_row();
                }
            });
        if ui
            .small_button("b = 1.0")
            .on_hover_text("A wider prior, for recovering the size of planted weights")
            .clicked()
        {
            s.prior_scale = 1.0;
        }
        ui.add_enabled(
            s.sampler == Sampler::Laplace,
            egui::Checkbox::new(&mut s.live, "live refit"),
        )
        .on_hover_text("Refit (Laplace) whenever a setting changes; off for model-backed factors");
        let running = s.is_running(&state.jobs);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!running, egui::Button::new("Fit"))
                .on_hover_text("Fit now (Ctrl+Enter)")
                .clicked()
                || (!running
                    && ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::Enter)))
            {
                ds::start_fit(state);
            }
            if running {
                ui.spinner();
                if ui.button("Cancel fit").clicked() {
                    if let Some(j) = state.dissect.job {
                        state.jobs.cancel(j);
                    }
                }
            }
        });
        if let Some(e) = &state.dissect.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.add_space(6.0);
        ui.strong("Export report");
        let has = state.dissect.output.is_some();
        ui.add_enabled_ui(has, |ui| {
            let fmts = ExportFormat::ALL.map(ExportFormat::format);
            let chosen = widgets::export_menu(ui, "Export report...", &fmts);
            if let Some(fmt) = ExportFormat::ALL
                .into_iter()
                .find(|f| Some(f.format()) == chosen)
            {
                ds::export(state, fmt);
            }
        })
        .response
        .on_disabled_hover_text("Fit first");
        if let Some(p) = &state.dissect.last_export {
            ui.weak(format!("last: {}", p.display()));
        }
    }

    fn results(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut AppState,
        data: &[crate::data::Judgement],
    ) {
        let Some(out) = state.dissect.output.clone() else {
            ui.weak("No fit yet.");
            return;
        };
        let r = &out.result;
        let stale = state.dissect.fitted.as_ref().map(|f| &f.1) != Some(&state.dissect.config());
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.view, View::Forest, "Forest plot");
            ui.selectable_value(&mut self.view, View::TopPairs, "Top pairs");
            ui.selectable_value(&mut self.view, View::Judges, "Judge vs judge");
            ui.selectable_value(&mut self.view, View::Waterfall, "Waterfall");
            if stale {
                ui.weak("(settings changed since this fit)");
            }
        });
        ui.weak(format!(
            "{} group(s), {} factor(s), {} pairs ({} ties dropped){}",
            r.groups.len(),
            r.factor_definitions.len(),
            out.design.ids.len(),
            r.settings.n_ties,
            if r.settings.dropped_factors.is_empty() {
                String::new()
            } else {
                format!(
                    "; constant factors dropped: {}",
                    r.settings.dropped_factors.join(", ")
                )
            }
        ));
        let clicked = match self.view {
            View::Forest => forest(ui, state, &out),
            View::TopPairs => {
                top_pairs(ui, state, &out, data);
                None
            }
            View::Judges => {
                self.judges(ui, state, &out);
                None
            }
            View::Waterfall => {
                self.waterfall(ui, state, &out);
                None
            }
        };
        if let Some(name) = clicked {
            // Factor → its top pairs (a request, so other panels can link to a factor too).
            state.navigate(PanelId::Dissect, Selection::Factor { name });
        }
    }

    fn judges(&mut self, ui: &mut egui::Ui, state: &mut AppState, out: &DissectOutput) {
        let r = &out.result;
        let n = r.groups.len();
        if n < 2 {
            ui.label("Group by judge (or another key with several values) to compare groups.");
            return;
        }
        ui.horizontal(|ui| {
            ui.label("Similarity of weight vectors:");
            ui.selectable_value(&mut self.spearman, false, "Pearson");
            ui.selectable_value(&mut self.spearman, true, "Spearman");
        });
        let m = if self.spearman {
            &r.similarity.spearman
        } else {
            &r.similarity.pearson
        };
        let rect = matrix(ui, &r.similarity.labels, m);
        let title = format!(
            "Similarity of weight vectors ({})",
            if self.spearman { "Spearman" } else { "Pearson" }
        );
        widgets::export_plot_menu(ui, state, rect, "dissect-similarity", || {
            crate::report::svg::heatmap(&crate::report::svg::Heatmap {
                title,
                rows: r.similarity.labels.clone(),
                cols: r.similarity.labels.clone(),
                values: m.clone(),
                min: -1.0,
                max: 1.0,
            })
        });
        ui.add_space(4.0);
        ui.strong("Agreement of factor rankings (Kendall τ-b)");
        egui::Grid::new("kendall").striped(true).show(ui, |ui| {
            ui.strong("groups");
            ui.strong("τ");
            ui.strong("credibly opposite signs");
            ui.end_row();
            for p in r.agreement.pairs.iter().take(20) {
                ui.label(format!("{} vs {}", p.a, p.b));
                ui.label(format!("{:.3}", p.kendall_tau));
                ui.label(if p.opposite_sign_factors.is_empty() {
                    "-".to_string()
                } else {
                    p.opposite_sign_factors.join(", ")
                });
                ui.end_row();
            }
        });
        ui.add_space(4.0);
        let (a, b) = &mut state.dissect.compare;
        ui.horizontal(|ui| {
            ui.label("Scatter:");
            for (id, axis, v) in [("cmp_a", "x", &mut *a), ("cmp_b", "y", &mut *b)] {
                let l = ui.label(axis);
                egui::ComboBox::from_id_salt(id)
                    .selected_text(r.groups.get(*v).map(|g| g.label.as_str()).unwrap_or("?"))
                    .show_ui(ui, |ui| {
                        for (i, g) in r.groups.iter().enumerate() {
                            ui.selectable_value(v, i, g.label.as_str());
                        }
                    })
                    .response
                    .labelled_by(l.id);
            }
        });
        let (ga, gb) = match (r.groups.get(*a), r.groups.get(*b)) {
            (Some(x), Some(y)) => (x, y),
            _ => return,
        };
        let pts: Vec<[f64; 2]> = ga
            .factors
            .iter()
            .zip(&gb.factors)
            .map(|(x, y)| [x.mean, y.mean])
            .collect();
        let lim = pts
            .iter()
            .flat_map(|p| [p[0].abs(), p[1].abs()])
            .fold(0.1f64, f64::max)
            * 1.1;
        Plot::new("judge_scatter")
            .height(260.0)
            .data_aspect(1.0)
            .x_axis_label(ga.label.clone())
            .y_axis_label(gb.label.clone())
            .include_x(-lim)
            .include_x(lim)
            .include_y(-lim)
            .include_y(lim)
            .show(ui, |p| {
                p.line(
                    Line::new("y = x", PlotPoints::from(vec![[-lim, -lim], [lim, lim]]))
                        .color(egui::Color32::GRAY),
                );
                p.hline(HLine::new("", 0.0).color(egui::Color32::DARK_GRAY));
                p.vline(VLine::new("", 0.0).color(egui::Color32::DARK_GRAY));
                p.points(Points::new("factors", pts.clone()).radius(4.0));
                for (f, q) in ga.factors.iter().zip(&pts) {
                    p.text(
                        Text::new("", (*q).into(), f.label.clone())
                            .anchor(egui::Align2::LEFT_BOTTOM),
                    );
                }
            });
    }

    /// Per-pair contribution waterfall under the pair's group weights.
    fn waterfall(&mut self, ui: &mut egui::Ui, state: &mut AppState, out: &DissectOutput) {
        let n = out.design.ids.len();
        if n == 0 {
            return;
        }
        let s = &mut state.dissect;
        let ids = &out.design.ids;
        ui.horizontal(|ui| {
            if ui
                .small_button("<")
                .on_hover_text("Previous pair")
                .clicked()
            {
                s.selected_pair = s.selected_pair.saturating_sub(1);
            }
            let l = ui.label("Pair");
            let cur = s.selected_pair.min(n - 1);
            egui::ComboBox::from_id_salt("waterfall_pair")
                .selected_text(format!("{} ({} of {n})", ids[cur], cur + 1))
                .height(300.0)
                .show_ui(ui, |ui| {
                    let q = self.pair_search.trim().to_lowercase();
                    let hits = ids
                        .iter()
                        .enumerate()
                        .filter(|(_, id)| q.is_empty() || id.to_lowercase().contains(&q))
                        .take(200);
                    for (i, id) in hits {
                        ui.selectable_value(&mut s.selected_pair, i, id.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            if ui.small_button(">").on_hover_text("Next pair").clicked() {
                s.selected_pair = (s.selected_pair + 1).min(n - 1);
            }
            let l = ui.label("find");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.pair_search)
                        .desired_width(120.0)
                        .hint_text("pair id"),
                )
                .labelled_by(l.id)
                .on_hover_text(
                    "Type part of a pair id: the list shows the matches; Enter jumps to the first",
                );
            if edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                let q = self.pair_search.trim().to_lowercase();
                if let Some(i) = ids.iter().position(|id| id.to_lowercase().contains(&q)) {
                    s.selected_pair = i;
                }
            }
        });
        let Some(w) = s.waterfall() else {
            return;
        };
        kv_grid(
            ui,
            "waterfall_summary",
            &[
                ("Group", w.group.clone()),
                ("logit = sum of w*x", format!("{:.3}", w.logit)),
                ("P(A preferred)", format!("{:.3}", w.prob_a)),
                (
                    "Observed",
                    if w.a_preferred {
                        "A preferred"
                    } else {
                        "B preferred"
                    }
                    .to_string(),
                ),
            ],
        );
        let mut bars = Vec::new();
        let mut cum = 0.0;
        for (i, st) in w.steps.iter().enumerate() {
            let color = if st.contribution >= 0.0 {
                egui::Color32::from_rgb(44, 160, 44)
            } else {
                egui::Color32::from_rgb(214, 39, 40)
            };
            bars.push(
                Bar::new(i as f64, st.contribution)
                    .base_offset(cum)
                    .fill(color)
                    .name(format!(
                        "{}: x = {:.2}, w = {:.3}",
                        st.label, st.x, st.weight
                    ))
                    .width(0.7),
            );
            cum += st.contribution;
        }
        bars.push(
            Bar::new(w.steps.len() as f64, w.logit)
                .fill(egui::Color32::from_rgb(31, 119, 180))
                .name("total logit")
                .width(0.7),
        );
        let names: Vec<String> = w
            .steps
            .iter()
            .map(|s| clip(&s.label, 14))
            .chain(["total".to_string()])
            .collect();
        let k = names.len();
        let plot = ui.scope(|ui| {
            Plot::new("waterfall")
                .height(260.0)
                .allow_scroll(false)
                .y_axis_label("contribution to logit P(A)")
                .x_grid_spacer(move |_| {
                    (0..k)
                        .map(|i| egui_plot::GridMark {
                            value: i as f64,
                            step_size: 1.0,
                        })
                        .collect()
                })
                .x_axis_formatter(move |m, _| {
                    let i = m.value.round();
                    if (m.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                        names[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .show(ui, |p| {
                    p.hline(HLine::new("", 0.0).color(egui::Color32::GRAY));
                    p.bar_chart(BarChart::new("contributions", bars));
                });
        });
        let stem = format!("waterfall-{}", w.pair_id);
        widgets::export_plot_menu(ui, state, plot.response.rect, &stem, || {
            crate::dissect::report::waterfall_svg(&w)
        });
        if w.steps.is_empty() {
            ui.weak("Every factor is equal for A and B in this pair.");
        }
    }
}

/// Forest plot: one row per factor, one coloured point with its 95% interval per group; the
/// group legend sits above the plot (never over the rows). Returns the factor clicked (in the
/// plot or in the table), for its top pairs.
fn forest(ui: &mut egui::Ui, state: &mut AppState, out: &DissectOutput) -> Option<String> {
    let r = &out.result;
    let labels: Vec<String> = r
        .factor_definitions
        .iter()
        .map(|f| f.label.clone())
        .collect();
    let nf = labels.len();
    let ng = r.groups.len().max(1);
    let labels_fmt = labels.clone();
    let height = (nf as f32 * 26.0 + 60.0).clamp(200.0, 560.0);
    let mut clicked = None;
    ui.horizontal_wrapped(|ui| {
        for (gi, g) in r.groups.iter().enumerate() {
            let color = GROUP_COLORS[gi % GROUP_COLORS.len()];
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, color);
            ui.label(&g.label);
        }
        ui.weak("(click a factor for its top pairs)");
    });
    let plot = ui.scope(|ui| {
        Plot::new("forest")
            .height(height)
            .x_axis_label("weight (log-odds per unit of the feature)")
            .y_axis_min_width(150.0)
            .allow_scroll(false)
            .y_grid_spacer(move |_| {
                (0..nf)
                    .map(|i| egui_plot::GridMark {
                        value: i as f64,
                        step_size: 1.0,
                    })
                    .collect()
            })
            .y_axis_formatter(move |m, _| {
                let i = m.value.round();
                if (m.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels_fmt.len() {
                    labels_fmt[nf - 1 - i as usize].clone()
                } else {
                    String::new()
                }
            })
            .include_y(-0.6)
            .include_y(nf as f64 - 0.4)
            .show(ui, |p| {
                p.vline(VLine::new("0", 0.0).color(egui::Color32::GRAY));
                for (gi, g) in r.groups.iter().enumerate() {
                    let color = GROUP_COLORS[gi % GROUP_COLORS.len()];
                    let off = if ng > 1 {
                        (gi as f64 - (ng - 1) as f64 / 2.0) * 0.6 / ng as f64
                    } else {
                        0.0
                    };
                    let mut pts = Vec::new();
                    for (j, f) in g.factors.iter().enumerate() {
                        let y = (nf - 1 - j) as f64 - off;
                        p.line(
                            Line::new(
                                g.label.clone(),
                                PlotPoints::from(vec![[f.lo95, y], [f.hi95, y]]),
                            )
                            .color(color)
                            .width(2.0),
                        );
                        pts.push([f.mean, y]);
                    }
                    p.points(Points::new(g.label.clone(), pts).color(color).radius(3.5));
                }
            })
    });
    let pr = &plot.inner;
    if pr.response.clicked() {
        if let Some(pos) = pr.response.interact_pointer_pos() {
            let y = pr.transform.value_from_position(pos).y.round();
            if y >= 0.0 && (y as usize) < nf {
                clicked = Some(r.factor_definitions[nf - 1 - y as usize].name.clone());
            }
        }
    }
    let rect = plot.response.rect;
    widgets::export_plot_menu(ui, state, rect, "dissect-forest", || {
        crate::dissect::report::forest_svg(r)
    });
    // Table of the numbers behind the plot; factor names link to their top pairs.
    egui::CollapsingHeader::new("Numbers")
        .default_open(false)
        .show(ui, |ui| {
            egui::Grid::new("forest_numbers")
                .striped(true)
                .show(ui, |ui| {
                    for h in [
                        "group",
                        "factor",
                        "mean",
                        "95% interval",
                        "pref %",
                        "R-hat",
                        "ESS",
                    ] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for g in &r.groups {
                        for f in &g.factors {
                            ui.label(&g.label);
                            if ui
                                .link(&f.label)
                                .on_hover_text("Show this factor's top pairs")
                                .clicked()
                            {
                                clicked = Some(f.name.clone());
                            }
                            ui.label(format!("{:.3}", f.mean));
                            ui.label(format!("[{:.3}, {:.3}]", f.lo95, f.hi95));
                            ui.label(format!("{:.1}", f.prob_preferred));
                            ui.label(f.rhat.map(|x| format!("{x:.3}")).unwrap_or("-".into()));
                            ui.label(f.ess.map(|x| format!("{x:.0}")).unwrap_or("-".into()));
                            ui.end_row();
                        }
                    }
                });
        });
    clicked
}

/// Factor -> its top pairs: the pairs where the selected factor differs most between the two
/// responses, both responses side by side with the winner marked and the factor's values.
fn top_pairs(
    ui: &mut egui::Ui,
    state: &mut AppState,
    out: &DissectOutput,
    data: &[crate::data::Judgement],
) {
    let s = &mut state.dissect;
    let factors = &out.design.factors;
    if factors.is_empty() {
        return;
    }
    ui.horizontal(|ui| {
        let l = ui.label("Factor");
        let current = s
            .selected_factor
            .as_deref()
            .and_then(|n| out.factor_index(n))
            .map(|i| factors[i].label.as_str())
            .unwrap_or("(pick one)");
        egui::ComboBox::from_id_salt("top_pairs_factor")
            .selected_text(current)
            .show_ui(ui, |ui| {
                for f in factors {
                    let on = s.selected_factor.as_deref() == Some(f.name.as_str());
                    if ui.selectable_label(on, &f.label).clicked() {
                        s.selected_factor = Some(f.name.clone());
                    }
                }
            })
            .response
            .labelled_by(l.id);
        let l = ui.label("show");
        ui.add(egui::DragValue::new(&mut s.top_k).range(1..=100))
            .labelled_by(l.id)
            .on_hover_text("How many pairs to list");
    });
    let Some((fi, pairs)) = s.top_pairs() else {
        ui.weak("Pick a factor here, or click one in the forest plot.");
        return;
    };
    let f = &factors[fi];
    ui.weak(format!(
        "{}: {}. Ranked by |difference A - B|; pairs where it is equal are left out.",
        f.label, f.definition
    ));
    if pairs.is_empty() {
        ui.weak("No pair differs in this factor.");
    }
    for p in &pairs {
        let Some(j) = out.judgement_of(p.pair, data) else {
            continue;
        };
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.strong(format!("pair {}", p.id));
                ui.label(format!("winner: {}", if p.a_preferred { "A" } else { "B" }));
                if let (Some(a), Some(b)) = (p.value_a, p.value_b) {
                    ui.label(format!("{}: A {a:.3}, B {b:.3}", f.name));
                }
                ui.label(format!("x = {:.3}", p.x));
                ui.label(format!("w*x = {:.3}", p.contribution))
                    .on_hover_text("Contribution to logit P(A preferred) under the pair's group");
                ui.weak(if p.winner_has_more {
                    "the winner has more of it"
                } else {
                    "the winner has less of it"
                });
                if ui
                    .small_button("Waterfall")
                    .on_hover_text("Every factor's contribution for this pair")
                    .clicked()
                {
                    s.selected_pair = p.pair;
                }
            });
            ui.columns(2, |cols| {
                for (col, (side, text, won)) in cols.iter_mut().zip([
                    ("A", &j.response_a, p.a_preferred),
                    ("B", &j.response_b, !p.a_preferred),
                ]) {
                    let head = if won {
                        egui::RichText::new(format!("{side} (won)")).strong()
                    } else {
                        egui::RichText::new(side)
                    };
                    col.label(head);
                    col.add(egui::Label::new(clip(text, 600)).wrap());
                }
            });
        });
    }
}

/// A labelled matrix of values in [-1, 1], coloured blue (−1) to red (+1).
fn matrix(ui: &mut egui::Ui, labels: &[String], m: &[Vec<f64>]) -> egui::Rect {
    let n = labels.len();
    let cell = 44.0f32;
    let label_w = 150.0f32;
    let (rect, _) = ui.allocate_exact_size(
        egui::vec2(label_w + cell * n as f32, cell * n as f32 + 4.0),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let font = egui::FontId::proportional(11.0);
    let text_color = ui.visuals().text_color();
    for (i, label) in labels.iter().enumerate().take(n) {
        let y = rect.top() + cell * i as f32;
        painter.text(
            egui::pos2(rect.left() + label_w - 6.0, y + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            clip(label, 22),
            font.clone(),
            text_color,
        );
        for j in 0..n {
            let v = m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(f64::NAN);
            let c = if v.is_nan() {
                egui::Color32::GRAY
            } else {
                let t = v.clamp(-1.0, 1.0) as f32;
                let (r, g, b) = if t >= 0.0 {
                    (1.0, 1.0 - t, 1.0 - t)
                } else {
                    (1.0 + t, 1.0 + t, 1.0)
                };
                egui::Color32::from_rgb(
                    (r * 220.0) as u8 + 35,
                    (g * 220.0) as u8 + 35,
                    (b * 220.0) as u8 + 35,
                )
            };
            let r = egui::Rect::from_min_size(
                egui::pos2(rect.left() + label_w + cell * j as f32, y),
                egui::vec2(cell - 2.0, cell - 2.0),
            );
            painter.rect_filled(r, 2.0, c);
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                if v.is_nan() {
                    "-".to_string()
                } else {
                    format!("{v:.2}")
                },
                font.clone(),
                egui::Color32::BLACK,
            );
        }
    }
    rect
}

/// The last `n` characters of `s`, with "..." in front when cut (paths: the file name shows).
fn clip_start(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len > n {
        format!("...{}", s.chars().skip(len - n).collect::<String>())
    } else {
        s.to_string()
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}
