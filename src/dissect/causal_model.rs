//! Model wiring of the causal dissection (issue 24): per factor a CAA (mean-difference)
//! steering vector at one layer from the pairs [`select_pairs`] picks, generation of held-out
//! answers with the vector added at a multiplier relative to the layer's mean residual norm,
//! and a loaded model as a pairwise, order-swapped judge.
use super::causal::{select_pairs, ModelJudgeFn};
use super::error::DissectError;
use crate::data::synth::FACTORS;
use crate::data::{Judgement, Prompt};
use crate::jobs::ProgressSink;
use crate::model::{GenerateOptions, Hooks, Model, TextTokenizer};
use crate::steer::judge::{Comparison, Criterion, Judge};
use crate::steer::{caa, prepare, steering_hooks, Contrast, SteeringVector};
use std::collections::{BTreeMap, HashMap};

/// Settings of [`SteeredGenerator::build`].
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Layer of the vectors (default: 60% of the depth).
    pub layer: Option<usize>,
    /// Training pairs per factor (the best-separated ones).
    pub pairs_per_factor: usize,
    /// Maximum new tokens per answer.
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Sampling seed.
    pub seed: u64,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self {
            layer: None,
            pairs_per_factor: 24,
            max_tokens: 48,
            temperature: 0.0,
            seed: 0,
        }
    }
}

fn steer_err(what: &str) -> impl Fn(crate::steer::SteerError) -> DissectError + '_ {
    move |e| DissectError::Source(format!("{what}: {e}"))
}

/// The default steering layer: 60% of the depth.
pub fn default_layer(n_layers: usize) -> usize {
    ((n_layers as f64 * 0.6).round() as usize).min(n_layers.saturating_sub(1))
}

/// Generates held-out answers steered along one factor's CAA vector (see [`super::causal::Generate`]).
pub struct SteeredGenerator<'m> {
    model: &'m Model,
    tok: TextTokenizer,
    layer: usize,
    /// Factor → unit-norm vector scaled by the layer's mean residual norm.
    vectors: BTreeMap<usize, SteeringVector>,
    opts: GenerateOptions,
    unsteered: HashMap<String, String>,
}

impl<'m> SteeredGenerator<'m> {
    /// Trains one CAA vector per factor on `data` (A/B oriented so the positive side has more
    /// of the factor) and scales each to the mean residual norm at the layer over `prompts`,
    /// so a multiplier m adds m × that norm.
    pub fn build(
        model: &'m Model,
        data: &[Judgement],
        factors: &[usize],
        prompts: &[String],
        opts: &GeneratorOptions,
        progress: &dyn ProgressSink,
    ) -> Result<Self, DissectError> {
        let tok = model.tokenizer().cloned().ok_or_else(|| {
            DissectError::Source(format!("{}: the model has no tokenizer", model.name()))
        })?;
        let n_layers = model.n_layers();
        let layer = opts.layer.unwrap_or_else(|| default_layer(n_layers));
        if layer >= n_layers {
            return Err(DissectError::BadOption(format!(
                "--layer {layer}: the model has layers 0..{}",
                n_layers.saturating_sub(1)
            )));
        }
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| prepare::prompt_ids(&tok, &Prompt::Text(p.clone())))
            .collect::<Result<_, _>>()
            .map_err(steer_err("held-out prompts"))?;
        let norm = *crate::steer::sweep::residual_norms(model, &ids, &[layer])
            .map_err(steer_err("residual norm"))?
            .get(&layer)
            .expect("layer requested");
        let mut vectors = BTreeMap::new();
        for &k in factors {
            if progress.is_cancelled() {
                return Err(DissectError::Cancelled);
            }
            // Rank every candidate so pairs too long for the context can be skipped.
            let picked = select_pairs(data, k, usize::MAX)?;
            let ctx = model.config().max_position_embeddings;
            let mut items = Vec::with_capacity(opts.pairs_per_factor);
            for (p, more_in_a) in picked {
                if items.len() == opts.pairs_per_factor {
                    break;
                }
                let j = &data[p];
                let (more, less) = if more_in_a {
                    (&j.response_a, &j.response_b)
                } else {
                    (&j.response_b, &j.response_a)
                };
                let head = prepare::prompt_ids(&tok, &j.prompt).map_err(steer_err(&j.id))?;
                let mut pos = head.clone();
                pos.extend(prepare::text_ids(&tok, more, &j.id).map_err(steer_err(&j.id))?);
                let mut neg = head;
                neg.extend(prepare::text_ids(&tok, less, &j.id).map_err(steer_err(&j.id))?);
                if pos.len() > ctx || neg.len() > ctx {
                    continue;
                }
                items.push(Contrast {
                    positive_at: pos.len() - 1,
                    negative_at: neg.len() - 1,
                    positive: pos,
                    negative: neg,
                });
            }
            let what = format!("factor {}", FACTORS[k]);
            if items.len() < 2 {
                return Err(DissectError::Empty(format!(
                    "{what}: fewer than 2 training pairs fit the model's context of {ctx} tokens"
                )));
            }
            let v = caa::train_caa(model, &items, &[layer], 4, model.name(), &what, progress)
                .map_err(|e| match e {
                    crate::steer::SteerError::Invalid(m) if m == "cancelled" => {
                        DissectError::Cancelled
                    }
                    e => DissectError::Source(format!("{what}: {e}")),
                })?;
            let vn = v.norms()[&layer] as f64;
            vectors.insert(k, v.scaled((norm / vn.max(1e-12)) as f32));
        }
        Ok(Self {
            model,
            tok,
            layer,
            vectors,
            opts: GenerateOptions {
                max_new_tokens: opts.max_tokens,
                temperature: opts.temperature,
                top_p: 1.0,
                seed: opts.seed,
                stop_at_eos: true,
            },
            unsteered: HashMap::new(),
        })
    }

    /// The steering layer.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// Answer to `prompt` with `factor`'s vector × `multiplier` added (the unsteered answer,
    /// m = 0, is cached per prompt since it does not depend on the factor).
    pub fn generate(
        &mut self,
        prompt: &str,
        factor: usize,
        multiplier: f64,
    ) -> Result<String, DissectError> {
        if multiplier == 0.0 {
            if let Some(t) = self.unsteered.get(prompt) {
                return Ok(t.clone());
            }
        }
        let v = self.vectors.get(&factor).ok_or_else(|| {
            DissectError::BadOption(format!("factor `{}` has no vector", FACTORS[factor]))
        })?;
        let hooks = if multiplier == 0.0 {
            Hooks::new()
        } else {
            steering_hooks(self.model, v, multiplier).map_err(steer_err("steering"))?
        };
        let ids = prepare::prompt_ids(&self.tok, &Prompt::Text(prompt.to_string()))
            .map_err(steer_err("prompt"))?;
        let out = self
            .model
            .generate(&ids, &self.opts, &hooks, &mut |_, _| true)
            .map_err(|e| DissectError::Source(format!("generate: {e}")))?;
        let text = self
            .tok
            .decode(&out, true)
            .map_err(|e| DissectError::Source(format!("decode: {e}")))?;
        if multiplier == 0.0 {
            self.unsteered.insert(prompt.to_string(), text.clone());
        }
        Ok(text)
    }
}

/// A loaded model as the causal judge: P(first answer is the better response), averaged over
/// both presentation orders ([`Judge::compare`]).
pub fn model_judge<'m>(
    model: &'m Model,
    progress: &'m dyn ProgressSink,
) -> Result<Box<ModelJudgeFn<'m>>, DissectError> {
    let judge = Judge::new(model, 2).map_err(steer_err("judge"))?;
    let crit = Criterion::custom(
        "overall",
        "Which response is better overall: more helpful, clear and appropriate?",
    );
    Ok(Box::new(move |prompt: &str, a: &str, b: &str| {
        let items = [Comparison {
            prompt: prompt.into(),
            a: a.into(),
            b: b.into(),
        }];
        let p = judge
            .compare(&items, &crit, progress)
            .map_err(steer_err("judge"))?;
        Ok(p[0].probability)
    }))
}

/// Held-out prompts: one per non-empty line of a `.txt` file, else the prompts of a dataset;
/// duplicates dropped, at most `max`. Errors name the file.
pub fn read_prompts(path: &std::path::Path, max: usize) -> Result<Vec<String>, DissectError> {
    let name = path.display();
    crate::report::atomic::require_regular_file(path)
        .map_err(|e| DissectError::Source(format!("{name}: {e}")))?;
    let mut out: Vec<String> = if path.extension().is_some_and(|e| e == "txt") {
        std::fs::read_to_string(path)
            .map_err(|e| DissectError::Source(format!("{name}: {e}")))?
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    } else {
        crate::data::load_dataset(path, &crate::data::LoadOptions::default())
            .map_err(|e| DissectError::Source(format!("{name}: {e}")))?
            .records
            .iter()
            .map(|r| r.prompt().to_plain())
            .collect()
    };
    out.retain(|p| !p.trim().is_empty());
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out.truncate(max);
    if out.is_empty() {
        return Err(DissectError::BadOption(format!("{name}: holds no prompts")));
    }
    Ok(out)
}

/// The judge of a `--judge` spec: `planted:FILE`, `column:NAME`, or `model:` (any loaded
/// model given as `judge_model`). Parsed before any work.
pub enum JudgeSpec {
    /// The planted rule read from a truth file.
    Planted(super::causal::PlantedJudge),
    /// A model named or located by the string.
    Model(String),
    /// A label column (observational only).
    Column(String),
}

impl std::str::FromStr for JudgeSpec {
    type Err = DissectError;
    fn from_str(s: &str) -> Result<Self, DissectError> {
        match s.split_once(':') {
            Some(("planted", f)) if !f.trim().is_empty() => Ok(JudgeSpec::Planted(
                super::causal::PlantedJudge::from_file(std::path::Path::new(f.trim()))?,
            )),
            Some(("model", m)) if !m.trim().is_empty() => Ok(JudgeSpec::Model(m.trim().into())),
            Some(("column", c)) if !c.trim().is_empty() => Ok(JudgeSpec::Column(c.trim().into())),
            _ => Err(DissectError::BadOption(format!(
                "judge `{s}`: expected planted:FILE.truth.json, model:NAME_OR_PATH or column:NAME"
            ))),
        }
    }
}
