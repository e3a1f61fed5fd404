//! Inline SVG charts as strings: forest plot (points with intervals, several series per row),
//! heatmap (diverging colours, values printed), horizontal signed bar chart, line chart,
//! scatter plot (coloured, sized points: the feature map).
//!
//! Pure string builders with fixed layout rules; no external fonts or assets. Non-finite
//! values are skipped (or drawn as grey cells in heatmaps).
use super::escape_html;
use std::fmt::Write;

/// Colours for series (colour-blind-friendly Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// "Nice" tick values covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() as i64;
    let end = (hi / step).floor() as i64;
    (start..=end)
        .map(|k| k as f64 * step)
        .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
        .collect()
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// One estimate with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestPoint {
    /// Row index (factor).
    pub row: usize,
    /// Series index (group).
    pub series: usize,
    /// Point estimate.
    pub mid: f64,
    /// Interval lower end.
    pub lo: f64,
    /// Interval upper end.
    pub hi: f64,
}

/// A forest plot: rows of labelled estimates with intervals, one colour per series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForestPlot {
    /// Title above the plot.
    pub title: String,
    /// Row labels, top to bottom.
    pub rows: Vec<String>,
    /// Series names (legend).
    pub series: Vec<String>,
    /// The estimates.
    pub points: Vec<ForestPoint>,
    /// x-axis label.
    pub x_label: String,
    /// A vertical reference line (e.g. 0).
    pub reference: Option<f64>,
}

/// Renders a forest plot.
pub fn forest_plot(fp: &ForestPlot) -> String {
    let ns = fp.series.len().max(1);
    let row_h = (10.0 * ns as f64 + 8.0).max(20.0);
    let left = 10.0
        + 7.0
            * fp.rows
                .iter()
                .map(|r| r.chars().count())
                .max()
                .unwrap_or(4)
                .min(40) as f64;
    let plot_w = 520.0;
    // legend items flow left to right and wrap at the plot width
    let mut legend_pos = Vec::new();
    let (mut lx, mut ly) = (0.0f64, 0usize);
    if fp.series.len() > 1 {
        for name in &fp.series {
            let w = 20.0 + 6.5 * name.chars().count() as f64;
            if lx > 0.0 && lx + w > plot_w {
                lx = 0.0;
                ly += 1;
            }
            legend_pos.push((lx, ly));
            lx += w + 10.0;
        }
    }
    let legend_h = if legend_pos.is_empty() {
        0.0
    } else {
        18.0 * (ly + 1) as f64
    };
    let top = 30.0 + legend_h;
    let height = top + row_h * fp.rows.len() as f64 + 45.0;
    let width = left + plot_w + 30.0;
    let finite: Vec<f64> = fp
        .points
        .iter()
        .flat_map(|p| [p.lo, p.hi, p.mid])
        .filter(|v| v.is_finite())
        .chain(fp.reference)
        .collect();
    let (mut lo, mut hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    }
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 0.05 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    let sx = |v: f64| left + (v - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"{left:.1}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape_html(&fp.title)
    );
    if fp.series.len() > 1 {
        for (i, name) in fp.series.iter().enumerate() {
            let x = left + legend_pos[i].0;
            let y = 30.0 + legend_pos[i].1 as f64 * 18.0;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x,
                y - 4.0,
                color(i),
                x + 8.0,
                y,
                escape_html(name)
            );
        }
    }
    let bottom = top + row_h * fp.rows.len() as f64;
    for t in ticks(lo, hi, 6) {
        let x = sx(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            fmt_tick(t)
        );
    }
    if let Some(r) = fp.reference {
        let x = sx(r);
        let _ = write!(s, "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>");
    }
    for (i, r) in fp.rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        if i % 2 == 0 {
            let _ = write!(
                s,
                "<rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{plot_w:.1}\" height=\"{row_h:.1}\" fill=\"#000\" fill-opacity=\"0.03\"/>",
                y - row_h / 2.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            escape_html(r)
        );
    }
    for p in &fp.points {
        if !(p.mid.is_finite() && p.lo.is_finite() && p.hi.is_finite()) || p.row >= fp.rows.len() {
            continue;
        }
        let off = if ns > 1 {
            (p.series as f64 - (ns as f64 - 1.0) / 2.0) * 10.0
        } else {
            0.0
        };
        let y = top + row_h * (p.row as f64 + 0.5) + off;
        let c = color(p.series);
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"/><circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{c}\"><title>{}: {:.3} [{:.3}, {:.3}]</title></circle>",
            sx(p.lo),
            sx(p.hi),
            sx(p.mid),
            escape_html(fp.series.get(p.series).map(String::as_str).unwrap_or("")),
            p.mid,
            p.lo,
            p.hi
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></svg>",
        left + plot_w / 2.0,
        bottom + 32.0,
        escape_html(&fp.x_label)
    );
    s
}

/// A heatmap with a diverging colour scale.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// Values, `values[r][c]`.
    pub values: Vec<Vec<f64>>,
    /// Value mapped to full blue.
    pub min: f64,
    /// Value mapped to full red (midpoint is white).
    pub max: f64,
}

fn diverging(v: f64, min: f64, max: f64) -> String {
    if !v.is_finite() {
        return "#cccccc".into();
    }
    let mid = 0.5 * (min + max);
    let t = ((v - mid) / (0.5 * (max - min)).max(1e-12)).clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 {
        (255.0, 255.0 - 170.0 * t, 255.0 - 190.0 * t)
    } else {
        (255.0 + 190.0 * t, 255.0 + 120.0 * t, 255.0)
    };
    format!("#{:02x}{:02x}{:02x}", r as u8, g as u8, b as u8)
}

/// Renders a heatmap with the value printed in each cell.
pub fn heatmap(h: &Heatmap) -> String {
    let cell = 46.0;
    let left = 12.0
        + 7.0
            * h.rows
                .iter()
                .map(|r| r.chars().count())
                .max()
                .unwrap_or(4)
                .min(40) as f64;
    let longest_col = h
        .cols
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(4)
        .min(40);
    // rotated column labels reach up and to the right by about 5 px per character
    let col_text = 5.0 * longest_col as f64;
    let top = 40.0 + col_text;
    let width = left + cell * h.cols.len() as f64 + 20.0 + col_text;
    let height = top + cell * h.rows.len() as f64 + 20.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape_html(&h.title)
    );
    for (c, name) in h.cols.iter().enumerate() {
        let x = left + cell * (c as f64 + 0.5);
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" transform=\"rotate(-45 {x:.1} {:.1})\">{}</text>",
            top - 6.0,
            top - 6.0,
            escape_html(name)
        );
    }
    for (r, name) in h.rows.iter().enumerate() {
        let y = top + cell * r as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + cell / 2.0 + 4.0,
            escape_html(name)
        );
        for c in 0..h.cols.len() {
            let v = h
                .values
                .get(r)
                .and_then(|row| row.get(c))
                .copied()
                .unwrap_or(f64::NAN);
            let x = left + cell * c as f64;
            let label = if v.is_finite() {
                format!("{v:.2}")
            } else {
                "n/a".into()
            };
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"#fff\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                diverging(v, h.min, h.max),
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A horizontal bar chart of signed values (e.g. a contribution waterfall).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// Bar labels, top to bottom.
    pub labels: Vec<String>,
    /// Bar values (positive bars go right, blue; negative left, orange).
    pub values: Vec<f64>,
    /// x-axis label.
    pub x_label: String,
}

/// Renders a horizontal signed bar chart with a zero line.
pub fn bar_chart(b: &BarChart) -> String {
    let row_h = 20.0;
    let left = 10.0
        + 7.0
            * b.labels
                .iter()
                .map(|r| r.chars().count())
                .max()
                .unwrap_or(4)
                .min(40) as f64;
    let plot_w = 420.0;
    let top = 28.0;
    let bottom = top + row_h * b.labels.len() as f64;
    let width = left + plot_w + 70.0;
    let height = bottom + 40.0;
    let m = b
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |a, v| a.max(v.abs()))
        .max(1e-9);
    let (lo, hi) = (-m * 1.05, m * 1.05);
    let sx = |v: f64| left + (v - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"{left:.1}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape_html(&b.title)
    );
    for t in ticks(lo, hi, 6) {
        let x = sx(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            fmt_tick(t)
        );
    }
    for (i, (l, v)) in b.labels.iter().zip(&b.values).enumerate() {
        let y = top + row_h * i as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            escape_html(l)
        );
        if !v.is_finite() {
            continue;
        }
        let (x0, x1) = (sx(0.0_f64.min(*v)), sx(0.0_f64.max(*v)));
        let c = if *v >= 0.0 { PALETTE[0] } else { PALETTE[1] };
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{v:.3}</text>",
            y + 3.0,
            (x1 - x0).max(0.5),
            row_h - 6.0,
            sx(m * 1.05) + 4.0,
            y + 14.0
        );
    }
    let z = sx(0.0);
    let _ = write!(
        s,
        "<line x1=\"{z:.1}\" y1=\"{top:.1}\" x2=\"{z:.1}\" y2=\"{bottom:.1}\" stroke=\"#444\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></svg>",
        left + plot_w / 2.0,
        bottom + 32.0,
        escape_html(&b.x_label)
    );
    s
}

/// A line chart of one or more (x, y) series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// Named series of points.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
}

/// Renders a line chart with axes, ticks and a legend.
pub fn line_chart(lc: &LineChart) -> String {
    let (left, top, plot_w, plot_h) = (60.0, 40.0, 520.0, 260.0);
    let width = left + plot_w + 150.0;
    let height = top + plot_h + 50.0;
    let pts: Vec<(f64, f64)> = lc
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let ext = |f: fn(&(f64, f64)) -> f64| {
        let (a, b) = pts
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !a.is_finite() {
            (0.0, 1.0)
        } else if b - a < 1e-12 {
            (a - 1.0, b + 1.0)
        } else {
            (a, b)
        }
    };
    let (x0, x1) = ext(|p| p.0);
    let (y0, y1) = ext(|p| p.1);
    let sx = |v: f64| left + (v - x0) / (x1 - x0) * plot_w;
    let sy = |v: f64| top + plot_h - (v - y0) / (y1 - y0) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"{left:.1}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape_html(&lc.title)
    );
    let _ = write!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for t in ticks(x0, x1, 6) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            sx(t),
            top + plot_h + 14.0,
            fmt_tick(t)
        );
    }
    for t in ticks(y0, y1, 5) {
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 4.0,
            sy(t) + 4.0,
            fmt_tick(t),
            y = sy(t)
        );
    }
    for (i, (name, p)) in lc.series.iter().enumerate() {
        let path: Vec<String> = p
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            path.join(" "),
            color(i)
        );
        let ly = top + 14.0 * i as f64 + 8.0;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left + plot_w + 10.0,
            left + plot_w + 28.0,
            color(i),
            left + plot_w + 32.0,
            ly + 4.0,
            escape_html(name)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text></svg>",
        left + plot_w / 2.0,
        top + plot_h + 34.0,
        escape_html(&lc.x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape_html(&lc.y_label)
    );
    s
}

/// One point of a scatter plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScatterPoint {
    /// x value.
    pub x: f64,
    /// y value.
    pub y: f64,
    /// Radius in pixels.
    pub radius: f64,
    /// Fill colour (`#rrggbb`).
    pub fill: String,
    /// Outline colour (`#rrggbb`; empty: none).
    pub stroke: String,
    /// Text drawn next to the point (empty: none).
    pub text: String,
    /// Tooltip.
    pub title: String,
}

/// A scatter plot (e.g. a feature map): coloured, sized points with optional text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScatterPlot {
    /// Title.
    pub title: String,
    /// The points.
    pub points: Vec<ScatterPoint>,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Legend entries: (colour, text).
    pub legend: Vec<(String, String)>,
}

/// The colour of `v` on a blue (−`max`) – grey (0) – red (+`max`) scale; grey for non-finite.
pub fn signed_color(v: f64, max: f64) -> String {
    if !v.is_finite() {
        return "#bbbbbb".into();
    }
    let t = (v / max.abs().max(1e-12)).clamp(-1.0, 1.0);
    let grey = 190.0;
    let (r, g, b) = if t >= 0.0 {
        (
            grey + (214.0 - grey) * t,
            grey - (grey - 39.0) * t,
            grey - (grey - 40.0) * t,
        )
    } else {
        let u = -t;
        (
            grey - (grey - 31.0) * u,
            grey - (grey - 119.0) * u,
            grey + (180.0 - grey) * u,
        )
    };
    format!("#{:02x}{:02x}{:02x}", r as u8, g as u8, b as u8)
}

/// The colour of series (or cluster) `i` in the shared palette.
pub fn series_color(i: usize) -> &'static str {
    color(i)
}

/// Renders a scatter plot with axes, ticks and a legend; points with non-finite coordinates
/// are skipped.
pub fn scatter_plot(sp: &ScatterPlot) -> String {
    let (left, top, plot_w, plot_h) = (56.0, 30.0 + 16.0 * sp.legend.len() as f64, 560.0, 380.0);
    let width = left + plot_w + 170.0;
    let height = top + plot_h + 48.0;
    let pts: Vec<&ScatterPoint> = sp
        .points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    let range = |f: &dyn Fn(&ScatterPoint) -> f64| {
        let (lo, hi) = pts
            .iter()
            .map(|p| f(p))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (-1.0, 1.0)
        } else if hi - lo < 1e-9 {
            (lo - 1.0, hi + 1.0)
        } else {
            let pad = 0.06 * (hi - lo);
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = range(&|p| p.x);
    let (y0, y1) = range(&|p| p.y);
    let sx = |v: f64| left + (v - x0) / (x1 - x0) * plot_w;
    let sy = |v: f64| top + plot_h - (v - y0) / (y1 - y0) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"{left:.1}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape_html(&sp.title)
    );
    for (i, (c, t)) in sp.legend.iter().enumerate() {
        let y = 30.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left + 5.0,
            y - 4.0,
            escape_html(c),
            left + 14.0,
            y,
            escape_html(t)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{plot_w:.1}\" height=\"{plot_h:.1}\" fill=\"none\" stroke=\"#ccc\"/>"
    );
    for t in ticks(x0, x1, 6) {
        let x = sx(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#f0f0f0\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + plot_h,
            top + plot_h + 14.0,
            fmt_tick(t)
        );
    }
    for t in ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = write!(
            s,
            "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#f0f0f0\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 4.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    for p in &pts {
        let (x, y) = (sx(p.x), sy(p.y));
        let r = if p.radius.is_finite() {
            p.radius.clamp(1.0, 30.0)
        } else {
            3.0
        };
        let stroke = if p.stroke.is_empty() {
            String::new()
        } else {
            format!(
                " stroke=\"{}\" stroke-width=\"1.5\"",
                escape_html(&p.stroke)
            )
        };
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" fill=\"{}\" fill-opacity=\"0.85\"{stroke}><title>{}</title></circle>",
            escape_html(&p.fill),
            escape_html(&p.title)
        );
        if !p.text.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
                x + r + 2.0,
                y + 3.0,
                escape_html(&p.text)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text></svg>",
        left + plot_w / 2.0,
        top + plot_h + 34.0,
        escape_html(&sp.x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape_html(&sp.y_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn forest_plot_places_intervals_in_order() {
        let fp = ForestPlot {
            title: "w".into(),
            rows: vec!["a".into(), "b<".into()],
            series: vec!["s".into()],
            points: vec![
                ForestPoint {
                    row: 0,
                    series: 0,
                    mid: -1.0,
                    lo: -2.0,
                    hi: 0.0,
                },
                ForestPoint {
                    row: 1,
                    series: 0,
                    mid: 1.0,
                    lo: 0.5,
                    hi: 2.0,
                },
            ],
            x_label: "weight".into(),
            reference: Some(0.0),
        };
        let s = forest_plot(&fp);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("b&lt;"));
        assert_eq!(s.matches("<circle").count(), 2);
        // the first point's circle lies left of the second's
        let cx: Vec<f64> = s
            .match_indices("<circle cx=\"")
            .map(|(i, m)| s[i + m.len()..].split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!(cx[0] < cx[1]);
    }

    #[test]
    fn heatmap_colours_follow_sign() {
        assert_eq!(diverging(1.0, -1.0, 1.0), "#ff5541");
        assert_eq!(diverging(0.0, -1.0, 1.0), "#ffffff");
        assert!(diverging(-1.0, -1.0, 1.0).ends_with("ff"));
        let h = heatmap(&Heatmap {
            title: "t".into(),
            rows: vec!["x".into()],
            cols: vec!["y".into()],
            values: vec![vec![f64::NAN]],
            min: -1.0,
            max: 1.0,
        });
        assert!(h.contains("#cccccc") && h.contains("n/a"));
        let b = bar_chart(&BarChart {
            title: "b".into(),
            labels: vec!["p".into(), "n".into()],
            values: vec![1.0, -0.5],
            x_label: "".into(),
        });
        assert_eq!(b.matches("<rect").count(), 2);
        let l = line_chart(&LineChart {
            title: "l".into(),
            series: vec![("s".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
            ..Default::default()
        });
        assert!(l.contains("<polyline"));
        let sc = scatter_plot(&ScatterPlot {
            title: "m".into(),
            points: vec![
                ScatterPoint {
                    x: 0.0,
                    y: 1.0,
                    radius: 4.0,
                    fill: signed_color(0.5, 1.0),
                    text: "a<b".into(),
                    ..Default::default()
                },
                ScatterPoint {
                    x: f64::NAN,
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        assert_eq!(sc.matches("<circle").count(), 1);
        assert!(sc.contains("a&lt;b"));
        assert_eq!(signed_color(f64::NAN, 1.0), "#bbbbbb");
        assert_ne!(signed_color(1.0, 1.0), signed_color(-1.0, 1.0));
    }
}
