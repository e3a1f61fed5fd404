//! The eframe desktop application: [`AppState`] (what is loaded and made), one file per panel,
//! the job status area, file pickers behind a trait, persistence and the screenshot mode.
//!
//! GUI only: every computation is a call into the library (`crate::model`, `crate::data`, ...),
//! run on a background job when it can take more than a frame. No algorithm code here.
use eframe::egui;
use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use shortcuts::Action;

mod artifacts;
mod dataset;
mod dissect;
mod engine;
mod features;
pub mod frame_stats;
mod job_list;
pub mod panels;
mod picker;
mod screenshot;
pub mod shortcuts;
mod state;
pub mod steer;
pub mod widgets;

pub use artifacts::{Artifact, ArtifactKind, Artifacts, Navigation, Selection};
pub use engine::{GenerateSettings, LoadedModel, ModelSummary};
pub use frame_stats::FrameStats;
pub use job_list::{JobId, JobList, JobStatus};
pub use panels::{Panel, PanelId};
pub use picker::{FileFilter, FilePicker, RfdPicker, ScriptedPicker};
pub use screenshot::{write_png, Screenshotter, ShotOutcome};
pub use state::{AppState, Level, Recent, StatusMessage};

/// Settings restored between runs (eframe persistence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    /// Recent model and data paths.
    pub recent: Recent,
    /// The panel shown last.
    pub last_panel: PanelId,
    /// Dark theme (else light).
    pub dark: bool,
    /// What was loaded and made (the sidebar).
    pub artifacts: Artifacts,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            recent: Recent::default(),
            last_panel: PanelId::Model,
            dark: true,
            artifacts: Artifacts::default(),
        }
    }
}

/// How the app starts: what to load and which panel to show.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Load this model in the background at start.
    pub model: Option<PathBuf>,
    /// Open this dataset at start.
    pub data: Option<PathBuf>,
    /// Show this panel (else the persisted one).
    pub panel: Option<PanelId>,
    /// Generate from this prompt (chat template on) once the model is loaded.
    pub prompt: Option<String>,
    /// Steer panel start-up choices (`STEERLAB_STEER_*`).
    pub steer: steer::SteerStart,
}

impl StartOptions {
    /// The normal start: the default model if it is in the cache, plus the environment
    /// overrides `STEERLAB_MODEL`, `STEERLAB_DATA`, `STEERLAB_PANEL` and `STEERLAB_PROMPT`
    /// (used by screenshots).
    /// An unknown `STEERLAB_PANEL` value is an error listing the valid ones.
    pub fn from_env() -> anyhow::Result<Self> {
        let env_path = |k: &str| {
            std::env::var_os(k)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let model = env_path("STEERLAB_MODEL").or_else(|| Some(crate::paths::default_model_path()));
        let data = env_path("STEERLAB_DATA");
        let panel = match std::env::var("STEERLAB_PANEL") {
            Ok(k) if !k.is_empty() => Some(PanelId::from_key(&k).ok_or_else(|| {
                let keys: Vec<_> = PanelId::ALL.iter().map(|p| p.key()).collect();
                anyhow::anyhow!(
                    "STEERLAB_PANEL={k}: unknown panel (one of: {})",
                    keys.join(", ")
                )
            })?),
            _ => None,
        };
        let prompt = std::env::var("STEERLAB_PROMPT")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Self {
            model,
            data,
            panel,
            prompt,
            steer: steer::SteerStart::from_env()?,
        })
    }
}

/// The workbench: state, panels, and the frame around them.
pub struct SteerlabApp {
    /// Everything loaded and made.
    pub state: AppState,
    panels: HashMap<PanelId, Box<dyn Panel>>,
    current: PanelId,
    dark: bool,
    help_open: bool,
    show_frame_stats: bool,
    frame_stats: FrameStats,
    ui_stats: FrameStats,
    frame_stats_out: Option<PathBuf>,
    screenshot: Option<Screenshotter>,
    started: bool,
    start: StartOptions,
}

impl SteerlabApp {
    /// A new app using `picker` for dialogs, restoring `persisted` settings, and loading what
    /// `start` asks for on the first frame.
    pub fn new(
        picker: Box<dyn FilePicker>,
        persisted: Option<Persisted>,
        start: StartOptions,
    ) -> Self {
        let p = persisted.unwrap_or_default();
        let mut state = AppState::new(picker);
        state.recent = p.recent;
        state.artifacts = p.artifacts;
        let current = start.panel.unwrap_or(p.last_panel);
        Self {
            state,
            panels: HashMap::new(),
            current,
            dark: p.dark,
            help_open: false,
            show_frame_stats: false,
            frame_stats: FrameStats::default(),
            ui_stats: FrameStats::default(),
            frame_stats_out: None,
            screenshot: None,
            started: false,
            start,
        }
    }

    /// Grabs a screenshot with `shot` once the app is idle, then closes.
    pub fn with_screenshot(mut self, shot: Screenshotter) -> Self {
        self.screenshot = Some(shot);
        self
    }

    /// Writes frame-time percentiles (JSON) to `path` when the app closes, and keeps the
    /// overlay on (the `STEERLAB_FRAME_STATS` benchmark).
    pub fn with_frame_stats_output(mut self, path: PathBuf) -> Self {
        self.frame_stats_out = Some(path);
        self.show_frame_stats = true;
        // Keep every frame of the run, not only the overlay's window.
        self.frame_stats = FrameStats::with_capacity(1 << 20);
        self.ui_stats = FrameStats::with_capacity(1 << 20);
        self
    }

    /// The panel shown.
    pub fn current_panel(&self) -> PanelId {
        self.current
    }

    /// Shows another panel.
    pub fn select(&mut self, id: PanelId) {
        self.current = id;
    }

    /// True with the dark theme, false with the light one.
    pub fn is_dark(&self) -> bool {
        self.dark
    }

    /// True while the keyboard-shortcut window is open.
    pub fn help_open(&self) -> bool {
        self.help_open
    }

    /// True while the frame-time overlay is shown.
    pub fn frame_stats_shown(&self) -> bool {
        self.show_frame_stats
    }

    /// Time spent building each frame's UI (`show`), last [`frame_stats::WINDOW`] frames.
    pub fn ui_frame_stats(&self) -> &FrameStats {
        &self.ui_stats
    }

    /// The settings to persist.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            recent: self.state.recent.clone(),
            last_panel: self.current,
            dark: self.dark,
            artifacts: self.state.artifacts.clone(),
        }
    }

    /// Draws one frame of the whole window into `ui` (the root). Tests call this directly.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let t0 = std::time::Instant::now();
        let ctx = ui.ctx().clone();
        self.state.set_ctx(&ctx);
        ctx.set_theme(if self.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        if !self.started {
            self.started = true;
            self.on_start();
        }
        self.state.poll_jobs();
        widgets::poll_png_exports(&mut self.state);
        self.shortcuts(&ctx);

        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("sidebar")
            .resizable(true)
            .default_size(220.0)
            .min_size(160.0)
            .max_size(420.0)
            .show(ui, |ui| self.sidebar(ui));
        self.follow_navigation();
        let pending = self.state.navigation.clone();
        egui::CentralPanel::default().show(ui, |ui| {
            let id = self.current;
            let panel = self.panels.entry(id).or_insert_with(|| id.create());
            egui::ScrollArea::vertical()
                .id_salt("central")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    panel.ui(ui, &mut self.state);
                });
        });
        if pending.is_some() && self.state.navigation == pending {
            // The target panel had its frame and did not take it.
            self.state.navigation = None;
        }
        if self.help_open {
            self.help_window(&ctx);
        }
        let busy = self.state.jobs.is_busy();
        self.ui_stats.record(t0.elapsed(), busy);
        if self.show_frame_stats {
            self.frame_overlay(&ctx);
        }
        if busy {
            // Spinners and ETAs move even without events.
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
    }

    fn on_start(&mut self) {
        if let Some(path) = self.start.model.take() {
            if path.exists() {
                engine::start_model_load(&mut self.state, path, Default::default());
            } else if path == crate::paths::default_model_path() {
                self.state.error(
                    crate::paths::MissingDefault {
                        what: "model".into(),
                        path,
                    }
                    .to_string(),
                );
            } else {
                self.state
                    .error(format!("{}: model path does not exist", path.display()));
            }
        }
        self.state.pending_prompt = self.start.prompt.take();
        let data = self.start.data.take();
        if let Some(path) = &data {
            panels::DataPanel::start_open(&mut self.state, path.clone());
        }
        let steer_start = std::mem::take(&mut self.start.steer);
        steer::SteerState::apply_start(&mut self.state, steer_start, data);
    }

    /// Switches to the panel a pending cross-link asks for.
    fn follow_navigation(&mut self) {
        if let Some(n) = &self.state.navigation {
            self.current = n.panel;
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        // Esc belongs to text fields and popups first.
        let esc_free = self.state.jobs.is_busy()
            && ctx.memory(|m| m.focused().is_none())
            && !egui::Popup::is_any_open(ctx);
        for b in shortcuts::bindings(PanelId::ALL.len()) {
            if b.action == Action::CancelJob && !esc_free {
                continue;
            }
            if ctx.input_mut(|i| i.consume_shortcut(&b.shortcut)) {
                self.perform(b.action);
            }
        }
    }

    /// Does what a shortcut (or its menu twin) asks.
    fn perform(&mut self, action: Action) {
        match action {
            Action::OpenData => {
                self.current = PanelId::Data;
                if self.state.data_job.is_some() {
                    return;
                }
                let filters = [FileFilter::new(
                    "Datasets",
                    &["jsonl", "json", "csv", "tsv", "parquet"],
                )];
                if let Some(p) = self.state.picker.pick_file("Dataset file", &filters) {
                    panels::DataPanel::start_open(&mut self.state, p);
                }
            }
            Action::OpenModelFile | Action::OpenModelFolder => {
                self.current = PanelId::Model;
                if self.state.model_job.is_some() {
                    return;
                }
                let picked = if action == Action::OpenModelFile {
                    let f = [FileFilter::new("GGUF model", &["gguf"])];
                    self.state.picker.pick_file("Model path", &f)
                } else {
                    self.state.picker.pick_folder("Model path")
                };
                if let Some(p) = picked {
                    engine::start_model_load(&mut self.state, p, Default::default());
                }
            }
            Action::ShowPanel(i) => {
                if let Some(p) = PanelId::ALL.get(i) {
                    self.current = *p;
                }
            }
            Action::CancelJob => {
                if let Some(s) = self
                    .state
                    .jobs
                    .statuses()
                    .iter()
                    .rev()
                    .find(|s| !s.cancel_requested)
                {
                    self.state.jobs.cancel(s.id);
                    self.state.info(format!("Cancelling {}", s.name));
                }
            }
            Action::ToggleTheme => self.dark = !self.dark,
            Action::Help => self.help_open = !self.help_open,
            Action::FrameStats => self.show_frame_stats = !self.show_frame_stats,
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("steerlab");
            ui.weak("activation steering & preference interpretability");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
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

    fn sidebar(&mut self, ui: &mut egui::Ui) {
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
        if self.state.artifacts.is_empty() {
            ui.weak("Models, datasets, vectors, SAEs and reports you load or make appear here.");
            return;
        }
        let model_path = self.state.model.as_ref().map(|m| m.path.clone());
        let mut open = None;
        let mut forget = None;
        for kind in ArtifactKind::ALL {
            let items: Vec<Artifact> = self.state.artifacts.of_kind(*kind).cloned().collect();
            if items.is_empty() {
                continue;
            }
            egui::CollapsingHeader::new(format!("{} ({})", kind.title(), items.len()))
                .id_salt(("artifacts", kind.title()))
                .default_open(true)
                .show(ui, |ui| {
                    for a in items {
                        let loaded = match a.kind {
                            ArtifactKind::Model => model_path.as_ref() == Some(&a.path),
                            ArtifactKind::Dataset => {
                                self.state.datasets.iter().any(|d| d.path == a.path)
                            }
                            _ => false,
                        };
                        let text = if loaded {
                            egui::RichText::new(format!("• {}", a.name)).strong()
                        } else {
                            egui::RichText::new(&a.name)
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
        if let Some(a) = open {
            self.open_artifact(a);
        }
    }

    /// Opens an artifact in the panel that owns it: models and datasets are (re)loaded here,
    /// other kinds are handed to their panel as a [`Selection::Artifact`].
    pub fn open_artifact(&mut self, a: Artifact) {
        if !a.path.exists() {
            self.state.error(format!(
                "{}: file missing (right-click > Forget removes it)",
                a.path.display()
            ));
            return;
        }
        match a.kind {
            ArtifactKind::Model => {
                self.current = PanelId::Model;
                let loaded = self.state.model.as_ref().is_some_and(|m| m.path == a.path);
                if !loaded && self.state.model_job.is_none() {
                    engine::start_model_load(&mut self.state, a.path, Default::default());
                }
            }
            ArtifactKind::Dataset => {
                self.current = PanelId::Data;
                match self.state.datasets.iter().position(|d| d.path == a.path) {
                    Some(i) => self.state.active_dataset = Some(i),
                    None if self.state.data_job.is_none() => {
                        panels::DataPanel::start_open(&mut self.state, a.path)
                    }
                    None => {}
                }
            }
            _ => match a.owner_panel() {
                Some(panel) => self.state.navigate(panel, Selection::Artifact(a)),
                None => self.state.error(format!(
                    "{}: no panel in this build opens {}",
                    a.path.display(),
                    a.kind.title()
                )),
            },
        }
    }

    fn help_window(&mut self, ctx: &egui::Context) {
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

    fn frame_overlay(&self, ctx: &egui::Context) {
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

    fn status_bar(&mut self, ui: &mut egui::Ui) {
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
                    Level::Error => ui.visuals().error_fg_color,
                };
                ui.separator();
                let recent: Vec<StatusMessage> =
                    self.state.messages.iter().rev().take(20).cloned().collect();
                ui.colored_label(color, &m.text).on_hover_ui(|ui| {
                    ui.strong("Recent messages (newest first)");
                    for m in &recent {
                        let ago = crate::jobs::format_duration(m.at.elapsed());
                        match m.level {
                            Level::Info => ui.label(format!("{ago} ago: {}", m.text)),
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

impl eframe::App for SteerlabApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(t) = frame.info().cpu_usage {
            // The previous frame, UI and paint (eframe's measure).
            self.frame_stats.record(
                std::time::Duration::from_secs_f32(t),
                self.state.jobs.is_busy(),
            );
        }
        self.show(ui);
        if let Some(shot) = &mut self.screenshot {
            if shot.frame(ui.ctx(), self.state.jobs.is_busy()) == ShotOutcome::Close {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
        if self.frame_stats_out.is_some() {
            // Benchmark mode: draw continuously so every frame is measured.
            ui.ctx().request_repaint();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.screenshot.is_some() {
            return;
        }
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted());
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(out) = &self.frame_stats_out {
            let both = serde_json::json!({
                "frame": frame_stats::report(
                    &self.frame_stats,
                    "eframe IntegrationInfo::cpu_usage: UI + paint of each frame, ms",
                ),
                "ui": frame_stats::report(&self.ui_stats, "SteerlabApp::show only, ms"),
            });
            let r = crate::report::write_json(out, &both).map_err(|e| e.to_string());
            match r {
                Ok(()) => eprintln!("steerlab: frame stats written to {}", out.display()),
                Err(e) => eprintln!("steerlab: frame stats: {e}"),
            }
        }
    }
}

/// Opens the desktop app: the default model loads in the background if it is in the cache.
/// With `STEERLAB_SCREENSHOT=out.png` set, it saves a PNG of the window once loading is done
/// and exits.
pub fn run_native() -> anyhow::Result<()> {
    let start = StartOptions::from_env()?;
    let shot = Screenshotter::from_env();
    let screenshot_mode = shot.is_some();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("steerlab")
            .with_app_id("steerlab")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0]),
        // Screenshots must not depend on (or change) a user's saved window state.
        persist_window: !screenshot_mode,
        ..Default::default()
    };
    eframe::run_native(
        "steerlab",
        options,
        Box::new(move |cc| {
            let persisted = if screenshot_mode {
                None
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value::<Persisted>(s, eframe::APP_KEY))
            };
            let mut app = SteerlabApp::new(Box::new(RfdPicker), persisted, start);
            if let Some(s) = shot {
                app = app.with_screenshot(s);
            }
            if let Some(out) = std::env::var_os("STEERLAB_FRAME_STATS").filter(|s| !s.is_empty()) {
                app = app.with_frame_stats_output(PathBuf::from(out));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
