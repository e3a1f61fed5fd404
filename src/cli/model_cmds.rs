//! `steerlab info|run|generate`: describe a model, run a forward pass and save its cache, and
//! generate (optionally steered) text. Parses arguments and prints; the work is in `crate::model`.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use clap::Args;

use crate::data::Message;
use crate::model::{
    Batch, EditMode, GenerateOptions, HookPoint, Hooks, LoadOptions, Model, Positions,
};

/// Which model to load and where.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// An HF model folder (config.json + safetensors + tokenizer.json), a .gguf file, a short
    /// name (smollm2) or hf:ORG/NAME[@REVISION] from the local Hugging Face cache
    /// [default: the embedded SmolLM2-135M-Instruct]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// How a .gguf file's block-quantized tensors are held in memory: `auto` (the default:
    /// `quantized` on the CPU in f32, `f32` elsewhere), `quantized` (kept in blocks, about 1/7
    /// of the memory; CPU f32 only) or `f32` (dequantized at load).
    #[arg(long, default_value = "auto")]
    pub weights: String,
}

impl ModelArgs {
    /// Loads the model named by the flags (or the default model).
    pub fn load(&self) -> anyhow::Result<Model> {
        let path = crate::paths::resolve_model_arg(self.model.as_deref())?;
        let mut opts = LoadOptions::parse(&self.device, &self.dtype)?;
        opts.weights = crate::model::WeightStorage::parse(&self.weights)?;
        Model::load(&path, &opts).with_context(|| format!("loading {}", path.display()))
    }
}

/// `steerlab info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `steerlab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token ids, comma-separated (e.g. 1,2,3).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "prompt",
        required_unless_present = "prompt"
    )]
    pub ids: Option<Vec<u32>>,
    /// Text to tokenize.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Wrap the prompt in the model's chat template as a user turn.
    #[arg(long, requires = "prompt")]
    pub chat: bool,
    /// Output safetensors: F32 `logits` [T, vocab] and `blocks.{l}.hook_resid_post` [T, hidden].
    #[arg(long)]
    pub cache: PathBuf,
}

/// `steerlab generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template as a user turn.
    #[arg(long)]
    pub chat: bool,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A steering vector file (native .safetensors or GGUF control vector), optionally with a
    /// multiplier and intervention mode: FILE[:SCALE[:MODE]], MODE one of add, add_normalized
    /// (keeps each position's residual norm), ablate (SCALE 1 removes the direction), clamp
    /// (sets the projection on the direction to SCALE); default: the file's
    /// `steerlab.intervention`, else add. Repeat to combine vectors.
    #[arg(long, value_name = "FILE[:SCALE[:MODE]]")]
    pub steer: Vec<String>,
    /// Conditional steering (CAST): apply the --steer vectors only to prompts whose residual at
    /// the last prompt token has cosine above THRESHOLD with this condition vector (at each
    /// steered layer); `steerlab steer cast-threshold` picks THRESHOLD from labelled prompts.
    #[arg(long, value_name = "FILE:THRESHOLD")]
    pub steer_if: Option<String>,
}

/// `steerlab info`.
pub fn info(a: InfoArgs) -> anyhow::Result<()> {
    let model = a.model.load()?;
    let info = model.info();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("name          {}", info.name);
        println!("architecture  {}", info.architecture);
        println!("layers        {}", info.n_layers);
        println!("hidden size   {}", info.hidden_size);
        println!("vocabulary    {}", info.vocab_size);
        println!(
            "parameters    {} ({:.1} M)",
            info.n_params,
            info.n_params as f64 / 1e6
        );
        println!("device        {}", info.device);
        println!("dtype         {}", info.dtype);
    }
    Ok(())
}

/// Token ids of a prompt: raw, or wrapped in the chat template as one user turn.
fn encode_prompt(model: &Model, prompt: &str, chat: bool) -> anyhow::Result<Vec<u32>> {
    let tok = model
        .tokenizer()
        .context("this model has no tokenizer (tokenizer.json); pass token ids with --ids")?;
    let ids = if chat {
        let text = tok.apply_chat_template(&[Message::new("user", prompt)], true)?;
        tok.encode(&text, false)?
    } else {
        tok.encode(prompt, true)?
    };
    if ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    Ok(ids)
}

/// Writes `tensors` (F32) as safetensors to `path` atomically (a unique temporary name in the
/// target's folder, then a rename; see [`crate::report::atomic`]).
fn save_atomically(tensors: &HashMap<String, Tensor>, path: &Path) -> anyhow::Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut data = Vec::with_capacity(names.len());
    for n in &names {
        let t = &tensors[*n];
        data.push((t.flatten_all()?.to_vec1::<f32>()?, t.dims().to_vec()));
    }
    let views: Vec<(&str, &[f32], Vec<usize>)> = names
        .iter()
        .zip(&data)
        .map(|(n, (d, s))| (n.as_str(), d.as_slice(), s.clone()))
        .collect();
    let bytes = crate::sae::embed::f32_safetensors(&views, None)
        .with_context(|| format!("serialising {}", path.display()))?;
    crate::report::atomic::write_bytes(path, &bytes)
        .with_context(|| format!("cannot write --cache {}", path.display()))
}

/// Refuses to save a forward pass whose logits are not finite, naming the first residual that
/// went bad (a config or weight problem, never a result).
fn check_finite_outputs(out: &HashMap<String, Tensor>, n_layers: usize) -> anyhow::Result<()> {
    let finite = |t: &Tensor| -> anyhow::Result<bool> {
        Ok(t.affine(0.0, 0.0)?
            .sum_all()?
            .to_scalar::<f32>()?
            .is_finite())
    };
    if finite(&out["logits"])? {
        return Ok(());
    }
    let first = (0..n_layers)
        .map(|l| HookPoint::ResidPost(l).to_string())
        .find(|name| out.get(name).is_some_and(|t| !finite(t).unwrap_or(false)));
    match first {
        Some(name) => bail!(
            "the model produced NaN or infinite values, first at {name}; nothing was written \
             (check the model's config numbers and weights)"
        ),
        None => bail!(
            "the model produced NaN or infinite logits; nothing was written (check the \
             model's config numbers and weights)"
        ),
    }
}

/// `steerlab run`.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    crate::report::atomic::check_output_file(&a.cache)
        .with_context(|| format!("--cache {}", a.cache.display()))?;
    let model = a.model.load()?;
    let ids = match (&a.ids, &a.prompt) {
        (Some(ids), _) => ids.clone(),
        (None, Some(p)) => encode_prompt(&model, p, a.chat)?,
        (None, None) => bail!("pass --ids or --prompt"),
    };
    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, model.device())?;
    let mut hooks = Hooks::new();
    for l in 0..model.n_layers() {
        hooks.capture(HookPoint::ResidPost(l));
    }
    let logits = model.forward(&batch, &mut hooks)?;
    let mut out = HashMap::new();
    let cpu = Device::Cpu;
    out.insert(
        "logits".to_string(),
        logits.squeeze(0)?.to_dtype(DType::F32)?.to_device(&cpu)?,
    );
    for l in 0..model.n_layers() {
        let p = HookPoint::ResidPost(l);
        let t = hooks.take_captured(p).context("missing capture")?;
        out.insert(
            p.to_string(),
            t.squeeze(0)?.to_dtype(DType::F32)?.to_device(&cpu)?,
        );
    }
    check_finite_outputs(&out, model.n_layers())?;
    save_atomically(&out, &a.cache)?;
    eprintln!(
        "wrote {} ({} tokens: logits and {} residuals)",
        a.cache.display(),
        ids.len(),
        model.n_layers()
    );
    Ok(())
}

/// Splits `FILE[:SCALE]`; a suffix that is not a number belongs to the file name. A scale that
/// is a number but not finite (or beyond ±1e4) is refused, naming the flag.
fn split_steer(spec: &str) -> anyhow::Result<(PathBuf, f64)> {
    if let Some((file, scale)) = spec.rsplit_once(':') {
        if let Ok(s) = scale.trim().parse::<f64>() {
            if !s.is_finite() || s.abs() > crate::cli::checks::MAX_MULTIPLIER {
                bail!(
                    "--steer {spec}: the scale {s} must be a finite number from -{m} to {m}",
                    m = crate::cli::checks::MAX_MULTIPLIER
                );
            }
            return Ok((PathBuf::from(file), s));
        }
    }
    Ok((PathBuf::from(spec), 1.0))
}

/// Splits `FILE[:SCALE[:MODE]]`: a last part naming an intervention mode (add,
/// add_normalized, ablate, clamp) must follow a scale; otherwise as [`split_steer`].
fn split_steer_mode(spec: &str) -> anyhow::Result<(PathBuf, f64, Option<EditMode>)> {
    if let Some((rest, mode)) = spec.rsplit_once(':') {
        if let Ok(m) = mode.parse::<EditMode>() {
            let (file, scale) = split_steer(rest)?;
            if file.as_os_str() == rest {
                bail!("--steer {spec}: the mode `{mode}` must follow a scale (FILE:SCALE:MODE)");
            }
            return Ok((file, scale, Some(m)));
        }
    }
    let (file, scale) = split_steer(spec)?;
    Ok((file, scale, None))
}

/// Splits `--steer-if FILE:THRESHOLD` (a cosine in [-1, 1]).
fn split_condition(spec: &str) -> anyhow::Result<(PathBuf, f64)> {
    let (file, th) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--steer-if {spec}: expected FILE:THRESHOLD"))?;
    let th: f64 = th
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--steer-if {spec}: `{th}` is not a number"))?;
    if !(th.is_finite() && (-1.0..=1.0).contains(&th)) {
        bail!("--steer-if {spec}: the threshold {th} must be a cosine in [-1, 1]");
    }
    Ok((PathBuf::from(file), th))
}

/// Hooks adding every `--steer` vector at its layers (gated by `--steer-if` when given).
fn steering_hooks(
    model: &Model,
    specs: &[String],
    condition: Option<&str>,
) -> anyhow::Result<Hooks> {
    let mut hooks = Hooks::new();
    let condition = match condition {
        None => None,
        Some(spec) => {
            let (file, th) = split_condition(spec)?;
            Some((crate::steer::SteeringVector::load_any(&file)?, th))
        }
    };
    for spec in specs {
        let (file, scale, mode) = split_steer_mode(spec)?;
        let sv = crate::steer::SteeringVector::load_any(&file)?;
        let mode =
            match mode {
                Some(m) => m,
                None => sv.meta.intervention.parse::<EditMode>().map_err(|e| {
                    anyhow::anyhow!("{}: steerlab.intervention: {e}", file.display())
                })?,
            };
        if mode != EditMode::Add || condition.is_some() {
            let cond = condition.as_ref().map(|(c, th)| (c, *th));
            crate::steer::collect::add_steering_mode(&mut hooks, model, &sv, scale, mode, cond)?;
            eprintln!(
                "steering with {} × {scale} ({mode}) at layers {:?}",
                file.display(),
                sv.meta.layers
            );
            continue;
        }
        sv.check_model(model.hidden_size(), model.n_layers())?;
        let positions = match sv.meta.positions.as_str() {
            "all" | "" => Positions::All,
            "prompt" => Positions::PromptOnly,
            "generated" => Positions::GeneratedOnly,
            other => bail!(
                "{}: steerlab.positions `{other}` is not all, prompt or generated",
                file.display()
            ),
        };
        let site = sv.meta.site.as_str();
        for (&layer, dir) in &sv.layers {
            let point: HookPoint = format!("blocks.{layer}.hook_{site}")
                .parse()
                .with_context(|| format!("{}: steerlab.site `{site}`", file.display()))?;
            let v = Tensor::new(dir.as_slice(), model.device())?;
            hooks.add(point, v, scale, positions.clone());
        }
        eprintln!(
            "steering with {} × {scale} at layers {:?}",
            file.display(),
            sv.meta.layers
        );
    }
    Ok(hooks)
}

/// `steerlab generate`.
pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    crate::cli::checks::in_range("--temperature", a.temperature, 0.0, 100.0)?;
    crate::cli::checks::in_range("--top-p", a.top_p, 0.0, 1.0)?;
    if a.top_p == 0.0 {
        bail!("--top-p 0: must be above 0 (1 keeps every token)");
    }
    for spec in &a.steer {
        let (file, _, _) = split_steer_mode(spec)?;
        crate::report::atomic::require_regular_file(&file)
            .map_err(|e| anyhow::anyhow!("--steer {}: {e}", file.display()))?;
    }
    let model = a.model.load()?;
    let ids = encode_prompt(&model, &a.prompt, a.chat)?;
    if let Some(spec) = &a.steer_if {
        let (file, _) = split_condition(spec)?;
        crate::report::atomic::require_regular_file(&file)
            .map_err(|e| anyhow::anyhow!("--steer-if {}: {e}", file.display()))?;
        if a.steer.is_empty() {
            bail!("--steer-if needs at least one --steer vector to gate");
        }
    }
    let hooks = steering_hooks(&model, &a.steer, a.steer_if.as_deref())?;
    if let Some(r) = model.undecodable_ids() {
        eprintln!(
            "note: the model's embedding has {} rows but its tokenizer only {} tokens; ids {}..{} \
             are never sampled",
            r.end, r.start, r.start, r.end
        );
    }
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        stop_at_eos: true,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    model.generate(&ids, &opts, &hooks, &mut |_, text| match out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
    {
        Ok(()) => true,
        Err(e) => {
            write_err = Some(e);
            false
        }
    })?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
        return Ok(());
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steer_spec_splits_scale() {
        assert_eq!(
            split_steer("v.safetensors:-2.5").unwrap(),
            (PathBuf::from("v.safetensors"), -2.5)
        );
        assert_eq!(
            split_steer("v.safetensors").unwrap(),
            (PathBuf::from("v.safetensors"), 1.0)
        );
        assert_eq!(
            split_steer("dir:x/v.safetensors").unwrap(),
            (PathBuf::from("dir:x/v.safetensors"), 1.0)
        );
        for bad in [
            "v.safetensors:nan",
            "v.safetensors:inf",
            "v.safetensors:1e309",
        ] {
            let e = split_steer(bad).unwrap_err().to_string();
            assert!(e.contains("--steer") && e.contains("finite"), "{e}");
        }
    }

    #[test]
    fn steer_spec_splits_mode() {
        assert_eq!(
            split_steer_mode("v.safetensors:2:ablate").unwrap(),
            (PathBuf::from("v.safetensors"), 2.0, Some(EditMode::Ablate))
        );
        assert_eq!(
            split_steer_mode("v.safetensors:-1:add_normalized").unwrap(),
            (
                PathBuf::from("v.safetensors"),
                -1.0,
                Some(EditMode::AddNormalized)
            )
        );
        assert_eq!(
            split_steer_mode("v.safetensors:3").unwrap(),
            (PathBuf::from("v.safetensors"), 3.0, None)
        );
        let e = split_steer_mode("v.safetensors:clamp")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must follow a scale"), "{e}");
        let e = split_steer_mode("v.safetensors:nan:clamp")
            .unwrap_err()
            .to_string();
        assert!(e.contains("finite"), "{e}");
    }
}
