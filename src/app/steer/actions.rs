//! The Steer panel's jobs and actions on [`SteerState`]: start-up choices, training (through
//! `crate::steer::train`, the dispatch shared with the CLI), loading and exporting vectors,
//! the behaviour sweep, the debounced re-scoring at the slider value and the automatic
//! start-up run. Thin adapters over `crate::steer`: no algorithm code, no view code.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use crate::data::{Prompt, Record};
use crate::jobs::ProgressSink;
use crate::model::{GenerateOptions, Hooks, Model};
use crate::steer::bipo::{Provenance, StopReason};
use crate::steer::eval::{behaviour_score, steered_generations};
use crate::steer::{
    prepare, steering_hooks, sweep, BipoConfig, Method, Objective, SteeringVector, SweepPoint,
    Trained,
};

use super::state::*;
use crate::app::artifacts::ArtifactKind;
use crate::app::export::{save_as, Format};
use crate::app::live::Recorder;
use crate::app::start::SteerStart;
use crate::app::state::AppState;

impl SteerState {
    /// Applies start-up choices: opens the evaluation set and arms the automatic run.
    pub fn apply_start(state: &mut AppState, start: SteerStart, data: Option<PathBuf>) {
        if let Some(d) = data {
            state.steer.train_source = Some(d);
        }
        if let Some(e) = &start.eval {
            state.steer.eval_source = Some(EvalSource::Dataset(e.clone()));
            state.steer.eval_chosen = true;
            crate::app::data::open_default(state, e.clone());
        }
        if let Some(l) = &start.layers {
            state.steer.settings.layers = l.clone();
            state.steer.settings.layers_edited = true;
        }
        if let Some(e) = start.epochs {
            state.steer.settings.bipo.epochs = e;
        }
        if let Some(lr) = start.lr {
            state.steer.settings.bipo.lr = lr;
        }
        if let Some(m) = start.method {
            state.steer.settings.method = m;
        }
        if let Some(p) = &start.prompt {
            state.steer.prompt = p.clone();
        }
        if let Some(s) = start.strength {
            state.steer.strength = s;
        }
        if start.method.is_some() {
            state.steer.auto = Some((start, AutoStage::WaitInputs));
        }
    }

    /// Starts training with the current settings on a background job.
    pub fn start_training(state: &mut AppState) {
        state.steer.train_error = None;
        let Some(m) = &state.model else {
            state.steer.train_error = Some("Load a model first (Model panel).".into());
            return;
        };
        let model = m.model.clone();
        let model_name = m.summary.name.clone();
        let Some((data_path, records)) = Self::train_records(state) else {
            state.steer.train_error =
                Some("Open a training dataset first (Open… above, or the Data panel).".into());
            return;
        };
        let eval = Self::eval_records(state);
        let s = state.steer.settings.clone();
        let layers = match s.parse_layers() {
            Ok(l) => l,
            Err(e) => {
                state.steer.train_error = Some(format!("{e:#}"));
                return;
            }
        };
        let objective = match s.parse_objective() {
            Ok(o) => o,
            Err(e) => {
                state.steer.train_error = Some(format!("objective: {e:#}"));
                return;
            }
        };
        let live = Arc::new(Mutex::new(TrainLive::default()));
        state.steer.live = live.clone();
        let dataset = file_name(&data_path);
        let name = format!("Train {} on {dataset}", s.method.name().to_uppercase());
        let id = state.spawn_job(
            &name,
            move |ctx| {
                let sink = Recorder::new(ctx, live);
                train(
                    &model,
                    &records,
                    eval.as_deref(),
                    &s,
                    layers,
                    objective,
                    &Provenance {
                        model: model_name,
                        dataset,
                    },
                    &sink,
                )
            },
            move |res: Result<TrainResult, String>, state: &mut AppState| {
                state.steer.train_job = None;
                match res {
                    Ok(r) => {
                        let n = state.steer.vectors.len() + 1;
                        let mut label = format!(
                            "#{n} {} L{}",
                            r.vector.meta.method,
                            r.vector
                                .meta
                                .layers
                                .iter()
                                .map(|l| l.to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        );
                        if r.cancelled {
                            label.push_str(&format!(" (cancelled at step {})", r.steps));
                        }
                        state.info(format!("Trained {label}: {}", r.summary));
                        state.steer.train_summary = Some(r.summary.clone());
                        if let Some(msg) = &r.diverged {
                            state.error(msg.clone());
                            state.steer.train_error = Some(msg.clone());
                        }
                        let keep = r.diverged.is_none() || r.steps > 0;
                        if keep {
                            state.steer.add_vector(label, r.vector);
                        }
                    }
                    Err(e) => state.steer.train_error = state.job_failed("Training", e),
                }
            },
        );
        state.steer.train_job = Some(id);
    }

    /// Loads a vector file (native .safetensors or GGUF control vector) into the list, checking
    /// its width and layers against the loaded model.
    pub fn load_vector(state: &mut AppState, path: &Path) {
        let res = SteeringVector::load_any(path).and_then(|v| {
            if let Some(m) = &state.model {
                v.check_model(m.model.hidden_size(), m.model.n_layers())?;
            }
            Ok(v)
        });
        match res {
            Ok(v) => {
                state.info(format!("Loaded vector {}", path.display()));
                state.steer.vector_error = None;
                state.steer.add_vector(file_name(path), v);
                if let Some(e) = state.steer.vectors.last_mut() {
                    e.path = Some(path.to_path_buf());
                }
            }
            Err(e) => {
                state.error(e.to_string());
                state.steer.vector_error = Some(e.to_string());
            }
        }
    }

    /// Exports the combination of the checked vectors through the picker ("Save as"):
    /// native safetensors (with its provenance metadata) or a llama.cpp GGUF control vector.
    pub fn export_combination(state: &mut AppState, format: Format) {
        match state.steer.combined() {
            Ok(Some(v)) => Self::export_vector(state, &v, "combination", format, None),
            Ok(None) => {
                state.steer.vector_error = Some("Check at least one vector to export.".into())
            }
            Err(e) => {
                let msg = format!("Export failed: {e}");
                state.error(msg.clone());
                state.steer.vector_error = Some(msg);
            }
        }
    }

    /// Exports the `i`-th vector of the list on its own (unscaled, its metadata kept); a
    /// native export becomes the entry's file (so the sidebar lists it once).
    pub fn export_entry(state: &mut AppState, i: usize, format: Format) {
        let Some(e) = state.steer.vectors.get(i) else {
            return;
        };
        let (v, stem) = (e.vector.clone(), file_stem(&e.name));
        let entry = (format != Format::GGUF).then_some(i);
        Self::export_vector(state, &v, &stem, format, entry);
    }

    /// Opens a vector clicked in the sidebar (or linked from another panel): the entry with
    /// that file is checked alone, or the file is loaded into the list.
    pub fn open_vector(state: &mut AppState, path: &Path) {
        match state
            .steer
            .vectors
            .iter()
            .position(|e| e.path.as_deref() == Some(path))
        {
            Some(i) => state.steer.select_only(i),
            None => Self::load_vector(state, path),
        }
    }

    /// "Save as" for one vector: asks the picker for a path (suggesting `stem`), writes it
    /// atomically with [`write_vector`] and registers it in the sidebar.
    /// `entry`: the list entry this file becomes (native export of one row).
    fn export_vector(
        state: &mut AppState,
        v: &SteeringVector,
        stem: &str,
        format: Format,
        entry: Option<usize>,
    ) {
        let hint = state
            .model
            .as_ref()
            .map(|m| m.summary.architecture.clone())
            .unwrap_or_else(|| "llama".into());
        let gguf = format == Format::GGUF;
        let title = if gguf {
            "Export control vector"
        } else {
            "Export vector"
        };
        // llama.cpp adds a control vector at every position: say so when this one was made
        // for fewer (a warning, the file is still written).
        let warning = if gguf {
            crate::steer::gguf::llama_cpp_positions_change(v)
        } else {
            None
        };
        let v = v.clone();
        save_as(
            state,
            title,
            stem,
            format,
            Some(ArtifactKind::Vector),
            move |p| write_vector(&v, gguf, &hint, p),
            move |state, r| match r {
                Ok(p) => {
                    state.steer.vector_error = None;
                    if let Some(e) = entry.and_then(|i| state.steer.vectors.get_mut(i)) {
                        e.path = Some(p.clone());
                    }
                    state.steer.last_export = Some(p);
                    if let Some(w) = warning {
                        state.warn(w);
                    }
                }
                Err(e) => state.steer.vector_error = Some(e),
            },
        );
    }

    /// Starts the behaviour sweep: each checked vector (× its weight) at every multiplier,
    /// plus the combination when several are checked.
    pub fn start_sweep(state: &mut AppState) {
        let Some(m) = &state.model else { return };
        let model = m.model.clone();
        let Some(records) = Self::eval_records(state) else {
            state.steer.score_error = Some("Choose an A/B evaluation set first.".into());
            return;
        };
        let mut vectors: Vec<(String, SteeringVector)> = state
            .steer
            .vectors
            .iter()
            .filter(|e| e.enabled)
            .map(|e| {
                let name = if e.weight == 1.0 {
                    e.name.clone()
                } else {
                    format!("{}×{}", e.name, e.weight)
                };
                (name, e.vector.scaled(e.weight))
            })
            .collect();
        if vectors.len() > 1 {
            match state.steer.combined() {
                Ok(Some(c)) => vectors.push(("combination".into(), c)),
                Ok(None) => {}
                Err(e) => {
                    state.steer.vector_error = Some(e.to_string());
                    return;
                }
            }
        }
        if vectors.is_empty() {
            state.steer.score_error = Some("Check at least one vector to sweep.".into());
            return;
        }
        let mults = state.steer.sweep_multipliers.clone();
        let id = state.spawn_job(
            "Behaviour sweep",
            move |ctx| {
                let tok = model.tokenizer().context("the model has no tokenizer")?;
                let items = prepare::eval_items(tok, &records)?;
                Ok(sweep(&model, &items, &vectors, &mults, 8, ctx)?)
            },
            |res: Result<Vec<SweepPoint>, String>, state: &mut AppState| {
                state.steer.sweep_job = None;
                match res {
                    Ok(p) => {
                        state.steer.score_error = None;
                        state.steer.sweep = p;
                    }
                    Err(e) => state.steer.score_error = state.job_failed("Sweep", e),
                }
            },
        );
        state.steer.sweep_job = Some(id);
    }

    /// Re-scores at the slider value: the behaviour score (when an evaluation set is chosen)
    /// and the unsteered and steered answers to the prompt. Stale results are dropped.
    pub fn start_score(state: &mut AppState) {
        state.steer.dirty_since = None;
        let Some(m) = &state.model else { return };
        let model = m.model.clone();
        let v = match state.steer.combined() {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                state.steer.vector_error = Some(e.to_string());
                return;
            }
        };
        state.steer.vector_error = None;
        let records = Self::eval_records(state);
        let mult = state.steer.strength;
        let prompt = state.steer.prompt.clone();
        let max_new = state.steer.max_new_tokens;
        let cached = state
            .steer
            .unsteered_cache
            .as_ref()
            .filter(|(p, n, _)| *p == prompt && *n == max_new)
            .map(|c| c.2.clone());
        state.steer.score_seq += 1;
        let seq = state.steer.score_seq;
        let id = state.spawn_job(
            &format!("Steer × {mult:+.2}"),
            move |ctx| score_and_generate(&model, &v, records, mult, &prompt, max_new, cached, ctx),
            move |res: Result<ScoreResult, String>, state: &mut AppState| {
                if state.steer.score_seq == seq {
                    state.steer.score_job = None;
                }
                match res {
                    Ok(r) if state.steer.score_seq == seq => {
                        state.steer.score_error = None;
                        state.steer.score = r.score.map(|score| ScorePoint {
                            multiplier: mult,
                            score,
                        });
                        state.steer.unsteered_cache =
                            Some((r.gen.prompt.clone(), max_new, r.gen.unsteered.clone()));
                        state.steer.generations = Some(r.gen);
                    }
                    Ok(_) => {}
                    Err(_) if state.steer.score_seq != seq => {}
                    Err(e) => state.steer.score_error = state.job_failed("Steering", e),
                }
            },
        );
        state.steer.score_job = Some(id);
    }

    /// Called every frame by the panel: starts a debounced re-score (the latest value wins:
    /// an outdated running job is cancelled first) and drives the automatic start-up run.
    /// Returns how long to wait before the next frame is needed, while a re-score is pending.
    pub fn tick(state: &mut AppState) -> Option<Duration> {
        let mut wait = None;
        if let Some(t) = state.steer.dirty_since {
            let idle = !Self::training(state) && !Self::sweeping(state);
            if Self::scoring(state) {
                if let Some(id) = state.steer.score_job {
                    state.jobs.cancel(id);
                }
            } else if idle && state.model.is_some() && t.elapsed() >= state.steer.debounce {
                Self::start_score(state);
            } else {
                wait = Some(
                    state
                        .steer
                        .debounce
                        .saturating_sub(t.elapsed())
                        .max(Duration::from_millis(20)),
                );
            }
        }
        Self::follow_default_eval(state);
        Self::drive_auto(state);
        wait
    }

    fn drive_auto(state: &mut AppState) {
        let Some((_, stage)) = &state.steer.auto else {
            return;
        };
        let busy = state.model_job.is_some_and(|id| state.jobs.is_running(id))
            || state.data_job.is_some_and(|id| state.jobs.is_running(id));
        let next = match stage {
            AutoStage::WaitInputs => {
                let eval_ready = match &state.steer.eval_source {
                    Some(_) => Self::eval_records(state).is_some(),
                    None => true,
                };
                if !busy
                    && state.model.is_some()
                    && Self::train_records(state).is_some()
                    && eval_ready
                {
                    Self::start_training(state);
                    Some(AutoStage::Training)
                } else if !busy && (state.model.is_none() || state.model_error.is_some()) {
                    // Nothing to wait for: the model did not load.
                    Some(AutoStage::Done)
                } else {
                    None
                }
            }
            AutoStage::Training if !Self::training(state) => {
                if state.steer.vectors.is_empty() {
                    Some(AutoStage::Done)
                } else if Self::eval_records(state).is_some() {
                    Self::start_sweep(state);
                    Some(AutoStage::Sweeping)
                } else {
                    Self::start_score(state);
                    Some(AutoStage::Done)
                }
            }
            AutoStage::Sweeping if !Self::sweeping(state) => {
                Self::start_score(state);
                let spec = state
                    .steer
                    .auto
                    .as_ref()
                    .and_then(|a| a.0.landscape.clone());
                if let Some(spec) = spec {
                    super::landscape::Landscape::start_spec(state, &spec);
                }
                Some(AutoStage::Done)
            }
            _ => None,
        };
        if let Some(n) = next {
            if n == AutoStage::Done {
                state.steer.auto = None;
            } else if let Some(a) = &mut state.steer.auto {
                a.1 = n;
            }
        }
    }
}

/// What one re-scoring computes.
pub struct ScoreResult {
    /// Behaviour score at the multiplier (when an evaluation set was given).
    pub score: Option<f64>,
    /// The two answers.
    pub gen: Generations,
}

/// Trains a vector with `s` (blocking; the panel runs it on a job) through
/// `crate::steer::train`, and summarises the outcome in one line.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Model,
    records: &[Record],
    eval: Option<&[Record]>,
    s: &TrainSettings,
    layers: Vec<usize>,
    objective: Objective,
    prov: &Provenance,
    sink: &dyn ProgressSink,
) -> anyhow::Result<TrainResult> {
    let tok = model.tokenizer().context("the model has no tokenizer")?;
    let data = crate::steer::train::prepare(tok, records, s.method, objective)?;
    let heldout = match (eval, s.method) {
        (Some(r), Method::Bipo) => Some(prepare::eval_items(tok, r)?),
        _ => None,
    };
    let cfg = BipoConfig {
        layers,
        objective,
        ..s.bipo.clone()
    };
    let batch = s.bipo.eval_batch_size.max(1);
    let trained = crate::steer::train(model, &data, heldout.as_deref(), &cfg, batch, prov, sink)?;
    Ok(match trained {
        Trained::Caa { vector, pairs }
        | Trained::Pca { vector, pairs, .. }
        | Trained::Probe { vector, pairs, .. } => {
            let norms: Vec<String> = vector
                .norms()
                .iter()
                .map(|(l, n)| format!("|v{l}| = {n:.3}"))
                .collect();
            TrainResult {
                summary: format!("{pairs} pairs, {}", norms.join(", ")),
                vector,
                diverged: None,
                cancelled: false,
                steps: 0,
            }
        }
        Trained::Bipo {
            outcome: out,
            items,
            ..
        } => {
            let mut summary = format!("{} steps ({items} items, objective {objective})", out.steps);
            if let Some(e) = out.epochs.last() {
                summary.push_str(&format!(
                    ", last epoch loss {:.4}, margin accuracy {:.2}, |v| {:.3}",
                    e.loss, e.margin_accuracy, e.norm
                ));
                if let Some((p, m)) = e.behaviour {
                    summary.push_str(&format!(", held-out score ×+1 {p:.3} / ×-1 {m:.3}"));
                }
            }
            let (diverged, cancelled) = match &out.stop {
                StopReason::Finished => (None, false),
                StopReason::Cancelled => (None, true),
                StopReason::Diverged(msg) => (Some(msg.clone()), false),
            };
            TrainResult {
                vector: out.vector,
                summary,
                diverged,
                cancelled,
                steps: out.steps,
            }
        }
    })
}

/// Behaviour score of `v × mult` on `records` (if any) and the unsteered (unless `cached`) and
/// steered greedy answers to `prompt` (blocking; run on a job).
#[allow(clippy::too_many_arguments)]
pub fn score_and_generate(
    model: &Model,
    v: &SteeringVector,
    records: Option<Vec<Record>>,
    mult: f64,
    prompt: &str,
    max_new_tokens: usize,
    cached_unsteered: Option<String>,
    sink: &dyn ProgressSink,
) -> anyhow::Result<ScoreResult> {
    let tok = model.tokenizer().context("the model has no tokenizer")?;
    v.check_model(model.hidden_size(), model.n_layers())?;
    let score = match records {
        Some(r) => {
            let items = prepare::eval_items(tok, &r)?;
            let hooks = if mult == 0.0 {
                Hooks::new()
            } else {
                steering_hooks(model, v, mult)?
            };
            Some(behaviour_score(model, &items, &hooks, 8, sink)?)
        }
        None => None,
    };
    let ids = prepare::prompt_ids(tok, &Prompt::Text(prompt.to_string()))?;
    let opts = GenerateOptions {
        max_new_tokens,
        ..Default::default()
    };
    let mults: Vec<f64> = match &cached_unsteered {
        Some(_) => vec![mult],
        None => vec![0.0, mult],
    };
    let gens = steered_generations(model, &[ids], &[(v, 1.0)], &mults, &opts, sink)?;
    let text = |m: f64| -> anyhow::Result<Option<String>> {
        match gens.iter().find(|g| g.multiplier == m) {
            Some(g) => Ok(Some(tok.decode(&g.ids, true)?)),
            None => Ok(None),
        }
    };
    let steered = text(mult)?.unwrap_or_default();
    let unsteered = match cached_unsteered {
        Some(u) => u,
        None => text(0.0)?.unwrap_or_default(),
    };
    Ok(ScoreResult {
        score,
        gen: Generations {
            prompt: prompt.to_string(),
            multiplier: mult,
            unsteered,
            steered,
        },
    })
}
