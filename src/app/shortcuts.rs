//! The workbench's keyboard shortcuts: one table that both the input handling and the help
//! window (F1) read, so the list shown is the list that works.
//!
//! Only the key → action table lives here; the shell performs the actions.
use eframe::egui::{Key, KeyboardShortcut, Modifiers};

/// Something a shortcut does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a dataset through the file picker (Data panel).
    OpenData,
    /// Load a .gguf model through the file picker (Model panel).
    OpenModelFile,
    /// Load a Hugging Face model folder through the folder picker (Model panel).
    OpenModelFolder,
    /// Show the panel at this index of `PanelId::ALL`.
    ShowPanel(usize),
    /// Cancel the newest running job.
    CancelJob,
    /// Switch between the dark and light themes.
    ToggleTheme,
    /// Show or hide the shortcut list.
    Help,
    /// Show or hide the frame-time overlay.
    FrameStats,
}

/// One key binding and what the help window says about it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys.
    pub shortcut: KeyboardShortcut,
    /// What they do.
    pub action: Action,
    /// The help text ("Open a dataset").
    pub what: &'static str,
}

const PANEL_KEYS: [Key; 9] = [
    Key::Num1,
    Key::Num2,
    Key::Num3,
    Key::Num4,
    Key::Num5,
    Key::Num6,
    Key::Num7,
    Key::Num8,
    Key::Num9,
];

/// Every binding, most specific first (egui ignores extra Shift when matching, so
/// Ctrl+Shift+M must be tried before Ctrl+M). `n_panels` panels get Ctrl+1..Ctrl+9.
pub fn bindings(n_panels: usize) -> Vec<Binding> {
    let cmd = Modifiers::COMMAND;
    let cmd_shift = Modifiers::COMMAND | Modifiers::SHIFT;
    let b = |modifiers, key, action, what| Binding {
        shortcut: KeyboardShortcut::new(modifiers, key),
        action,
        what,
    };
    let mut v = vec![
        b(
            cmd_shift,
            Key::M,
            Action::OpenModelFolder,
            "Load a model folder (config.json + safetensors)",
        ),
        b(cmd, Key::M, Action::OpenModelFile, "Load a .gguf model"),
        b(cmd, Key::O, Action::OpenData, "Open a dataset"),
    ];
    for (i, key) in PANEL_KEYS.iter().enumerate().take(n_panels) {
        v.push(b(cmd, *key, Action::ShowPanel(i), "Show panel"));
    }
    v.extend([
        b(
            Modifiers::NONE,
            Key::Escape,
            Action::CancelJob,
            "Cancel the newest running job",
        ),
        b(
            cmd_shift,
            Key::T,
            Action::ToggleTheme,
            "Switch dark / light theme",
        ),
        b(
            Modifiers::NONE,
            Key::F1,
            Action::Help,
            "Show or hide this list",
        ),
        b(
            Modifiers::NONE,
            Key::F12,
            Action::FrameStats,
            "Frame-time overlay (p50 / p95)",
        ),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_bindings_share_keys_and_specific_ones_come_first() {
        let v = bindings(9);
        for (i, a) in v.iter().enumerate() {
            for b in &v[i + 1..] {
                assert_ne!(a.shortcut, b.shortcut, "{:?} / {:?}", a.action, b.action);
                // A later binding must not be shadowed by an earlier, less specific one.
                let same_key = a.shortcut.logical_key == b.shortcut.logical_key;
                assert!(
                    !(same_key
                        && b.shortcut.modifiers.contains(a.shortcut.modifiers)
                        && b.shortcut.modifiers != a.shortcut.modifiers),
                    "{:?} is shadowed by {:?}",
                    b.action,
                    a.action
                );
            }
        }
        assert_eq!(
            v.iter()
                .filter(|b| matches!(b.action, Action::ShowPanel(_)))
                .count(),
            9
        );
        assert_eq!(
            bindings(3)
                .iter()
                .filter(|b| matches!(b.action, Action::ShowPanel(_)))
                .count(),
            3
        );
    }
}
