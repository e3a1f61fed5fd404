//! Small widgets shared by panels: a path field with picker buttons and a typed-path fallback,
//! the job status area, and key/value grids.
use eframe::egui;
use std::path::PathBuf;

use super::job_list::JobStatus;
use super::picker::{FileFilter, FilePicker};
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
