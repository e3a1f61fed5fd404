//! `steerlab sae encode` (apply a saved SAE to new pairs or rows) and `steerlab sae import`
//! (a SAELens SAE trained on a model's residual stream: features, logit lens, steering
//! vectors). Parses flags, loads what the library needs, prints; the work is in
//! `crate::sae::encode` and `crate::sae::import`.
use crate::cli::checks;
use crate::cli::data_cmd::SplitArg;
use crate::cli::progress::BarSink;
use crate::sae::encode::{self, AnySae};
use crate::sae::link::parse_llm_embedder;
use crate::sae::llm::{load_tokenizer, LlmEmbedder};
use crate::sae::{saelens, Embedder, MiniLmEmbedder, PairSet, SaeFolder};
use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};

/// Flags of `steerlab sae encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// The SAE folder (a `steerlab sae run` output, or any SAELens SAE folder with `--inputs`).
    #[arg(long)]
    pub sae: PathBuf,
    /// New preference pairs: embedded as the SAE's training data was, differences encoded.
    #[arg(long, conflicts_with = "inputs", required_unless_present = "inputs")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Rows to encode instead of pairs: a safetensors file with an F32 tensor `inputs`
    /// [rows × d_in] (e.g. the output of an earlier `sae encode`).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// The LLM of an `llm` embedder (default: the cached SmolLM2); its SHA-256 must match the
    /// one the SAE recorded.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The MiniLM folder (default: the cached all-MiniLM-L6-v2).
    #[arg(long)]
    pub embedder_dir: Option<PathBuf>,
    /// Texts per embedding forward pass.
    #[arg(long, default_value_t = 8)]
    pub embed_batch: usize,
    /// Output file (.safetensors): `inputs`, `activations`, `reconstructions`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Checks the model files behind `path` against the SHA-256 the SAE recorded (when it did).
fn check_hashes(sae_dir: &Path, path: &Path) -> anyhow::Result<()> {
    let cfg = saelens::read_cfg(sae_dir)?;
    let Some(want) = saelens::steerlab_keys(&cfg)
        .and_then(|m| m.get("model_files"))
        .and_then(|v| v.as_object())
    else {
        return Ok(());
    };
    let have = saelens::model_file_hashes(path)?;
    for (name, sha) in want {
        let sha = sha.as_str().unwrap_or("");
        match have.get(name) {
            Some(h) if h == sha => {}
            Some(h) => bail!(
                "{}: {name} has SHA-256 {h}, but the SAE in {} was trained on a file with {sha}",
                path.display(),
                sae_dir.display()
            ),
            None => bail!(
                "{}: no file {name} (the SAE in {} was trained on it, SHA-256 {sha})",
                path.display(),
                sae_dir.display()
            ),
        }
    }
    Ok(())
}

/// Runs `steerlab sae encode`.
pub fn encode_cmd(a: EncodeArgs) -> anyhow::Result<()> {
    checks::out_file("--out", &a.out)?;
    checks::count("--embed-batch", a.embed_batch, checks::MAX_BATCH)?;
    if let Some(inputs) = &a.inputs {
        let sae = AnySae::read(&a.sae)?;
        let (ids, x, width) = encode::read_inputs(inputs)?;
        if width != sae.d_in() {
            bail!(
                "{}: rows of width {width}, but the SAE in {} takes {}",
                inputs.display(),
                a.sae.display(),
                sae.d_in()
            );
        }
        let e = encode::encode_rows(&sae, ids, x)?;
        encode::write_encoded(&a.out, &e, &a.sae)?;
        println!(
            "wrote {}: {} rows, {} features",
            a.out.display(),
            e.ids.len(),
            e.d_sae
        );
        return Ok(());
    }
    let data_path = a.data.as_ref().context("--data or --inputs is needed")?;
    let folder = SaeFolder::read(&a.sae)?;
    let ds = a.split.load(data_path, None)?;
    let pairs = PairSet::from_records(&ds.records);
    if pairs.is_empty() {
        bail!(
            "{}: no preference pairs, judgements or A/B items to encode",
            data_path.display()
        );
    }
    let bar = BarSink::new(false);
    crate::cli::signals::install();
    let e = if let Some(site) = parse_llm_embedder(&folder.embedder) {
        let p = crate::paths::resolve_model_arg(a.model.as_deref())?;
        check_hashes(&a.sae, &p)?;
        let model = crate::model::Model::load(&p, &crate::model::LoadOptions::default())?;
        let tok = load_tokenizer(&p)?;
        let mut emb = LlmEmbedder::new(&model, &tok, site.layer)?;
        emb.batch_size = a.embed_batch;
        encode::encode_pairs(&folder, &pairs, &emb as &dyn Embedder, &bar)?
    } else if folder.embedder.starts_with("minilm:") {
        let dir = a
            .embedder_dir
            .clone()
            .unwrap_or_else(crate::paths::default_embedder_dir);
        let dir = crate::paths::require_default(dir, "embedder")?;
        check_hashes(&a.sae, &dir)?;
        let emb = MiniLmEmbedder::load(&dir)?;
        encode::encode_pairs(&folder, &pairs, &emb as &dyn Embedder, &bar)?
    } else {
        bail!(
            "{}: the SAE's embedder `{}` is neither `minilm` nor `llm`; encode rows with --inputs",
            a.sae.display(),
            folder.embedder
        );
    };
    bar.finish();
    encode::write_encoded(&a.out, &e, &a.sae)?;
    let active = e.activations.iter().filter(|v| **v != 0.0).count();
    println!(
        "wrote {}: {} pairs × {} features (embedder {}), mean L0 {:.2}",
        a.out.display(),
        e.ids.len(),
        e.d_sae,
        saelens::portable_embedder_id(&folder.embedder),
        active as f64 / e.ids.len() as f64
    );
    Ok(())
}

/// Flags of `steerlab sae import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A SAELens SAE folder (`cfg.json`, `sae_weights.safetensors`) trained on the model's
    /// residual stream (`standard`, `topk` or `jumprelu`).
    pub dir: PathBuf,
    /// The model it was trained on (GGUF file, HF folder, short name; default: the cached
    /// SmolLM2): d_in must equal its hidden size.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A dataset whose texts (both responses of each pair, or prompts) are searched for each
    /// feature's top-activating tokens.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Features to show, comma separated (default: the first 5).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<usize>,
    /// Top-activating tokens per feature.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Tokens of context either side.
    #[arg(long, default_value_t = 4)]
    pub context: usize,
    /// Promoted and suppressed tokens of the logit lens.
    #[arg(long, default_value_t = 8)]
    pub lens: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `steerlab sae import` prints with `--json`.
#[derive(serde::Serialize)]
struct ImportReport {
    dir: String,
    architecture: String,
    d_in: usize,
    d_sae: usize,
    hook: String,
    steer_layer: Option<usize>,
    notes: Vec<String>,
    logit_lens: Vec<crate::sae::import::LogitLens>,
    top_tokens: Vec<crate::sae::import::FeatureTokens>,
}

/// The texts of a dataset for feature search: both sides of every pair, else the prompts.
fn dataset_texts(split: &SplitArg, path: &Path) -> anyhow::Result<Vec<String>> {
    let ds = split.load(path, None)?;
    let pairs = PairSet::from_records(&ds.records);
    let mut texts: Vec<String> = pairs.a.iter().chain(&pairs.b).cloned().collect();
    if texts.is_empty() {
        texts = pairs.prompts;
    }
    texts.retain(|t| !t.trim().is_empty());
    if texts.is_empty() {
        bail!(
            "{}: no texts to search (no pairs or prompts)",
            path.display()
        );
    }
    Ok(texts)
}

/// Runs `steerlab sae import`.
pub fn import_cmd(a: ImportArgs) -> anyhow::Result<()> {
    checks::count("--top", a.top, 10_000)?;
    checks::count("--lens", a.lens, 10_000)?;
    let p = crate::paths::resolve_model_arg(a.model.as_deref())?;
    let model = crate::model::Model::load(&p, &crate::model::LoadOptions::default())?;
    let tok = load_tokenizer(&p)?;
    let rs = crate::sae::import::import_saelens(&a.dir, &model)?;
    let features: Vec<usize> = if a.features.is_empty() {
        (0..rs.sae.d_sae.min(5)).collect()
    } else {
        a.features.clone()
    };
    let lens = features
        .iter()
        .map(|&f| crate::sae::import::logit_lens(&model, &tok, &rs, f, a.lens))
        .collect::<Result<Vec<_>, _>>()?;
    let top_tokens = match &a.data {
        Some(d) => {
            let texts = dataset_texts(&a.split, d)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let bar = BarSink::new(a.json);
            crate::cli::signals::install();
            let r = crate::sae::import::top_activating_tokens(
                &model, &tok, &rs, &refs, &features, a.top, a.context, &bar,
            )?;
            bar.finish();
            r
        }
        None => Vec::new(),
    };
    let rep = ImportReport {
        dir: a.dir.display().to_string(),
        architecture: rs.sae.arch.name().into(),
        d_in: rs.sae.d_in,
        d_sae: rs.sae.d_sae,
        hook: rs.hook.to_string(),
        steer_layer: rs.steer_layer,
        notes: rs.notes.clone(),
        logit_lens: lens,
        top_tokens,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    for n in &rep.notes {
        eprintln!("note: {n}");
    }
    println!(
        "{}: SAELens `{}` SAE, {} features on {} (d_in {}) of `{}`; steering vectors at layer {}",
        rep.dir,
        rep.architecture,
        rep.d_sae,
        rep.hook,
        rep.d_in,
        model.name(),
        rep.steer_layer
            .map(|l| l.to_string())
            .unwrap_or_else(|| "– (embeddings)".into())
    );
    let show = |v: &[(String, f32)]| {
        v.iter()
            .map(|(t, x)| format!("{t:?} {x:+.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, l) in rep.logit_lens.iter().enumerate() {
        println!("feature {}", l.feature);
        println!("  promotes:   {}", show(&l.promoted));
        println!("  suppresses: {}", show(&l.suppressed));
        if let Some(t) = rep.top_tokens.get(i) {
            println!("  fires on {} of {} tokens; top:", t.fired, t.positions);
            for e in &t.examples {
                println!(
                    "    {:>8.3}  {:?} [{:?}] {:?}",
                    e.activation, e.before, e.token, e.after
                );
            }
        }
    }
    Ok(())
}

/// `steerlab sae to-vector` on a SAELens SAE from elsewhere: the decoder direction at the
/// hook's layer, scaled to `norm` (required: such a folder has no activation statistics).
pub fn foreign_to_vector(
    dir: &Path,
    feature: usize,
    norm: Option<f32>,
    negate: bool,
    out: &Path,
) -> anyhow::Result<()> {
    let sae = saelens::read_saelens(dir)?;
    let Some(norm) = norm else {
        bail!(
            "{}: a SAELens SAE has no activation statistics to size the vector: give --norm \
             (e.g. a typical residual norm at its layer)",
            dir.display()
        );
    };
    let hook = sae.hook_name().unwrap_or("").to_string();
    let point: crate::model::HookPoint = hook.parse().map_err(|_| {
        anyhow::anyhow!(
            "{}: hook_name `{hook}` is not blocks.N.hook_resid_post/pre: no steering layer",
            dir.display()
        )
    })?;
    let steer_layer = match point {
        crate::model::HookPoint::ResidPost(l) => Some(l),
        crate::model::HookPoint::ResidPre(l) => l.checked_sub(1),
        _ => None,
    };
    let rs = crate::sae::import::ResidualSae {
        dir: dir.to_path_buf(),
        sae,
        hook: point,
        steer_layer,
        notes: Vec::new(),
    };
    let mut v = crate::sae::import::feature_steering_vector(&rs, feature, norm)?;
    if negate {
        v = v.scaled(-1.0);
        v.meta.method = format!("negated {}", v.meta.method);
    }
    v.save(out)?;
    println!(
        "wrote {}: SAELens feature {feature} at layer {} (norm {norm}); {}",
        out.display(),
        steer_layer.map(|l| l.to_string()).unwrap_or_default(),
        v.meta.method
    );
    Ok(())
}

/// True when `dir` holds a SAELens SAE that `steerlab sae run` did not write.
pub fn is_foreign_saelens(dir: &Path) -> bool {
    matches!(AnySae::read(dir), Ok(AnySae::Saelens(_)))
}
