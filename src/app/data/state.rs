//! The Data feature's state, the app's thin layer over `crate::data`: open a dataset on a background job (preview rows,
//! check report, records), with an optional column mapping; split; save a split. Only calls the
//! data layer.
use std::path::{Path, PathBuf};

use crate::data::shards::{hf_split_files, hf_splits};
use crate::data::{
    load_dataset_with, preview, split_by_prompt, split_random, write_jsonl, ColumnMapping,
    DataError, Layout, LoadOptions, Record, Split,
};
use crate::jobs::{Progress, ProgressSink};

use crate::app::state::{AppState, Recent};

/// Rows read for the preview table.
pub const PREVIEW_ROWS: usize = 1000;

/// How to open a dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenOptions {
    /// Explicit layout and column mapping (empty: detect).
    pub mapping: ColumnMapping,
    /// Skip invalid rows (and list them) instead of stopping at the first.
    pub skip_invalid: bool,
    /// The split to read when the path is a Hugging Face datasets folder (`None`: `train`
    /// when the folder has it, else its first split by name).
    pub hf_split: Option<String>,
}

/// One split of a Hugging Face datasets folder.
#[derive(Debug, Clone, PartialEq)]
pub struct HfSplit {
    /// Its name (`train`, `test`, ...).
    pub name: String,
    /// Its shard files.
    pub shards: usize,
}

impl HfSplit {
    /// `train (2 shards)`.
    pub fn title(&self) -> String {
        format!(
            "{} ({} shard{})",
            self.name,
            self.shards,
            if self.shards == 1 { "" } else { "s" }
        )
    }
}

/// One previewed row: where it is in the file and its cells in column order.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    /// "line 12" / "row 12".
    pub loc: String,
    /// Cell texts, one per column of [`DataView::columns`] (empty where absent).
    pub cells: Vec<String>,
    /// Why the row could not be read, if it could not.
    pub error: Option<String>,
}

/// A row that failed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    /// "line 12" / "row 12".
    pub loc: String,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of a split (indices into [`DataView::records`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitView {
    /// Train and test indices.
    pub split: Split,
    /// How it was made ("by prompt, 20% test, seed 1").
    pub how: String,
}

/// An opened dataset as the Data panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataView {
    /// The file.
    pub path: PathBuf,
    /// Detected file format ("jsonl", "parquet", ...), empty if unknown.
    pub format: String,
    /// Recognised layout, `None` while a mapping is needed or the file is unreadable.
    pub layout: Option<Layout>,
    /// The file's columns.
    pub columns: Vec<String>,
    /// The first rows, for the preview table.
    pub preview: Vec<PreviewRow>,
    /// True when the file has more rows than the preview.
    pub preview_truncated: bool,
    /// Rows read while loading.
    pub rows: u64,
    /// Valid records.
    pub records: Vec<Record>,
    /// Invalid rows (all skipped ones up to the data layer's listing cap, or the first one
    /// when not skipping).
    pub problems: Vec<RowProblem>,
    /// Invalid rows counted (may exceed `problems.len()`).
    pub invalid: u64,
    /// Why the file could not be read as records, if so.
    pub error: Option<String>,
    /// True when the error asks for a column mapping.
    pub needs_mapping: bool,
    /// The options it was opened with.
    pub opened_with: OpenOptions,
    /// The last split, if any.
    pub split: Option<SplitView>,
    /// The splits of a Hugging Face datasets folder (empty for a file).
    pub hf_splits: Vec<HfSplit>,
    /// The split of the folder that was read.
    pub hf_split: Option<String>,
    /// The shard the preview shows, when the path is a folder.
    pub preview_source: Option<PathBuf>,
}

impl DataView {
    /// The train and test records of the last split.
    pub fn split_records(&self) -> Option<(Vec<Record>, Vec<Record>)> {
        self.split.as_ref().map(|s| s.split.apply(&self.records))
    }
}

/// Reads `path`: a preview of its first rows, then every record with the check report
/// (blocking; run it on a job). File-level failures are kept in [`DataView::error`] so the
/// panel can show them next to the file (and offer the mapping step for unknown layouts).
pub fn open(path: &Path, opts: &OpenOptions, sink: &dyn ProgressSink) -> DataView {
    let mut v = DataView {
        path: path.to_path_buf(),
        format: String::new(),
        layout: None,
        columns: Vec::new(),
        preview: Vec::new(),
        preview_truncated: false,
        rows: 0,
        records: Vec::new(),
        problems: Vec::new(),
        invalid: 0,
        error: None,
        needs_mapping: false,
        opened_with: opts.clone(),
        split: None,
        hf_splits: Vec::new(),
        hf_split: None,
        preview_source: None,
    };
    sink.report(Progress::new("preview", 0, None));
    // A Hugging Face datasets folder: one split read as one dataset, previewed from its first
    // shard.
    let mut preview_path = path.to_path_buf();
    let mut more_shards = false;
    if path.is_dir() {
        let chosen = match hf_splits(path) {
            Ok(map) => {
                v.hf_splits = map
                    .iter()
                    .map(|(name, files)| HfSplit {
                        name: name.clone(),
                        shards: files.len(),
                    })
                    .collect();
                opts.hf_split
                    .clone()
                    .or_else(|| map.contains_key("train").then(|| "train".to_string()))
                    .or_else(|| map.keys().next().cloned())
            }
            Err(e) => {
                v.error = Some(e.to_string());
                return v;
            }
        };
        match hf_split_files(path, chosen.as_deref()) {
            Ok((name, files)) => {
                v.hf_split = Some(name);
                more_shards = files.len() > 1;
                preview_path = files[0].clone();
                v.preview_source = Some(preview_path.clone());
            }
            Err(e) => {
                v.error = Some(e.to_string());
                return v;
            }
        }
    }
    match preview(&preview_path, PREVIEW_ROWS) {
        Ok(p) => {
            v.format = p.format.name().to_string();
            v.columns = p.columns.clone();
            v.preview_truncated = p.more || more_shards;
            v.preview = p
                .rows
                .into_iter()
                .map(|r| match r.cells {
                    Ok(cells) => PreviewRow {
                        loc: r.loc.to_string(),
                        cells: cells.into_iter().map(Option::unwrap_or_default).collect(),
                        error: None,
                    },
                    Err(e) => PreviewRow {
                        loc: r.loc.to_string(),
                        cells: Vec::new(),
                        error: Some(e),
                    },
                })
                .collect();
        }
        Err(e) => {
            v.error = Some(e.to_string());
            return v;
        }
    }
    let lo = LoadOptions {
        mapping: opts.mapping.clone(),
        skip_invalid: opts.skip_invalid,
        split: v.hf_split.clone(),
        ..Default::default()
    };
    match load_dataset_with(path, &lo, sink) {
        Ok(ds) => {
            let r = ds.report;
            v.format = r.format.name().to_string();
            v.layout = Some(r.layout);
            if v.columns.is_empty() {
                v.columns = r.columns.clone();
            }
            // Show the layout's fields first, in its order (files often sort keys).
            let bound: Vec<String> = r
                .layout
                .required()
                .iter()
                .chain(r.layout.optional())
                .filter_map(|f| r.fields.get(f).cloned())
                .collect();
            put_first(&mut v, &bound);
            v.rows = r.rows;
            v.invalid = r.invalid;
            v.problems = r
                .skipped
                .into_iter()
                .map(|s| RowProblem {
                    loc: s.loc.to_string(),
                    field: s.field,
                    reason: s.reason,
                })
                .collect();
            v.records = ds.records;
        }
        Err(e) => {
            v.needs_mapping = matches!(e, DataError::Layout { .. } | DataError::Mapping(_));
            if let DataError::Layout { columns, .. } = &e {
                v.columns = columns.clone();
            }
            if let Some(loc) = e.loc() {
                v.invalid = 1;
                v.problems.push(RowProblem {
                    loc: loc.to_string(),
                    field: e.field().map(str::to_string),
                    reason: e.reason(),
                });
            }
            v.error = Some(e.to_string());
        }
    }
    v
}

/// Moves the columns named in `first` (in that order) to the front, cells included.
fn put_first(v: &mut DataView, first: &[String]) {
    let n = v.columns.len();
    let mut order: Vec<usize> = first
        .iter()
        .filter_map(|c| v.columns.iter().position(|x| x == c))
        .collect();
    let rest: Vec<usize> = (0..n).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    v.columns = order.iter().map(|&i| v.columns[i].clone()).collect();
    for r in &mut v.preview {
        if r.cells.len() == n {
            r.cells = order
                .iter()
                .map(|&i| std::mem::take(&mut r.cells[i]))
                .collect();
        }
    }
}

/// Opens `path` on a background job; the result becomes the active dataset (replacing an
/// earlier view of the same file).
pub fn start_open(state: &mut AppState, path: PathBuf, opts: OpenOptions) {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let p = path.clone();
    let id = state.spawn_job(
        &format!("Open {name}"),
        move |ctx| Ok(open(&p, &opts, ctx)),
        move |res: Result<DataView, String>, state: &mut AppState| {
            state.data_job = None;
            match res {
                Ok(v) => {
                    match &v.error {
                        Some(e) => state.error(e.clone()),
                        None => state.info(format!(
                            "Opened {}{}: {} records ({} invalid rows)",
                            v.path.display(),
                            v.hf_split
                                .as_ref()
                                .map(|s| format!(" (split {s})"))
                                .unwrap_or_default(),
                            v.records.len(),
                            v.invalid
                        )),
                    }
                    if v.error.is_none() || v.needs_mapping {
                        Recent::remember(&mut state.recent.data, &v.path);
                        state.artifacts.add(
                            crate::app::artifacts::ArtifactKind::Dataset,
                            name.clone(),
                            &v.path,
                        );
                    }
                    let i = match state.datasets.iter().position(|d| d.path == v.path) {
                        Some(i) => {
                            state.datasets[i] = v;
                            i
                        }
                        None => {
                            state.datasets.push(v);
                            state.datasets.len() - 1
                        }
                    };
                    state.active_dataset = Some(i);
                }
                // The library's message names the file already; say it once.
                Err(e) if e.contains(&path.display().to_string()) => {
                    state.error(format!("Could not open {e}"))
                }
                Err(e) => state.error(format!("Could not open {}: {e}", path.display())),
            }
        },
    );
    state.data_job = Some(id);
}

/// Opens `path` with the default options (detect the layout, skip invalid rows and list them):
/// start-up (`STEERLAB_DATA`), `AppCommand::OpenDataset`, the Steer start-up evaluation set.
pub fn open_default(state: &mut AppState, path: PathBuf) {
    start_open(
        state,
        path,
        OpenOptions {
            skip_invalid: true,
            ..Default::default()
        },
    );
}

/// Splits the records of `d`: seeded at random, or by connected components over prompts so no
/// prompt lands on both sides.
pub fn split(
    d: &DataView,
    test_fraction: f64,
    seed: u64,
    by_prompt: bool,
) -> Result<SplitView, DataError> {
    let split = if by_prompt {
        split_by_prompt(&d.records, test_fraction, seed)?
    } else {
        split_random(&d.records, test_fraction, seed)?
    };
    let how = format!(
        "{}, {:.0}% test, seed {seed}",
        if by_prompt { "by prompt" } else { "random" },
        test_fraction * 100.0
    );
    Ok(SplitView { split, how })
}

/// Where the test side goes when the train side is saved to `train`:
/// `x.train.jsonl` → `x.test.jsonl`, else `x.jsonl` → `x.test.jsonl`.
pub fn test_path_for(train: &Path) -> PathBuf {
    let name = train
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let base = name.strip_suffix(".jsonl").unwrap_or(&name);
    let base = base.strip_suffix(".train").unwrap_or(base);
    train.with_file_name(format!("{base}.test.jsonl"))
}

/// Writes both sides of the split of `d` as native JSONL (each file atomically).
pub fn save_split(d: &DataView, train: &Path, test: &Path) -> Result<(), DataError> {
    let Some((tr, te)) = d.split_records() else {
        return Err(DataError::Invalid("no split to save".into()));
    };
    write_jsonl(train, &tr)?;
    write_jsonl(test, &te)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_columns_move_to_the_front_with_their_cells() {
        let mut v = open(
            Path::new("/nonexistent/x.jsonl"),
            &OpenOptions::default(),
            &crate::jobs::NoProgress,
        );
        assert!(v.error.is_some(), "a missing file is reported, not a panic");
        v.columns = vec!["a".into(), "prompt".into(), "b".into(), "chosen".into()];
        v.preview = vec![PreviewRow {
            loc: "line 1".into(),
            cells: vec!["1".into(), "P".into(), "2".into(), "C".into()],
            error: None,
        }];
        put_first(
            &mut v,
            &[
                "prompt".to_string(),
                "chosen".to_string(),
                "gone".to_string(),
            ],
        );
        assert_eq!(v.columns, vec!["prompt", "chosen", "a", "b"]);
        assert_eq!(v.preview[0].cells, vec!["P", "C", "1", "2"]);
    }

    #[test]
    fn test_side_is_named_after_the_train_side() {
        assert_eq!(
            test_path_for(Path::new("/d/x.train.jsonl")),
            PathBuf::from("/d/x.test.jsonl")
        );
        assert_eq!(
            test_path_for(Path::new("/d/x.jsonl")),
            PathBuf::from("/d/x.test.jsonl")
        );
        assert_eq!(
            test_path_for(Path::new("/d/x")),
            PathBuf::from("/d/x.test.jsonl")
        );
    }
}
