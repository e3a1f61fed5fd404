//! [`AppState`]: everything the workbench has loaded and made (model, datasets, results, jobs),
//! kept apart from the panels that display it. Panels get `&mut AppState` each frame. Each
//! feature's own state is a field here, defined in `src/app/<feature>/state.rs`; this file
//! imports no view.
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::artifacts::Artifacts;
use super::command::AppCommand;
use super::data::DataView;
use super::job_list::{JobId, JobList};
use super::model::LoadedModel;
use super::nav::{Navigation, PanelId, Selection};
use super::picker::FilePicker;

/// How many recent paths are remembered per kind.
pub const MAX_RECENT: usize = 8;

/// Severity of a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something finished or was loaded.
    Info,
    /// Done, with a caveat the user should read.
    Warning,
    /// Something failed.
    Error,
}

/// True for the error text a job ends with when the user cancelled it (the library's
/// trainers, sweeps and fits answer "cancelled", possibly after context).
pub fn is_cancel(e: &str) -> bool {
    let t = e.trim();
    t == "cancelled" || t.ends_with(": cancelled")
}

/// A line in the status log (job results, load errors).
#[derive(Debug, Clone)]
pub struct StatusMessage {
    /// Severity.
    pub level: Level,
    /// The text shown.
    pub text: String,
    /// When it was posted.
    pub at: Instant,
}

/// Recently opened paths, newest first, and other settings restored between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    /// Model folders and GGUF files.
    pub models: Vec<PathBuf>,
    /// Dataset files.
    pub data: Vec<PathBuf>,
}

impl Recent {
    /// Moves `path` to the front of `list`, dropping duplicates and the oldest beyond [`MAX_RECENT`].
    pub fn remember(list: &mut Vec<PathBuf>, path: &Path) {
        super::dialogs::remember_front(list, path, MAX_RECENT);
    }
}

/// The workbench's state: owned data, results and jobs. Panels only view and edit it.
pub struct AppState {
    /// Opens native file dialogs (a scripted one in tests). Call [`AppState::ask`], not this:
    /// it falls back to the built-in browser.
    pub picker: Box<dyn FilePicker>,
    /// File-dialog settings and the built-in browser's pending request (`super::dialogs`).
    pub dialogs: super::dialogs::Dialogs<AppState>,
    /// Background jobs.
    pub jobs: JobList<AppState>,
    /// The loaded model, if any.
    pub model: Option<LoadedModel>,
    /// The job loading a model, while it runs.
    pub model_job: Option<JobId>,
    /// Why the last model load failed (cleared by a successful load).
    pub model_error: Option<String>,
    /// Opened datasets (checked, previewed, maybe split).
    pub datasets: Vec<DataView>,
    /// Index into `datasets` of the one the Data panel shows.
    pub active_dataset: Option<usize>,
    /// The job opening a dataset, while it runs.
    pub data_job: Option<JobId>,
    /// A prompt to generate from as soon as a model is loaded (start-up option).
    pub pending_prompt: Option<String>,
    /// Recent files.
    pub recent: Recent,
    /// What was loaded and made (sidebar; persisted). Panels call
    /// `state.artifacts.add(kind, name, path)` after saving or loading something.
    pub artifacts: Artifacts,
    /// A cross-link waiting for its panel (see [`AppState::navigate`]).
    pub navigation: Option<Navigation>,
    /// Status log, oldest first.
    pub messages: Vec<StatusMessage>,
    /// PNG plot exports waiting for the window's pixels.
    pub(crate) png_exports: Vec<super::screenshot::PendingPng>,
    /// Commands queued this frame for the shell (see [`AppState::send`]).
    pub commands: Vec<AppCommand>,
    /// Feature-discovery runs and the Features panel's settings.
    pub features: super::features::FeaturesState,
    /// What the Steer panel has made (vectors, training, sweeps, generations).
    pub steer: super::steer::SteerState,
    /// The Dissect panel's settings and last fit.
    pub dissect: super::dissect::DissectState,
    ctx: Option<egui::Context>,
}

impl AppState {
    /// A fresh state using `picker` for dialogs.
    pub fn new(picker: Box<dyn FilePicker>) -> Self {
        Self {
            picker,
            dialogs: Default::default(),
            jobs: JobList::default(),
            model: None,
            model_job: None,
            model_error: None,
            datasets: Vec::new(),
            active_dataset: None,
            data_job: None,
            pending_prompt: None,
            recent: Recent::default(),
            artifacts: Artifacts::default(),
            navigation: None,
            messages: Vec::new(),
            png_exports: Vec::new(),
            commands: Vec::new(),
            features: Default::default(),
            steer: Default::default(),
            dissect: Default::default(),
            ctx: None,
        }
    }

    /// Remembers the egui context so job threads can wake the UI.
    pub(crate) fn set_ctx(&mut self, ctx: &egui::Context) {
        if self.ctx.is_none() {
            self.ctx = Some(ctx.clone());
        }
    }

    /// A callback that asks egui to repaint (given to job threads).
    pub fn waker(&self) -> Option<Arc<dyn Fn() + Send + Sync>> {
        let ctx = self.ctx.clone()?;
        Some(Arc::new(move || ctx.request_repaint()))
    }

    /// Posts an informational status line.
    pub fn info(&mut self, text: impl Into<String>) {
        self.post(Level::Info, text.into());
    }

    /// Posts a warning status line (done, with a caveat).
    pub fn warn(&mut self, text: impl Into<String>) {
        self.post(Level::Warning, text.into());
    }

    /// Reports a job that ended with error text `e`: a cancel ([`is_cancel`]) is neutral (an
    /// info line "WHAT cancelled", `None`); anything else is an error line "WHAT failed: E",
    /// and `e` is returned for the panel's error slot.
    pub fn job_failed(&mut self, what: &str, e: String) -> Option<String> {
        if is_cancel(&e) {
            self.info(format!("{what} cancelled"));
            None
        } else {
            self.error(format!("{what} failed: {e}"));
            Some(e)
        }
    }

    /// Posts an error status line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.post(Level::Error, text.into());
    }

    fn post(&mut self, level: Level, text: String) {
        self.messages.push(StatusMessage {
            level,
            text,
            at: Instant::now(),
        });
        if self.messages.len() > 200 {
            self.messages.remove(0);
        }
    }

    /// Asks the shell to show `panel` and hand it `selection` (cross-links such as
    /// feature → vector, vector → factor, factor → pairs). The shell switches panels before the
    /// next frame; the panel picks the selection up with [`AppState::take_selection`].
    pub fn navigate(&mut self, panel: PanelId, selection: Selection) {
        self.navigation = Some(Navigation { panel, selection });
    }

    /// The selection waiting for `panel`, removed from the queue (call it at the top of the
    /// panel's `ui`). A selection its panel does not take is dropped after one frame.
    pub fn take_selection(&mut self, panel: PanelId) -> Option<Selection> {
        if self.navigation.as_ref().is_some_and(|n| n.panel == panel) {
            self.navigation.take().map(|n| n.selection)
        } else {
            None
        }
    }

    /// Queues a command for the shell, applied after this frame's panels (opening a dataset
    /// from the Steer panel, loading a model, showing a panel, opening an artifact).
    pub fn send(&mut self, command: AppCommand) {
        self.commands.push(command);
    }

    /// The latest status line, if any.
    pub fn last_message(&self) -> Option<&StatusMessage> {
        self.messages.last()
    }
}

/// Background jobs (the list itself is `super::job_list`, generic over this state).
impl AppState {
    /// Runs `work` on a background thread (it receives a progress sink that also carries the
    /// cancel flag); when it ends, `on_done` gets its result on the UI thread.
    pub fn spawn_job<T, F, D>(&mut self, name: &str, work: F, on_done: D) -> JobId
    where
        T: Send + 'static,
        F: FnOnce(&crate::jobs::JobCtx<T>) -> anyhow::Result<T> + Send + 'static,
        D: FnOnce(Result<T, String>, &mut AppState) + 'static,
    {
        let handle = crate::jobs::spawn(name, self.waker(), work);
        self.jobs.push(handle, Box::new(on_done))
    }

    /// Drains job events and runs the callbacks of finished jobs. Called once per frame.
    pub fn poll_jobs(&mut self) {
        for job in self.jobs.collect_finished() {
            job.finish(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_job_is_neutral_and_a_failure_is_an_error() {
        let mut s = AppState::new(Box::new(crate::app::ScriptedPicker::new()));
        assert_eq!(s.job_failed("Sweep", "cancelled".into()), None);
        let m = s.last_message().unwrap();
        assert_eq!((m.level, m.text.as_str()), (Level::Info, "Sweep cancelled"));
        assert_eq!(s.job_failed("Fit", "sampling: cancelled".into()), None);
        assert_eq!(
            s.job_failed("Sweep", "no A/B items".into()).as_deref(),
            Some("no A/B items")
        );
        let m = s.last_message().unwrap();
        assert_eq!(
            (m.level, m.text.as_str()),
            (Level::Error, "Sweep failed: no A/B items")
        );
        assert!(!is_cancel("cancelled runs: 3 of 5 kept"));
    }

    #[test]
    fn recent_list_dedups_and_caps() {
        let mut l = Vec::new();
        for i in 0..10 {
            Recent::remember(&mut l, Path::new(&format!("/f{i}")));
        }
        Recent::remember(&mut l, Path::new("/f5"));
        assert_eq!(l.len(), MAX_RECENT);
        assert_eq!(l[0], PathBuf::from("/f5"));
        assert_eq!(
            l.iter()
                .filter(|p| p.as_path() == std::path::Path::new("/f5"))
                .count(),
            1
        );
        assert_eq!(l[1], PathBuf::from("/f9"));
    }
}
