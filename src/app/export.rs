//! Writing files the user asked for: export [`Format`]s, "Save as" through the picker
//! ([`save_as`], [`save_bytes_as`]: atomic write, status line, sidebar registration) and the
//! PNG plot exports that wait for the window's pixels ([`poll_png_exports`], run by the shell
//! each frame). State-side code: feature state calls it; the menus that offer it are in
//! `super::widgets`.
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;

use super::artifacts::ArtifactKind;
use super::dialogs::DialogRequest;
use super::picker::FileFilter;
use super::screenshot::write_png;
use super::state::AppState;

/// A file format offered by export menus: what the user sees and the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Menu and dialog-filter text ("SVG image").
    pub label: &'static str,
    /// Extension without the dot.
    pub ext: &'static str,
}

impl Format {
    /// Scalable plot.
    pub const SVG: Format = Format {
        label: "SVG image",
        ext: "svg",
    };
    /// Raster plot (pixels as shown on screen).
    pub const PNG: Format = Format {
        label: "PNG image",
        ext: "png",
    };
    /// Self-contained HTML report.
    pub const HTML: Format = Format {
        label: "HTML report",
        ext: "html",
    };
    /// Markdown report.
    pub const MARKDOWN: Format = Format {
        label: "Markdown",
        ext: "md",
    };
    /// JSON data.
    pub const JSON: Format = Format {
        label: "JSON",
        ext: "json",
    };
    /// steerlab vector / tensors.
    pub const SAFETENSORS: Format = Format {
        label: "safetensors",
        ext: "safetensors",
    };
    /// llama.cpp control vector.
    pub const GGUF: Format = Format {
        label: "GGUF control vector",
        ext: "gguf",
    };
    /// Comma-separated table.
    pub const CSV: Format = Format {
        label: "CSV table",
        ext: "csv",
    };
}

/// `path` with `format`'s extension: kept if it already ends so (any case), else appended
/// (`run.v2` → `run.v2.svg`).
pub fn with_extension(path: &Path, format: Format) -> PathBuf {
    let has = path
        .extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(format.ext));
    if has {
        path.to_path_buf()
    } else {
        let mut s = path.as_os_str().to_os_string();
        s.push(".");
        s.push(format.ext);
        PathBuf::from(s)
    }
}

/// "Save as": asks where to save (dialog `title`, suggested `stem.ext`, a filter for
/// `format`; the native dialog or the built-in browser, see `AppState::ask`), adds the
/// extension if the user left it out, runs `write(path)`, and posts the outcome to the status
/// bar. On success the file is registered in the sidebar as a `kind` artifact (when given).
/// `done` then runs with the path written or the error text; a cancel runs neither.
///
/// `write` must write atomically (to `path.tmp`, then rename): library writers do, and
/// [`save_bytes_as`] does it for content already in memory.
pub fn save_as<E: std::fmt::Display>(
    state: &mut AppState,
    title: &str,
    stem: &str,
    format: Format,
    kind: Option<ArtifactKind>,
    write: impl FnOnce(&Path) -> Result<(), E> + 'static,
    done: impl FnOnce(&mut AppState, Result<PathBuf, String>) + 'static,
) {
    let filters = [FileFilter::new(format.label, &[format.ext])];
    let default_name = format!("{stem}.{}", format.ext);
    let request = DialogRequest::save(title, &default_name, &filters);
    state.ask(request, move |state, picked| {
        let path = with_extension(&picked, format);
        match write(&path) {
            Ok(()) => {
                state.info(format!("Saved {}", path.display()));
                if let Some(kind) = kind {
                    let name = path
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_else(|| default_name.clone());
                    state.artifacts.add(kind, name, &path);
                }
                done(state, Ok(path));
            }
            Err(e) => {
                let msg = save_error(&path, &e.to_string());
                state.error(msg.clone());
                done(state, Err(msg));
            }
        }
    });
}

/// "Could not save PATH: WHY", without repeating the path when `why` already names it.
pub fn save_error(path: &Path, why: &str) -> String {
    let shown = path.display().to_string();
    if why.contains(&shown) {
        format!("Could not save: {why}")
    } else {
        format!("Could not save {shown}: {why}")
    }
}

/// [`save_as`] for content already in memory (reports, SVG plots): written atomically.
pub fn save_bytes_as(
    state: &mut AppState,
    title: &str,
    stem: &str,
    format: Format,
    kind: Option<ArtifactKind>,
    bytes: Vec<u8>,
    done: impl FnOnce(&mut AppState, Result<PathBuf, String>) + 'static,
) {
    save_as(
        state,
        title,
        stem,
        format,
        kind,
        move |p| crate::report::write_atomic(p, &bytes),
        done,
    )
}

/// Writes the PNG exports whose pixels arrived (the shell calls this every frame).
pub(crate) fn poll_png_exports(state: &mut AppState) {
    let mut pending = std::mem::take(&mut state.png_exports);
    pending.retain(|p| match p.rx.try_recv() {
        Ok(img) => {
            let cropped = crop(&img, p.rect, p.pixels_per_point);
            match write_png(&p.path, &cropped) {
                Ok(()) => {
                    state.info(format!("Saved {}", p.path.display()));
                    let name = p
                        .path
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    state.artifacts.add(ArtifactKind::Plot, name, &p.path);
                }
                Err(e) => state.error(format!("Could not save {}: {e}", p.path.display())),
            }
            false
        }
        Err(TryRecvError::Empty) => true,
        Err(TryRecvError::Disconnected) => {
            state.error(format!(
                "Could not save {}: no screenshot came back from the window",
                p.path.display()
            ));
            false
        }
    });
    pending.append(&mut state.png_exports);
    state.png_exports = pending;
}

/// The part of a window image under `rect` (points), clamped to the image.
pub fn crop(img: &egui::ColorImage, rect: egui::Rect, pixels_per_point: f32) -> egui::ColorImage {
    let full = egui::Rect::from_min_size(
        egui::Pos2::ZERO,
        egui::vec2(img.size[0] as f32, img.size[1] as f32) / pixels_per_point,
    );
    let r = rect.intersect(full);
    if !r.is_positive() {
        return egui::ColorImage::new([0, 0], Vec::new());
    }
    img.region(&r, Some(pixels_per_point))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::picker::ScriptedPicker;

    #[test]
    fn extension_is_added_only_when_missing() {
        let p = |s: &str| with_extension(Path::new(s), Format::SVG);
        assert_eq!(p("/a/plot"), PathBuf::from("/a/plot.svg"));
        assert_eq!(p("/a/plot.SVG"), PathBuf::from("/a/plot.SVG"));
        assert_eq!(p("/a/run.v2"), PathBuf::from("/a/run.v2.svg"));
    }

    #[test]
    fn save_bytes_as_writes_atomically_registers_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let picker = ScriptedPicker::new();
        picker.push(Some(dir.path().join("report"))).push(None);
        let mut state = AppState::new(Box::new(picker.clone()));
        let got = std::rc::Rc::new(std::cell::RefCell::new(None));
        let g = got.clone();
        save_bytes_as(
            &mut state,
            "Export report",
            "features",
            Format::HTML,
            Some(ArtifactKind::Report),
            b"<html></html>".to_vec(),
            move |_, r| *g.borrow_mut() = Some(r),
        );
        let want = dir.path().join("report.html");
        assert_eq!(*got.borrow(), Some(Ok(want.clone())));
        assert_eq!(std::fs::read(&want).unwrap(), b"<html></html>");
        assert!(!dir.path().join("report.html.tmp").exists());
        let a = state.artifacts.iter().next().expect("registered");
        assert_eq!(
            (a.kind, a.name.as_str()),
            (ArtifactKind::Report, "report.html")
        );
        assert!(state.last_message().unwrap().text.contains("report.html"));
        // Cancelled dialog: nothing written, nothing posted.
        let n = state.messages.len();
        save_bytes_as(
            &mut state,
            "Export report",
            "x",
            Format::JSON,
            None,
            b"{}".to_vec(),
            |_, _| panic!("cancelled: done must not run"),
        );
        assert_eq!(state.messages.len(), n);
        assert_eq!(picker.calls(), vec!["save_file: Export report"; 2]);
    }

    #[test]
    fn failed_write_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let picker = ScriptedPicker::new();
        picker.push(Some(dir.path().join("v.gguf")));
        let mut state = AppState::new(Box::new(picker));
        let failed = std::rc::Rc::new(std::cell::Cell::new(false));
        let f = failed.clone();
        save_as(
            &mut state,
            "Export vector",
            "v",
            Format::GGUF,
            Some(ArtifactKind::Vector),
            |_| Err("width 576 does not match the model (896)"),
            move |_, r| f.set(r.is_err()),
        );
        assert!(failed.get());
        assert!(state.artifacts.is_empty());
        let m = state.last_message().unwrap();
        assert_eq!(m.level, crate::app::Level::Error);
        assert!(
            m.text.contains("v.gguf") && m.text.contains("576"),
            "{}",
            m.text
        );
    }

    #[test]
    fn save_errors_name_the_path_once() {
        let p = Path::new("/x/v.gguf");
        assert_eq!(
            save_error(p, "disk full"),
            "Could not save /x/v.gguf: disk full"
        );
        assert_eq!(
            save_error(p, "/x/v.gguf: permission denied"),
            "Could not save: /x/v.gguf: permission denied"
        );
    }

    #[test]
    fn crop_takes_the_rect_in_points_and_clamps() {
        // 4×2 pixels at 2 px/pt: a 2×1-point window. Pixel value = x + 10·y.
        let px: Vec<_> = (0..2)
            .flat_map(|y| (0..4).map(move |x| egui::Color32::from_gray((x + 10 * y) as u8)))
            .collect();
        let img = egui::ColorImage::new([4, 2], px);
        let right = crop(
            &img,
            egui::Rect::from_min_max(egui::pos2(1.0, 0.0), egui::pos2(5.0, 9.0)),
            2.0,
        );
        assert_eq!(right.size, [2, 2]);
        assert_eq!(right.pixels[0], egui::Color32::from_gray(2));
        assert_eq!(right.pixels[3], egui::Color32::from_gray(13));
        let outside = crop(
            &img,
            egui::Rect::from_min_max(egui::pos2(7.0, 7.0), egui::pos2(9.0, 9.0)),
            2.0,
        );
        assert_eq!(outside.size, [0, 0]);
    }
}
