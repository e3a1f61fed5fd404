//! `steerlab data check|head|convert|split|synth|fetch`: argument parsing and printing only;
//! everything is done by `crate::data`.
use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::data::{self, ColumnMapping, Format, Layout, LoadOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `steerlab data ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Validate a dataset file: format, layout, rows, invalid rows with their line and field.
    /// Exits with status 1 when a row is invalid, unless --skip-invalid.
    Check {
        #[command(flatten)]
        input: InputArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the first rows of a file as a table of cells (no layout needed).
    Head {
        /// The file.
        file: PathBuf,
        /// How many rows.
        #[arg(short, long, default_value_t = 5)]
        n: usize,
    },
    /// Convert a dataset to native JSONL (or CSV when OUT ends in .csv).
    Convert {
        #[command(flatten)]
        input: InputArgs,
        /// Output file (.jsonl or .csv).
        #[arg(long)]
        out: PathBuf,
    },
    /// Split a dataset into train and test files.
    Split {
        #[command(flatten)]
        input: InputArgs,
        /// Fraction of records in the test file.
        #[arg(long, default_value_t = 0.2)]
        test: f64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Keep records that share a prompt (or an id) on one side (WIMHF's split).
        #[arg(long)]
        by_prompt: bool,
        /// Train output (.jsonl).
        #[arg(long)]
        out_train: PathBuf,
        /// Test output (.jsonl).
        #[arg(long)]
        out_test: PathBuf,
    },
    /// Write planted synthetic pairwise judgements (FILE), their ground truth
    /// (FILE.truth.json) and the same pairs as chosen/rejected (FILE.pairs.jsonl).
    Synth {
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
        /// Number of pairs.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Plant G groups of human annotators (2 or 3) with different factor weights; the
        /// truth file lists each annotator's group (for `dissect --annotator-groups`).
        #[arg(long)]
        annotator_groups: Option<usize>,
        /// Number of annotators with --annotator-groups.
        #[arg(long, default_value_t = 30, requires = "annotator_groups")]
        annotators: usize,
    },
    /// Convert the default real data sets (fetched by scripts/fetch-defaults.sh into the raw
    /// cache) into the data folder, with PROVENANCE.md. Works offline.
    Fetch {
        /// Raw folder (default: the cache's raw/).
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Output folder (default: the cache's data/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the written sets as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--split`, shared by every command that reads a dataset path: which split of a Hugging Face
/// datasets folder to read.
#[derive(Debug, Clone, Default, Args)]
pub struct SplitArg {
    /// The split to read where a dataset path is a Hugging Face datasets folder
    /// (data/SPLIT-00000-of-0000N.parquet shards): train, test, ...; default: its only split.
    #[arg(long)]
    pub split: Option<String>,
}

impl SplitArg {
    /// Loads a dataset file or the chosen split of a datasets folder, reading at most `limit`
    /// records. A split given for a plain file is reported and ignored.
    pub fn load(&self, path: &Path, limit: Option<usize>) -> Result<data::Dataset> {
        self.load_with(
            path,
            LoadOptions {
                limit,
                ..LoadOptions::default()
            },
        )
    }

    /// [`SplitArg::load`] with other options (mapping, skip_invalid, ...); `opts.split` is
    /// replaced by `--split`.
    pub fn load_with(&self, path: &Path, mut opts: LoadOptions) -> Result<data::Dataset> {
        if let (Some(s), false) = (&self.split, path.is_dir()) {
            eprintln!(
                "note: --split {s} applies to Hugging Face datasets folders; {} is a file, read whole",
                path.display()
            );
        }
        opts.split = self.split.clone();
        // Every data error already names the file (and line, row, field or shard).
        Ok(data::load_dataset(path, &opts)?)
    }

    /// The dataset's name for reports and provenance: the file name, or for a datasets folder
    /// `NAME[SPLIT]` with the split read (chosen or the folder's only one).
    pub fn dataset_name(&self, path: &Path) -> String {
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.is_dir() {
            return name;
        }
        match data::shards::hf_split_files(path, self.split.as_deref()) {
            Ok((split, _)) => format!("{name}[{split}]"),
            Err(_) => name,
        }
    }

    /// FNV-1a of what [`SplitArg::load`] reads (cache keys, provenance): a file's bytes, or for
    /// a datasets folder the split's name and its shards' names and bytes in order.
    pub fn content_hash(&self, path: &Path) -> Result<u64> {
        if !path.is_dir() {
            crate::report::atomic::require_regular_file(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            return Ok(crate::numeric::hash::fnv1a(&bytes));
        }
        let (split, files) = data::shards::hf_split_files(path, self.split.as_deref())?;
        let mut all = split.into_bytes();
        for f in &files {
            all.push(0x1f);
            all.extend(f.file_name().unwrap_or_default().as_encoded_bytes());
            all.push(0x1f);
            all.extend(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
        }
        Ok(crate::numeric::hash::fnv1a(&all))
    }
}

/// How to read an input file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The dataset file (.jsonl, .json, .csv, .tsv, .parquet), or a Hugging Face datasets
    /// folder (data/SPLIT-00000-of-0000N.parquet shards; see --split).
    pub file: PathBuf,
    #[command(flatten)]
    pub split: SplitArg,
    /// Column mapping, e.g. prompt=question,chosen=good,rejected=bad.
    #[arg(long)]
    pub map: Option<String>,
    /// Force the layout: pair, judgement, ab, feedback or prompts.
    #[arg(long)]
    pub layout: Option<String>,
    /// Force the format: jsonl, json, csv, tsv or parquet.
    #[arg(long)]
    pub format: Option<String>,
    /// Skip invalid rows (they are still listed) instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Read at most this many valid records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Largest record accepted, in MiB.
    #[arg(long, default_value_t = 8)]
    pub max_record_mb: usize,
}

impl InputArgs {
    fn options(&self) -> Result<LoadOptions> {
        if self.limit == Some(0) {
            bail!("--limit 0: must be at least 1");
        }
        let mut mapping = match &self.map {
            Some(m) => ColumnMapping::parse(m)?,
            None => ColumnMapping::default(),
        };
        if let Some(l) = &self.layout {
            mapping.layout = Some(Layout::from_name(l).with_context(|| {
                format!("unknown layout `{l}`; expected pair, judgement, ab, feedback or prompts")
            })?);
        }
        let format = match &self.format {
            Some(f) => Some(Format::from_name(f).with_context(|| {
                format!("unknown format `{f}`; expected jsonl, json, csv, tsv or parquet")
            })?),
            None => None,
        };
        Ok(LoadOptions {
            mapping,
            skip_invalid: self.skip_invalid,
            limit: self.limit,
            format,
            max_record_bytes: self.max_record_mb.max(1) << 20,
            split: self.split.split.clone(),
        })
    }

    fn load(&self) -> Result<data::Dataset> {
        let opts = self.options()?;
        let bar = BarSink::new(false);
        let ds = data::load_dataset_with(&self.file, &opts, &bar);
        bar.finish();
        let ds = ds?;
        if ds.report.invalid > 0 {
            eprintln!("skipped {} invalid rows:", ds.report.invalid);
            for s in ds.report.skipped.iter().take(20) {
                eprintln!("  {s}");
            }
        }
        Ok(ds)
    }
}

/// Runs a `steerlab data` subcommand.
pub fn run(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Check { input, json } => check(&input, json),
        DataCommand::Head { file, n } => head(&file, n),
        DataCommand::Convert { input, out } => {
            checks::out_file("--out", &out)?;
            if checks::same_file(&out, &input.file) {
                bail!(
                    "--out {} is the input file; choose another file",
                    out.display()
                );
            }
            let ds = input.load()?;
            if out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                data::write_csv(&out, &ds.records)?;
            } else {
                data::write_jsonl(&out, &ds.records)?;
            }
            eprintln!(
                "wrote {} {} records to {}",
                ds.records.len(),
                ds.report.layout,
                out.display()
            );
            Ok(())
        }
        DataCommand::Split {
            input,
            test,
            seed,
            by_prompt,
            out_train,
            out_test,
        } => {
            checks::out_file("--out-train", &out_train)?;
            checks::out_file("--out-test", &out_test)?;
            if checks::same_file(&out_train, &out_test) {
                bail!(
                    "--out-train and --out-test are the same file ({}); the test records would \
                     replace the training records",
                    out_test.display()
                );
            }
            for (flag, p) in [("--out-train", &out_train), ("--out-test", &out_test)] {
                if checks::same_file(p, &input.file) {
                    bail!(
                        "{flag} {} is the input file; choose another file",
                        p.display()
                    );
                }
            }
            let ds = input.load()?;
            let split = if by_prompt {
                data::split_by_prompt(&ds.records, test, seed)?
            } else {
                data::split_random(&ds.records, test, seed)?
            };
            let (train, test_set) = split.apply(&ds.records);
            data::write_jsonl(&out_train, &train)?;
            data::write_jsonl(&out_test, &test_set)?;
            eprintln!(
                "train: {} records -> {}\ntest:  {} records -> {}",
                train.len(),
                out_train.display(),
                test_set.len(),
                out_test.display()
            );
            Ok(())
        }
        DataCommand::Synth {
            out,
            n,
            seed,
            annotator_groups,
            annotators,
        } => {
            checks::count("--n", n, checks::MAX_SYNTH_N)?;
            checks::out_file("--out", &out)?;
            let planted =
                annotator_groups.map(|groups| data::synth::PlantedGroups { groups, annotators });
            let files = data::synth::write_synthetic_with(
                &out,
                &data::synth::SynthOptions { n, seed },
                planted.as_ref(),
            )?;
            eprintln!(
                "wrote {n} judgements to {}\nground truth: {}\npairs: {}",
                files.judgements.display(),
                files.truth.display(),
                files.pairs.display()
            );
            Ok(())
        }
        DataCommand::Fetch { raw, out, json } => {
            let raw = raw.unwrap_or_else(crate::paths::raw_dir);
            let out = out.unwrap_or_else(crate::paths::data_dir);
            let sets = data::defaults::convert_defaults(&raw, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sets)?);
            } else {
                for s in &sets {
                    println!(
                        "{:>5} {:<9} {}  ({})",
                        s.records,
                        s.layout,
                        s.path.display(),
                        s.source
                    );
                }
                println!("provenance: {}", out.join("PROVENANCE.md").display());
            }
            Ok(())
        }
    }
}

fn check(input: &InputArgs, json: bool) -> Result<()> {
    let opts = input.options()?;
    let bar = BarSink::new(json);
    let report = data::check_dataset(&input.file, &opts, &bar);
    bar.finish();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": e.to_string() })
                );
            }
            return Err(e.into());
        }
    };
    let ok = report.invalid == 0 || input.skip_invalid;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = serde_json::Value::Bool(ok);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.summary());
    }
    if !ok {
        bail!(
            "{}: {} invalid row(s); fix them or pass --skip-invalid",
            input.file.display(),
            report.invalid
        );
    }
    Ok(())
}

fn head(file: &Path, n: usize) -> Result<()> {
    let p = data::preview(file, n)?;
    println!("format: {}  columns: {}", p.format, p.columns.join(", "));
    for r in &p.rows {
        println!("-- {}", r.loc);
        match &r.cells {
            Ok(cells) => {
                for (c, v) in p.columns.iter().zip(cells) {
                    let v = v.as_deref().unwrap_or("(absent)");
                    let one: String = v.chars().take(120).collect::<String>().replace('\n', "⏎");
                    println!("  {c}: {one}");
                }
            }
            Err(e) => println!("  invalid: {e}"),
        }
    }
    if p.more {
        println!("-- (more rows; {} in all)", data::count_rows(file)?);
    }
    Ok(())
}
