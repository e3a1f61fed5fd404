//! GUI test of the Data panel on a Hugging Face datasets folder (`data/SPLIT-0000i-of-0000N`
//! shards): opened through the folder picker it reads one split as one dataset (`train` first),
//! shows the splits with their shard counts, and choosing another split reopens the folder with
//! it. The records are checked against the data layer called directly with `--split`.
use std::path::Path;

use egui_kittest::kittest::Queryable;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};
use steerlab::data::LoadOptions;

mod common;
use common::{click_item, open_menu, shows, wait_for_jobs};

/// Writes `n` pairs with ids `{tag}{i}` as one JSONL shard.
fn shard(path: &Path, tag: &str, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(
            &serde_json::json!({
                "id": format!("{tag}{i}"),
                "prompt": format!("Question {tag} {i}?"),
                "chosen": format!("A helpful answer {i}."),
                "rejected": format!("no {i}"),
            })
            .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn ids(dir: &Path, split: &str) -> Vec<String> {
    let opts = LoadOptions {
        split: Some(split.to_string()),
        ..Default::default()
    };
    steerlab::data::load_dataset_with(dir, &opts, &steerlab::jobs::NoProgress)
        .unwrap()
        .records
        .iter()
        .map(|r| r.id().to_string())
        .collect()
}

/// The Data panel with `dir` given to the folder picker behind "Open folder…", clicked, and
/// the read finished.
fn open_folder(dir: &Path) -> (ScriptedPicker, common::App) {
    let picker = ScriptedPicker::new();
    picker.push(Some(dir.to_path_buf()));
    let mut h = common::strict_app(
        &picker,
        StartOptions {
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    );
    h.run();
    h.get_by_label("Open folder…").click();
    wait_for_jobs(&mut h);
    (picker, h)
}

#[test]
fn a_datasets_folder_opens_one_split_and_the_split_can_be_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hh");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    shard(&data.join("train-00000-of-00002.jsonl"), "a", 6);
    shard(&data.join("train-00001-of-00002.jsonl"), "b", 4);
    shard(&data.join("test-00000-of-00001.jsonl"), "t", 3);

    let (picker, mut h) = open_folder(&root);
    assert_eq!(picker.calls(), vec!["pick_folder: Dataset file"]);

    let st = &h.state().state;
    assert_eq!(st.datasets.len(), 1);
    let d = &st.datasets[0];
    assert_eq!(d.error, None);
    assert_eq!(d.hf_split.as_deref(), Some("train"));
    let names: Vec<_> = d.hf_splits.iter().map(|s| s.title()).collect();
    assert_eq!(names, vec!["test (1 shard)", "train (2 shards)"]);
    let got: Vec<String> = d.records.iter().map(|r| r.id().to_string()).collect();
    assert_eq!(got, ids(&root, "train"), "both train shards, in order");
    assert_eq!(got.len(), 10);
    assert!(
        d.preview_truncated,
        "a preview of the first shard says more follow"
    );
    assert!(shows(&h, "preview from train-00000-of-00002.jsonl"));
    assert!(shows(&h, "(split train)"), "the status bar names the split");

    // Choose the other split: the folder is read again with it, replacing the view.
    open_menu(&mut h, "Folder split");
    click_item(&mut h, "test (1 shard)");
    wait_for_jobs(&mut h);
    let st = &h.state().state;
    assert_eq!(st.datasets.len(), 1, "one folder, one view");
    let d = &st.datasets[0];
    assert_eq!(d.error, None);
    assert_eq!(d.hf_split.as_deref(), Some("test"));
    let got: Vec<String> = d.records.iter().map(|r| r.id().to_string()).collect();
    assert_eq!(got, ids(&root, "test"));
    assert_eq!(got, vec!["t0", "t1", "t2"]);
    assert!(!d.preview_truncated);
    h.run();
}

#[test]
fn a_folder_without_shards_is_reported_not_opened() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    let (_, h) = open_folder(tmp.path());
    let d = &h.state().state.datasets;
    assert!(d.is_empty() || d[0].records.is_empty());
    let msg = h.state().state.last_message().map(|m| m.text.clone());
    assert!(
        msg.as_deref()
            .is_some_and(|m| m.contains("no dataset shards")),
        "{msg:?}"
    );
}
