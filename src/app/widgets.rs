//! Small widgets shared by panels: a path field with picker buttons and a typed-path fallback,
//! the job status area, key/value grids, hyper-parameter inputs with tooltips and defaults
//! ([`param`], [`param_log`], [`param_bool`], [`param_choice`]), and export dialogs
//! ([`save_as`], [`save_bytes_as`], [`export_plot_menu`]).
//!
//! Presentation only: no algorithm code; writers come from the library.
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

use super::artifacts::ArtifactKind;
use super::job_list::JobStatus;
use super::picker::{FileFilter, FilePicker};
use super::screenshot::write_png;
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
/// Picking a path loads it at once; typing a path and pressing Enter or Load does the same
/// (the fallback when no dialog can be shown, e.g. no XDG desktop portal).
#[derive(Debug, Default, Clone)]
pub struct PathField {
    /// The path as typed or picked.
    pub text: String,
    dialog_gave_nothing: bool,
}

impl PathField {
    /// Draws the field; returns a path when the user asked to load one.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        label: &str,
        buttons: &[(&str, PickKind)],
        picker: &dyn FilePicker,
    ) -> Option<PathBuf> {
        let mut chosen = None;
        ui.horizontal(|ui| {
            let l = ui.label(label);
            let w = (ui.available_width() - 90.0 * (buttons.len() as f32 + 1.0)).max(160.0);
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
                    let got = match kind {
                        PickKind::File(f) => picker.pick_file(label, f),
                        PickKind::Folder => picker.pick_folder(label),
                    };
                    match got {
                        Some(p) => {
                            self.text = p.display().to_string();
                            self.dialog_gave_nothing = false;
                            chosen = Some(p);
                        }
                        None => self.dialog_gave_nothing = true,
                    }
                }
            }
            let load = ui.add_enabled(!self.text.trim().is_empty(), egui::Button::new("Load"));
            if (load.clicked() || entered) && !self.text.trim().is_empty() {
                chosen = Some(PathBuf::from(expand_tilde(self.text.trim())));
            }
        });
        if self.dialog_gave_nothing {
            ui.weak(
                "No path chosen. If no dialog appeared, this desktop has no file-dialog portal: \
                 type the path in the field and press Load.",
            );
        }
        if chosen.is_some() {
            self.dialog_gave_nothing = false;
        }
        chosen
    }
}

/// `~/x` → `$HOME/x`.
pub fn expand_tilde(s: &str) -> String {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest).display().to_string(),
        _ => s.to_string(),
    }
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

/// A file format offered by export menus: what the user sees and the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Menu and dialog-filter text ("SVG image").
    pub label: &'static str,
    /// Extension without the dot.
    pub ext: &'static str,
}

impl Format {
    /// Scalable plot.
    pub const SVG: Format = Format {
        label: "SVG image",
        ext: "svg",
    };
    /// Raster plot (pixels as shown on screen).
    pub const PNG: Format = Format {
        label: "PNG image",
        ext: "png",
    };
    /// Self-contained HTML report.
    pub const HTML: Format = Format {
        label: "HTML report",
        ext: "html",
    };
    /// Markdown report.
    pub const MARKDOWN: Format = Format {
        label: "Markdown",
        ext: "md",
    };
    /// JSON data.
    pub const JSON: Format = Format {
        label: "JSON",
        ext: "json",
    };
    /// steerlab vector / tensors.
    pub const SAFETENSORS: Format = Format {
        label: "safetensors",
        ext: "safetensors",
    };
    /// llama.cpp control vector.
    pub const GGUF: Format = Format {
        label: "GGUF control vector",
        ext: "gguf",
    };
    /// Comma-separated table.
    pub const CSV: Format = Format {
        label: "CSV table",
        ext: "csv",
    };
}

/// `path` with `format`'s extension: kept if it already ends so (any case), else appended
/// (`run.v2` → `run.v2.svg`).
pub fn with_extension(path: &Path, format: Format) -> PathBuf {
    let has = path
        .extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(format.ext));
    if has {
        path.to_path_buf()
    } else {
        let mut s = path.as_os_str().to_os_string();
        s.push(".");
        s.push(format.ext);
        PathBuf::from(s)
    }
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

/// "Save as": asks the picker where to save (dialog `title`, suggested `stem.ext`, a filter
/// for `format`), adds the extension if the user left it out, runs `write(path)`, and posts
/// the outcome to the status bar. On success the file is registered in the sidebar as a
/// `kind` artifact (when given) and its path returned; `None` if cancelled or failed.
///
/// `write` must write atomically (to `path.tmp`, then rename): library writers do, and
/// [`save_bytes_as`] does it for content already in memory.
pub fn save_as<E: std::fmt::Display>(
    state: &mut AppState,
    title: &str,
    stem: &str,
    format: Format,
    kind: Option<ArtifactKind>,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Option<PathBuf> {
    let filters = [FileFilter::new(format.label, &[format.ext])];
    let default_name = format!("{stem}.{}", format.ext);
    let picked = state.picker.save_file(title, &default_name, &filters)?;
    let path = with_extension(&picked, format);
    match write(&path) {
        Ok(()) => {
            state.info(format!("Saved {}", path.display()));
            if let Some(kind) = kind {
                let name = path
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| default_name.clone());
                state.artifacts.add(kind, name, &path);
            }
            Some(path)
        }
        Err(e) => {
            state.error(format!("Could not save {}: {e}", path.display()));
            None
        }
    }
}

/// [`save_as`] for content already in memory (reports, SVG plots): written atomically.
pub fn save_bytes_as(
    state: &mut AppState,
    title: &str,
    stem: &str,
    format: Format,
    kind: Option<ArtifactKind>,
    bytes: &[u8],
) -> Option<PathBuf> {
    save_as(state, title, stem, format, kind, |p| {
        crate::report::write_atomic(p, bytes)
    })
}

/// A PNG export waiting for the window's pixels (see [`export_plot_menu`]).
pub(crate) struct PendingPng {
    path: PathBuf,
    rect: egui::Rect,
    pixels_per_point: f32,
    rx: Receiver<Arc<egui::ColorImage>>,
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
            s.as_bytes(),
        );
        return;
    }
    let filters = [FileFilter::new(format.label, &[format.ext])];
    let default_name = format!("{stem}.png");
    let Some(picked) = state
        .picker
        .save_file("Export plot", &default_name, &filters)
    else {
        return;
    };
    let (tx, rx) = channel();
    let ctx = ui.ctx().clone();
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
}

/// Writes the PNG exports whose pixels arrived (the shell calls this every frame).
pub(crate) fn poll_png_exports(state: &mut AppState) {
    let mut pending = std::mem::take(&mut state.png_exports);
    pending.retain(|p| match p.rx.try_recv() {
        Ok(img) => {
            let cropped = crop(&img, p.rect, p.pixels_per_point);
            match write_png(&p.path, &cropped) {
                Ok(()) => {
                    state.info(format!("Saved {}", p.path.display()));
                    let name = p
                        .path
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    state.artifacts.add(ArtifactKind::Plot, name, &p.path);
                }
                Err(e) => state.error(format!("Could not save {}: {e}", p.path.display())),
            }
            false
        }
        Err(TryRecvError::Empty) => true,
        Err(TryRecvError::Disconnected) => {
            state.error(format!(
                "Could not save {}: no screenshot came back from the window",
                p.path.display()
            ));
            false
        }
    });
    pending.append(&mut state.png_exports);
    state.png_exports = pending;
}

/// The part of a window image under `rect` (points), clamped to the image.
pub fn crop(img: &egui::ColorImage, rect: egui::Rect, pixels_per_point: f32) -> egui::ColorImage {
    let full = egui::Rect::from_min_size(
        egui::Pos2::ZERO,
        egui::vec2(img.size[0] as f32, img.size[1] as f32) / pixels_per_point,
    );
    let r = rect.intersect(full);
    if !r.is_positive() {
        return egui::ColorImage::new([0, 0], Vec::new());
    }
    img.region(&r, Some(pixels_per_point))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::picker::ScriptedPicker;

    #[test]
    fn printable_replaces_only_the_glyphs_the_font_lacks() {
        let ctx = egui::Context::default();
        let mut out = ctx.run_ui(Default::default(), |_| {});
        out.textures_delta.clear();
        assert_eq!(printable(&ctx, "plain, text"), "plain, text");
        // A private-use code point: no bundled font draws it.
        assert_eq!(printable(&ctx, "a\u{10FFFD} b"), "aU+10FFFD b");
    }

    #[test]
    fn extension_is_added_only_when_missing() {
        let p = |s: &str| with_extension(Path::new(s), Format::SVG);
        assert_eq!(p("/a/plot"), PathBuf::from("/a/plot.svg"));
        assert_eq!(p("/a/plot.SVG"), PathBuf::from("/a/plot.SVG"));
        assert_eq!(p("/a/run.v2"), PathBuf::from("/a/run.v2.svg"));
    }

    #[test]
    fn save_bytes_as_writes_atomically_registers_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let picker = ScriptedPicker::new();
        picker.push(Some(dir.path().join("report"))).push(None);
        let mut state = AppState::new(Box::new(picker.clone()));
        let got = save_bytes_as(
            &mut state,
            "Export report",
            "features",
            Format::HTML,
            Some(ArtifactKind::Report),
            b"<html></html>",
        );
        let want = dir.path().join("report.html");
        assert_eq!(got.as_deref(), Some(want.as_path()));
        assert_eq!(std::fs::read(&want).unwrap(), b"<html></html>");
        assert!(!dir.path().join("report.html.tmp").exists());
        let a = state.artifacts.iter().next().expect("registered");
        assert_eq!(
            (a.kind, a.name.as_str()),
            (ArtifactKind::Report, "report.html")
        );
        assert!(state.last_message().unwrap().text.contains("report.html"));
        // Cancelled dialog: nothing written, nothing posted.
        let n = state.messages.len();
        assert!(
            save_bytes_as(&mut state, "Export report", "x", Format::JSON, None, b"{}").is_none()
        );
        assert_eq!(state.messages.len(), n);
        assert_eq!(picker.calls(), vec!["save_file: Export report"; 2]);
    }

    #[test]
    fn failed_write_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let picker = ScriptedPicker::new();
        picker.push(Some(dir.path().join("v.gguf")));
        let mut state = AppState::new(Box::new(picker));
        let r = save_as(
            &mut state,
            "Export vector",
            "v",
            Format::GGUF,
            Some(ArtifactKind::Vector),
            |_| Err("width 576 does not match the model (896)"),
        );
        assert!(r.is_none());
        assert!(state.artifacts.is_empty());
        let m = state.last_message().unwrap();
        assert_eq!(m.level, crate::app::Level::Error);
        assert!(
            m.text.contains("v.gguf") && m.text.contains("576"),
            "{}",
            m.text
        );
    }

    #[test]
    fn crop_takes_the_rect_in_points_and_clamps() {
        // 4×2 pixels at 2 px/pt: a 2×1-point window. Pixel value = x + 10·y.
        let px: Vec<_> = (0..2)
            .flat_map(|y| (0..4).map(move |x| egui::Color32::from_gray((x + 10 * y) as u8)))
            .collect();
        let img = egui::ColorImage::new([4, 2], px);
        let right = crop(
            &img,
            egui::Rect::from_min_max(egui::pos2(1.0, 0.0), egui::pos2(5.0, 9.0)),
            2.0,
        );
        assert_eq!(right.size, [2, 2]);
        assert_eq!(right.pixels[0], egui::Color32::from_gray(2));
        assert_eq!(right.pixels[3], egui::Color32::from_gray(13));
        let outside = crop(
            &img,
            egui::Rect::from_min_max(egui::pos2(7.0, 7.0), egui::pos2(9.0, 9.0)),
            2.0,
        );
        assert_eq!(outside.size, [0, 0]);
    }
}
