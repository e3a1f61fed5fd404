//! `steerlab steer judge|lens`: parse arguments, check flags, files and the output folder
//! before any model work, tokenize, call `crate::steer::judge_eval` / `crate::steer::lens`,
//! print and write the report folder. No algorithm code here.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::checks;
use crate::cli::progress::BarSink;
use crate::data::Prompt;
use crate::model::GenerateOptions;
use crate::steer::judge::Judge;
use crate::steer::judge_eval::{self, JudgeStudyInputs, LabelledPair};
use crate::steer::{lens, prepare, SteeringVector};

/// `steer judge` arguments.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The steering vector (.safetensors or .gguf).
    #[arg(long)]
    pub vector: PathBuf,
    /// Held-out A/B items: scored at every multiplier, and their answers are the judge's
    /// labelled check (the matching answer shows the behaviour).
    #[arg(long)]
    pub eval: PathBuf,
    /// The behaviour in words, as the judge is asked about it (e.g. "speaks positively about
    /// what it describes").
    #[arg(long)]
    pub behaviour: String,
    /// Steered model (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Judge model (default: the steered model itself).
    #[arg(long)]
    pub judge_model: Option<PathBuf>,
    /// Prompts to generate from (any data file with prompts); default: the held-out questions.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// Use at most this many prompts.
    #[arg(long, default_value_t = 6)]
    pub n_prompts: usize,
    /// Use at most this many held-out A/B items for the score.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// Labelled A/B items the judge compares (0: skip the check).
    #[arg(long, default_value_t = 20)]
    pub labelled: usize,
    /// Multipliers (0, the unsteered reference, is always included).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-2,-1,0,1,2"
    )]
    pub multipliers: Vec<f64>,
    /// New tokens per generation (greedy).
    #[arg(long, default_value_t = 40)]
    pub gen_tokens: usize,
    /// Items or prompts per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Output folder (report.json, report.html).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the report JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `steer lens` arguments.
#[derive(Debug, Args)]
pub struct LensArgs {
    /// The steering vector (.safetensors or .gguf).
    pub vector: PathBuf,
    /// Model (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A prompt (chat-formatted as for generation); repeatable.
    #[arg(long)]
    pub prompt: Vec<String>,
    /// Prompts from a data file (any file with prompts).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub split: crate::cli::data_cmd::SplitArg,
    /// The vector's layer to read (default: every layer it has).
    #[arg(long)]
    pub layer: Option<usize>,
    /// New tokens to generate after each prompt (greedy; 0: the prompt only).
    #[arg(long, default_value_t = 24)]
    pub generate: usize,
    /// Steer the generation with the vector at this multiplier (0: unsteered).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub scale: f64,
    /// Promoted and suppressed tokens of the logit lens.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Output folder (report.json, report.html, one strip SVG per prompt and layer).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One prompt's strip at one layer, as written to report.json.
#[derive(serde::Serialize)]
struct StripRow {
    prompt_index: usize,
    prompt: String,
    layer: usize,
    scale: f64,
    generated: String,
    tokens: Vec<lens::StripToken>,
}

fn load_vector(path: &Path) -> Result<SteeringVector> {
    crate::report::atomic::require_regular_file(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(SteeringVector::load_any(path)?)
}

fn io_err(dir: &Path) -> impl Fn(std::io::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{}: {e}", dir.display())
}

/// `steerlab steer judge`.
pub fn judge_cmd(a: JudgeArgs) -> Result<()> {
    checks::out_dir("--out", &a.out)?;
    checks::count("--batch-size", a.batch_size, checks::MAX_BATCH)?;
    checks::count("--n-prompts", a.n_prompts, 10_000)?;
    checks::count("--gen-tokens", a.gen_tokens, 4096)?;
    if a.labelled > 100_000 {
        bail!("--labelled {}: at most 100000", a.labelled);
    }
    if a.eval_limit == Some(0) {
        bail!("--eval-limit 0: must be at least 1");
    }
    if a.behaviour.trim().is_empty() {
        bail!("--behaviour: describe the behaviour in words");
    }
    crate::steer::sweep::check_grid(&[0], &a.multipliers, 1)?;
    let v = load_vector(&a.vector)?;
    let eval_items = a.split.load(&a.eval, a.eval_limit)?.ab_items();
    if eval_items.is_empty() {
        bail!(
            "{}: no usable A/B items (question, answer_matching_behavior, answer_not_matching_behavior)",
            a.eval.display()
        );
    }
    let prompt_texts: Vec<String> = match &a.prompts {
        Some(p) => a
            .split
            .load(p, Some(a.n_prompts))?
            .records
            .iter()
            .map(|r| r.prompt().to_plain())
            .collect(),
        None => eval_items
            .iter()
            .take(a.n_prompts)
            .map(|it| it.question.clone())
            .collect(),
    };
    if prompt_texts.iter().all(|p| p.trim().is_empty()) {
        bail!("no non-empty prompts to generate from");
    }
    let (model, tok) = crate::cli::steer_cmd::load_model(a.model.as_deref(), "f32")?;
    v.check_model(model.hidden_size(), model.n_layers())?;
    let judge_model = match &a.judge_model {
        Some(p) => Some(crate::cli::steer_cmd::load_model(Some(p), "f32")?.0),
        None => None,
    };
    let judge = Judge::new(judge_model.as_ref().unwrap_or(&model), a.batch_size)?;
    let eval =
        prepare::ab_tokens(&tok, &eval_items).with_context(|| format!("{}", a.eval.display()))?;
    let prompts = prompt_texts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            Ok((
                p.clone(),
                prepare::prompt_ids(&tok, &Prompt::Text(p.clone()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let labelled: Vec<LabelledPair> = eval_items
        .iter()
        .take(a.labelled)
        .map(|it| LabelledPair {
            question: it.question.clone(),
            matching: it.answer_matching_behavior.clone(),
            non_matching: it.answer_not_matching_behavior.clone(),
        })
        .collect();
    let sink = BarSink::new(a.json);
    crate::cli::signals::install();
    let dec = tok.clone();
    let report = judge_eval::judge_study(
        &model,
        &judge,
        JudgeStudyInputs {
            vector: &v,
            eval: &eval,
            labelled: &labelled,
            prompts: &prompts,
            multipliers: &a.multipliers,
            behaviour: &a.behaviour,
            generate: GenerateOptions {
                max_new_tokens: a.gen_tokens,
                ..Default::default()
            },
            batch_size: a.batch_size,
            decode: Box::new(move |ids: &[u32]| dec.decode(ids, true).unwrap_or_default()),
        },
        &sink,
    )?;
    sink.finish();
    let json = serde_json::to_string_pretty(&report)?;
    let html = judge_eval::report_html(&report);
    crate::report::atomic::write_dir_atomic(&a.out, "report.json", io_err(&a.out), |d| {
        crate::report::atomic::write_bytes(&d.join("report.html"), html.as_bytes())
            .map_err(io_err(d))?;
        crate::report::atomic::write_bytes(&d.join("report.json"), json.as_bytes())
            .map_err(io_err(d))
    })?;
    if a.json {
        println!("{json}");
        return Ok(());
    }
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "steered {} · judge {} · behaviour \"{}\"",
        report.model, report.judge_model, report.behaviour
    );
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>16}",
        "mult", "A/B", "behaviour", "coherence", "p(steered more)"
    );
    for r in &report.rows {
        println!(
            "{:>6} {:>9.4} {:>10.3} {:>10.3} {:>16}",
            r.multiplier,
            r.ab_score,
            r.behaviour_rating,
            r.coherence_rating,
            f(r.behaviour_preference)
        );
    }
    println!(
        "labelled accuracy {} ({} items)",
        f(report.labelled_accuracy),
        report.labelled.len()
    );
    for (name, ag) in [
        ("behaviour", &report.behaviour_agreement),
        ("coherence", &report.coherence_agreement),
    ] {
        if let Some(ag) = ag {
            println!(
                "{name} self-agreement {:.3} over {} order-swapped comparisons (position bias {:+.3})",
                ag.self_agreement, ag.n, ag.position_bias
            );
        }
    }
    println!(
        "Spearman vs A/B score: over multipliers {}, over generations {}, paired shift {}",
        f(report.spearman_multipliers),
        f(report.spearman_generations),
        f(report.spearman_paired)
    );
    println!("label mass {:.3}", report.label_mass);
    println!("wrote {}", a.out.display());
    Ok(())
}

/// `steerlab steer lens`.
pub fn lens_cmd(a: LensArgs) -> Result<()> {
    if let Some(o) = &a.out {
        checks::out_dir("--out", o)?;
    }
    checks::count("--top", a.top, 1000)?;
    if a.generate > 4096 {
        bail!("--generate {}: at most 4096", a.generate);
    }
    if !a.scale.is_finite() || a.scale.abs() > crate::steer::sweep::MAX_MULTIPLIER {
        bail!(
            "--scale {}: must be a finite number from -{m} to {m}",
            a.scale,
            m = crate::steer::sweep::MAX_MULTIPLIER
        );
    }
    let v = load_vector(&a.vector)?;
    let mut texts = a.prompt.clone();
    if let Some(p) = &a.prompts {
        texts.extend(
            a.split
                .load(p, None)?
                .records
                .iter()
                .map(|r| r.prompt().to_plain()),
        );
    }
    texts.retain(|t| !t.trim().is_empty());
    let layers: Vec<usize> = match a.layer {
        Some(l) => {
            if !v.layers.contains_key(&l) {
                bail!(
                    "--layer {l}: {} has no direction there (it has {:?})",
                    a.vector.display(),
                    v.meta.layers
                );
            }
            vec![l]
        }
        None => v.layers.keys().copied().collect(),
    };
    let (model, tok) = crate::cli::steer_cmd::load_model(a.model.as_deref(), "f32")?;
    v.check_model(model.hidden_size(), model.n_layers())?;
    let token_text = |id: u32| tok.decode(&[id], false).unwrap_or_default();
    let lenses = layers
        .iter()
        .map(|&l| lens::logit_lens(&model, &v, l, a.top, &token_text))
        .collect::<crate::steer::Result<Vec<_>>>()?;
    let hooks = if a.scale == 0.0 {
        crate::model::Hooks::new()
    } else {
        crate::steer::steering_hooks(&model, &v, a.scale)?
    };
    let opts = GenerateOptions {
        max_new_tokens: a.generate,
        ..Default::default()
    };
    let mut strips = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let ids = prepare::prompt_ids(&tok, &Prompt::Text(t.clone()))?;
        let gen = if a.generate > 0 {
            model.generate(&ids, &opts, &hooks, &mut |_, _| true)?
        } else {
            Vec::new()
        };
        let mut full = ids.clone();
        full.extend_from_slice(&gen);
        for &l in &layers {
            let s = lens::projection_strip(&model, &v, l, &full, ids.len(), &token_text)?;
            strips.push(StripRow {
                prompt_index: i,
                prompt: t.clone(),
                layer: l,
                scale: a.scale,
                generated: tok.decode(&gen, true).unwrap_or_default(),
                tokens: s,
            });
        }
    }
    let report = serde_json::json!({
        "vector": a.vector.display().to_string(), "model": model.name(),
        "logit_lens": lenses, "strips": strips,
    });
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(dir) = &a.out {
        let mut page = crate::report::HtmlPage::new("steerlab vector lens");
        page.p(&format!(
            "Vector {} on {}. Logit lens: the direction read through the final norm and the \
             unembedding (logits centred over the vocabulary). Strips: projection of each \
             position's residual after the layer on the unit direction, unsteered forward pass; \
             the generation was made at multiplier {}.",
            a.vector.display(),
            model.name(),
            a.scale
        ));
        let mut svgs = Vec::new();
        for ll in &lenses {
            page.h2(&format!("Logit lens, layer {}", ll.layer));
            let mut t = crate::report::Table::new(["promoted", "logit", "suppressed", "logit"]);
            for (p, s) in ll.promoted.iter().zip(&ll.suppressed) {
                t.row([
                    format!("{:?}", p.text),
                    format!("{:+.3}", p.logit),
                    format!("{:?}", s.text),
                    format!("{:+.3}", s.logit),
                ]);
            }
            page.table(&t);
        }
        for s in &strips {
            let title = format!("prompt {} · layer {}", s.prompt_index, s.layer);
            let svg = lens::strip_svg(&title, &s.tokens);
            page.h2(&title);
            page.p(&s.prompt);
            page.svg(&svg);
            svgs.push((format!("strip_{}_L{}.svg", s.prompt_index, s.layer), svg));
        }
        let html = page.finish();
        crate::report::atomic::write_dir_atomic(dir, "report.json", io_err(dir), |d| {
            for (name, svg) in &svgs {
                crate::report::atomic::write_bytes(&d.join(name), svg.as_bytes())
                    .map_err(io_err(d))?;
            }
            crate::report::atomic::write_bytes(&d.join("report.html"), html.as_bytes())
                .map_err(io_err(d))?;
            crate::report::atomic::write_bytes(&d.join("report.json"), json.as_bytes())
                .map_err(io_err(d))
        })?;
    }
    if a.json {
        println!("{json}");
        return Ok(());
    }
    for ll in &lenses {
        println!("logit lens, layer {}:", ll.layer);
        let show = |ts: &[lens::LensToken]| {
            ts.iter()
                .map(|t| format!("{:?} {:+.2}", t.text, t.logit))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  promotes   {}", show(&ll.promoted));
        println!("  suppresses {}", show(&ll.suppressed));
    }
    for s in &strips {
        println!(
            "prompt {} · layer {} (projection on the unit direction; generated after |):",
            s.prompt_index, s.layer
        );
        let mut line = String::from("  ");
        let mut in_prompt = true;
        for t in &s.tokens {
            if in_prompt && !t.prompt {
                line.push_str(" | ");
                in_prompt = false;
            }
            line.push_str(&format!(
                "{}[{:+.1}]",
                t.text.replace('\n', "⏎"),
                t.projection
            ));
        }
        println!("{line}");
    }
    if let Some(d) = &a.out {
        println!("wrote {}", d.display());
    }
    Ok(())
}
