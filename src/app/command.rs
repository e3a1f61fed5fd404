//! Commands: what a view (or a shortcut) asks the shell to do to the whole app, queued with
//! `AppState::send` during the frame and applied by the shell after it
//! (`SteerlabApp::apply_commands`). A view never calls shell code, and state code never calls a
//! view: work that belongs to another feature or to the shell goes through here.
use std::path::PathBuf;

use super::artifacts::Artifact;
use super::nav::PanelId;

/// One request to the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    /// Open a dataset with the default options (detect the layout, skip invalid rows).
    OpenDataset(PathBuf),
    /// Load a model with the default device and dtype.
    LoadModel(PathBuf),
    /// Show a panel.
    ShowPanel(PanelId),
    /// Open an artifact in the panel that owns it (models and datasets are (re)loaded).
    OpenArtifact(Artifact),
}
