//! File dialogs as requests with a continuation: `AppState::ask` (in `ask.rs`) asks the native picker when
//! the desktop has one, else (or when the user chose it, [`DialogMode::BuiltIn`]) queues a
//! [`PendingDialog`] that the shell shows as the built-in file browser
//! (`super::file_browser`) and answers on a later frame. Either way the continuation runs with
//! the chosen path; a cancel runs nothing.
//!
//! Whether a native dialog exists is decided up front ([`FilePicker::available`]: on Linux a
//! D-Bus session bus and the XDG desktop portal's D-Bus service file) and corrected at run
//! time: rfd answers `None` within milliseconds when no dialog could be shown, so an answer
//! faster than [`INSTANT`] from a picker whose [`FilePicker::instant_none_means_missing`]
//! holds switches this session to the built-in browser and opens it for the same request.
//! State-side code: no widgets here. The types are generic over the state `S` their
//! continuations receive (`AppState`), so this file does not import the state that owns them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::picker::FileFilter;

/// A native dialog that answers "nothing" faster than this never showed (no human cancels a
/// dialog within 150 ms).
pub const INSTANT: Duration = Duration::from_millis(150);

/// How many recent folders the browser offers.
pub const MAX_RECENT_DIRS: usize = 8;

/// Which file dialog the user wants (persisted; Settings menu).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DialogMode {
    /// The desktop's dialog when it has one, else the built-in browser.
    #[default]
    Auto,
    /// Always the built-in browser.
    BuiltIn,
}

/// What a dialog asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogKind {
    /// An existing file, offered through these filters (empty: any file).
    Open(Vec<FileFilter>),
    /// An existing folder.
    Folder,
    /// Where to save, suggesting `default_name`.
    Save {
        /// Suggested file name.
        default_name: String,
        /// Offered types; the first one's first extension is added to a bare name.
        filters: Vec<FileFilter>,
    },
}

/// A dialog request: a title and what to pick.
#[derive(Debug, Clone, PartialEq)]
pub struct DialogRequest {
    /// Window title (also what tests see in `ScriptedPicker::calls`).
    pub title: String,
    /// What to pick.
    pub kind: DialogKind,
}

impl DialogRequest {
    /// Open an existing file.
    pub fn open(title: &str, filters: &[FileFilter]) -> Self {
        Self {
            title: title.into(),
            kind: DialogKind::Open(filters.to_vec()),
        }
    }
    /// Choose an existing folder.
    pub fn folder(title: &str) -> Self {
        Self {
            title: title.into(),
            kind: DialogKind::Folder,
        }
    }
    /// Choose where to save, suggesting `default_name`.
    pub fn save(title: &str, default_name: &str, filters: &[FileFilter]) -> Self {
        Self {
            title: title.into(),
            kind: DialogKind::Save {
                default_name: default_name.into(),
                filters: filters.to_vec(),
            },
        }
    }
}

/// What runs with the chosen path.
pub type OnPick<S> = Box<dyn FnOnce(&mut S, PathBuf)>;

/// A request waiting for the built-in browser's answer.
pub struct PendingDialog<S> {
    /// Distinguishes successive requests (the shell makes a new browser per id).
    pub id: u64,
    /// What is asked.
    pub request: DialogRequest,
    pub(crate) on_pick: OnPick<S>,
}

/// The dialog settings and the request in flight.
pub struct Dialogs<S> {
    /// The user's choice (persisted).
    pub mode: DialogMode,
    /// Set when a native dialog proved missing this session (answered `None` instantly).
    pub native_failed: bool,
    /// The request the built-in browser is showing.
    pub pending: Option<PendingDialog<S>>,
    /// Folders of recently chosen paths, newest first (persisted).
    pub recent_dirs: Vec<PathBuf>,
    pub(crate) answers: HashMap<String, PathBuf>,
    pub(crate) next_id: u64,
}

impl<S> Default for Dialogs<S> {
    fn default() -> Self {
        Self {
            mode: DialogMode::default(),
            native_failed: false,
            pending: None,
            recent_dirs: Vec::new(),
            answers: HashMap::new(),
            next_id: 0,
        }
    }
}

/// Moves `path` to the front of `list`, dropping duplicates and the oldest beyond `max`.
pub(crate) fn remember_front(list: &mut Vec<PathBuf>, path: &Path, max: usize) {
    list.retain(|p| p != path);
    list.insert(0, path.to_path_buf());
    list.truncate(max);
}

impl<S> Dialogs<S> {
    /// Puts the folder of `picked` (the folder itself for a folder pick) first in the recent
    /// folders.
    pub fn remember(&mut self, picked: &Path, folder_pick: bool) {
        let dir = if folder_pick {
            Some(picked)
        } else {
            picked.parent().filter(|p| !p.as_os_str().is_empty())
        };
        if let Some(d) = dir {
            remember_front(&mut self.recent_dirs, d, MAX_RECENT_DIRS);
        }
    }

    /// The answer stored for `key` by a request made with `AppState::ask_into`, removed.
    pub fn take_answer(&mut self, key: &str) -> Option<PathBuf> {
        self.answers.remove(key)
    }
}

/// `~` and `~/x` → `$HOME`, `$HOME/x`; anything else unchanged.
pub fn expand_tilde(s: &str) -> String {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return s.to_string();
    };
    if s == "~" {
        return PathBuf::from(home).display().to_string();
    }
    match s.strip_prefix("~/") {
        Some(rest) => PathBuf::from(home).join(rest).display().to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::picker::ScriptedPicker;
    use crate::app::state::AppState;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn tilde_expands_only_at_the_start() {
        let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
            return;
        };
        let home = PathBuf::from(home);
        assert_eq!(expand_tilde("~"), home.display().to_string());
        assert_eq!(
            expand_tilde("~/a/b"),
            home.join("a/b").display().to_string()
        );
        assert_eq!(expand_tilde("/x/~/y"), "/x/~/y");
        assert_eq!(expand_tilde("~user/x"), "~user/x");
    }

    #[test]
    fn native_answers_at_once_and_builtin_waits_for_the_browser() {
        let picker = ScriptedPicker::new();
        picker.push(Some(PathBuf::from("/d/a.jsonl")));
        let mut s = AppState::new(Box::new(picker.clone()));
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        s.ask(DialogRequest::open("Data", &[]), move |_, p| {
            g.borrow_mut().push(p)
        });
        assert_eq!(*got.borrow(), vec![PathBuf::from("/d/a.jsonl")]);
        assert!(s.dialogs.pending.is_none());
        assert_eq!(s.dialogs.recent_dirs, vec![PathBuf::from("/d")]);

        s.dialogs.mode = DialogMode::BuiltIn;
        let g = got.clone();
        s.ask(DialogRequest::folder("Out"), move |_, p| {
            g.borrow_mut().push(p)
        });
        assert_eq!(picker.calls(), vec!["pick_file: Data"], "no native call");
        let id = s.dialogs.pending.as_ref().expect("browser pending").id;
        s.answer_dialog(id + 1, Some(PathBuf::from("/wrong")));
        assert_eq!(got.borrow().len(), 1, "a stale id is ignored");
        s.answer_dialog(id, Some(PathBuf::from("/out")));
        assert_eq!(got.borrow().last(), Some(&PathBuf::from("/out")));
        assert_eq!(s.dialogs.recent_dirs[0], PathBuf::from("/out"));
        assert!(s.dialogs.pending.is_none());
    }

    #[test]
    fn a_slow_cancel_is_a_cancel_and_an_unavailable_picker_opens_the_browser() {
        let picker = ScriptedPicker::new();
        let mut s = AppState::new(Box::new(picker.clone()));
        s.ask(DialogRequest::open("Data", &[]), |_, _| panic!("cancelled"));
        assert!(s.dialogs.pending.is_none(), "scripted None is a cancel");

        let mut s = AppState::new(Box::new(ScriptedPicker::new().without_native()));
        s.ask_into(DialogRequest::save("Save", "x.svg", &[]), "k");
        let id = s.dialogs.pending.as_ref().unwrap().id;
        s.answer_dialog(id, None);
        assert!(s.dialogs.pending.is_none());
        assert_eq!(s.dialogs.take_answer("k"), None, "cancel answers nothing");
        s.ask_into(DialogRequest::save("Save", "x.svg", &[]), "k");
        let id = s.dialogs.pending.as_ref().unwrap().id;
        s.answer_dialog(id, Some(PathBuf::from("/t/x.svg")));
        assert_eq!(s.dialogs.take_answer("k"), Some(PathBuf::from("/t/x.svg")));
    }

    #[test]
    fn an_instant_none_from_a_real_dialog_switches_to_the_browser() {
        let picker = ScriptedPicker::new().instant_none_is_missing();
        let mut s = AppState::new(Box::new(picker.clone()));
        s.ask(DialogRequest::open("Data", &[]), |_, _| {});
        assert!(s.dialogs.native_failed);
        assert!(
            s.dialogs.pending.is_some(),
            "the browser opens for the same request"
        );
        s.ask(DialogRequest::open("Again", &[]), |_, _| {});
        assert_eq!(
            picker.calls(),
            vec!["pick_file: Data"],
            "native not tried again"
        );
    }
}
