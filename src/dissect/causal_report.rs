//! Pages of the causal dissection: the per-factor table (Markdown/HTML), the scatter of
//! correlational against interventional effects with 95% interval bars (SVG), and the set
//! `report.json`, `report.md`, `report.html`, `effects.svg` written atomically as one set.
use super::causal::{CausalReport, Effect};
use crate::report::svg::ticks;
use crate::report::{escape_html, fmt_num, HtmlPage, Markdown, ReportError, Table};
use std::fmt::Write as _;
use std::path::Path;

fn interval(e: &Effect) -> String {
    format!(
        "{} [{}, {}]",
        fmt_num(e.mean, 2),
        fmt_num(e.lo95, 2),
        fmt_num(e.hi95, 2)
    )
}

/// The per-factor table: correlational and interventional effects with 95% intervals,
/// steerability, the factors that moved along, and `≠` where the two signs differ.
pub fn table(r: &CausalReport) -> Table {
    let planted = r.factors.iter().any(|f| f.planted_weight.is_some());
    let mut h = vec!["factor"];
    if planted {
        h.push("planted weight");
    }
    h.extend([
        "correlational (95%)",
        "steerability",
        "steerable",
        "interventional (95%)",
        "sign",
        "moved with",
    ]);
    let mut t = Table::new(h);
    for f in &r.factors {
        let mut row = vec![f.name.clone()];
        if planted {
            row.push(f.planted_weight.map(|w| fmt_num(w, 2)).unwrap_or_default());
        }
        row.extend([
            interval(&f.correlational),
            fmt_num(f.steerability, 3),
            if f.steerable { "yes" } else { "no" }.to_string(),
            f.interventional
                .as_ref()
                .map(interval)
                .unwrap_or_else(|| "—".into()),
            if f.sign_differs { "≠ differs" } else { "" }.to_string(),
            f.moved_with.join(", "),
        ]);
        t.row(row);
    }
    t
}

/// Scatter of correlational (x) against interventional (y) effect means of the steerable
/// factors, with 95% interval bars on both axes and the factor names as labels.
pub fn effects_svg(r: &CausalReport) -> String {
    let pts: Vec<(&str, Effect, Effect, bool)> = r
        .factors
        .iter()
        .filter_map(|f| {
            Some((
                f.name.as_str(),
                f.correlational,
                f.interventional?,
                f.sign_differs,
            ))
        })
        .collect();
    let (left, top, w, h) = (60.0, 34.0, 520.0, 360.0);
    let (width, height) = (left + w + 30.0, top + h + 50.0);
    let span = |get: &dyn Fn(&Effect) -> (f64, f64), which: usize| {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for p in &pts {
            let e = if which == 0 { &p.1 } else { &p.2 };
            let (a, b) = get(e);
            lo = lo.min(a);
            hi = hi.max(b);
        }
        if hi - lo < 1e-9 {
            (lo - 1.0, hi + 1.0)
        } else {
            let pad = 0.08 * (hi - lo);
            (lo - pad, hi + pad)
        }
    };
    let iv = |e: &Effect| (e.lo95, e.hi95);
    let (x0, x1) = span(&iv, 0);
    let (y0, y1) = span(&iv, 1);
    let sx = |v: f64| left + (v - x0) / (x1 - x0) * w;
    let sy = |v: f64| top + h - (v - y0) / (y1 - y0) * h;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{left}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">Correlational vs interventional effect (95% intervals; red: signs differ)</text>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#ccc\"/>"
    );
    for t in ticks(x0, x1, 6) {
        let x = sx(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + h,
            top + h + 14.0,
            fmt_num(t, 2)
        );
    }
    for t in ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + w,
            left - 4.0,
            y + 4.0,
            fmt_num(t, 2)
        );
    }
    if x0 < 0.0 && x1 > 0.0 {
        let x = sx(0.0);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            top + h
        );
    }
    if y0 < 0.0 && y1 > 0.0 {
        let y = sy(0.0);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#999\"/>",
            left + w
        );
    }
    for (name, c, i, differs) in &pts {
        let col = if *differs { "#d62728" } else { "#1f77b4" };
        let (x, y) = (sx(c.mean), sy(i.mean));
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{col}\"/>\
             <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{col}\"/>\
             <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{col}\"><title>{}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            sx(c.lo95),
            sx(c.hi95),
            sy(i.lo95),
            sy(i.hi95),
            escape_html(name),
            x + 6.0,
            y - 6.0,
            escape_html(name)
        );
    }
    if pts.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no steerable factor: nothing to plot</text>",
            left + w / 2.0,
            top + h / 2.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">correlational weight (observational fit)</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">interventional effect on the judge</text></svg>",
        left + w / 2.0,
        top + h + 34.0,
        top + h / 2.0
    );
    s
}

fn summary(r: &CausalReport) -> Vec<String> {
    let mut p = vec![format!(
        "Judge `{}`, multiplier ±{}, steerability threshold {}.",
        r.judge, r.multiplier, r.threshold
    )];
    if let Some(s) = r.spearman_planted {
        p.push(format!(
            "Spearman(planted weight, interventional effect) over the steerable factors: {}.",
            fmt_num(s, 3)
        ));
    }
    let unmoved: Vec<&str> = r
        .factors
        .iter()
        .filter(|f| !f.steerable)
        .map(|f| f.name.as_str())
        .collect();
    if !unmoved.is_empty() {
        p.push(format!("Not steerable: {}.", unmoved.join(", ")));
    }
    p.extend(r.notes.iter().cloned());
    p
}

/// The Markdown page.
pub fn markdown(r: &CausalReport) -> String {
    let mut m = Markdown::new("Causal preference dissection");
    for s in summary(r) {
        m.p(&s);
    }
    m.table(&table(r));
    m.p("Steerability: change of the factor per unit multiplier, in standard deviations of the factor over the pairs data. Interventional effect: weight of the factor in a logistic fit of the judge's choices between steered and unsteered answers. `≠`: correlational and interventional signs differ. The figure is effects.svg.");
    m.finish()
}

/// The self-contained HTML page (table and inline scatter).
pub fn html(r: &CausalReport) -> String {
    let mut h = HtmlPage::new("Causal preference dissection");
    for s in summary(r) {
        h.p(&s);
    }
    h.table(&table(r));
    h.svg(&effects_svg(r));
    h.finish()
}

/// Writes `dir/report.json`, `report.md`, `report.html` and `effects.svg` as one atomic set.
pub fn write_report(dir: &Path, r: &CausalReport) -> Result<(), ReportError> {
    let json = serde_json::to_string_pretty(r).map_err(|e| ReportError::Json {
        path: dir.join("report.json"),
        source: e,
    })?;
    let paths = ["report.json", "report.md", "report.html", "effects.svg"].map(|n| dir.join(n));
    let bodies = [json, markdown(r), html(r), effects_svg(r)];
    let files = paths
        .iter()
        .zip(bodies)
        .map(|(p, b)| {
            let fill: crate::report::atomic::SetFill<'_> =
                Box::new(move |w: &mut dyn std::io::Write| w.write_all(b.as_bytes()));
            (p.as_path(), fill)
        })
        .collect();
    crate::report::atomic::write_set(files).map_err(|(i, e)| ReportError::Io {
        path: paths[i].clone(),
        source: e,
    })
}
