//! `steerlab dissect`: factor-level dissection of preference labels. Parses flags, reads the
//! judgements, calls `crate::dissect::run_dissection` with a progress bar, writes
//! `report.json`/`report.md`/`report.html` and prints a summary (or the JSON with `--json`).
use crate::cli::progress::BarSink;
use crate::data::{ColumnMapping, LoadOptions};
use crate::dissect::{self, DissectConfig, NutsConfig, Sampler};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `steerlab dissect`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DissectArgs {
    /// `causal`: the interventional dissection (steer each factor, judge the answers).
    #[command(subcommand)]
    pub command: Option<DissectSub>,
    /// Dataset (.jsonl, .json, .csv, .tsv, .parquet): pairwise judgements (response_a/response_b/
    /// winner, optional judge/annotator/scenario/factors_a/factors_b) or chosen/rejected pairs
    /// (read as A = chosen, winner A).
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Column mapping for unrecognised layouts, e.g. response_a=left,response_b=right,winner=pick.
    #[arg(long)]
    pub map: Option<String>,
    /// Skip invalid rows (counted in the summary) instead of failing on the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Factor sources and/or factor names, comma separated: `computed`, `columns`, factor
    /// names, `sae:DIR` (features of a `steerlab sae run` folder), `vector:FILE@LAYER`
    /// (projection on a steering vector; needs the model) or `llm:name+name` (the model rates
    /// the named factors 0-3 for both responses, GAIR-style; cached; GAIR names accepted).
    /// Default: `columns` when the data has annotations, else `computed`.
    #[arg(long, value_delimiter = ',')]
    pub factors: Vec<String>,
    /// Fit one model per value combination of these keys: judge, annotator, scenario, or any
    /// other (short, scalar) column of the data file.
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Posterior computation: `nuts` (sampling) or `laplace` (MAP + Laplace approximation).
    #[arg(long, default_value = "nuts")]
    pub sampler: String,
    /// Scale b of the Laplace(0, b) prior on every weight.
    #[arg(long, default_value_t = 0.1)]
    pub prior_scale: f64,
    /// K-fold averaging: fit on each of K training folds and average (1 = fit all pairs once).
    #[arg(long, default_value_t = 1)]
    pub folds: usize,
    /// NUTS warm-up iterations per chain.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// NUTS draws kept per chain.
    #[arg(long, default_value_t = 2000)]
    pub draws: usize,
    /// NUTS chains (run on threads).
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Seed for A/B orientation, folds and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model for `vector:` and `llm:` factors (GGUF file, HF folder, short name such as
    /// smollm2, or hf:ORG/NAME[@REV]; default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Find annotator groups: cluster per-annotator weights into K groups (2..20) or `auto`
    /// (K by BIC, 1 = no groups), refit each group with intervals and compare with the pooled
    /// fit (report.json `annotator_groups`).
    #[arg(long)]
    pub annotator_groups: Option<String>,
    /// The column naming each pair's annotator (with --annotator-groups).
    #[arg(long, default_value = "annotator")]
    pub annotator_column: String,
    /// Annotators with fewer non-tie pairs are not grouped (with --annotator-groups).
    #[arg(long, default_value_t = 20)]
    pub min_annotator_pairs: usize,
    /// Print report.json to stdout instead of a summary (and hide the progress bar).
    #[arg(long)]
    pub json: bool,
    /// Output folder for report.json, report.md and report.html.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

/// Subcommands of `steerlab dissect`.
#[derive(Debug, clap::Subcommand)]
pub enum DissectSub {
    /// Causal dissection (issue 24): per factor, a CAA vector from pairs that differ mostly in
    /// it; answers to held-out prompts at −m, 0, +m; steerability; the judge's choices between
    /// steered and unsteered answers fitted per factor; compared with the observational fit.
    Causal(CausalArgs),
}

/// Flags of `steerlab dissect causal`.
#[derive(Debug, Args)]
pub struct CausalArgs {
    /// Pairwise judgements, e.g. from `steerlab data synth`.
    #[arg(long)]
    pub data: PathBuf,
    /// Planted factors to dissect, comma separated (length, bullet_list, headers, code_block,
    /// refusal, empathy, hedging, question, emoji).
    #[arg(long, value_delimiter = ',', required = true)]
    pub factors: Vec<String>,
    /// `planted:FILE.truth.json` (the rule of `data synth`), `model:NAME_OR_PATH` (a local
    /// model, pairwise in both orders) or `column:NAME` (observational only).
    #[arg(long)]
    pub judge: String,
    /// Held-out prompts: a text file (one per line) or a dataset whose prompts are used.
    #[arg(long)]
    pub prompts: PathBuf,
    /// At most this many held-out prompts.
    #[arg(long, default_value_t = 8)]
    pub max_prompts: usize,
    /// Output folder for report.json, report.md, report.html and effects.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Model to steer (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Steering multiplier m, relative to the layer's mean residual norm.
    #[arg(long, default_value_t = 0.5)]
    pub multiplier: f64,
    /// Steerability threshold (standard deviations of the factor per unit multiplier).
    #[arg(long, default_value_t = 0.1)]
    pub threshold: f64,
    /// Steering layer (default: 60% of the depth).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Maximum new tokens per answer.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Training pairs per factor vector.
    #[arg(long, default_value_t = 24)]
    pub pairs: usize,
    /// Seed of generation and the judge's draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `steerlab dissect causal`.
pub fn run_causal(a: CausalArgs) -> anyhow::Result<()> {
    use crate::cli::checks;
    use dissect::causal::{self, CausalConfig, CausalJudge, PlantedJudge};
    checks::out_dir("--out", &a.out)?;
    if !a.multiplier.is_finite() || a.multiplier <= 0.0 || a.multiplier > 100.0 {
        anyhow::bail!(
            "--multiplier {}: must be a finite number above 0 and at most 100",
            a.multiplier
        );
    }
    if !a.threshold.is_finite() || a.threshold < 0.0 {
        anyhow::bail!("--threshold {}: must be a finite number ≥ 0", a.threshold);
    }
    checks::count("--max-tokens", a.max_tokens, 4096)?;
    checks::count("--max-prompts", a.max_prompts, 100_000)?;
    checks::count("--pairs", a.pairs, 100_000)?;
    let factors: Vec<usize> = a
        .factors
        .iter()
        .map(|f| causal::factor_index(f.trim()).map_err(|e| anyhow::anyhow!("--factors: {e}")))
        .collect::<anyhow::Result<_>>()?;
    enum Spec {
        Planted(PlantedJudge),
        Model(PathBuf),
        Column(String),
    }
    let spec = match a.judge.split_once(':') {
        Some(("planted", f)) => Spec::Planted(
            PlantedJudge::from_file(std::path::Path::new(f))
                .map_err(|e| anyhow::anyhow!("--judge: {e}"))?,
        ),
        Some(("model", m)) if !m.trim().is_empty() => Spec::Model(PathBuf::from(m.trim())),
        Some(("column", c)) if !c.trim().is_empty() => Spec::Column(c.trim().to_string()),
        _ => anyhow::bail!(
            "--judge {}: expected planted:FILE.truth.json, model:NAME_OR_PATH or column:NAME",
            a.judge
        ),
    };
    let prompts = dissect::causal_model::read_prompts(&a.prompts, a.max_prompts)
        .map_err(|e| anyhow::anyhow!("--prompts {e}"))?;
    let dataset = crate::data::load_dataset(&a.data, &LoadOptions::default())
        .with_context(|| format!("--data {}", a.data.display()))?;
    let pairs = dataset.judgements();
    if pairs.is_empty() {
        anyhow::bail!("--data {}: holds no judgements", a.data.display());
    }
    crate::cli::signals::install();
    let bar = BarSink::new(false);
    let t0 = std::time::Instant::now();
    let cfg = CausalConfig {
        factors: factors.clone(),
        multiplier: a.multiplier,
        threshold: a.threshold,
        seed: a.seed,
    };
    let observational = matches!(spec, Spec::Column(_));
    let model = if observational {
        None
    } else {
        let p = crate::paths::resolve_model_arg(a.model.as_deref())?;
        Some(
            crate::model::Model::load(&p, &crate::model::LoadOptions::default())
                .with_context(|| format!("loading {}", p.display()))?,
        )
    };
    let judge_model = match &spec {
        Spec::Model(m) => {
            let p = crate::paths::resolve_model_arg(Some(m))?;
            Some(
                crate::model::Model::load(&p, &crate::model::LoadOptions::default())
                    .with_context(|| format!("loading the judge {}", p.display()))?,
            )
        }
        _ => None,
    };
    let quiet = crate::jobs::NoProgress;
    let judge = match spec {
        Spec::Planted(p) => CausalJudge::Planted(p),
        Spec::Column(c) => CausalJudge::Column(c),
        Spec::Model(_) => CausalJudge::Model(dissect::causal_model::model_judge(
            judge_model.as_ref().expect("loaded above"),
            &quiet,
        )?),
    };
    let mut answers = String::new();
    let report = match &model {
        Some(m) => {
            let opts = dissect::causal_model::GeneratorOptions {
                layer: a.layer,
                pairs_per_factor: a.pairs,
                max_tokens: a.max_tokens,
                temperature: 0.0,
                seed: a.seed,
            };
            let mut g = dissect::causal_model::SteeredGenerator::build(
                m, &pairs, &factors, &prompts, &opts, &bar,
            )?;
            eprintln!(
                "steering {} at layer {} (×{} of the mean residual norm)",
                m.name(),
                g.layer(),
                a.multiplier
            );
            causal::run_causal(
                &cfg,
                &pairs,
                &prompts,
                &judge,
                &a.judge,
                &mut |p: &str, k: usize, x: f64| {
                    let t = g.generate(p, k, x)?;
                    answers.push_str(
                        &serde_json::json!({"prompt": p, "factor": crate::data::synth::FACTORS[k],
                            "multiplier": x, "answer": &t})
                        .to_string(),
                    );
                    answers.push('\n');
                    Ok(t)
                },
                &bar,
            )
        }
        None => causal::run_causal(
            &cfg,
            &pairs,
            &prompts,
            &judge,
            &a.judge,
            &mut |_: &str, _: usize, _: f64| {
                Err(dissect::DissectError::BadOption("no model".into()))
            },
            &bar,
        ),
    };
    bar.finish();
    let report = report.with_context(|| format!("causal dissection of {}", a.data.display()))?;
    if !answers.is_empty() {
        crate::report::write_atomic(&a.out.join("answers.jsonl"), answers.as_bytes())?;
    }
    dissect::causal_report::write_report(&a.out, &report)?;
    println!(
        "causal dissection in {:.1}s (judge {}, m = ±{}, threshold {})",
        t0.elapsed().as_secs_f64(),
        a.judge,
        a.multiplier,
        a.threshold
    );
    for f in &report.factors {
        let i = f
            .interventional
            .map(|e| format!("{:+.2} [{:+.2}, {:+.2}]", e.mean, e.lo95, e.hi95))
            .unwrap_or_else(|| "not steerable".into());
        println!(
            "  {:<20} corr {:+.2} [{:+.2}, {:+.2}]  steer {:+.3}  interv {i}{}",
            f.name,
            f.correlational.mean,
            f.correlational.lo95,
            f.correlational.hi95,
            f.steerability,
            if f.sign_differs {
                "  (signs differ)"
            } else {
                ""
            }
        );
    }
    if let Some(s) = report.spearman_planted {
        println!("Spearman(planted, interventional) over steerable factors: {s:.3}");
    }
    for n in [
        "report.json",
        "report.md",
        "report.html",
        "effects.svg",
        "answers.jsonl",
    ] {
        println!("wrote {}", a.out.join(n).display());
    }
    Ok(())
}

/// Runs `steerlab dissect`.
pub fn run(a: DissectArgs) -> anyhow::Result<()> {
    use crate::cli::checks;
    if let Some(DissectSub::Causal(c)) = a.command {
        return run_causal(c);
    }
    let (Some(data_path), Some(out_dir)) = (a.data.clone(), a.out.clone()) else {
        anyhow::bail!("steerlab dissect needs --data and --out");
    };
    checks::out_dir("--out", &out_dir)?;
    checks::count("--chains", a.chains, checks::MAX_CHAINS)?;
    checks::count("--draws", a.draws, checks::MAX_DRAWS)?;
    if a.warmup > checks::MAX_DRAWS {
        anyhow::bail!(
            "--warmup {}: must be at most {} (README, \"Limits\")",
            a.warmup,
            checks::MAX_DRAWS
        );
    }
    checks::count("--folds", a.folds, 100)?;
    checks::positive("--prior-scale", a.prior_scale, 1e6)?;
    let sampler: Sampler = a.sampler.parse()?;
    let grouping = match &a.annotator_groups {
        Some(k) => Some(dissect::GroupingConfig {
            min_pairs: checks::count("--min-annotator-pairs", a.min_annotator_pairs, 1_000_000)
                .map(|_| a.min_annotator_pairs)?,
            column: a.annotator_column.trim().to_string(),
            groups: k
                .parse()
                .map_err(|e| anyhow::anyhow!("--annotator-groups {e}"))?,
            seed: a.seed,
            ..Default::default()
        }),
        None => {
            if a.annotator_column != "annotator" || a.min_annotator_pairs != 20 {
                anyhow::bail!(
                    "--annotator-column and --min-annotator-pairs need --annotator-groups K|auto"
                );
            }
            None
        }
    };
    let mapping = match &a.map {
        Some(m) => ColumnMapping::parse(m)?,
        None => ColumnMapping::default(),
    };
    let opts = LoadOptions {
        mapping,
        skip_invalid: a.skip_invalid,
        ..LoadOptions::default()
    };
    let dataset = a.split.load_with(&data_path, opts)?;
    let skipped = dataset.report.invalid;
    let data = dataset.judgements();
    if data.is_empty() {
        anyhow::bail!(
            "{} holds no judgements or preference pairs",
            data_path.display()
        );
    }
    let cfg = DissectConfig {
        factors: a
            .factors
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        group_by: a
            .by
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        sampler,
        prior_scale: a.prior_scale,
        folds: a.folds,
        nuts: NutsConfig {
            warmup: a.warmup,
            draws: a.draws,
            chains: a.chains,
            seed: a.seed,
            ..NutsConfig::default()
        },
        seed: a.seed,
    };
    let bar = BarSink::new(a.json);
    let model = if dissect::sources::selection_needs_model(&cfg.factors) {
        let p = crate::paths::resolve_model_arg(a.model.as_deref())?;
        Some(
            crate::model::Model::load(&p, &crate::model::LoadOptions::default())
                .with_context(|| format!("loading {}", p.display()))?,
        )
    } else {
        None
    };
    let t0 = std::time::Instant::now();
    let mut sources = dissect::fit::builtin_sources();
    let extra = dissect::sources::build_sources(&cfg.factors, &data, model.as_ref(), None, &bar);
    let out = extra.and_then(|x| {
        sources.extend(x);
        dissect::run_dissection_with(&data, &sources, &cfg, &bar)
    });
    let out = out.and_then(|mut o| {
        if let Some(g) = &grouping {
            dissect::annotator_groups(&data, &o, &cfg, g, &bar)?.attach(&mut o);
        }
        Ok(o)
    });
    bar.finish();
    let out = out.with_context(|| format!("dissecting {}", data_path.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let paths = dissect::report::write_reports(&out_dir, &out.result)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.result)?);
        return Ok(());
    }
    let r = &out.result;
    println!(
        "fitted {} group(s), {} factor(s) in {secs:.4}s ({} records, {} ties dropped)",
        r.groups.len(),
        r.factor_definitions.len(),
        r.settings.n_records,
        r.settings.n_ties
    );
    if skipped > 0 {
        println!(
            "skipped {skipped} invalid row(s) of {}",
            data_path.display()
        );
    }
    for g in &r.groups {
        println!("\n[{}] {} pairs", g.label, g.n_pairs);
        let mut fs: Vec<_> = g.factors.iter().collect();
        fs.sort_by(|x, y| y.mean.abs().total_cmp(&x.mean.abs()));
        for f in fs {
            let diag = match (f.rhat, f.ess) {
                (Some(rh), Some(e)) => format!("  rhat {rh:.3} ess {e:.0}"),
                _ => String::new(),
            };
            println!(
                "  {:<28} {:>7.3} [{:>7.3}, {:>7.3}]  pref {:>5.1}%{diag}",
                f.label, f.mean, f.lo95, f.hi95, f.prob_preferred
            );
        }
        if let Some(s) = &g.sampler_stats {
            if s.divergences > 0 {
                println!("  warning: {} divergent transitions", s.divergences);
            }
        }
    }
    if let Some(g) = &r.annotator_grouping {
        println!(
            "\nannotator groups (column `{}`): K = {}{}, silhouette {}",
            g.config.column,
            g.k,
            if g.bic.is_empty() { "" } else { " by BIC" },
            g.silhouette.map_or("n/a".into(), |s| format!("{s:.3}"))
        );
        for (grp, fit) in r.annotator_groups.iter().zip(&g.fits) {
            let mut fs: Vec<_> = grp.factors.iter().collect();
            fs.sort_by(|x, y| y.mean.abs().total_cmp(&x.mean.abs()));
            let top: Vec<String> = fs
                .iter()
                .take(4)
                .map(|f| format!("{} {:+.2} [{:+.2}, {:+.2}]", f.name, f.mean, f.lo95, f.hi95))
                .collect();
            println!(
                "  group {}: {} annotators, {} pairs; {}",
                grp.group,
                grp.members.len(),
                fit.n_pairs,
                top.join("; ")
            );
        }
        let left = g.annotators.iter().filter(|x| x.group.is_none()).count();
        if left > 0 {
            println!(
                "  {left} annotator(s) with fewer than {} pairs not grouped",
                g.config.min_pairs
            );
        }
    }
    for p in &paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}
