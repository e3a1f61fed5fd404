//! [`DissectState`]: the Dissect panel's settings and its last fit, and the actions on them
//! (start a fit on a background job, export the report through the picker). The fitting
//! itself is `crate::dissect`; nothing here computes a posterior.
use crate::app::dialogs::expand_tilde;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::Judgement;
use crate::dissect::{
    self, fit::available_group_keys, DissectConfig, DissectOutput, FactorPair, GroupingConfig,
    NutsConfig, Sampler, Waterfall,
};
use crate::numeric::cluster::ClusterCount;
use crate::steer::SteeringVector;

use crate::app::artifacts::ArtifactKind;
use crate::app::export::{save_bytes_as, Format};
use crate::app::job_list::JobId;
use crate::app::nav::{PanelId, Selection};
use crate::app::state::AppState;

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
    /// Every format, in menu order.
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Html,
        ExportFormat::Markdown,
        ExportFormat::Json,
    ];

    /// The export-menu entry (label and extension).
    pub fn format(self) -> Format {
        match self {
            ExportFormat::Html => Format::HTML,
            ExportFormat::Markdown => Format::MARKDOWN,
            ExportFormat::Json => Format::JSON,
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
    /// Steering vectors used as factors, each `FILE@LAYER` (or `FILE` for a one-layer
    /// vector). Need a loaded model.
    pub vectors: Vec<String>,
    /// A vector being typed (`FILE@LAYER`) before it is added to `vectors`.
    pub vector_input: String,
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
    /// Name of the factor whose top pairs are shown (factor → its top pairs).
    pub selected_factor: Option<String>,
    /// How many top pairs to show.
    pub top_k: usize,
    /// Groups compared in the judge-versus-judge view (indices into the result's groups).
    pub compare: (usize, usize),
    /// Where the last export went.
    pub last_export: Option<PathBuf>,
    /// Find annotator groups after each fit.
    pub grouping_on: bool,
    /// The column naming each pair's annotator.
    pub annotator_column: String,
    /// Number of annotator groups, or auto (BIC).
    pub annotator_k: ClusterCount,
    /// Annotators with fewer pairs are not grouped.
    pub min_annotator_pairs: usize,
    /// The grouping settings of the last fit started (live refits compare against them).
    pub fitted_grouping: Option<GroupingConfig>,
    /// The Causal view's settings and last report.
    pub causal: super::causal::CausalUi,
}

impl Default for DissectState {
    fn default() -> Self {
        Self {
            computed: true,
            columns: false,
            llm: String::new(),
            sae_dir: String::new(),
            vectors: Vec::new(),
            vector_input: String::new(),
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
            selected_factor: None,
            top_k: 10,
            compare: (0, 1),
            last_export: None,
            grouping_on: false,
            annotator_column: "annotator".into(),
            annotator_k: ClusterCount::Auto,
            min_annotator_pairs: GroupingConfig::default().min_pairs,
            fitted_grouping: None,
            causal: Default::default(),
        }
    }
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
            t.push(format!("sae:{}", expand_tilde(self.sae_dir.trim())));
        }
        for v in &self.vectors {
            if !v.trim().is_empty() {
                t.push(format!("vector:{}", expand_tilde(v.trim())));
            }
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

    /// The annotator-grouping settings a fit would use now (None: grouping off).
    pub fn grouping_config(&self) -> Option<GroupingConfig> {
        self.grouping_on.then(|| GroupingConfig {
            column: self.annotator_column.trim().to_string(),
            groups: self.annotator_k,
            min_pairs: self.min_annotator_pairs.max(1),
            seed: self.seed,
            ..Default::default()
        })
    }

    /// Adds `FILE@LAYER` (or `FILE`) to the vector factors unless it is there already;
    /// true if added.
    pub fn add_vector(&mut self, spec: &str) -> bool {
        let spec = spec.trim();
        if spec.is_empty() || self.vectors.iter().any(|v| v == spec) {
            return false;
        }
        self.vectors.push(spec.to_string());
        true
    }

    /// The top pairs of the selected factor in the last fit, if one is selected and fitted.
    pub fn top_pairs(&self) -> Option<(usize, Vec<FactorPair>)> {
        let out = self.output.as_ref()?;
        let f = out.factor_index(self.selected_factor.as_deref()?)?;
        Some((f, out.top_pairs(f, self.top_k.max(1))))
    }

    /// Why a live refit should wait for the inputs (a typed SAE folder that does not exist
    /// yet, e.g. half-typed), or `None` when they are complete.
    pub fn live_blocker(&self) -> Option<String> {
        let dir = self.sae_dir.trim();
        if !dir.is_empty() && !std::path::Path::new(&expand_tilde(dir)).is_dir() {
            return Some(format!("live refit waits: no folder {dir}"));
        }
        None
    }

    /// True when the selection runs the loaded model (`llm:` or `vector:`).
    pub fn needs_model(&self) -> bool {
        dissect::sources::selection_needs_model(&self.tokens())
    }

    /// True while a fit runs.
    pub fn is_running(
        &self,
        state_jobs: &crate::app::job_list::JobList<crate::app::state::AppState>,
    ) -> bool {
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
    Some((d.path.clone(), crate::data::judgements(&d.records)))
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
    let grouping = state.dissect.grouping_config();
    state.dissect.fitted_grouping = grouping.clone();
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
            let mut out = dissect::run_dissection_with(&data, &sources, &job_cfg, ctx)?;
            if let Some(g) = &grouping {
                dissect::annotator_groups(&data, &out, &job_cfg, g, ctx)?.attach(&mut out);
            }
            Ok(out)
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
                    let ag = s
                        .output
                        .as_ref()
                        .map_or(0, |o| o.result.annotator_groups.len());
                    if ag > 0 {
                        state.info(format!(
                            "Dissection fitted on {n} pairs, {g} groups; {ag} annotator group(s)"
                        ));
                    } else {
                        state.info(format!("Dissection fitted on {n} pairs, {g} groups"));
                    }
                }
                Err(e) => {
                    // A failed or cancelled fit must not refire the live refit every frame.
                    s.fitted = Some(fitted);
                    state.dissect.error = state.job_failed("Dissection", e);
                }
            }
        },
    );
    state.dissect.job = Some(id);
}

/// Asks where to save (through the picker) and writes the report of the last fit in `fmt`
/// atomically; the file is registered in the sidebar as a report.
pub fn export(state: &mut AppState, fmt: ExportFormat) {
    let Some(out) = state.dissect.output.clone() else {
        state.error("Nothing to export: fit first.");
        return;
    };
    let bytes = match fmt {
        ExportFormat::Html => dissect::report::to_html(&out.result).into_bytes(),
        ExportFormat::Markdown => dissect::report::to_markdown(&out.result).into_bytes(),
        ExportFormat::Json => match serde_json::to_vec_pretty(&out.result) {
            Ok(b) => b,
            Err(e) => {
                state.error(format!("Could not encode the report as JSON: {e}"));
                return;
            }
        },
    };
    save_bytes_as(
        state,
        "Export dissection report",
        "dissection",
        fmt.format(),
        Some(ArtifactKind::Report),
        bytes,
        |state, r| {
            if let Ok(p) = r {
                state.dissect.last_export = Some(p);
            }
        },
    );
}

/// Vector → dissection factor: makes `vector` a factor source of the Dissect panel
/// (`vector:FILE@LAYER`, one per layer) and shows that panel. A vector without a file (trained
/// this session) is first saved to `<cache>/vectors/NAME.safetensors` and registered.
pub fn use_vector_as_factor(state: &mut AppState, vector: &SteeringVector, name: &str) {
    let on_disk = vector.source.as_ref().filter(|p| p.is_file()).cloned();
    let path = match on_disk {
        Some(p) => p,
        None => {
            let stem: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let dir = crate::paths::steerlab_home().join("vectors");
            let path = dir.join(format!("{stem}.safetensors"));
            let saved = std::fs::create_dir_all(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))
                .and_then(|()| vector.save(&path).map_err(|e| e.to_string()));
            if let Err(e) = saved {
                state.error(format!("Could not save {name} for the Dissect panel: {e}"));
                return;
            }
            state.artifacts.add(ArtifactKind::Vector, name, &path);
            path
        }
    };
    let layers: Vec<usize> = vector.layers.keys().copied().collect();
    for l in &layers {
        state.dissect.add_vector(&format!("{}@{l}", path.display()));
    }
    state.info(format!(
        "{name} is a dissection factor (vector:{}@{}); fit in the Dissect panel",
        path.display(),
        layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    // Every layer is listed already; the request names the first (adding it again is a no-op).
    let layer = layers.first().copied();
    state.navigate(PanelId::Dissect, Selection::Vector { path, layer });
}

/// Takes the cross-link waiting for the Dissect panel: a vector becomes a factor source, a
/// factor is selected. True when the factor's top pairs should be shown.
pub fn take_navigation(state: &mut AppState) -> bool {
    match state.take_selection(PanelId::Dissect) {
        Some(Selection::Vector { path, layer }) => {
            let spec = match layer {
                Some(l) => format!("{}@{l}", path.display()),
                None => path.display().to_string(),
            };
            state.dissect.add_vector(&spec);
        }
        Some(Selection::Factor { name }) => {
            state.dissect.selected_factor = Some(name);
            return true;
        }
        Some(Selection::Artifact(a)) => {
            state.info(format!("{}: {}", a.kind.title(), a.path.display()))
        }
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::picker::ScriptedPicker;
    use crate::steer::VectorMeta;
    use std::collections::BTreeMap;

    fn vector(layers: &[usize]) -> SteeringVector {
        let dirs: BTreeMap<usize, Vec<f32>> =
            layers.iter().map(|&l| (l, vec![1.0, 0.5, -0.25])).collect();
        SteeringVector::new(dirs, VectorMeta::new("caa", "m", 3)).unwrap()
    }

    #[test]
    fn a_saved_vector_becomes_one_factor_per_layer_and_the_panel_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.safetensors");
        let v = vector(&[2, 5]);
        v.save(&file).unwrap();
        let mut v = SteeringVector::load(&file).unwrap();
        v.source = Some(file.clone());
        let mut state = AppState::new(Box::new(ScriptedPicker::new()));
        use_vector_as_factor(&mut state, &v, "v");
        let want = vec![
            format!("{}@2", file.display()),
            format!("{}@5", file.display()),
        ];
        assert_eq!(state.dissect.vectors, want);
        assert!(state.dissect.needs_model());
        let toks = state.dissect.tokens();
        assert_eq!(toks[0], "computed");
        assert_eq!(toks[1], format!("vector:{}", want[0]));
        // The file was used as is: nothing new registered.
        assert!(state.artifacts.is_empty());
        let nav = state.navigation.clone().unwrap();
        assert_eq!(nav.panel, PanelId::Dissect);
        // The panel takes the request; adding the same layer again changes nothing.
        assert!(!take_navigation(&mut state));
        assert_eq!(state.dissect.vectors, want);
        assert!(state.navigation.is_none());
        // Typed specs are trimmed and deduplicated.
        assert!(!state.dissect.add_vector(&format!("  {}  ", want[1])));
        assert!(!state.dissect.add_vector("   "));
        assert!(state.dissect.add_vector("other.safetensors@1"));
        assert_eq!(state.dissect.vectors.len(), 3);
    }

    #[test]
    fn a_factor_link_selects_the_factor_for_its_top_pairs() {
        let mut state = AppState::new(Box::new(ScriptedPicker::new()));
        state.navigate(
            PanelId::Dissect,
            Selection::Factor {
                name: "length".into(),
            },
        );
        assert!(take_navigation(&mut state));
        assert_eq!(state.dissect.selected_factor.as_deref(), Some("length"));
        // No fit yet: nothing to rank.
        assert!(state.dissect.top_pairs().is_none());
        // A request for another panel is left alone.
        state.navigate(PanelId::Data, Selection::Factor { name: "x".into() });
        assert!(!take_navigation(&mut state));
        assert!(state.navigation.is_some());
    }
}
