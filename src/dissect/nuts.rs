//! The No-U-Turn sampler for the dissection posterior, written here (no external sampler).
//!
//! Algorithm (Hoffman & Gelman 2014; Betancourt 2017, as in Stan and NumPyro):
//! - multinomial NUTS: trajectories grow by doubling in a random direction; within a subtree
//!   the proposal is drawn uniformly in proportion to exp(−H) ("progressive" sampling), at the
//!   top level biased towards the newest subtree; the generalised no-U-turn criterion is checked
//!   on every merged subtree, including the two extra checks across the subtree boundary that
//!   Stan added in 2.23; a step whose energy error exceeds 1000 is divergent and stops the tree;
//!   maximum tree depth 10.
//! - warm-up: dual averaging of the step size (γ = 0.05, t₀ = 10, κ = 0.75, target mean
//!   acceptance 0.8) and a diagonal mass matrix estimated in Stan's expanding windows
//!   (75-draw initial buffer, windows 25, 50, 100, … , 50-draw terminal buffer), regularised as
//!   (n/(n+5))·var + 10⁻³·5/(n+5); after each window the step size is re-initialised.
//! - chains run on scoped threads, each with its own seeded RNG (seed, chain) → reproducible.
//! - initial points uniform in (−2, 2) per coordinate, as NumPyro's `init_to_uniform`.
//!
//! Must not know about factors, groups or reports: it samples a [`Posterior`].
use super::error::DissectError;
use super::posterior::Posterior;
use crate::numeric::log_add_exp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Largest number of chains (each is a thread; README, "Limits").
pub const MAX_CHAINS: usize = 64;
/// Largest number of kept draws, and of warm-up iterations, per chain (README, "Limits").
pub const MAX_DRAWS: usize = 100_000;
/// Largest maximum tree depth (2^depth leapfrog steps per iteration).
pub const MAX_DEPTH: usize = 15;

/// Sampler settings (defaults as GAIR: 500 warm-up, 2000 draws × 4 chains).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NutsConfig {
    /// Warm-up (adaptation) iterations per chain, discarded.
    pub warmup: usize,
    /// Kept draws per chain.
    pub draws: usize,
    /// Number of chains (each on its own thread).
    pub chains: usize,
    /// Maximum tree depth (2^depth leapfrog steps at most per iteration).
    pub max_depth: usize,
    /// Target mean acceptance statistic for step-size adaptation.
    pub target_accept: f64,
    /// RNG seed; chain c uses a stream derived from (seed, c).
    pub seed: u64,
}

impl Default for NutsConfig {
    fn default() -> Self {
        Self {
            warmup: 500,
            draws: 2000,
            chains: 4,
            max_depth: 10,
            target_accept: 0.8,
            seed: 0,
        }
    }
}

impl NutsConfig {
    /// Checks the settings against the documented limits before anything is allocated.
    pub fn validate(&self) -> Result<(), DissectError> {
        let bad = |m: String| Err(DissectError::BadOption(m));
        if self.chains == 0 || self.chains > MAX_CHAINS {
            return bad(format!(
                "chains = {}: must be from 1 to {MAX_CHAINS}",
                self.chains
            ));
        }
        if self.draws == 0 || self.draws > MAX_DRAWS {
            return bad(format!(
                "draws = {}: must be from 1 to {MAX_DRAWS} per chain",
                self.draws
            ));
        }
        if self.warmup > MAX_DRAWS {
            return bad(format!(
                "warmup = {}: must be at most {MAX_DRAWS} per chain",
                self.warmup
            ));
        }
        if self.max_depth == 0 || self.max_depth > MAX_DEPTH {
            return bad(format!(
                "max_depth = {}: must be from 1 to {MAX_DEPTH}",
                self.max_depth
            ));
        }
        if !(self.target_accept > 0.0 && self.target_accept < 1.0) {
            return bad(format!(
                "target_accept = {}: must be strictly between 0 and 1",
                self.target_accept
            ));
        }
        Ok(())
    }
}

/// Draws and sampler statistics.
#[derive(Debug, Clone)]
pub struct NutsOutput {
    /// `draws[c][t]` is draw t of chain c (a weight vector).
    pub draws: Vec<Vec<Vec<f64>>>,
    /// Adapted step size per chain.
    pub step_size: Vec<f64>,
    /// Adapted inverse mass matrix diagonal per chain.
    pub inv_mass: Vec<Vec<f64>>,
    /// Divergent transitions after warm-up, all chains together.
    pub divergences: usize,
    /// Mean acceptance statistic after warm-up.
    pub mean_accept: f64,
    /// Mean number of leapfrog steps per kept iteration.
    pub mean_leapfrog: f64,
}

#[derive(Clone)]
struct Point {
    q: Vec<f64>,
    p: Vec<f64>,
    g: Vec<f64>,
    u: f64,
}

struct Tree {
    minus: Point,
    plus: Point,
    proposal: Point,
    log_w: f64,
    rho: Vec<f64>,
    stop: bool,
    diverged: bool,
    sum_accept: f64,
    n_leapfrog: usize,
}

struct Chain<'a> {
    post: &'a Posterior,
    minv: Vec<f64>,
    eps: f64,
    max_depth: usize,
    rng: StdRng,
}

impl Chain<'_> {
    fn kinetic(&self, p: &[f64]) -> f64 {
        0.5 * p
            .iter()
            .zip(&self.minv)
            .map(|(x, m)| x * x * m)
            .sum::<f64>()
    }

    fn point(&self, q: Vec<f64>) -> Point {
        let mut g = vec![0.0; q.len()];
        let u = self.post.potential_and_grad(&q, &mut g);
        Point {
            p: vec![0.0; q.len()],
            q,
            g,
            u,
        }
    }

    fn refresh_momentum(&mut self, pt: &mut Point) {
        for (p, m) in pt.p.iter_mut().zip(&self.minv) {
            let z: f64 = self.rng.sample(StandardNormal);
            *p = z / m.sqrt();
        }
    }

    fn leapfrog(&self, from: &Point, eps: f64) -> Point {
        let d = from.q.len();
        let mut p: Vec<f64> = (0..d).map(|j| from.p[j] - 0.5 * eps * from.g[j]).collect();
        let q: Vec<f64> = (0..d)
            .map(|j| from.q[j] + eps * self.minv[j] * p[j])
            .collect();
        let mut g = vec![0.0; d];
        let u = self.post.potential_and_grad(&q, &mut g);
        for j in 0..d {
            p[j] -= 0.5 * eps * g[j];
        }
        Point { q, p, g, u }
    }

    /// Generalised criterion: both end velocities point along the summed momentum.
    fn criterion(&self, p_minus: &[f64], p_plus: &[f64], rho: &[f64]) -> bool {
        let vm: f64 = p_minus
            .iter()
            .zip(&self.minv)
            .zip(rho)
            .map(|((p, m), r)| p * m * r)
            .sum();
        let vp: f64 = p_plus
            .iter()
            .zip(&self.minv)
            .zip(rho)
            .map(|((p, m), r)| p * m * r)
            .sum();
        vm > 0.0 && vp > 0.0
    }

    /// No U-turn across the merge of adjacent trees `left` (minus side) and `right`.
    fn no_uturn(&self, left: &Tree, right: &Tree, rho: &[f64]) -> bool {
        if !self.criterion(&left.minus.p, &right.plus.p, rho) {
            return false;
        }
        let ext_l: Vec<f64> = left
            .rho
            .iter()
            .zip(&right.minus.p)
            .map(|(a, b)| a + b)
            .collect();
        if !self.criterion(&left.minus.p, &right.minus.p, &ext_l) {
            return false;
        }
        let ext_r: Vec<f64> = right
            .rho
            .iter()
            .zip(&left.plus.p)
            .map(|(a, b)| a + b)
            .collect();
        self.criterion(&left.plus.p, &right.plus.p, &ext_r)
    }

    fn merge(&mut self, t1: Tree, t2: Tree, dir: f64, biased: bool) -> Tree {
        let log_w = log_add_exp(t1.log_w, t2.log_w);
        let take_new = if biased {
            t2.log_w - t1.log_w >= 0.0 || self.rng.random::<f64>().ln() < t2.log_w - t1.log_w
        } else {
            self.rng.random::<f64>().ln() < t2.log_w - log_w
        };
        let sum_accept = t1.sum_accept + t2.sum_accept;
        let n_leapfrog = t1.n_leapfrog + t2.n_leapfrog;
        let (t_old, t_new) = (t1, t2);
        let proposal = if take_new {
            t_new.proposal.clone()
        } else {
            t_old.proposal.clone()
        };
        let (left, right) = if dir > 0.0 {
            (t_old, t_new)
        } else {
            (t_new, t_old)
        };
        let rho: Vec<f64> = left
            .rho
            .iter()
            .zip(&right.rho)
            .map(|(a, b)| a + b)
            .collect();
        let turning = !self.no_uturn(&left, &right, &rho);
        Tree {
            minus: left.minus,
            plus: right.plus,
            proposal,
            log_w,
            rho,
            stop: turning,
            diverged: false,
            sum_accept,
            n_leapfrog,
        }
    }

    fn build(&mut self, from: &Point, depth: usize, dir: f64, h0: f64) -> Tree {
        if depth == 0 {
            let new = self.leapfrog(from, dir * self.eps);
            let h = new.u + self.kinetic(&new.p);
            let diverged = !h.is_finite() || h - h0 > 1000.0;
            let log_w = if h.is_finite() {
                h0 - h
            } else {
                f64::NEG_INFINITY
            };
            let accept = if h.is_finite() {
                (h0 - h).exp().min(1.0)
            } else {
                0.0
            };
            return Tree {
                minus: new.clone(),
                plus: new.clone(),
                rho: new.p.clone(),
                proposal: new,
                log_w,
                stop: diverged,
                diverged,
                sum_accept: accept,
                n_leapfrog: 1,
            };
        }
        let t1 = self.build(from, depth - 1, dir, h0);
        if t1.stop {
            return t1;
        }
        let edge = if dir > 0.0 {
            t1.plus.clone()
        } else {
            t1.minus.clone()
        };
        let t2 = self.build(&edge, depth - 1, dir, h0);
        if t2.stop {
            return Tree {
                sum_accept: t1.sum_accept + t2.sum_accept,
                n_leapfrog: t1.n_leapfrog + t2.n_leapfrog,
                stop: true,
                diverged: t2.diverged,
                ..t1
            };
        }
        self.merge(t1, t2, dir, false)
    }

    /// One NUTS transition from `cur`; returns the new point and (accept stat, leapfrogs, divergent).
    fn transition(&mut self, cur: &Point) -> (Point, f64, usize, bool) {
        let mut start = cur.clone();
        self.refresh_momentum(&mut start);
        let h0 = start.u + self.kinetic(&start.p);
        let mut tree = Tree {
            minus: start.clone(),
            plus: start.clone(),
            rho: start.p.clone(),
            proposal: start,
            log_w: 0.0,
            stop: false,
            diverged: false,
            sum_accept: 0.0,
            n_leapfrog: 0,
        };
        let mut diverged = false;
        for depth in 0..self.max_depth {
            let dir = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
            let edge = if dir > 0.0 {
                tree.plus.clone()
            } else {
                tree.minus.clone()
            };
            let sub = self.build(&edge, depth, dir, h0);
            if sub.stop {
                tree.sum_accept += sub.sum_accept;
                tree.n_leapfrog += sub.n_leapfrog;
                diverged = sub.diverged;
                break;
            }
            tree = self.merge(tree, sub, dir, true);
            if tree.stop {
                break;
            }
        }
        let n = tree.n_leapfrog.max(1);
        (
            tree.proposal,
            tree.sum_accept / n as f64,
            tree.n_leapfrog,
            diverged,
        )
    }

    /// Stan's step-size initialisation: double or halve until the one-step acceptance
    /// crosses 0.8.
    fn init_step_size(&mut self, cur: &Point) {
        let target = 0.8f64.ln();
        let mut pt = cur.clone();
        self.refresh_momentum(&mut pt);
        let h0 = pt.u + self.kinetic(&pt.p);
        let new = self.leapfrog(&pt, self.eps);
        let dh = h0 - (new.u + self.kinetic(&new.p));
        let up = dh.is_finite() && dh > target;
        for _ in 0..100 {
            self.eps = if up { self.eps * 2.0 } else { self.eps * 0.5 };
            if !(1e-8..=1e7).contains(&self.eps) {
                self.eps = self.eps.clamp(1e-8, 1e7);
                break;
            }
            let mut pt = cur.clone();
            self.refresh_momentum(&mut pt);
            let h0 = pt.u + self.kinetic(&pt.p);
            let new = self.leapfrog(&pt, self.eps);
            let dh = h0 - (new.u + self.kinetic(&new.p));
            let accept_more = dh.is_finite() && dh > target;
            if up != accept_more {
                break;
            }
        }
    }
}

/// Dual-averaging state (Hoffman & Gelman 2014, §3.2.1).
struct DualAveraging {
    mu: f64,
    h_bar: f64,
    log_eps_bar: f64,
    t: f64,
    target: f64,
}

impl DualAveraging {
    fn new(eps: f64, target: f64) -> Self {
        Self {
            mu: (10.0 * eps).ln(),
            h_bar: 0.0,
            log_eps_bar: 0.0,
            t: 0.0,
            target,
        }
    }
    fn update(&mut self, accept: f64) -> f64 {
        const GAMMA: f64 = 0.05;
        const T0: f64 = 10.0;
        const KAPPA: f64 = 0.75;
        self.t += 1.0;
        let eta = 1.0 / (self.t + T0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept);
        let log_eps = self.mu - self.t.sqrt() / GAMMA * self.h_bar;
        let x = self.t.powf(-KAPPA);
        self.log_eps_bar = x * log_eps + (1.0 - x) * self.log_eps_bar;
        log_eps.exp()
    }
}

/// Ends (exclusive warm-up iteration indices) of the mass-matrix adaptation windows, plus the
/// start of the first window.
fn adaptation_windows(warmup: usize) -> (usize, Vec<usize>) {
    let (mut init, mut term, mut base) = (75usize, 50usize, 25usize);
    if warmup < 20 {
        return (warmup, Vec::new());
    }
    if init + term + base > warmup {
        init = warmup * 15 / 100;
        term = warmup / 10;
        base = warmup - init - term;
    }
    let last = warmup - term;
    let mut ends = Vec::new();
    let (mut start, mut size) = (init, base);
    while start < last {
        let mut end = start + size;
        if end + 2 * size > last {
            end = last;
        }
        ends.push(end);
        start = end;
        size *= 2;
    }
    (init, ends)
}

fn chain_seed(seed: u64, chain: usize) -> u64 {
    // splitmix64 of (seed, chain)
    let mut z = seed ^ (chain as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct ChainResult {
    draws: Vec<Vec<f64>>,
    eps: f64,
    minv: Vec<f64>,
    divergences: usize,
    accept_sum: f64,
    leapfrog_sum: usize,
}

fn run_chain(
    post: &Posterior,
    cfg: &NutsConfig,
    chain: usize,
    tick: &(dyn Fn(u64) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<ChainResult, DissectError> {
    let d = post.dim();
    let mut rng = StdRng::seed_from_u64(chain_seed(cfg.seed, chain));
    // initial point: uniform(-2, 2), retried until the potential is finite
    let mut q0 = vec![0.0; d];
    for _ in 0..100 {
        q0 = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
        if post.potential(&q0).is_finite() {
            break;
        }
    }
    let mut ch = Chain {
        post,
        minv: vec![1.0; d],
        eps: 1.0,
        max_depth: cfg.max_depth.max(1),
        rng,
    };
    let mut cur = ch.point(q0);
    if !cur.u.is_finite() {
        return Err(DissectError::Numerical(
            "non-finite potential at the initial point".into(),
        ));
    }
    ch.init_step_size(&cur);
    let mut da = DualAveraging::new(ch.eps, cfg.target_accept);
    let (win_start, ends) = adaptation_windows(cfg.warmup);
    let mut win_idx = 0;
    let mut w_n = 0usize;
    let mut w_mean = vec![0.0; d];
    let mut w_m2 = vec![0.0; d];
    let mut since_tick = 0u64;
    for it in 0..cfg.warmup {
        if cancelled() {
            return Err(DissectError::Cancelled);
        }
        let (next, acc, _, _) = ch.transition(&cur);
        cur = next;
        ch.eps = da.update(acc);
        if it >= win_start && win_idx < ends.len() {
            w_n += 1;
            for j in 0..d {
                let delta = cur.q[j] - w_mean[j];
                w_mean[j] += delta / w_n as f64;
                w_m2[j] += delta * (cur.q[j] - w_mean[j]);
            }
            if it + 1 == ends[win_idx] {
                let n = w_n as f64;
                for (m, m2) in ch.minv.iter_mut().zip(&w_m2) {
                    let var = if w_n > 1 { m2 / (n - 1.0) } else { 1.0 };
                    *m = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0));
                }
                w_n = 0;
                w_mean.iter_mut().for_each(|v| *v = 0.0);
                w_m2.iter_mut().for_each(|v| *v = 0.0);
                win_idx += 1;
                ch.init_step_size(&cur);
                da = DualAveraging::new(ch.eps, cfg.target_accept);
            }
        }
        since_tick += 1;
        if since_tick == 50 {
            tick(since_tick);
            since_tick = 0;
        }
    }
    if cfg.warmup > 0 && da.t > 0.0 {
        ch.eps = da.log_eps_bar.exp();
    }
    let mut draws = Vec::with_capacity(cfg.draws);
    let (mut divergences, mut accept_sum, mut leapfrog_sum) = (0usize, 0.0, 0usize);
    for _ in 0..cfg.draws {
        if cancelled() {
            return Err(DissectError::Cancelled);
        }
        let (next, acc, nl, div) = ch.transition(&cur);
        cur = next;
        divergences += usize::from(div);
        accept_sum += acc;
        leapfrog_sum += nl;
        draws.push(cur.q.clone());
        since_tick += 1;
        if since_tick == 50 {
            tick(since_tick);
            since_tick = 0;
        }
    }
    tick(since_tick);
    Ok(ChainResult {
        draws,
        eps: ch.eps,
        minv: ch.minv,
        divergences,
        accept_sum,
        leapfrog_sum,
    })
}

/// Runs `cfg.chains` NUTS chains on threads. `tick(k)` is called (from chain threads) after
/// every k iterations; `cancelled()` is polled every iteration.
pub fn sample(
    post: &Posterior,
    cfg: &NutsConfig,
    tick: &(dyn Fn(u64) + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<NutsOutput, DissectError> {
    cfg.validate()?;
    let results: Vec<Result<ChainResult, DissectError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.chains)
            .map(|c| {
                std::thread::Builder::new()
                    .name(format!("nuts-chain-{c}"))
                    .spawn_scoped(s, move || run_chain(post, cfg, c, tick, cancelled))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(c, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(DissectError::Numerical("a sampler thread panicked".into()))
                }),
                Err(e) => Err(DissectError::BadOption(format!(
                    "cannot start the thread of chain {c}: {e} (use fewer chains)"
                ))),
            })
            .collect()
    });
    let mut out = NutsOutput {
        draws: Vec::new(),
        step_size: Vec::new(),
        inv_mass: Vec::new(),
        divergences: 0,
        mean_accept: 0.0,
        mean_leapfrog: 0.0,
    };
    let mut n_iter = 0usize;
    for r in results {
        let r = r?;
        n_iter += r.draws.len();
        out.divergences += r.divergences;
        out.mean_accept += r.accept_sum;
        out.mean_leapfrog += r.leapfrog_sum as f64;
        out.step_size.push(r.eps);
        out.inv_mass.push(r.minv);
        out.draws.push(r.draws);
    }
    out.mean_accept /= n_iter as f64;
    out.mean_leapfrog /= n_iter as f64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_stan_schedule() {
        let (start, ends) = adaptation_windows(500);
        assert_eq!(start, 75);
        assert_eq!(ends, vec![100, 150, 250, 450]);
        let (start, ends) = adaptation_windows(100);
        assert_eq!(start, 15);
        assert_eq!(*ends.last().unwrap(), 90);
    }
}
