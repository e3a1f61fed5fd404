//! Layout tests of every panel at 1280×800 and 1920×1080 with long content (long file and
//! vector names, long answers, 42 dissection factors): no two widgets drawn over each other and
//! nothing cut at the window's right edge. The check walks the accessibility tree egui gives
//! kittest: every widget (button, label, input, ...) with its screen rectangle, grouped by the
//! panel (pane) it sits in.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eframe::egui::accesskit::Role;
use egui_kittest::kittest::{AccessKitNode, NodeT, Queryable};
use egui_kittest::Harness;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions, SteerlabApp};

const SIZES: [[f32; 2]; 2] = [[1280.0, 800.0], [1920.0, 1080.0]];

/// A long name used for files, vectors and factors.
const LONG: &str = "a_rather_long_descriptive_name_that_a_researcher_might_really_use_2026";

fn harness_at(size: [f32; 2], start: StartOptions) -> common::App {
    common::home();
    let app = SteerlabApp::new(Box::new(ScriptedPicker::new()), None, start);
    Harness::builder()
        .with_size(size)
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app)
}

/// One widget as the check sees it.
#[derive(Debug, Clone)]
struct Widget {
    id: u64,
    role: Role,
    label: String,
    rect: [f64; 4],
    /// `rect` cut to its containers' rectangles (what a scroll area shows of it).
    visible: [f64; 4],
    /// Ids of its ancestors (a widget may contain others, e.g. a text input its text runs).
    ancestors: Vec<u64>,
}

/// Containers and popups: they hold widgets but are not widgets themselves.
fn is_container(role: Role) -> bool {
    matches!(
        role,
        Role::GenericContainer
            | Role::Pane
            | Role::Window
            | Role::ScrollView
            | Role::Group
            | Role::Unknown
            | Role::TextRun
            // egui's floating scroll bars are drawn over the content's edge on purpose.
            | Role::ScrollBar
    )
}

fn is_popup(role: Role) -> bool {
    matches!(
        role,
        Role::Dialog | Role::Menu | Role::MenuListPopup | Role::Tooltip
    )
}

fn intersect(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]
}

fn collect(
    node: &AccessKitNode<'_>,
    pane: u64,
    clip: [f64; 4],
    path: &mut Vec<u64>,
    out: &mut BTreeMap<u64, Vec<Widget>>,
) {
    let role = node.role();
    if is_popup(role) || node.is_hidden() {
        return;
    }
    let id = node.locate().0 .0;
    let pane = if role == Role::Pane { id } else { pane };
    let bounds = node.bounding_box().map(|b| [b.x0, b.y0, b.x1, b.y1]);
    let mut clip = clip;
    if is_container(role) || role == Role::Pane {
        // A container's rectangle is its content's (a scroll area's outer one: the part shown).
        if let Some(b) = bounds {
            clip = intersect(clip, b);
        }
    } else if let Some(b) = bounds {
        let visible = intersect(b, clip);
        if b[2] - b[0] > 0.5 && b[3] - b[1] > 0.5 {
            out.entry(pane).or_default().push(Widget {
                id,
                role,
                label: node.label().or_else(|| node.value()).unwrap_or_default(),
                rect: b,
                visible,
                ancestors: path.clone(),
            });
        }
    }
    path.push(id);
    for child in node.children() {
        collect(&child, pane, clip, path, out);
    }
    path.pop();
}

/// Problems found: pairs of widgets of one pane that overlap by more than a pixel each way,
/// and widgets that end past the window's right edge.
fn layout_problems(h: &common::App, size: [f32; 2]) -> Vec<String> {
    let root = h.root().accesskit_node();
    let mut panes = BTreeMap::new();
    let all = [f64::MIN, f64::MIN, f64::MAX, f64::MAX];
    collect(&root, 0, all, &mut Vec::new(), &mut panes);
    let mut problems = Vec::new();
    if std::env::var_os("LAYOUT_DUMP").is_some() {
        for w in panes.values().flatten() {
            eprintln!("{:?} {:?} {:?}", w.role, w.label, w.rect);
        }
    }
    for widgets in panes.values() {
        for (i, a) in widgets.iter().enumerate() {
            if a.rect[2] > size[0] as f64 + 0.5 {
                problems.push(format!(
                    "{:?} {:?} ends at x = {:.0}, past the right edge {}",
                    a.role, a.label, a.rect[2], size[0]
                ));
            }
            for b in &widgets[i + 1..] {
                if a.ancestors.contains(&b.id) || b.ancestors.contains(&a.id) {
                    continue;
                }
                let o = intersect(a.visible, b.visible);
                let (w, hgt) = (o[2] - o[0], o[3] - o[1]);
                if w > 1.0 && hgt > 1.0 {
                    problems.push(format!(
                        "{:?} {:?} {:?} overlaps {:?} {:?} {:?}",
                        a.role, a.label, a.visible, b.role, b.label, b.visible
                    ));
                }
            }
        }
    }
    problems
}

fn assert_layout(h: &common::App, size: [f32; 2], what: &str) {
    let p = layout_problems(h, size);
    assert!(
        p.is_empty(),
        "{what} at {}x{}: {} problem(s):\n{}",
        size[0],
        size[1],
        p.len(),
        p.join("\n")
    );
}

/// The fixture model under a folder with a long name.
fn long_model(dir: &Path) -> PathBuf {
    let p = dir.join(format!("{LONG}_model"));
    std::os::unix::fs::symlink(common::fixture_model(), &p).unwrap();
    p
}

/// Pairs under a long file name.
fn long_pairs(dir: &Path) -> PathBuf {
    let src = common::write_tiny_pairs(dir, 40);
    let p = dir.join(format!("{LONG}_pairs.jsonl"));
    std::fs::rename(src, &p).unwrap();
    p
}

/// Pairwise judgements with 42 annotated factors with long names, two judges.
fn many_factor_judgements(dir: &Path) -> PathBuf {
    let mut out = String::new();
    for i in 0..240usize {
        let mut fa = serde_json::Map::new();
        let mut fb = serde_json::Map::new();
        let mut score = 0.0;
        for j in 0..42usize {
            let a = ((i * 7 + j * 13) % 5) as f64;
            let b = ((i * 11 + j * 3) % 5) as f64;
            if j < 4 {
                score += (a - b) * (1.0 - j as f64 * 0.4);
            }
            let name = format!("factor_{j:02}_{}", &LONG[..24 + j % 20]);
            fa.insert(name.clone(), a.into());
            fb.insert(name, b.into());
        }
        out.push_str(
            &serde_json::json!({
                "id": format!("j{i}"),
                "prompt": format!("Question {i} about {LONG}"),
                "response_a": format!("Answer A {i}. {}", LONG.repeat(3)),
                "response_b": format!("Answer B {i}."),
                "winner": if score + ((i % 3) as f64 - 1.0) > 0.0 { "a" } else { "b" },
                "judge": if i % 2 == 0 { "human" } else { "gpt-4" },
                "factors_a": fa,
                "factors_b": fb,
            })
            .to_string(),
        );
        out.push('\n');
    }
    let p = dir.join(format!("{LONG}_judgements.jsonl"));
    std::fs::write(&p, out).unwrap();
    p
}

fn start(panel: PanelId, model: Option<PathBuf>, data: Option<PathBuf>) -> StartOptions {
    StartOptions {
        model,
        data,
        panel: Some(panel),
        ..Default::default()
    }
}

#[test]
fn model_generate_and_data_panels_hold_with_long_names() {
    let tmp = tempfile::tempdir().unwrap();
    let model = long_model(tmp.path());
    let data = long_pairs(tmp.path());
    for size in SIZES {
        for panel in [PanelId::Model, PanelId::Data] {
            let mut h = harness_at(size, start(panel, Some(model.clone()), Some(data.clone())));
            common::wait_for_jobs(&mut h);
            assert!(h.state().state.model.is_some());
            assert_layout(&h, size, panel.title());
        }
        let mut s = start(PanelId::Generate, Some(model.clone()), None);
        s.prompt = Some(format!(
            "Please explain {LONG} in detail. {}",
            LONG.repeat(2)
        ));
        let mut h = harness_at(size, s);
        common::wait_for_jobs(&mut h);
        assert_layout(&h, size, "Generate");
    }
}

#[test]
fn steer_panel_holds_with_long_vector_names_answers_and_plots() {
    use steerlab::steer::{SteeringVector, VectorMeta};
    let tmp = tempfile::tempdir().unwrap();
    let model = long_model(tmp.path());
    let data = long_pairs(tmp.path());
    for size in SIZES {
        let mut h = harness_at(
            size,
            start(PanelId::Steer, Some(model.clone()), Some(data.clone())),
        );
        common::wait_for_jobs(&mut h);
        let hidden = h.state().state.model.as_ref().unwrap().model.hidden_size();
        {
            let st = &mut h.state_mut().state.steer;
            for k in 0..3 {
                let mut meta = VectorMeta::new("bipo", "tiny", hidden);
                if k == 1 {
                    meta.note = format!("llama.cpp applies this vector at every position; {LONG}");
                }
                let layers = [(1usize, vec![0.1f32 * (k + 1) as f32; hidden])].into();
                let v = SteeringVector::new(layers, meta).unwrap();
                st.add_vector(format!("#{k} {LONG}"), v);
            }
            let answer = format!("{} ", LONG).repeat(12);
            st.generations = Some(steerlab::app::steer::Generations {
                prompt: "p".into(),
                multiplier: 2.0,
                unsteered: answer.clone(),
                steered: answer,
            });
            let mut live = st.live.lock().unwrap();
            for s in 1..=30u64 {
                live.steps.push(steerlab::app::steer::StepPoint {
                    step: s,
                    loss: 0.7 / s as f64,
                    margin_accuracy: 0.5 + 0.01 * s as f64,
                    norm: s as f64,
                });
            }
            live.epochs.push(steerlab::app::steer::EpochPoint {
                epoch: 1,
                plus: 0.6,
                minus: 0.4,
            });
        }
        h.run_steps(4);
        assert_layout(&h, size, "Steer");
        // An estimate before BiPO starts (token counts × measured per-token costs).
        assert!(
            common::shows(&h, "estimate about"),
            "no BiPO estimate shown"
        );
        // CAA greys out the BiPO-only settings.
        h.state_mut().state.steer.settings.method = steerlab::steer::Method::Caa;
        h.run_steps(2);
        assert_layout(&h, size, "Steer (CAA)");
    }
}

#[test]
fn dissect_panel_holds_with_42_long_factors_and_keeps_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = many_factor_judgements(tmp.path());
    for size in SIZES {
        let mut h = harness_at(size, start(PanelId::Dissect, None, Some(data.clone())));
        common::wait_until(&mut h, |a| a.state.dissect.output.is_some());
        let out = h.state().state.dissect.output.clone().unwrap();
        assert_eq!(out.result.factor_definitions.len(), 42);
        h.run_steps(3);
        assert_layout(&h, size, "Dissect");
        // The forest plot shows a page of 40 factors with at least 20 px per row between the
        // page controls and the export button below it (egui_plot draws a y label only when
        // its neighbours are 20 px away), and pages on to the last two.
        let y = |h: &common::App, label: &str| {
            h.get_by_label(label)
                .accesskit_node()
                .bounding_box()
                .unwrap()
        };
        assert!(common::shows(&h, "factors 1–40 of 42"));
        let plot_h = y(&h, "Export plot…").y0 - y(&h, "Next").y1;
        assert!(plot_h >= 40.0 * 20.0, "forest plot only {plot_h} px tall");
        common::click(&mut h, "Next");
        assert!(common::shows(&h, "factors 41–42 of 42"));
        assert_layout(&h, size, "Dissect, page 2");
    }
}

#[test]
fn features_panel_holds_with_long_names() {
    let tmp = tempfile::tempdir().unwrap();
    let model = long_model(tmp.path());
    let data = long_pairs(tmp.path());
    for size in SIZES {
        let mut h = harness_at(
            size,
            start(PanelId::Features, Some(model.clone()), Some(data.clone())),
        );
        common::wait_for_jobs(&mut h);
        {
            let s = &mut h.state_mut().state.features.settings;
            s.sae.latents = 8;
            s.sae.k = 2;
            s.sae.max_epochs = 3;
            s.sae.batch_size = 32;
            s.sae.seed = 3;
        }
        // The LLM embedder (the test's cache root has no MiniLM).
        common::click(&mut h, "LLM layer");
        common::click(&mut h, "Train");
        common::wait_for_jobs(&mut h);
        assert_eq!(h.state().state.features.error, None);
        assert_eq!(h.state().state.features.runs.len(), 1);
        assert_layout(&h, size, "Features");
        // With a feature shown beside (wide) or below (narrow) the table.
        h.state_mut().state.features.selected = Some(0);
        h.run_steps(3);
        assert!(!common::shows(&h, "Select a feature in the table"));
        assert_layout(&h, size, "Features, feature 0");
    }
}
