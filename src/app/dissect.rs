//! [`DissectState`]: the Dissect panel's settings and its last fit, and the actions on them
//! (start a fit on a background job, export the report through the picker). The fitting
//! itself is `crate::dissect`; nothing here computes a posterior.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::{Judgement, Record};
use crate::dissect::{
    self, fit::available_group_keys, DissectConfig, DissectOutput, NutsConfig, Sampler, Waterfall,
};

use super::job_list::JobId;
use super::picker::FileFilter;
use super::state::AppState;

/// Report formats the panel exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Self-contained HTML page.
    Html,
    /// Markdown.
    Markdown,
    /// `report.json`.
    Json,
}

impl ExportFormat {
    /// File extension.
    pub fn ext(self) -> &'static str {
        match self {
            ExportFormat::Html => "html",
            ExportFormat::Markdown => "md",
            ExportFormat::Json => "json",
        }
    }
}

/// The settings of the Dissect panel and the fit they produced.
pub struct DissectState {
    /// Use the computed text factors.
    pub computed: bool,
    /// Use the dataset's annotation columns (`factors_a`/`factors_b`).
    pub columns: bool,
    /// LLM-judge factor names joined by `+` (empty: off). Needs a loaded model.
    pub llm: String,
    /// `steerlab sae run` output folder (empty: off).
    pub sae_dir: String,
    /// Steering vector `FILE@LAYER` (empty: off). Needs a loaded model.
    pub vector: String,
    /// Group keys (judge, scenario, any column).
    pub group_by: Vec<String>,
    /// Posterior computation.
    pub sampler: Sampler,
    /// Refit automatically (Laplace only, no model-backed sources) when a setting changes.
    pub live: bool,
    /// Laplace prior scale b.
    pub prior_scale: f64,
    /// K-fold averaging.
    pub folds: usize,
    /// NUTS settings.
    pub nuts: NutsConfig,
    /// Seed.
    pub seed: u64,
    /// The last successful fit.
    pub output: Option<Arc<DissectOutput>>,
    /// What that fit was run on: dataset path and settings.
    pub fitted: Option<(PathBuf, DissectConfig)>,
    /// Why the last fit failed.
    pub error: Option<String>,
    /// The running fit.
    pub job: Option<JobId>,
    /// Dataset path whose group keys were defaulted already.
    pub defaults_for: Option<PathBuf>,
    /// Design index of the pair shown in the waterfall.
    pub selected_pair: usize,
    /// Groups compared in the judge-versus-judge view (indices into the result's groups).
    pub compare: (usize, usize),
    /// Where the last export went.
    pub last_export: Option<PathBuf>,
}

impl Default for DissectState {
    fn default() -> Self {
        Self {
            computed: true,
            columns: false,
            llm: String::new(),
            sae_dir: String::new(),
            vector: String::new(),
            group_by: Vec::new(),
            sampler: Sampler::Laplace,
            live: true,
            prior_scale: 0.1,
            folds: 1,
            nuts: NutsConfig::default(),
            seed: 1,
            output: None,
            fitted: None,
            error: None,
            job: None,
            defaults_for: None,
            selected_pair: 0,
            compare: (0, 1),
            last_export: None,
        }
    }
}

/// The judgements of a dataset's records (chosen/rejected pairs as A = chosen).
pub fn judgements_of(records: &[Record]) -> Vec<Judgement> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Judgement(j) => Some(j.clone()),
            Record::Pair(p) => Some(p.to_judgement()),
            _ => None,
        })
        .collect()
}

impl DissectState {
    /// The factor tokens of the current selection (as `steerlab dissect --factors` takes them).
    pub fn tokens(&self) -> Vec<String> {
        let mut t = Vec::new();
        if self.computed {
            t.push("computed".to_string());
        }
        if self.columns {
            t.push("columns".to_string());
        }
        if !self.llm.trim().is_empty() {
            t.push(format!("llm:{}", self.llm.trim()));
        }
        if !self.sae_dir.trim().is_empty() {
            t.push(format!("sae:{}", self.sae_dir.trim()));
        }
        if !self.vector.trim().is_empty() {
            t.push(format!("vector:{}", self.vector.trim()));
        }
        t
    }

    /// The configuration a fit would use now.
    pub fn config(&self) -> DissectConfig {
        DissectConfig {
            factors: self.tokens(),
            group_by: self.group_by.clone(),
            sampler: self.sampler,
            prior_scale: self.prior_scale,
            folds: self.folds.max(1),
            nuts: self.nuts.clone(),
            seed: self.seed,
        }
    }

    /// True when the selection runs the loaded model (`llm:` or `vector:`).
    pub fn needs_model(&self) -> bool {
        dissect::sources::selection_needs_model(&self.tokens())
    }

    /// True while a fit runs.
    pub fn is_running(&self, state_jobs: &super::job_list::JobList) -> bool {
        self.job.is_some_and(|j| state_jobs.is_running(j))
    }

    /// The waterfall of the selected pair under its own group's weights.
    pub fn waterfall(&self) -> Option<Waterfall> {
        let out = self.output.as_ref()?;
        out.waterfall(self.selected_pair, None)
    }

    /// Picks default group keys for a newly active dataset: `judge` when it has several
    /// judges, else `scenario` when it has several scenarios; annotation columns on when the
    /// data has them.
    pub fn defaults_for_data(&mut self, path: &Path, data: &[Judgement]) {
        if self.defaults_for.as_deref() == Some(path) {
            return;
        }
        self.defaults_for = Some(path.to_path_buf());
        let keys = available_group_keys(data);
        let many = |k: &str| keys.iter().any(|(n, c)| n == k && *c > 1);
        self.group_by = if many("judge") {
            vec!["judge".into()]
        } else if many("scenario") {
            vec!["scenario".into()]
        } else {
            Vec::new()
        };
        let has_cols = data
            .iter()
            .any(|j| !j.factors_a.is_empty() || !j.factors_b.is_empty());
        self.columns = has_cols;
        self.computed = !has_cols;
    }
}

/// The active dataset's path and judgements, if one is open.
pub fn active_data(state: &AppState) -> Option<(PathBuf, Vec<Judgement>)> {
    let d = state.datasets.get(state.active_dataset?)?;
    if d.records.is_empty() {
        return None;
    }
    Some((d.path.clone(), judgements_of(&d.records)))
}

/// Starts a fit of the active dataset with the current settings on a background job (progress
/// and cancel in the status area). Posts an error when there is no data or a model is missing.
pub fn start_fit(state: &mut AppState) {
    let Some((path, data)) = active_data(state) else {
        state.dissect.error = Some("Open a dataset first (Data panel or Open data… here).".into());
        return;
    };
    let cfg = state.dissect.config();
    let model = state.model.as_ref().map(|m| m.model.clone());
    if state.dissect.needs_model() && model.is_none() {
        state.dissect.error =
            Some("LLM-judge and steering-vector factors need a loaded model (Model panel).".into());
        return;
    }
    if let Some(j) = state.dissect.job.take() {
        state.jobs.cancel(j);
    }
    state.dissect.error = None;
    let job_cfg = cfg.clone();
    let fitted = (path.clone(), cfg.clone());
    let name = match cfg.sampler {
        Sampler::Nuts => "Dissect (NUTS)",
        Sampler::Laplace => "Dissect (Laplace)",
    };
    let id = state.spawn_job(
        name,
        move |ctx| {
            let mut sources = dissect::fit::builtin_sources();
            sources.extend(dissect::sources::build_sources(
                &job_cfg.factors,
                &data,
                model.as_deref(),
                None,
                ctx,
            )?);
            Ok(dissect::run_dissection_with(
                &data, &sources, &job_cfg, ctx,
            )?)
        },
        move |res: Result<DissectOutput, String>, state: &mut AppState| {
            let s = &mut state.dissect;
            s.job = None;
            match res {
                Ok(out) => {
                    let n = out.design.ids.len();
                    if s.selected_pair >= n {
                        s.selected_pair = 0;
                    }
                    let g = out.result.groups.len();
                    if s.compare.0 >= g || s.compare.1 >= g {
                        s.compare = (0, 1.min(g.saturating_sub(1)));
                    }
                    s.output = Some(Arc::new(out));
                    s.fitted = Some(fitted);
                    s.error = None;
                }
                Err(e) => {
                    // A failed or cancelled fit must not refire the live refit every frame.
                    s.fitted = Some(fitted);
                    s.error = Some(e.clone());
                    if e != "cancelled" {
                        state.error(format!("Dissection failed: {e}"));
                    }
                }
            }
        },
    );
    state.dissect.job = Some(id);
}

/// Asks where to save and writes the report of the last fit in `fmt` (atomically).
pub fn export(state: &mut AppState, fmt: ExportFormat) {
    let Some(out) = state.dissect.output.clone() else {
        state.error("Nothing to export: fit first.");
        return;
    };
    let filter = match fmt {
        ExportFormat::Html => FileFilter::new("HTML report", &["html"]),
        ExportFormat::Markdown => FileFilter::new("Markdown report", &["md"]),
        ExportFormat::Json => FileFilter::new("JSON report", &["json"]),
    };
    let Some(path) = state.picker.save_file(
        "Export dissection report",
        &format!("report.{}", fmt.ext()),
        &[filter],
    ) else {
        return;
    };
    match write_report(&path, &out.result, fmt) {
        Ok(()) => {
            state.info(format!("Wrote {}", path.display()));
            state.dissect.last_export = Some(path);
        }
        Err(e) => state.error(format!("Could not write {}: {e}", path.display())),
    }
}

/// Writes the report of `r` to `path` in `fmt`.
pub fn write_report(
    path: &Path,
    r: &dissect::DissectResult,
    fmt: ExportFormat,
) -> Result<(), crate::report::ReportError> {
    match fmt {
        ExportFormat::Html => {
            crate::report::write_atomic(path, dissect::report::to_html(r).as_bytes())
        }
        ExportFormat::Markdown => {
            crate::report::write_atomic(path, dissect::report::to_markdown(r).as_bytes())
        }
        ExportFormat::Json => crate::report::write_json(path, r),
    }
}
