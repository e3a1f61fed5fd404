//! The Features panel's feature map and cluster view: a 2-D map of the shown run's features
//! (`crate::sae::atlas`: PCA of decoder directions or activation profiles), each point coloured
//! by its effect on preference and sized by how often it fires; hovering shows its label and
//! top pair, clicking selects it. The cluster view colours the map by cluster and lists each
//! cluster's members. No algorithm here: the atlas comes from `FeaturesState::atlas`.
use eframe::egui;
use egui::Color32;
use egui_plot::{Plot, PlotPoint, Points, Text};

use super::state::FeatureView;
use crate::app::state::AppState;
use crate::app::widgets;
use crate::numeric::cluster::ClusterCount;
use crate::sae::atlas::{Atlas, FeaturePoint, Representation};

/// Cluster colours (Tableau 10, as the reports use).
const CLUSTER_COLORS: [Color32; 10] = [
    Color32::from_rgb(0x4e, 0x79, 0xa7),
    Color32::from_rgb(0xf2, 0x8e, 0x2b),
    Color32::from_rgb(0xe1, 0x57, 0x59),
    Color32::from_rgb(0x76, 0xb7, 0xb2),
    Color32::from_rgb(0x59, 0xa1, 0x4f),
    Color32::from_rgb(0xed, 0xc9, 0x48),
    Color32::from_rgb(0xb0, 0x7a, 0xa1),
    Color32::from_rgb(0xff, 0x9d, 0xa7),
    Color32::from_rgb(0x9c, 0x75, 0x5f),
    Color32::from_rgb(0xba, 0xb0, 0xac),
];

fn cluster_color(c: usize) -> Color32 {
    CLUSTER_COLORS[c % CLUSTER_COLORS.len()]
}

/// Red for a rewarded feature, blue for a penalised one, grey without an effect.
fn effect_color(effect: Option<f64>, max: f64) -> Color32 {
    let grey = [150.0f32, 150.0, 150.0];
    let Some(e) = effect.filter(|e| e.is_finite()) else {
        return Color32::from_rgb(150, 150, 150);
    };
    let t = (e / max.max(1e-9)).clamp(-1.0, 1.0) as f32;
    let end = if t >= 0.0 {
        [214.0, 39.0, 40.0]
    } else {
        [31.0, 119.0, 180.0]
    };
    let u = t.abs();
    let c = |i: usize| (grey[i] + (end[i] - grey[i]) * u) as u8;
    Color32::from_rgb(c(0), c(1), c(2))
}

fn radius(prevalence: f64) -> f32 {
    3.0 + 11.0 * prevalence.clamp(0.0, 1.0).sqrt() as f32
}

/// Representation, K and seed of the atlas.
pub(super) fn controls_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let c = &mut state.features.atlas_config;
    ui.horizontal_wrapped(|ui| {
        ui.strong("Map of:");
        ui.radio_value(
            &mut c.representation,
            Representation::Decoder,
            "decoder directions",
        )
        .on_hover_text("Each feature's unit-norm decoder direction (W_dec row)");
        ui.radio_value(
            &mut c.representation,
            Representation::Activations,
            "activation profiles",
        )
        .on_hover_text("Each feature's activations over the pairs, scaled to unit norm");
        ui.separator();
        let mut auto = c.clusters == ClusterCount::Auto;
        if ui
            .checkbox(&mut auto, "clusters: auto")
            .on_hover_text("K with the best silhouette, K = 2..10")
            .changed()
        {
            c.clusters = if auto {
                ClusterCount::Auto
            } else {
                ClusterCount::Fixed(4)
            };
        }
        if let ClusterCount::Fixed(mut k) = c.clusters {
            let l = ui.label("K");
            ui.add(egui::DragValue::new(&mut k).range(2..=64))
                .labelled_by(l.id)
                .on_hover_text("Number of k-means clusters");
            c.clusters = ClusterCount::Fixed(k);
        }
        let l = ui.label("Seed");
        ui.add(egui::DragValue::new(&mut c.seed).range(0..=9999))
            .labelled_by(l.id)
            .on_hover_text("Seed of k-means (same seed, same clusters)");
    });
}

/// The map; returns the feature clicked.
fn map_plot(ui: &mut egui::Ui, state: &mut AppState, a: &Atlas, by_cluster: bool) -> Option<usize> {
    let selected = state.features.selected;
    let max = a
        .points
        .iter()
        .filter_map(|p| p.effect.map(f64::abs))
        .fold(0.0f64, f64::max);
    let label_all = a.points.len() <= 40;
    let strong = ui.visuals().strong_text_color();
    let weak = ui.visuals().weak_text_color();
    let plot = Plot::new(("feature_map", by_cluster))
        .height(360.0)
        .show_x(false)
        .show_y(false)
        .allow_scroll(false)
        .allow_double_click_reset(true)
        .x_axis_label(format!("PC 1 ({:.0}%)", 100.0 * a.explained[0]))
        .y_axis_label(format!("PC 2 ({:.0}%)", 100.0 * a.explained[1]))
        .show(ui, |p| {
            for f in &a.points {
                let color = if by_cluster {
                    cluster_color(f.cluster)
                } else {
                    effect_color(f.effect, max)
                };
                p.points(
                    Points::new(format!("feature {}", f.index), vec![[f.x, f.y]])
                        .radius(radius(f.prevalence))
                        .color(color),
                );
                if selected == Some(f.index) {
                    p.points(
                        Points::new("selected", vec![[f.x, f.y]])
                            .radius(radius(f.prevalence) + 3.0)
                            .filled(false)
                            .color(strong),
                    );
                }
                if label_all || selected == Some(f.index) {
                    p.text(
                        Text::new(
                            format!("#{}", f.index),
                            PlotPoint::new(f.x, f.y),
                            format!("   #{}", f.index),
                        )
                        .anchor(egui::Align2::LEFT_CENTER)
                        .color(weak),
                    );
                }
            }
        });
    // The point under the pointer (screen distance within its radius + 4 px).
    let near = |pos: egui::Pos2| -> Option<&FeaturePoint> {
        a.points
            .iter()
            .map(|f| {
                let s = plot
                    .transform
                    .position_from_point(&PlotPoint::new(f.x, f.y));
                (f, s.distance(pos) - radius(f.prevalence))
            })
            .filter(|(_, d)| *d <= 4.0)
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(f, _)| f)
    };
    let mut clicked = None;
    if plot.response.clicked() {
        if let Some(f) = plot.response.interact_pointer_pos().and_then(near) {
            clicked = Some(f.index);
        }
    }
    if let Some(f) = plot.response.hover_pos().and_then(near) {
        let ctx = ui.ctx().clone();
        plot.response.clone().on_hover_ui_at_pointer(|ui| {
            ui.strong(format!("Feature {}", f.index));
            ui.label(widgets::printable(&ctx, &f.label));
            ui.label(format!(
                "effect {} · fires on {:.1}% · cluster {}",
                f.effect.map_or("n/a".into(), |e| format!("{e:+.3}")),
                100.0 * f.prevalence,
                f.cluster
            ));
            if let Some(t) = &f.top_pair {
                ui.weak(format!("top pair {}", widgets::printable(&ctx, t)));
            }
        });
    }
    let rect = plot.response.rect;
    let svg_atlas = a.clone();
    widgets::export_plot_menu(ui, state, rect, "feature-map", move || {
        if by_cluster {
            crate::sae::output::atlas_clusters_svg(&svg_atlas)
        } else {
            crate::sae::output::atlas_map_svg(&svg_atlas)
        }
    });
    clicked
}

/// The map or cluster view of the shown run (the view chosen in `state.features.view`).
pub(super) fn atlas_ui(ui: &mut egui::Ui, state: &mut AppState) {
    controls_ui(ui, state);
    let atlas = match state.features.atlas() {
        Some(Ok(a)) => a.clone(),
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("No feature map: {e}"));
            return;
        }
        None => return,
    };
    let by_cluster = state.features.view == FeatureView::Clusters;
    ui.weak(format!(
        "{} · {} features · map axes hold {:.0}% of the variance · K = {} clusters{} · {}",
        match atlas.config.representation {
            Representation::Decoder => "PCA of decoder directions",
            Representation::Activations => "PCA of activation profiles",
        },
        atlas.points.len(),
        100.0 * (atlas.explained[0] + atlas.explained[1]),
        atlas.k,
        atlas
            .silhouette
            .map_or(String::new(), |s| format!(" (silhouette {s:.2})")),
        if by_cluster {
            "colour = cluster, size = frequency"
        } else {
            "red = rewarded, blue = penalised, grey = no effect; size = frequency; click to select"
        }
    ));
    let clicked = map_plot(ui, state, &atlas, by_cluster);
    if by_cluster {
        let mut pick = None;
        egui::ScrollArea::vertical()
            .id_salt("feature_clusters")
            .max_height(260.0)
            .show(ui, |ui| {
                for c in &atlas.clusters {
                    ui.horizontal_wrapped(|ui| {
                        let (rect, _) =
                            ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 2.0, cluster_color(c.id));
                        ui.strong(format!(
                            "Cluster {} ({} features{}):",
                            c.id,
                            c.members.len(),
                            c.mean_effect
                                .map_or(String::new(), |e| format!(", mean effect {e:+.2}"))
                        ));
                        ui.label(widgets::printable(ui.ctx(), &c.name));
                    });
                    ui.horizontal_wrapped(|ui| {
                        for &m in &c.members {
                            if ui
                                .selectable_label(
                                    state.features.selected == Some(m),
                                    format!("#{m}"),
                                )
                                .on_hover_text("Show this feature's top pairs")
                                .clicked()
                            {
                                pick = Some(m);
                            }
                        }
                    });
                }
            });
        if pick.is_some() {
            state.features.selected = pick;
        }
    }
    if let Some(j) = clicked {
        state.features.selected = Some(j);
    }
}
