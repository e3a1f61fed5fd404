//! Two Features-panel actions on saved SAEs: a SAELens SAE trained on the loaded model's
//! residual stream, imported and browsed (per feature: logit lens, top-activating tokens over
//! the active dataset with context, its decoder direction as a steering vector), and a saved
//! feature run applied to the active dataset (its pairs embedded as the run's were, their
//! differences encoded and written next to the run). State, actions and their views; every
//! computation is a call into `crate::sae::import` / `crate::sae::encode`.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use eframe::egui;

use crate::app::artifacts::ArtifactKind;
use crate::app::dialogs::DialogRequest;
use crate::app::job_list::JobId;
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::sae::import::{self, FeatureTokens, LogitLens, ResidualSae};
use crate::sae::link::parse_llm_embedder;
use crate::sae::{encode, Embedder, MiniLmEmbedder, PairSet};

/// Texts of the active dataset read for top-activating tokens (the first ones, responses).
pub const MAX_TOKEN_TEXTS: usize = 200;
/// Top-activating tokens kept per feature.
const TOP_TOKENS: usize = 10;
/// Tokens of context shown either side.
const CONTEXT: usize = 6;
/// Tokens listed by the logit lens on each side.
const LENS_TOKENS: usize = 8;

/// A SAELens SAE imported against the loaded model.
pub struct ImportedSae {
    /// The SAE, its hook and steering layer.
    pub rs: ResidualSae,
    /// The feature shown.
    pub feature: usize,
    /// Its logit lens (computed when the feature is chosen).
    pub lens: Option<LogitLens>,
    /// The feature the lens was last computed (or attempted) for.
    lens_feature: Option<usize>,
    /// Its top-activating tokens over the active dataset (a job).
    pub tokens: Option<FeatureTokens>,
    /// The top-tokens job.
    pub job: Option<JobId>,
    /// Norm of the steering vector written from a feature.
    pub norm: f32,
}

/// A feature run applied to a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The dataset.
    pub dataset: PathBuf,
    /// The split read, when the dataset is a Hugging Face datasets folder.
    pub split: Option<String>,
    /// The file written (`inputs`, `activations`, `reconstructions`).
    pub file: PathBuf,
    /// Pairs encoded.
    pub rows: usize,
    /// Per feature: fraction of the new pairs where it fires.
    pub prevalence: Vec<f64>,
    /// Per feature: mean |activation| where it fires (0 when it never does).
    pub mean_abs: Vec<f64>,
}

impl Applied {
    fn from_encoded(run_dir: &Path, dataset: &Path, file: PathBuf, e: &encode::Encoded) -> Self {
        let (n, m) = (e.ids.len(), e.d_sae);
        let mut count = vec![0usize; m];
        let mut sum = vec![0f64; m];
        for row in e.activations.chunks_exact(m.max(1)) {
            for (j, v) in row.iter().enumerate() {
                if *v != 0.0 {
                    count[j] += 1;
                    sum[j] += v.abs() as f64;
                }
            }
        }
        Self {
            run_dir: run_dir.to_path_buf(),
            dataset: dataset.to_path_buf(),
            split: None,
            file,
            rows: n,
            prevalence: count.iter().map(|&c| c as f64 / n.max(1) as f64).collect(),
            mean_abs: count
                .iter()
                .zip(&sum)
                .map(|(&c, &s)| if c == 0 { 0.0 } else { s / c as f64 })
                .collect(),
        }
    }
}

/// Asks for a SAELens SAE folder and imports it against the loaded model.
pub fn ask_import(state: &mut AppState) {
    state.ask(
        DialogRequest::folder("Import SAELens SAE folder"),
        |state, dir| import_sae(state, &dir),
    );
}

/// Imports the SAELens SAE in `dir` against the loaded model and shows its feature 0.
pub fn import_sae(state: &mut AppState, dir: &Path) {
    let Some(m) = state.model.as_ref() else {
        state.features.error = Some("load a model in the Model panel first".into());
        return;
    };
    match import::import_saelens(dir, &m.model) {
        Ok(rs) => {
            state.info(format!(
                "Imported SAELens SAE {} ({}, {} features, reads {}){}",
                dir.display(),
                rs.sae.arch.name(),
                rs.sae.d_sae,
                rs.hook,
                rs.notes
                    .iter()
                    .map(|n| format!("; {n}"))
                    .collect::<String>()
            ));
            state.features.imported = Some(ImportedSae {
                rs,
                feature: 0,
                lens: None,
                lens_feature: None,
                tokens: None,
                job: None,
                norm: 4.0,
            });
            state.features.error = None;
            select_feature(state, 0);
        }
        Err(e) => {
            state.error(format!("Could not import {}: {e}", dir.display()));
            state.features.error = Some(e.to_string());
        }
    }
}

/// Shows feature `j` of the imported SAE: its logit lens now (one pass through the final norm
/// and unembedding); its top tokens are dropped until asked for again.
pub fn select_feature(state: &mut AppState, j: usize) {
    let Some(m) = state.model.as_ref().map(|m| m.model.clone()) else {
        return;
    };
    let Some(imp) = state.features.imported.as_mut() else {
        return;
    };
    imp.feature = j.min(imp.rs.sae.d_sae.saturating_sub(1));
    imp.lens_feature = Some(imp.feature);
    imp.tokens = None;
    let lens = match m.tokenizer() {
        Some(tok) => import::logit_lens(&m, tok, &imp.rs, imp.feature, LENS_TOKENS)
            .map_err(|e| e.to_string()),
        None => Err("the loaded model has no tokenizer".to_string()),
    };
    match lens {
        Ok(l) => imp.lens = Some(l),
        Err(e) => {
            imp.lens = None;
            state.features.error = Some(e);
        }
    }
}

/// The texts top-activating tokens are read from: the active dataset's responses (both sides),
/// at most [`MAX_TOKEN_TEXTS`].
fn dataset_texts(state: &AppState) -> Option<Vec<String>> {
    let d = state.active_dataset.and_then(|i| state.datasets.get(i))?;
    let pairs = PairSet::from_records(&d.records);
    let texts: Vec<String> = pairs
        .a
        .iter()
        .zip(&pairs.b)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .filter(|t| !t.trim().is_empty())
        .take(MAX_TOKEN_TEXTS)
        .collect();
    (!texts.is_empty()).then_some(texts)
}

/// Why top tokens cannot be computed now.
fn tokens_blocker(state: &AppState) -> Option<String> {
    let imp = state.features.imported.as_ref()?;
    if imp.job.is_some_and(|id| state.jobs.is_running(id)) {
        return Some("reading activations…".into());
    }
    if state.model.is_none() {
        return Some("load a model first".into());
    }
    if dataset_texts(state).is_none() {
        return Some("open a dataset with pairs in the Data panel".into());
    }
    None
}

/// Runs the model over the active dataset's texts (a background job) and keeps the shown
/// feature's top-activating tokens.
pub fn start_top_tokens(state: &mut AppState) {
    if let Some(why) = tokens_blocker(state) {
        state.features.error = Some(why);
        return;
    }
    let (Some(m), Some(texts), Some(imp)) = (
        state.model.as_ref().map(|m| m.model.clone()),
        dataset_texts(state),
        state.features.imported.as_ref(),
    ) else {
        return;
    };
    let (rs, feature) = (imp.rs.clone(), imp.feature);
    let id = state.spawn_job(
        "Feature tokens",
        move |ctx| {
            let tok = m.tokenizer().context("the loaded model has no tokenizer")?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut r = import::top_activating_tokens(
                &m,
                tok,
                &rs,
                &refs,
                &[feature],
                TOP_TOKENS,
                CONTEXT,
                ctx,
            )?;
            Ok((feature, r.pop().context("no result")?))
        },
        |res, state: &mut AppState| match res {
            Ok((feature, tokens)) => {
                if let Some(imp) = state.features.imported.as_mut() {
                    if imp.feature == feature {
                        imp.tokens = Some(tokens);
                    }
                }
            }
            Err(e) => state.features.error = state.job_failed("Feature tokens", e),
        },
    );
    if let Some(imp) = state.features.imported.as_mut() {
        imp.job = Some(id);
    }
}

/// Asks where to save the shown imported feature's decoder direction (× the chosen norm) as a
/// native steering vector, writes it and adds it to the Steer panel's list.
pub fn imported_to_vector(state: &mut AppState) {
    let Some(imp) = state.features.imported.as_ref() else {
        return;
    };
    let (rs, j, norm) = (imp.rs.clone(), imp.feature, imp.norm);
    let v = match import::feature_steering_vector(&rs, j, norm) {
        Ok(v) => v,
        Err(e) => {
            state.features.error = Some(e.to_string());
            return;
        }
    };
    let layer = rs.steer_layer.unwrap_or_default();
    let name = format!("saelens_feature{j}_layer{layer}.safetensors");
    let filters = [FileFilter::new("Steering vector", &["safetensors"])];
    state.ask(
        DialogRequest::save("Save steering vector", &name, &filters),
        move |state, path| match v.save(&path) {
            Ok(()) => {
                state.info(format!(
                    "Wrote SAELens feature {j} as a steering vector at layer {layer} (norm \
                     {norm}) to {}; added to the Steer panel's vectors",
                    path.display()
                ));
                state.artifacts.add(
                    ArtifactKind::Vector,
                    format!("SAELens feature {j} · layer {layer}"),
                    &path,
                );
                state.steer.add_vector(format!("SAELens {j} L{layer}"), v);
                if let Some(e) = state.steer.vectors.last_mut() {
                    e.path = Some(path.clone());
                }
                state.features.last_vector = Some(path);
                state.features.error = None;
            }
            Err(e) => {
                state.error(format!("Steering vector not written: {e}"));
                state.features.error = Some(e.to_string());
            }
        },
    );
}

/// Why the shown run cannot be applied to the active dataset now.
pub fn apply_blocker(state: &AppState) -> Option<String> {
    let f = &state.features;
    let run = f.active_run()?;
    if f.job.is_some_and(|id| state.jobs.is_running(id)) {
        return Some("a job is in progress".into());
    }
    if run.out_dir.is_none() {
        return Some("the run has no saved folder".into());
    }
    let Some(d) = state.active_dataset.and_then(|i| state.datasets.get(i)) else {
        return Some("open a dataset in the Data panel first".into());
    };
    if PairSet::from_records(&d.records).is_empty() {
        return Some(format!("{} has no pairs to encode", d.path.display()));
    }
    if parse_llm_embedder(&run.result.report.embedder).is_some() && state.model.is_none() {
        return Some("the run used the LLM embedder: load its model first".into());
    }
    None
}

/// The file a run applied to `dataset` is written to: `encoded-<dataset stem>.safetensors` in
/// the run folder (`encoded-<folder>-<split>.safetensors` for a split of a datasets folder).
pub fn encoded_path(run_dir: &Path, dataset: &Path, split: Option<&str>) -> PathBuf {
    let stem = dataset
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    match split {
        Some(s) => run_dir.join(format!("encoded-{stem}-{s}.safetensors")),
        None => run_dir.join(format!("encoded-{stem}.safetensors")),
    }
}

/// Applies the shown run's SAE to the active dataset (a background job): its pairs are embedded
/// as the run's were (same embedder, prompt setting), their differences encoded, and inputs,
/// activations and reconstructions written to [`encoded_path`].
pub fn start_apply(state: &mut AppState) {
    if let Some(why) = apply_blocker(state) {
        state.features.error = Some(why);
        return;
    }
    let Some(run) = state.features.active_run() else {
        return;
    };
    let folder = run.as_folder();
    let run_dir = run.out_dir.clone().unwrap_or_default();
    let d = &state.datasets[state.active_dataset.expect("checked by apply_blocker")];
    let (data_path, records) = (d.path.clone(), d.records.clone());
    let split = d.hf_split.clone();
    let model = state.model.as_ref().map(|m| m.model.clone());
    let minilm = state.features.settings.minilm_dir.clone();
    state.features.error = None;
    let id = state.spawn_job(
        "Apply SAE",
        move |ctx| {
            let pairs = PairSet::from_records(&records);
            let e = match parse_llm_embedder(&folder.embedder) {
                Some(site) => {
                    let m = model.as_ref().context("no model loaded")?;
                    let tok = m.tokenizer().context("the loaded model has no tokenizer")?;
                    let emb = crate::sae::llm::LlmEmbedder::new(m, tok, site.layer)?;
                    encode::encode_pairs(&folder, &pairs, &emb as &dyn Embedder, ctx)?
                }
                None => {
                    let dir = crate::paths::require_default(minilm, "embedder")?;
                    let emb = MiniLmEmbedder::load(&dir)?;
                    encode::encode_pairs(&folder, &pairs, &emb as &dyn Embedder, ctx)?
                }
            };
            let file = encoded_path(&run_dir, &data_path, split.as_deref());
            encode::write_encoded(&file, &e, &run_dir)?;
            let mut a = Applied::from_encoded(&run_dir, &data_path, file, &e);
            a.split = split;
            Ok(a)
        },
        |res, state: &mut AppState| match res {
            Ok(a) => {
                state.info(format!(
                    "Applied the SAE to {}: {} pairs encoded; wrote {}",
                    a.dataset.display(),
                    a.rows,
                    a.file.display()
                ));
                state.features.applied = Some(a);
            }
            Err(e) => state.features.error = state.job_failed("Apply SAE", e),
        },
    );
    state.features.job = Some(id);
}

/// The buttons of both actions (in the panel's action row).
pub fn actions_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let has_model = state.model.is_some();
    if ui
        .add_enabled(has_model, egui::Button::new("Import SAELens SAE…"))
        .on_hover_text(
            "A SAELens SAE folder (cfg.json + sae_weights.safetensors) trained on the loaded \
             model's residual stream: browse its features, logit lens and top tokens, and steer \
             with them",
        )
        .on_disabled_hover_text("Load the SAE's model in the Model panel first")
        .clicked()
    {
        ask_import(state);
    }
    if state.features.active.is_some() {
        let blocker = apply_blocker(state);
        if ui
            .add_enabled(
                blocker.is_none(),
                egui::Button::new("Apply to this dataset"),
            )
            .on_hover_text(
                "Encode the active dataset's pairs with the shown run's SAE (embedded as its \
                 training data was) and write inputs, activations and reconstructions to the \
                 run folder",
            )
            .on_disabled_hover_text(blocker.unwrap_or_default())
            .clicked()
        {
            start_apply(state);
        }
    }
}

/// What the last "Apply to this dataset" gave, for the shown run.
pub fn applied_ui(ui: &mut egui::Ui, state: &AppState) {
    let f = &state.features;
    let (Some(a), Some(run)) = (&f.applied, f.active_run()) else {
        return;
    };
    if run.out_dir.as_deref() != Some(a.run_dir.as_path()) {
        return;
    }
    ui.separator();
    ui.strong(format!(
        "Applied to {}{}: {} pairs",
        a.dataset
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        a.split
            .as_ref()
            .map(|s| format!(" (split {s})"))
            .unwrap_or_default(),
        a.rows
    ));
    ui.weak(format!("wrote {}", a.file.display()));
    let features = &run.result.report.features;
    let train = |j: usize| features.get(j).map(|x| x.prevalence);
    // Features whose firing rate moved most between the training data and the new data first.
    let mut order: Vec<usize> = (0..a.prevalence.len()).collect();
    let shift = |j: usize| (a.prevalence[j] - train(j).unwrap_or(0.0)).abs();
    order.sort_by(|&x, &y| shift(y).total_cmp(&shift(x)).then(x.cmp(&y)));
    ui.weak("Sorted by the change in firing rate (new data vs training data).");
    egui::ScrollArea::vertical()
        .id_salt("applied_scroll")
        .max_height(260.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("applied_features")
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("feature");
                    ui.strong("fires (new data)");
                    ui.strong("fires (training data)");
                    ui.strong("change");
                    ui.strong("mean |a| (new)");
                    ui.strong("description");
                    ui.end_row();
                    for &j in &order {
                        ui.label(format!("#{j}"));
                        ui.label(format!("{:.1}%", 100.0 * a.prevalence[j]));
                        match train(j) {
                            Some(p) => {
                                ui.label(format!("{:.1}%", 100.0 * p));
                                ui.label(format!("{:+.1} pp", 100.0 * (a.prevalence[j] - p)));
                            }
                            None => {
                                ui.label("–");
                                ui.label("–");
                            }
                        }
                        ui.label(format!("{:.3}", a.mean_abs[j]));
                        let desc = features
                            .get(j)
                            .and_then(|x| x.description.as_deref())
                            .unwrap_or("");
                        ui.add(egui::Label::new(desc).truncate());
                        ui.end_row();
                    }
                });
        });
}

/// The imported SAE: feature choice, logit lens, top tokens and the steering-vector action.
pub fn imported_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(imp) = state.features.imported.as_ref() else {
        return;
    };
    let d_sae = imp.rs.sae.d_sae;
    let mut j = imp.feature;
    let steer_layer = imp.rs.steer_layer;
    ui.separator();
    ui.heading("Imported SAE");
    ui.label(format!(
        "{} · {} · {} features · reads {}{}",
        imp.rs
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        imp.rs.sae.arch.name(),
        d_sae,
        imp.rs.hook,
        match steer_layer {
            Some(l) => format!(" · steers after block {l}"),
            None => " · the embeddings (no block output to steer)".into(),
        }
    ));
    for n in &imp.rs.notes {
        ui.weak(n);
    }
    ui.horizontal(|ui| {
        let l = ui.label("SAELens feature");
        ui.add(egui::DragValue::new(&mut j).range(0..=d_sae.saturating_sub(1)))
            .labelled_by(l.id)
            .on_hover_text("Latent index of the imported SAE");
    });
    // A new choice here, or a feature set elsewhere whose lens is not computed yet.
    if j != imp.feature || imp.lens_feature != Some(j) {
        select_feature(state, j);
    }
    let Some(imp) = state.features.imported.as_ref() else {
        return;
    };
    let ctx = ui.ctx().clone();
    let words = |v: &[(String, f32)]| {
        v.iter()
            .map(|(t, x)| format!("{} ({x:+.2})", crate::app::widgets::printable(&ctx, t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(l) = &imp.lens {
        ui.label(format!("Logit lens promotes: {}", words(&l.promoted)));
        ui.label(format!("Logit lens suppresses: {}", words(&l.suppressed)));
    }
    let blocker = tokens_blocker(state);
    let mut want_tokens = false;
    let mut want_vector = false;
    let mut norm = imp.norm;
    ui.horizontal(|ui| {
        want_tokens = ui
            .add_enabled(
                blocker.is_none(),
                egui::Button::new("Top tokens in this dataset"),
            )
            .on_hover_text(format!(
                "Run the model over the active dataset's responses (at most {MAX_TOKEN_TEXTS}) \
                 and list where the feature fires most, with context"
            ))
            .on_disabled_hover_text(blocker.clone().unwrap_or_default())
            .clicked();
        ui.separator();
        let l = ui.label("Vector norm");
        ui.add(
            egui::DragValue::new(&mut norm)
                .range(0.01..=1000.0)
                .speed(0.05),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "Length of the steering vector: a SAELens SAE has no activation statistics to size \
             it (a typical residual norm at its layer is a start)",
        );
        want_vector = ui
            .add_enabled(
                steer_layer.is_some(),
                egui::Button::new("Write as steering vector…"),
            )
            .on_hover_text(
                "Save the feature's decoder direction (unit length × norm) as a native steering \
                 vector and add it to the Steer panel",
            )
            .on_disabled_hover_text("The SAE reads the embeddings: no block output to steer")
            .clicked();
    });
    if let Some(imp) = state.features.imported.as_mut() {
        imp.norm = norm;
    }
    if want_tokens {
        start_top_tokens(state);
    }
    if want_vector {
        imported_to_vector(state);
    }
    let Some(imp) = state.features.imported.as_ref() else {
        return;
    };
    if let Some(t) = imp.tokens.as_ref().filter(|t| t.feature == imp.feature) {
        ui.label(format!(
            "Feature {} fires on {} of {} token positions; top {}:",
            t.feature,
            t.fired,
            t.positions,
            t.examples.len()
        ));
        for (n, x) in t.examples.iter().enumerate() {
            ui.label(format!(
                "{}. {:.3}  …{}[{}]{}…",
                n + 1,
                x.activation,
                crate::app::widgets::printable(&ctx, &x.before),
                crate::app::widgets::printable(&ctx, &x.token),
                crate::app::widgets::printable(&ctx, &x.after)
            ));
        }
    }
}
