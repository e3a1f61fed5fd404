//! `steerlab sae run`: WIMHF feature discovery. Parses flags, loads the data, the embedder and
//! (optionally) the LLM, calls `crate::sae::run` with a progress bar, writes the output folder
//! and prints a summary (or report.json with `--json`).
use crate::cli::progress::BarSink;
use crate::data::{self, AbItem, Judgement, LoadOptions, Prompt, Winner};
use crate::sae::interpret::TextGenerator;
use crate::sae::llm::{load_tokenizer, LlmEmbedder, LlmGenerator};
use crate::sae::{self, Embedder, MiniLmEmbedder, PairSet, RunOptions, SaeConfig};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `steerlab sae ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum SaeCommand {
    /// Embed the pairs, train the SAE on embedding differences, interpret and report.
    Run(RunArgs),
}

/// Flags of `steerlab sae run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Preference data (chosen/rejected pairs, pairwise judgements or A/B items).
    #[arg(long)]
    pub data: PathBuf,
    /// `minilm` (sentence encoder) or `llm[:LAYER]` (mean residual after block LAYER of --model;
    /// default: the middle layer).
    #[arg(long, default_value = "minilm")]
    pub embedder: String,
    /// The LLM (GGUF file or HF folder; default: the cached SmolLM2). With `--describe` it
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
    }
}

fn ab_to_judgement(x: &AbItem) -> Judgement {
    Judgement {
        id: x.id.clone(),
        prompt: Prompt::Text(x.question.clone()),
        response_a: x.answer_matching_behavior.clone(),
        response_b: x.answer_not_matching_behavior.clone(),
        winner: Winner::A,
        judge: None,
        annotator: None,
        scenario: None,
        factors_a: BTreeMap::new(),
        factors_b: BTreeMap::new(),
        extra: Default::default(),
    }
}

fn run_cmd(a: RunArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    let ds = data::load_dataset(&a.data, &LoadOptions::default())?;
    let mut js = ds.judgements();
    if js.is_empty() {
        js = ds.ab_items().iter().map(ab_to_judgement).collect();
    }
    if js.is_empty() {
        bail!(
            "{}: no preference pairs, judgements or A/B items to analyse",
            a.data.display()
        );
    }
    let pairs = PairSet::from_judgements(&js);
    let opts = RunOptions {
        sae: SaeConfig {
            latents: a.latents,
            k: a.k,
            prefixes: a.prefixes.clone(),
            lr: a.lr,
            max_epochs: a.epochs,
            seed: a.seed,
            ..SaeConfig::default()
        },
        include_prompt: a.with_prompt,
        data_hash: if a.no_cache {
            None
        } else {
            Some(sae::embed::fnv1a(&bytes))
        },
        ..RunOptions::default()
    };
    opts.sae.resolved_prefixes()?;
    let bar = BarSink::new(a.json);
    let (kind, layer) = match a.embedder.split_once(':') {
        Some((k, l)) => (
            k,
            Some(
                l.parse::<usize>()
                    .with_context(|| format!("--embedder {}: bad layer", a.embedder))?,
            ),
        ),
        None => (a.embedder.as_str(), None),
    };
    let need_llm = kind == "llm" || a.describe;
    let model_path = a
        .model
        .clone()
        .unwrap_or_else(crate::paths::default_model_path);
    let llm = if need_llm {
        let p = crate::paths::require_default(model_path.clone(), "model")?;
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
            llm_emb = LlmEmbedder::new(m, t, layer.unwrap_or(m.n_layers() / 2))?;
            &llm_emb
        }
        other => bail!("--embedder {other}: expected `minilm` or `llm[:LAYER]`"),
    };
    let gen = llm
        .as_ref()
        .filter(|_| a.describe)
        .map(|(m, t)| LlmGenerator::new(m, t));
    let mut result = sae::run(
        &pairs,
        embedder,
        gen.as_ref().map(|g| g as &dyn TextGenerator),
        &opts,
        &bar,
    )?;
    bar.finish();
    result.report.dataset = a
        .data
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    sae::write_outputs(&a.out, &result)?;
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
        println!("wrote {}", a.out.display());
    }
    Ok(())
}
