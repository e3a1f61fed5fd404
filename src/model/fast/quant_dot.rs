//! One quantized row dotted with one f32 activation row, in explicit SIMD: the generation-step
//! (`m = 1`) kernel of [`super::quant`]. Each block is unpacked to 32-bit integers, converted,
//! scaled with one multiply-add per lane (`q·d + min`, the block's own scale and offset) and
//! multiply-added into independent accumulators against `x`; no buffer, no second pass, the
//! f16 scales converted with F16C. Activations stay f32 (never rounded to 8 bits), so the
//! result equals the dequantized row's dot product up to summation order and the rounding of
//! one fused multiply-add per value.
//!
//! Written once over [`Simd`] (16 lanes for AVX-512, 8 for AVX2) for the block types that
//! matter for speed (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K); the others keep the generic fused
//! loop of `quant.rs`. Must not allocate, split work or know about matrices: one row, one dot.
use candle_core::quantized::k_quants::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8_0,
};

/// The vector operations the kernels use, for one instruction set; every function is called
/// only inside a function compiled for that set (the callers' `target_feature`).
pub(super) trait Simd {
    /// f32 lanes per vector.
    const LANES: usize;
    /// A vector of `LANES` f32.
    type F: Copy;
    /// A vector of `LANES` i32.
    type I: Copy;
    /// All lanes 0.
    unsafe fn zero() -> Self::F;
    /// All lanes `v`.
    unsafe fn splat(v: f32) -> Self::F;
    /// `LANES` f32 from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::F;
    /// `LANES` bytes from `p`, zero-extended.
    unsafe fn u8x(p: *const u8) -> Self::I;
    /// `LANES` bytes from `p`, sign-extended.
    unsafe fn i8x(p: *const u8) -> Self::I;
    /// Lane-wise `a & m`.
    unsafe fn and(a: Self::I, m: i32) -> Self::I;
    /// Lane-wise `a | b`.
    unsafe fn or(a: Self::I, b: Self::I) -> Self::I;
    /// Lane-wise logical `a >> n`.
    unsafe fn shr(a: Self::I, n: i32) -> Self::I;
    /// Lane-wise `a << n`.
    unsafe fn shl(a: Self::I, n: i32) -> Self::I;
    /// Lane `j` is `16` if bit `first + j` of `bits` is set, else 0 (Q5_0's fifth bits).
    unsafe fn bit16(bits: u32, first: u32) -> Self::I;
    /// i32 to f32.
    unsafe fn cvt(a: Self::I) -> Self::F;
    /// `a * b + c`, one rounding.
    unsafe fn fma(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `a + b`.
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// The sum of the lanes.
    unsafe fn sum(a: Self::F) -> f32;
    /// The little-endian f16 at `p` as f32.
    unsafe fn f16(p: *const u8) -> f32;
    /// A hint to load the cache line at `p` (any address; never faults).
    unsafe fn prefetch(p: *const u8);
}

/// Bytes ahead of the current block that the kernels ask the cache to fetch.
const PREFETCH: usize = 2048;

/// The dot product of one quantized row with `x` (`x.len()` = the row's values).
pub(super) trait SimdDot: Sized {
    /// `Σ row[c] x[c]`; `S`'s instruction set must be enabled in the caller.
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32;
}

/// Four accumulators, one multiply-add chain each per block: `acc[j & 3] += v x`.
struct Acc<S: Simd>([S::F; 4]);

impl<S: Simd> Acc<S> {
    #[inline(always)]
    unsafe fn new() -> Self {
        Acc([S::zero(); 4])
    }
    /// `acc[j] += (q d + min) · x[..LANES]`.
    #[inline(always)]
    unsafe fn qfma(&mut self, j: usize, q: S::I, d: S::F, min: S::F, x: *const f32) {
        let v = S::fma(S::cvt(q), d, min);
        let a = &mut self.0[j & 3];
        *a = S::fma(v, S::load(x), *a);
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        let [a, b, c, d] = self.0;
        S::sum(S::add(S::add(a, b), S::add(c, d)))
    }
}

/// `Σ` over the blocks of `$row` of `$body`, run with `$acc`, `$base`, `$blk` and `$b` bound:
/// two blocks at a time (`$base` 0 and 2, so consecutive blocks feed different accumulators
/// and, after unrolling, every accumulator index is a constant: they stay in registers). A
/// macro, not a closure: closures do not inherit the caller's `target_feature`.
macro_rules! blocks2 {
    ($S:ty, $row:expr, |$acc:ident, $base:ident, $blk:ident, $b:ident| $body:block) => {{
        let row = $row;
        let mut acc = Acc::<$S>::new();
        let pairs = row.len() / 2;
        for i in 0..pairs {
            S::prefetch((&row[2 * i] as *const _ as *const u8).wrapping_add(PREFETCH));
            {
                let ($acc, $base, $blk, $b) = (&mut acc, 0usize, &row[2 * i], 2 * i);
                $body
            }
            {
                let ($acc, $base, $blk, $b) = (&mut acc, 2usize, &row[2 * i + 1], 2 * i + 1);
                $body
            }
        }
        if row.len() % 2 == 1 {
            let n = row.len() - 1;
            let ($acc, $base, $blk, $b) = (&mut acc, 0usize, &row[n], n);
            $body
        }
        acc.sum()
    }};
}

/// A block's bytes as a pointer (candle's block structs are `repr(C)` plain data).
#[inline(always)]
fn bytes<T>(b: &T) -> *const u8 {
    (b as *const T).cast()
}

impl SimdDot for BlockQ4_0 {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        blocks2!(S, row, |acc, base, blk, b| {
            let p = bytes(blk);
            let d = S::f16(p);
            let (dd, min) = (S::splat(d), S::splat(-8.0 * d));
            let x = x.as_ptr().add(32 * b);
            let mut j = base;
            for h in (0..16).step_by(S::LANES) {
                let q = S::u8x(p.add(2 + h));
                acc.qfma(j, S::and(q, 0xf), dd, min, x.add(h));
                acc.qfma(j + 1, S::shr(q, 4), dd, min, x.add(16 + h));
                j += 2;
            }
        })
    }
}

impl SimdDot for BlockQ4_1 {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        blocks2!(S, row, |acc, base, blk, b| {
            let p = bytes(blk);
            let (dd, min) = (S::splat(S::f16(p)), S::splat(S::f16(p.add(2))));
            let x = x.as_ptr().add(32 * b);
            let mut j = base;
            for h in (0..16).step_by(S::LANES) {
                let q = S::u8x(p.add(4 + h));
                acc.qfma(j, S::and(q, 0xf), dd, min, x.add(h));
                acc.qfma(j + 1, S::shr(q, 4), dd, min, x.add(16 + h));
                j += 2;
            }
        })
    }
}

impl SimdDot for BlockQ5_0 {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        blocks2!(S, row, |acc, base, blk, b| {
            let p = bytes(blk);
            let d = S::f16(p);
            let (dd, min) = (S::splat(d), S::splat(-16.0 * d));
            let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
            let x = x.as_ptr().add(32 * b);
            let mut j = base;
            for h in (0..16).step_by(S::LANES) {
                let q = S::u8x(p.add(6 + h));
                let lo = S::or(S::and(q, 0xf), S::bit16(qh, h as u32));
                let hi = S::or(S::shr(q, 4), S::bit16(qh, 16 + h as u32));
                acc.qfma(j, lo, dd, min, x.add(h));
                acc.qfma(j + 1, hi, dd, min, x.add(16 + h));
                j += 2;
            }
        })
    }
}

impl SimdDot for BlockQ8_0 {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        let zero = S::zero();
        blocks2!(S, row, |acc, base, blk, b| {
            let p = bytes(blk);
            let dd = S::splat(S::f16(p));
            let x = x.as_ptr().add(32 * b);
            for (i, h) in (0..32).step_by(S::LANES).enumerate() {
                acc.qfma(base + i, S::i8x(p.add(2 + h)), dd, zero, x.add(h));
            }
        })
    }
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K block's 12 packed scale bytes at `q`.
#[inline(always)]
unsafe fn k4_scale_min(j: usize, q: *const u8) -> (u8, u8) {
    if j < 4 {
        (*q.add(j) & 63, *q.add(j + 4) & 63)
    } else {
        (
            (*q.add(j + 4) & 0xf) | ((*q.add(j - 4) >> 6) << 4),
            (*q.add(j + 4) >> 4) | ((*q.add(j) >> 6) << 4),
        )
    }
}

impl SimdDot for BlockQ4K {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        blocks2!(S, row, |acc, base, blk, b| {
            let p = bytes(blk);
            let (d, dmin) = (S::f16(p), S::f16(p.add(2)));
            let (scales, qs) = (p.add(4), p.add(16));
            let x = x.as_ptr().add(256 * b);
            for c in 0..4 {
                let (s1, m1) = k4_scale_min(2 * c, scales);
                let (s2, m2) = k4_scale_min(2 * c + 1, scales);
                let (d1, n1) = (S::splat(d * s1 as f32), S::splat(-(dmin * m1 as f32)));
                let (d2, n2) = (S::splat(d * s2 as f32), S::splat(-(dmin * m2 as f32)));
                let mut j = 2 * (c & 1) + base;
                for h in (0..32).step_by(S::LANES) {
                    let q = S::u8x(qs.add(32 * c + h));
                    acc.qfma(j, S::and(q, 0xf), d1, n1, x.add(64 * c + h));
                    acc.qfma(j + 1, S::shr(q, 4), d2, n2, x.add(64 * c + 32 + h));
                    j += 2;
                }
            }
        })
    }
}

impl SimdDot for BlockQ6K {
    #[inline(always)]
    unsafe fn dot<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        blocks2!(S, row, |acc, _base, blk, b| {
            let p = bytes(blk);
            let d = S::f16(p.add(208));
            for half in 0..2 {
                let ql = p.add(64 * half);
                let qh = p.add(128 + 32 * half);
                let sc = p.add(192 + 8 * half);
                let x = x.as_ptr().add(256 * b + 128 * half);
                for l in (0..32).step_by(S::LANES) {
                    let is = l / 16;
                    let a = S::u8x(ql.add(l));
                    let c = S::u8x(ql.add(l + 32));
                    let h = S::u8x(qh.add(l));
                    let q = [
                        S::or(S::and(a, 0xf), S::shl(S::and(h, 3), 4)),
                        S::or(S::and(c, 0xf), S::shl(S::and(S::shr(h, 2), 3), 4)),
                        S::or(S::shr(a, 4), S::shl(S::and(S::shr(h, 4), 3), 4)),
                        S::or(S::shr(c, 4), S::shl(S::shr(h, 6), 4)),
                    ];
                    for (i, q) in q.into_iter().enumerate() {
                        let s = d * (*sc.add(is + 2 * i) as i8) as f32;
                        acc.qfma(i, q, S::splat(s), S::splat(-32.0 * s), x.add(l + 32 * i));
                    }
                }
            }
        })
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// 512-bit vectors (AVX-512F; F16C for the scales).
    pub(crate) struct Avx512;
    /// 256-bit vectors (AVX2 + FMA + F16C).
    pub(crate) struct Avx2;

    #[inline(always)]
    unsafe fn f16_bits(p: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    impl Simd for Avx512 {
        const LANES: usize = 16;
        type F = __m512;
        type I = __m512i;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn u8x(p: *const u8) -> __m512i {
            _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast()))
        }
        #[inline(always)]
        unsafe fn i8x(p: *const u8) -> __m512i {
            _mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast()))
        }
        #[inline(always)]
        unsafe fn and(a: __m512i, m: i32) -> __m512i {
            _mm512_and_si512(a, _mm512_set1_epi32(m))
        }
        #[inline(always)]
        unsafe fn or(a: __m512i, b: __m512i) -> __m512i {
            _mm512_or_si512(a, b)
        }
        #[inline(always)]
        unsafe fn shr(a: __m512i, n: i32) -> __m512i {
            _mm512_srl_epi32(a, _mm_cvtsi32_si128(n))
        }
        #[inline(always)]
        unsafe fn shl(a: __m512i, n: i32) -> __m512i {
            _mm512_sll_epi32(a, _mm_cvtsi32_si128(n))
        }
        #[inline(always)]
        unsafe fn bit16(bits: u32, first: u32) -> __m512i {
            let m = ((bits >> first) & 0xffff) as u16;
            _mm512_maskz_mov_epi32(m, _mm512_set1_epi32(16))
        }
        #[inline(always)]
        unsafe fn cvt(a: __m512i) -> __m512 {
            _mm512_cvtepi32_ps(a)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(a: __m512) -> f32 {
            _mm512_reduce_add_ps(a)
        }
        #[inline(always)]
        unsafe fn f16(p: *const u8) -> f32 {
            f16_bits(p)
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const u8) {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
        }
    }

    impl Simd for Avx2 {
        const LANES: usize = 8;
        type F = __m256;
        type I = __m256i;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn u8x(p: *const u8) -> __m256i {
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))
        }
        #[inline(always)]
        unsafe fn i8x(p: *const u8) -> __m256i {
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))
        }
        #[inline(always)]
        unsafe fn and(a: __m256i, m: i32) -> __m256i {
            _mm256_and_si256(a, _mm256_set1_epi32(m))
        }
        #[inline(always)]
        unsafe fn or(a: __m256i, b: __m256i) -> __m256i {
            _mm256_or_si256(a, b)
        }
        #[inline(always)]
        unsafe fn shr(a: __m256i, n: i32) -> __m256i {
            _mm256_srl_epi32(a, _mm_cvtsi32_si128(n))
        }
        #[inline(always)]
        unsafe fn shl(a: __m256i, n: i32) -> __m256i {
            _mm256_sll_epi32(a, _mm_cvtsi32_si128(n))
        }
        #[inline(always)]
        unsafe fn bit16(bits: u32, first: u32) -> __m256i {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let v = _mm256_srlv_epi32(_mm256_set1_epi32((bits >> first) as i32), lanes);
            _mm256_slli_epi32::<4>(_mm256_and_si256(v, _mm256_set1_epi32(1)))
        }
        #[inline(always)]
        unsafe fn cvt(a: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(a)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sum(a: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
        #[inline(always)]
        unsafe fn f16(p: *const u8) -> f32 {
            f16_bits(p)
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const u8) {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
        }
    }
}
