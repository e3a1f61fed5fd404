//! Generate panel: a prompt, sampling settings, and the model's answer streamed token by token
//! from a background job, with a Stop button.
use eframe::egui;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::state::{generate, GenerateSettings};
use crate::app::job_list::JobId;
use crate::app::state::AppState;
use crate::app::view::Panel;

/// View state of the Generate panel.
#[derive(Default)]
pub struct GeneratePanel {
    settings: GenerateSettings,
    /// Text streamed so far and the final summary (written by the job).
    output: Arc<Mutex<Stream>>,
    job: Option<JobId>,
}

#[derive(Default)]
struct Stream {
    text: String,
    summary: Option<String>,
}

impl GeneratePanel {
    fn start(&mut self, state: &mut AppState) {
        let Some(m) = &state.model else { return };
        let model = m.model.clone();
        let settings = self.settings.clone();
        let out = self.output.clone();
        *out.lock().expect("output buffer") = Stream::default();
        let done = self.output.clone();
        let t0 = Instant::now();
        let id = state.spawn_job(
            "Generate",
            move |ctx| {
                generate(&model, &settings, ctx, &mut |piece| {
                    out.lock().expect("output buffer").text.push_str(piece);
                })
            },
            move |res, state: &mut AppState| {
                let line = match res {
                    Ok(n) => {
                        let secs = t0.elapsed().as_secs_f64();
                        let line = format!(
                            "{n} tokens in {secs:.1}s ({:.1} tokens/s)",
                            n as f64 / secs.max(1e-9)
                        );
                        state.info(format!("Generated {line}"));
                        line
                    }
                    Err(e) => match state.job_failed("Generation", e) {
                        Some(e) => format!("failed: {e}"),
                        None => "stopped".to_string(),
                    },
                };
                done.lock().expect("output buffer").summary = Some(line);
            },
        );
        self.job = Some(id);
    }
}

impl Panel for GeneratePanel {
    fn ui(&mut self, ui: &mut egui::Ui, state: &mut AppState) {
        ui.heading("Generate");
        let running = self.job.is_some_and(|id| state.jobs.is_running(id));
        if !running {
            self.job = None;
        }
        let model_ready =
            state.model.is_some() && !state.model_job.is_some_and(|id| state.jobs.is_running(id));
        if !running && model_ready {
            if let Some(p) = state.pending_prompt.take() {
                self.settings.prompt = p;
                self.settings.chat = true;
                self.start(state);
            }
        }
        let running = self.job.is_some_and(|id| state.jobs.is_running(id));
        match &state.model {
            Some(m) => ui.label(format!("Model: {} ({})", m.summary.name, m.path.display())),
            None => ui.label("Load a model in the Model panel first."),
        };
        ui.add_space(4.0);
        let l = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.settings.prompt)
                .desired_rows(4)
                .desired_width(f32::INFINITY)
                .hint_text("Ask something…"),
        )
        .labelled_by(l.id);
        let s = &mut self.settings;
        ui.horizontal_wrapped(|ui| {
            ui.checkbox(&mut s.chat, "Chat template")
                .on_hover_text("Wrap the prompt as a user turn with the model's chat template");
            let l = ui.label("Max new tokens");
            ui.add(egui::DragValue::new(&mut s.max_new_tokens).range(1..=4096))
                .labelled_by(l.id)
                .on_hover_text("Generation stops here or at the end-of-sequence token");
            let l = ui.label("Temperature");
            ui.add(egui::DragValue::new(&mut s.temperature).range(0.0..=2.0).speed(0.01))
                .labelled_by(l.id)
                .on_hover_text("0 = greedy (deterministic)");
            let l = ui.label("Top-p");
            ui.add(egui::DragValue::new(&mut s.top_p).range(0.01..=1.0).speed(0.01))
                .labelled_by(l.id)
                .on_hover_text("Nucleus sampling: sample from the smallest set of tokens with this probability mass");
            let l = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut s.seed)).labelled_by(l.id).on_hover_text("Sampling seed (same seed, same text)");
        });
        ui.horizontal(|ui| {
            let can = state.model.is_some() && !running && !self.settings.prompt.trim().is_empty();
            let go = ui
                .add_enabled(can, egui::Button::new("Run"))
                .on_hover_text("Generate a continuation (Ctrl+Enter)");
            let shortcut =
                can && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Enter));
            if go.clicked() || shortcut {
                self.start(state);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                if let Some(id) = self.job {
                    state.jobs.cancel(id);
                }
            }
            if running {
                ui.add(egui::Spinner::new());
            }
        });
        ui.separator();
        let (text, summary) = {
            let o = self.output.lock().expect("output buffer");
            (o.text.clone(), o.summary.clone())
        };
        let l = ui.strong("Output");
        let mut shown = text.as_str();
        ui.add(
            egui::TextEdit::multiline(&mut shown)
                .desired_rows(8)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(l.id);
        if let Some(s) = summary {
            ui.weak(s);
        }
    }
}
