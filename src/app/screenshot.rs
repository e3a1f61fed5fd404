//! `STEERLAB_SCREENSHOT=out.png steerlab` (read in `super::start`): render the window, wait until loading jobs are done
//! (or a timeout passes) and a few more frames have settled, grab the window with
//! `ViewportCommand::Screenshot`, write a PNG atomically and close. For CI and README images.
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames rendered after the app went idle before the grab (layout and fonts settle).
const SETTLE_FRAMES: u32 = 10;

/// Drives one screenshot, frame by frame.
pub struct Screenshotter {
    out: PathBuf,
    deadline: Instant,
    idle_frames: u32,
    stage: Stage,
}

enum Stage {
    Waiting,
    Requested(Receiver<Arc<egui::ColorImage>>),
    Done,
}

/// What the shell should do after [`Screenshotter::frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum ShotOutcome {
    /// Keep rendering.
    Continue,
    /// The PNG was written (or failed, with the message already printed): close the app.
    Close,
}

impl Screenshotter {
    /// A screenshot to `out`, waiting at most `timeout` for jobs.
    pub fn new(out: PathBuf, timeout: Duration) -> Self {
        Self {
            out,
            deadline: Instant::now() + timeout,
            idle_frames: 0,
            stage: Stage::Waiting,
        }
    }

    /// Call once per frame after the UI was drawn; `busy` is whether jobs still run.
    pub fn frame(&mut self, ctx: &egui::Context, busy: bool) -> ShotOutcome {
        match &self.stage {
            Stage::Waiting => {
                let timed_out = Instant::now() >= self.deadline;
                if busy && !timed_out {
                    self.idle_frames = 0;
                } else {
                    if busy && self.idle_frames == 0 {
                        eprintln!("steerlab: screenshot: jobs still running after the timeout; grabbing anyway");
                    }
                    self.idle_frames += 1;
                }
                if self.idle_frames >= SETTLE_FRAMES {
                    let (tx, rx) = channel();
                    let waker = ctx.clone();
                    ctx.request_screenshot(move |img| {
                        let _ = tx.send(img);
                        waker.request_repaint();
                    });
                    self.stage = Stage::Requested(rx);
                }
                ctx.request_repaint_after(Duration::from_millis(30));
                ShotOutcome::Continue
            }
            Stage::Requested(rx) => match rx.try_recv() {
                Ok(img) => {
                    match write_png(&self.out, &img) {
                        Ok(()) => {
                            eprintln!("steerlab: screenshot written to {}", self.out.display())
                        }
                        Err(e) => eprintln!("steerlab: screenshot: {e}"),
                    }
                    self.stage = Stage::Done;
                    ShotOutcome::Close
                }
                Err(_) => {
                    ctx.request_repaint_after(Duration::from_millis(30));
                    ShotOutcome::Continue
                }
            },
            Stage::Done => ShotOutcome::Close,
        }
    }
}

/// Writes an egui image as an 8-bit RGBA PNG, atomically (`path.tmp`, then rename).
pub fn write_png(path: &Path, img: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = img.size;
    let mut data = Vec::with_capacity(w * h * 4);
    for c in &img.pixels {
        data.extend_from_slice(&c.to_srgba_unmultiplied());
    }
    let tmp = tmp_path(path);
    let write = || -> Result<(), String> {
        let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        writer
            .write_image_data(&data)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        writer
            .finish()
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// A PNG export waiting for the window's pixels (queued by `widgets::export_plot_menu`).
pub(crate) struct PendingPng {
    pub(crate) path: PathBuf,
    pub(crate) rect: egui::Rect,
    pub(crate) pixels_per_point: f32,
    pub(crate) rx: Receiver<Arc<egui::ColorImage>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one egui frame with `shot` driving it; returns its outcome and the frame output.
    fn frame(
        ctx: &egui::Context,
        shot: &mut Screenshotter,
        busy: bool,
    ) -> (ShotOutcome, egui::FullOutput) {
        let mut outcome = ShotOutcome::Continue;
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            ui.label("x");
            outcome = shot.frame(ui.ctx(), busy);
        });
        out.textures_delta.clear();
        (outcome, out)
    }

    fn screenshot_requests(out: &mut egui::FullOutput) -> Vec<egui::ScreenshotCallback> {
        out.viewport_output
            .values_mut()
            .flat_map(|v| v.commands.drain(..))
            .filter_map(|c| match c {
                egui::ViewportCommand::Screenshot(cb) => Some(cb),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn waits_for_jobs_then_settles_grabs_writes_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        let ctx = egui::Context::default();
        let mut shot = Screenshotter::new(path.clone(), Duration::from_secs(600));
        for _ in 0..50 {
            let (o, mut out) = frame(&ctx, &mut shot, true);
            assert_eq!(o, ShotOutcome::Continue);
            assert!(
                screenshot_requests(&mut out).is_empty(),
                "no grab while jobs run"
            );
        }
        let mut requested = Vec::new();
        let mut idle_frames = 0;
        while requested.is_empty() {
            let (o, mut out) = frame(&ctx, &mut shot, false);
            assert_eq!(o, ShotOutcome::Continue);
            requested = screenshot_requests(&mut out);
            idle_frames += 1;
            assert!(
                idle_frames <= SETTLE_FRAMES,
                "grab requested after settling"
            );
        }
        assert_eq!(idle_frames, SETTLE_FRAMES);
        // The integration answers with the pixels; the next frame writes the PNG and closes.
        let img = egui::ColorImage::new([2, 1], vec![egui::Color32::RED, egui::Color32::BLUE]);
        requested.pop().unwrap().complete(Arc::new(img));
        let (o, _) = frame(&ctx, &mut shot, false);
        assert_eq!(o, ShotOutcome::Close);
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let info = dec.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (2, 1));
    }

    #[test]
    fn timeout_grabs_even_while_busy() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = egui::Context::default();
        let mut shot = Screenshotter::new(dir.path().join("t.png"), Duration::ZERO);
        let mut n = 0;
        loop {
            let (_, mut out) = frame(&ctx, &mut shot, true);
            n += 1;
            if !screenshot_requests(&mut out).is_empty() {
                break;
            }
            assert!(
                n <= SETTLE_FRAMES,
                "a stuck job must not block the screenshot"
            );
        }
    }

    #[test]
    fn png_round_trips_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let px = vec![
            egui::Color32::from_rgb(255, 0, 0),
            egui::Color32::from_rgb(0, 255, 0),
            egui::Color32::from_rgb(0, 0, 255),
            egui::Color32::from_rgb(10, 20, 30),
            egui::Color32::WHITE,
            egui::Color32::BLACK,
        ];
        let img = egui::ColorImage::new([3, 2], px);
        write_png(&path, &img).unwrap();
        assert!(!tmp_path(&path).exists());
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[0..4], &[255, 0, 0, 255]);
        assert_eq!(&buf[12..16], &[10, 20, 30, 255]);
        assert_eq!(&buf[20..24], &[0, 0, 0, 255]);
    }
}
