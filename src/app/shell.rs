//! The shell: [`SteerlabApp`] owns the [`AppState`], the panels' views and the window chrome.
//! Each frame it polls jobs, handles shortcuts, draws the chrome and the current panel, then
//! applies the [`AppCommand`]s the panel queued (`state.send`) and drops a cross-link its
//! panel did not take. It is the only code that creates views (through `super::view`).
use eframe::egui;
use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::artifacts::{Artifact, ArtifactKind, Artifacts};
use super::command::AppCommand;
use super::dialogs::{DialogMode, DialogRequest};
use super::file_browser::{self, FileBrowser};
use super::frame_stats::{self, FrameStats};
use super::nav::{PanelId, Selection};
use super::picker::{FileFilter, FilePicker, RfdPicker};
use super::screenshot::{Screenshotter, ShotOutcome};
use super::shortcuts::{self, Action};
use super::start::StartOptions;
use super::state::{AppState, Recent};
use super::view::{self, Panel};
use super::{data, export, features, model, steer};

mod chrome;

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
    /// Native dialogs when the desktop has them, or always the built-in browser.
    pub dialog_mode: DialogMode,
    /// Folders of recently chosen files (the built-in browser's "Recent folders").
    pub recent_dirs: Vec<PathBuf>,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            recent: Recent::default(),
            last_panel: PanelId::Model,
            dark: true,
            artifacts: Artifacts::default(),
            dialog_mode: DialogMode::Auto,
            recent_dirs: Vec::new(),
        }
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
    browser: Option<FileBrowser>,
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
        state.dialogs.mode = p.dialog_mode;
        state.dialogs.recent_dirs = p.recent_dirs;
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
            browser: None,
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
            dialog_mode: self.state.dialogs.mode,
            recent_dirs: self.state.dialogs.recent_dirs.clone(),
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
            if let Some([w, h]) = self.start.window {
                // eframe restores the saved window geometry over the builder's inner size, so an
                // explicit size is applied again once the window exists.
                ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(w, h)));
            }
            self.on_start();
        }
        self.state.poll_jobs();
        export::poll_png_exports(&mut self.state);
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
            let panel = self.panels.entry(id).or_insert_with(|| view::create(id));
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
        self.file_browser(&ctx);
        self.apply_commands();
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
                model::start_model_load(&mut self.state, path, Default::default());
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
            data::open_default(&mut self.state, path.clone());
        }
        let steer_start = std::mem::take(&mut self.start.steer);
        steer::SteerState::apply_start(&mut self.state, steer_start, data);
        let f = std::mem::take(&mut self.start.features);
        features::apply_start(&mut self.state, f.run.as_deref(), f.train, f.error);
        self.state.features.pending_apply = f.apply;
        if let Some(v) = f.view {
            self.state.features.view = v;
        }
        if let Some(dir) = self.start.file_browser.take() {
            Recent::remember(&mut self.state.dialogs.recent_dirs, &dir);
            let filters = [FileFilter::datasets()];
            self.state
                .ask_builtin(DialogRequest::open("Dataset file", &filters), |s, p| {
                    data::open_default(s, p)
                });
        }
    }

    /// Shows the built-in file browser while a dialog request waits for it, and hands its
    /// answer back (`AppState::answer_dialog`).
    fn file_browser(&mut self, ctx: &egui::Context) {
        let Some(pending) = &self.state.dialogs.pending else {
            self.browser = None;
            return;
        };
        if self.browser.as_ref().is_none_or(|b| b.id != pending.id) {
            let start = self
                .state
                .dialogs
                .recent_dirs
                .iter()
                .find(|d| d.is_dir())
                .cloned()
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_else(|| PathBuf::from("/"));
            self.browser = Some(FileBrowser::new(pending.id, pending.request.clone(), start));
        }
        let Some(b) = self.browser.as_mut() else {
            return;
        };
        let outcome = b.ui(ctx, &self.state.dialogs.recent_dirs);
        let id = b.id;
        match outcome {
            file_browser::Outcome::Open => {}
            file_browser::Outcome::Chosen(p) => {
                self.browser = None;
                self.state.answer_dialog(id, Some(p));
            }
            file_browser::Outcome::Cancelled => {
                self.browser = None;
                self.state.answer_dialog(id, None);
            }
        }
    }

    /// Applies the commands queued during this frame, in order.
    fn apply_commands(&mut self) {
        for c in std::mem::take(&mut self.state.commands) {
            match c {
                AppCommand::OpenDataset(p) => data::open_default(&mut self.state, p),
            }
        }
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
            && !egui::Popup::is_any_open(ctx)
            && self.state.dialogs.pending.is_none();
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
                let filters = [FileFilter::datasets()];
                self.state
                    .ask(DialogRequest::open("Dataset file", &filters), |s, p| {
                        data::open_default(s, p)
                    });
            }
            Action::OpenModelFile | Action::OpenModelFolder => {
                self.current = PanelId::Model;
                if self.state.model_job.is_some() {
                    return;
                }
                let request = if action == Action::OpenModelFile {
                    let f = [FileFilter::new("GGUF model", &["gguf"])];
                    DialogRequest::open("Model path", &f)
                } else {
                    DialogRequest::folder("Model path")
                };
                self.state.ask(request, |s, p| {
                    model::start_model_load(s, p, Default::default())
                });
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
                    model::start_model_load(&mut self.state, a.path, Default::default());
                }
            }
            ArtifactKind::Dataset => {
                self.current = PanelId::Data;
                match self.state.datasets.iter().position(|d| d.path == a.path) {
                    Some(i) => self.state.active_dataset = Some(i),
                    None if self.state.data_job.is_none() => {
                        data::open_default(&mut self.state, a.path)
                    }
                    None => {}
                }
            }
            _ => match PanelId::owner_of(&a) {
                Some(panel) => self.state.navigate(panel, Selection::Artifact(a)),
                None => self.state.error(format!(
                    "{}: no panel in this build opens {}",
                    a.path.display(),
                    a.kind.title()
                )),
            },
        }
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
    let shot = start
        .screenshot
        .clone()
        .map(|(out, timeout)| Screenshotter::new(out, timeout));
    let frame_stats_out = start.frame_stats.clone();
    let screenshot_mode = shot.is_some();
    let size = start.window.unwrap_or([1280.0, 800.0]);
    // A screenshot neither reads nor writes the user's saved state (window geometry, egui
    // memory such as scroll offsets): eframe gets a private, empty storage file.
    let shot_storage = screenshot_mode
        .then(|| std::env::temp_dir().join(format!("steerlab-shot-{}.ron", std::process::id())));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("steerlab")
            .with_app_id("steerlab")
            .with_inner_size(size)
            .with_min_inner_size([800.0, 500.0]),
        // Screenshots must not depend on (or change) a user's saved window state.
        persist_window: !screenshot_mode,
        persistence_path: shot_storage.clone(),
        ..Default::default()
    };
    let r = eframe::run_native(
        "steerlab",
        options,
        Box::new(move |cc| {
            let persisted = if screenshot_mode {
                None
            } else {
                cc.storage
                    .and_then(|s| eframe::get_value::<Persisted>(s, eframe::APP_KEY))
            };
            let mut app = SteerlabApp::new(Box::new(RfdPicker::new()), persisted, start);
            if let Some(s) = shot {
                app = app.with_screenshot(s);
            }
            if let Some(out) = frame_stats_out {
                app = app.with_frame_stats_output(out);
            }
            Ok(Box::new(app))
        }),
    );
    if let Some(file) = shot_storage {
        let _ = std::fs::remove_file(file);
    }
    r.map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
