//! Renders a [`DissectResult`] as `report.json`, `report.md` and a self-contained
//! `report.html` (forest plot per group, probability-preferred table, similarity and agreement
//! heatmaps, factor definitions), using the generic writers in `crate::report`.
//!
//! Only formatting and atomic writes; no fitting.
use super::fit::{DissectResult, Sampler, Waterfall};
use crate::report::svg::{
    bar_chart, forest_plot, heatmap, BarChart, ForestPlot, ForestPoint, Heatmap,
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

/// Writes `report.json`, `report.md` and `report.html` into `dir`, each atomically: a new `dir`
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
            write_json(&d.join(names[0]), r)
        },
    )?;
    Ok(names.iter().map(|n| dir.join(n)).collect())
}
