//! The WIMHF sparse autoencoder: BatchTopK with Matryoshka prefix losses, signed
//! activations (top-k on |a| across the batch), an inference threshold learned as an EMA of the
//! smallest kept |a|, AuxK for dead latents, normalised MSE, unit-norm decoder rows and a decoder
//! bias initialised to the median. Gradients are written by hand (the model is two matrices), the
//! matrix products go through candle. Training is deterministic for a seed.
use super::dense::{axpy, centred_mse, dot, matmul};
use super::error::SaeError;
use crate::jobs::{Metric, Progress, ProgressSink};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Training hyper-parameters. Defaults are the paper's (M = 32, K = 4, prefixes 8/32, Adam 5e-4,
/// batch 256, ≤ 50 epochs, patience 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeConfig {
    /// Number of latents M.
    pub latents: usize,
    /// Average active latents per row K (BatchTopK keeps K·batch entries per batch).
    pub k: usize,
    /// Matryoshka prefix sizes, strictly increasing, last = `latents` (empty: `[min(8,M), M]`).
    pub prefixes: Vec<usize>,
    /// Adam learning rate.
    pub lr: f64,
    /// Rows per batch.
    pub batch_size: usize,
    /// Upper bound on epochs.
    pub max_epochs: usize,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Epochs always run before early stopping may trigger.
    pub min_epochs: usize,
    /// A latent is dead after this many steps without firing (AuxK then trains it).
    pub dead_steps: usize,
    /// AuxK latents per row (0: `min(2K, M)`).
    pub aux_k: usize,
    /// Weight of the AuxK loss.
    pub aux_coef: f64,
    /// Global gradient-norm clip (0: off).
    pub clip_grad: f64,
    /// EMA rate of the inference threshold.
    pub threshold_lr: f64,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
}

impl Default for SaeConfig {
    fn default() -> Self {
        Self {
            latents: 32,
            k: 4,
            prefixes: vec![],
            lr: 5e-4,
            batch_size: 256,
            max_epochs: 50,
            patience: 3,
            min_epochs: 5,
            dead_steps: 64,
            aux_k: 0,
            aux_coef: 1.0 / 32.0,
            clip_grad: 1.0,
            threshold_lr: 1e-2,
            seed: 0,
        }
    }
}

/// Largest number of SAE latents (`sae run --latents`; README, "Limits").
pub const MAX_LATENTS: usize = 65_536;
/// Largest SAE learning rate (Adam steps of this size already overshoot).
pub const MAX_LR: f64 = 1.0;

impl SaeConfig {
    /// The prefixes actually used (defaults filled in), validated.
    pub fn resolved_prefixes(&self) -> Result<Vec<usize>, SaeError> {
        let m = self.latents;
        let p = if self.prefixes.is_empty() {
            if m > 8 {
                vec![8, m]
            } else {
                vec![m]
            }
        } else {
            self.prefixes.clone()
        };
        if p.last() != Some(&m) || p.windows(2).any(|w| w[0] >= w[1]) || p[0] == 0 {
            return Err(SaeError::Config(format!(
                "prefixes {p:?} must be strictly increasing and end at the number of latents {m}"
            )));
        }
        Ok(p)
    }

    /// Checks the settings (sizes against the documented limits, rates finite) before anything
    /// is allocated.
    pub fn validate(&self) -> Result<(), SaeError> {
        if self.latents == 0 || self.latents > MAX_LATENTS {
            return Err(SaeError::Config(format!(
                "latents = {}: must be from 1 to {MAX_LATENTS}",
                self.latents
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= MAX_LR) {
            return Err(SaeError::Config(format!(
                "learning rate = {}: must be a finite number above 0 and at most {MAX_LR}",
                self.lr
            )));
        }
        for (name, x) in [
            ("aux_coef", self.aux_coef),
            ("clip_grad", self.clip_grad),
            ("threshold_lr", self.threshold_lr),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return Err(SaeError::Config(format!(
                    "{name} = {x}: must be a finite number ≥ 0"
                )));
            }
        }
        if self.k == 0 || self.k > self.latents {
            return Err(SaeError::Config(format!(
                "need 1 ≤ k ≤ latents (k = {}, latents = {})",
                self.k, self.latents
            )));
        }
        if self.batch_size == 0 || self.max_epochs == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return Err(SaeError::Config(
                "batch size, epochs and learning rate must be > 0".into(),
            ));
        }
        self.resolved_prefixes().map(|_| ())
    }
}

/// A trained SAE in SAELens layout: `W_enc` `[d_in, d_sae]`, `b_enc` `[d_sae]`, `W_dec`
/// `[d_sae, d_in]` (unit-norm rows), `b_dec` `[d_in]`, inference `threshold`, and `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sae {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Encoder, row-major `[d_in, d_sae]`.
    pub w_enc: Vec<f32>,
    /// Encoder bias `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, row-major `[d_sae, d_in]`; row j is latent j's direction.
    pub w_dec: Vec<f32>,
    /// Decoder (input) bias `[d_in]`.
    pub b_dec: Vec<f32>,
    /// Inference threshold on |pre-activation|.
    pub threshold: f32,
    /// K used in training.
    pub k: usize,
    /// Matryoshka prefixes used in training.
    pub prefixes: Vec<usize>,
}

/// One training step's (or epoch's) metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Global step (batches seen).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Total loss (Matryoshka mean of normalised MSEs + AuxK).
    pub loss: f64,
    /// Fraction of variance explained by the full reconstruction.
    pub fve: f64,
    /// Mean active latents per row.
    pub l0: f64,
    /// Fraction of latents dead (no firing for `dead_steps` steps).
    pub dead_fraction: f64,
}

/// What training produced besides the SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Per-step training metrics.
    pub steps: Vec<StepMetrics>,
    /// Validation loss (inference mode, thresholded) after each epoch.
    pub val_loss: Vec<f64>,
    /// Validation FVE after each epoch.
    pub val_fve: Vec<f64>,
    /// Epoch whose weights were kept (best validation loss).
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// True when the user cancelled (the best weights so far are kept).
    pub cancelled: bool,
    /// Why training stopped early on a NaN or infinite loss after at least one good epoch
    /// (whose best weights are kept); `None` when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f64, t: u64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        let step = (lr * c2.sqrt() / c1) as f32;
        let eps = (eps * c2.sqrt()) as f32;
        let (b1, b2) = (b1 as f32, b2 as f32);
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= step * self.m[i] / (self.v[i].sqrt() + eps);
        }
    }
}

fn normalise_rows(w: &mut [f32], cols: usize) {
    for row in w.chunks_exact_mut(cols) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-8;
        row.iter_mut().for_each(|v| *v /= n);
    }
}

/// Rows of `x` minus `bias` (row-major, `bias.len()` columns).
fn centre(x: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, c)| *v -= c);
    }
    out
}

/// Indices of the `n` largest `score`s (ties broken by index, so selection is deterministic).
fn top_n(score: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    if n >= idx.len() {
        return idx;
    }
    if n == 0 {
        return Vec::new();
    }
    let cmp = |a: &usize, b: &usize| score[*b].total_cmp(&score[*a]).then(a.cmp(b));
    idx.select_nth_unstable_by(n - 1, cmp);
    idx.truncate(n);
    idx
}

/// Per-batch training state (gradients of the four parameter blocks and the forward results).
struct Grads {
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
}

impl Sae {
    /// A fresh SAE: decoder rows Xavier-uniform then unit-normed, encoder = decoderᵀ, zero
    /// encoder bias, decoder bias = the per-dimension median of `data` (`[rows, d_in]`).
    pub fn init(d_in: usize, cfg: &SaeConfig, data: &[f32]) -> Result<Self, SaeError> {
        cfg.validate()?;
        let m = cfg.latents;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let bound = (6.0 / (d_in + m) as f64).sqrt() as f32;
        let mut w_dec: Vec<f32> = (0..m * d_in)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        normalise_rows(&mut w_dec, d_in);
        let mut w_enc = vec![0.0f32; d_in * m];
        for j in 0..m {
            for i in 0..d_in {
                w_enc[i * m + j] = w_dec[j * d_in + i];
            }
        }
        let rows = data.len() / d_in.max(1);
        let mut b_dec = vec![0.0f32; d_in];
        if rows > 0 {
            let mut col = vec![0.0f32; rows];
            for (i, b) in b_dec.iter_mut().enumerate() {
                for r in 0..rows {
                    col[r] = data[r * d_in + i];
                }
                // torch.median's convention: the lower of the two middle values.
                let (_, mid, _) = col.select_nth_unstable_by((rows - 1) / 2, f32::total_cmp);
                *b = *mid;
            }
        }
        Ok(Self {
            d_in,
            d_sae: m,
            w_enc,
            b_enc: vec![0.0; m],
            w_dec,
            b_dec,
            threshold: 0.0,
            k: cfg.k,
            prefixes: cfg.resolved_prefixes()?,
        })
    }

    /// Pre-activations `(x − b_dec) W_enc + b_enc` for rows of `x` (`[rows, d_in]`).
    pub fn pre_activations(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.d_in;
        let xc = centre(x, &self.b_dec);
        let mut p = matmul(&xc, rows, self.d_in, false, &self.w_enc, self.d_sae, false);
        for row in p.chunks_exact_mut(self.d_sae) {
            row.iter_mut().zip(&self.b_enc).for_each(|(v, b)| *v += b);
        }
        p
    }

    /// Inference encoding: signed pre-activations whose |value| exceeds the threshold
    /// (`[rows, d_sae]`). A negative threshold (not yet learned) keeps every value.
    pub fn encode(&self, x: &[f32]) -> Vec<f32> {
        let mut p = self.pre_activations(x);
        let t = self.threshold;
        p.iter_mut().for_each(|v| {
            if v.abs() <= t {
                *v = 0.0
            }
        });
        p
    }

    /// Reconstruction `a W_dec + b_dec` of encodings `a` (`[rows, d_sae]`).
    pub fn decode(&self, a: &[f32]) -> Vec<f32> {
        let rows = a.len() / self.d_sae;
        let mut r = matmul(a, rows, self.d_sae, false, &self.w_dec, self.d_in, false);
        for row in r.chunks_exact_mut(self.d_in) {
            row.iter_mut().zip(&self.b_dec).for_each(|(v, b)| *v += b);
        }
        r
    }

    /// Latent j's decoder direction (unit norm).
    pub fn direction(&self, j: usize) -> &[f32] {
        &self.w_dec[j * self.d_in..(j + 1) * self.d_in]
    }

    /// Inference-mode metrics on `x`: (Matryoshka loss, FVE, L0).
    pub fn evaluate(&self, x: &[f32]) -> (f64, f64, f64) {
        let rows = x.len() / self.d_in;
        if rows == 0 {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let a = self.encode(x);
        let base = centred_mse(x, self.d_in).max(1e-12);
        let mut loss = 0.0;
        let mut fve = 0.0;
        for &pm in &self.prefixes {
            let mut am = a.clone();
            for row in am.chunks_exact_mut(self.d_sae) {
                row[pm..].iter_mut().for_each(|v| *v = 0.0);
            }
            let r = self.decode(&am);
            let mse = r
                .iter()
                .zip(x)
                .map(|(p, t)| ((p - t) as f64).powi(2))
                .sum::<f64>()
                / x.len() as f64;
            loss += mse / base;
            fve = 1.0 - mse / base;
        }
        let l0 = a.iter().filter(|v| **v != 0.0).count() as f64 / rows as f64;
        (loss / self.prefixes.len() as f64, fve, l0)
    }

    /// One BatchTopK training step's forward and backward on `x` (`[b, d_in]`). Updates the
    /// threshold EMA and the dead-step counters; returns gradients and metrics.
    ///
    /// Only the encoder product is dense: the codes are sparse (K of M a row on average), so
    /// reconstructions, decoder gradients and the gradient into the pre-activations are
    /// accumulated over the kept (row, latent) entries only, and the encoder-side gradients
    /// over the entries that receive a gradient. Equal to the dense formulation up to float
    /// summation order (tests/sae_core.rs checks the trained weights against it).
    fn forward_backward(
        &mut self,
        x: &[f32],
        cfg: &SaeConfig,
        since_fired: &mut [u64],
    ) -> (Grads, f64, f64, f64, f64) {
        let (d, m) = (self.d_in, self.d_sae);
        let b = x.len() / d;
        let xc = centre(x, &self.b_dec);
        let mut p = matmul(&xc, b, d, false, &self.w_enc, m, false);
        for row in p.chunks_exact_mut(m) {
            row.iter_mut().zip(&self.b_enc).for_each(|(v, c)| *v += c);
        }
        // BatchTopK on |p| over the whole batch; `keep` sorted, so grouped by row.
        let absp: Vec<f32> = p.iter().map(|v| v.abs()).collect();
        let mut keep = top_n(&absp, (cfg.k * b).min(b * m));
        keep.sort_unstable();
        let mut sel = vec![false; b * m];
        let mut min_kept = f32::INFINITY;
        let mut fired = vec![false; m];
        let mut active = 0usize;
        for &i in &keep {
            sel[i] = true;
            if absp[i] > 0.0 {
                min_kept = min_kept.min(absp[i]);
            }
            if p[i] != 0.0 {
                fired[i % m] = true;
                active += 1;
            }
        }
        if min_kept.is_finite() {
            if self.threshold < 0.0 {
                // First step: start the EMA at the observed value (as BatchTopK's reference
                // implementation does) rather than at 0, which would bias the threshold low for
                // the first ~1/threshold_lr steps, i.e. the whole run on small data.
                self.threshold = min_kept;
            } else {
                let r = cfg.threshold_lr as f32;
                self.threshold = (1.0 - r) * self.threshold + r * min_kept;
            }
        }
        for (c, f) in since_fired.iter_mut().zip(&fired) {
            *c = if *f { 0 } else { *c + 1 };
        }
        let base = centred_mse(x, d).max(1e-12);
        let np = self.prefixes.len();
        let mut g_wdec = vec![0.0f32; m * d];
        let mut g_bdec = vec![0.0f32; d];
        // Gradient into the pre-activations, dense [b, m] (nonzero only where kept or AuxK).
        let mut d_p = vec![0.0f32; b * m];
        let mut loss = 0.0;
        let mut fve = 0.0;
        // Reconstructions grow prefix by prefix: r = b_dec + Σ_{kept j < pm} a_j W_dec[j].
        let mut recon: Vec<f32> = Vec::with_capacity(b * d);
        for _ in 0..b {
            recon.extend_from_slice(&self.b_dec);
        }
        let mut g = vec![0.0f32; b * d];
        let scale = (2.0 / ((b * d) as f64 * base * np as f64)) as f32;
        let mut lo = 0;
        for (pi, &pm) in self.prefixes.iter().enumerate() {
            for &i in &keep {
                let (r, j) = (i / m, i % m);
                if j >= lo && j < pm {
                    axpy(
                        p[i],
                        &self.w_dec[j * d..(j + 1) * d],
                        &mut recon[r * d..(r + 1) * d],
                    );
                }
            }
            lo = pm;
            let mut sse = 0.0f64;
            for ((gv, rv), xv) in g.iter_mut().zip(&recon).zip(x) {
                let e = rv - xv;
                sse += (e as f64) * (e as f64);
                *gv = e * scale;
            }
            let mse = sse / (b * d) as f64;
            loss += mse / base / np as f64;
            for row in g.chunks_exact(d) {
                g_bdec.iter_mut().zip(row).for_each(|(acc, v)| *acc += v);
            }
            for &i in &keep {
                let (r, j) = (i / m, i % m);
                if j < pm {
                    let gr = &g[r * d..(r + 1) * d];
                    axpy(p[i], gr, &mut g_wdec[j * d..(j + 1) * d]);
                    d_p[i] += dot(gr, &self.w_dec[j * d..(j + 1) * d]);
                }
            }
            if pi + 1 == np {
                fve = 1.0 - mse / base;
            }
        }
        // AuxK: dead latents reconstruct the residual.
        let dead: Vec<usize> = (0..m)
            .filter(|&j| since_fired[j] >= cfg.dead_steps as u64)
            .collect();
        let dead_fraction = dead.len() as f64 / m as f64;
        let mut asel = Vec::new();
        if !dead.is_empty() && cfg.aux_coef > 0.0 {
            let aux_k = if cfg.aux_k == 0 {
                (2 * cfg.k).min(m)
            } else {
                cfg.aux_k
            }
            .min(dead.len());
            // e = x − full reconstruction; the AuxK reconstruction has no bias.
            let e: Vec<f32> = x.iter().zip(&recon).map(|(t, r)| t - r).collect();
            let base_e = centred_mse(&e, d).max(1e-12);
            let mut ar = vec![0.0f32; b * d];
            let mut scores = vec![0.0f32; dead.len()];
            for r in 0..b {
                for (s, &j) in scores.iter_mut().zip(&dead) {
                    *s = absp[r * m + j];
                }
                for t in top_n(&scores, aux_k) {
                    let i = r * m + dead[t];
                    asel.push(i);
                    let j = dead[t];
                    axpy(
                        p[i],
                        &self.w_dec[j * d..(j + 1) * d],
                        &mut ar[r * d..(r + 1) * d],
                    );
                }
            }
            let scale = (cfg.aux_coef * 2.0 / ((b * d) as f64 * base_e)) as f32;
            let mut sse = 0.0f64;
            for (av, ev) in ar.iter_mut().zip(&e) {
                let diff = *av - ev;
                sse += (diff as f64) * (diff as f64);
                *av = diff * scale;
            }
            loss += cfg.aux_coef * sse / (b * d) as f64 / base_e;
            for &i in &asel {
                let (r, j) = (i / m, i % m);
                let gr = &ar[r * d..(r + 1) * d];
                axpy(p[i], gr, &mut g_wdec[j * d..(j + 1) * d]);
                d_p[i] += dot(gr, &self.w_dec[j * d..(j + 1) * d]);
            }
        }
        // Encoder side: only kept and AuxK entries carry a gradient (the rest of d_p is 0).
        let mut touched = sel;
        for &i in &asel {
            touched[i] = true;
        }
        let mut g_wenc_t = vec![0.0f32; m * d];
        let mut g_benc = vec![0.0f32; m];
        for (i, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
            let (r, j) = (i / m, i % m);
            let gp = d_p[i];
            g_benc[j] += gp;
            axpy(
                gp,
                &xc[r * d..(r + 1) * d],
                &mut g_wenc_t[j * d..(j + 1) * d],
            );
        }
        let mut g_wenc = vec![0.0f32; d * m];
        for j in 0..m {
            for i in 0..d {
                g_wenc[i * m + j] = g_wenc_t[j * d + i];
            }
        }
        // d loss / d b_dec through the encoder: −W_enc · (Σ_r d_p[r]).
        for (i, acc) in g_bdec.iter_mut().enumerate() {
            *acc -= dot(&self.w_enc[i * m..(i + 1) * m], &g_benc);
        }
        // Keep decoder rows on the unit sphere: drop the radial gradient component.
        for j in 0..m {
            let w = &self.w_dec[j * d..(j + 1) * d];
            let g = &mut g_wdec[j * d..(j + 1) * d];
            let dot: f32 = dot(w, g);
            g.iter_mut().zip(w).for_each(|(gv, wv)| *gv -= dot * wv);
        }
        let l0 = active as f64 / b as f64;
        (
            Grads {
                w_enc: g_wenc,
                b_enc: g_benc,
                w_dec: g_wdec,
                b_dec: g_bdec,
            },
            loss,
            fve,
            l0,
            dead_fraction,
        )
    }
}

/// Trains an SAE on `train` (`[rows, d_in]`, e.g. Δ and −Δ stacked), early-stopping on the
/// inference-mode loss of `val`. Reports per-step metrics (`loss`, `fve`, `l0`, `dead`) to
/// `sink` and stops early (keeping the best weights) when it is cancelled.
pub fn train_sae(
    train: &[f32],
    val: &[f32],
    d_in: usize,
    cfg: &SaeConfig,
    sink: &dyn ProgressSink,
) -> Result<(Sae, TrainHistory), SaeError> {
    cfg.validate()?;
    if d_in == 0 || !train.len().is_multiple_of(d_in) || !val.len().is_multiple_of(d_in) {
        return Err(SaeError::Config(format!(
            "training data is not a whole number of {d_in}-wide rows"
        )));
    }
    let rows = train.len() / d_in;
    if rows < 2 {
        return Err(SaeError::Config(format!(
            "need at least 2 training rows, got {rows}"
        )));
    }
    if train.iter().chain(val).any(|v| !v.is_finite()) {
        return Err(SaeError::Config(
            "training data contains NaN or infinite values".into(),
        ));
    }
    let mut sae = Sae::init(d_in, cfg, train)?;
    sae.threshold = -1.0; // unset: the first step initialises the EMA
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x5AE5_AE5A);
    let mut since = vec![0u64; cfg.latents];
    let (mut ad_we, mut ad_be, mut ad_wd, mut ad_bd) = (
        Adam::new(sae.w_enc.len()),
        Adam::new(sae.b_enc.len()),
        Adam::new(sae.w_dec.len()),
        Adam::new(sae.b_dec.len()),
    );
    let bs = cfg.batch_size.min(rows);
    let per_epoch = rows.div_ceil(bs) as u64;
    let total = per_epoch * cfg.max_epochs as u64;
    let mut hist = TrainHistory {
        steps: vec![],
        val_loss: vec![],
        val_fve: vec![],
        best_epoch: 0,
        epochs: 0,
        cancelled: false,
        diverged: None,
    };
    let mut best: Option<(f64, Sae)> = None;
    let mut bad_epochs = 0;
    let mut t = 0u64;
    let mut order: Vec<usize> = (0..rows).collect();
    let mut batch = Vec::with_capacity(bs * d_in);
    'epochs: for epoch in 0..cfg.max_epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(bs) {
            if sink.is_cancelled() {
                hist.cancelled = true;
                break 'epochs;
            }
            batch.clear();
            for &r in chunk {
                batch.extend_from_slice(&train[r * d_in..(r + 1) * d_in]);
            }
            #[cfg(test)]
            if tests::POISON_AT_STEP.with(|c| c.get()) == t + 1 {
                // Tests: the weights go bad as after an overflowing update.
                sae.w_enc[0] = f32::NAN;
            }
            let (mut g, loss, fve, l0, dead) = sae.forward_backward(&batch, cfg, &mut since);
            if !loss.is_finite() {
                let msg = format!(
                    "SAE training diverged: the loss is {loss} at step {} (epoch {}) with \
                     learning rate {} (lower --lr)",
                    t + 1,
                    epoch + 1,
                    cfg.lr
                );
                if best.is_none() {
                    return Err(SaeError::Data(format!("{msg}; nothing was written")));
                }
                hist.diverged = Some(msg);
                break 'epochs;
            }
            if cfg.clip_grad > 0.0 {
                let norm = [&g.w_enc, &g.b_enc, &g.w_dec, &g.b_dec]
                    .iter()
                    .map(|v| v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>())
                    .sum::<f64>()
                    .sqrt();
                if norm > cfg.clip_grad {
                    let s = (cfg.clip_grad / (norm + 1e-6)) as f32;
                    for v in [&mut g.w_enc, &mut g.b_enc, &mut g.w_dec, &mut g.b_dec] {
                        v.iter_mut().for_each(|x| *x *= s);
                    }
                }
            }
            t += 1;
            ad_we.step(&mut sae.w_enc, &g.w_enc, cfg.lr, t);
            ad_be.step(&mut sae.b_enc, &g.b_enc, cfg.lr, t);
            ad_wd.step(&mut sae.w_dec, &g.w_dec, cfg.lr, t);
            ad_bd.step(&mut sae.b_dec, &g.b_dec, cfg.lr, t);
            normalise_rows(&mut sae.w_dec, d_in);
            let sm = StepMetrics {
                step: t,
                epoch,
                loss,
                fve,
                l0,
                dead_fraction: dead,
            };
            hist.steps.push(sm);
            sink.report(
                Progress::new(format!("SAE epoch {}", epoch + 1), t, Some(total))
                    .metric(Metric::Loss, loss)
                    .metric(Metric::Fve, fve)
                    .metric(Metric::L0, l0)
                    .metric(Metric::Dead, dead),
            );
        }
        hist.epochs = epoch + 1;
        let (vl, vf) = if val.is_empty() {
            let (l, f, _) = sae.evaluate(train);
            (l, f)
        } else {
            let (l, f, _) = sae.evaluate(val);
            (l, f)
        };
        if !vl.is_finite() || !vf.is_finite() {
            let msg = format!(
                "SAE training diverged: the validation loss is {vl} after epoch {} with \
                 learning rate {} (lower --lr)",
                epoch + 1,
                cfg.lr
            );
            if best.is_none() {
                return Err(SaeError::Data(format!("{msg}; nothing was written")));
            }
            // The epoch's numbers are not kept: the report shows the good epochs only.
            hist.epochs = epoch;
            hist.diverged = Some(msg);
            break;
        }
        hist.val_loss.push(vl);
        hist.val_fve.push(vf);
        sink.report(
            Progress::new(format!("SAE epoch {}", epoch + 1), t, Some(total))
                .metric(Metric::ValLoss, vl)
                .metric(Metric::ValFve, vf),
        );
        let improved = match &best {
            None => true,
            Some((b, _)) => vl < *b - 1e-6,
        };
        if improved {
            best = Some((vl, sae.clone()));
            hist.best_epoch = epoch;
            bad_epochs = 0;
        } else {
            bad_epochs += 1;
            if bad_epochs >= cfg.patience && epoch + 1 >= cfg.min_epochs {
                break;
            }
        }
    }
    let mut sae = match best {
        Some((_, s)) => s,
        None => sae,
    };
    sae.threshold = sae.threshold.max(0.0);
    Ok((sae, hist))
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The training step (1-based) at which [`train_sae`] poisons its weights with a NaN.
        pub(super) static POISON_AT_STEP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn poisoned_run(
        train: &[f32],
        val: &[f32],
        d: usize,
        cfg: &SaeConfig,
        step: u64,
    ) -> Result<(Sae, TrainHistory), SaeError> {
        POISON_AT_STEP.with(|c| c.set(step));
        let r = train_sae(train, val, d, cfg, &crate::jobs::NoProgress);
        POISON_AT_STEP.with(|c| c.set(0));
        r
    }

    /// A NaN loss part-way through training stops it with a message naming the step and the
    /// learning rate, and returns the best weights of the good epochs (bit-identical to a run
    /// that stopped there), never the NaN ones; a NaN before any good epoch writes nothing.
    #[test]
    fn a_nan_loss_keeps_the_best_state() {
        let d = 8;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let rows: Vec<f32> = (0..80 * d)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let (train, val) = rows.split_at(64 * d);
        let cfg = SaeConfig {
            latents: 8,
            k: 2,
            batch_size: 16,
            max_epochs: 3,
            patience: 100,
            min_epochs: 1,
            seed: 9,
            ..Default::default()
        };
        let per_epoch = 4u64; // 64 rows in batches of 16
        let (good, hg) = train_sae(train, val, d, &cfg, &crate::jobs::NoProgress).unwrap();
        assert!(hg.diverged.is_none());
        let long = SaeConfig {
            max_epochs: 6,
            ..cfg.clone()
        };
        let step = 3 * per_epoch + 2;
        let (kept, hk) = poisoned_run(train, val, d, &long, step).unwrap();
        let msg = hk.diverged.clone().expect("the divergence is reported");
        assert!(
            msg.contains(&format!("step {step}"))
                && msg.contains("epoch 4")
                && msg.contains("--lr"),
            "{msg}"
        );
        assert_eq!(hk.epochs, 3);
        assert_eq!(hk.val_loss, hg.val_loss);
        assert_eq!(hk.best_epoch, hg.best_epoch);
        assert_eq!(
            kept, good,
            "the kept state is the best state of the good epochs"
        );
        assert!(kept
            .w_enc
            .iter()
            .chain(&kept.w_dec)
            .chain(&kept.b_enc)
            .chain(&kept.b_dec)
            .all(|v| v.is_finite()));
        assert!(kept.threshold.is_finite());
        // Before any good epoch there is nothing to keep: an error, nothing returned.
        let e = poisoned_run(train, val, d, &long, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step 2") && e.contains("nothing was written"),
            "{e}"
        );
    }

    #[test]
    fn top_n_is_exact_and_deterministic() {
        let s = [0.5, 3.0, 1.0, 3.0, -2.0, 0.1];
        let mut t = top_n(&s, 3);
        t.sort();
        assert_eq!(t, vec![1, 2, 3]);
        assert_eq!(top_n(&s, 0), Vec::<usize>::new());
        assert_eq!(top_n(&s, 10).len(), 6);
    }

    #[test]
    fn prefixes_are_validated() {
        let c = SaeConfig {
            latents: 32,
            prefixes: vec![8, 16],
            ..Default::default()
        };
        assert!(c.resolved_prefixes().is_err());
        let c = SaeConfig {
            latents: 32,
            ..Default::default()
        };
        assert_eq!(c.resolved_prefixes().unwrap(), vec![8, 32]);
        let c = SaeConfig {
            latents: 4,
            k: 5,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    /// The hand-written gradient matches finite differences of the loss (no AuxK, no prefixes
    /// beyond the full one so the top-k set is locally constant).
    #[test]
    fn gradient_matches_finite_differences() {
        let (d, m, b) = (5, 6, 7);
        let cfg = SaeConfig {
            latents: m,
            k: 2,
            prefixes: vec![3, 6],
            aux_coef: 0.0,
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let x: Vec<f32> = (0..b * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut sae = Sae::init(d, &cfg, &x).unwrap();
        sae.b_enc
            .iter_mut()
            .for_each(|v| *v = rng.random_range(-0.1..0.1));
        let loss_at = |s: &Sae| {
            let mut s = s.clone();
            let mut since = vec![0u64; m];
            s.forward_backward(&x, &cfg, &mut since).1
        };
        let mut since = vec![0u64; m];
        let (g, _, _, _, _) = sae.clone().forward_backward(&x, &cfg, &mut since);
        let h = 1e-3f32;
        for (name, idx) in [("w_enc", 4usize), ("w_enc", 17), ("b_enc", 2), ("b_dec", 1)] {
            let mut p = sae.clone();
            let mut q = sae.clone();
            let (gv, pv, qv) = match name {
                "w_enc" => (g.w_enc[idx], &mut p.w_enc[idx], &mut q.w_enc[idx]),
                "b_enc" => (g.b_enc[idx], &mut p.b_enc[idx], &mut q.b_enc[idx]),
                _ => (g.b_dec[idx], &mut p.b_dec[idx], &mut q.b_dec[idx]),
            };
            *pv += h;
            *qv -= h;
            let fd = (loss_at(&p) - loss_at(&q)) / (2.0 * h as f64);
            assert!(
                (fd - gv as f64).abs() < 2e-3 + 0.02 * fd.abs(),
                "{name}[{idx}]: fd {fd} vs {gv}"
            );
        }
    }
}
