//! How the app starts: [`StartOptions::from_env`] is the one place that reads the `STEERLAB_*`
//! start-up variables (screenshots, scripted demos, benchmarks). Every variable:
//!
//! | variable | effect |
//! |---|---|
//! | `STEERLAB_MODEL` | model to load at start (default: the cached default model, if present) |
//! | `STEERLAB_DATA` | dataset to open at start (also the Steer panel's training data) |
//! | `STEERLAB_PANEL` | panel shown (`model`, `generate`, `data`, `steer`, `features`, `dissect`) |
//! | `STEERLAB_PROMPT` | generate from this prompt once the model is loaded |
//! | `STEERLAB_STEER_EVAL` | A/B set opened as the Steer panel's evaluation set |
//! | `STEERLAB_STEER_METHOD` | `bipo`, `caa` or `pca`: train as soon as model and data are loaded, then sweep and score |
//! | `STEERLAB_STEER_LAYERS`, `_EPOCHS`, `_LR` | training settings of that run |
//! | `STEERLAB_STEER_STRENGTH` | slider value scored after training |
//! | `STEERLAB_STEER_PROMPT` | prompt of the steered/unsteered generations |
//! | `STEERLAB_FEATURES_RUN` | feature-run folder opened at start (its top feature selected) |
//! | `STEERLAB_FEATURES_VIEW` | `table`, `map` or `clusters`: the Features view shown first |
//! | `STEERLAB_FEATURES_TRAIN` | `minilm` or `llm`: one feature run once its inputs are loaded (while the Features panel is shown) |
//! | `STEERLAB_FEATURES_APPLY` | `1`: apply the opened feature run to the start-up dataset once both are loaded ("Apply to this dataset") |
//! | `STEERLAB_FILE_BROWSER` | open the built-in file browser in this folder at start ("Dataset file"; screenshots of the browser) |
//! | `STEERLAB_SCREENSHOT` | write a PNG of the window once idle, then close; no settings read or written |
//! | `STEERLAB_SCREENSHOT_TIMEOUT` | seconds to wait for jobs before the screenshot (default 180) |
//! | `STEERLAB_FRAME_STATS` | write frame-time percentiles (JSON) on exit; draw continuously |
//! | `STEERLAB_WINDOW` | initial window size `WIDTHxHEIGHT` in points (default 1280x800; screenshots at other sizes) |
//!
//! Library-level switches (`STEERLAB_HOME`, the CPU kernel switches) are read by the library.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::features::EmbedderChoice;
use super::nav::PanelId;
use crate::steer::Method;

/// How the app starts: what to load and which panel to show.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Load this model in the background at start.
    pub model: Option<PathBuf>,
    /// Open this dataset at start.
    pub data: Option<PathBuf>,
    /// Show this panel (else the persisted one).
    pub panel: Option<PanelId>,
    /// Generate from this prompt (chat template on) once the model is loaded.
    pub prompt: Option<String>,
    /// Steer panel start-up choices (`STEERLAB_STEER_*`).
    pub steer: SteerStart,
    /// Features panel start-up choices (`STEERLAB_FEATURES_*`).
    pub features: FeaturesStart,
    /// `STEERLAB_SCREENSHOT` and `STEERLAB_SCREENSHOT_TIMEOUT`: write a PNG of the window here
    /// once no job runs (waiting at most this long), then close.
    pub screenshot: Option<(PathBuf, Duration)>,
    /// `STEERLAB_FRAME_STATS`: write frame-time percentiles (JSON) here on exit.
    pub frame_stats: Option<PathBuf>,
    /// `STEERLAB_FILE_BROWSER`: open the built-in file browser in this folder at start.
    pub file_browser: Option<PathBuf>,
    /// `STEERLAB_WINDOW`: initial window size in points (`None`: 1280×800).
    pub window: Option<[f32; 2]>,
}

impl StartOptions {
    /// The normal start: the default model if it is in the cache, plus every `STEERLAB_*`
    /// start-up variable listed at the top of this file.
    /// An unknown `STEERLAB_PANEL` value is an error listing the valid ones.
    pub fn from_env() -> anyhow::Result<Self> {
        let env_path = |k: &str| {
            std::env::var_os(k)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let model = env_path("STEERLAB_MODEL").or_else(|| Some(crate::paths::default_model_path()));
        let data = env_path("STEERLAB_DATA");
        let panel = match std::env::var("STEERLAB_PANEL") {
            Ok(k) if !k.is_empty() => Some(PanelId::from_key(&k).ok_or_else(|| {
                let keys: Vec<_> = PanelId::ALL.iter().map(|p| p.key()).collect();
                anyhow::anyhow!(
                    "STEERLAB_PANEL={k}: unknown panel (one of: {})",
                    keys.join(", ")
                )
            })?),
            _ => None,
        };
        let prompt = std::env::var("STEERLAB_PROMPT")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Self {
            model,
            data,
            panel,
            prompt,
            steer: SteerStart::from_env()?,
            features: FeaturesStart::from_env(),
            screenshot: env_path("STEERLAB_SCREENSHOT").map(|out| {
                let secs = std::env::var("STEERLAB_SCREENSHOT_TIMEOUT")
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(180);
                (out, Duration::from_secs(secs))
            }),
            frame_stats: env_path("STEERLAB_FRAME_STATS"),
            file_browser: env_path("STEERLAB_FILE_BROWSER"),
            window: match std::env::var("STEERLAB_WINDOW") {
                Ok(w) if !w.is_empty() => Some(parse_window(&w)?),
                _ => None,
            },
        })
    }
}

/// Parses `WIDTHxHEIGHT` (points, each 200–10000).
pub fn parse_window(s: &str) -> anyhow::Result<[f32; 2]> {
    let bad = || anyhow::anyhow!("STEERLAB_WINDOW={s}: expected WIDTHxHEIGHT, e.g. 1920x1080");
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (f32, f32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(200.0..=10000.0).contains(&w) || !(200.0..=10000.0).contains(&h) {
        anyhow::bail!("STEERLAB_WINDOW={s}: width and height must be 200-10000");
    }
    Ok([w, h])
}

/// Start-up choices for the Steer panel (screenshots, scripted demos), from the environment:
/// `STEERLAB_STEER_EVAL` (A/B set to open), `STEERLAB_STEER_METHOD` (train this method as soon
/// as the model and data are loaded), `STEERLAB_STEER_LAYERS`, `STEERLAB_STEER_EPOCHS`,
/// `STEERLAB_STEER_LR`, `STEERLAB_STEER_STRENGTH` (slider value scored after training),
/// `STEERLAB_STEER_PROMPT` and `STEERLAB_STEER_LANDSCAPE` (`LAYERS;MULTIPLIERS`: a layer × strength
/// sweep started after the behaviour sweep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SteerStart {
    /// A/B evaluation set to open.
    pub eval: Option<PathBuf>,
    /// Method to train automatically.
    pub method: Option<Method>,
    /// Layers to use.
    pub layers: Option<String>,
    /// BiPO epochs.
    pub epochs: Option<usize>,
    /// BiPO learning rate.
    pub lr: Option<f64>,
    /// Slider value to score after training.
    pub strength: Option<f64>,
    /// Prompt for the generations.
    pub prompt: Option<String>,
    /// Layer × strength sweep to start after the behaviour sweep: `LAYERS;MULTIPLIERS`.
    pub landscape: Option<String>,
}

impl SteerStart {
    /// Reads the `STEERLAB_STEER_*` variables; an invalid value is an error naming it.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
        let method = match var("STEERLAB_STEER_METHOD") {
            Some(m) => Some(Method::from_name(&m).with_context(|| {
                format!("STEERLAB_STEER_METHOD={m}: unknown method (bipo, caa, pca or probe)")
            })?),
            None => None,
        };
        fn parsed<T>(v: Option<String>, key: &str, what: &str) -> anyhow::Result<Option<T>>
        where
            T: std::str::FromStr,
            T::Err: std::error::Error + Send + Sync + 'static,
        {
            v.map(|s| {
                s.trim()
                    .parse::<T>()
                    .with_context(|| format!("{key}={s}: {what}"))
            })
            .transpose()
        }
        let epochs = parsed::<usize>(
            var("STEERLAB_STEER_EPOCHS"),
            "STEERLAB_STEER_EPOCHS",
            "not a count",
        )?;
        let lr = parsed::<f64>(
            var("STEERLAB_STEER_LR"),
            "STEERLAB_STEER_LR",
            "not a number",
        )?;
        let strength = parsed::<f64>(
            var("STEERLAB_STEER_STRENGTH"),
            "STEERLAB_STEER_STRENGTH",
            "not a number",
        )?;
        Ok(Self {
            eval: var("STEERLAB_STEER_EVAL").map(PathBuf::from),
            method,
            layers: var("STEERLAB_STEER_LAYERS"),
            epochs,
            lr,
            strength,
            prompt: var("STEERLAB_STEER_PROMPT"),
            landscape: var("STEERLAB_STEER_LANDSCAPE"),
        })
    }
}

/// Start-up choices for the Features panel: `STEERLAB_FEATURES_RUN` (a run folder to open) and
/// `STEERLAB_FEATURES_TRAIN` (`minilm` or `llm`: start one run with this embedder as soon as
/// the data and, for `llm`, the model are loaded; `scripts/frame-bench.sh sae`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeaturesStart {
    /// Run folder to open.
    pub run: Option<PathBuf>,
    /// Embedder of the run to start.
    pub train: Option<EmbedderChoice>,
    /// Why `STEERLAB_FEATURES_TRAIN` was not understood (shown in the Features panel).
    pub error: Option<String>,
    /// `STEERLAB_FEATURES_VIEW` (`table`, `map` or `clusters`): the view shown first.
    pub view: Option<super::features::FeatureView>,
    /// `STEERLAB_FEATURES_APPLY=1`: apply the opened run to the start-up dataset once loaded.
    pub apply: bool,
}

impl FeaturesStart {
    /// Reads the `STEERLAB_FEATURES_*` variables.
    pub fn from_env() -> Self {
        let mut s = FeaturesStart {
            run: std::env::var_os("STEERLAB_FEATURES_RUN")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ..Default::default()
        };
        if let Ok(v) = std::env::var("STEERLAB_FEATURES_VIEW") {
            match v.parse() {
                Ok(v) => s.view = Some(v),
                Err(e) => s.error = Some(format!("STEERLAB_FEATURES_VIEW: {e}")),
            }
        }
        match std::env::var("STEERLAB_FEATURES_APPLY").as_deref() {
            Ok("1") => s.apply = true,
            Ok("0") | Ok("") | Err(_) => {}
            Ok(v) => s.error = Some(format!("STEERLAB_FEATURES_APPLY={v}: expected 1 or 0")),
        }
        if let Ok(e) = std::env::var("STEERLAB_FEATURES_TRAIN") {
            match e.as_str() {
                "minilm" => s.train = Some(EmbedderChoice::MiniLm),
                "llm" => s.train = Some(EmbedderChoice::Llm),
                _ => {
                    s.error = Some(format!(
                        "STEERLAB_FEATURES_TRAIN={e}: unknown embedder (minilm or llm)"
                    ))
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::parse_window;

    #[test]
    fn window_sizes_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_window("1920x1080").unwrap(), [1920.0, 1080.0]);
        assert_eq!(parse_window(" 1280X800 ").unwrap(), [1280.0, 800.0]);
        for bad in ["1920", "x", "axb", "100x100", "1920x-5"] {
            let e = parse_window(bad).unwrap_err().to_string();
            assert!(e.contains("STEERLAB_WINDOW"), "{bad}: {e}");
        }
    }
}
