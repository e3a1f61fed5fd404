//! Small widgets shared by panels: a path field with picker buttons and a typed-path fallback,
//! the job status area, key/value grids, hyper-parameter inputs with tooltips and defaults
//! ([`param`], [`param_log`], [`param_bool`], [`param_choice`]), and export menus
//! ([`export_menu`], [`export_plot_menu`]; the writing is in `super::export`, re-exported here).
//!
//! Presentation only: no algorithm code; writers come from the library.
use eframe::egui;
use std::path::PathBuf;
use std::sync::mpsc::channel;

use super::artifacts::ArtifactKind;
pub use super::dialogs::expand_tilde;
use super::dialogs::DialogRequest;
pub use super::export::{crop, save_as, save_bytes_as, with_extension, Format};
use super::job_list::JobStatus;
use super::picker::FileFilter;
use super::screenshot::PendingPng;
use super::state::AppState;
use crate::jobs::format_duration;

/// What a picker button opens.
#[derive(Debug, Clone)]
pub enum PickKind {
    /// An existing file with these filters.
    File(Vec<FileFilter>),
    /// An existing folder.
    Folder,
}

/// A labelled path text field with picker buttons and a Load button.
///
/// Picking a path loads it (at once with a native dialog, when the built-in browser is
/// confirmed otherwise); typing a path (`~` expanded) and pressing Enter or Load does the same.
#[derive(Debug, Default, Clone)]
pub struct PathField {
    /// The path as typed or picked.
    pub text: String,
}

impl PathField {
    /// Draws the field; returns a path when the user asked to load one. Its dialogs go
    /// through `state.ask_into` under a key made from `label`.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        label: &str,
        buttons: &[(&str, PickKind)],
        state: &mut AppState,
    ) -> Option<PathBuf> {
        let key = format!("path-field:{label}");
        let mut chosen = None;
        ui.horizontal(|ui| {
            let l = ui.label(label);
            // The buttons are measured, so the field takes what is left and nothing spills
            // past the column (a narrow column gets a narrow field, never a wider row).
            let spacing = ui.spacing().item_spacing.x;
            let buttons_w: f32 = buttons
                .iter()
                .map(|(t, _)| button_width(ui, t) + spacing)
                .sum::<f32>()
                + button_width(ui, "Load")
                + spacing;
            let w = (ui.available_width() - buttons_w).max(60.0);
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.text)
                        .desired_width(w)
                        .hint_text("type or paste a path"),
                )
                .labelled_by(l.id);
            let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            for (text, kind) in buttons {
                if ui.button(*text).clicked() {
                    let request = match kind {
                        PickKind::File(f) => DialogRequest::open(label, f),
                        PickKind::Folder => DialogRequest::folder(label),
                    };
                    state.ask_into(request, &key);
                }
            }
            let load = ui.add_enabled(!self.text.trim().is_empty(), egui::Button::new("Load"));
            if (load.clicked() || entered) && !self.text.trim().is_empty() {
                chosen = Some(PathBuf::from(expand_tilde(self.text.trim())));
            }
        });
        if let Some(p) = state.dialogs.take_answer(&key) {
            self.text = p.display().to_string();
            chosen = Some(p);
        }
        chosen
    }
}

/// Width of a plain button showing `text` in the body font (text plus the button padding).
pub fn button_width(ui: &egui::Ui, text: &str) -> f32 {
    let font = egui::TextStyle::Button.resolve(ui.style());
    let w = ui.ctx().fonts_mut(|f| {
        f.layout_no_wrap(text.to_string(), font, egui::Color32::WHITE)
            .size()
            .x
    });
    w + 2.0 * ui.spacing().button_padding.x
}

/// One running job: name, stage, progress bar with ETA, cancel button. Returns true if the
/// user pressed cancel.
pub fn job_row(ui: &mut egui::Ui, s: &JobStatus) -> bool {
    let mut cancel = false;
    ui.horizontal(|ui| {
        ui.strong(&s.name);
        if let Some(stage) = &s.stage {
            ui.label(stage);
        }
        match s.fraction {
            Some(f) => {
                let eta = s
                    .eta
                    .map(|d| format!(" · ETA {}", format_duration(d)))
                    .unwrap_or_default();
                ui.add(
                    egui::ProgressBar::new(f)
                        .desired_width(220.0)
                        .text(format!("{:.0}%{eta}", f * 100.0)),
                );
            }
            None => {
                ui.add(egui::Spinner::new());
                ui.weak(format_duration(s.elapsed));
            }
        }
        if s.cancel_requested {
            ui.weak("cancelling…");
        } else if ui
            .button("Cancel")
            .on_hover_text(format!("Stop {}", s.name))
            .clicked()
        {
            cancel = true;
        }
    });
    cancel
}

/// `text` with each character the UI's body font cannot draw replaced by its `U+XXXX` code:
/// data text (tokens, n-grams) may hold any script, and egui draws a missing glyph as a box.
pub fn printable(ctx: &egui::Context, text: &str) -> String {
    let font = egui::TextStyle::Body.resolve(&ctx.global_style());
    ctx.fonts_mut(|f| {
        if f.has_glyphs(&font, text) {
            return text.to_string();
        }
        text.chars()
            .map(|c| {
                if c.is_whitespace() || f.has_glyph(&font, c) {
                    c.to_string()
                } else {
                    format!("U+{:04X}", c as u32)
                }
            })
            .collect()
    })
}

/// A two-column grid of `key: value` rows.
pub fn kv_grid(ui: &mut egui::Ui, id: &str, rows: &[(&str, String)]) {
    egui::Grid::new(id)
        .num_columns(2)
        .spacing([16.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            for (k, v) in rows {
                ui.strong(*k);
                ui.label(v);
                ui.end_row();
            }
        });
}

/// A "Recent:" row of file-name links (full path on hover); returns the clicked path.
pub fn recent_links(ui: &mut egui::Ui, recent: &[PathBuf], enabled: bool) -> Option<PathBuf> {
    let mut clicked = None;
    ui.horizontal_wrapped(|ui| {
        ui.weak("Recent:");
        for p in recent {
            let name = p
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if ui
                .add_enabled(enabled, egui::Link::new(name))
                .on_hover_text(p.display().to_string())
                .clicked()
            {
                clicked = Some(p.clone());
            }
        }
    });
    clicked
}

/// Hover text of a hyper-parameter: the explanation, then its default.
fn param_hint(tooltip: &str, default: &dyn std::fmt::Display) -> String {
    format!("{tooltip}\n\nDefault: {default}")
}

/// A small "Reset" button that resets a changed parameter to `default`; true when clicked.
fn reset_button(ui: &mut egui::Ui, changed: bool, default: &dyn std::fmt::Display) -> bool {
    ui.add_enabled(changed, egui::Button::new("Reset").small())
        .on_hover_text(format!("Reset to the default ({default})"))
        .on_disabled_hover_text(format!("At the default ({default})"))
        .clicked()
}

/// A numeric hyper-parameter: `label`, a drag value kept in `range`, and a reset button.
/// Both the label and the value show `tooltip` followed by "Default: `default`" on hover
/// (give the paper's default and what the parameter does). Draws two widgets into the
/// current layout, so it fits a two-column `egui::Grid` (call `ui.end_row()` after it) or a
/// horizontal row. The response is the value's (`.changed()` is true on edit or reset).
pub fn param<N>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut N,
    range: std::ops::RangeInclusive<N>,
    default: N,
    tooltip: &str,
) -> egui::Response
where
    N: egui::emath::Numeric + std::fmt::Display,
{
    let hint = param_hint(tooltip, &default);
    let l = ui.label(label).on_hover_text(&hint);
    let span = range.end().to_f64() - range.start().to_f64();
    let speed = if N::INTEGRAL {
        (span / 400.0).clamp(0.02, 10.0)
    } else {
        (span / 400.0).max(1e-6)
    };
    ui.horizontal(|ui| {
        let mut r = ui
            .add(egui::DragValue::new(value).range(range).speed(speed))
            .labelled_by(l.id)
            .on_hover_text(&hint);
        if reset_button(ui, *value != default, &default) {
            *value = default;
            r.mark_changed();
        }
        r
    })
    .inner
}

/// A positive hyper-parameter spanning decades (learning rate, L1 weight): a logarithmic
/// slider over `range`, shown in scientific notation; otherwise like [`param`].
pub fn param_log(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut f64,
    range: std::ops::RangeInclusive<f64>,
    default: f64,
    tooltip: &str,
) -> egui::Response {
    let hint = param_hint(tooltip, &format!("{default:e}"));
    let l = ui.label(label).on_hover_text(&hint);
    ui.horizontal(|ui| {
        let mut r = ui
            .add(
                egui::Slider::new(value, range)
                    .logarithmic(true)
                    .custom_formatter(|v, _| format!("{v:.2e}"))
                    .custom_parser(|s| s.trim().parse::<f64>().ok()),
            )
            .labelled_by(l.id)
            .on_hover_text(&hint);
        if reset_button(ui, *value != default, &format!("{default:e}")) {
            *value = default;
            r.mark_changed();
        }
        r
    })
    .inner
}

/// A boolean hyper-parameter: a checkbox with the same tooltip and reset as [`param`]
/// (one widget plus the reset button; in a grid, put an empty label in the first column).
pub fn param_bool(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut bool,
    default: bool,
    tooltip: &str,
) -> egui::Response {
    let hint = param_hint(tooltip, &default);
    ui.horizontal(|ui| {
        let mut r = ui.checkbox(value, label).on_hover_text(&hint);
        if reset_button(ui, *value != default, &default) {
            *value = default;
            r.mark_changed();
        }
        r
    })
    .inner
}

/// A hyper-parameter chosen from `options` (method, objective, positions): a combo box
/// showing each option's `Display`; same tooltip and reset as [`param`].
pub fn param_choice<T>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut T,
    options: &[T],
    default: T,
    tooltip: &str,
) -> egui::Response
where
    T: PartialEq + Clone + std::fmt::Display,
{
    let hint = param_hint(tooltip, &default);
    let l = ui.label(label).on_hover_text(&hint);
    ui.horizontal(|ui| {
        let before = value.clone();
        let mut r = egui::ComboBox::from_id_salt(("param_choice", label))
            .selected_text(value.to_string())
            .show_ui(ui, |ui| {
                for o in options {
                    ui.selectable_value(value, o.clone(), o.to_string());
                }
            })
            .response
            .labelled_by(l.id)
            .on_hover_text(&hint);
        if reset_button(ui, *value != default, &default) {
            *value = default;
        }
        if *value != before {
            r.mark_changed();
        }
        r
    })
    .inner
}

/// A menu button (`text`, e.g. "Export…") listing `formats`; returns the one clicked.
pub fn export_menu(ui: &mut egui::Ui, text: &str, formats: &[Format]) -> Option<Format> {
    let mut chosen = None;
    ui.menu_button(text, |ui| {
        for f in formats {
            if ui.button(format!("{} (.{})", f.label, f.ext)).clicked() {
                chosen = Some(*f);
                ui.close();
            }
        }
    });
    chosen
}

/// An "Export plot…" menu for a plot drawn in `rect`: SVG is written from `svg()` (build it
/// with `crate::report::svg`), PNG crops the next frame's pixels to `rect`. Both go through
/// the picker and are registered as [`ArtifactKind::Plot`].
pub fn export_plot_menu(
    ui: &mut egui::Ui,
    state: &mut AppState,
    rect: egui::Rect,
    stem: &str,
    svg: impl FnOnce() -> String,
) {
    let Some(format) = export_menu(ui, "Export plot…", &[Format::SVG, Format::PNG]) else {
        return;
    };
    if format == Format::SVG {
        let s = svg();
        save_bytes_as(
            state,
            "Export plot",
            stem,
            format,
            Some(ArtifactKind::Plot),
            s.into_bytes(),
            |_, _| {},
        );
        return;
    }
    let filters = [FileFilter::new(format.label, &[format.ext])];
    let default_name = format!("{stem}.png");
    let ctx = ui.ctx().clone();
    state.ask(
        DialogRequest::save("Export plot", &default_name, &filters),
        move |state, picked| {
            let (tx, rx) = channel();
            let waker = ctx.clone();
            ctx.request_screenshot(move |img| {
                let _ = tx.send(img);
                waker.request_repaint();
            });
            state.png_exports.push(PendingPng {
                path: with_extension(&picked, format),
                rect,
                pixels_per_point: ctx.pixels_per_point(),
                rx,
            });
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_replaces_only_the_glyphs_the_font_lacks() {
        let ctx = egui::Context::default();
        let mut out = ctx.run_ui(Default::default(), |_| {});
        out.textures_delta.clear();
        assert_eq!(printable(&ctx, "plain, text"), "plain, text");
        // A private-use code point: no bundled font draws it.
        assert_eq!(printable(&ctx, "a\u{10FFFD} b"), "aU+10FFFD b");
    }
}
