//! `steerlab steer train|eval|export`: parse arguments, load model/data, tokenize with the chat
//! template, call `crate::steer`, print or write results. No algorithm code here.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::model::{Model, TextTokenizer};
use crate::steer::bipo::{Provenance, StopReason};
use crate::steer::train::{self, Method, Trained};
use crate::steer::{gguf, prepare, sweep, BipoConfig, Objective, SteeringVector};

/// Steering-vector subcommands.
#[derive(Debug, Subcommand)]
pub enum SteerCommand {
    /// Train a vector (BiPO with its objective family, or the CAA / PCA baselines).
    Train(TrainArgs),
    /// Behaviour score of A/B items over a multiplier sweep, for one or more vectors.
    Eval(EvalArgs),
    /// Export a vector (llama.cpp / repeng GGUF control vector).
    Export(ExportArgs),
    /// Layer × strength sweep: a vector per layer, held-out score and side effects per point.
    Sweep(crate::cli::steer_eval_cmd::SweepArgs),
    /// Search layer × multiplier × positions × method for the best held-out behaviour under
    /// side-effect budgets; writes the chosen vector with its certificate.
    Tune(crate::cli::steer_eval_cmd::TuneArgs),
    /// Content hash and sign check (chosen above rejected on held-out pairs) of a vector.
    Verify(crate::cli::steer_eval_cmd::VerifyArgs),
    /// CAST: choose the condition threshold that separates prompts to steer from prompts not to.
    CastThreshold(crate::cli::steer_eval_cmd::CastArgs),
    /// A local judge rates steered generations (behaviour 1–4, coherence) and compares them with
    /// the unsteered ones, order swapped; reports its self-agreement and Spearman vs the A/B score.
    Judge(crate::cli::steer_judge_cmd::JudgeArgs),
    /// Where a vector acts: its logit lens and per-token projection strips of prompts and
    /// generations.
    Lens(crate::cli::steer_judge_cmd::LensArgs),
}

/// `steer train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model: HF folder, .gguf file, short name (smollm2) or hf:ORG/NAME[@REV] (default: the
    /// cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How a .gguf file's block-quantized tensors are held in memory: `auto` (the default:
    /// `quantized` on the CPU in f32, `f32` elsewhere), `quantized` (kept in blocks, about 1/7
    /// of the memory; CPU f32 only) or `f32` (dequantized at load).
    #[arg(long, default_value = "auto")]
    pub weights: String,
    /// Training data: chosen/rejected pairs or A/B items (bipo/caa/pca), thumbs up/down (bco).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// bipo, caa or pca.
    #[arg(long, default_value = "bipo")]
    pub method: String,
    /// BiPO objective: dpo, ipo, rdpo (ε = 0.1), rdpo:EPS, bco.
    #[arg(long, default_value = "dpo")]
    pub objective: String,
    /// Comma-separated 0-based blocks whose output is steered.
    #[arg(long, default_value = "14", value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Epochs (paper: 5–20 until the held-out score saturates).
    #[arg(long, default_value_t = BipoConfig::default().epochs)]
    pub epochs: usize,
    /// Pairs per step (paper: 4).
    #[arg(long, default_value_t = BipoConfig::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate (paper: 5e-4 over thousands of steps; default scaled to short runs).
    #[arg(long, default_value_t = BipoConfig::default().lr)]
    pub lr: f64,
    /// Warm-up steps (paper: 100; default 10% of all steps).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// β of the objective (paper: 0.1).
    #[arg(long, default_value_t = BipoConfig::default().beta)]
    pub beta: f64,
    /// AdamW weight decay (paper: 0.05).
    #[arg(long, default_value_t = BipoConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Seed (paper: 11).
    #[arg(long, default_value_t = BipoConfig::default().seed)]
    pub seed: u64,
    /// BiPO: put pairs of similar length in the same minibatch (less padding per step; changes
    /// the training trajectory, so off by default).
    #[arg(long)]
    pub group_by_length: bool,
    /// Held-out A/B items scored at ±1 after each epoch (BiPO).
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// Use at most this many training records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output vector (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `steer eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model: HF folder, .gguf file, short name (smollm2) or hf:ORG/NAME[@REV] (default: the
    /// cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How a .gguf file's block-quantized tensors are held in memory: `auto` (the default:
    /// `quantized` on the CPU in f32, `f32` elsewhere), `quantized` (kept in blocks, about 1/7
    /// of the memory; CPU f32 only) or `f32` (dequantized at load).
    #[arg(long, default_value = "auto")]
    pub weights: String,
    /// A/B items (question, answer_matching_behavior, answer_not_matching_behavior).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Comma-separated vector files (.safetensors native or .gguf control vectors).
    #[arg(long, value_delimiter = ',', required = true)]
    pub vectors: Vec<PathBuf>,
    /// Comma-separated multipliers.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-2,-1,0,1,2"
    )]
    pub multipliers: Vec<f64>,
    /// Use at most this many items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// A/B items per forward pass (each item: one prompt, two answers).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Score each layer of a multi-layer vector on its own (named `FILE@LAYER`): a layer sweep
    /// from one `steer train --method caa --layers 4,8,12,…` run.
    #[arg(long)]
    pub per_layer: bool,
    /// Print `{"results": [{"vector", "multiplier", "score"}, ...]}`.
    #[arg(long)]
    pub json: bool,
}

/// `steer export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The vector to export (.safetensors).
    #[arg(long)]
    pub vector: PathBuf,
    /// Output format: gguf (llama.cpp --control-vector / repeng).
    #[arg(long, default_value = "gguf")]
    pub format: String,
    /// `controlvector.model_hint` (repeng writes the HF model_type, e.g. llama).
    #[arg(long, default_value = "llama")]
    pub model_hint: String,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `steer` subcommand.
pub fn run(cmd: SteerCommand) -> Result<()> {
    match cmd {
        SteerCommand::Train(a) => train(a),
        SteerCommand::Eval(a) => eval(a),
        SteerCommand::Export(a) => export(a),
        SteerCommand::Sweep(a) => crate::cli::steer_eval_cmd::sweep_cmd(a),
        SteerCommand::Tune(a) => crate::cli::steer_eval_cmd::tune_cmd(a),
        SteerCommand::Verify(a) => crate::cli::steer_eval_cmd::verify_cmd(a),
        SteerCommand::CastThreshold(a) => crate::cli::steer_eval_cmd::cast_cmd(a),
        SteerCommand::Judge(a) => crate::cli::steer_judge_cmd::judge_cmd(a),
        SteerCommand::Lens(a) => crate::cli::steer_judge_cmd::lens_cmd(a),
    }
}

/// Loads a model and its tokenizer (HF folder or GGUF file).
pub fn load_model(path: Option<&Path>, weights: &str) -> Result<(Model, TextTokenizer)> {
    let path = crate::paths::resolve_model_arg(path)?;
    let opts = crate::model::LoadOptions {
        weights: crate::model::WeightStorage::parse(weights)?,
        ..Default::default()
    };
    let model = Model::load(&path, &opts)?;
    let tok = model.tokenizer().cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the model has no tokenizer (tokenizer.json or GGUF tokenizer metadata)",
            path.display()
        )
    })?;
    Ok((model, tok))
}

fn train(a: TrainArgs) -> Result<()> {
    checks::out_file("--out", &a.out)?;
    checks::positive("--lr", a.lr, 10.0)?;
    checks::positive("--beta", a.beta, 1e4)?;
    checks::in_range("--weight-decay", a.weight_decay, 0.0, 1e4)?;
    checks::count("--epochs", a.epochs, checks::MAX_EPOCHS)?;
    checks::count("--batch-size", a.batch_size, checks::MAX_BATCH)?;
    if a.limit == Some(0) {
        bail!("--limit 0: must be at least 1");
    }
    let sink = BarSink::new(a.json);
    let (model, tok) = load_model(a.model.as_deref(), &a.weights)?;
    let data = a.split.load(&a.data, a.limit)?;
    let dataset_name = a.split.dataset_name(&a.data);
    let model_name = model.name().to_string();
    let method = Method::from_name(&a.method).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown method `{}` (expected bipo, caa, pca or probe)",
            a.method.to_ascii_lowercase()
        )
    })?;
    // The objective matters to BiPO only (an unused --objective is not checked).
    let objective: Objective = match method {
        Method::Bipo => a.objective.parse().map_err(anyhow::Error::msg)?,
        _ => Objective::Dpo,
    };
    let prepared = train::prepare(&tok, &data.records, method, objective)
        .with_context(|| format!("{}", a.data.display()))?;
    let heldout = match (&a.heldout, method) {
        (Some(p), Method::Bipo) => Some(
            prepare::ab_tokens(&tok, &a.split.load(p, None)?.ab_items())
                .with_context(|| format!("{}", p.display()))?,
        ),
        _ => None,
    };
    let cfg = BipoConfig {
        layers: a.layers.clone(),
        objective,
        beta: a.beta,
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_steps: a.warmup_steps,
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        eval_batch_size: 8,
        group_by_length: a.group_by_length,
    };
    let prov = Provenance {
        model: model_name,
        dataset: dataset_name,
    };
    if let (train::Prepared::Bipo(d), false) = (&prepared, a.json) {
        let work = crate::steer::BipoWork::of(d, &cfg);
        let first = cfg.layers.iter().copied().min().unwrap_or(0);
        let secs = work.reference_seconds(model.hidden_size(), model.n_layers(), first);
        eprintln!(
            "BiPO: {} steps; estimate about {} on an idle 2-core CPU (longer when it is busy)",
            work.steps,
            crate::jobs::format_duration(std::time::Duration::from_secs_f64(secs))
        );
    }
    crate::cli::signals::install();
    let trained = train::train(
        &model,
        &prepared,
        heldout.as_deref(),
        &cfg,
        a.batch_size.max(8),
        &prov,
        &sink,
    )?;
    let summary: serde_json::Value = match &trained {
        Trained::Caa { vector, pairs } => {
            serde_json::json!({"method": "caa", "pairs": pairs, "norms": vector.norms()})
        }
        Trained::Pca {
            vector,
            pairs,
            stats,
        } => {
            let st: serde_json::Map<String, serde_json::Value> = stats
                .iter()
                .map(|(l, s)| {
                    (
                        l.to_string(),
                        serde_json::json!({"explained": s.explained, "agreement": s.agreement}),
                    )
                })
                .collect();
            serde_json::json!({"method": "pca", "pairs": pairs, "norms": vector.norms(), "layers": st})
        }
        Trained::Probe {
            vector,
            pairs,
            stats,
        } => {
            let st: serde_json::Map<String, serde_json::Value> = stats
                .iter()
                .map(|(l, s)| {
                    (
                        l.to_string(),
                        serde_json::json!({"train_accuracy": s.accuracy, "agreement": s.agreement}),
                    )
                })
                .collect();
            serde_json::json!({"method": "probe", "pairs": pairs, "norms": vector.norms(), "layers": st})
        }
        Trained::Bipo {
            outcome: out,
            warmup_steps,
            ..
        } => {
            sink.finish();
            let epochs: Vec<serde_json::Value> = out
                .epochs
                .iter()
                .map(|e| {
                    serde_json::json!({"epoch": e.epoch, "loss": e.loss, "margin_accuracy": e.margin_accuracy,
                        "norm": e.norm, "behaviour_plus": e.behaviour.map(|b| b.0), "behaviour_minus": e.behaviour.map(|b| b.1)})
                })
                .collect();
            if let StopReason::Diverged(msg) = &out.stop {
                if out.steps == 0 {
                    bail!("{msg}; nothing was saved");
                }
                out.vector.save(&a.out)?;
                bail!("{msg}; saved to {}", a.out.display());
            }
            if out.stop == StopReason::Cancelled {
                if out.steps == 0 {
                    bail!("interrupted before the first training step; nothing was saved");
                }
                out.vector.save(&a.out)?;
                bail!(
                    "interrupted after {} steps; the last good vector was saved to {}",
                    out.steps,
                    a.out.display()
                );
            }
            serde_json::json!({"method": "bipo", "objective": objective.to_string(), "steps": out.steps,
                "warmup_steps": warmup_steps, "epochs": epochs,
                "stopped": format!("{:?}", out.stop)})
        }
    };
    let vector = trained.into_vector();
    sink.finish();
    vector.save(&a.out)?;
    if a.json {
        let mut s = summary;
        s["out"] = serde_json::json!(a.out.display().to_string());
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        println!("saved {}", a.out.display());
    }
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    for m in &a.multipliers {
        checks::in_range(
            "--multipliers",
            *m,
            -checks::MAX_MULTIPLIER,
            checks::MAX_MULTIPLIER,
        )?;
    }
    checks::count("--batch-size", a.batch_size, checks::MAX_BATCH)?;
    if a.limit == Some(0) {
        bail!("--limit 0: must be at least 1");
    }
    for p in &a.vectors {
        crate::report::atomic::require_regular_file(p)
            .map_err(|e| anyhow::anyhow!("--vectors {}: {e}", p.display()))?;
    }
    let sink = BarSink::new(a.json);
    let (model, tok) = load_model(a.model.as_deref(), &a.weights)?;
    let items = a.split.load(&a.data, a.limit)?.ab_items();
    if items.is_empty() {
        bail!(
            "{}: no A/B items (question, answer_matching_behavior, answer_not_matching_behavior)",
            a.data.display()
        );
    }
    let ab = prepare::ab_tokens(&tok, &items)?;
    let mut vectors = Vec::new();
    for p in &a.vectors {
        let v = SteeringVector::load_any(p)?;
        let name = p.display().to_string();
        if a.per_layer && v.layers.len() > 1 {
            for (l, d) in &v.layers {
                let mut meta = v.meta.clone();
                meta.layers = vec![*l];
                let one = SteeringVector::new(std::iter::once((*l, d.clone())).collect(), meta)?;
                vectors.push((format!("{name}@{l}"), one));
            }
        } else {
            vectors.push((name, v));
        }
    }
    crate::cli::signals::install();
    let pts = sweep(&model, &ab, &vectors, &a.multipliers, a.batch_size, &sink);
    sink.finish();
    let pts = match pts {
        Err(e) if crate::cli::signals::interrupted() => {
            let done = sink.scores();
            println!("{:<52} {:>8}", "vector × multiplier (completed)", "score");
            for (stage, score) in &done {
                println!("{stage:<52} {score:>8.4}");
            }
            bail!(
                "interrupted ({e}) after {} of {} points; the completed ones are printed above",
                done.len(),
                vectors.len() * a.multipliers.len()
            );
        }
        r => r?,
    };
    if let Some(p) = pts.iter().find(|p| !p.score.is_finite()) {
        bail!(
            "{} × {}: the behaviour score is {} (the model produced non-finite values at this \
             multiplier); no results printed",
            p.vector,
            p.multiplier,
            p.score
        );
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "results": pts }))?
        );
    } else {
        println!("{:<40} {:>10} {:>8}", "vector", "multiplier", "score");
        for p in &pts {
            println!("{:<40} {:>10} {:>8.4}", p.vector, p.multiplier, p.score);
        }
    }
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    if !a.format.eq_ignore_ascii_case("gguf") {
        bail!("unknown export format `{}` (supported: gguf)", a.format);
    }
    checks::out_file("--out", &a.out)?;
    if checks::same_file(&a.out, &a.vector) {
        bail!(
            "--out {} is the input --vector; choose another file",
            a.out.display()
        );
    }
    let v = SteeringVector::load_any(&a.vector)?;
    if let Some(change) = gguf::llama_cpp_positions_change(&v) {
        eprintln!("warning: {change}");
    }
    gguf::export_control_vector(&v, &a.model_hint, &a.out)?;
    println!(
        "wrote {} ({} directions, width {}; layers.N → direction.N, the output of block N as llama.cpp numbers it)",
        a.out.display(),
        v.layers.len(),
        v.hidden_size()
    );
    Ok(())
}
