//! The file-dialog methods of [`AppState`]: ask for a path and run a continuation with it,
//! through the native picker or the built-in browser (`super::dialogs` holds the types and the
//! policy, `super::file_browser` the browser's view). No widgets here.
use std::path::PathBuf;
use std::time::Instant;

use super::dialogs::{DialogKind, DialogMode, DialogRequest, PendingDialog, INSTANT};
use super::state::AppState;

impl AppState {
    /// Asks the user for a path and runs `on_pick` with it: at once through the native picker
    /// when the desktop has one (and the user did not choose the built-in browser), else when
    /// the built-in browser is confirmed on a later frame. A cancel runs nothing. A request
    /// made while another is open replaces it.
    pub fn ask(
        &mut self,
        request: DialogRequest,
        on_pick: impl FnOnce(&mut AppState, PathBuf) + 'static,
    ) {
        let native = self.dialogs.mode == DialogMode::Auto
            && !self.dialogs.native_failed
            && self.picker.available();
        if native {
            let t0 = Instant::now();
            let got = match &request.kind {
                DialogKind::Open(f) => self.picker.pick_file(&request.title, f),
                DialogKind::Folder => self.picker.pick_folder(&request.title),
                DialogKind::Save {
                    default_name,
                    filters,
                } => self.picker.save_file(&request.title, default_name, filters),
            };
            match got {
                Some(p) => {
                    self.dialogs
                        .remember(&p, request.kind == DialogKind::Folder);
                    on_pick(self, p);
                    return;
                }
                None if self.picker.instant_none_means_missing() && t0.elapsed() < INSTANT => {
                    self.dialogs.native_failed = true;
                    self.info(
                        "No desktop file dialog opened (no XDG desktop portal?): using the \
                         built-in file browser for this session.",
                    );
                }
                None => return,
            }
        }
        self.ask_builtin(request, on_pick);
    }

    /// [`AppState::ask`] through the built-in browser whatever the desktop offers.
    pub fn ask_builtin(
        &mut self,
        request: DialogRequest,
        on_pick: impl FnOnce(&mut AppState, PathBuf) + 'static,
    ) {
        self.dialogs.next_id += 1;
        self.dialogs.pending = Some(PendingDialog {
            id: self.dialogs.next_id,
            request,
            on_pick: Box::new(on_pick),
        });
    }

    /// [`AppState::ask`] for a view: the chosen path is kept under `key` until the view takes
    /// it with [`Dialogs::take_answer`] (the same frame for a native dialog, a later one for
    /// the built-in browser).
    pub fn ask_into(&mut self, request: DialogRequest, key: &str) {
        let key = key.to_string();
        self.ask(request, move |s, p| {
            s.dialogs.answers.insert(key, p);
        });
    }

    /// Answers the built-in browser's request `id` (the shell calls this): runs its
    /// continuation with `path`, or drops it when `path` is `None` (cancelled).
    pub fn answer_dialog(&mut self, id: u64, path: Option<PathBuf>) {
        if self.dialogs.pending.as_ref().is_none_or(|p| p.id != id) {
            return;
        }
        let Some(p) = self.dialogs.pending.take() else {
            return;
        };
        if let Some(path) = path {
            self.dialogs
                .remember(&path, p.request.kind == DialogKind::Folder);
            (p.on_pick)(self, path);
        }
    }
}
