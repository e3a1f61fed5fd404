//! CPU f32 inference kernels for the decoder block, next to the packed GEMM of
//! [`super::cpu_matmul`]: one-pass attention (RoPE on the queries, grouped-query heads, additive
//! mask, softmax and `P V` in one pass per key/value head, written straight into the
//! `[B, T, Hq * D]` layout the output projection reads), the SwiGLU product
//! `silu(gate) * up`, and RMSNorm with the residual add folded in. Each replaces a chain of
//! candle ops that allocate and walk the activations several times.
//!
//! Used only by the speed layer's inference ops (`fast::Infer`: passes without gradient, and
//! the forward of whole-block gradient nodes) for f32 CPU tensors that carry no gradient,
//! where the process's [`CpuPath`] has SIMD kernels (AVX-512: 16-lane `exp`, SiLU and sums of
//! squares, the 12 × 32 GEMM tile; AVX2 + FMA: 8 lanes, 6 × 16; NEON: the NEON GEMM tile and
//! portable elementwise loops); `STEERLAB_CPU_FUSED=0` (or [`set_enabled`]) switches them off
//! and the candle ops run instead. The `*_on` variants run a given path (tests). Results agree with the
//! reference ops to float rounding (vectorised `exp`, other summation orders), checked in
//! `tests.rs`. Must not know about models, hooks or autograd.
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Storage, Tensor};

use super::cpu_matmul::{self, gemm_panels, AlignedBuf, NR};
use super::cpu_path::{self, CpuPath};
use super::switches;
use crate::model::{ModelError, Result};

/// Calls of [`attention`] that ran the kernel (for tests and profiling).
static ATTENTION_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many attention calls ran the CPU kernel so far in this process.
pub fn attention_calls() -> usize {
    ATTENTION_CALLS.load(Ordering::Relaxed)
}

/// Whether the CPU inference kernels run: the current [`CpuPath`] has SIMD kernels, unless
/// switched off by
/// [`set_enabled`] or `STEERLAB_CPU_FUSED=0` (read once).
pub fn enabled() -> bool {
    switches::CPU_INFER.get()
}

/// Switches the CPU inference kernels on or off for the whole process (A/B comparisons, tests).
pub fn set_enabled(on: bool) {
    switches::CPU_INFER.set(on);
}

/// Whether `t` is an f32 CPU tensor without gradient (what these kernels take).
fn applies(t: &Tensor) -> bool {
    t.dtype() == DType::F32 && t.device().is_cpu() && !t.track_op()
}

/// Below this many multiply-adds a call runs on the calling thread only.
const PAR_MIN_MACS: usize = 1 << 20;

/// Elements per parallel chunk of the elementwise kernels.
const EW_CHUNK: usize = 1 << 14;

/// Read access to f32 CPU tensors for one call: their storages held (read guards) so that their
/// elements can be borrowed as slices.
struct Reads<'a>(Vec<(candle_core::StorageRef<'a>, &'a candle_core::Layout)>);

fn reads<'a>(ts: &[&'a Tensor]) -> Reads<'a> {
    Reads(ts.iter().map(|t| t.storage_and_layout()).collect())
}

impl Reads<'_> {
    /// Tensor `i`'s elements from its storage start, with its start offset and strides.
    fn strided(&self, i: usize) -> Result<(&[f32], usize, &[usize])> {
        let (storage, layout) = &self.0[i];
        let Storage::Cpu(cpu) = &**storage else {
            return Err(ModelError::InvalidInput(
                "cpu kernel: tensor is not on the CPU".into(),
            ));
        };
        Ok((
            cpu.as_slice::<f32>()?,
            layout.start_offset(),
            layout.stride(),
        ))
    }

    /// Tensor `i`'s elements, which must be contiguous.
    fn slice(&self, i: usize) -> Result<&[f32]> {
        let (data, _, _) = self.strided(i)?;
        match self.0[i].1.contiguous_offsets() {
            Some((a, b)) => Ok(&data[a..b]),
            None => Err(ModelError::InvalidInput(
                "cpu kernel: tensor is not contiguous".into(),
            )),
        }
    }
}

/// Rotary embedding ("rotate half") of one row read through `at`, times `scale`, into `dst`.
fn rotate_half(at: impl Fn(usize) -> f32, cos: &[f32], sin: &[f32], scale: f32, dst: &mut [f32]) {
    let half = cos.len();
    for i in 0..half {
        let (x1, x2) = (at(i), at(i + half));
        dst[i] = (x1 * cos[i] - x2 * sin[i]) * scale;
        dst[i + half] = (x2 * cos[i] + x1 * sin[i]) * scale;
    }
}

thread_local! {
    /// Per-thread scratch of the attention tasks: packed keys, packed values, queries, and the
    /// scores of one block of query rows.
    static SCRATCH: RefCell<[AlignedBuf; 4]> = RefCell::new(Default::default());
}

/// One-pass scaled dot-product attention for inference.
///
/// `q` `[B, Hq, T, D]` *before* RoPE (any strides), `cos`/`sin` `[T, D / 2]` for the query
/// positions, `k`/`v` `[B, Hkv, S, D]` (keys already rotated, any strides), `mask` additive
/// `[B, 1, 1, T, S]` or `None`. Returns `[B, T, Hq * D]`, as
/// [`ops::attention`](crate::model::arch::ops::attention) on the rotated queries, or `None` when an input is not an f32 CPU
/// tensor without gradient or the kernels are off.
pub(crate) fn attention(
    q: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !enabled() {
        return Ok(None);
    }
    attention_on(cpu_path::current(), q, cos, sin, k, v, mask)
}

/// [`attention`] on `path`, whether or not the kernels are switched on (`None` only when an
/// input is not an f32 CPU tensor without gradient). Errors if this CPU cannot run `path`.
pub(crate) fn attention_on(
    path: CpuPath,
    q: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    check_path(path)?;
    if ![q, cos, sin, k, v].iter().all(|t| applies(t)) || mask.is_some_and(|m| !applies(m)) {
        return Ok(None);
    }
    let (b, hq, t, d) = q.dims4()?;
    let (bk, hkv, s, dk) = k.dims4()?;
    let half = d / 2;
    if bk != b
        || dk != d
        || v.dims4()? != (b, hkv, s, d)
        || hkv == 0
        || hq % hkv != 0
        || d % 2 != 0
        || cos.dims2()? != (t, half)
        || sin.dims2()? != (t, half)
    {
        return Err(ModelError::InvalidInput(format!(
            "cpu attention: shapes q {:?} k {:?} v {:?} cos {:?} do not fit together",
            q.dims(),
            k.dims(),
            v.dims(),
            cos.dims()
        )));
    }
    if let Some(m) = mask {
        if m.dims() != [b, 1, 1, t, s] {
            return Err(ModelError::InvalidInput(format!(
                "cpu attention: mask {:?}, expected [{b}, 1, 1, {t}, {s}]",
                m.dims()
            )));
        }
    }
    let rep = hq / hkv;
    let mut out = vec![0f32; b * t * hq * d];
    if out.is_empty() || s == 0 {
        return Ok(Some(Tensor::from_vec(out, (b, t, hq * d), &Device::Cpu)?));
    }
    let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    let mut ins = vec![q, k, v, &cos, &sin];
    ins.extend(mask.as_ref());
    let held = reads(&ins);
    let ((qd, qo, qs), (kd, ko, ks), (vd, vo, vs)) =
        (held.strided(0)?, held.strided(1)?, held.strided(2)?);
    let (cos, sin) = (held.slice(3)?, held.slice(4)?);
    let mask = match mask {
        Some(_) => Some(held.slice(5)?),
        None => None,
    };
    let scale = 1.0 / (d as f32).sqrt();
    let op = out.as_mut_ptr() as usize;
    let task = |bg: usize| {
        let (bi, g) = (bg / hkv, bg % hkv);
        SCRATCH.with(|sc| {
            let mut sc = sc.borrow_mut();
            let [kp, vp, qb, sb] = &mut *sc;
            // Keys packed as a GEMM weight [S, D] (panels of NR keys), values as the
            // weight of `P V` ([D, S]: panels of NR value columns).
            kp.reset(s.div_ceil(NR) * d * NR);
            vp.reset(d.div_ceil(NR) * s * NR);
            let kps = kp.as_mut_slice();
            kps.fill(0.0);
            let kbase = ko + bi * ks[0] + g * ks[1];
            for si in 0..s {
                let (p, j) = (si / NR, si % NR);
                for di in 0..d {
                    kps[(p * d + di) * NR + j] = kd[kbase + si * ks[2] + di * ks[3]];
                }
            }
            let vps = vp.as_mut_slice();
            vps.fill(0.0);
            let vbase = vo + bi * vs[0] + g * vs[1];
            for si in 0..s {
                for di in 0..d {
                    let (p, j) = (di / NR, di % NR);
                    vps[(p * s + si) * NR + j] = vd[vbase + si * vs[2] + di * vs[3]];
                }
            }
            qb.reset(t * d);
            sb.reset(ROW_BLOCK.min(t) * s);
            let lims: Vec<usize> = (0..t)
                .map(|ti| match mask {
                    Some(m) => key_limit(&m[(bi * t + ti) * s..(bi * t + ti + 1) * s]),
                    None => s,
                })
                .collect();
            for r in 0..rep {
                let h = g * rep + r;
                let qbs = qb.as_mut_slice();
                let qbase = qo + bi * qs[0] + h * qs[1];
                for ti in 0..t {
                    let (c, sn) = (
                        &cos[ti * half..(ti + 1) * half],
                        &sin[ti * half..(ti + 1) * half],
                    );
                    let at = |di: usize| qd[qbase + ti * qs[2] + di * qs[3]];
                    rotate_half(at, c, sn, scale, &mut qbs[ti * d..(ti + 1) * d]);
                }
                let scores = sb.as_mut_slice();
                for r0 in (0..t).step_by(ROW_BLOCK) {
                    let r1 = (r0 + ROW_BLOCK).min(t);
                    // Keys past every row's last unmasked key (the causal
                    // future) are neither scored nor summed.
                    let kl = lims[r0..r1].iter().copied().max().unwrap_or(s);
                    let rows = r1 - r0;
                    // SAFETY: qb holds t rows of d floats; kp is the aligned packed
                    // [S, D] weight (kl <= s keys); scores holds ROW_BLOCK rows of
                    // s floats (one row block); the path was checked by `check_path`.
                    unsafe {
                        gemm_panels(
                            path,
                            qb.as_slice().as_ptr().add(r0 * d),
                            d,
                            rows,
                            d,
                            kp.as_slice().as_ptr(),
                            d,
                            kl,
                            None,
                            scores.as_mut_ptr(),
                            s,
                            0..kl.div_ceil(NR),
                        )
                    };
                    for ti in r0..r1 {
                        let row = &mut scores[(ti - r0) * s..(ti - r0) * s + kl];
                        if let Some(m) = mask {
                            let mrow = &m[(bi * t + ti) * s..(bi * t + ti) * s + kl];
                            for (x, &mv) in row.iter_mut().zip(mrow) {
                                *x += mv;
                            }
                        }
                        softmax_row(path, row);
                    }
                    // SAFETY: scores holds this block's rows, first kl floats at
                    // stride s;
                    // vp is the aligned packed [D, S] weight (first kl of s steps
                    // used); the output rows of (bi, h) are d floats at stride
                    // hq * d, written by this task only (each task owns the heads
                    // of one (batch, key/value head) pair).
                    unsafe {
                        let o = (op as *mut f32).add((bi * t + r0) * hq * d + h * d);
                        gemm_panels(
                            path,
                            scores.as_ptr(),
                            s,
                            rows,
                            kl,
                            vp.as_slice().as_ptr(),
                            s,
                            d,
                            None,
                            o,
                            hq * d,
                            0..d.div_ceil(NR),
                        )
                    };
                }
            }
        });
    };
    let tasks = b * hkv;
    if 2 * b * hq * t * s * d < PAR_MIN_MACS {
        (0..tasks).for_each(&task);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(tasks, |range| range.for_each(&task));
    }
    ATTENTION_CALLS.fetch_add(1, Ordering::Relaxed);
    Ok(Some(Tensor::from_vec(out, (b, t, hq * d), &Device::Cpu)?))
}

/// Rotary embedding (HF "rotate half" layout) of `x` `[B, H, T, D]` (any strides) with
/// `cos`/`sin` `[T, D / 2]`, returned contiguous; as [`ops::rope`](crate::model::arch::ops::rope), or `None` when an
/// input is not an f32 CPU tensor without gradient or the kernels are off.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Option<Tensor>> {
    if !enabled() || ![x, cos, sin].iter().all(|t| applies(t)) {
        return Ok(None);
    }
    let (b, h, t, d) = x.dims4()?;
    let half = d / 2;
    if d % 2 != 0 || cos.dims2()? != (t, half) || sin.dims2()? != (t, half) {
        return Ok(None);
    }
    let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
    let held = reads(&[x, &cos, &sin]);
    let (xd, xo, xs) = held.strided(0)?;
    let (cos, sin) = (held.slice(1)?, held.slice(2)?);
    let mut out = vec![0f32; b * h * t * d];
    for (row, dst) in out.chunks_exact_mut(d).enumerate() {
        let (bh, ti) = (row / t, row % t);
        let base = xo + (bh / h) * xs[0] + (bh % h) * xs[1] + ti * xs[2];
        let (c, sn) = (
            &cos[ti * half..(ti + 1) * half],
            &sin[ti * half..(ti + 1) * half],
        );
        rotate_half(|di| xd[base + di * xs[3]], c, sn, 1.0, dst);
    }
    Ok(Some(Tensor::from_vec(out, (b, h, t, d), &Device::Cpu)?))
}

/// Query rows per block of the attention kernel (a multiple of the GEMM's 6- and 12-row tiles): each
/// block scores only the keys up to its rows' last unmasked one.
const ROW_BLOCK: usize = 24;

/// One past the last key a mask row leaves open (a value above `f32::MIN`); the whole row
/// when every key is masked, so such a row averages over all keys as the reference does.
fn key_limit(mask_row: &[f32]) -> usize {
    match mask_row.iter().rposition(|&v| v > f32::MIN) {
        Some(i) => i + 1,
        None => mask_row.len(),
    }
}

/// Errors unless this CPU runs `path`.
fn check_path(path: CpuPath) -> Result<()> {
    if path.available() {
        Ok(())
    } else {
        Err(ModelError::InvalidInput(format!(
            "cpu kernels: this CPU cannot run the {path} path"
        )))
    }
}

/// In-place softmax of one row: `exp(x - max) / sum` (as candle's `softmax_last_dim`).
fn softmax_row(path: CpuPath, row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    exp_shifted(path, row, max, &mut sum);
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `x[i] = exp(x[i] - shift)` for all `i`, adding the results to `sum`, on `path` (which this
/// CPU runs).
fn exp_shifted(path: CpuPath, x: &mut [f32], shift: f32, sum: &mut f32) {
    match path {
        // SAFETY: the path's features are available (callers check the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => return unsafe { simd512::exp_shifted(x, shift, sum) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => return unsafe { simd::exp_shifted(x, shift, sum) },
        _ => {}
    }
    for v in x.iter_mut() {
        *v = (*v - shift).exp();
        *sum += *v;
    }
}

/// The [`PackedGateUp`] epilogue: for each of `mr` rows of an `NR`-wide panel tile at `tmp`
/// (row stride `ldt`; gate in lanes `0..GU`, up in `GU..NR`), writes `silu(gate) * up` for
/// the first `cols` columns to `out + r * ldo`. On both x86 paths the 8-lane AVX2 body runs
/// (a panel row holds 8 gate and 8 up values).
///
/// # Safety
/// `tmp` has `mr` rows of `NR` readable floats at stride `ldt`; `out` has `mr` rows of `cols`
/// writable floats at stride `ldo`; `cols <= GU`; this CPU runs `path`.
unsafe fn silu_mul_tile(
    path: CpuPath,
    tmp: *const f32,
    ldt: usize,
    mr: usize,
    cols: usize,
    out: *mut f32,
    ldo: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if cols == GU && matches!(path, CpuPath::Avx512 | CpuPath::Avx2) {
        // SAFETY: as the contract; both paths have AVX2 and FMA.
        unsafe { simd::silu_mul_tile(tmp, ldt, mr, out, ldo) };
        return;
    }
    for r in 0..mr {
        // SAFETY: row r of `tmp` has NR floats, row r of `out` `cols` writable floats.
        let (row, dst) = unsafe {
            (
                std::slice::from_raw_parts(tmp.add(r * ldt), NR),
                std::slice::from_raw_parts_mut(out.add(r * ldo), cols),
            )
        };
        silu_mul_slice(path, &row[..cols], &row[GU..GU + cols], dst);
    }
}

/// `out[i] = silu(g[i]) * u[i]` on `path` (which this CPU runs).
fn silu_mul_slice(path: CpuPath, g: &[f32], u: &[f32], out: &mut [f32]) {
    match path {
        // SAFETY: the path's features are available (callers check the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => return unsafe { simd512::silu_mul(g, u, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => return unsafe { simd::silu_mul(g, u, out) },
        _ => {}
    }
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// √(2/π), of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `out[i] = gelu_tanh(g[i]) * u[i]` on `path` (which this CPU runs), with
/// `gelu_tanh(x) = x (1 + tanh z) / 2 = x / (1 + exp(-2z))`, `z = √(2/π)(x + 0.044715 x³)`
/// (PyTorch's `gelu(approximate="tanh")`, candle's `gelu`).
fn gelu_mul_slice(path: CpuPath, g: &[f32], u: &[f32], out: &mut [f32]) {
    match path {
        // SAFETY: the path's features are available (callers check the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => return unsafe { simd512::gelu_mul(g, u, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => return unsafe { simd::gelu_mul(g, u, out) },
        _ => {}
    }
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        let z = SQRT_2_OVER_PI * (g + 0.044715 * g * g * g);
        *o = g / (1.0 + (-2.0 * z).exp()) * u;
    }
}

/// `act(g) * u` for two f32 CPU tensors of one shape without gradient (the gated MLP's
/// elementwise step when gate and up were multiplied separately, as quantized weights are):
/// `gelu` the tanh approximation, else SiLU. `None` where the kernels are off or the inputs
/// do not qualify (the caller uses candle's ops).
pub(crate) fn act_mul(gelu: bool, g: &Tensor, u: &Tensor) -> Result<Option<Tensor>> {
    let path = cpu_path::current();
    if !enabled()
        || !path.simd()
        || !applies(g)
        || !applies(u)
        || g.dims() != u.dims()
        || !g.is_contiguous()
        || !u.is_contiguous()
    {
        return Ok(None);
    }
    let held = reads(&[g, u]);
    let (gv, uv) = (held.slice(0)?, held.slice(1)?);
    let mut out = vec![0f32; gv.len()];
    if gelu {
        gelu_mul_slice(path, gv, uv, &mut out);
    } else {
        silu_mul_slice(path, gv, uv, &mut out);
    }
    Ok(Some(Tensor::from_vec(out, g.dims(), &Device::Cpu)?))
}

/// Output columns per [`PackedGateUp`] panel: the panel's first half holds gate columns, the
/// second half the same up columns.
const GU: usize = NR / 2;

/// The gate and up projections of a SwiGLU MLP packed side by side, so one GEMM pass yields
/// `silu(x Wg^T + bg) * (x Wu^T + bu)` without writing either product to memory.
///
/// Layout: panel `p` covers output columns `p*GU .. p*GU+GU`, `k`-major as in
/// [`cpu_matmul::PackedLinear`]; lanes `0..GU` hold the gate weights, `GU..NR` the up weights.
#[derive(Debug)]
pub struct PackedGateUp {
    n: usize,
    k: usize,
    data: AlignedBuf,
    bias: Option<Vec<f32>>,
}

impl PackedGateUp {
    /// Packs row-major `gate` and `up` weights `[n, k]` and optional biases `[n]`.
    pub fn pack(
        gate: &[f32],
        up: &[f32],
        n: usize,
        k: usize,
        gate_bias: Option<&[f32]>,
        up_bias: Option<&[f32]>,
    ) -> Result<Self> {
        if gate.len() != n * k || up.len() != n * k {
            return Err(ModelError::InvalidInput(format!(
                "packed gate/up: weights have {} and {} elements, expected {n} x {k}",
                gate.len(),
                up.len()
            )));
        }
        if gate_bias.is_some_and(|b| b.len() != n) || up_bias.is_some_and(|b| b.len() != n) {
            return Err(ModelError::InvalidInput(format!(
                "packed gate/up: a bias does not have {n} elements"
            )));
        }
        let panels = n.div_ceil(GU);
        let mut data = AlignedBuf::zeros(panels * k * NR);
        let d = data.as_mut_slice();
        for p in 0..panels {
            for j in 0..GU {
                let col = p * GU + j;
                if col >= n {
                    break;
                }
                let (g, u) = (&gate[col * k..(col + 1) * k], &up[col * k..(col + 1) * k]);
                for kk in 0..k {
                    d[(p * k + kk) * NR + j] = g[kk];
                    d[(p * k + kk) * NR + GU + j] = u[kk];
                }
            }
        }
        let bias = (gate_bias.is_some() || up_bias.is_some()).then(|| {
            let mut b = vec![0f32; panels * NR];
            for col in 0..n {
                let (p, j) = (col / GU, col % GU);
                b[p * NR + j] = gate_bias.map_or(0.0, |g| g[col]);
                b[p * NR + GU + j] = up_bias.map_or(0.0, |u| u[col]);
            }
            b
        });
        Ok(Self { n, k, data, bias })
    }

    /// Packs candle weights `[n, k]` (and biases), copied to the CPU as f32.
    pub fn from_tensors(
        gate: &Tensor,
        gate_bias: Option<&Tensor>,
        up: &Tensor,
        up_bias: Option<&Tensor>,
    ) -> Result<Self> {
        let (n, k) = gate.dims2()?;
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        };
        let (g, u) = (flat(gate)?, flat(up)?);
        let gb = gate_bias.map(flat).transpose()?;
        let ub = up_bias.map(flat).transpose()?;
        Self::pack(&g, &u, n, k, gb.as_deref(), ub.as_deref())
    }

    /// `silu(x Wg^T + bg) * (x Wu^T + bu)` for an f32 CPU tensor `[..., k]` without gradient;
    /// `None` where that does not hold or the kernels are off.
    pub fn forward(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if !enabled() {
            return Ok(None);
        }
        self.forward_on(cpu_path::current(), x)
    }

    /// [`PackedGateUp::forward`] on `path`, whether or not the kernels are switched on (`None`
    /// only where `x` is not an f32 CPU tensor `[..., k]` without gradient). Errors if this
    /// CPU cannot run `path`.
    pub fn forward_on(&self, path: CpuPath, x: &Tensor) -> Result<Option<Tensor>> {
        check_path(path)?;
        if !applies(x) || x.rank() == 0 || x.dim(candle_core::D::Minus1)? != self.k {
            return Ok(None);
        }
        let (n, k) = (self.n, self.k);
        let mut dims = x.dims().to_vec();
        let m = x.elem_count() / k.max(1);
        *dims.last_mut().expect("rank >= 1") = n;
        if m == 0 || n == 0 || k == 0 {
            return Ok(None);
        }
        let xc = x.contiguous()?;
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let held = reads(&[&xc]);
        let xs = held.slice(0)?;
        let op = out.as_mut_ptr() as usize;
        let panels = n.div_ceil(GU);
        // Strips of the path's tile height over groups of the panels its tile covers.
        let (strip, group) = (cpu_matmul::tile_rows(path), cpu_matmul::panel_group(path));
        let run = |range: std::ops::Range<usize>| {
            let mut tmp = [0f32; TILE_MAX];
            for u in range {
                let p0 = u * group;
                let g = group.min(panels - p0);
                let width = g * NR;
                // SAFETY: panels p0..p0+g lie inside the packed buffer; the bias has NR
                // floats per panel.
                let w = unsafe { self.data.as_slice().as_ptr().add(p0 * k * NR) };
                let b = self.bias.as_ref().map(|b| b[p0 * NR..].as_ptr());
                for i in (0..m).step_by(strip) {
                    let mr = strip.min(m - i);
                    // SAFETY: rows i..i+mr of x (k floats each) and the mr x width tile
                    // (mr * width <= TILE_MAX) are in bounds; the path was checked above.
                    unsafe {
                        gemm_panels(
                            path,
                            xs.as_ptr().add(i * k),
                            k,
                            mr,
                            k,
                            w,
                            k,
                            width,
                            b,
                            tmp.as_mut_ptr(),
                            width,
                            0..g,
                        )
                    };
                    for q in 0..g {
                        let p = p0 + q;
                        let cols = GU.min(n - p * GU);
                        // SAFETY: columns p*GU..p*GU+cols of rows i..i+mr belong to this
                        // panel only (one thread per panel group); every element of `out`
                        // is written exactly once over all panels and rows.
                        unsafe {
                            silu_mul_tile(
                                path,
                                tmp.as_ptr().add(q * NR),
                                width,
                                mr,
                                cols,
                                (op as *mut f32).add(i * n + p * GU),
                                n,
                            )
                        };
                    }
                }
            }
        };
        let units = panels.div_ceil(group);
        if m * n * k < PAR_MIN_MACS {
            run(0..units);
        } else {
            candle_core::utils::barrier_pool().execute_chunked(units, run);
        }
        // SAFETY: the loops above wrote all m * n elements.
        unsafe { out.set_len(m * n) };
        Ok(Some(Tensor::from_vec(out, dims, &Device::Cpu)?))
    }
}

/// Floats of the largest GEMM tile of any path (12 rows x 2 panels).
const TILE_MAX: usize = 12 * 2 * NR;

/// Runs `f` over `chunks` chunk indices, on the worker pool when `elems` is large enough.
fn par_chunks(chunks: usize, elems: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if elems < 4 * EW_CHUNK {
        f(0..chunks);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(chunks, f);
    }
}

/// RMSNorm over the last dimension, `x / sqrt(mean(x²) + eps) * weight`, of `x + residual`
/// when a residual is given. Returns `(x + residual, normed)` (the sum is `x` itself without a
/// residual), or `None` when an input is not an f32 CPU tensor without gradient, the shapes do
/// not fit, or the kernels are off.
pub(crate) fn add_rms_norm(
    x: &Tensor,
    residual: Option<&Tensor>,
    weight: &Tensor,
    eps: f64,
) -> Result<Option<(Tensor, Tensor)>> {
    if !enabled() {
        return Ok(None);
    }
    add_rms_norm_on(cpu_path::current(), x, residual, weight, eps)
}

/// [`add_rms_norm`] on `path`, whether or not the kernels are switched on. Errors if this CPU
/// cannot run `path`.
pub(crate) fn add_rms_norm_on(
    path: CpuPath,
    x: &Tensor,
    residual: Option<&Tensor>,
    weight: &Tensor,
    eps: f64,
) -> Result<Option<(Tensor, Tensor)>> {
    check_path(path)?;
    if !applies(x)
        || !applies(weight)
        || residual.is_some_and(|r| !applies(r) || r.dims() != x.dims())
        || x.rank() == 0
    {
        return Ok(None);
    }
    let dim = x.dim(candle_core::D::Minus1)?;
    if weight.dims() != [dim] || dim == 0 {
        return Ok(None);
    }
    let xc = x.contiguous()?;
    let rc = residual.map(|r| r.contiguous()).transpose()?;
    let n = xc.elem_count();
    let rows = n / dim;
    let w = weight.to_vec1::<f32>()?;
    let mut sum: Vec<f32> = Vec::with_capacity(if rc.is_some() { n } else { 0 });
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let (sp, op) = (sum.as_mut_ptr() as usize, out.as_mut_ptr() as usize);
    let mut ins = vec![&xc];
    ins.extend(rc.as_ref());
    let held = reads(&ins);
    let xs = held.slice(0)?;
    let rs = match rc {
        Some(_) => Some(held.slice(1)?),
        None => None,
    };
    let rows_per = (EW_CHUNK / dim).max(1);
    let run = |range: std::ops::Range<usize>| {
        for c in range {
            for r in c * rows_per..((c + 1) * rows_per).min(rows) {
                let x = &xs[r * dim..(r + 1) * dim];
                // SAFETY: row r of `out` (and of `sum`) is written by this chunk only,
                // and every row is written.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut((op as *mut f32).add(r * dim), dim) };
                match rs {
                    Some(rs) => {
                        // SAFETY: as above, for `sum` (capacity n when a residual is given).
                        let srow = unsafe {
                            std::slice::from_raw_parts_mut((sp as *mut f32).add(r * dim), dim)
                        };
                        for ((o, &a), &b) in srow.iter_mut().zip(x).zip(&rs[r * dim..(r + 1) * dim])
                        {
                            *o = a + b;
                        }
                        rms_row(path, srow, &w, eps as f32, dst);
                    }
                    None => rms_row(path, x, &w, eps as f32, dst),
                }
            }
        }
    };
    par_chunks(rows.div_ceil(rows_per), n, run);
    // SAFETY: every row of `out` (and of `sum` with a residual) was written above.
    unsafe {
        out.set_len(n);
        if rc.is_some() {
            sum.set_len(n);
        }
    }
    drop(held);
    let normed = Tensor::from_vec(out, xc.dims(), &Device::Cpu)?;
    let sum = match rc {
        Some(_) => Tensor::from_vec(sum, xc.dims(), &Device::Cpu)?,
        None => xc,
    };
    Ok(Some((sum, normed)))
}

/// One RMSNorm row (as candle-nn's: `x / sqrt(sum(x²) / n + eps) * w`) on `path` (which
/// this CPU runs).
fn rms_row(path: CpuPath, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum2: f32 = match path {
        // SAFETY: the path's features are available (callers check the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { simd512::sum_squares(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { simd::sum_squares(x) },
        _ => x.iter().map(|v| v * v).sum(),
    };
    let m = (sum2 / x.len() as f32 + eps).sqrt();
    for ((o, &v), &a) in out.iter_mut().zip(x).zip(w) {
        *o = v / m * a;
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod simd;
#[cfg(target_arch = "x86_64")]
pub(super) mod simd512;

#[cfg(test)]
mod tests;
