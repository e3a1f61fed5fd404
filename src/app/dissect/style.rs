//! Colours and text clipping shared by the Dissect views (panel, forest, judges, waterfall).
use eframe::egui;

/// One colour per group in the forest plot and the judge view (matplotlib's tab10 order).
pub(super) const GROUP_COLORS: [egui::Color32; 8] = [
    egui::Color32::from_rgb(31, 119, 180),
    egui::Color32::from_rgb(255, 127, 14),
    egui::Color32::from_rgb(44, 160, 44),
    egui::Color32::from_rgb(214, 39, 40),
    egui::Color32::from_rgb(148, 103, 189),
    egui::Color32::from_rgb(140, 86, 75),
    egui::Color32::from_rgb(227, 119, 194),
    egui::Color32::from_rgb(127, 127, 127),
];

/// The last `n` characters of `s`, with "..." in front when cut (paths: the file name shows).
pub(super) fn clip_start(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len > n {
        format!("...{}", s.chars().skip(len - n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The first `n` characters of `s`, with "…" after them when cut.
pub(super) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}
