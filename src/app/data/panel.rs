//! Data panel: open a preference dataset, see the detected format and layout, a virtualised
//! preview of its rows, the validation problems with their line numbers, a column-mapping step
//! when the layout is not recognised, and train/test split controls.
use eframe::egui;
use std::path::PathBuf;

use super::state::{self as dataset, DataView, OpenOptions};
use crate::app::dialogs::DialogRequest;
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::app::view::Panel;
use crate::app::widgets::{kv_grid, recent_links, PathField, PickKind};
use crate::data::{ColumnMapping, Field, Layout};

/// Cell width in the preview table (points).
const CELL_W: f32 = 240.0;
/// Characters of a cell shown before truncation (the full text is in the tooltip).
const CELL_CHARS: usize = 120;

/// View state of the Data panel.
pub struct DataPanel {
    path: PathField,
    /// The dataset the path field was last synced to (it shows what is loaded).
    shown: Option<PathBuf>,
    skip_invalid: bool,
    /// Layout chosen in the mapping step (index into [`Layout::ALL`]).
    map_layout: usize,
    /// Column chosen for each target of the chosen layout ("" = not mapped).
    map_columns: Vec<String>,
    test_fraction: f64,
    seed: u64,
    by_prompt: bool,
}

impl Default for DataPanel {
    fn default() -> Self {
        Self {
            path: PathField::default(),
            shown: None,
            skip_invalid: true,
            map_layout: 0,
            map_columns: Vec::new(),
            test_fraction: 0.2,
            seed: 1,
            by_prompt: true,
        }
    }
}

impl DataPanel {
    fn summary(&self, ui: &mut egui::Ui, d: &DataView) {
        kv_grid(
            ui,
            "data_summary",
            &[
                ("File", d.path.display().to_string()),
                ("Format", d.format.clone()),
                (
                    "Layout",
                    d.layout
                        .map(layout_title)
                        .unwrap_or("not recognised")
                        .to_string(),
                ),
                ("Columns", d.columns.join(", ")),
                ("Rows read", d.rows.to_string()),
                ("Valid records", d.records.len().to_string()),
                (
                    if d.opened_with.skip_invalid {
                        "Skipped rows"
                    } else {
                        "Invalid rows"
                    },
                    d.invalid.to_string(),
                ),
            ],
        );
        if !d.opened_with.mapping.is_empty() {
            ui.weak(format!("Mapping: {}", d.opened_with.mapping.to_spec()));
        }
    }

    /// The split choice of a Hugging Face datasets folder: which split is read, and a selector
    /// when the folder has several (choosing one reopens the folder with it).
    fn split_choice(&mut self, ui: &mut egui::Ui, d: &DataView) -> Option<Action> {
        if d.hf_splits.is_empty() {
            return None;
        }
        let current = d.hf_split.clone().unwrap_or_default();
        let title = |name: &str| {
            d.hf_splits
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.title())
                .unwrap_or_else(|| name.to_string())
        };
        let mut chosen = current.clone();
        ui.horizontal(|ui| {
            let l = ui.label("Folder split");
            if d.hf_splits.len() > 1 {
                egui::ComboBox::from_id_salt("hf_split")
                    .selected_text(title(&current))
                    .show_ui(ui, |ui| {
                        for s in &d.hf_splits {
                            ui.selectable_value(&mut chosen, s.name.clone(), s.title());
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text(
                        "The folder's splits (Hugging Face datasets layout); choosing one reads it",
                    );
            } else {
                ui.label(title(&current)).labelled_by(l.id);
            }
            if let Some(src) = &d.preview_source {
                ui.weak(format!(
                    "preview from {}",
                    src.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
            }
        });
        (chosen != current).then(|| {
            Action::Open(
                d.path.clone(),
                OpenOptions {
                    mapping: d.opened_with.mapping.clone(),
                    skip_invalid: d.opened_with.skip_invalid,
                    hf_split: Some(chosen),
                },
            )
        })
    }

    fn mapping_step(&mut self, ui: &mut egui::Ui, d: &DataView) -> Option<OpenOptions> {
        ui.add_space(6.0);
        ui.strong("Column mapping");
        ui.label(
            "The columns of this file match no known layout. Say what kind of records it holds and \
             which column holds each field; steerlab never guesses.",
        );
        let before = self.map_layout;
        ui.horizontal(|ui| {
            let l = ui.label("Records are");
            egui::ComboBox::from_id_salt("map_layout")
                .selected_text(layout_title(Layout::ALL[self.map_layout]))
                .show_ui(ui, |ui| {
                    for (i, l) in Layout::ALL.iter().enumerate() {
                        ui.selectable_value(&mut self.map_layout, i, layout_title(*l));
                    }
                })
                .response
                .labelled_by(l.id);
        });
        let layout = Layout::ALL[self.map_layout];
        let fields: Vec<Field> = layout
            .required()
            .iter()
            .chain(layout.optional())
            .copied()
            .collect();
        let n_required = layout.required().len();
        let n = fields.len();
        if before != self.map_layout || self.map_columns.len() != n {
            self.map_columns = vec![String::new(); n];
            // Pre-select columns whose name is exactly the target's (no fuzzy guessing).
            for (i, f) in fields.iter().enumerate() {
                if d.columns.iter().any(|c| c == f.name()) {
                    self.map_columns[i] = f.name().to_string();
                }
            }
        }
        egui::Grid::new("mapping_grid")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                for (i, f) in fields.iter().enumerate() {
                    let t = f.name();
                    let optional = i >= n_required;
                    let l = ui.label(if optional {
                        format!("{t} (optional)")
                    } else {
                        t.to_string()
                    });
                    let sel = &mut self.map_columns[i];
                    let shown = if sel.is_empty() {
                        "—".to_string()
                    } else {
                        sel.clone()
                    };
                    egui::ComboBox::from_id_salt(("map_col", i))
                        .selected_text(shown)
                        .show_ui(ui, |ui| {
                            ui.selectable_value(sel, String::new(), "—");
                            for c in &d.columns {
                                ui.selectable_value(sel, c.clone(), c);
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    ui.end_row();
                }
            });
        let missing: Vec<_> = fields[..n_required]
            .iter()
            .zip(&self.map_columns)
            .filter(|(_, c)| c.is_empty())
            .map(|(f, _)| f.name())
            .collect();
        let mut out = None;
        ui.horizontal(|ui| {
            let apply = ui.add_enabled(missing.is_empty(), egui::Button::new("Apply mapping"));
            if !missing.is_empty() {
                ui.weak(format!("map: {}", missing.join(", ")));
            }
            if apply.clicked() {
                let columns = fields
                    .iter()
                    .zip(&self.map_columns)
                    .filter(|(_, c)| !c.is_empty())
                    .map(|(f, c)| (*f, c.clone()))
                    .collect();
                let mapping = ColumnMapping {
                    layout: Some(layout),
                    columns,
                };
                out = Some(OpenOptions {
                    mapping,
                    skip_invalid: self.skip_invalid,
                    hf_split: d.hf_split.clone(),
                });
            }
        });
        out
    }

    fn problems(&self, ui: &mut egui::Ui, d: &DataView) {
        if d.problems.is_empty() {
            return;
        }
        ui.add_space(6.0);
        let title = if d.opened_with.skip_invalid {
            format!("Skipped rows ({})", d.invalid)
        } else {
            "Stopped at the first invalid row (tick \"Skip invalid rows\" to read past it)"
                .to_string()
        };
        ui.colored_label(
            ui.visuals().warn_fg_color,
            egui::RichText::new(title).strong(),
        );
        let row_h = ui.text_style_height(&egui::TextStyle::Body);
        egui::ScrollArea::vertical()
            .id_salt("problems")
            .max_height(140.0)
            .auto_shrink([false, true])
            .show_rows(ui, row_h, d.problems.len(), |ui, range| {
                for p in &d.problems[range] {
                    // The reason may name the field already ("field `x`: ..."): once only.
                    let (field, reason) = match &p.field {
                        Some(f) => {
                            let named = format!("field `{f}`: ");
                            let reason = p.reason.strip_prefix(&named).unwrap_or(&p.reason);
                            (format!(" · field `{f}`"), reason)
                        }
                        None => (String::new(), p.reason.as_str()),
                    };
                    ui.label(format!("{}{field}: {reason}", p.loc));
                }
            });
    }

    fn preview(&self, ui: &mut egui::Ui, d: &DataView) {
        if d.preview.is_empty() {
            return;
        }
        ui.add_space(6.0);
        if d.preview_truncated {
            ui.strong(format!("Preview (first {} rows)", d.preview.len()));
        } else {
            ui.strong(format!("Preview ({} rows)", d.preview.len()));
        }
        let row_h = ui.text_style_height(&egui::TextStyle::Body);
        // Wide enough for the longest location ("decompressed line 1000" in compressed files).
        let loc_chars = d
            .preview
            .iter()
            .map(|r| r.loc.chars().count())
            .max()
            .unwrap_or(0);
        let loc_w = (loc_chars as f32 * 0.6 * row_h + 8.0).max(80.0);
        egui::ScrollArea::horizontal()
            .id_salt("preview_h")
            .show(ui, |ui| {
                ui.vertical(|ui| {
                    ui.horizontal(|ui| {
                        ui.add_sized(
                            [loc_w, row_h],
                            egui::Label::new(egui::RichText::new("where").strong()),
                        );
                        for c in &d.columns {
                            cell_label(ui, [CELL_W, row_h], egui::RichText::new(c).strong());
                        }
                    });
                    ui.separator();
                    // Fill the rest of the visible height (at least 200 points).
                    let h = (ui.clip_rect().bottom() - ui.cursor().top() - 8.0).max(200.0);
                    egui::ScrollArea::vertical()
                        .id_salt("preview_v")
                        .max_height(h)
                        .auto_shrink([false, true])
                        .show_rows(ui, row_h, d.preview.len(), |ui, range| {
                            for r in &d.preview[range] {
                                ui.horizontal(|ui| {
                                    ui.add_sized(
                                        [loc_w, row_h],
                                        egui::Label::new(egui::RichText::new(&r.loc).weak()),
                                    );
                                    if let Some(e) = &r.error {
                                        ui.colored_label(
                                            ui.visuals().warn_fg_color,
                                            one_line(e, 200),
                                        );
                                    }
                                    for cell in &r.cells {
                                        let short = one_line(cell, CELL_CHARS);
                                        let resp = cell_label(
                                            ui,
                                            [CELL_W, row_h],
                                            egui::RichText::new(short),
                                        );
                                        if cell.chars().count() > CELL_CHARS || cell.contains('\n')
                                        {
                                            resp.on_hover_text(cell.as_str());
                                        }
                                    }
                                });
                            }
                        });
                });
            });
    }

    fn split_controls(&mut self, ui: &mut egui::Ui, d: &DataView) -> Option<Action> {
        let mut action = None;
        ui.add_space(6.0);
        ui.strong("Train/test split");
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Test fraction");
            ui.add(egui::Slider::new(&mut self.test_fraction, 0.05..=0.5).fixed_decimals(2))
                .labelled_by(l.id)
                .on_hover_text("Share of records held out for evaluation");
            let l = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed)).labelled_by(l.id).on_hover_text("Same seed, same split");
            ui.checkbox(&mut self.by_prompt, "Keep prompts apart")
                .on_hover_text("Split by connected components over prompts: no prompt on both sides (as WIMHF does)");
            if ui.button("Split").clicked() {
                action = Some(Action::Split);
            }
        });
        if let Some(s) = &d.split {
            ui.label(format!(
                "{}: {} train, {} test records",
                s.how,
                s.split.train.len(),
                s.split.test.len()
            ));
            if ui
                .button("Save split…")
                .on_hover_text("Writes NAME.jsonl and NAME.test.jsonl")
                .clicked()
            {
                action = Some(Action::SaveSplit);
            }
        }
        action
    }

    fn apply(&mut self, state: &mut AppState, idx: usize, action: Action) {
        match action {
            Action::Open(path, opts) => dataset::start_open(state, path, opts),
            Action::Split => match dataset::split(
                &state.datasets[idx],
                self.test_fraction,
                self.seed,
                self.by_prompt,
            ) {
                Ok(s) => {
                    let msg = format!(
                        "Split ({}): {} train / {} test",
                        s.how,
                        s.split.train.len(),
                        s.split.test.len()
                    );
                    state.datasets[idx].split = Some(s);
                    state.info(msg);
                }
                Err(e) => state.error(format!("Split failed: {e}")),
            },
            Action::SaveSplit => {
                let d = &state.datasets[idx];
                let stem = d
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                let filters = [FileFilter::new("JSON lines", &["jsonl"])];
                let source = d.path.clone();
                let request = DialogRequest::save(
                    "Save the train split",
                    &format!("{stem}.train.jsonl"),
                    &filters,
                );
                state.ask(request, move |state, train| {
                    let Some(d) = state.datasets.iter().find(|d| d.path == source) else {
                        state.error(format!("{} is no longer open", source.display()));
                        return;
                    };
                    let test = dataset::test_path_for(&train);
                    match dataset::save_split(d, &train, &test) {
                        Ok(()) => {
                            state.info(format!("Saved {} and {}", train.display(), test.display()))
                        }
                        Err(e) => state.error(format!("Saving the split failed: {e}")),
                    }
                });
            }
        }
    }
}

/// What the user asked for while the dataset was being drawn (applied afterwards).
enum Action {
    Open(PathBuf, OpenOptions),
    Split,
    SaveSplit,
}

impl Panel for DataPanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.heading("Data");
        ui.label(
            "Preference data as JSONL, JSON, CSV/TSV or Parquet (gzip/zstd too), or a Hugging Face \
             datasets folder (data/SPLIT-00000-of-0000N shards): prompt/chosen/rejected pairs, \
             pairwise judgements (response_a/response_b/winner), CAA A/B items, or thumbs up/down \
             feedback.",
        );
        ui.add_space(6.0);
        ui.weak(format!(
            "Default data sets (fetched by `./run.sh --setup`) live in {}.",
            crate::paths::data_dir().display()
        ));
        let loading = state.data_job.is_some_and(|id| state.jobs.is_running(id));
        let active = state
            .active_dataset
            .and_then(|i| state.datasets.get(i))
            .map(|d| d.path.clone());
        if active.is_some() && active != self.shown {
            self.shown = active.clone();
            self.path.text = active.map(|p| p.display().to_string()).unwrap_or_default();
        }
        let filters = vec![FileFilter::datasets()];
        let picked = ui
            .add_enabled_ui(!loading, |ui| {
                self.path.show(
                    ui,
                    "Dataset file",
                    &[
                        ("Open…", PickKind::File(filters)),
                        ("Open folder…", PickKind::Folder),
                    ],
                    state,
                )
            })
            .inner;
        ui.checkbox(&mut self.skip_invalid, "Skip invalid rows (and list them)")
            .on_hover_text("Off: stop at the first invalid row");
        if let Some(p) = picked {
            let opts = OpenOptions {
                skip_invalid: self.skip_invalid,
                ..Default::default()
            };
            dataset::start_open(state, p, opts);
        }
        if !state.recent.data.is_empty() {
            if let Some(p) = recent_links(ui, &state.recent.data, !loading) {
                self.path.text = p.display().to_string();
                let opts = OpenOptions {
                    skip_invalid: self.skip_invalid,
                    ..Default::default()
                };
                dataset::start_open(state, p, opts);
            }
        }
        ui.separator();
        if loading {
            ui.horizontal(|ui| {
                ui.add(egui::Spinner::new());
                ui.label("Reading… (progress and Cancel are in the status bar below)");
            });
        }
        let Some(idx) = state.active_dataset.filter(|&i| i < state.datasets.len()) else {
            if !loading {
                ui.label("No dataset open.");
            }
            return;
        };
        let mut action;
        {
            let d = &state.datasets[idx];
            if self.path.text.is_empty() {
                self.path.text = d.path.display().to_string();
            }
            self.summary(ui, d);
            action = self.split_choice(ui, d);
            if let Some(e) = &d.error {
                ui.add_space(4.0);
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            if d.needs_mapping {
                action = action.or(self
                    .mapping_step(ui, d)
                    .map(|o| Action::Open(d.path.clone(), o)));
            }
            self.problems(ui, d);
            if !d.records.is_empty() {
                action = action.or(self.split_controls(ui, d));
            }
            self.preview(ui, d);
        }
        if let Some(a) = action {
            self.apply(state, idx, a);
        }
    }
}

/// A left-aligned, truncated label in a fixed-size cell.
fn cell_label(ui: &mut egui::Ui, size: [f32; 2], text: egui::RichText) -> egui::Response {
    ui.allocate_ui_with_layout(
        size.into(),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(size.into());
            ui.add(egui::Label::new(text).truncate())
        },
    )
    .inner
}

/// What the mapping step calls a layout.
fn layout_title(l: Layout) -> &'static str {
    match l {
        Layout::Pair => "Preference pairs (chosen / rejected)",
        Layout::Judgement => "Pairwise judgements (response A / B, winner)",
        Layout::AbItem => "A/B items (CAA)",
        Layout::Feedback => "Unpaired feedback (thumbs up / down)",
        Layout::Prompts => "Prompts only",
    }
}

/// The first `max` characters of `s` on one line (newlines shown as ¶).
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut in_break = false;
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c == '\n' || c == '\r' {
            if !in_break {
                out.push_str(" ¶ ");
            }
            in_break = true;
        } else {
            out.push(c);
            in_break = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_are_flattened_and_cut() {
        assert_eq!(super::one_line("a\nb", 10), "a ¶ b");
        assert_eq!(super::one_line("a\n\n\nb", 10), "a ¶ b");
        assert_eq!(super::one_line("abcdef", 3), "abc…");
    }
}
