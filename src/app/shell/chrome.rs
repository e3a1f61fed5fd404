//! The frame around the panels: top bar, sidebar (panel list, model line, artifact registry),
//! status bar (jobs, messages), the shortcut help window and the frame-time overlay. Shell
//! code: it may change the app directly (theme, panel shown, opening an artifact).
use eframe::egui;

use super::super::artifacts::{Artifact, ArtifactKind};
use super::super::dialogs::DialogMode;
use super::super::frame_stats;
use super::super::nav::PanelId;
use super::super::shortcuts::{self, Action};
use super::super::state::{Level, StatusMessage};
use super::super::widgets;
use super::SteerlabApp;

impl SteerlabApp {
    pub(super) fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("steerlab");
            ui.weak("activation steering & preference interpretability");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.menu_button("Settings", |ui| {
                    let mut builtin = self.state.dialogs.mode == DialogMode::BuiltIn;
                    if ui
                        .checkbox(&mut builtin, "Always use the built-in file browser")
                        .on_hover_text(
                            "Off: the desktop's file dialog when it has one (XDG desktop portal), \
                             else the built-in browser. On: always the built-in browser.",
                        )
                        .changed()
                    {
                        self.state.dialogs.mode = if builtin {
                            DialogMode::BuiltIn
                        } else {
                            DialogMode::Auto
                        };
                    }
                    let native = if self.state.dialogs.native_failed {
                        "no (a dialog failed to open this session)"
                    } else if self.state.picker.available() {
                        "yes"
                    } else {
                        "no (no XDG desktop portal found)"
                    };
                    ui.weak(format!("Native file dialog available: {native}"));
                });
                if ui
                    .button("Shortcuts")
                    .on_hover_text("Keyboard shortcuts (F1)")
                    .clicked()
                {
                    self.help_open = !self.help_open;
                }
                let label = if self.dark {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui
                    .button(label)
                    .on_hover_text("Switch between dark and light themes (Ctrl+Shift+T)")
                    .clicked()
                {
                    self.dark = !self.dark;
                }
            });
        });
    }

    pub(super) fn sidebar(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        for (i, p) in PanelId::ALL.iter().enumerate() {
            let r = ui
                .add_sized(
                    [ui.available_width(), 28.0],
                    egui::Button::selectable(self.current == *p, p.title()),
                )
                .on_hover_text(format!("Ctrl+{}", i + 1));
            if r.clicked() {
                self.current = *p;
            }
        }
        ui.separator();
        match &self.state.model {
            Some(m) => {
                ui.label(format!("Model: {}", m.summary.name));
                ui.weak(format!(
                    "{} · {} layers",
                    m.summary.architecture, m.summary.n_layers
                ));
            }
            None => {
                ui.weak("No model loaded (Ctrl+M)");
            }
        }
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("artifacts")
            .auto_shrink([false, true])
            .show(ui, |ui| self.artifact_list(ui));
    }

    /// The registry, grouped by kind; loaded items are marked, clicking opens the owner.
    fn artifact_list(&mut self, ui: &mut egui::Ui) {
        // Vectors made this session and not saved yet are listed too (clicking checks them).
        let unsaved: Vec<(usize, String)> = self
            .state
            .steer
            .vectors
            .iter()
            .enumerate()
            .filter(|(_, e)| e.path.is_none())
            .map(|(i, e)| (i, e.name.clone()))
            .collect();
        if self.state.artifacts.is_empty() && unsaved.is_empty() {
            ui.weak("Models, datasets, vectors, SAEs and reports you load or make appear here.");
            return;
        }
        let model_path = self.state.model.as_ref().map(|m| m.path.clone());
        let mut open = None;
        let mut forget = None;
        let mut select_vector = None;
        for kind in ArtifactKind::ALL {
            let items: Vec<Artifact> = self.state.artifacts.of_kind(*kind).cloned().collect();
            let extra = if *kind == ArtifactKind::Vector {
                unsaved.len()
            } else {
                0
            };
            if items.is_empty() && extra == 0 {
                continue;
            }
            let names = unique_labels(&items);
            egui::CollapsingHeader::new(format!("{} ({})", kind.title(), items.len() + extra))
                .id_salt(("artifacts", kind.title()))
                .default_open(true)
                .show(ui, |ui| {
                    if *kind == ArtifactKind::Vector {
                        for (i, name) in &unsaved {
                            let r = ui
                                .add(
                                    egui::Button::selectable(
                                        false,
                                        format!("{name} (not saved)"),
                                    )
                                    .truncate(),
                                )
                                .on_hover_text(format!(
                                    "{name}: made this session, not saved yet (Steer panel: Export...)"
                                ));
                            if r.clicked() {
                                select_vector = Some(*i);
                            }
                        }
                    }
                    for (a, name) in items.into_iter().zip(names) {
                        let loaded = match a.kind {
                            ArtifactKind::Model => model_path.as_ref() == Some(&a.path),
                            ArtifactKind::Dataset => {
                                self.state.datasets.iter().any(|d| d.path == a.path)
                            }
                            _ => false,
                        };
                        let text = if loaded {
                            egui::RichText::new(format!("• {name}")).strong()
                        } else {
                            egui::RichText::new(name)
                        };
                        let r = ui
                            .add(egui::Button::selectable(false, text).truncate())
                            .on_hover_ui(|ui| {
                                ui.label(a.path.display().to_string());
                                ui.weak(format!(
                                    "{} · added {} UTC",
                                    a.kind.title(),
                                    a.created_text()
                                ));
                                if loaded {
                                    ui.weak("loaded");
                                } else if !a.path.exists() {
                                    ui.colored_label(ui.visuals().error_fg_color, "file missing");
                                }
                            });
                        r.context_menu(|ui| {
                            if ui.button("Copy path").clicked() {
                                ui.ctx().copy_text(a.path.display().to_string());
                                ui.close();
                            }
                            if ui.button("Forget").clicked() {
                                forget = Some(a.clone());
                                ui.close();
                            }
                        });
                        if r.clicked() {
                            open = Some(a);
                        }
                    }
                });
        }
        if let Some(a) = forget {
            self.state.artifacts.remove(a.kind, &a.path);
        }
        if let Some(i) = select_vector {
            self.current = PanelId::Steer;
            self.state.steer.select_only(i);
        }
        if let Some(a) = open {
            // Shell code: opened at once, so the panel switches in this frame.
            self.open_artifact(a);
        }
    }

    pub(super) fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = self.help_open;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                egui::Grid::new("shortcut_grid")
                    .num_columns(2)
                    .spacing([24.0, 4.0])
                    .striped(true)
                    .show(ui, |ui| {
                        for b in shortcuts::bindings(PanelId::ALL.len()) {
                            ui.strong(ctx.format_shortcut(&b.shortcut));
                            match b.action {
                                Action::ShowPanel(i) => {
                                    ui.label(format!("{} panel", PanelId::ALL[i].title()))
                                }
                                _ => ui.label(b.what),
                            };
                            ui.end_row();
                        }
                    });
                ui.add_space(4.0);
                ui.weak("Hover any parameter for what it does and its default.");
            });
        self.help_open = open;
    }

    pub(super) fn frame_overlay(&self, ctx: &egui::Context) {
        egui::Area::new(egui::Id::unique("frame_stats_overlay"))
            .order(egui::Order::Foreground)
            .anchor(egui::Align2::RIGHT_TOP, [-8.0, 36.0])
            .interactable(false)
            .show(ctx, |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    ui.set_width(230.0);
                    // Native: eframe's whole-frame CPU time (UI + paint); in tests: UI only.
                    let (stats, what) = if self.frame_stats.total() > 0 {
                        (&self.frame_stats, "frame (ui + paint)")
                    } else {
                        (&self.ui_stats, "ui")
                    };
                    let line = |s: Option<frame_stats::Summary>| match s {
                        Some(s) => format!(
                            "p50 {:.1} · p95 {:.1} · max {:.1} ms (n={})",
                            s.p50, s.p95, s.max, s.n
                        ),
                        None => "—".to_string(),
                    };
                    ui.small(format!("{what}: {}", line(stats.summary())));
                    ui.small(format!("with a job: {}", line(stats.busy_summary())));
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(230.0, 40.0), egui::Sense::hover());
                    let p = ui.painter_at(rect);
                    p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                    let scale = |ms: f32| rect.bottom() - (ms / 33.0).min(1.0) * rect.height();
                    let times: Vec<(f32, bool)> = stats.times_ms().collect();
                    let w = rect.width() / frame_stats::WINDOW as f32;
                    for (i, (ms, busy)) in times.iter().enumerate() {
                        let x = rect.left() + i as f32 * w;
                        let c = if *ms > 16.0 {
                            ui.visuals().error_fg_color
                        } else if *busy {
                            ui.visuals().warn_fg_color
                        } else {
                            ui.visuals().weak_text_color()
                        };
                        p.line_segment(
                            [egui::pos2(x, rect.bottom()), egui::pos2(x, scale(*ms))],
                            egui::Stroke::new(w.max(1.0), c),
                        );
                    }
                    p.hline(
                        rect.x_range(),
                        scale(16.0),
                        egui::Stroke::new(1.0, ui.visuals().error_fg_color),
                    );
                    ui.small("bars: last frames (amber: job running); line: 16 ms");
                });
            });
    }

    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.add_space(2.0);
        let statuses = self.state.jobs.statuses();
        for s in &statuses {
            if widgets::job_row(ui, s) {
                self.state.jobs.cancel(s.id);
            }
        }
        ui.horizontal(|ui| {
            if statuses.is_empty() {
                ui.weak("No jobs running.");
            }
            if let Some(m) = self.state.last_message() {
                let color = match m.level {
                    Level::Info => ui.visuals().text_color(),
                    Level::Warning => ui.visuals().warn_fg_color,
                    Level::Error => ui.visuals().error_fg_color,
                };
                let text = match m.level {
                    Level::Warning => format!("Warning: {}", m.text),
                    _ => m.text.clone(),
                };
                ui.separator();
                let recent: Vec<StatusMessage> =
                    self.state.messages.iter().rev().take(20).cloned().collect();
                ui.add(egui::Label::new(egui::RichText::new(text).color(color)).truncate())
                    .on_hover_ui(|ui| {
                        ui.strong("Recent messages (newest first)");
                        for m in &recent {
                            let ago = crate::jobs::format_duration(m.at.elapsed());
                            match m.level {
                                Level::Info => ui.label(format!("{ago} ago: {}", m.text)),
                                Level::Warning => ui.colored_label(
                                    ui.visuals().warn_fg_color,
                                    format!("{ago} ago: warning: {}", m.text),
                                ),
                                Level::Error => ui.colored_label(
                                    ui.visuals().error_fg_color,
                                    format!("{ago} ago: {}", m.text),
                                ),
                            };
                        }
                    });
            }
        });
        ui.add_space(2.0);
    }
}

/// One label per artifact, unique within the list: a name shared by several gets its folder
/// added, and if that is shared too, its position in the list.
fn unique_labels(items: &[Artifact]) -> Vec<String> {
    let count = |names: &[String], n: &str| names.iter().filter(|x| x.as_str() == n).count();
    let names: Vec<String> = items.iter().map(|a| a.name.clone()).collect();
    let with_dir: Vec<String> = items
        .iter()
        .zip(&names)
        .map(|(a, n)| {
            if count(&names, n) > 1 {
                let dir = a
                    .path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{n} ({dir})")
            } else {
                n.clone()
            }
        })
        .collect();
    with_dir
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if count(&with_dir, n) > 1 {
                format!("{n} #{}", i + 1)
            } else {
                n.clone()
            }
        })
        .collect()
}
