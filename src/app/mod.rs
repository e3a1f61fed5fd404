//! The eframe desktop application: [`AppState`] (what is loaded and made), one file per panel,
//! the job status area, file pickers behind a trait, persistence and the screenshot mode.
//!
//! GUI only: every computation is a call into the library (`crate::model`, `crate::data`, ...),
//! run on a background job when it can take more than a frame. No algorithm code here.
use eframe::egui;
use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod dataset;
mod dissect;
mod engine;
mod job_list;
pub mod panels;
mod picker;
mod screenshot;
mod state;
mod widgets;

pub use engine::{GenerateSettings, LoadedModel, ModelSummary};
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
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            recent: Recent::default(),
            last_panel: PanelId::Model,
            dark: true,
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
        let current = start.panel.unwrap_or(p.last_panel);
        Self {
            state,
            panels: HashMap::new(),
            current,
            dark: p.dark,
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

    /// The panel shown.
    pub fn current_panel(&self) -> PanelId {
        self.current
    }

    /// Shows another panel.
    pub fn select(&mut self, id: PanelId) {
        self.current = id;
    }

    /// The settings to persist.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            recent: self.state.recent.clone(),
            last_panel: self.current,
            dark: self.dark,
        }
    }

    /// Draws one frame of the whole window into `ui` (the root). Tests call this directly.
    pub fn show(&mut self, ui: &mut egui::Ui) {
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
        self.shortcuts(&ctx);

        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("sidebar")
            .resizable(true)
            .default_size(190.0)
            .show(ui, |ui| self.sidebar(ui));
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
        if self.state.jobs.is_busy() {
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
        if let Some(path) = self.start.data.take() {
            panels::DataPanel::start_open(&mut self.state, path);
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        // Ctrl+1..9 switch panels.
        let keys = [
            egui::Key::Num1,
            egui::Key::Num2,
            egui::Key::Num3,
            egui::Key::Num4,
            egui::Key::Num5,
            egui::Key::Num6,
            egui::Key::Num7,
            egui::Key::Num8,
            egui::Key::Num9,
        ];
        for (i, p) in PanelId::ALL.iter().enumerate().take(keys.len()) {
            if ctx.input_mut(|inp| inp.consume_key(egui::Modifiers::COMMAND, keys[i])) {
                self.current = *p;
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("steerlab");
            ui.weak("activation steering & preference interpretability");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let label = if self.dark {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui
                    .button(label)
                    .on_hover_text("Switch between dark and light themes")
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
        ui.strong("Loaded");
        match &self.state.model {
            Some(m) => {
                ui.label(format!("Model: {}", m.summary.name));
                ui.weak(format!(
                    "{} · {} layers",
                    m.summary.architecture, m.summary.n_layers
                ));
            }
            None => {
                ui.weak("Model: none");
            }
        }
        if self.state.datasets.is_empty() {
            ui.weak("Data: none");
        }
        let mut select_data = None;
        for (i, d) in self.state.datasets.iter().enumerate() {
            let name = d
                .path
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let sel = self.state.active_dataset == Some(i);
            if ui
                .selectable_label(sel, format!("Data: {name}"))
                .on_hover_text(d.path.display().to_string())
                .clicked()
            {
                select_data = Some(i);
            }
        }
        if let Some(i) = select_data {
            self.state.active_dataset = Some(i);
            self.current = PanelId::Data;
        }
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
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
        if let Some(shot) = &mut self.screenshot {
            if shot.frame(ui.ctx(), self.state.jobs.is_busy()) == ShotOutcome::Close {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.screenshot.is_some() {
            return;
        }
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted());
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
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
