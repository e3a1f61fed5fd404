//! The Dissect panel's annotator-group view: each group's weights with 95% intervals next to the
//! pooled fit (a forest plot, pooled first), how K was chosen, and each group's members.
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points, VLine};

use super::style::{clip, GROUP_COLORS};
use crate::app::state::AppState;
use crate::app::widgets;
use crate::dissect::DissectOutput;

/// One forest series: name, colour, and per factor (mean, lo95, hi95).
type Series = (String, egui::Color32, Vec<(f64, f64, f64)>);

/// Height of one factor's row (points).
const ROW: f32 = 30.0;

/// The comparison of the annotator groups with the pooled fit.
pub(super) fn show(ui: &mut egui::Ui, state: &mut AppState, out: &DissectOutput) {
    let r = &out.result;
    let Some(g) = &r.annotator_grouping else {
        ui.weak(
            "No annotator groups in this fit: tick \"Find annotator groups\" (left) and fit \
             again. Needs a column naming each pair's annotator.",
        );
        return;
    };
    let grouped = g.annotators.iter().filter(|a| a.group.is_some()).count();
    ui.label(format!(
        "{} annotator group(s) by `{}` ({}), silhouette {}; {grouped} of {} annotators grouped \
         (at least {} pairs each).",
        g.k,
        g.config.column,
        if g.bic.is_empty() {
            "K fixed".to_string()
        } else {
            format!(
                "K by BIC: {}",
                g.bic
                    .iter()
                    .map(|(k, b)| format!("{k}: {b:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        g.silhouette.map_or("n/a".into(), |s| format!("{s:.2}")),
        g.annotators.len(),
        g.config.min_pairs
    ));
    // Series: pooled (grey), then each group.
    let mut series: Vec<Series> = vec![(
        "pooled".into(),
        egui::Color32::GRAY,
        g.pooled
            .factors
            .iter()
            .map(|f| (f.mean, f.lo95, f.hi95))
            .collect(),
    )];
    for grp in &r.annotator_groups {
        series.push((
            format!("group {} ({} annotators)", grp.group, grp.members.len()),
            GROUP_COLORS[grp.group % GROUP_COLORS.len()],
            grp.factors
                .iter()
                .map(|f| (f.mean, f.lo95, f.hi95))
                .collect(),
        ));
    }
    ui.horizontal_wrapped(|ui| {
        for (name, color, _) in &series {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, *color);
            ui.label(name);
        }
    });
    let labels: Vec<String> = r
        .factor_definitions
        .iter()
        .map(|f| f.label.clone())
        .collect();
    let nf = labels.len();
    let ns = series.len();
    let labels_fmt = labels.clone();
    let plot = Plot::new("annotator_groups_forest")
        .height((nf as f32 * ROW + 60.0).max(200.0))
        .x_axis_label("weight (log-odds per unit of the feature)")
        .y_axis_min_width(150.0)
        .allow_scroll(false)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_boxed_zoom(false)
        .y_grid_spacer(move |_| {
            (0..nf)
                .map(|i| egui_plot::GridMark {
                    value: i as f64,
                    step_size: 1.0,
                })
                .collect()
        })
        .y_axis_formatter(move |m, _| {
            let i = m.value.round();
            if (m.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels_fmt.len() {
                clip(&labels_fmt[nf - 1 - i as usize], 40)
            } else {
                String::new()
            }
        })
        .include_y(-0.6)
        .include_y(nf as f64 - 0.4)
        .show(ui, |p| {
            p.vline(VLine::new("0", 0.0).color(egui::Color32::DARK_GRAY));
            for (si, (name, color, vals)) in series.iter().enumerate() {
                let off = (si as f64 - (ns - 1) as f64 / 2.0) * 0.7 / ns as f64;
                let mut pts = Vec::new();
                for (row, (m, lo, hi)) in vals.iter().enumerate().take(nf) {
                    let y = (nf - 1 - row) as f64 - off;
                    p.line(
                        Line::new(name.clone(), PlotPoints::from(vec![[*lo, y], [*hi, y]]))
                            .color(*color)
                            .width(2.0),
                    );
                    pts.push([*m, y]);
                }
                p.points(Points::new(name.clone(), pts).color(*color).radius(3.5));
            }
        });
    let rect = plot.response.rect;
    widgets::export_plot_menu(ui, state, rect, "annotator-groups", || {
        crate::dissect::report::groups_forest_svg(r)
    });
    ui.add_space(4.0);
    for (grp, fit) in r.annotator_groups.iter().zip(&g.fits) {
        egui::CollapsingHeader::new(format!(
            "Group {}: {} annotators, {} pairs, accuracy {:.0}%",
            grp.group,
            grp.members.len(),
            fit.n_pairs,
            100.0 * fit.accuracy
        ))
        .id_salt(("annotator_group", grp.group))
        .show(ui, |ui| {
            ui.label(grp.members.join(", "));
            let mut fs: Vec<_> = grp.factors.iter().zip(&g.pooled.factors).collect();
            fs.sort_by(|a, b| {
                (b.0.mean - b.1.mean)
                    .abs()
                    .total_cmp(&(a.0.mean - a.1.mean).abs())
            });
            let text: Vec<String> = fs
                .iter()
                .take(4)
                .map(|(f, p)| format!("{} {:+.2} (pooled {:+.2})", f.name, f.mean, p.mean))
                .collect();
            ui.weak(format!(
                "Most different from the pooled fit: {}",
                text.join("; ")
            ));
        });
    }
    let left = g.annotators.iter().filter(|a| a.group.is_none()).count();
    if left > 0 {
        ui.weak(format!(
            "{left} annotator(s) with fewer than {} pairs were not grouped.",
            g.config.min_pairs
        ));
    }
}
