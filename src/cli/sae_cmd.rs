//! `steerlab sae run`: WIMHF feature discovery. Parses flags, loads the data, the embedder and
//! (optionally) the LLM, calls `crate::sae::run` with a progress bar, writes the output folder
//! and prints a summary (or report.json with `--json`). `steerlab sae to-vector` and
//! `steerlab sae project` link features and steering vectors (`crate::sae::link`).
use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::sae::interpret::TextGenerator;
use crate::sae::llm::{load_tokenizer, LlmEmbedder, LlmGenerator};
use crate::sae::{self, Embedder, MiniLmEmbedder, PairSet, RunOptions, SaeConfig};
use crate::sae::{SaeFolder, VectorScale};
use crate::steer::SteeringVector;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `steerlab sae ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum SaeCommand {
    /// Embed the pairs, train the SAE on embedding differences, interpret and report.
    Run(RunArgs),
    /// Write a feature's decoder direction as a native steering vector (SAEs trained with
    /// `--embedder llm:LAYER` only: the direction lives in the residual stream after LAYER).
    ToVector(ToVectorArgs),
    /// "What does this vector change?": cosine of a steering vector with every feature's
    /// decoder direction, largest first.
    Project(ProjectArgs),
    /// Apply a saved SAE to new pairs (or rows): writes `inputs`, `activations` and
    /// `reconstructions` to one safetensors file.
    Encode(crate::cli::sae_interop::EncodeArgs),
    /// Open a SAELens SAE trained on a model's residual stream: checks it against the model,
    /// shows features' logit lens and (with --data) top-activating tokens.
    Import(crate::cli::sae_interop::ImportArgs),
}

/// Flags of `steerlab sae to-vector`.
#[derive(Debug, Args)]
pub struct ToVectorArgs {
    /// The SAE output folder of `steerlab sae run`, or a SAELens SAE on a model's residual
    /// stream (`blocks.N.hook_resid_post`: the vector goes to layer N; needs --norm).
    #[arg(long)]
    pub sae: PathBuf,
    /// Feature index.
    #[arg(long)]
    pub feature: usize,
    /// Norm of the vector (default: the feature's mean |activation| where active, from
    /// report.json, i.e. its typical size in the pooled residual difference).
    #[arg(long)]
    pub norm: Option<f32>,
    /// Negate the direction (steer away from the feature's side).
    #[arg(long)]
    pub negate: bool,
    /// Output vector (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `steerlab sae project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The SAE output folder of `steerlab sae run`.
    #[arg(long)]
    pub sae: PathBuf,
    /// A steering vector (native safetensors or GGUF control vector).
    #[arg(long)]
    pub vector: PathBuf,
    /// The vector's layer to project (default: the SAE's layer).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Features listed.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the projection as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `steerlab sae run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Preference data (chosen/rejected pairs, pairwise judgements or A/B items).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// `minilm` (sentence encoder) or `llm[:LAYER]` (mean residual after block LAYER of --model;
    /// default: the middle layer). `llm:L1,L2,...` embeds every layer in one pass and writes one
    /// run per layer to OUT/layerL.
    #[arg(long, default_value = "minilm")]
    pub embedder: String,
    /// The LLM (GGUF file, HF folder, short name such as smollm2, or hf:ORG/NAME[@REV];
    /// default: the cached SmolLM2). With `--describe` it
    /// writes feature descriptions and judges their fidelity.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The MiniLM folder (default: the cached all-MiniLM-L6-v2).
    #[arg(long)]
    pub embedder_dir: Option<PathBuf>,
    /// Number of latents M.
    #[arg(long, default_value_t = 32)]
    pub latents: usize,
    /// Active latents per row K.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Matryoshka prefixes, comma separated (default: 8,M).
    #[arg(long, value_delimiter = ',')]
    pub prefixes: Vec<usize>,
    /// Maximum epochs.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Embed prompt + response instead of the response alone.
    #[arg(long)]
    pub with_prompt: bool,
    /// Describe features with the LLM and measure fidelity (slow on CPU).
    #[arg(long)]
    pub describe: bool,
    /// Held-out pairs the LLM judges per feature for fidelity (with --describe).
    #[arg(long, default_value_t = 40)]
    pub fidelity_pairs: usize,
    /// Texts per embedding forward pass (llm embedder).
    #[arg(long, default_value_t = 8)]
    pub embed_batch: usize,
    /// SAE rows per training step (paper: 256).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Epochs without validation improvement before stopping (paper: 3).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Ignore the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Seed (initialisation, shuffling, splits).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print report.json to stdout instead of a summary (and hide the progress bar).
    #[arg(long)]
    pub json: bool,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `steerlab sae` subcommand.
pub fn run(c: SaeCommand) -> anyhow::Result<()> {
    match c {
        SaeCommand::Run(a) => run_cmd(a),
        SaeCommand::ToVector(a) => to_vector_cmd(a),
        SaeCommand::Project(a) => project_cmd(a),
        SaeCommand::Encode(a) => crate::cli::sae_interop::encode_cmd(a),
        SaeCommand::Import(a) => crate::cli::sae_interop::import_cmd(a),
    }
}

fn to_vector_cmd(a: ToVectorArgs) -> anyhow::Result<()> {
    checks::out_file("--out", &a.out)?;
    if let Some(n) = a.norm {
        checks::positive("--norm", f64::from(n), 1e6)?;
    }
    if crate::cli::sae_interop::is_foreign_saelens(&a.sae) {
        return crate::cli::sae_interop::foreign_to_vector(
            &a.sae, a.feature, a.norm, a.negate, &a.out,
        );
    }
    let folder = SaeFolder::read(&a.sae)?;
    let scale = match a.norm {
        Some(n) => VectorScale::Norm(n),
        None => VectorScale::MeanActive,
    };
    let mut v = sae::feature_vector(&folder, a.feature, scale)?;
    if a.negate {
        v = v.scaled(-1.0);
        v.meta.method = format!("negated {}", v.meta.method);
    }
    v.save(&a.out)?;
    let (layer, norm) = v
        .norms()
        .into_iter()
        .next()
        .context("vector has no layer")?;
    println!(
        "wrote {}: feature {} at layer {layer} (norm {norm:.4}); {}",
        a.out.display(),
        a.feature,
        v.meta.method
    );
    Ok(())
}

fn project_cmd(a: ProjectArgs) -> anyhow::Result<()> {
    let folder = SaeFolder::read(&a.sae)?;
    let v = SteeringVector::load_any(&a.vector)?;
    let p = sae::project_steering_vector(&folder, &v, a.layer)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    for n in &p.notes {
        eprintln!("note: {n}");
    }
    println!(
        "{} at layer {} (norm {:.4}) on {} features of {}: {:.1}% of its squared norm lies in \
         their span",
        a.vector.display(),
        p.layer,
        p.norm,
        folder.sae.d_sae,
        a.sae.display(),
        100.0 * p.explained
    );
    let desc = |j: usize| -> String {
        let Some(r) = &folder.report else {
            return String::new();
        };
        let Some(f) = r.features.iter().find(|f| f.index == j) else {
            return String::new();
        };
        if let Some(d) = &f.description {
            return d.clone();
        }
        let t: Vec<&str> = f
            .ngrams_toward
            .iter()
            .take(3)
            .map(|g| g.text.as_str())
            .collect();
        let w: Vec<&str> = f
            .ngrams_away
            .iter()
            .take(3)
            .map(|g| g.text.as_str())
            .collect();
        format!("toward: {} | away: {}", t.join(", "), w.join(", "))
    };
    println!("feature   cosine  projection  encoder  description");
    for f in p.features.iter().take(a.top) {
        println!(
            "{:>7}  {:>+7.3}  {:>+10.4}  {:>+7.3}  {}",
            f.feature,
            f.cosine,
            f.projection,
            f.encoder_response,
            desc(f.feature)
        );
    }
    Ok(())
}

fn run_cmd(a: RunArgs) -> anyhow::Result<()> {
    checks::out_dir("--out", &a.out)?;
    checks::count("--epochs", a.epochs, checks::MAX_EPOCHS)?;
    checks::count("--batch-size", a.batch_size, checks::MAX_BATCH)?;
    checks::count("--embed-batch", a.embed_batch, checks::MAX_BATCH)?;
    // The loader refuses FIFOs and devices before reading; the bytes (for the cache key) after.
    let ds = a.split.load(&a.data, None)?;
    let data_hash = a.split.content_hash(&a.data)?;
    let pairs = PairSet::from_records(&ds.records);
    if pairs.is_empty() {
        bail!(
            "{}: no preference pairs, judgements or A/B items to analyse",
            a.data.display()
        );
    }
    let opts = RunOptions {
        sae: SaeConfig {
            latents: a.latents,
            k: a.k,
            prefixes: a.prefixes.clone(),
            lr: a.lr,
            max_epochs: a.epochs,
            batch_size: a.batch_size,
            patience: a.patience,
            seed: a.seed,
            ..SaeConfig::default()
        },
        include_prompt: a.with_prompt,
        fidelity_pairs: a.fidelity_pairs,
        data_hash: if a.no_cache { None } else { Some(data_hash) },
        ..RunOptions::default()
    };
    opts.sae.validate()?;
    let bar = BarSink::new(a.json);
    crate::cli::signals::install();
    let (kind, layers) = match a.embedder.split_once(':') {
        Some((k, l)) => {
            let mut v = Vec::new();
            for part in l.split(',') {
                let layer = part
                    .trim()
                    .parse::<usize>()
                    .with_context(|| format!("--embedder {}: bad layer `{part}`", a.embedder))?;
                if !v.contains(&layer) {
                    v.push(layer);
                }
            }
            (k, v)
        }
        None => (a.embedder.as_str(), Vec::new()),
    };
    if layers.len() > 1 && kind != "llm" {
        bail!("--embedder {}: several layers need `llm`", a.embedder);
    }
    let layer = layers.first().copied();
    let need_llm = kind == "llm" || a.describe;
    let mut model_path = None;
    let llm = if need_llm {
        let p = crate::paths::resolve_model_arg(a.model.as_deref())?;
        if kind == "llm" {
            model_path = Some(p.clone());
        }
        let model = crate::model::Model::load(&p, &crate::model::LoadOptions::default())?;
        let tok = load_tokenizer(&p)?;
        Some((model, tok))
    } else {
        None
    };
    let minilm;
    let llm_emb;
    let embedder: &dyn Embedder = match kind {
        "minilm" => {
            if layer.is_some() {
                bail!("--embedder minilm takes no layer");
            }
            let dir = a
                .embedder_dir
                .clone()
                .unwrap_or_else(crate::paths::default_embedder_dir);
            minilm = MiniLmEmbedder::load(&crate::paths::require_default(dir, "embedder")?)?;
            &minilm
        }
        "llm" => {
            let (m, t) = llm.as_ref().expect("loaded above");
            let mut e = LlmEmbedder::new(m, t, layer.unwrap_or(m.n_layers() / 2))?;
            e.batch_size = a.embed_batch.max(1);
            llm_emb = e;
            &llm_emb
        }
        other => bail!("--embedder {other}: expected `minilm` or `llm[:LAYER]`"),
    };
    let gen = llm
        .as_ref()
        .filter(|_| a.describe)
        .map(|(m, t)| LlmGenerator::new(m, t));
    let gen = gen.as_ref().map(|g| g as &dyn TextGenerator);
    if layers.len() > 1 {
        // One forward pass serves every layer; each layer gets its own run in OUT/layerL.
        let (m, t) = llm.as_ref().expect("loaded above");
        let mut e = LlmEmbedder::new(m, t, layers[0])?;
        e.batch_size = a.embed_batch.max(1);
        let embedded = sae::embed_pairs_layers(&pairs, &e, &layers, &opts, &bar)?;
        for (&l, (ea, eb, cached)) in layers.iter().zip(embedded) {
            let el = e.at_layer(l)?;
            let mut result = sae::analyse(&pairs, &ea, &eb, el.dim(), &el.id(), gen, &opts, &bar)?;
            result.report.cached_embeddings = cached;
            let out = a.out.join(format!("layer{l}"));
            finish_run(&a, &mut result, &out, model_path.as_deref())?;
        }
        bar.finish();
        return Ok(());
    }
    let result = sae::run(&pairs, embedder, gen, &opts, &bar);
    bar.finish();
    let mut result = match result {
        Err(e) if crate::cli::signals::interrupted() => {
            bail!(
                "interrupted: {e}; nothing was written to {}",
                a.out.display()
            )
        }
        r => r?,
    };
    finish_run(&a, &mut result, &a.out, model_path.as_deref())
}

/// Names the dataset in the report, writes the output folder and prints the summary.
fn finish_run(
    a: &RunArgs,
    result: &mut sae::RunResult,
    out: &std::path::Path,
    model_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    result.report.dataset = a.split.dataset_name(&a.data);
    sae::write_outputs_with(out, result, model_path)?;
    if let Some(msg) = &result.report.history.diverged {
        anyhow::bail!(
            "{msg}; the best SAE (epoch {}) and its report were saved to {}",
            result.report.history.best_epoch + 1,
            out.display()
        );
    }
    if crate::cli::signals::interrupted() {
        eprintln!(
            "interrupted: training stopped early; the best SAE so far (epoch {}) and its report \
             were saved to {}",
            result.report.history.best_epoch + 1,
            out.display()
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    } else {
        let r = &result.report;
        println!(
            "{} pairs, embedder {}{}; SAE M={} K={}: {} epochs, val FVE {:.3}, L0 {:.2}",
            r.n_pairs,
            r.embedder,
            if r.cached_embeddings { " (cached)" } else { "" },
            r.options.sae.latents,
            r.options.sae.k,
            r.history.epochs,
            r.val_fve,
            r.val_l0
        );
        let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        println!(
            "held-out AUC: length {}, top-5 {}, top-10 {}, all {}, dense {}",
            f(r.auc.length_only),
            f(r.auc.top5),
            f(r.auc.top10),
            f(r.auc.all_features),
            f(r.auc.dense_probe)
        );
        println!("wrote {}", out.display());
    }
    Ok(())
}
