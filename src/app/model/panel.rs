//! Model panel: pick an HF folder or a .gguf file, load it on a background job, show its shape.
use super::state::{start_model_load, DeviceChoice};
use crate::app::picker::FileFilter;
use crate::app::state::AppState;
use crate::app::view::Panel;
use crate::app::widgets::{kv_grid, recent_links, PathField, PickKind};
use eframe::egui;

/// View state of the Model panel.
#[derive(Debug, Default)]
pub struct ModelPanel {
    path: PathField,
    choice: DeviceChoice,
}

impl Panel for ModelPanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.heading("Model");
        ui.label(
            "A Hugging Face folder (config.json, *.safetensors, tokenizer.json) of a Llama, Mistral, \
             Mixtral, Qwen2, Qwen3, Qwen3-MoE, Gemma 2, Gemma 3 or Phi-3 model, or a single .gguf file.",
        );
        ui.add_space(6.0);
        if self.path.text.is_empty() {
            if let Some(m) = &state.model {
                self.path.text = m.path.display().to_string();
            }
        }
        let loading = state.model_job.is_some_and(|id| state.jobs.is_running(id));
        let buttons = [
            (
                "Open .gguf…",
                PickKind::File(vec![FileFilter::new("GGUF model", &["gguf"])]),
            ),
            ("Open folder…", PickKind::Folder),
        ];
        let picked = ui
            .add_enabled_ui(!loading, |ui| {
                self.path.show(ui, "Model path", &buttons, state)
            })
            .inner;

        ui.horizontal(|ui| {
            let l = ui.label("Device");
            egui::ComboBox::from_id_salt("device")
                .selected_text(self.choice.device.clone())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.choice.device, "cpu".to_string(), "cpu");
                    ui.selectable_value(&mut self.choice.device, "cuda".to_string(), "cuda")
                        .on_hover_text(
                            "Needs a build with the `cuda` cargo feature and an NVIDIA GPU",
                        );
                })
                .response
                .labelled_by(l.id);
            let l = ui.label("Weights dtype");
            egui::ComboBox::from_id_salt("dtype")
                .selected_text(self.choice.dtype.clone())
                .show_ui(ui, |ui| {
                    for d in ["f32", "bf16", "f16"] {
                        ui.selectable_value(&mut self.choice.dtype, d.to_string(), d);
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text(
                    "f32 is exact; bf16/f16 halve memory (norms and softmax still run in f32). \
                     A .gguf file on the cpu in f32 keeps its quantized blocks in memory \
                     (`--weights auto`; f32 activations, results equal the dequantized \
                     model's up to rounding)",
                );
        });
        if let Some(path) = picked {
            start_model_load(state, path, self.choice.clone());
        }

        // The fetched default models, by short name (scripts/fetch-defaults.sh).
        let fetched: Vec<_> = crate::paths::SHORT_NAMES
            .iter()
            .filter_map(|s| crate::paths::short_name_path(s.name).map(|p| (s, p)))
            .filter(|(_, p)| p.exists())
            .collect();
        if !fetched.is_empty() {
            ui.horizontal(|ui| {
                ui.label("Defaults:");
                for (s, p) in fetched {
                    let b = ui.add_enabled(!loading, egui::Button::new(s.name));
                    if b.on_hover_text(s.description).clicked() {
                        self.path.text = p.display().to_string();
                        start_model_load(state, p, self.choice.clone());
                    }
                }
            });
        }
        if !state.recent.models.is_empty() {
            if let Some(p) = recent_links(ui, &state.recent.models, !loading) {
                // Entries are paths or short names; both resolve as `--model` does.
                match crate::paths::resolve_model_spec(p.to_str()) {
                    Ok(p) => {
                        self.path.text = p.display().to_string();
                        start_model_load(state, p, self.choice.clone());
                    }
                    Err(e) => state.model_error = Some(e.to_string()),
                }
            }
        }
        ui.separator();

        if loading {
            ui.horizontal(|ui| {
                ui.add(egui::Spinner::new());
                ui.label("Loading… (progress and Cancel are in the status bar below)");
            });
        }
        if let Some(e) = &state.model_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
            ui.add_space(4.0);
        }
        match &state.model {
            Some(m) => {
                let s = &m.summary;
                ui.strong(format!("Loaded: {}", m.path.display()));
                ui.add_space(4.0);
                let mut rows = vec![
                    ("Name", s.name.clone()),
                    ("Architecture", s.architecture.clone()),
                    ("Layers", s.n_layers.to_string()),
                    ("Hidden size", s.hidden_size.to_string()),
                    ("Attention", s.attention.clone()),
                ];
                if let Some(e) = &s.experts {
                    rows.push(("Experts", e.clone()));
                }
                rows.extend([
                    ("Vocabulary", s.vocab_size.to_string()),
                    ("Parameters", format_params(s.n_params)),
                    ("Device", s.device.clone()),
                    ("Dtype", s.dtype.clone()),
                    ("Load time", format!("{:.2} s", m.load_time.as_secs_f64())),
                ]);
                kv_grid(ui, "model_info", &rows);
            }
            None if !loading => {
                ui.label("No model loaded.");
                let def = crate::paths::default_model_path();
                if !def.exists() {
                    ui.label(format!(
                        "The default model (SmolLM2-135M-Instruct) is not in the cache ({}). Fetch it once with \
                         `scripts/fetch-defaults.sh` (needs PyPI), or open a model above.",
                        def.display()
                    ));
                }
            }
            None => {}
        }
    }
}

/// `134515008` → `134.5 M`.
pub fn format_params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B ({n})", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M ({n})", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K ({n})", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn params_format_with_units() {
        assert_eq!(super::format_params(134_515_008), "134.5 M (134515008)");
        assert_eq!(super::format_params(999), "999");
        assert_eq!(super::format_params(7_241_732_096), "7.24 B (7241732096)");
    }
}
