//! The Dissect panel's judge-versus-judge view: similarity matrix, Kendall τ and weight
//! scatter between groups.
use eframe::egui;
use egui_plot::{HLine, Line, Plot, PlotPoints, Points, Text, VLine};

use super::style::clip;
use crate::app::state::AppState;
use crate::app::widgets;
use crate::dissect::DissectOutput;

/// Judge versus judge: the similarity matrix of the groups' weight vectors (Pearson or
/// Spearman, `spearman`), and more below it.
pub(super) fn show(
    ui: &mut egui::Ui,
    state: &mut AppState,
    out: &DissectOutput,
    spearman: &mut bool,
) {
    let r = &out.result;
    let n = r.groups.len();
    if n < 2 {
        ui.label("Group by judge (or another key with several values) to compare groups.");
        return;
    }
    ui.horizontal(|ui| {
        ui.label("Similarity of weight vectors:");
        ui.selectable_value(spearman, false, "Pearson");
        ui.selectable_value(spearman, true, "Spearman");
    });
    let m = if *spearman {
        &r.similarity.spearman
    } else {
        &r.similarity.pearson
    };
    let rect = matrix(ui, &r.similarity.labels, m);
    let title = format!(
        "Similarity of weight vectors ({})",
        if *spearman { "Spearman" } else { "Pearson" }
    );
    widgets::export_plot_menu(ui, state, rect, "dissect-similarity", || {
        crate::report::svg::heatmap(&crate::report::svg::Heatmap {
            title,
            rows: r.similarity.labels.clone(),
            cols: r.similarity.labels.clone(),
            values: m.clone(),
            min: -1.0,
            max: 1.0,
        })
    });
    ui.add_space(4.0);
    ui.strong("Agreement of factor rankings (Kendall τ-b)");
    egui::Grid::new("kendall").striped(true).show(ui, |ui| {
        ui.strong("groups");
        ui.strong("τ");
        ui.strong("credibly opposite signs");
        ui.end_row();
        for p in r.agreement.pairs.iter().take(20) {
            ui.label(format!("{} vs {}", p.a, p.b));
            ui.label(format!("{:.3}", p.kendall_tau));
            ui.label(if p.opposite_sign_factors.is_empty() {
                "-".to_string()
            } else {
                p.opposite_sign_factors.join(", ")
            });
            ui.end_row();
        }
    });
    ui.add_space(4.0);
    let (a, b) = &mut state.dissect.compare;
    ui.horizontal(|ui| {
        ui.label("Scatter:");
        for (id, axis, v) in [("cmp_a", "x", &mut *a), ("cmp_b", "y", &mut *b)] {
            let l = ui.label(axis);
            egui::ComboBox::from_id_salt(id)
                .selected_text(r.groups.get(*v).map(|g| g.label.as_str()).unwrap_or("?"))
                .show_ui(ui, |ui| {
                    for (i, g) in r.groups.iter().enumerate() {
                        ui.selectable_value(v, i, g.label.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
        }
    });
    let (ga, gb) = match (r.groups.get(*a), r.groups.get(*b)) {
        (Some(x), Some(y)) => (x, y),
        _ => return,
    };
    let pts: Vec<[f64; 2]> = ga
        .factors
        .iter()
        .zip(&gb.factors)
        .map(|(x, y)| [x.mean, y.mean])
        .collect();
    let lim = pts
        .iter()
        .flat_map(|p| [p[0].abs(), p[1].abs()])
        .fold(0.1f64, f64::max)
        * 1.1;
    Plot::new("judge_scatter")
        .height(260.0)
        .data_aspect(1.0)
        .x_axis_label(ga.label.clone())
        .y_axis_label(gb.label.clone())
        .include_x(-lim)
        .include_x(lim)
        .include_y(-lim)
        .include_y(lim)
        .show(ui, |p| {
            p.line(
                Line::new("y = x", PlotPoints::from(vec![[-lim, -lim], [lim, lim]]))
                    .color(egui::Color32::GRAY),
            );
            p.hline(HLine::new("", 0.0).color(egui::Color32::DARK_GRAY));
            p.vline(VLine::new("", 0.0).color(egui::Color32::DARK_GRAY));
            p.points(Points::new("factors", pts.clone()).radius(4.0));
            for (f, q) in ga.factors.iter().zip(&pts) {
                p.text(
                    Text::new("", (*q).into(), f.label.clone()).anchor(egui::Align2::LEFT_BOTTOM),
                );
            }
        });
}

/// A labelled matrix of values in [-1, 1], coloured blue (−1) to red (+1).
fn matrix(ui: &mut egui::Ui, labels: &[String], m: &[Vec<f64>]) -> egui::Rect {
    let n = labels.len();
    let cell = 44.0f32;
    let label_w = 150.0f32;
    let (rect, _) = ui.allocate_exact_size(
        egui::vec2(label_w + cell * n as f32, cell * n as f32 + 4.0),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let font = egui::FontId::proportional(11.0);
    let text_color = ui.visuals().text_color();
    for (i, label) in labels.iter().enumerate().take(n) {
        let y = rect.top() + cell * i as f32;
        painter.text(
            egui::pos2(rect.left() + label_w - 6.0, y + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            clip(label, 22),
            font.clone(),
            text_color,
        );
        for j in 0..n {
            let v = m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(f64::NAN);
            let c = if v.is_nan() {
                egui::Color32::GRAY
            } else {
                let t = v.clamp(-1.0, 1.0) as f32;
                let (r, g, b) = if t >= 0.0 {
                    (1.0, 1.0 - t, 1.0 - t)
                } else {
                    (1.0 + t, 1.0 + t, 1.0)
                };
                egui::Color32::from_rgb(
                    (r * 220.0) as u8 + 35,
                    (g * 220.0) as u8 + 35,
                    (b * 220.0) as u8 + 35,
                )
            };
            let r = egui::Rect::from_min_size(
                egui::pos2(rect.left() + label_w + cell * j as f32, y),
                egui::vec2(cell - 2.0, cell - 2.0),
            );
            painter.rect_filled(r, 2.0, c);
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                if v.is_nan() {
                    "-".to_string()
                } else {
                    format!("{v:.2}")
                },
                font.clone(),
                egui::Color32::BLACK,
            );
        }
    }
    rect
}
