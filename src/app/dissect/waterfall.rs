//! The Dissect panel's contribution waterfall: one pair's factor contributions w·x under its
//! group's weights, with a pair picker and search.
use eframe::egui;
use egui_plot::{Bar, BarChart, HLine, Plot};

use super::style::clip;
use crate::app::state::AppState;
use crate::app::widgets::{self, kv_grid};
use crate::dissect::DissectOutput;

/// Per-pair contribution waterfall under the pair's group weights.
pub(super) fn show(
    ui: &mut egui::Ui,
    state: &mut AppState,
    out: &DissectOutput,
    pair_search: &mut String,
) {
    let n = out.design.ids.len();
    if n == 0 {
        return;
    }
    let s = &mut state.dissect;
    let ids = &out.design.ids;
    ui.horizontal(|ui| {
        if ui
            .small_button("<")
            .on_hover_text("Previous pair")
            .clicked()
        {
            s.selected_pair = s.selected_pair.saturating_sub(1);
        }
        let l = ui.label("Pair");
        let cur = s.selected_pair.min(n - 1);
        egui::ComboBox::from_id_salt("waterfall_pair")
            .selected_text(format!("{} ({} of {n})", ids[cur], cur + 1))
            .height(300.0)
            .show_ui(ui, |ui| {
                let q = pair_search.trim().to_lowercase();
                let hits = ids
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| q.is_empty() || id.to_lowercase().contains(&q))
                    .take(200);
                for (i, id) in hits {
                    ui.selectable_value(&mut s.selected_pair, i, id.as_str());
                }
            })
            .response
            .labelled_by(l.id);
        if ui.small_button(">").on_hover_text("Next pair").clicked() {
            s.selected_pair = (s.selected_pair + 1).min(n - 1);
        }
        let l = ui.label("find");
        let edit = ui
            .add(
                egui::TextEdit::singleline(pair_search)
                    .desired_width(120.0)
                    .hint_text("pair id"),
            )
            .labelled_by(l.id)
            .on_hover_text(
                "Type part of a pair id: the list shows the matches; Enter jumps to the first",
            );
        if edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            let q = pair_search.trim().to_lowercase();
            if let Some(i) = ids.iter().position(|id| id.to_lowercase().contains(&q)) {
                s.selected_pair = i;
            }
        }
    });
    let Some(w) = s.waterfall() else {
        return;
    };
    kv_grid(
        ui,
        "waterfall_summary",
        &[
            ("Group", w.group.clone()),
            ("logit = sum of w*x", format!("{:.3}", w.logit)),
            ("P(A preferred)", format!("{:.3}", w.prob_a)),
            (
                "Observed",
                if w.a_preferred {
                    "A preferred"
                } else {
                    "B preferred"
                }
                .to_string(),
            ),
        ],
    );
    let mut bars = Vec::new();
    let mut cum = 0.0;
    for (i, st) in w.steps.iter().enumerate() {
        let color = if st.contribution >= 0.0 {
            egui::Color32::from_rgb(44, 160, 44)
        } else {
            egui::Color32::from_rgb(214, 39, 40)
        };
        bars.push(
            Bar::new(i as f64, st.contribution)
                .base_offset(cum)
                .fill(color)
                .name(format!(
                    "{}: x = {:.2}, w = {:.3}",
                    st.label, st.x, st.weight
                ))
                .width(0.7),
        );
        cum += st.contribution;
    }
    bars.push(
        Bar::new(w.steps.len() as f64, w.logit)
            .fill(egui::Color32::from_rgb(31, 119, 180))
            .name("total logit")
            .width(0.7),
    );
    let names: Vec<String> = w
        .steps
        .iter()
        .map(|s| clip(&s.label, 14))
        .chain(["total".to_string()])
        .collect();
    let k = names.len();
    let plot = ui.scope(|ui| {
        Plot::new("waterfall")
            .height(260.0)
            .allow_scroll(false)
            .y_axis_label("contribution to logit P(A)")
            .x_grid_spacer(move |_| {
                (0..k)
                    .map(|i| egui_plot::GridMark {
                        value: i as f64,
                        step_size: 1.0,
                    })
                    .collect()
            })
            .x_axis_formatter(move |m, _| {
                let i = m.value.round();
                if (m.value - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .show(ui, |p| {
                p.hline(HLine::new("", 0.0).color(egui::Color32::GRAY));
                p.bar_chart(BarChart::new("contributions", bars));
            });
    });
    let stem = format!("waterfall-{}", w.pair_id);
    widgets::export_plot_menu(ui, state, plot.response.rect, &stem, || {
        crate::dissect::report::waterfall_svg(&w)
    });
    if w.steps.is_empty() {
        ui.weak("Every factor is equal for A and B in this pair.");
    }
}
