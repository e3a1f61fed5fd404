//! The eframe desktop application. Layout (docs/design/app.md has the why):
//!
//! - `shell` ([`SteerlabApp`]): the window, chrome, shortcuts, persistence; applies commands.
//! - `state` ([`AppState`]): what is loaded and made; each feature's state is a field of it.
//! - one folder per feature, `model/`, `generate/`, `data/`, `steer/`, `features/`,
//!   `dissect/`: `state.rs` (what the feature owns and its jobs; no view code) and `panel.rs`
//!   (its view, a [`Panel`]), larger views split beside it.
//! - `nav` ([`PanelId`], [`Navigation`], [`Selection`]), `command` ([`AppCommand`]), `view`
//!   (the [`Panel`] trait and the one `PanelId` → view map), `start` (every `STEERLAB_*`
//!   start-up variable), `live` (the recorder behind live plots), `export` ("Save as"),
//!   `widgets` (shared view helpers), `dialogs` + `file_browser` (file dialogs with a built-in
//!   fallback), `artifacts`, `job_list`, `picker`, `screenshot`,
//!   `shortcuts`, `frame_stats`.
//!
//! GUI only: every computation is a call into the library (`crate::model`, `crate::data`, ...),
//! run on a background job when it can take more than a frame. No algorithm code here.
mod artifacts;
mod ask;
mod command;
mod data;
mod dialogs;
mod dissect;
mod export;
mod features;
mod file_browser;
pub mod frame_stats;
mod generate;
mod job_list;
mod live;
mod model;
pub mod nav;
mod picker;
mod screenshot;
mod shell;
pub mod shortcuts;
mod start;
mod state;
pub mod steer;
pub mod view;
pub mod widgets;

pub use artifacts::{Artifact, ArtifactKind, Artifacts};
pub use command::AppCommand;
pub use dialogs::{DialogKind, DialogMode, DialogRequest, Dialogs};
pub use features::FeatureView;
pub use frame_stats::FrameStats;
pub use generate::GenerateSettings;
pub use job_list::{JobId, JobList, JobStatus};
pub use model::{LoadedModel, ModelSummary};
pub use nav::{Navigation, PanelId, Selection};
pub use picker::{native_dialog_available, FileFilter, FilePicker, RfdPicker, ScriptedPicker};
pub use screenshot::{write_png, Screenshotter, ShotOutcome};
pub use shell::{run_native, Persisted, SteerlabApp};
pub use start::{FeaturesStart, StartOptions, SteerStart};
pub use state::{AppState, Level, Recent, StatusMessage};
pub use view::Panel;
