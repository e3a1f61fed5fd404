//! File and folder pickers behind a trait, so panels never call a native dialog directly.
//!
//! [`RfdPicker`] opens the desktop's dialog (through the XDG desktop portal on Linux).
//! [`ScriptedPicker`] answers from a queue and is what tests use: no test may open a dialog.
//! Without a portal, rfd answers `None` at once (the same as "cancelled"), so panels do not call
//! a picker directly: they call `AppState::ask` (`super::dialogs`), which checks
//! [`FilePicker::available`] first and falls back to the built-in file browser.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One entry of a dialog's file-type filter ("GGUF model" → `["gguf"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFilter {
    /// What the user sees.
    pub name: String,
    /// Extensions without the dot.
    pub extensions: Vec<String>,
}

/// Dataset file endings the readers accept: plain, gzip and zstd compressed.
pub const DATASET_EXTENSIONS: &[&str] = &[
    "jsonl",
    "json",
    "csv",
    "tsv",
    "parquet",
    "jsonl.gz",
    "json.gz",
    "csv.gz",
    "tsv.gz",
    "jsonl.zst",
    "json.zst",
    "csv.zst",
    "tsv.zst",
];

impl FileFilter {
    /// The dataset filter (every ending in [`DATASET_EXTENSIONS`]).
    pub fn datasets() -> Self {
        Self::new("Datasets", DATASET_EXTENSIONS)
    }

    /// A filter named `name` accepting `extensions` (without dots).
    pub fn new(name: &str, extensions: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            extensions: extensions.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// Asks the user for a path. Returning `None` means cancelled or no dialog available.
pub trait FilePicker {
    /// Picks an existing file.
    fn pick_file(&self, title: &str, filters: &[FileFilter]) -> Option<PathBuf>;
    /// Picks an existing folder.
    fn pick_folder(&self, title: &str) -> Option<PathBuf>;
    /// Chooses where to save a file, suggesting `default_name`.
    fn save_file(&self, title: &str, default_name: &str, filters: &[FileFilter])
        -> Option<PathBuf>;
    /// Whether this picker can show a dialog on this desktop (decided before any call).
    fn available(&self) -> bool {
        true
    }
    /// Whether a `None` answered within milliseconds means "no dialog could be shown" rather
    /// than "cancelled" (true for rfd, which fails silently without a portal).
    fn instant_none_means_missing(&self) -> bool {
        false
    }
}

/// Whether the desktop offers a native file dialog. On Linux and the BSDs rfd (built with
/// `xdg-portal` only) needs the XDG desktop portal: a D-Bus session bus
/// (`DBUS_SESSION_BUS_ADDRESS` or `$XDG_RUNTIME_DIR/bus`) and the portal's D-Bus service file
/// (`dbus-1/services/org.freedesktop.portal.Desktop.service` under `/usr/share`, `/usr/local/share`
/// or an `XDG_DATA_DIRS` entry). Windows and macOS always have one.
pub fn native_dialog_available() -> bool {
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return true;
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let bus = env("DBUS_SESSION_BUS_ADDRESS").is_some()
        || env("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).join("bus").exists());
    if !bus {
        return false;
    }
    let mut dirs: Vec<PathBuf> = env("XDG_DATA_DIRS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/share"));
    dirs.push(PathBuf::from("/usr/local/share"));
    dirs.iter().any(|d| {
        d.join("dbus-1/services/org.freedesktop.portal.Desktop.service")
            .exists()
    })
}

/// The native dialog (rfd, XDG desktop portal on Linux). [`RfdPicker::new`] checks once
/// whether the desktop has one ([`native_dialog_available`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct RfdPicker {
    available: bool,
}

impl RfdPicker {
    /// A picker that knows whether this desktop can show a native dialog.
    pub fn new() -> Self {
        Self {
            available: native_dialog_available(),
        }
    }
}

impl FilePicker for RfdPicker {
    fn available(&self) -> bool {
        self.available
    }

    fn instant_none_means_missing(&self) -> bool {
        true
    }

    fn pick_file(&self, title: &str, filters: &[FileFilter]) -> Option<PathBuf> {
        let mut d = rfd::FileDialog::new().set_title(title);
        for f in filters {
            d = d.add_filter(f.name.clone(), &f.extensions);
        }
        d.pick_file()
    }

    fn pick_folder(&self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title(title).pick_folder()
    }

    fn save_file(
        &self,
        title: &str,
        default_name: &str,
        filters: &[FileFilter],
    ) -> Option<PathBuf> {
        let mut d = rfd::FileDialog::new()
            .set_title(title)
            .set_file_name(default_name);
        for f in filters {
            d = d.add_filter(f.name.clone(), &f.extensions);
        }
        d.save_file()
    }
}

/// A picker that answers from a queue of prepared answers (for tests and scripted runs).
///
/// Clones share the queue and the call log, so a test can keep a clone, hand another to the
/// app, and push answers or inspect calls later.
#[derive(Debug, Default, Clone)]
pub struct ScriptedPicker {
    answers: Arc<Mutex<VecDeque<Option<PathBuf>>>>,
    calls: Arc<Mutex<Vec<String>>>,
    no_native: bool,
    instant_none: bool,
}

impl ScriptedPicker {
    /// An empty script: every call answers `None` until answers are pushed.
    pub fn new() -> Self {
        Self::default()
    }

    /// A picker that says no native dialog exists (as on plain X11 without a portal), so the
    /// app uses its built-in file browser.
    pub fn without_native(mut self) -> Self {
        self.no_native = true;
        self
    }

    /// A picker whose instant `None` means "no dialog could be shown" (as rfd's).
    pub fn instant_none_is_missing(mut self) -> Self {
        self.instant_none = true;
        self
    }

    /// Queues the answer for the next call (any of the three kinds).
    pub fn push(&self, answer: Option<PathBuf>) -> &Self {
        self.answers.lock().expect("picker queue").push_back(answer);
        self
    }

    /// The calls made so far, as `"pick_file: TITLE"`, `"pick_folder: TITLE"`, `"save_file: TITLE"`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("picker calls").clone()
    }

    fn answer(&self, kind: &str, title: &str) -> Option<PathBuf> {
        self.calls
            .lock()
            .expect("picker calls")
            .push(format!("{kind}: {title}"));
        self.answers
            .lock()
            .expect("picker queue")
            .pop_front()
            .flatten()
    }
}

impl FilePicker for ScriptedPicker {
    fn available(&self) -> bool {
        !self.no_native
    }
    fn instant_none_means_missing(&self) -> bool {
        self.instant_none
    }
    fn pick_file(&self, title: &str, _filters: &[FileFilter]) -> Option<PathBuf> {
        self.answer("pick_file", title)
    }
    fn pick_folder(&self, title: &str) -> Option<PathBuf> {
        self.answer("pick_folder", title)
    }
    fn save_file(
        &self,
        title: &str,
        _default_name: &str,
        _filters: &[FileFilter],
    ) -> Option<PathBuf> {
        self.answer("save_file", title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_picker_answers_in_order_and_logs_calls() {
        let p = ScriptedPicker::new();
        p.push(Some(PathBuf::from("/a.gguf"))).push(None);
        let q = p.clone();
        assert_eq!(q.pick_file("Model", &[]), Some(PathBuf::from("/a.gguf")));
        assert_eq!(q.pick_folder("Folder"), None);
        assert_eq!(
            q.save_file("Save", "x.png", &[]),
            None,
            "empty queue answers None"
        );
        assert_eq!(
            p.calls(),
            vec!["pick_file: Model", "pick_folder: Folder", "save_file: Save"]
        );
    }
}
