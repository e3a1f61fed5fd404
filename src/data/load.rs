//! Loading and checking whole files: open, detect the format, resolve the layout, convert and
//! validate every row, and summarise in a [`CheckReport`]. Streaming: records go to a callback
//! (or a `Vec` in [`load_dataset`]); only the first rows are buffered, to learn the columns.
use super::convert::{to_records, Ctx};
use super::error::{DataError, Loc};
use super::layout::{resolve, ColumnMapping, Field, Layout, Resolved};
use super::read::{Format, ReadOptions, Row, RowReader, DEFAULT_MAX_RECORD_BYTES};
use super::types::*;
use crate::jobs::{NoProgress, Progress, ProgressSink};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// How many skipped rows a report lists individually (the rest are only counted).
pub const MAX_LISTED_SKIPS: usize = 1000;
/// Rows read ahead to learn the columns of JSON files.
const PEEK_ROWS: usize = 16;

/// Options of [`load_dataset`] and [`check_dataset`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Explicit column mapping / layout (empty: detect).
    pub mapping: ColumnMapping,
    /// Skip invalid rows (listing them in the report) instead of failing on the first.
    pub skip_invalid: bool,
    /// Stop after this many valid records.
    pub limit: Option<usize>,
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// Cap on one record's bytes (longer records are invalid rows).
    pub max_record_bytes: usize,
    /// The split to read when the path is a Hugging Face datasets folder
    /// (`data/SPLIT-00000-of-0000N.parquet` shards); `None`: the folder's only split.
    pub split: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            mapping: ColumnMapping::default(),
            skip_invalid: false,
            limit: None,
            format: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            split: None,
        }
    }
}

/// One row that was not turned into a record, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedRow {
    /// Where.
    pub loc: Loc,
    /// The column to blame, if one is.
    pub field: Option<String>,
    /// Why (without the file and location).
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.loc, self.reason)
    }
}

/// Summary of reading a file: what it is, how many rows were read, and which were invalid.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The file.
    pub path: PathBuf,
    /// Detected (or forced) format.
    pub format: Format,
    /// Detected (or forced) layout.
    pub layout: Layout,
    /// All columns seen (declared header/schema, or keys of the first JSON rows).
    pub columns: Vec<String>,
    /// Canonical field → column used.
    pub fields: BTreeMap<Field, String>,
    /// Columns no field reads.
    pub ignored_columns: Vec<String>,
    /// Rows read (valid + invalid).
    pub rows: u64,
    /// Valid records.
    pub valid: u64,
    /// Invalid rows (skipped when `skip_invalid`, else the load failed on the first).
    pub invalid: u64,
    /// The first [`MAX_LISTED_SKIPS`] invalid rows.
    pub skipped: Vec<SkippedRow>,
    /// True when reading stopped at `limit` before the end of the file.
    pub stopped_at_limit: bool,
    /// A/B rows with several non-matching answers (model-written-evals style), each expanded
    /// into one item per non-matching answer ...
    pub expanded_rows: u64,
    /// ... giving this many items in all.
    pub expanded_items: u64,
}

impl CheckReport {
    /// A multi-line human-readable summary (what `steerlab data check` prints).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "file:    {}\nformat:  {}\nlayout:  {}\nfields:  {}\n",
            self.path.display(),
            self.format,
            self.layout,
            self.fields
                .iter()
                .map(|(f, c)| format!("{f}={c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.ignored_columns.is_empty() {
            s += &format!("ignored: {}\n", self.ignored_columns.join(", "));
        }
        s += &format!(
            "rows:    {}\nvalid:   {}\ninvalid: {}\n",
            self.rows, self.valid, self.invalid
        );
        if self.expanded_rows > 0 {
            s += &format!(
                "expanded: {} rows with several non-matching answers became {} A/B items (one per non-matching answer)\n",
                self.expanded_rows, self.expanded_items
            );
        }
        if self.stopped_at_limit {
            s += "(stopped at the record limit)\n";
        }
        for k in &self.skipped {
            s += &format!("  {k}\n");
        }
        if self.invalid as usize > self.skipped.len() {
            s += &format!(
                "  ... and {} more\n",
                self.invalid as usize - self.skipped.len()
            );
        }
        s
    }
}

/// Records of a file and the report on reading them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The valid records, in file order.
    pub records: Vec<Record>,
    /// What was read.
    pub report: CheckReport,
}

/// The judgements of `records`, in order: `judgement` records as they are, plus
/// chosen/rejected pairs as judgements (A = chosen, winner A); other records are skipped.
pub fn judgements(records: &[Record]) -> Vec<Judgement> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Judgement(j) => Some(j.clone()),
            Record::Pair(p) => Some(p.to_judgement()),
            _ => None,
        })
        .collect()
}

impl Dataset {
    /// Preference pairs: `pair` records, plus judgements with a winner (ties dropped).
    pub fn pairs(&self) -> Vec<PreferencePair> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Pair(p) => Some(p.clone()),
                Record::Judgement(j) => j.to_pair(),
                _ => None,
            })
            .collect()
    }

    /// Judgements: `judgement` records, plus pairs as judgements (A = chosen, winner A); see
    /// [`judgements`].
    pub fn judgements(&self) -> Vec<Judgement> {
        judgements(&self.records)
    }

    /// A/B items.
    pub fn ab_items(&self) -> Vec<AbItem> {
        self.records
            .iter()
            .filter_map(|r| {
                if let Record::AbItem(x) = r {
                    Some(x.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Unpaired feedback.
    pub fn feedback(&self) -> Vec<Feedback> {
        self.records
            .iter()
            .filter_map(|r| {
                if let Record::Feedback(x) = r {
                    Some(x.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Prompt-only items.
    pub fn prompts(&self) -> Vec<PromptItem> {
        self.records
            .iter()
            .filter_map(|r| {
                if let Record::Prompt(x) = r {
                    Some(x.clone())
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Loads every record of `path`. Without `skip_invalid` the first invalid row is an error
/// naming the file, line/row and field; with it, invalid rows are listed in the report.
pub fn load_dataset(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_dataset_with(path, opts, &NoProgress)
}

/// [`load_dataset`] with progress reports and cancellation.
pub fn load_dataset_with(
    path: &Path,
    opts: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<Dataset, DataError> {
    let mut records = Vec::new();
    let report = scan(path, opts, opts.skip_invalid, progress, &mut |r| {
        records.push(r)
    })?;
    Ok(Dataset { records, report })
}

/// Reads the whole file, validating every row without keeping records, and reports every
/// invalid row whatever `skip_invalid` says (the caller decides what invalid rows mean).
/// File-level problems (unreadable, empty, unknown layout, corrupt Parquet) are errors.
pub fn check_dataset(
    path: &Path,
    opts: &LoadOptions,
    progress: &dyn ProgressSink,
) -> Result<CheckReport, DataError> {
    scan(path, opts, true, progress, &mut |_| {})
}

/// Streams the records of `path` to `on_record`; see [`load_dataset`].
pub fn for_each_record(
    path: &Path,
    opts: &LoadOptions,
    progress: &dyn ProgressSink,
    on_record: &mut dyn FnMut(Record),
) -> Result<CheckReport, DataError> {
    scan(path, opts, opts.skip_invalid, progress, on_record)
}

/// Opens a file and resolves its layout: the reader (positioned after any rows buffered in
/// the returned queue), the buffered rows, all columns and the resolution.
pub(crate) struct Opened {
    pub reader: RowReader,
    pub buffered: VecDeque<Result<Row, DataError>>,
    pub columns: Vec<String>,
}

pub(crate) fn open_with_columns(path: &Path, opts: &ReadOptions) -> Result<Opened, DataError> {
    let mut reader = RowReader::open(path, opts)?;
    let mut buffered = VecDeque::new();
    let columns = match reader.declared_columns() {
        Some(c) => c,
        None => {
            let mut cols: Vec<String> = Vec::new();
            let mut ok = 0;
            while buffered.len() < PEEK_ROWS {
                match reader.next() {
                    None => break,
                    Some(item) => {
                        if let Ok(row) = &item {
                            ok += 1;
                            for k in row.fields.keys() {
                                if !cols.contains(k) {
                                    cols.push(k.clone());
                                }
                            }
                        }
                        let fatal = matches!(&item, Err(e) if e.loc().is_none());
                        buffered.push_back(item);
                        if fatal {
                            break;
                        }
                    }
                }
            }
            if ok == 0 {
                match buffered.pop_front() {
                    None => {
                        return Err(DataError::Empty {
                            path: path.to_path_buf(),
                        })
                    }
                    Some(Err(e)) => return Err(e),
                    Some(Ok(_)) => unreachable!("no valid rows were buffered"),
                }
            }
            cols
        }
    };
    Ok(Opened {
        reader,
        buffered,
        columns,
    })
}

/// Resolves the layout; for JSON formats, optional fields not seen in the first rows are
/// bound to their canonical names too (later rows may have them).
pub(crate) fn resolve_for(
    path: &Path,
    format: Format,
    columns: &[String],
    mapping: &ColumnMapping,
) -> Result<Resolved, DataError> {
    let mut res = resolve(path, columns, mapping)?;
    if matches!(format, Format::Json | Format::Jsonl) {
        let explicit_winner = res.fields.contains_key(&Field::Winner);
        let model_winner = res.fields.contains_key(&Field::WinnerModelA);
        for &f in res.layout.optional() {
            let winner_cols = matches!(
                f,
                Field::WinnerModelA | Field::WinnerModelB | Field::WinnerTie
            );
            if (winner_cols && explicit_winner) || (f == Field::Winner && model_winner) {
                continue;
            }
            let taken = res.fields.values().any(|c| c == f.name());
            if !res.fields.contains_key(&f) && !taken {
                res.fields.insert(f, f.name().to_string());
            }
        }
    }
    Ok(res)
}

/// Reads one split of a Hugging Face datasets folder: its shards in order as one dataset (the
/// limit counts over all of them; every shard must have the first one's layout). Skipped rows
/// name their shard; the report's path is the folder.
fn scan_shards(
    dir: &Path,
    opts: &LoadOptions,
    keep_going: bool,
    progress: &dyn ProgressSink,
    on_record: &mut dyn FnMut(Record),
) -> Result<CheckReport, DataError> {
    let (_, files) = super::shards::hf_split_files(dir, opts.split.as_deref())?;
    let mut total: Option<CheckReport> = None;
    for file in &files {
        let mut o = opts.clone();
        if let (Some(limit), Some(t)) = (opts.limit, &total) {
            if t.valid as usize >= limit {
                if let Some(t) = total.as_mut() {
                    t.stopped_at_limit = true;
                }
                break;
            }
            o.limit = Some(limit - t.valid as usize);
        }
        let r = match scan(file, &o, keep_going, progress, on_record) {
            Ok(r) => r,
            // An empty shard adds nothing.
            Err(DataError::Empty { .. }) => continue,
            Err(e) => return Err(e),
        };
        let shard = file
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut r = r;
        for k in &mut r.skipped {
            k.reason = format!("{shard}: {}", k.reason);
        }
        match total.as_mut() {
            None => {
                r.path = dir.to_path_buf();
                total = Some(r);
            }
            Some(t) => {
                if r.layout != t.layout {
                    return Err(DataError::Invalid(format!(
                        "{}: shard {shard} holds {} records but the first shard holds {}",
                        dir.display(),
                        r.layout,
                        t.layout
                    )));
                }
                for c in r.columns {
                    if !t.columns.contains(&c) {
                        t.columns.push(c);
                    }
                }
                for (f, c) in r.fields {
                    t.fields.entry(f).or_insert(c);
                }
                t.ignored_columns.retain(|c| r.ignored_columns.contains(c));
                t.rows += r.rows;
                t.valid += r.valid;
                t.invalid += r.invalid;
                let room = MAX_LISTED_SKIPS.saturating_sub(t.skipped.len());
                t.skipped.extend(r.skipped.into_iter().take(room));
                t.stopped_at_limit |= r.stopped_at_limit;
                t.expanded_rows += r.expanded_rows;
                t.expanded_items += r.expanded_items;
            }
        }
    }
    total.ok_or_else(|| DataError::Empty {
        path: dir.to_path_buf(),
    })
}

fn scan(
    path: &Path,
    opts: &LoadOptions,
    keep_going: bool,
    progress: &dyn ProgressSink,
    on_record: &mut dyn FnMut(Record),
) -> Result<CheckReport, DataError> {
    if path.is_dir() {
        return scan_shards(path, opts, keep_going, progress, on_record);
    }
    let ropts = ReadOptions {
        format: opts.format,
        max_record_bytes: opts.max_record_bytes,
    };
    let Opened {
        mut reader,
        mut buffered,
        columns,
    } = open_with_columns(path, &ropts)?;
    let format = reader.format();
    let res = resolve_for(path, format, &columns, &opts.mapping)?;
    let ctx = Ctx::new(path, format);
    let total = match &reader {
        RowReader::Parquet(p) => Some(p.total_rows()),
        _ => None,
    };
    // JSON formats have no declared columns: track which fields the rows really have.
    let by_rows = matches!(format, Format::Json | Format::Jsonl);
    let mut seen = std::collections::BTreeSet::<String>::new();
    let mut report = CheckReport {
        path: path.to_path_buf(),
        format,
        layout: res.layout,
        columns: columns.clone(),
        fields: res.fields.clone(),
        ignored_columns: res.ignored.clone(),
        rows: 0,
        valid: 0,
        invalid: 0,
        skipped: Vec::new(),
        stopped_at_limit: false,
        expanded_rows: 0,
        expanded_items: 0,
    };
    loop {
        let item = match buffered.pop_front() {
            Some(i) => i,
            None => match reader.next() {
                Some(i) => i,
                None => break,
            },
        };
        if let Some(limit) = opts.limit {
            if report.valid as usize >= limit {
                report.stopped_at_limit = true;
                break;
            }
        }
        if let (Ok(row), true) = (&item, by_rows) {
            for k in row.fields.keys() {
                if !seen.contains(k) {
                    seen.insert(k.clone());
                }
            }
        }
        let recs = item.and_then(|row| to_records(&ctx, &row, &res));
        match recs {
            Ok(rs) => {
                report.rows += 1;
                report.valid += 1;
                if rs.len() > 1 {
                    report.expanded_rows += 1;
                    report.expanded_items += rs.len() as u64;
                }
                for r in rs {
                    on_record(r);
                }
            }
            Err(e) => match e.loc() {
                Some(loc) if keep_going => {
                    report.rows += 1;
                    report.invalid += 1;
                    if report.skipped.len() < MAX_LISTED_SKIPS {
                        report.skipped.push(SkippedRow {
                            loc,
                            field: e.field().map(str::to_string),
                            reason: e.reason(),
                        });
                    }
                }
                _ => return Err(e),
            },
        }
        if report.rows.is_multiple_of(4096) {
            progress.report(Progress::new("reading", report.rows, total));
            if progress.is_cancelled() {
                return Err(DataError::Cancelled);
            }
        }
    }
    if report.rows == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    if by_rows {
        // JSON rows name their own fields: report only the ones some row has (an HH file has
        // `chosen`/`rejected` only; its prompt comes from the transcripts).
        report.fields.retain(|_, col| seen.contains(col.as_str()));
    }
    progress.report(Progress::new(
        "reading",
        report.rows,
        total.or(Some(report.rows)),
    ));
    Ok(report)
}
