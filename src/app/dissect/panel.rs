//! Dissect panel: pick factor sources and group keys, fit (Laplace live, NUTS on a background
//! job with progress and cancel), and read the result: a forest plot of weights with 95%
//! intervals per factor and group, a judge-versus-judge view (similarity matrix, Kendall τ,
//! weight scatter), a contribution waterfall for one pair, and report export. All computation
//! is `crate::dissect` (through `crate::app::dissect`).
use eframe::egui;

use super::state::{self as ds, ExportFormat};
use super::style::clip_start;
use super::{causal, forest, groups, judges, waterfall};
use crate::app::command::AppCommand;
use crate::app::dialogs::DialogRequest;
use crate::app::nav::{PanelId, Selection};
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::app::view::Panel;
use crate::app::widgets;
use crate::dissect::fit::available_group_keys;
use crate::dissect::{NutsConfig, Sampler};
use crate::numeric::cluster::ClusterCount;

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
    Groups,
    Causal,
}

/// View state of the Dissect panel.
#[derive(Default)]
pub struct DissectPanel {
    view: View,
    spearman: bool,
    /// Text typed to find a pair for the waterfall.
    pair_search: String,
    /// When a factor-source text field last changed: live refits wait until typing pauses.
    typed_at: Option<std::time::Instant>,
}

/// Pause after the last keystroke in a factor-source field before a live refit.
const TYPING_PAUSE: std::time::Duration = std::time::Duration::from_millis(600);

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
        ui.horizontal_wrapped(|ui| {
            match &active {
                Some((p, d)) => {
                    let full = p.display().to_string();
                    ui.label(format!(
                        "Data: {} ({} pairs)",
                        clip_start(&full, 70),
                        d.len()
                    ))
                    .on_hover_text(full);
                }
                None => {
                    ui.weak("No dataset open.");
                }
            }
            if ui.button("Open data…").clicked() {
                let filters = [FileFilter::datasets()];
                state.ask(
                    DialogRequest::open("Dataset to dissect", &filters),
                    |state, p| state.send(AppCommand::OpenDataset(p)),
                );
            }
        });
        let Some((path, data)) = active else {
            return;
        };
        state.dissect.defaults_for_data(&path, &data);
        ui.separator();
        // Settings in a fixed-width column, results in all the width that is left (equal
        // columns gave the forest plot and its labels only half the window).
        let avail = ui.available_rect_before_wrap();
        let left_w = 360.0f32.min(avail.width() * 0.4);
        let gap = ui.spacing().item_spacing.x * 2.0;
        let left_rect = egui::Rect::from_min_size(avail.min, egui::vec2(left_w, avail.height()));
        let right_rect = egui::Rect::from_min_max(
            egui::pos2(avail.min.x + left_w + gap, avail.min.y),
            avail.max,
        );
        let column = |rect| {
            egui::UiBuilder::new()
                .max_rect(rect)
                .layout(egui::Layout::top_down(egui::Align::Min))
        };
        let mut left = ui.new_child(column(left_rect));
        self.settings(&mut left, state, &data);
        let mut right = ui.new_child(column(right_rect));
        self.results(&mut right, state, &data);
        let h = left.min_rect().height().max(right.min_rect().height());
        ui.advance_cursor_after_rect(egui::Rect::from_min_size(
            avail.min,
            egui::vec2(avail.width(), h),
        ));
        // Live refit: Laplace, no model-backed source, settings changed, nothing running,
        // complete inputs (no half-typed folder) and a pause in typing (debounced).
        let s = &state.dissect;
        let changed = s.fitted.as_ref() != Some(&(path.clone(), s.config()))
            || s.fitted_grouping != s.grouping_config();
        let typing = self
            .typed_at
            .map(|t| TYPING_PAUSE.saturating_sub(t.elapsed()))
            .filter(|left| !left.is_zero());
        if let Some(left) = typing {
            ui.ctx().request_repaint_after(left);
        }
        if s.live
            && s.sampler == Sampler::Laplace
            && !s.needs_model()
            && changed
            && typing.is_none()
            && s.live_blocker().is_none()
            && !s.is_running(&state.jobs)
        {
            self.typed_at = None;
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
            let r = ui.add(
                egui::TextEdit::singleline(&mut s.llm)
                    .desired_width(200.0)
                    .hint_text("friendly+clear+step_by_step"),
            );
            if r.changed() {
                self.typed_at = Some(std::time::Instant::now());
            }
            r.labelled_by(l.id)
            .on_hover_text(
                "Factor names joined by +: the loaded model rates both responses 0-3 on each \
                 (GAIR's pairwise rating, both orders averaged; cached on disk). Slow: 4 forward passes per pair and factor.",
            );
        });
        if let Some(why) = s.live_blocker() {
            ui.weak(why);
        }
        if !s.llm.trim().is_empty() && !has_model {
            ui.colored_label(ui.visuals().warn_fg_color, "needs a loaded model");
        }
        ui.horizontal(|ui| {
            let l = ui.label("SAE folder:");
            let r = ui.add(
                egui::TextEdit::singleline(&mut state.dissect.sae_dir)
                    .desired_width(170.0)
                    .hint_text("steerlab sae run --out"),
            );
            if r.changed() {
                self.typed_at = Some(std::time::Instant::now());
            }
            r.labelled_by(l.id)
            .on_hover_text("Features of a `steerlab sae run` output folder (activations on e(A) - e(B), matched by pair id)");
            if ui.small_button("…").on_hover_text("Pick the SAE output folder").clicked() {
                state.ask(DialogRequest::folder("SAE output folder"), |state, p| {
                    state.dissect.sae_dir = p.display().to_string();
                });
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
        ui.horizontal_wrapped(|ui| {
            ui.checkbox(&mut s.grouping_on, "Find annotator groups")
                .on_hover_text(
                    "Fit each annotator's own weights (MAP + Laplace), cluster them with seeded \
                     k-means (linfa) into K groups or K by BIC, refit each group with intervals \
                     and compare with the pooled fit (view: Annotator groups)",
                );
        });
        if s.grouping_on {
            ui.horizontal_wrapped(|ui| {
                let l = ui.label("Annotator column");
                egui::ComboBox::from_id_salt("annotator_column")
                    .selected_text(s.annotator_column.clone())
                    .show_ui(ui, |ui| {
                        for (k, n) in &keys {
                            ui.selectable_value(
                                &mut s.annotator_column,
                                k.clone(),
                                format!("{k} ({n})"),
                            );
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            ui.horizontal_wrapped(|ui| {
                let mut auto = s.annotator_k == ClusterCount::Auto;
                if ui
                    .checkbox(&mut auto, "K auto (BIC)")
                    .on_hover_text("Choose the number of groups by BIC (1 = no groups found)")
                    .changed()
                {
                    s.annotator_k = if auto {
                        ClusterCount::Auto
                    } else {
                        ClusterCount::Fixed(2)
                    };
                }
                if let ClusterCount::Fixed(mut k) = s.annotator_k {
                    let l = ui.label("K");
                    ui.add(egui::DragValue::new(&mut k).range(2..=20))
                        .labelled_by(l.id)
                        .on_hover_text("Number of annotator groups");
                    s.annotator_k = ClusterCount::Fixed(k);
                }
                let l = ui.label("Min pairs");
                ui.add(egui::DragValue::new(&mut s.min_annotator_pairs).range(1..=100_000))
                    .labelled_by(l.id)
                    .on_hover_text("Annotators with fewer non-tie pairs are not grouped");
            });
        }

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
            ui.selectable_value(&mut self.view, View::Groups, "Annotator groups");
            ui.selectable_value(&mut self.view, View::Causal, "Causal");
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
            View::Forest => forest::forest(ui, state, &out),
            View::TopPairs => {
                forest::top_pairs(ui, state, &out, data);
                None
            }
            View::Judges => {
                judges::show(ui, state, &out, &mut self.spearman);
                None
            }
            View::Waterfall => {
                waterfall::show(ui, state, &out, &mut self.pair_search);
                None
            }
            View::Groups => {
                groups::show(ui, state, &out);
                None
            }
            View::Causal => {
                causal::show(ui, state);
                None
            }
        };
        if let Some(name) = clicked {
            // Factor → its top pairs (a request, so other panels can link to a factor too).
            state.navigate(PanelId::Dissect, Selection::Factor { name });
        }
    }
}
