//! The Dissect panel's forest plot (weights with 95% intervals per factor and group; a click
//! selects a factor) and the "Top pairs" view of the selected factor.
use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points, VLine};

use super::style::{clip, GROUP_COLORS};
use crate::app::state::AppState;
use crate::app::widgets;
use crate::dissect::DissectOutput;

/// Factors per forest-plot page.
const FOREST_PAGE: usize = 40;
/// Height of one factor's row in the forest plot (points).
const FOREST_ROW: f32 = 28.0;

/// Forest plot: one row per factor, one coloured point with its 95% interval per group; the
/// group legend sits above the plot (never over the rows). Returns the factor clicked (in the
/// plot or in the table), for its top pairs.
pub(super) fn forest(
    ui: &mut egui::Ui,
    state: &mut AppState,
    out: &DissectOutput,
) -> Option<String> {
    let r = &out.result;
    let all = r.factor_definitions.len();
    // Pages of at most FOREST_PAGE factors, each row tall enough that its label is drawn
    // (egui_plot hides y labels closer than ~20 px): the central panel scrolls, labels stay.
    let page_id = egui::Id::unique("dissect_forest_page");
    let pages = all.div_ceil(FOREST_PAGE).max(1);
    let mut page = ui
        .data(|d| d.get_temp::<usize>(page_id))
        .unwrap_or(0)
        .min(pages - 1);
    let mut clicked = None;
    // The legend's swatches and labels (not the hint) go into the PNG export with the plot.
    let mut legend = egui::Rect::NOTHING;
    ui.horizontal_wrapped(|ui| {
        for (gi, g) in r.groups.iter().enumerate() {
            let color = GROUP_COLORS[gi % GROUP_COLORS.len()];
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, color);
            let label = ui.label(&g.label);
            legend = legend.union(rect).union(label.rect);
        }
    });
    if pages > 1 {
        ui.horizontal(|ui| {
            if ui
                .add_enabled(page > 0, egui::Button::new("Previous"))
                .clicked()
            {
                page -= 1;
            }
            ui.label(format!(
                "factors {}–{} of {all}",
                page * FOREST_PAGE + 1,
                ((page + 1) * FOREST_PAGE).min(all)
            ));
            if ui
                .add_enabled(page + 1 < pages, egui::Button::new("Next"))
                .clicked()
            {
                page += 1;
            }
        });
        ui.data_mut(|d| d.insert_temp(page_id, page));
    }
    let first = page * FOREST_PAGE;
    let shown: Vec<usize> = (first..(first + FOREST_PAGE).min(all)).collect();
    let labels: Vec<String> = shown
        .iter()
        .map(|&j| r.factor_definitions[j].label.clone())
        .collect();
    let nf = labels.len();
    let ng = r.groups.len().max(1);
    let labels_fmt = labels.clone();
    let height = (nf as f32 * FOREST_ROW + 60.0).max(200.0);
    let plot = ui.scope(|ui| {
        Plot::new("forest")
            .height(height)
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
                p.vline(VLine::new("0", 0.0).color(egui::Color32::GRAY));
                for (gi, g) in r.groups.iter().enumerate() {
                    let color = GROUP_COLORS[gi % GROUP_COLORS.len()];
                    let off = if ng > 1 {
                        (gi as f64 - (ng - 1) as f64 / 2.0) * 0.6 / ng as f64
                    } else {
                        0.0
                    };
                    let mut pts = Vec::new();
                    for (row, &j) in shown.iter().enumerate() {
                        let Some(f) = g.factors.get(j) else { continue };
                        let y = (nf - 1 - row) as f64 - off;
                        p.line(
                            Line::new(
                                g.label.clone(),
                                PlotPoints::from(vec![[f.lo95, y], [f.hi95, y]]),
                            )
                            .color(color)
                            .width(2.0),
                        );
                        pts.push([f.mean, y]);
                    }
                    p.points(Points::new(g.label.clone(), pts).color(color).radius(3.5));
                }
            })
    });
    let pr = &plot.inner;
    pr.response
        .clone()
        .on_hover_text("Click a factor for its top pairs");
    if pr.response.clicked() {
        if let Some(pos) = pr.response.interact_pointer_pos() {
            let y = pr.transform.value_from_position(pos).y.round();
            if y >= 0.0 && (y as usize) < nf {
                clicked = Some(
                    r.factor_definitions[shown[nf - 1 - y as usize]]
                        .name
                        .clone(),
                );
            }
        }
    }
    // With pages, the page buttons sit between the legend and the plot: export the plot alone.
    let rect = if legend.is_positive() && pages == 1 {
        plot.response.rect.union(legend.expand(2.0))
    } else {
        plot.response.rect
    };
    widgets::export_plot_menu(ui, state, rect, "dissect-forest", || {
        crate::dissect::report::forest_svg(r)
    });
    // Table of the numbers behind the plot; factor names link to their top pairs.
    egui::CollapsingHeader::new("Numbers")
        .default_open(false)
        .show(ui, |ui| {
            egui::ScrollArea::horizontal()
                .id_salt("forest_numbers_scroll")
                .show(ui, |ui| numbers_grid(ui, r, &mut clicked));
        });
    clicked
}

/// The numbers behind the forest plot, one row per group and factor; a factor name is a link
/// to its top pairs (written to `clicked`).
fn numbers_grid(
    ui: &mut egui::Ui,
    r: &crate::dissect::DissectResult,
    clicked: &mut Option<String>,
) {
    egui::Grid::new("forest_numbers")
        .striped(true)
        .show(ui, |ui| {
            for h in [
                "group",
                "factor",
                "mean",
                "95% interval",
                "pref %",
                "R-hat",
                "ESS",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for g in &r.groups {
                for f in &g.factors {
                    ui.label(&g.label);
                    if ui
                        .link(&f.label)
                        .on_hover_text(format!("{}: show this factor's top pairs", f.label))
                        .clicked()
                    {
                        *clicked = Some(f.name.clone());
                    }
                    ui.label(format!("{:.3}", f.mean));
                    ui.label(format!("[{:.3}, {:.3}]", f.lo95, f.hi95));
                    ui.label(format!("{:.1}", f.prob_preferred));
                    ui.label(f.rhat.map(|x| format!("{x:.3}")).unwrap_or("-".into()));
                    ui.label(f.ess.map(|x| format!("{x:.0}")).unwrap_or("-".into()));
                    ui.end_row();
                }
            }
        });
}

/// Factor -> its top pairs: the pairs where the selected factor differs most between the two
/// responses, both responses side by side with the winner marked and the factor's values.
pub(super) fn top_pairs(
    ui: &mut egui::Ui,
    state: &mut AppState,
    out: &DissectOutput,
    data: &[crate::data::Judgement],
) {
    let s = &mut state.dissect;
    let factors = &out.design.factors;
    if factors.is_empty() {
        return;
    }
    ui.horizontal(|ui| {
        let l = ui.label("Factor");
        let current = s
            .selected_factor
            .as_deref()
            .and_then(|n| out.factor_index(n))
            .map(|i| factors[i].label.as_str())
            .unwrap_or("(pick one)");
        egui::ComboBox::from_id_salt("top_pairs_factor")
            .selected_text(current)
            .show_ui(ui, |ui| {
                for f in factors {
                    let on = s.selected_factor.as_deref() == Some(f.name.as_str());
                    if ui.selectable_label(on, &f.label).clicked() {
                        s.selected_factor = Some(f.name.clone());
                    }
                }
            })
            .response
            .labelled_by(l.id);
        let l = ui.label("show");
        ui.add(egui::DragValue::new(&mut s.top_k).range(1..=100))
            .labelled_by(l.id)
            .on_hover_text("How many pairs to list");
    });
    let Some((fi, pairs)) = s.top_pairs() else {
        ui.weak("Pick a factor here, or click one in the forest plot.");
        return;
    };
    let f = &factors[fi];
    ui.weak(format!(
        "{}: {}. Ranked by |difference A - B|; pairs where it is equal are left out.",
        f.label, f.definition
    ));
    if pairs.is_empty() {
        ui.weak("No pair differs in this factor.");
    }
    for p in &pairs {
        let Some(j) = out.judgement_of(p.pair, data) else {
            continue;
        };
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.strong(format!("pair {}", p.id));
                ui.label(format!("winner: {}", if p.a_preferred { "A" } else { "B" }));
                if let (Some(a), Some(b)) = (p.value_a, p.value_b) {
                    ui.label(format!("{}: A {a:.3}, B {b:.3}", f.name));
                }
                ui.label(format!("x = {:.3}", p.x));
                ui.label(format!("w*x = {:.3}", p.contribution))
                    .on_hover_text("Contribution to logit P(A preferred) under the pair's group");
                ui.weak(if p.winner_has_more {
                    "the winner has more of it"
                } else {
                    "the winner has less of it"
                });
                if ui
                    .small_button("Waterfall")
                    .on_hover_text("Every factor's contribution for this pair")
                    .clicked()
                {
                    s.selected_pair = p.pair;
                }
            });
            ui.columns(2, |cols| {
                for (col, (side, text, won)) in cols.iter_mut().zip([
                    ("A", &j.response_a, p.a_preferred),
                    ("B", &j.response_b, !p.a_preferred),
                ]) {
                    let head = if won {
                        egui::RichText::new(format!("{side} (won)")).strong()
                    } else {
                        egui::RichText::new(side)
                    };
                    col.label(head);
                    col.add(egui::Label::new(clip(text, 600)).wrap());
                }
            });
        });
    }
}
