//! `steerlab sae encode` (apply a saved SAE to new pairs or rows) and `steerlab sae import`
//! (a SAELens SAE trained on a model's residual stream: features, logit lens, steering
//! vectors). Parses flags, loads what the library needs, prints; the work is in
//! `crate::sae::encode` and `crate::sae::import`.
use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::data::{self, LoadOptions};
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
    let ds = data::load_dataset(data_path, &LoadOptions::default())?;
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
