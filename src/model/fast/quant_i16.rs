//! The generation-step (`m = 1`) kernels for Q8_0 and Q5_0 weights with the activation row
//! rounded to 16-bit integers, one scale per block of 32 ([`XI16`]): each block's quants are
//! widened to 16-bit lanes and multiplied pairwise with the activations by one integer
//! multiply-add (`vpmaddwd`, exact in 32 bits), converted once and scaled by the product of
//! the two block scales. This halves the vector work per weight of the f32 kernels of
//! `quant_dot` (whose unpack, convert and two multiply-adds run per 16 values), which matters
//! where a matrix-vector product is bound by arithmetic, not memory: Gemma's 262 144-row
//! Q8_0 LM head and the Q5_0 projections of the Q4_K_M files.
//!
//! Accuracy: rounding an activation to 16 bits relative to its block's largest magnitude moves
//! it by at most 1/65 534 of that magnitude (about 1.5e-5), 300 times finer than the 8-bit
//! activations llama.cpp uses (about 4e-3), and far below the weights' own quantization error;
//! a row holding a non-finite value is not rounded ([`XI16::new`] says `None`, the caller uses
//! the f32 kernel, so NaN and infinity propagate). `STEERLAB_QUANT_I16=0` turns the path off.
//!
//! x86-64 only (AVX-512BW or AVX2); must not allocate per row, split work or know about
//! matrices.
use candle_core::quantized::k_quants::{BlockQ5_0, BlockQ8_0};

/// Values per block (both Q8_0 and Q5_0).
const QK: usize = 32;
/// Bytes ahead of the current block that are prefetched.
const PREFETCH: usize = 2048;

/// An activation row as 16-bit integers: `x[c] ≈ q[c] · scale[c / 32]`.
pub(super) struct XI16 {
    /// The rounded values.
    pub q: Vec<i16>,
    /// One scale per block of 32 (0 for an all-zero block).
    pub scale: Vec<f32>,
}

impl XI16 {
    /// Rounds `x` (a whole number of blocks of 32); `None` when a value is not finite.
    pub fn new(x: &[f32]) -> Option<Self> {
        if !x.len().is_multiple_of(QK) || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut q = vec![0i16; x.len()];
        let mut scale = vec![0f32; x.len() / QK];
        for ((xs, qs), s) in x
            .chunks_exact(QK)
            .zip(q.chunks_exact_mut(QK))
            .zip(scale.iter_mut())
        {
            let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            if amax > 0.0 {
                let inv = 32767.0 / amax;
                for (o, v) in qs.iter_mut().zip(xs) {
                    // |v · inv| ≤ 32767 up to rounding; `as` saturates.
                    *o = (v * inv).round() as i16;
                }
                *s = amax / 32767.0;
            }
        }
        Some(Self { q, scale })
    }
}

/// A row type with a 16-bit-activation kernel.
pub(super) trait DotI16: Sized {
    /// Values per block.
    const BLCK_SIZE_I16: usize = QK;
    /// `Σ row[c] x[c]` on AVX-512 (F, BW).
    ///
    /// # Safety
    /// The CPU runs AVX-512F/BW, AVX2, FMA and F16C; `x` covers the row's values.
    unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32;
    /// `Σ row[c] x[c]` on AVX2.
    ///
    /// # Safety
    /// The CPU runs AVX2, FMA and F16C; `x` covers the row's values.
    unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn f16(p: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    #[inline(always)]
    fn bytes<T>(b: &T) -> *const u8 {
        (b as *const T).cast()
    }

    #[inline(always)]
    unsafe fn hsum512(a: __m512, b: __m512) -> f32 {
        _mm512_reduce_add_ps(_mm512_add_ps(a, b))
    }

    #[inline(always)]
    unsafe fn hsum256(a: __m256, b: __m256) -> f32 {
        let a = _mm256_add_ps(a, b);
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Q5_0 block `p`'s 32 values minus 16 (0..31 → −16..15) as 16-bit lanes in order.
    #[inline(always)]
    unsafe fn q5_0_i16x32(p: *const u8) -> __m512i {
        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
        let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(6).cast()));
        let lo = _mm256_and_si256(v, _mm256_set1_epi16(0xf));
        let hi = _mm256_srli_epi16::<4>(v);
        let w = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
        // Bit j of qh is the fifth bit of value j.
        let w = _mm512_mask_add_epi16(w, qh, w, _mm512_set1_epi16(16));
        _mm512_sub_epi16(w, _mm512_set1_epi16(16))
    }

    /// Sixteen 16-bit lanes holding bit `j` of `bits` (low 16) shifted to 16 (or 0).
    #[inline(always)]
    unsafe fn bits16_avx2(bits: u32) -> __m256i {
        let sel = _mm256_setr_epi16(
            1,
            2,
            4,
            8,
            16,
            32,
            64,
            128,
            256,
            512,
            1024,
            2048,
            4096,
            8192,
            16384,
            i16::MIN,
        );
        let b = _mm256_set1_epi16(bits as u16 as i16);
        let set = _mm256_cmpeq_epi16(_mm256_and_si256(b, sel), sel);
        _mm256_and_si256(set, _mm256_set1_epi16(16))
    }

    impl DotI16 for BlockQ8_0 {
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            macro_rules! block {
                ($b:expr) => {{
                    let b: usize = $b;
                    let p = bytes(&row[b]);
                    let w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.add(2).cast()));
                    let xv = _mm512_loadu_si512(xq.add(QK * b).cast());
                    _mm512_cvtepi32_ps(_mm512_madd_epi16(w, xv))
                }};
            }
            let n = row.len();
            let mut b = 0;
            while b + 2 <= n {
                _mm_prefetch::<_MM_HINT_T0>(bytes(&row[b]).wrapping_add(PREFETCH).cast());
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                let s1 = f16(bytes(&row[b + 1])) * *xs.add(b + 1);
                a0 = _mm512_fmadd_ps(block!(b), _mm512_set1_ps(s0), a0);
                a1 = _mm512_fmadd_ps(block!(b + 1), _mm512_set1_ps(s1), a1);
                b += 2;
            }
            if b < n {
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                a0 = _mm512_fmadd_ps(block!(b), _mm512_set1_ps(s0), a0);
            }
            hsum512(a0, a1)
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            macro_rules! block {
                ($b:expr) => {{
                    let b: usize = $b;
                let p = bytes(&row[b]);
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(2).cast()));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(18).cast()));
                let x0 = _mm256_loadu_si256(xq.add(QK * b).cast());
                let x1 = _mm256_loadu_si256(xq.add(QK * b + 16).cast());
                // Each lane: four products of |q| ≤ 128 and |x| ≤ 32767, < 2^24: exact in f32.
                let s = _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1));
                _mm256_cvtepi32_ps(s)
                }};
            }
            let n = row.len();
            let mut b = 0;
            while b + 2 <= n {
                _mm_prefetch::<_MM_HINT_T0>(bytes(&row[b]).wrapping_add(PREFETCH).cast());
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                let s1 = f16(bytes(&row[b + 1])) * *xs.add(b + 1);
                a0 = _mm256_fmadd_ps(block!(b), _mm256_set1_ps(s0), a0);
                a1 = _mm256_fmadd_ps(block!(b + 1), _mm256_set1_ps(s1), a1);
                b += 2;
            }
            if b < n {
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                a0 = _mm256_fmadd_ps(block!(b), _mm256_set1_ps(s0), a0);
            }
            hsum256(a0, a1)
        }
    }

    impl DotI16 for BlockQ5_0 {
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            macro_rules! block {
                ($b:expr) => {{
                    let b: usize = $b;
                    let w = q5_0_i16x32(bytes(&row[b]));
                    let xv = _mm512_loadu_si512(xq.add(QK * b).cast());
                    _mm512_cvtepi32_ps(_mm512_madd_epi16(w, xv))
                }};
            }
            let n = row.len();
            let mut b = 0;
            while b + 2 <= n {
                _mm_prefetch::<_MM_HINT_T0>(bytes(&row[b]).wrapping_add(PREFETCH).cast());
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                let s1 = f16(bytes(&row[b + 1])) * *xs.add(b + 1);
                a0 = _mm512_fmadd_ps(block!(b), _mm512_set1_ps(s0), a0);
                a1 = _mm512_fmadd_ps(block!(b + 1), _mm512_set1_ps(s1), a1);
                b += 2;
            }
            if b < n {
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                a0 = _mm512_fmadd_ps(block!(b), _mm512_set1_ps(s0), a0);
            }
            hsum512(a0, a1)
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            macro_rules! block {
                ($b:expr) => {{
                    let b: usize = $b;
                    let p = bytes(&row[b]);
                    let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
                    let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(6).cast()));
                    let sixteen = _mm256_set1_epi16(16);
                    let lo = _mm256_or_si256(
                        _mm256_and_si256(v, _mm256_set1_epi16(0xf)),
                        bits16_avx2(qh),
                    );
                    let hi = _mm256_or_si256(_mm256_srli_epi16::<4>(v), bits16_avx2(qh >> 16));
                    let (lo, hi) = (_mm256_sub_epi16(lo, sixteen), _mm256_sub_epi16(hi, sixteen));
                    let x0 = _mm256_loadu_si256(xq.add(QK * b).cast());
                    let x1 = _mm256_loadu_si256(xq.add(QK * b + 16).cast());
                    let s = _mm256_add_epi32(_mm256_madd_epi16(lo, x0), _mm256_madd_epi16(hi, x1));
                    _mm256_cvtepi32_ps(s)
                }};
            }
            let n = row.len();
            let mut b = 0;
            while b + 2 <= n {
                _mm_prefetch::<_MM_HINT_T0>(bytes(&row[b]).wrapping_add(PREFETCH).cast());
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                let s1 = f16(bytes(&row[b + 1])) * *xs.add(b + 1);
                a0 = _mm256_fmadd_ps(block!(b), _mm256_set1_ps(s0), a0);
                a1 = _mm256_fmadd_ps(block!(b + 1), _mm256_set1_ps(s1), a1);
                b += 2;
            }
            if b < n {
                let s0 = f16(bytes(&row[b])) * *xs.add(b);
                a0 = _mm256_fmadd_ps(block!(b), _mm256_set1_ps(s0), a0);
            }
            hsum256(a0, a1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::XI16;

    #[test]
    fn rounding_is_within_half_a_step_and_refuses_non_finite_rows() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37)
            .collect();
        let r = XI16::new(&x).unwrap();
        for (c, v) in x.iter().enumerate() {
            let s = r.scale[c / 32];
            assert!((r.q[c] as f32 * s - v).abs() <= 0.5 * s * 1.0001, "{c}");
        }
        assert!(XI16::new(&[0.0; 32]).unwrap().scale[0] == 0.0);
        let mut bad = x.clone();
        bad[5] = f32::NAN;
        assert!(XI16::new(&bad).is_none());
        bad[5] = f32::INFINITY;
        assert!(XI16::new(&bad).is_none());
        assert!(XI16::new(&x[..40]).is_none());
    }
}
