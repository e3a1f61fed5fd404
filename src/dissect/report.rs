//! Renders a [`DissectResult`] as `report.json`, `report.md` and a self-contained
//! `report.html` (forest plot per group, probability-preferred table, similarity and agreement
//! heatmaps, factor definitions), using the generic writers in `crate::report`.
//!
//! Only formatting and atomic writes; no fitting.
use super::fit::{DissectResult, Sampler, Waterfall};
use crate::report::svg::{
    bar_chart, forest_plot, heatmap, scatter_plot, series_color, BarChart, ForestPlot, ForestPoint,
    Heatmap, ScatterPlot, ScatterPoint,
};
use crate::report::{fmt_num, write_atomic, write_json, HtmlPage, Markdown, ReportError, Table};
use std::path::{Path, PathBuf};

fn settings_line(r: &DissectResult) -> String {
    let c = &r.settings.config;
    let sampler = match c.sampler {
        Sampler::Nuts => format!(
            "NUTS ({} warm-up, {} draws x {} chains)",
            c.nuts.warmup, c.nuts.draws, c.nuts.chains
        ),
        Sampler::Laplace => "MAP + Laplace approximation".to_string(),
    };
    format!(
        "Bayesian logistic regression without intercept, Laplace(0, {}) prior; {sampler}; {} fold(s); seed {}. \
         {} records, {} ties dropped{}.",
        c.prior_scale,
        c.folds.max(1),
        c.seed,
        r.settings.n_records,
        r.settings.n_ties,
        if r.settings.orientation_randomised { "; A/B order randomised (all labels were A)" } else { "" }
    )
}

fn group_table(r: &DissectResult, gi: usize) -> Table {
    let g = &r.groups[gi];
    let nuts = g.factors.iter().any(|f| f.rhat.is_some());
    let mut headers = vec![
        "factor",
        "pairs A≠B",
        "mean",
        "sd",
        "lo95",
        "hi95",
        "P(w>0)",
        "prob. preferred %",
    ];
    if nuts {
        headers.extend(["R-hat", "ESS"]);
    }
    let mut t = Table::new(headers);
    for f in &g.factors {
        let mut row = vec![
            f.label.clone(),
            f.n_nonzero.to_string(),
            fmt_num(f.mean, 3),
            fmt_num(f.sd, 3),
            fmt_num(f.lo95, 3),
            fmt_num(f.hi95, 3),
            fmt_num(f.prob_positive, 3),
            fmt_num(f.prob_preferred, 1),
        ];
        if nuts {
            row.push(fmt_num(f.rhat.unwrap_or(f64::NAN), 3));
            row.push(fmt_num(f.ess.unwrap_or(f64::NAN), 0));
        }
        t.row(row);
    }
    t
}

fn group_summary(r: &DissectResult, gi: usize) -> String {
    let g = &r.groups[gi];
    let mut s = format!(
        "{} pairs ({} ties dropped); A preferred in {:.1}%; in-sample accuracy of the posterior-mean model {:.1}%.",
        g.n_pairs,
        g.n_ties,
        100.0 * g.frac_a_preferred,
        100.0 * g.accuracy
    );
    if let Some(st) = &g.sampler_stats {
        s.push_str(&format!(
            " NUTS: {} divergent transitions, mean acceptance {:.2}, mean {:.1} leapfrog steps, step size {:.3}.",
            st.divergences, st.mean_accept, st.mean_leapfrog, st.step_size
        ));
    }
    s
}

fn definitions_table(r: &DissectResult) -> Table {
    let mut t = Table::new(["factor", "source", "kind", "encoding", "definition"]);
    for f in &r.factor_definitions {
        t.row([
            if f.label == f.name {
                f.name.clone()
            } else {
                format!("{} ({})", f.label, f.name)
            },
            f.source.clone(),
            format!("{:?}", f.kind).to_lowercase(),
            match f.diff_scale {
                Some(sc) => format!("{} (rms = {})", f.encoding, fmt_num(sc, 4)),
                None => f.encoding.clone(),
            },
            f.definition.clone(),
        ]);
    }
    t
}

fn matrix_table(labels: &[String], m: &[Vec<f64>]) -> Table {
    let mut t = Table::new(std::iter::once(String::new()).chain(labels.iter().cloned()));
    for (l, row) in labels.iter().zip(m) {
        t.row(std::iter::once(l.clone()).chain(row.iter().map(|v| fmt_num(*v, 2))));
    }
    t
}

fn grouping_line(r: &DissectResult) -> Option<String> {
    let g = r.annotator_grouping.as_ref()?;
    let grouped = g.annotators.iter().filter(|a| a.group.is_some()).count();
    let how = if g.bic.is_empty() {
        format!("K = {} (asked for)", g.k)
    } else {
        format!(
            "K = {} chosen by BIC (k-means partition as a spherical Gaussian mixture, groups of at least 2 annotators; lower is better: {})",
            g.k,
            g.bic
                .iter()
                .map(|(k, b)| format!("K={k}: {}", fmt_num(*b, 1)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(format!(
        "Annotator groups by column `{}`: {grouped} of {} annotators with at least {} pairs were clustered (seeded k-means, seed {}) on their own MAP + Laplace weights, each factor divided by its median posterior sd; {how}; silhouette {}. Each group and the pooled set of those annotators were then refitted with the settings above{}.",
        g.config.column,
        g.annotators.len(),
        g.config.min_pairs,
        g.config.seed,
        g.silhouette.map_or("n/a".into(), |s| fmt_num(s, 3)),
        if g.pairs_without_annotator > 0 {
            format!("; {} pairs had no annotator", g.pairs_without_annotator)
        } else {
            String::new()
        }
    ))
}

fn members_table(r: &DissectResult) -> Table {
    let mut t = Table::new(["group", "annotators", "pairs", "accuracy", "members"]);
    let fits = r.annotator_grouping.as_ref().map(|g| &g.fits);
    for (gi, g) in r.annotator_groups.iter().enumerate() {
        let fit = fits.and_then(|f| f.get(gi));
        t.row([
            g.group.to_string(),
            g.members.len().to_string(),
            fit.map_or("–".into(), |f| f.n_pairs.to_string()),
            fit.map_or("–".into(), |f| fmt_num(100.0 * f.accuracy, 1) + "%"),
            g.members.join(", "),
        ]);
    }
    t
}

fn group_weights_table(r: &DissectResult) -> Table {
    let pooled = r.annotator_grouping.as_ref().map(|g| &g.pooled);
    let mut headers = vec!["factor".to_string()];
    if pooled.is_some() {
        headers.push("pooled".into());
    }
    headers.extend(
        r.annotator_groups
            .iter()
            .map(|g| format!("group {}", g.group)),
    );
    let mut t = Table::new(headers);
    let cell = |m: f64, lo: f64, hi: f64| {
        let mark = if lo > 0.0 || hi < 0.0 { " *" } else { "" };
        format!(
            "{} [{}, {}]{mark}",
            fmt_num(m, 2),
            fmt_num(lo, 2),
            fmt_num(hi, 2)
        )
    };
    for (j, f) in r.factor_definitions.iter().enumerate() {
        let mut row = vec![f.label.clone()];
        if let Some(p) = pooled {
            if let Some(e) = p.factors.get(j) {
                row.push(cell(e.mean, e.lo95, e.hi95));
            }
        }
        for g in &r.annotator_groups {
            row.push(
                g.factors
                    .get(j)
                    .map_or("–".into(), |e| cell(e.mean, e.lo95, e.hi95)),
            );
        }
        t.row(row);
    }
    t
}

/// The annotator groups' weights against the pooled fit, as a forest plot (pooled first).
pub fn groups_forest_svg(r: &DissectResult) -> String {
    let mut series = Vec::new();
    let mut points = Vec::new();
    if let Some(p) = r.annotator_grouping.as_ref().map(|g| &g.pooled) {
        series.push("pooled".to_string());
        for (fi, f) in p.factors.iter().enumerate() {
            points.push(ForestPoint {
                row: fi,
                series: 0,
                mid: f.mean,
                lo: f.lo95,
                hi: f.hi95,
            });
        }
    }
    for g in &r.annotator_groups {
        let si = series.len();
        series.push(format!(
            "group {} ({} annotators)",
            g.group,
            g.members.len()
        ));
        for (fi, f) in g.factors.iter().enumerate() {
            points.push(ForestPoint {
                row: fi,
                series: si,
                mid: f.mean,
                lo: f.lo95,
                hi: f.hi95,
            });
        }
    }
    forest_plot(&ForestPlot {
        title: "Annotator groups versus the pooled fit: posterior mean and 95% interval".into(),
        rows: r
            .factor_definitions
            .iter()
            .map(|f| f.label.clone())
            .collect(),
        series,
        points,
        x_label: "weight (log-odds that the response with more of the factor is preferred)".into(),
        reference: Some(0.0),
    })
}

/// Each grouped annotator on the first two principal components of its own (scaled) weights,
/// coloured by group (the pooled fit is series 0 in the forest plot, so groups start at 1).
pub fn annotator_map_svg(r: &DissectResult) -> Option<String> {
    let g = r.annotator_grouping.as_ref()?;
    let points: Vec<ScatterPoint> = g
        .annotators
        .iter()
        .filter_map(|a| {
            let (grp, m) = (a.group?, a.map?);
            Some(ScatterPoint {
                x: m[0],
                y: m[1],
                radius: 3.0 + (a.n_pairs as f64).sqrt().min(25.0) / 2.5,
                fill: series_color(grp + 1).to_string(),
                stroke: String::new(),
                text: String::new(),
                title: format!("{}: group {grp}, {} pairs", a.id, a.n_pairs),
            })
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    Some(scatter_plot(&ScatterPlot {
        title: "Annotators by their own weights (PCA), coloured by group".into(),
        points,
        x_label: "PC 1 of the scaled annotator weights".into(),
        y_label: "PC 2".into(),
        legend: r
            .annotator_groups
            .iter()
            .map(|gr| {
                (
                    series_color(gr.group + 1).to_string(),
                    format!("group {} ({} annotators)", gr.group, gr.members.len()),
                )
            })
            .collect(),
    }))
}

/// The Markdown report.
pub fn to_markdown(r: &DissectResult) -> String {
    let mut md = Markdown::new("Preference dissection");
    md.p(&settings_line(r));
    md.p("Weights are log-odds per unit of the factor feature (sign or standardised difference of A versus B); \
          \"prob. preferred\" is GAIR's 100·σ(mean): the chance a response with more of the factor wins, all else equal.");
    for gi in 0..r.groups.len() {
        md.h2(&format!("Group: {}", r.groups[gi].label));
        md.p(&group_summary(r, gi));
        md.table(&group_table(r, gi));
    }
    if r.groups.len() > 1 {
        md.h2("Similarity of weight vectors (Pearson)");
        md.table(&matrix_table(&r.similarity.labels, &r.similarity.pearson));
        md.h2("Similarity of weight vectors (Spearman)");
        md.table(&matrix_table(&r.similarity.labels, &r.similarity.spearman));
        md.h2("Agreement of factor rankings (Kendall τ-b)");
        md.table(&matrix_table(&r.agreement.labels, &r.agreement.kendall_tau));
        for p in &r.agreement.pairs {
            if !p.opposite_sign_factors.is_empty() {
                md.p(&format!(
                    "{} vs {}: opposite, credible signs for {}.",
                    p.a,
                    p.b,
                    p.opposite_sign_factors.join(", ")
                ));
            }
        }
    }
    if let Some(line) = grouping_line(r) {
        md.h2("Annotator groups");
        md.p(&line);
        md.p("![Annotator groups versus the pooled fit](annotator_groups.svg)\n\n![Annotators by their own weights](annotators.svg)");
        md.table(&members_table(r));
        md.p("Weights per group next to the pooled fit: mean [95% interval]; * marks an interval that excludes 0.");
        md.table(&group_weights_table(r));
    }
    md.h2("Factor definitions");
    md.table(&definitions_table(r));
    if !r.settings.dropped_factors.is_empty() {
        md.p(&format!(
            "Dropped (equal for A and B in every pair): {}.",
            r.settings.dropped_factors.join(", ")
        ));
    }
    md.finish()
}

/// The forest plot of every group's posterior means and 95% intervals.
pub fn forest_svg(r: &DissectResult) -> String {
    let rows: Vec<String> = r
        .factor_definitions
        .iter()
        .map(|f| f.label.clone())
        .collect();
    let mut points = Vec::new();
    for (gi, g) in r.groups.iter().enumerate() {
        for (fi, f) in g.factors.iter().enumerate() {
            points.push(ForestPoint {
                row: fi,
                series: gi,
                mid: f.mean,
                lo: f.lo95,
                hi: f.hi95,
            });
        }
    }
    forest_plot(&ForestPlot {
        title: "Factor weights: posterior mean and 95% interval".into(),
        rows,
        series: r.groups.iter().map(|g| g.label.clone()).collect(),
        points,
        x_label: "weight (log-odds that the response with more of the factor is preferred)".into(),
        reference: Some(0.0),
    })
}

/// The self-contained HTML report.
pub fn to_html(r: &DissectResult) -> String {
    let mut page = HtmlPage::new("Preference dissection");
    page.p(&settings_line(r));
    page.svg(&forest_svg(r));
    for gi in 0..r.groups.len() {
        page.h2(&format!("Group: {}", r.groups[gi].label));
        page.p(&group_summary(r, gi));
        page.table(&group_table(r, gi));
    }
    if r.groups.len() > 1 {
        page.h2("Between groups");
        page.svg(&heatmap(&Heatmap {
            title: "Similarity of weight vectors (Pearson)".into(),
            rows: r.similarity.labels.clone(),
            cols: r.similarity.labels.clone(),
            values: r.similarity.pearson.clone(),
            min: -1.0,
            max: 1.0,
        }));
        page.svg(&heatmap(&Heatmap {
            title: "Similarity of weight vectors (Spearman)".into(),
            rows: r.similarity.labels.clone(),
            cols: r.similarity.labels.clone(),
            values: r.similarity.spearman.clone(),
            min: -1.0,
            max: 1.0,
        }));
        page.svg(&heatmap(&Heatmap {
            title: "Agreement of factor rankings (Kendall τ-b)".into(),
            rows: r.agreement.labels.clone(),
            cols: r.agreement.labels.clone(),
            values: r.agreement.kendall_tau.clone(),
            min: -1.0,
            max: 1.0,
        }));
    }
    if let Some(line) = grouping_line(r) {
        page.h2("Annotator groups");
        page.p(&line);
        page.svg(&groups_forest_svg(r));
        if let Some(svg) = annotator_map_svg(r) {
            page.svg(&svg);
        }
        page.table(&members_table(r));
        page.p("Weights per group next to the pooled fit: mean [95% interval]; * marks an interval that excludes 0.");
        page.table(&group_weights_table(r));
    }
    page.h2("Factor definitions");
    page.table(&definitions_table(r));
    page.finish()
}

/// A waterfall (contribution breakdown) as an SVG bar chart.
pub fn waterfall_svg(w: &Waterfall) -> String {
    let mut labels: Vec<String> = w
        .steps
        .iter()
        .map(|s| format!("{} (x={})", s.label, fmt_num(s.x, 2)))
        .collect();
    let mut values: Vec<f64> = w.steps.iter().map(|s| s.contribution).collect();
    labels.push("total logit".into());
    values.push(w.logit);
    bar_chart(&BarChart {
        title: format!(
            "Pair {}: P(A preferred) = {:.2} (observed: {})",
            w.pair_id,
            w.prob_a,
            if w.a_preferred { "A" } else { "B" }
        ),
        labels,
        values,
        x_label: format!("contribution w·x to the logit ({} weights)", w.group),
    })
}

/// Writes `report.json`, `report.md` and `report.html` (with annotator groups also
/// `annotator_groups.svg` and `annotators.svg`) into `dir`, each atomically: a new `dir`
/// is filled under a temporary name and renamed into place; in an existing one `report.json`
/// (the completion marker) is removed first and written last. Returns the three paths.
pub fn write_reports(dir: &Path, r: &DissectResult) -> Result<Vec<PathBuf>, ReportError> {
    let names = ["report.json", "report.md", "report.html"];
    crate::report::atomic::write_dir_atomic(
        dir,
        names[0],
        |e| ReportError::Io {
            path: dir.to_path_buf(),
            source: e,
        },
        |d| {
            write_atomic(&d.join(names[1]), to_markdown(r).as_bytes())?;
            write_atomic(&d.join(names[2]), to_html(r).as_bytes())?;
            if !r.annotator_groups.is_empty() {
                write_atomic(
                    &d.join("annotator_groups.svg"),
                    groups_forest_svg(r).as_bytes(),
                )?;
                if let Some(svg) = annotator_map_svg(r) {
                    write_atomic(&d.join("annotators.svg"), svg.as_bytes())?;
                }
            }
            write_json(&d.join(names[0]), r)
        },
    )?;
    let mut paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if !r.annotator_groups.is_empty() {
        paths.push(dir.join("annotator_groups.svg"));
        if dir.join("annotators.svg").is_file() {
            paths.push(dir.join("annotators.svg"));
        }
    }
    Ok(paths)
}
