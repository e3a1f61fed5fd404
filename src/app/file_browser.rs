//! The built-in file browser: a modal window for open, save and folder requests, used when
//! the desktop has no native dialog (no XDG desktop portal) or when the user chose it in
//! Settings. Folders first, then files matching the request's filter (or all files); a typed
//! location (with `~`), Up and Home; places (home, the default data and model folders, recent
//! folders); a file-name field and an overwrite confirmation when saving.
//!
//! View code: it keeps only what the window shows (the folder, its listing, typed text); the
//! request and its continuation stay in `AppState::dialogs`, and the shell hands the outcome
//! back with `AppState::answer_dialog`.
use eframe::egui;
use std::path::{Path, PathBuf};

use super::dialogs::{DialogKind, DialogRequest};
use super::picker::FileFilter;
use super::widgets::expand_tilde;

/// One row of the listing.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dir: bool,
    size: u64,
}

/// What the browser did this frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Still open.
    Open,
    /// The user chose this path.
    Chosen(PathBuf),
    /// Cancel, Esc or the window closed.
    Cancelled,
}

/// The built-in browser's view state for one request.
pub struct FileBrowser {
    /// The request id it answers (`PendingDialog::id`).
    pub id: u64,
    request: DialogRequest,
    dir: PathBuf,
    location: String,
    name: String,
    entries: Vec<Entry>,
    all_files: bool,
    show_hidden: bool,
    confirm: Option<PathBuf>,
    error: Option<String>,
}

impl FileBrowser {
    /// A browser for `request` showing `start` (or the home folder, or `/`, when `start`
    /// cannot be listed).
    pub fn new(id: u64, request: DialogRequest, start: PathBuf) -> Self {
        let name = match &request.kind {
            DialogKind::Save { default_name, .. } => default_name.clone(),
            _ => String::new(),
        };
        let mut b = Self {
            id,
            request,
            dir: PathBuf::new(),
            location: String::new(),
            name,
            entries: Vec::new(),
            all_files: false,
            show_hidden: false,
            confirm: None,
            error: None,
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);
        for d in [Some(start), home, Some(PathBuf::from("/"))]
            .into_iter()
            .flatten()
        {
            if b.go(&d) {
                break;
            }
        }
        b.error = None;
        b
    }

    fn filters(&self) -> &[FileFilter] {
        match &self.request.kind {
            DialogKind::Open(f) => f,
            DialogKind::Save { filters, .. } => filters,
            DialogKind::Folder => &[],
        }
    }

    /// Lists `dir` (folders first, then by name ignoring case); false and an error line when it
    /// cannot be read.
    fn go(&mut self, dir: &Path) -> bool {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(dir)
        };
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                let mut entries: Vec<Entry> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| {
                        let p = e.path();
                        let meta = std::fs::metadata(&p).ok();
                        Entry {
                            name: e.file_name().to_string_lossy().into_owned(),
                            dir: meta.as_ref().is_some_and(|m| m.is_dir()),
                            size: meta.map(|m| m.len()).unwrap_or(0),
                        }
                    })
                    .collect();
                entries.sort_by_cached_key(|e| (!e.dir, e.name.to_lowercase()));
                self.entries = entries;
                self.location = dir.display().to_string();
                self.dir = dir;
                self.confirm = None;
                self.error = None;
                true
            }
            Err(e) => {
                self.error = Some(format!("Cannot open {}: {e}", dir.display()));
                false
            }
        }
    }

    fn matches(&self, name: &str) -> bool {
        let filters = self.filters();
        if self.all_files || filters.is_empty() {
            return true;
        }
        let lower = name.to_lowercase();
        filters
            .iter()
            .flat_map(|f| &f.extensions)
            .any(|ext| lower.ends_with(&format!(".{}", ext.to_lowercase())))
    }

    fn visible(&self) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| self.show_hidden || !e.name.starts_with('.'))
            .filter(|e| e.dir || self.matches(&e.name))
            .cloned()
            .collect()
    }

    /// A save name with the first filter's extension when it has none of the filters'.
    fn save_target(&self) -> Option<PathBuf> {
        let name = expand_tilde(self.name.trim());
        if name.is_empty() {
            return None;
        }
        let mut path = self.dir.join(&name);
        let filters = self.filters();
        if !filters.is_empty() && !self.matches_any_filter(&name) {
            if let Some(ext) = filters.iter().flat_map(|f| &f.extensions).next() {
                let mut s = path.into_os_string();
                s.push(format!(".{ext}"));
                path = PathBuf::from(s);
            }
        }
        Some(path)
    }

    fn matches_any_filter(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.filters()
            .iter()
            .flat_map(|f| &f.extensions)
            .any(|ext| lower.ends_with(&format!(".{}", ext.to_lowercase())))
    }

    /// The accept button (or Enter): what it means depends on the request.
    fn accept(&mut self) -> Outcome {
        match &self.request.kind {
            DialogKind::Folder => Outcome::Chosen(self.dir.clone()),
            DialogKind::Open(_) => {
                let name = expand_tilde(self.name.trim());
                if name.is_empty() {
                    self.error = Some("Choose a file in the list or type its name.".into());
                    return Outcome::Open;
                }
                let p = self.dir.join(name);
                if p.is_dir() {
                    self.go(&p);
                    self.name.clear();
                    Outcome::Open
                } else if p.is_file() {
                    Outcome::Chosen(p)
                } else {
                    self.error = Some(format!("{} does not exist.", p.display()));
                    Outcome::Open
                }
            }
            DialogKind::Save { .. } => {
                let Some(p) = self.save_target() else {
                    self.error = Some("Type a file name.".into());
                    return Outcome::Open;
                };
                if p.is_dir() {
                    self.go(&p);
                    self.name.clear();
                    return Outcome::Open;
                }
                match p.parent() {
                    Some(parent) if !parent.is_dir() => {
                        self.error = Some(format!("No folder {}.", parent.display()));
                        Outcome::Open
                    }
                    _ if p.exists() => {
                        self.confirm = Some(p);
                        Outcome::Open
                    }
                    _ => Outcome::Chosen(p),
                }
            }
        }
    }

    /// A typed location: a folder is shown; an existing file is chosen (open) or named (save).
    fn go_typed(&mut self) -> Outcome {
        let typed = expand_tilde(self.location.trim());
        let p = PathBuf::from(&typed);
        if p.is_dir() {
            self.go(&p);
            return Outcome::Open;
        }
        let parent = p.parent().filter(|d| d.is_dir()).map(Path::to_path_buf);
        let file = p.file_name().map(|f| f.to_string_lossy().into_owned());
        match (&self.request.kind, parent, file) {
            (DialogKind::Open(_), Some(d), Some(f)) if p.is_file() => {
                self.go(&d);
                self.name = f;
                self.accept()
            }
            (DialogKind::Save { .. }, Some(d), Some(f)) => {
                self.go(&d);
                self.name = f;
                self.accept()
            }
            _ => {
                self.error = Some(format!("No folder {typed}."));
                Outcome::Open
            }
        }
    }

    /// Draws the browser as a modal window; `recent` are recent folders, newest first.
    pub fn ui(&mut self, ctx: &egui::Context, recent: &[PathBuf]) -> Outcome {
        let screen = ctx.content_rect();
        let width = (screen.width() - 40.0).clamp(320.0, 760.0);
        let list_h = (screen.height() - 300.0).clamp(120.0, 360.0);
        let mut out = Outcome::Open;
        // Anchored at the top so nothing moves when the confirmation row comes and goes.
        let id = egui::Id::unique(("file_browser", self.id));
        let area =
            egui::Modal::default_area(id).anchor(egui::Align2::CENTER_TOP, egui::vec2(0.0, 24.0));
        let resp = egui::Modal::new(id).area(area).show(ctx, |ui| {
            ui.set_width(width);
            ui.heading(&self.request.title);
            ui.horizontal(|ui| {
                let up = self.dir.parent().map(Path::to_path_buf);
                if ui
                    .add_enabled(up.is_some(), egui::Button::new("Up"))
                    .on_hover_text("The parent folder")
                    .clicked()
                {
                    if let Some(u) = up {
                        self.go(&u);
                    }
                }
                let l = ui.label("Location:");
                let edit = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.location)
                            .desired_width(ui.available_width() - 50.0),
                    )
                    .labelled_by(l.id)
                    .on_hover_text(
                        "Type a folder or file path (~ is your home folder), then Enter",
                    );
                let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Go").clicked() || entered {
                    out = self.go_typed();
                }
            });
            ui.separator();
            let body = egui::vec2(ui.available_width(), list_h);
            ui.allocate_ui_with_layout(body, egui::Layout::left_to_right(egui::Align::Min), |ui| {
                ui.set_max_height(list_h);
                ui.vertical(|ui| {
                    ui.set_width(170.0);
                    egui::ScrollArea::vertical()
                        .id_salt("places")
                        .max_height(list_h)
                        .show(ui, |ui| self.places(ui, recent));
                });
                ui.separator();
                ui.vertical(|ui| {
                    self.listing(ui, list_h, &mut out);
                });
            });
            ui.separator();
            self.bottom(ui, &mut out);
        });
        // Esc (or the modal's own close request) cancels; a click beside it does not.
        let esc = !egui::Popup::is_any_open(ctx)
            && ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape));
        if out == Outcome::Open
            && (esc || (!resp.backdrop_response.clicked() && resp.should_close()))
        {
            out = Outcome::Cancelled;
        }
        out
    }

    fn places(&mut self, ui: &mut egui::Ui, recent: &[PathBuf]) {
        ui.strong("Places");
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let places = [
            ("Home", home),
            ("Default data", Some(crate::paths::data_dir())),
            (
                "Default models",
                Some(crate::paths::steerlab_home().join("models")),
            ),
            ("Working folder", std::env::current_dir().ok()),
        ];
        for (label, dir) in places {
            let Some(dir) = dir else { continue };
            let exists = dir.is_dir();
            let r = ui
                .add_enabled(exists, egui::Button::new(label).frame(false))
                .on_hover_text(dir.display().to_string())
                .on_disabled_hover_text(format!("{} (does not exist yet)", dir.display()));
            if r.clicked() {
                self.go(&dir);
            }
        }
        if !recent.is_empty() {
            ui.add_space(6.0);
            ui.strong("Recent folders");
            for d in recent {
                let label = d
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| d.display().to_string());
                let r = ui
                    .add_enabled(d.is_dir(), egui::Button::new(label).frame(false).truncate())
                    .on_hover_text(d.display().to_string());
                if r.clicked() {
                    self.go(d);
                }
            }
        }
    }

    fn listing(&mut self, ui: &mut egui::Ui, height: f32, out: &mut Outcome) {
        let rows = self.visible();
        let folder_pick = self.request.kind == DialogKind::Folder;
        let row_h = ui.spacing().interact_size.y;
        let mut enter = None;
        let mut pick = None;
        egui::ScrollArea::vertical()
            .id_salt(("listing", self.dir.clone()))
            .max_height(height)
            .min_scrolled_height(height)
            .auto_shrink([false, false])
            .show_rows(ui, row_h, rows.len().max(1), |ui, range| {
                if rows.is_empty() {
                    ui.weak("(empty folder)");
                    return;
                }
                for e in &rows[range] {
                    if e.dir {
                        let r = ui.selectable_label(false, format!("{}/", e.name));
                        if r.clicked() {
                            enter = Some(self.dir.join(&e.name));
                        }
                    } else {
                        let selected = self.name == e.name;
                        let text = format!("{}   ({})", e.name, human_size(e.size));
                        let r =
                            ui.add_enabled(!folder_pick, egui::Button::selectable(selected, text));
                        if r.clicked() {
                            self.name = e.name.clone();
                            self.confirm = None;
                            self.error = None;
                        }
                        if r.double_clicked() {
                            pick = Some(());
                        }
                    }
                }
            });
        if let Some(d) = enter {
            self.go(&d);
        }
        if pick.is_some() {
            *out = self.accept();
        }
    }

    fn bottom(&mut self, ui: &mut egui::Ui, out: &mut Outcome) {
        match &self.request.kind {
            DialogKind::Folder => {
                ui.label(format!("Folder: {}", self.dir.display()));
            }
            DialogKind::Open(_) | DialogKind::Save { .. } => {
                ui.horizontal(|ui| {
                    let l = ui.label("File name:");
                    let r = ui
                        .add(
                            egui::TextEdit::singleline(&mut self.name)
                                .desired_width(ui.available_width()),
                        )
                        .labelled_by(l.id);
                    if r.changed() {
                        self.confirm = None;
                    }
                    if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        *out = self.accept();
                    }
                });
            }
        }
        ui.horizontal(|ui| {
            if !self.filters().is_empty() {
                let names: Vec<String> = self
                    .filters()
                    .iter()
                    .map(|f| {
                        let exts: Vec<String> =
                            f.extensions.iter().map(|e| format!("*.{e}")).collect();
                        format!("{} ({})", f.name, exts.join(", "))
                    })
                    .collect();
                let shown = if self.all_files {
                    "All files".to_string()
                } else {
                    names.join("; ")
                };
                ui.label("Show:");
                egui::ComboBox::from_id_salt("file_filter")
                    .selected_text(shown)
                    .width(260.0)
                    .truncate()
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.all_files, false, names.join("; "));
                        ui.selectable_value(&mut self.all_files, true, "All files");
                    });
            }
            ui.checkbox(&mut self.show_hidden, "Hidden files");
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some(p) = self.confirm.clone() {
            ui.horizontal(|ui| {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} already exists. Replace it?", p.display()),
                );
                if ui.button("Replace").clicked() {
                    *out = Outcome::Chosen(p);
                }
                if ui.button("Keep it").clicked() {
                    self.confirm = None;
                }
            });
        }
        let row = egui::vec2(ui.available_width(), ui.spacing().interact_size.y);
        let layout = egui::Layout::right_to_left(egui::Align::Center);
        ui.allocate_ui_with_layout(row, layout, |ui| {
            let accept = match &self.request.kind {
                DialogKind::Open(_) => "Open",
                DialogKind::Folder => "Choose folder",
                DialogKind::Save { .. } => "Save",
            };
            if ui
                .add_enabled(self.confirm.is_none(), egui::Button::new(accept))
                .clicked()
            {
                *out = self.accept();
            }
            if ui.button("Cancel").clicked() {
                *out = Outcome::Cancelled;
            }
        });
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("zeta")).unwrap();
        std::fs::create_dir(d.path().join("Alpha")).unwrap();
        std::fs::create_dir(d.path().join(".hidden")).unwrap();
        std::fs::write(d.path().join("b.jsonl"), "{}").unwrap();
        std::fs::write(d.path().join("a.CSV"), "x").unwrap();
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        d
    }

    #[test]
    fn folders_first_filtered_and_hidden_skipped() {
        let d = tree();
        let req = DialogRequest::open("Data", &[FileFilter::new("Data", &["jsonl", "csv"])]);
        let mut b = FileBrowser::new(1, req, d.path().to_path_buf());
        let names: Vec<String> = b.visible().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["Alpha", "zeta", "a.CSV", "b.jsonl"]);
        b.all_files = true;
        b.show_hidden = true;
        let names: Vec<String> = b.visible().into_iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            vec![".hidden", "Alpha", "zeta", "a.CSV", "b.jsonl", "notes.txt"]
        );
    }

    #[test]
    fn the_dataset_filter_shows_compressed_data_files() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "a.jsonl.gz",
            "b.json.gz",
            "c.csv.gz",
            "d.jsonl.zst",
            "e.parquet",
            "f.tar.gz",
            "g.zst",
        ] {
            std::fs::write(d.path().join(n), "x").unwrap();
        }
        let req = DialogRequest::open("Data", &[FileFilter::datasets()]);
        let b = FileBrowser::new(1, req, d.path().to_path_buf());
        let names: Vec<String> = b.visible().into_iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            vec![
                "a.jsonl.gz",
                "b.json.gz",
                "c.csv.gz",
                "d.jsonl.zst",
                "e.parquet"
            ]
        );
    }

    #[test]
    fn save_adds_the_extension_and_asks_before_replacing() {
        let d = tree();
        let req = DialogRequest::save("Save", "b", &[FileFilter::new("JSON lines", &["jsonl"])]);
        let mut b = FileBrowser::new(1, req, d.path().to_path_buf());
        assert_eq!(b.accept(), Outcome::Open, "b.jsonl exists");
        assert_eq!(b.confirm, Some(d.path().join("b.jsonl")));
        b.name = "new".into();
        b.confirm = None;
        assert_eq!(b.accept(), Outcome::Chosen(d.path().join("new.jsonl")));
        b.name = "nowhere/x.jsonl".into();
        assert_eq!(b.accept(), Outcome::Open);
        assert!(b.error.as_deref().unwrap().starts_with("No folder"));
    }

    #[test]
    fn typed_locations_expand_tilde_and_open_files() {
        let d = tree();
        let req = DialogRequest::open("Data", &[]);
        let mut b = FileBrowser::new(1, req, PathBuf::from("/definitely/not/here"));
        assert!(b.dir.is_dir(), "falls back to a readable folder");
        b.location = d.path().join("zeta").display().to_string();
        assert_eq!(b.go_typed(), Outcome::Open);
        assert_eq!(b.dir, d.path().join("zeta"));
        b.location = d.path().join("notes.txt").display().to_string();
        assert_eq!(b.go_typed(), Outcome::Chosen(d.path().join("notes.txt")));
        if let Some(home) = std::env::var_os("HOME") {
            b.location = "~".into();
            b.go_typed();
            assert_eq!(b.dir, Path::new(&home));
        }
    }
}
