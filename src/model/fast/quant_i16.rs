//! The generation-step (`m = 1`) kernels for Q8_0, Q5_0, Q4_0, Q4_1, Q4_K and Q6_K weights with
//! the activation row rounded to 16-bit integers, one scale per block of 32 ([`XI16`]): each
//! block's quants are widened to 16-bit lanes and multiplied pairwise with the activations by
//! one integer multiply-add (`vpmaddwd`, exact in 32 bits), converted once and scaled by the
//! product of the block (or sub-block) scale and the activations' scale; offsets (`min` of
//! Q4_1 and Q4_K) multiply the exact f32 sum of the activations' block. This halves the vector
//! work per weight of the f32 kernels of `quant_dot` (whose unpack, convert and two
//! multiply-adds run per 16 values), which matters wherever a matrix-vector product is bound by
//! arithmetic rather than memory: Gemma's 262 144-row Q8_0 LM head, and on two cores the
//! K-quant layers of a 7B Q4_K_M model.
//!
//! Accuracy: rounding an activation to 16 bits relative to its block's largest magnitude moves
//! it by at most 1/65 534 of that magnitude (about 1.5e-5), 300 times finer than the 8-bit
//! activations llama.cpp uses (about 4e-3), and far below the weights' own quantization error;
//! a row holding a non-finite value is not rounded ([`XI16::new`] says `None`, the caller uses
//! the f32 kernel, so NaN and infinity propagate). `STEERLAB_QUANT_I16=0` turns the path off.
//!
//! x86-64 only (AVX-512BW or AVX2); must not allocate per row, split work or know about
//! matrices.
#[cfg(target_arch = "x86_64")]
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
    /// The exact sum of each block of 32 without its outlier (for the offsets: Q4_1, Q4_K).
    pub sum: Vec<f32>,
    /// Outliers, kept exact: `(column, value)` of each block's largest magnitude where it is
    /// more than [`OUTLIER_RATIO`] times the block's next one (its `q` is 0 and the block's
    /// scale follows the next one), so one huge activation (the massive channels of the
    /// residual stream) does not coarsen the rounding of its 31 neighbours.
    pub outliers: Vec<(usize, f32)>,
}

/// How much larger than the rest of its block a value must be to be kept exact.
pub(super) const OUTLIER_RATIO: f32 = 4.0;

impl XI16 {
    /// Rounds `x` (a whole number of blocks of 32); `None` when a value is not finite.
    pub fn new(x: &[f32]) -> Option<Self> {
        if !x.len().is_multiple_of(QK) || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut q = vec![0i16; x.len()];
        let mut scale = vec![0f32; x.len() / QK];
        let mut sum = vec![0f32; x.len() / QK];
        let mut outliers = Vec::new();
        for (b, (((xs, qs), s), total)) in x
            .chunks_exact(QK)
            .zip(q.chunks_exact_mut(QK))
            .zip(scale.iter_mut())
            .zip(sum.iter_mut())
            .enumerate()
        {
            let (mut top, mut amax, mut next) = (0, 0f32, 0f32);
            for (j, v) in xs.iter().enumerate() {
                let a = v.abs();
                if a > amax {
                    (top, next, amax) = (j, amax, a);
                } else if a > next {
                    next = a;
                }
            }
            let mut skip = None;
            if amax > OUTLIER_RATIO * next {
                outliers.push((QK * b + top, xs[top]));
                skip = Some(top);
                amax = next;
            }
            // The offsets multiply the rounded values' block: the outlier's is in its value.
            *total = xs
                .iter()
                .enumerate()
                .filter(|(j, _)| Some(*j) != skip)
                .map(|(_, v)| v)
                .sum();
            if amax > 0.0 {
                let inv = 32767.0 / amax;
                for (j, (o, v)) in qs.iter_mut().zip(xs).enumerate() {
                    if Some(j) != skip {
                        // |v · inv| ≤ 32767 up to rounding; `as` saturates.
                        *o = (v * inv).round() as i16;
                    }
                }
                *s = amax / 32767.0;
            }
        }
        Some(Self {
            q,
            scale,
            sum,
            outliers,
        })
    }
}

/// A row type with a 16-bit-activation kernel.
pub(super) trait DotI16: Sized {
    /// Value `c` of the row (dequantized alone, for [`XI16::outliers`]).
    ///
    /// # Safety
    /// `c` is below the row's length in values.
    unsafe fn value(row: &[Self], c: usize) -> f32;
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
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K};
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
    unsafe fn prefetch(p: *const u8) {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH).cast());
    }

    #[inline(always)]
    unsafe fn hsum256(a: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// `Σ w·x` over 32 lanes as 16 f32 lanes (pairs summed; exact: every pair sum < 2^24).
    #[inline(always)]
    unsafe fn madd512(w: __m512i, x: *const i16) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_madd_epi16(w, _mm512_loadu_si512(x.cast())))
    }

    /// `Σ w·x` over 2 × 16 lanes as 8 f32 lanes.
    #[inline(always)]
    unsafe fn madd256(w: (__m256i, __m256i), x: *const i16) -> __m256 {
        let a = _mm256_madd_epi16(w.0, _mm256_loadu_si256(x.cast()));
        let b = _mm256_madd_epi16(w.1, _mm256_loadu_si256(x.add(16).cast()));
        _mm256_cvtepi32_ps(_mm256_add_epi32(a, b))
    }

    /// 16 bytes of nibbles as 32 lanes: the low nibbles (values 0..16), then the high ones.
    #[inline(always)]
    unsafe fn nibbles512(p: *const u8) -> __m512i {
        let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()));
        let lo = _mm256_and_si256(v, _mm256_set1_epi16(0xf));
        let hi = _mm256_srli_epi16::<4>(v);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }

    /// [`nibbles512`] as two 16-lane halves.
    #[inline(always)]
    unsafe fn nibbles256(p: *const u8) -> (__m256i, __m256i) {
        let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()));
        (
            _mm256_and_si256(v, _mm256_set1_epi16(0xf)),
            _mm256_srli_epi16::<4>(v),
        )
    }

    /// Sixteen 16-bit lanes holding bit `j` of `bits` (low 16) as 16 (or 0).
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

    /// A block of 32 values `d·w + min` with small integer `w`, unpacked to 16-bit lanes.
    trait Block32 {
        /// The integer weight `j` (< 32) alone.
        unsafe fn w(p: *const u8, j: usize) -> i32;
        /// The 32 integer weights in order.
        unsafe fn w512(p: *const u8) -> __m512i;
        /// The same as two 16-lane halves.
        unsafe fn w256(p: *const u8) -> (__m256i, __m256i);
        /// The scale `d`.
        unsafe fn d(p: *const u8) -> f32 {
            f16(p)
        }
        /// The offset added to every value (0 for the symmetric types).
        const MIN: bool = false;
        /// The offset.
        unsafe fn min(_p: *const u8) -> f32 {
            0.0
        }
    }

    /// Nibble `j` (< 32) of the 16 bytes at `p`: low nibbles first, then the high ones.
    #[inline(always)]
    unsafe fn nibble(p: *const u8, j: usize) -> i32 {
        if j < 16 {
            (*p.add(j) & 0xf) as i32
        } else {
            (*p.add(j - 16) >> 4) as i32
        }
    }

    impl Block32 for BlockQ8_0 {
        unsafe fn w(p: *const u8, j: usize) -> i32 {
            *p.add(2 + j) as i8 as i32
        }
        #[inline(always)]
        unsafe fn w512(p: *const u8) -> __m512i {
            _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.add(2).cast()))
        }
        #[inline(always)]
        unsafe fn w256(p: *const u8) -> (__m256i, __m256i) {
            (
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(2).cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(18).cast())),
            )
        }
    }

    impl Block32 for BlockQ4_0 {
        unsafe fn w(p: *const u8, j: usize) -> i32 {
            nibble(p.add(2), j) - 8
        }
        #[inline(always)]
        unsafe fn w512(p: *const u8) -> __m512i {
            _mm512_sub_epi16(nibbles512(p.add(2)), _mm512_set1_epi16(8))
        }
        #[inline(always)]
        unsafe fn w256(p: *const u8) -> (__m256i, __m256i) {
            let (lo, hi) = nibbles256(p.add(2));
            let eight = _mm256_set1_epi16(8);
            (_mm256_sub_epi16(lo, eight), _mm256_sub_epi16(hi, eight))
        }
    }

    impl Block32 for BlockQ4_1 {
        unsafe fn w(p: *const u8, j: usize) -> i32 {
            nibble(p.add(4), j)
        }
        #[inline(always)]
        unsafe fn w512(p: *const u8) -> __m512i {
            nibbles512(p.add(4))
        }
        #[inline(always)]
        unsafe fn w256(p: *const u8) -> (__m256i, __m256i) {
            nibbles256(p.add(4))
        }
        const MIN: bool = true;
        #[inline(always)]
        unsafe fn min(p: *const u8) -> f32 {
            f16(p.add(2))
        }
    }

    impl Block32 for BlockQ5_0 {
        unsafe fn w(p: *const u8, j: usize) -> i32 {
            let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
            (nibble(p.add(6), j) | ((((qh >> j) & 1) as i32) << 4)) - 16
        }
        #[inline(always)]
        unsafe fn w512(p: *const u8) -> __m512i {
            let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
            let w = nibbles512(p.add(6));
            // Bit j of qh is the fifth bit of value j.
            let w = _mm512_mask_add_epi16(w, qh, w, _mm512_set1_epi16(16));
            _mm512_sub_epi16(w, _mm512_set1_epi16(16))
        }
        #[inline(always)]
        unsafe fn w256(p: *const u8) -> (__m256i, __m256i) {
            let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
            let (lo, hi) = nibbles256(p.add(6));
            let sixteen = _mm256_set1_epi16(16);
            (
                _mm256_sub_epi16(_mm256_or_si256(lo, bits16_avx2(qh)), sixteen),
                _mm256_sub_epi16(_mm256_or_si256(hi, bits16_avx2(qh >> 16)), sixteen),
            )
        }
    }

    /// `Σ row·x` for blocks of 32 on AVX-512: two accumulators, blocks in pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn dot32_avx512<T: Block32>(row: &[T], x: &XI16) -> f32 {
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        // Two offset sums (even and odd blocks), so the scalar additions overlap.
        let (mut off0, mut off1) = (0f32, 0f32);
        let (xq, xs, sum) = (x.q.as_ptr(), x.scale.as_ptr(), x.sum.as_ptr());
        let n = row.len();
        let mut b = 0;
        while b < n {
            let p = bytes(&row[b]);
            prefetch(p);
            let s = _mm512_set1_ps(T::d(p) * *xs.add(b));
            a0 = _mm512_fmadd_ps(madd512(T::w512(p), xq.add(QK * b)), s, a0);
            if T::MIN {
                off0 += T::min(p) * *sum.add(b);
            }
            if b + 1 < n {
                let p = bytes(&row[b + 1]);
                let s = _mm512_set1_ps(T::d(p) * *xs.add(b + 1));
                a1 = _mm512_fmadd_ps(madd512(T::w512(p), xq.add(QK * (b + 1))), s, a1);
                if T::MIN {
                    off1 += T::min(p) * *sum.add(b + 1);
                }
            }
            b += 2;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (off0 + off1)
    }

    /// [`dot32_avx512`] on AVX2.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot32_avx2<T: Block32>(row: &[T], x: &XI16) -> f32 {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        // Two offset sums (even and odd blocks), so the scalar additions overlap.
        let (mut off0, mut off1) = (0f32, 0f32);
        let (xq, xs, sum) = (x.q.as_ptr(), x.scale.as_ptr(), x.sum.as_ptr());
        let n = row.len();
        let mut b = 0;
        while b < n {
            let p = bytes(&row[b]);
            prefetch(p);
            let s = _mm256_set1_ps(T::d(p) * *xs.add(b));
            a0 = _mm256_fmadd_ps(madd256(T::w256(p), xq.add(QK * b)), s, a0);
            if T::MIN {
                off0 += T::min(p) * *sum.add(b);
            }
            if b + 1 < n {
                let p = bytes(&row[b + 1]);
                let s = _mm256_set1_ps(T::d(p) * *xs.add(b + 1));
                a1 = _mm256_fmadd_ps(madd256(T::w256(p), xq.add(QK * (b + 1))), s, a1);
                if T::MIN {
                    off1 += T::min(p) * *sum.add(b + 1);
                }
            }
            b += 2;
        }
        hsum256(_mm256_add_ps(a0, a1)) + (off0 + off1)
    }

    macro_rules! dot32_impl {
        ($($t:ty),*) => {$(
            impl DotI16 for $t {
                unsafe fn value(row: &[Self], c: usize) -> f32 {
                    let p = bytes(&row[c / QK]);
                    let v = <$t as Block32>::d(p) * <$t as Block32>::w(p, c % QK) as f32;
                    if <$t as Block32>::MIN {
                        v + <$t as Block32>::min(p)
                    } else {
                        v
                    }
                }
                unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32 {
                    dot32_avx512(row, x)
                }
                unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32 {
                    dot32_avx2(row, x)
                }
            }
        )*};
    }
    dot32_impl!(BlockQ8_0, BlockQ5_0, BlockQ4_0, BlockQ4_1);

    /// The 6-bit scale and min of sub-block `j` of a Q4_K block's 12 packed scale bytes at `q`.
    #[inline(always)]
    unsafe fn k4_scale_min(j: usize, q: *const u8) -> (f32, f32) {
        let (s, m) = if j < 4 {
            (*q.add(j) & 63, *q.add(j + 4) & 63)
        } else {
            (
                (*q.add(j + 4) & 0xf) | ((*q.add(j - 4) >> 6) << 4),
                (*q.add(j + 4) >> 4) | ((*q.add(j) >> 6) << 4),
            )
        };
        (s as f32, m as f32)
    }

    impl DotI16 for BlockQ4K {
        unsafe fn value(row: &[Self], c: usize) -> f32 {
            let p = bytes(&row[c / 256]);
            let j = c % 256;
            let (chunk, within) = (j / 64, j % 64);
            let byte = *p.add(16 + 32 * chunk + within % 32);
            let q = if within < 32 { byte & 0xf } else { byte >> 4 };
            let (sc, m) = k4_scale_min(2 * chunk + within / 32, p.add(4));
            f16(p) * sc * q as f32 - f16(p.add(2)) * m
        }

        /// Each 256-value block: 4 chunks of 32 bytes, whose low nibbles are sub-block 2c and
        /// high nibbles sub-block 2c + 1 (32 values each, own 6-bit scale and min).
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let mut offsets = 0f32;
            let (xq, xs, sum) = (x.q.as_ptr(), x.scale.as_ptr(), x.sum.as_ptr());
            for (b, blk) in row.iter().enumerate() {
                let p = bytes(blk);
                prefetch(p);
                let (d, dmin) = (f16(p), f16(p.add(2)));
                let (scales, qs) = (p.add(4), p.add(16));
                for c in 0..4 {
                    let (s1, m1) = k4_scale_min(2 * c, scales);
                    let (s2, m2) = k4_scale_min(2 * c + 1, scales);
                    let j = 8 * b + 2 * c;
                    let v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(qs.add(32 * c).cast()));
                    let lo = _mm512_and_si512(v, _mm512_set1_epi16(0xf));
                    let hi = _mm512_srli_epi16::<4>(v);
                    let x0 = xq.add(QK * j);
                    a0 = _mm512_fmadd_ps(madd512(lo, x0), _mm512_set1_ps(d * s1 * *xs.add(j)), a0);
                    a1 = _mm512_fmadd_ps(
                        madd512(hi, x0.add(QK)),
                        _mm512_set1_ps(d * s2 * *xs.add(j + 1)),
                        a1,
                    );
                    offsets -= dmin * (m1 * *sum.add(j) + m2 * *sum.add(j + 1));
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + offsets
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut offsets = 0f32;
            let (xq, xs, sum) = (x.q.as_ptr(), x.scale.as_ptr(), x.sum.as_ptr());
            let mask = _mm256_set1_epi16(0xf);
            for (b, blk) in row.iter().enumerate() {
                let p = bytes(blk);
                prefetch(p);
                let (d, dmin) = (f16(p), f16(p.add(2)));
                let (scales, qs) = (p.add(4), p.add(16));
                for c in 0..4 {
                    let (s1, m1) = k4_scale_min(2 * c, scales);
                    let (s2, m2) = k4_scale_min(2 * c + 1, scales);
                    let j = 8 * b + 2 * c;
                    let v0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.add(32 * c).cast()));
                    let v1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.add(32 * c + 16).cast()));
                    let lo = (_mm256_and_si256(v0, mask), _mm256_and_si256(v1, mask));
                    let hi = (_mm256_srli_epi16::<4>(v0), _mm256_srli_epi16::<4>(v1));
                    let x0 = xq.add(QK * j);
                    a0 = _mm256_fmadd_ps(madd256(lo, x0), _mm256_set1_ps(d * s1 * *xs.add(j)), a0);
                    a1 = _mm256_fmadd_ps(
                        madd256(hi, x0.add(QK)),
                        _mm256_set1_ps(d * s2 * *xs.add(j + 1)),
                        a1,
                    );
                    offsets -= dmin * (m1 * *sum.add(j) + m2 * *sum.add(j + 1));
                }
            }
            hsum256(_mm256_add_ps(a0, a1)) + offsets
        }
    }

    impl DotI16 for BlockQ6K {
        unsafe fn value(row: &[Self], c: usize) -> f32 {
            let p = bytes(&row[c / 256]);
            let j = c % 256;
            let (half, i, l) = (j / 128, (j % 128) / 32, j % 32);
            let (ql, qh) = (p.add(64 * half), *p.add(128 + 32 * half + l));
            let lo = match i {
                0 => *ql.add(l) & 0xf,
                1 => *ql.add(l + 32) & 0xf,
                2 => *ql.add(l) >> 4,
                _ => *ql.add(l + 32) >> 4,
            };
            let q = (lo | (((qh >> (2 * i)) & 3) << 4)) as i32 - 32;
            let sc = *p.add(192 + 8 * half + l / 16 + 2 * i) as i8;
            f16(p.add(208)) * sc as f32 * q as f32
        }

        /// Each 256-value block: two halves of 128; in a half, value `l + 32 i` (l < 32,
        /// i < 4) takes a nibble of `ql` and two bits of `qh`, minus 32, and the int8 scale
        /// `sc[l / 16 + 2 i]`.
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn dot_avx512(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            let (m4, m3, k32) = (
                _mm512_set1_epi16(0xf),
                _mm512_set1_epi16(3),
                _mm512_set1_epi16(32),
            );
            for (b, blk) in row.iter().enumerate() {
                let p = bytes(blk);
                prefetch(p);
                let d = f16(p.add(208));
                for half in 0..2 {
                    let ql = p.add(64 * half);
                    let qh = p.add(128 + 32 * half);
                    let sc = p.add(192 + 8 * half);
                    let a = _mm512_cvtepu8_epi16(_mm256_loadu_si256(ql.cast()));
                    let c = _mm512_cvtepu8_epi16(_mm256_loadu_si256(ql.add(32).cast()));
                    let h = _mm512_cvtepu8_epi16(_mm256_loadu_si256(qh.cast()));
                    let q = [
                        _mm512_or_si512(
                            _mm512_and_si512(a, m4),
                            _mm512_slli_epi16::<4>(_mm512_and_si512(h, m3)),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(c, m4),
                            _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<2>(h), m3)),
                        ),
                        _mm512_or_si512(
                            _mm512_srli_epi16::<4>(a),
                            _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(h), m3)),
                        ),
                        _mm512_or_si512(
                            _mm512_srli_epi16::<4>(c),
                            _mm512_slli_epi16::<4>(_mm512_srli_epi16::<6>(h)),
                        ),
                    ];
                    let g0 = 8 * b + 4 * half;
                    for (i, q) in q.into_iter().enumerate() {
                        let xsg = d * *xs.add(g0 + i);
                        let s = _mm512_mask_blend_ps(
                            0xff00,
                            _mm512_set1_ps(xsg * (*sc.add(2 * i) as i8) as f32),
                            _mm512_set1_ps(xsg * (*sc.add(2 * i + 1) as i8) as f32),
                        );
                        let v = madd512(_mm512_sub_epi16(q, k32), xq.add(QK * (g0 + i)));
                        if i % 2 == 0 {
                            a0 = _mm512_fmadd_ps(v, s, a0);
                        } else {
                            a1 = _mm512_fmadd_ps(v, s, a1);
                        }
                    }
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_avx2(row: &[Self], x: &XI16) -> f32 {
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (xq, xs) = (x.q.as_ptr(), x.scale.as_ptr());
            let (m4, m3, k32) = (
                _mm256_set1_epi16(0xf),
                _mm256_set1_epi16(3),
                _mm256_set1_epi16(32),
            );
            for (b, blk) in row.iter().enumerate() {
                let p = bytes(blk);
                prefetch(p);
                let d = f16(p.add(208));
                for half in 0..2 {
                    let ql = p.add(64 * half);
                    let qh = p.add(128 + 32 * half);
                    let sc = p.add(192 + 8 * half);
                    let g0 = 8 * b + 4 * half;
                    // l = 0..16 (scale sc[2i]) and l = 16..32 (scale sc[2i + 1]).
                    for part in 0..2 {
                        let o = 16 * part;
                        let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(ql.add(o).cast()));
                        let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(ql.add(32 + o).cast()));
                        let h = _mm256_cvtepu8_epi16(_mm_loadu_si128(qh.add(o).cast()));
                        let q = [
                            _mm256_or_si256(
                                _mm256_and_si256(a, m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(h, m3)),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(c, m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    _mm256_srli_epi16::<2>(h),
                                    m3,
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_srli_epi16::<4>(a),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    _mm256_srli_epi16::<4>(h),
                                    m3,
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_srli_epi16::<4>(c),
                                _mm256_slli_epi16::<4>(_mm256_srli_epi16::<6>(h)),
                            ),
                        ];
                        for (i, q) in q.into_iter().enumerate() {
                            let s = d * *xs.add(g0 + i) * (*sc.add(2 * i + part) as i8) as f32;
                            let xv = _mm256_loadu_si256(xq.add(QK * (g0 + i) + o).cast());
                            let v =
                                _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_sub_epi16(q, k32), xv));
                            if i % 2 == 0 {
                                a0 = _mm256_fmadd_ps(v, _mm256_set1_ps(s), a0);
                            } else {
                                a1 = _mm256_fmadd_ps(v, _mm256_set1_ps(s), a1);
                            }
                        }
                    }
                }
            }
            hsum256(_mm256_add_ps(a0, a1))
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

    #[test]
    fn an_outlier_is_kept_exact_and_its_neighbours_keep_their_precision() {
        let mut x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.037)
            .collect();
        x[40] = 500.0;
        let r = XI16::new(&x).unwrap();
        assert_eq!(r.outliers, vec![(40, 500.0)]);
        assert_eq!(r.q[40], 0);
        let next = x[32..64]
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != 8)
            .fold(0f32, |a, (_, v)| a.max(v.abs()));
        assert!((r.scale[1] - next / 32767.0).abs() < 1e-12);
        assert!(r.outliers.iter().all(|(c, _)| *c >= 32), "block 0 has none");
    }
}
