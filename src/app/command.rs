//! Commands: what a view asks the shell to do beyond its own feature's state, queued with
//! `AppState::send` during the frame and applied by the shell after it
//! (`SteerlabApp::apply_commands`). A view never calls another view or shell code, and state
//! code never calls a view. A new cross-feature request is a new variant here and one arm in
//! `apply_commands`.
use std::path::PathBuf;

/// One request to the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    /// Open a dataset with the default options (detect the layout, skip invalid rows).
    OpenDataset(PathBuf),
}
