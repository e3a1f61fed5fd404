//! The output folder of a run: the SAE in SAELens' format (`cfg.json`, `sae_weights.safetensors`;
//! see [`super::saelens`]),
//! `activations.safetensors` (`[pairs, latents]`, file order, pair ids in the metadata),
//! `report.json`, `report.md` and a self-contained `report.html`. All files are written
//! atomically. Also reads an SAE folder (or a whole output folder) back.
use super::atlas::Atlas;
use super::embed::f32_safetensors;
use super::error::SaeError;
use super::model::Sae;
use super::pipeline::{RunResult, SaeReport};
use super::saelens;
use crate::report::svg::{
    bar_chart, line_chart, scatter_plot, series_color, signed_color, BarChart, LineChart,
    ScatterPlot, ScatterPoint,
};
use crate::report::{fmt_num, write_atomic, HtmlPage, Markdown, Table};
use std::collections::HashMap;
use std::path::Path;

fn w(path: &Path, bytes: &[u8]) -> Result<(), SaeError> {
    write_atomic(path, bytes).map_err(|e| SaeError::file(path, e))
}

/// `cfg.json`'s `metadata` for a steerlab SAE: SAELens' keys (`sae_lens_version`, a portable
/// `model_name` and `hook_name`) and steerlab's own under `steerlab` (the signed-pair layout,
/// K, the signed threshold, `activation_fn`, the Matryoshka prefixes, the portable embedder id,
/// the model files' SHA-256, and `extra`).
pub fn sae_metadata(
    sae: &Sae,
    embedder: &str,
    extra: serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let mut st = serde_json::json!({
        "format": saelens::SIGNED_PAIRS,
        "pairing": "SAELens latents 2j and 2j+1 are the positive and negative halves of steerlab \
                    feature j: its signed activation is acts[2j] - acts[2j+1]",
        "features": sae.d_sae,
        "k": sae.k,
        "threshold": sae.threshold,
        "activation_fn": "signed_batchtopk",
        "matryoshka_prefixes": sae.prefixes,
        "saelens_prefixes": sae.prefixes.iter().map(|p| 2 * p).collect::<Vec<_>>(),
        "embedder": saelens::portable_embedder_id(embedder),
    });
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            st[k] = v;
        }
    }
    if st.get("model_files").is_none() {
        // An embedder id naming a local folder (MiniLM): hash its weights there.
        let local = embedder
            .split_once(':')
            .map(|(_, p)| std::path::PathBuf::from(p))
            .filter(|p| p.is_absolute() && p.is_dir());
        st["model_files"] = match local.map(|p| saelens::model_file_hashes(&p)) {
            Some(Ok(h)) => serde_json::json!(h),
            _ => serde_json::Value::Null,
        };
    }
    let mut m = serde_json::Map::new();
    m.insert("sae_lens_version".into(), saelens::SAELENS_VERSION.into());
    m.insert("model_name".into(), saelens::model_name_of(embedder).into());
    m.insert("hook_name".into(), saelens::hook_name_of(embedder).into());
    m.insert("steerlab".into(), st);
    m
}

/// Writes `cfg.json` and `sae_weights.safetensors` into `dir`: the signed SAE as the exactly
/// equivalent SAELens `jumprelu` SAE with 2M latents ([`saelens::signed_as_jumprelu`]), which
/// `SAE.load_from_disk` loads and [`read_sae`] folds back.
pub fn write_sae(
    dir: &Path,
    sae: &Sae,
    embedder: &str,
    extra: serde_json::Value,
) -> Result<(), SaeError> {
    let s = saelens::signed_as_jumprelu(sae, sae_metadata(sae, embedder, extra));
    saelens::write_saelens(dir, &s)
}

/// Reads a steerlab SAE folder: the SAELens form [`write_sae`] writes, or the `batchtopk`
/// layout of folders written before it. A SAELens SAE from elsewhere is refused with a pointer
/// to `steerlab sae import`.
pub fn read_sae(dir: &Path) -> Result<Sae, SaeError> {
    let cfg_path = dir.join("cfg.json");
    let cfg = saelens::read_cfg(dir)?;
    if cfg.get("architecture").and_then(|v| v.as_str()) == Some("batchtopk") {
        return read_legacy_sae(dir, &cfg);
    }
    let s = saelens::read_saelens(dir)?;
    let Some(st) = s
        .steerlab()
        .filter(|m| m.get("format").and_then(|v| v.as_str()) == Some(saelens::SIGNED_PAIRS))
    else {
        return Err(SaeError::file(
            &cfg_path,
            format!(
                "a SAELens `{}` SAE, not one written by `steerlab sae run` (no \
                 metadata.steerlab.format = \"{}\"); open it with `steerlab sae import`",
                s.arch.name(),
                saelens::SIGNED_PAIRS
            ),
        ));
    };
    let k = st.get("k").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    let prefixes = match st.get("matryoshka_prefixes") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<usize>>(v.clone()).map_err(|e| {
            SaeError::file(
                &cfg_path,
                format!("metadata.steerlab.matryoshka_prefixes: {e}"),
            )
        })?,
    };
    saelens::jumprelu_as_signed(&s, k, prefixes).map_err(|e| SaeError::file(&cfg_path, e))
}

/// Reads the `batchtopk` layout of folders written before the SAELens export.
fn read_legacy_sae(
    dir: &Path,
    cfg: &serde_json::Map<String, serde_json::Value>,
) -> Result<Sae, SaeError> {
    let cfg_path = dir.join("cfg.json");
    let path = dir.join("sae_weights.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| SaeError::file(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| SaeError::file(&path, e))?;
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, SaeError> {
        let t = st
            .tensor(name)
            .map_err(|e| SaeError::file(&path, format!("{name}: {e}")))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
            return Err(SaeError::file(
                &path,
                format!(
                    "{name}: expected F32 {shape:?}, found {:?} {:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let dim = |k: &str| -> Result<usize, SaeError> {
        cfg.get(k)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| SaeError::file(&cfg_path, format!("{k}: missing or not an integer")))
    };
    let (d_in, d_sae) = (dim("d_in")?, dim("d_sae")?);
    let threshold = if st.names().contains(&"threshold") {
        get("threshold", &[])?[0]
    } else {
        cfg.get("threshold").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32
    };
    let prefixes = cfg
        .get("matryoshka_prefixes")
        .and_then(|v| serde_json::from_value::<Vec<usize>>(v.clone()).ok())
        .unwrap_or_else(|| vec![d_sae]);
    Ok(Sae {
        d_in,
        d_sae,
        w_enc: get("W_enc", &[d_in, d_sae])?,
        b_enc: get("b_enc", &[d_sae])?,
        w_dec: get("W_dec", &[d_sae, d_in])?,
        b_dec: get("b_dec", &[d_in])?,
        threshold,
        k: cfg.get("k").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
        prefixes,
    })
}

/// Writes the whole output folder of a run: under a temporary name renamed into place when `dir`
/// is new; into `dir` with `report.json` (the completion marker readers require) removed first
/// and written last when it exists (see [`crate::report::atomic::write_dir_atomic`]).
pub fn write_outputs(dir: &Path, r: &RunResult) -> Result<(), SaeError> {
    write_outputs_with(dir, r, None)
}

/// [`write_outputs`], recording the SHA-256 of the LLM behind an `llm` embedder (`model`: its
/// GGUF file or HF folder) in `cfg.json`; a MiniLM embedder's folder is hashed either way.
pub fn write_outputs_with(dir: &Path, r: &RunResult, model: Option<&Path>) -> Result<(), SaeError> {
    let model_files = match model {
        Some(p) => Some(saelens::model_file_hashes(p)?),
        None => None,
    };
    crate::report::atomic::write_dir_atomic(
        dir,
        "report.json",
        |e| SaeError::file(dir, e),
        |d| write_outputs_into(d, r, model_files.as_ref()),
    )
}

/// Refuses an output folder without `report.json`: the run that wrote it did not finish.
pub fn check_complete(dir: &Path) -> Result<(), SaeError> {
    if dir.join("report.json").is_file() {
        return Ok(());
    }
    Err(SaeError::file(
        dir,
        "incomplete `steerlab sae run` output folder (no report.json: the run that wrote it did \
         not finish, or this is not such a folder); run it again",
    ))
}

fn write_outputs_into(
    dir: &Path,
    r: &RunResult,
    model_files: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), SaeError> {
    let mut extra = serde_json::json!({
        "dataset": r.report.dataset,
        "seed": r.report.options.sae.seed,
        "include_prompt": r.report.options.include_prompt,
        "input": "e(A) - e(B) and its negation",
    });
    if let Some(h) = model_files {
        extra["model_files"] = serde_json::json!(h);
    }
    write_sae(dir, &r.sae, &r.report.embedder, extra)?;
    let path = dir.join("activations.safetensors");
    let ids = serde_json::to_string(&r.ids).map_err(|e| SaeError::file(&path, e))?;
    let meta = HashMap::from([
        ("pair_ids".to_string(), ids),
        (
            "rows".to_string(),
            "e(A) - e(B) (chosen - rejected for pair data), file order".to_string(),
        ),
    ]);
    let n = r.ids.len();
    let bytes = f32_safetensors(
        &[("activations", &r.activations, vec![n, r.sae.d_sae])],
        Some(meta),
    )
    .map_err(|e| SaeError::file(&path, e))?;
    w(&path, &bytes)?;
    let json = serde_json::to_string_pretty(&r.report).map_err(|e| SaeError::file(dir, e))?;
    w(
        &dir.join("report.md"),
        render_markdown(&r.report).as_bytes(),
    )?;
    w(&dir.join("report.html"), render_html(&r.report).as_bytes())?;
    if let Some(a) = &r.report.atlas {
        w(&dir.join("feature_map.svg"), atlas_map_svg(a).as_bytes())?;
        w(
            &dir.join("feature_clusters.svg"),
            atlas_clusters_svg(a).as_bytes(),
        )?;
    }
    // Last: the completion marker.
    w(&dir.join("report.json"), json.as_bytes())
}

/// Reads a whole output folder back (SAE, `report.json`, `activations.safetensors` with its
/// pair ids) as a [`RunResult`] without the embedding differences (`deltas` is empty).
pub fn read_outputs(dir: &Path) -> Result<RunResult, SaeError> {
    check_complete(dir)?;
    let sae = read_sae(dir)?;
    let rp = dir.join("report.json");
    let report: SaeReport =
        serde_json::from_str(&std::fs::read_to_string(&rp).map_err(|e| SaeError::file(&rp, e))?)
            .map_err(|e| SaeError::file(&rp, e))?;
    let path = dir.join("activations.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| SaeError::file(&path, e))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| SaeError::file(&path, e))?;
    let ids: Vec<String> = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("pair_ids"))
        .ok_or_else(|| SaeError::file(&path, "metadata: pair_ids missing"))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| SaeError::file(&path, format!("pair_ids: {e}")))
        })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| SaeError::file(&path, e))?;
    let t = st
        .tensor("activations")
        .map_err(|e| SaeError::file(&path, format!("activations: {e}")))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != [ids.len(), sae.d_sae] {
        return Err(SaeError::file(
            &path,
            format!(
                "activations: expected F32 [{}, {}], found {:?} {:?}",
                ids.len(),
                sae.d_sae,
                t.dtype(),
                t.shape()
            ),
        ));
    }
    let activations = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(RunResult {
        sae,
        deltas: Vec::new(),
        activations,
        ids,
        report,
    })
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| fmt_num(v, 3)).unwrap_or_else(|| "–".into())
}

fn summary_lines(r: &SaeReport) -> Vec<String> {
    let h = &r.history;
    let last = h.steps.last();
    vec![
        format!("Dataset: {} ({} pairs); embedder: {} (width {}).", r.dataset, r.n_pairs, r.embedder, r.d_in),
        format!(
            "SAE: M = {}, K = {}, prefixes {:?}, seed {}; {} epochs (kept epoch {}){}.",
            r.options.sae.latents,
            r.options.sae.k,
            r.options.sae.resolved_prefixes().unwrap_or_default(),
            r.options.sae.seed,
            h.epochs,
            h.best_epoch + 1,
            if h.cancelled { ", cancelled" } else { "" }
        ),
        format!(
            "Validation FVE {}, L0 {}; dead fraction at the end {}.",
            fmt_num(r.val_fve, 3),
            fmt_num(r.val_l0, 2),
            last.map(|s| fmt_num(s.dead_fraction, 3)).unwrap_or_default()
        ),
        format!(
            "Held-out AUC (n_train {}, n_test {}): length only {}, top-5 {}, top-10 {}, all features {}, dense probe {}.",
            r.auc.n_train,
            r.auc.n_test,
            opt(r.auc.length_only),
            opt(r.auc.top5),
            opt(r.auc.top10),
            opt(r.auc.all_features),
            opt(r.auc.dense_probe)
        ),
    ]
}

fn feature_table(r: &SaeReport) -> Table {
    let mut t = Table::new([
        "feature",
        "prevalence",
        "effect (log-odds/sd)",
        "95% CI",
        "p (Bonf.)",
        "lasso rank",
        "toward A",
        "toward B",
        "description",
        "fidelity r",
    ]);
    for f in &r.features {
        let rank = r
            .lasso_order
            .iter()
            .position(|&j| j == f.index)
            .map(|p| (p + 1).to_string())
            .unwrap_or("–".into());
        let (e, ci, p) = match &f.effect {
            Some(e) => (
                fmt_num(e.coef, 3),
                format!("[{}, {}]", fmt_num(e.ci95.0, 2), fmt_num(e.ci95.1, 2)),
                format!("{:.2e}", e.p_bonferroni),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let grams = |g: &[super::interpret::NGram]| {
            g.iter()
                .take(4)
                .map(|x| x.text.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.row([
            format!("{}", f.index),
            fmt_num(f.prevalence, 3),
            e,
            ci,
            p,
            rank,
            grams(&f.ngrams_toward),
            grams(&f.ngrams_away),
            f.description.clone().unwrap_or_default(),
            f.fidelity
                .as_ref()
                .map(|x| format!("{}{}", fmt_num(x.r, 2), if x.kept { " ✓" } else { "" }))
                .unwrap_or_default(),
        ]);
    }
    t
}

fn point_radius(prevalence: f64) -> f64 {
    3.0 + 14.0 * prevalence.clamp(0.0, 1.0).sqrt()
}

fn axis_labels(a: &Atlas) -> (String, String) {
    let rep = match a.config.representation {
        super::atlas::Representation::Decoder => "decoder directions",
        super::atlas::Representation::Activations => "activation profiles",
    };
    (
        format!(
            "PC 1 of the {rep} ({:.0}% of variance)",
            100.0 * a.explained[0]
        ),
        format!("PC 2 ({:.0}%)", 100.0 * a.explained[1]),
    )
}

/// The feature map as SVG: one point per feature, coloured by its effect on preference (red:
/// rewarded, blue: penalised, grey: no effect fitted), sized by how often it fires, outlined in
/// its cluster's colour.
pub fn atlas_map_svg(a: &Atlas) -> String {
    let max = a
        .points
        .iter()
        .filter_map(|p| p.effect.map(f64::abs))
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let (xl, yl) = axis_labels(a);
    scatter_plot(&ScatterPlot {
        title: "Feature map: colour = effect on preference, size = frequency".into(),
        points: a
            .points
            .iter()
            .map(|p| ScatterPoint {
                x: p.x,
                y: p.y,
                radius: point_radius(p.prevalence),
                fill: signed_color(p.effect.unwrap_or(f64::NAN), max),
                stroke: series_color(p.cluster).to_string(),
                text: format!("{}", p.index),
                title: format!(
                    "feature {}: {} | effect {} | fires on {:.1}% | cluster {}{}",
                    p.index,
                    p.label,
                    p.effect.map_or("n/a".into(), |e| format!("{e:+.3}")),
                    100.0 * p.prevalence,
                    p.cluster,
                    p.top_pair
                        .as_deref()
                        .map(|t| format!(" | top pair {t}"))
                        .unwrap_or_default()
                ),
            })
            .collect(),
        x_label: xl,
        y_label: yl,
        legend: vec![
            (
                signed_color(max, max),
                format!("rewarded (effect {:+.2})", max),
            ),
            (
                signed_color(-max, max),
                format!("penalised (effect {:+.2})", -max),
            ),
            (signed_color(f64::NAN, max), "no effect fitted".into()),
        ],
    })
}

/// The cluster view as SVG: the same map coloured by cluster, each cluster named in the legend.
pub fn atlas_clusters_svg(a: &Atlas) -> String {
    let (xl, yl) = axis_labels(a);
    scatter_plot(&ScatterPlot {
        title: format!("Feature clusters (k-means, K = {})", a.k),
        points: a
            .points
            .iter()
            .map(|p| ScatterPoint {
                x: p.x,
                y: p.y,
                radius: point_radius(p.prevalence),
                fill: series_color(p.cluster).to_string(),
                stroke: String::new(),
                text: format!("{}", p.index),
                title: format!("feature {}: {} | cluster {}", p.index, p.label, p.cluster),
            })
            .collect(),
        x_label: xl,
        y_label: yl,
        legend: a
            .clusters
            .iter()
            .map(|c| {
                (
                    series_color(c.id).to_string(),
                    format!("{}: {}", c.id, c.name.chars().take(60).collect::<String>()),
                )
            })
            .collect(),
    })
}

fn atlas_summary(a: &Atlas) -> String {
    let k = match a.config.clusters {
        crate::numeric::cluster::ClusterCount::Auto => format!(
            "K = {} chosen by silhouette over K = {}",
            a.k,
            a.k_scores
                .iter()
                .map(|(k, s)| format!("{k}: {}", fmt_num(*s, 3)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        crate::numeric::cluster::ClusterCount::Fixed(k) => format!("K = {k} (fixed)"),
    };
    format!(
        "PCA of the features' {} (linfa); the map's two axes hold {:.1}% of the variance; clusters by seeded k-means (seed {}) in the first {} components ({:.1}% of the variance); {k}; silhouette {}.",
        match a.config.representation {
            super::atlas::Representation::Decoder => "decoder directions",
            super::atlas::Representation::Activations => "activation profiles (unit norm)",
        },
        100.0 * (a.explained[0] + a.explained[1]),
        a.config.seed,
        a.components,
        100.0 * a.explained_kept,
        a.silhouette.map_or("n/a".into(), |s| fmt_num(s, 3))
    )
}

/// The clusters as a table: name, size, mean effect, members (top features first).
pub fn atlas_cluster_table(a: &Atlas) -> Table {
    let mut t = Table::new(["cluster", "name", "features", "mean effect", "members"]);
    for c in &a.clusters {
        t.row([
            c.id.to_string(),
            c.name.clone(),
            c.members.len().to_string(),
            c.mean_effect.map_or("–".into(), |e| fmt_num(e, 3)),
            c.members
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    t
}

/// The Markdown report.
pub fn render_markdown(r: &SaeReport) -> String {
    let mut md = Markdown::new("Feature discovery (WIMHF)");
    md.h2("Summary");
    for l in summary_lines(r) {
        md.p(&l);
    }
    md.h2("Features");
    md.table(&feature_table(r));
    if let Some(a) = &r.atlas {
        md.h2("Feature map and clusters");
        md.p(&atlas_summary(a));
        md.p("![Feature map](feature_map.svg)\n\n![Feature clusters](feature_clusters.svg)");
        md.table(&atlas_cluster_table(a));
    }
    for f in r
        .features
        .iter()
        .filter(|f| !f.top_pairs.is_empty())
        .take(r.features.len())
    {
        md.h3(&format!("Feature {}", f.index));
        let mut t = Table::new(["pair", "|act|", "A (feature side)", "B"]);
        for p in f.top_pairs.iter().take(3) {
            let clip = |s: &str| s.chars().take(160).collect::<String>().replace('\n', " ");
            t.row([
                p.id.clone(),
                fmt_num(p.activation, 3),
                clip(&p.a),
                clip(&p.b),
            ]);
        }
        md.table(&t);
    }
    if !r.groups.is_empty() {
        md.h2("Per-group weights");
        let mut t = Table::new(["column", "value", "n", "length", "top features (weight)"]);
        for g in &r.groups {
            let mut idx: Vec<usize> = (0..g.weights.len()).collect();
            idx.sort_by(|a, b| g.weights[*b].abs().total_cmp(&g.weights[*a].abs()));
            let top = idx
                .iter()
                .take(5)
                .map(|&j| format!("{j} ({})", fmt_num(g.weights[j], 2)))
                .collect::<Vec<_>>()
                .join(", ");
            t.row([
                g.column.clone(),
                g.value.clone(),
                g.n.to_string(),
                fmt_num(g.length, 2),
                top,
            ]);
        }
        md.table(&t);
    }
    md.finish()
}

/// The self-contained HTML report (inline SVG plots).
pub fn render_html(r: &SaeReport) -> String {
    let mut h = HtmlPage::new("Feature discovery (WIMHF)");
    h.h2("Summary");
    for l in summary_lines(r) {
        h.p(&l);
    }
    let series = |f: &dyn Fn(&super::model::StepMetrics) -> f64| -> Vec<(f64, f64)> {
        r.history
            .steps
            .iter()
            .map(|s| (s.step as f64, f(s)))
            .collect()
    };
    h.svg(&line_chart(&LineChart {
        title: "Training".into(),
        series: vec![
            ("loss".into(), series(&|s| s.loss)),
            ("FVE".into(), series(&|s| s.fve)),
            ("dead fraction".into(), series(&|s| s.dead_fraction)),
        ],
        x_label: "step".into(),
        y_label: "value".into(),
    }));
    let with_effect: Vec<_> = r
        .features
        .iter()
        .filter_map(|f| f.effect.as_ref().map(|e| (f.index, e.coef)))
        .collect();
    if !with_effect.is_empty() {
        h.svg(&bar_chart(&BarChart {
            title: "Effect on preference (controlling for length)".into(),
            labels: with_effect
                .iter()
                .map(|(j, _)| format!("feature {j}"))
                .collect(),
            values: with_effect.iter().map(|(_, c)| *c).collect(),
            x_label: "log-odds per sd".into(),
        }));
    }
    if let Some(a) = &r.atlas {
        h.h2("Feature map and clusters");
        h.p(&atlas_summary(a));
        h.svg(&atlas_map_svg(a));
        h.svg(&atlas_clusters_svg(a));
        h.table(&atlas_cluster_table(a));
    }
    h.h2("Features");
    h.table(&feature_table(r));
    for f in r.features.iter().filter(|f| !f.top_pairs.is_empty()) {
        h.h3(&format!("Feature {}", f.index));
        let mut t = Table::new(["pair", "|act|", "A (feature side)", "B"]);
        for p in f.top_pairs.iter().take(3) {
            let clip = |s: &str| s.chars().take(300).collect::<String>();
            t.row([
                p.id.clone(),
                fmt_num(p.activation, 3),
                clip(&p.a),
                clip(&p.b),
            ]);
        }
        h.table(&t);
    }
    h.finish()
}
