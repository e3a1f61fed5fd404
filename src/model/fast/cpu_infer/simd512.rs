//! AVX-512F bodies of the CPU inference kernels (x86-64 only; the caller checks the CPU
//! features first): 16 lanes, masked loads and stores for the tails, and the same `exp`
//! polynomial as the AVX2 bodies (`simd.rs`), so both paths round alike lane by lane. Must not
//! allocate or know about tensors.
use std::arch::x86_64::*;

/// `exp` of 16 lanes: the polynomial of `simd::exp8` (relative error ~2e-7); lanes below
/// -87.3 give exactly 0, above 88.3 saturate at `exp(88)`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(in crate::model::fast) fn exp16(x: __m512) -> __m512 {
    let lo = _mm512_set1_ps(-87.33654);
    let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, lo);
    let x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0));
    let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm512_set1_ps(1.987_569_1e-4);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.398_199_9e-3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.333_452e-3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.166_579_6e-2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.666_666_5e-1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.5));
    y = _mm512_fmadd_ps(
        y,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(fx),
        _mm512_set1_epi32(127),
    ));
    _mm512_maskz_mov_ps(keep, _mm512_mul_ps(y, _mm512_castsi512_ps(e)))
}

/// Lanes `0..n` of a 16-lane mask (`n <= 16`).
#[inline]
fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// See [`super::exp_shifted`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn exp_shifted(x: &mut [f32], shift: f32, sum: &mut f32) {
    let sh = _mm512_set1_ps(shift);
    let mut acc = _mm512_setzero_ps();
    let n = x.len();
    let mut i = 0;
    while i < n {
        let m = mask(n - i);
        // SAFETY: the mask covers only the n - i floats left from i.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p), sh));
            _mm512_mask_storeu_ps(p, m, e);
            acc = _mm512_mask_add_ps(acc, m, acc, e);
        }
        i += 16;
    }
    *sum += _mm512_reduce_add_ps(acc);
}

/// See [`super::silu_mul_slice`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        let m = mask(n - i);
        // SAFETY: the mask covers only the n - i floats left from i in all three slices.
        unsafe {
            let gv = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
            let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
            let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
            let s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, _mm512_mul_ps(s, uv));
        }
        i += 16;
    }
}

/// See [`super::gelu_mul_slice`]: `g / (1 + exp(-2z)) * u`, `z = √(2/π)(g + 0.044715 g³)`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn gelu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm512_set1_ps(1.0);
    let (c, a) = (
        _mm512_set1_ps(-2.0 * super::SQRT_2_OVER_PI),
        _mm512_set1_ps(0.044715),
    );
    let mut i = 0;
    while i < n {
        let m = mask(n - i);
        // SAFETY: the mask covers only the n - i floats left from i in all three slices.
        unsafe {
            let gv = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
            let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
            let inner = _mm512_fmadd_ps(_mm512_mul_ps(a, gv), _mm512_mul_ps(gv, gv), gv);
            let e = exp16(_mm512_mul_ps(c, inner));
            let s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, _mm512_mul_ps(s, uv));
        }
        i += 16;
    }
}

/// `sum(x²)` with 16-lane accumulators.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let n = x.len();
    let mut i = 0;
    while i < n {
        // SAFETY: the mask covers only the n - i floats left from i (others read as 0).
        let v = unsafe { _mm512_maskz_loadu_ps(mask(n - i), x.as_ptr().add(i)) };
        acc = _mm512_fmadd_ps(v, v, acc);
        i += 16;
    }
    _mm512_reduce_add_ps(acc)
}
