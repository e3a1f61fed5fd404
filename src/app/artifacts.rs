//! The registry of what the workbench has loaded and made (models, datasets, vectors, SAEs,
//! reports, plots), shown in the sidebar and restored between runs. Which panel opens an
//! artifact is decided in `super::nav` (`PanelId::owner_of`).
//!
//! Bookkeeping only: an artifact is a name and a path; nothing here reads or writes the file.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How many artifacts the registry keeps (oldest dropped first).
pub const MAX_ARTIFACTS: usize = 64;

/// What an artifact is; decides its sidebar group and the panel that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArtifactKind {
    /// A model (HF folder or .gguf file).
    Model,
    /// A preference dataset file.
    Dataset,
    /// A steering vector (safetensors or GGUF control vector).
    Vector,
    /// A sparse autoencoder (SAELens folder).
    Sae,
    /// A report (HTML, Markdown, JSON).
    Report,
    /// An exported plot (SVG, PNG).
    Plot,
}

impl ArtifactKind {
    /// Every kind, in sidebar order.
    pub const ALL: &'static [ArtifactKind] = &[
        ArtifactKind::Model,
        ArtifactKind::Dataset,
        ArtifactKind::Vector,
        ArtifactKind::Sae,
        ArtifactKind::Report,
        ArtifactKind::Plot,
    ];

    /// Plural heading for the sidebar group.
    pub fn title(self) -> &'static str {
        match self {
            ArtifactKind::Model => "Models",
            ArtifactKind::Dataset => "Datasets",
            ArtifactKind::Vector => "Vectors",
            ArtifactKind::Sae => "SAEs",
            ArtifactKind::Report => "Reports",
            ArtifactKind::Plot => "Plots",
        }
    }

    /// The `PanelId::key` of the panel that owns this kind unless the artifact names
    /// another (reports and plots belong to whoever made them).
    pub fn default_owner(self) -> &'static str {
        match self {
            ArtifactKind::Model => "model",
            ArtifactKind::Dataset => "data",
            ArtifactKind::Vector => "steer",
            ArtifactKind::Sae => "features",
            ArtifactKind::Report | ArtifactKind::Plot => "dissect",
        }
    }
}

/// One thing loaded or made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its kind.
    pub kind: ArtifactKind,
    /// Display name ("sycophancy BiPO L13").
    pub name: String,
    /// Where it lives on disk.
    pub path: PathBuf,
    /// When it was added, seconds since the Unix epoch.
    pub created: u64,
    /// Key of the owning panel (a `PanelId::key`); stored as text so settings written by a
    /// build with other panels still load.
    pub owner: String,
}

impl Artifact {
    /// `created` as `YYYY-MM-DD HH:MM` UTC.
    pub fn created_text(&self) -> String {
        format_utc(self.created)
    }
}

/// The registry: newest first, one entry per (kind, path).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Artifacts {
    items: Vec<Artifact>,
}

impl Artifacts {
    /// Records `path` as a `kind` artifact called `name`, owned by the kind's default panel.
    /// Adding the same kind and path again renames it and moves it to the top.
    pub fn add(&mut self, kind: ArtifactKind, name: impl Into<String>, path: impl AsRef<Path>) {
        self.add_owned(kind.default_owner(), kind, name, path)
    }

    /// Like [`Artifacts::add`], naming the owning panel by its key (e.g. a features report:
    /// `add_owned("features", ArtifactKind::Report, ..)`).
    pub fn add_owned(
        &mut self,
        owner: &str,
        kind: ArtifactKind,
        name: impl Into<String>,
        path: impl AsRef<Path>,
    ) {
        let path = path.as_ref().to_path_buf();
        self.items.retain(|a| !(a.kind == kind && a.path == path));
        self.items.insert(
            0,
            Artifact {
                kind,
                name: name.into(),
                path,
                created: now_secs(),
                owner: owner.to_string(),
            },
        );
        self.items.truncate(MAX_ARTIFACTS);
    }

    /// Forgets the `kind` artifact at `path`; true if there was one.
    pub fn remove(&mut self, kind: ArtifactKind, path: &Path) -> bool {
        let n = self.items.len();
        self.items.retain(|a| !(a.kind == kind && a.path == path));
        self.items.len() != n
    }

    /// All artifacts, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Artifact> {
        self.items.iter()
    }

    /// The artifacts of one kind, newest first.
    pub fn of_kind(&self, kind: ArtifactKind) -> impl Iterator<Item = &Artifact> {
        self.items.iter().filter(move |a| a.kind == kind)
    }

    /// How many artifacts are registered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch → `YYYY-MM-DD HH:MM` (UTC, proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::numeric::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_dedups_by_kind_and_path_newest_first_and_caps() {
        let mut a = Artifacts::default();
        a.add(ArtifactKind::Vector, "v1", "/x/v.safetensors");
        a.add(ArtifactKind::Dataset, "d", "/x/d.jsonl");
        a.add(
            ArtifactKind::Report,
            "same path, other kind",
            "/x/v.safetensors",
        );
        a.add(ArtifactKind::Vector, "v1 renamed", "/x/v.safetensors");
        let names: Vec<_> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["v1 renamed", "same path, other kind", "d"]);
        assert_eq!(a.of_kind(ArtifactKind::Vector).count(), 1);
        assert!(a.remove(ArtifactKind::Dataset, Path::new("/x/d.jsonl")));
        assert!(!a.remove(ArtifactKind::Dataset, Path::new("/x/d.jsonl")));
        for i in 0..100 {
            a.add(ArtifactKind::Plot, format!("p{i}"), format!("/p{i}.svg"));
        }
        assert_eq!(a.len(), MAX_ARTIFACTS);
        assert_eq!(a.iter().next().unwrap().name, "p99");
    }

    #[test]
    fn utc_dates_match_known_timestamps() {
        // Checked with `date -u -d @SECS '+%F %H:%M'`.
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31 23:59");
    }
}
