//! AVX2 + FMA bodies of the CPU inference kernels (x86-64 only; the caller checks the CPU
//! features first). The AVX-512 bodies (`simd512.rs`) use the same `exp` polynomial. Must not allocate or know about tensors.
use std::arch::x86_64::*;

/// `exp` of 8 lanes (Cephes-style: range reduction by ln 2, degree-5 polynomial, exponent
/// by integer add; relative error ~2e-7); lanes below -87.3 give exactly 0, above 88.3
/// saturate at `exp(88)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(in crate::model::fast) fn exp8(x: __m256) -> __m256 {
    let lo = _mm256_set1_ps(-87.33654);
    let under = _mm256_cmp_ps::<_CMP_GE_OQ>(x, lo);
    let x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0));
    let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_199_9e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5));
    y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(fx),
        _mm256_set1_epi32(127),
    ));
    _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), under)
}

/// Scalar tail through the same polynomial (so every element rounds alike).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp1(x: f32) -> f32 {
    _mm256_cvtss_f32(exp8(_mm256_set1_ps(x)))
}

/// Horizontal sum of 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// See [`super::exp_shifted`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_shifted(x: &mut [f32], shift: f32, sum: &mut f32) {
    let sh = _mm256_set1_ps(shift);
    let mut acc = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: c has 8 floats.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), sh));
            _mm256_storeu_ps(c.as_mut_ptr(), e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    let mut s = hsum(acc);
    for v in chunks.into_remainder() {
        *v = exp1(*v - shift);
        s += *v;
    }
    *sum += s;
}

/// See [`super::silu_mul`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for all three slices.
        unsafe {
            let gv = _mm256_loadu_ps(g.as_ptr().add(i));
            let uv = _mm256_loadu_ps(u.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
            let s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(s, uv));
        }
        i += 8;
    }
    for j in i..n {
        out[j] = g[j] / (1.0 + exp1(-g[j])) * u[j];
    }
}

/// See [`super::gelu_mul_slice`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gelu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm256_set1_ps(1.0);
    let (c, a) = (
        _mm256_set1_ps(-2.0 * super::SQRT_2_OVER_PI),
        _mm256_set1_ps(0.044715),
    );
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for all three slices.
        unsafe {
            let gv = _mm256_loadu_ps(g.as_ptr().add(i));
            let uv = _mm256_loadu_ps(u.as_ptr().add(i));
            let inner = _mm256_fmadd_ps(_mm256_mul_ps(a, gv), _mm256_mul_ps(gv, gv), gv);
            let e = exp8(_mm256_mul_ps(c, inner));
            let s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(s, uv));
        }
        i += 8;
    }
    for j in i..n {
        let z = super::SQRT_2_OVER_PI * (g[j] + 0.044715 * g[j] * g[j] * g[j]);
        out[j] = g[j] / (1.0 + exp1(-2.0 * z)) * u[j];
    }
}

/// See [`super::silu_mul_tile`] (full 8-column rows; `tmp` has `mr` rows of 16 floats at
/// stride `ldt`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn silu_mul_tile(
    tmp: *const f32,
    ldt: usize,
    mr: usize,
    out: *mut f32,
    ldo: usize,
) {
    let one = _mm256_set1_ps(1.0);
    for r in 0..mr {
        // SAFETY: row r of the tile has 16 floats; row r of `out` has 8 writable floats.
        unsafe {
            let g = _mm256_loadu_ps(tmp.add(r * ldt));
            let u = _mm256_loadu_ps(tmp.add(r * ldt + 8));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let h = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
            _mm256_storeu_ps(out.add(r * ldo), h);
        }
    }
}

/// `sum(x²)` with 8-lane accumulators.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        // SAFETY: c has 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    let mut s = hsum(acc);
    for v in chunks.remainder() {
        s += v * v;
    }
    s
}
