//! File and folder pickers behind a trait, so panels never call a native dialog directly.
//!
//! [`RfdPicker`] opens the desktop's dialog (through the XDG desktop portal on Linux).
//! [`ScriptedPicker`] answers from a queue and is what tests use: no test may open a dialog.
//! Without a portal, rfd answers `None` at once (the same as "cancelled"), which is why every
//! place that opens a picker also has a text field where a path can be typed.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One entry of a dialog's file-type filter ("GGUF model" → `["gguf"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFilter {
    /// What the user sees.
    pub name: String,
    /// Extensions without the dot.
    pub extensions: Vec<String>,
}

impl FileFilter {
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
}

/// The native dialog (rfd, XDG desktop portal on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct RfdPicker;

impl FilePicker for RfdPicker {
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
}

impl ScriptedPicker {
    /// An empty script: every call answers `None` until answers are pushed.
    pub fn new() -> Self {
        Self::default()
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
