// Troupe patch: every function here is compiled for AVX2, FMA and F16C
// (`#[target_feature]`), not the whole crate: the binary runs on any x86-64 CPU, and callers
// reach these kernels only where `super::cpu_kernels()` says the CPU has those features (AVX-512
// VNNI for the `_vnni` ones). Upstream compiled this module only when the build targeted AVX2.
use super::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, PackedQ8x4, QK8_0, QK8_1, QK_K,
};
use super::repack::{BlockQ4_0x8, BlockQ4_1x8, BlockQ5_0x8, BlockQ8_0x8};
use byteorder::{ByteOrder, LittleEndian};
use half::f16;

use core::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn sum_i16_pairs_float(x: __m256i) -> __m256 {
    let ones = _mm256_set1_epi16(1);
    let summed_pairs = _mm256_madd_epi16(ones, x);
    _mm256_cvtepi32_ps(summed_pairs)
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    sum_i16_pairs_float(dot)
}

// Troupe patch: an f16 scale converted to f32 in all eight lanes, for the kernels' loops.
// `_mm256_set1_ps(f16::to_f32(d))` compiles to `vpinsrw` into a register LLVM picks (only lane 0
// matters to it), keeping that register's other lanes; in these loops it picked an accumulator,
// which chained each block's scale to the previous block's fused multiply-add (seen in `perf
// annotate`). A broadcast of the 16 bits, converted in every lane, depends on nothing. The
// same conversion, so the same value in each lane.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn f16_splat_8(x: f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(x.to_bits() as i16))
}

// Troupe patch: an f16 converted with F16C here, in the kernels. `f16::to_f32` asks at run
// time whether the CPU has F16C (the build no longer assumes it) on every call; the same
// conversion, exact either way.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn f16_f32(x: f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x.to_bits() as i32)))
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn hsum_float_8(x: __m256) -> f32 {
    let res = _mm256_extractf128_ps(x, 1);
    let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn bytes_from_nibbles_32(rsi: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(rsi as *const __m128i);
    let bytes = _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4));
    let low_mask = _mm256_set1_epi8(0xF);
    _mm256_and_si256(low_mask, bytes)
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) unsafe fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, xs: &[BlockQ4_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q4_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16_f32(x.d) * f16_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let off = _mm256_set1_epi8(8);
            let bx = _mm256_sub_epi8(bx, off);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc)
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, xs: &[BlockQ8_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q8_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16_f32(x.d) * f16_f32(y.d));
            let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc)
    }
}

// Troupe patch: Q4_1 had only the scalar loop, so Troupe transcoded Q4_1 files to Q8_0 at load,
// which reads 1.7x the bytes per decoded token. This is ggml's AVX2 `ggml_vec_dot_q4_1_q8_1`:
// the nibbles are unsigned (0..15), so `maddubs` takes them as they are; the minimum `m`
// contributes `m * s`, where the Q8_1 block carries `s = d * sum(q)`.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_1_q8_1(n: usize, xs: &[BlockQ4_1], ys: &[BlockQ8_1]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_1),
        "vec_dot_q4_1_q8_1: {n} is not divisible by {QK8_1}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for (x, y) in xs.iter().zip(ys.iter()) {
            summs += f16_f32(x.m) * f16_f32(y.s);
            let d = _mm256_set1_ps(f16_f32(x.d) * f16_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_us8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc) + summs
    }
}

// Troupe patch: byte i of the result is 0xFF where bit i of the 32 bits at `x` is set, else 0
// (ggml's `bytes_from_bits_32`), for the fifth bit of Q5_0 and Q5_1 values.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn bytes_from_bits_32(x: &[u8; 4]) -> __m256i {
    let x32 = i32::from_le_bytes(*x);
    let shuf_mask = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32), shuf_mask);
    let bit_mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    let bytes = _mm256_or_si256(bytes, bit_mask);
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

// Troupe patch: Q5_0 had only the scalar loop (ggml's AVX2 `ggml_vec_dot_q5_0_q8_0`). A value is
// its nibble plus 16 times its bit, minus 16: where the bit is clear, OR-ing 0xF0 into the nibble
// gives exactly nibble - 16 as a signed byte.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q5_0_q8_0(n: usize, xs: &[BlockQ5_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q5_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16_f32(x.d) * f16_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let hi = _mm256_andnot_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0xF0u8 as i8));
            let bx = _mm256_or_si256(bx, hi);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc)
    }
}

// Troupe patch: Q5_1 had only the scalar loop (ggml's AVX2 `ggml_vec_dot_q5_1_q8_1`): unsigned
// 5-bit values, plus the block minimum times the Q8_1 block's `s`, as for Q4_1.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q5_1_q8_1(n: usize, xs: &[BlockQ5_1], ys: &[BlockQ8_1]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_1),
        "vec_dot_q5_1_q8_1: {n} is not divisible by {QK8_1}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for (x, y) in xs.iter().zip(ys.iter()) {
            summs += f16_f32(x.m) * f16_f32(y.s);
            let d = _mm256_set1_ps(f16_f32(x.d) * f16_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let hi = _mm256_and_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0x10));
            let bx = _mm256_or_si256(bx, hi);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_us8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc) + summs
    }
}

// Troupe patch: the four-row forms of the kernels above, for the prefill matmul
// (`GgmlType::vec_dot_x4`). Each weight block is loaded and unpacked once, then multiplied with
// the block of each of four activation rows; per row, the operations and their order are those
// of the one-row kernel, so each result is bit-identical to it.
macro_rules! troupe_x4 {
    ($name:ident, $x:ty, $y:ty, $qk:expr, |$xb:ident| $unpack:expr, |$ux:ident, $yb:ident| $dot:expr, $min:expr) => {
        #[inline]
        #[target_feature(enable = "avx,avx2,fma,f16c")]
        pub(crate) fn $name(n: usize, xs: &[$x], ys: [&[$y]; 4]) -> [f32; 4] {
            debug_assert!(
                n.is_multiple_of($qk),
                "{}: {n} is not divisible by {}",
                stringify!($name),
                $qk
            );
            unsafe {
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut summs = [0f32; 4];
                for (i, $xb) in xs.iter().enumerate() {
                    let $ux = $unpack;
                    let dx = f16_splat_8($xb.d);
                    for r in 0..4 {
                        let $yb = ys[r].get_unchecked(i);
                        if $min {
                            summs[r] += troupe_min($xb, $yb);
                        }
                        let d = _mm256_mul_ps(dx, f16_splat_8($yb.d));
                        let q = $dot;
                        acc[r] = _mm256_fmadd_ps(d, q, acc[r]);
                    }
                }
                let mut out = [0f32; 4];
                for r in 0..4 {
                    out[r] = if $min {
                        hsum_float_8(acc[r]) + summs[r]
                    } else {
                        hsum_float_8(acc[r])
                    };
                }
                out
            }
        }
    };
}

// The min of a block (Q4_1, Q5_1) and the sum of the activation block it meets; the blocks
// without a min are never asked (their kernels pass `$min = false`).
trait TroupeMin<Y> {
    fn min_and_sum(&self, y: &Y) -> (f16, f16);
}
impl TroupeMin<BlockQ8_0> for BlockQ4_0 {
    fn min_and_sum(&self, _: &BlockQ8_0) -> (f16, f16) {
        (f16::ZERO, f16::ZERO)
    }
}
impl TroupeMin<BlockQ8_0> for BlockQ5_0 {
    fn min_and_sum(&self, _: &BlockQ8_0) -> (f16, f16) {
        (f16::ZERO, f16::ZERO)
    }
}
impl TroupeMin<BlockQ8_0> for BlockQ8_0 {
    fn min_and_sum(&self, _: &BlockQ8_0) -> (f16, f16) {
        (f16::ZERO, f16::ZERO)
    }
}
impl TroupeMin<BlockQ8_1> for BlockQ4_1 {
    #[inline(always)]
    fn min_and_sum(&self, y: &BlockQ8_1) -> (f16, f16) {
        (self.m, y.s)
    }
}
impl TroupeMin<BlockQ8_1> for BlockQ5_1 {
    #[inline(always)]
    fn min_and_sum(&self, y: &BlockQ8_1) -> (f16, f16) {
        (self.m, y.s)
    }
}
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn troupe_min<X: TroupeMin<Y>, Y>(x: &X, y: &Y) -> f32 {
    let (m, s) = x.min_and_sum(y);
    f16_f32(m) * f16_f32(s)
}

// Signed weights: |x| once, the sign moved onto each activation row (`mul_sum_i8_pairs_float`).
troupe_x4!(
    vec_dot_q8_0_q8_0_x4,
    BlockQ8_0,
    BlockQ8_0,
    QK8_0,
    |x| {
        let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
        (_mm256_sign_epi8(bx, bx), bx)
    },
    |u, y| {
        let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        mul_sum_us8_pairs_float(u.0, _mm256_sign_epi8(by, u.1))
    },
    false
);
troupe_x4!(
    vec_dot_q4_0_q8_0_x4,
    BlockQ4_0,
    BlockQ8_0,
    QK8_0,
    |x| {
        let bx = _mm256_sub_epi8(bytes_from_nibbles_32(x.qs.as_ptr()), _mm256_set1_epi8(8));
        (_mm256_sign_epi8(bx, bx), bx)
    },
    |u, y| {
        let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        mul_sum_us8_pairs_float(u.0, _mm256_sign_epi8(by, u.1))
    },
    false
);
troupe_x4!(
    vec_dot_q5_0_q8_0_x4,
    BlockQ5_0,
    BlockQ8_0,
    QK8_0,
    |x| {
        let bx = bytes_from_nibbles_32(x.qs.as_ptr());
        let hi = _mm256_andnot_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0xF0u8 as i8));
        let bx = _mm256_or_si256(bx, hi);
        (_mm256_sign_epi8(bx, bx), bx)
    },
    |u, y| {
        let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        mul_sum_us8_pairs_float(u.0, _mm256_sign_epi8(by, u.1))
    },
    false
);
// Unsigned weights (with a block minimum): `maddubs` takes them as they are.
troupe_x4!(
    vec_dot_q4_1_q8_1_x4,
    BlockQ4_1,
    BlockQ8_1,
    QK8_1,
    |x| bytes_from_nibbles_32(x.qs.as_ptr()),
    |u, y| mul_sum_us8_pairs_float(u, _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i)),
    true
);
troupe_x4!(
    vec_dot_q5_1_q8_1_x4,
    BlockQ5_1,
    BlockQ8_1,
    QK8_1,
    |x| {
        let bx = bytes_from_nibbles_32(x.qs.as_ptr());
        _mm256_or_si256(
            bx,
            _mm256_and_si256(bytes_from_bits_32(&x.qh), _mm256_set1_epi8(0x10)),
        )
    },
    |u, y| mul_sum_us8_pairs_float(u, _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i)),
    true
);

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn get_scale_shuffle(i: usize) -> __m128i {
    const K_SHUFFLE: [u8; 128] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7,
        7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10,
        11, 11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13,
        13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15,
    ];
    _mm_loadu_si128((K_SHUFFLE.as_ptr() as *const __m128i).add(i))
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn get_scale_shuffle_k4(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 256] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
        0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5,
        4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9,
        8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10,
        11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13,
        12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
        14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn get_scale_shuffle_q3k(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 128] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11,
        10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q6k_q8k(n: usize, xs: &[BlockQ6K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q6k_8k: {n} is not divisible by {QK_K}"
    );

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let m32s = _mm256_set1_epi8(32);
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * f16_f32(x.d);
            let mut q4 = x.ql.as_ptr();
            let mut qh = x.qh.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 128 {
                let is = j * 4;
                let scale_0 = _mm_shuffle_epi8(scales, get_scale_shuffle(is));
                let scale_1 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 1));
                let scale_2 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 2));
                let scale_3 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 3));

                let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits2 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits_h = _mm256_loadu_si256(qh as *const __m256i);
                qh = qh.add(32);

                let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4);
                let q4h_1 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4);
                let q4h_2 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4);
                let q4h_3 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4);

                let q4_0 = _mm256_or_si256(_mm256_and_si256(q4bits1, m4), q4h_0);
                let q4_1 = _mm256_or_si256(_mm256_and_si256(q4bits2, m4), q4h_1);
                let q4_2 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), q4h_2);
                let q4_3 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), q4h_3);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let q8s_0 = _mm256_maddubs_epi16(m32s, q8_0);
                let q8s_1 = _mm256_maddubs_epi16(m32s, q8_1);
                let q8s_2 = _mm256_maddubs_epi16(m32s, q8_2);
                let q8s_3 = _mm256_maddubs_epi16(m32s, q8_3);

                let p16_0 = _mm256_maddubs_epi16(q4_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q4_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q4_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q4_3, q8_3);

                let p16_0 = _mm256_sub_epi16(p16_0, q8s_0);
                let p16_1 = _mm256_sub_epi16(p16_1, q8s_1);
                let p16_2 = _mm256_sub_epi16(p16_2, q8s_2);
                let p16_3 = _mm256_sub_epi16(p16_3, q8s_3);

                let p16_0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_0), p16_0);
                let p16_1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_1), p16_1);
                let p16_2 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_2), p16_2);
                let p16_3 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_3), p16_3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_2, p16_3));
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}

// Troupe patch: `vec_dot_q6k_q8k` for four activation rows: the 6-bit weights and the scales
// are unpacked once per 128 values, then multiplied with each row as the one-row kernel does
// (same operations, same order: bit-identical per row).
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q6k_q8k_x4(n: usize, xs: &[BlockQ6K], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q6k_8k_x4: {n} is not divisible by {QK_K}"
    );
    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let m32s = _mm256_set1_epi8(32);
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, x) in xs.iter().enumerate() {
            let mut q4 = x.ql.as_ptr();
            let mut qh = x.qh.as_ptr();
            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = [_mm256_setzero_si256(); 4];
            for j in 0..QK_K / 128 {
                let is = j * 4;
                let sc = [
                    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is))),
                    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 1))),
                    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 2))),
                    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 3))),
                ];
                let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits2 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits_h = _mm256_loadu_si256(qh as *const __m256i);
                qh = qh.add(32);
                let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4);
                let q4h_1 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4);
                let q4h_2 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4);
                let q4h_3 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4);
                let w = [
                    _mm256_or_si256(_mm256_and_si256(q4bits1, m4), q4h_0),
                    _mm256_or_si256(_mm256_and_si256(q4bits2, m4), q4h_1),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), q4h_2),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), q4h_3),
                ];
                for r in 0..4 {
                    let q8 = ys[r].get_unchecked(i).qs.as_ptr().add(j * 128);
                    let mut p = [_mm256_setzero_si256(); 4];
                    for t in 0..4 {
                        let q8t = _mm256_loadu_si256(q8.add(32 * t) as *const __m256i);
                        let q8s = _mm256_maddubs_epi16(m32s, q8t);
                        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(w[t], q8t), q8s);
                        p[t] = _mm256_madd_epi16(sc[t], p16);
                    }
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p[0], p[1]));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p[2], p[3]));
                }
            }
            let dx = f16_f32(x.d);
            for r in 0..4 {
                let d = ys[r].get_unchecked(i).d * dx;
                acc[r] =
                    _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            }
        }
        [
            hsum_float_8(acc[0]),
            hsum_float_8(acc[1]),
            hsum_float_8(acc[2]),
            hsum_float_8(acc[3]),
        ]
    }
}

// Troupe patch: `vec_dot_q4k_q8k` for four activation rows: the scales, mins and nibbles are
// unpacked once per block, then used for each row exactly as the one-row kernel does.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4k_q8k_x4(n: usize, xs: &[BlockQ4K], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q4k_q8k_x4: {n} is not divisible by {QK_K}"
    );
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;
    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = [_mm_setzero_ps(); 4];
        for (i, x) in xs.iter().enumerate() {
            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);
            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;
            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));
            let mins = _mm256_extracti128_si256(mins_and_scales, 1);
            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);
            let xd = f16_f32(x.d);
            let xdmin = f16_f32(x.dmin);
            for r in 0..4 {
                let y = ys[r].get_unchecked(i);
                let dmin = -y.d * xdmin;
                let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
                let q8s = _mm_hadd_epi16(
                    _mm256_extracti128_si256(q8sums, 0),
                    _mm256_extracti128_si256(q8sums, 1),
                );
                let prod = _mm_madd_epi16(mins, q8s);
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
            }
            let mut sumi = [_mm256_setzero_si256(); 4];
            let mut q4 = x.qs.as_ptr();
            for j in 0..QK_K / 64 {
                let scale_l = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));
                let q4bits = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                for r in 0..4 {
                    let q8 = ys[r].get_unchecked(i).qs.as_ptr().add(64 * j);
                    let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                    let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
                    sumi[r] = _mm256_add_epi32(sumi[r], p16l);
                    let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                    let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
                    sumi[r] = _mm256_add_epi32(sumi[r], p16h);
                }
            }
            for r in 0..4 {
                let d = ys[r].get_unchecked(i).d * xd;
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            }
        }
        let mut out = [0f32; 4];
        for r in 0..4 {
            let m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
            let m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[r] = hsum_float_8(acc[r]) + _mm_cvtss_f32(m);
        }
        out
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn mm256_set_m128i(a: __m128i, b: __m128i) -> __m256i {
    _mm256_insertf128_si256(_mm256_castsi128_si256(b), a, 1)
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q2k_q8k(n: usize, xs: &[BlockQ2K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q2k_q8k: {n} is not divisible by {QK_K}"
    );

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * f16_f32(x.d);
            let dmin = -y.d * f16_f32(x.dmin);

            let mut q2 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let scales8 = _mm_and_si128(mins_and_scales, m4);
            let mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
            let mins = _mm256_cvtepi8_epi16(mins8);
            let prod =
                _mm256_madd_epi16(mins, _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i));

            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&dmin), _mm256_cvtepi32_ps(prod), acc);

            let all_scales = _mm256_cvtepi8_epi16(scales8);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            let mut sumi = _mm256_setzero_si256();

            for scale in scales {
                let q2bits = _mm256_loadu_si256(q2 as *const __m256i);
                q2 = q2.add(32);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let q2_0 = _mm256_and_si256(q2bits, m3);
                let q2_1 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 2), m3);
                let q2_2 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 4), m3);
                let q2_3 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 6), m3);

                let p0 = _mm256_maddubs_epi16(q2_0, q8_0);
                let p1 = _mm256_maddubs_epi16(q2_1, q8_1);
                let p2 = _mm256_maddubs_epi16(q2_2, q8_2);
                let p3 = _mm256_maddubs_epi16(q2_3, q8_3);

                let p0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(0)), p0);
                let p1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(1)), p1);
                let p2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(2)), p2);
                let p3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(3)), p3);

                let p0 = _mm256_add_epi32(p0, p1);
                let p2 = _mm256_add_epi32(p2, p3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p2));
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }

        hsum_float_8(acc)
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q3k_q8k(n: usize, xs: &[BlockQ3K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q3k_q8k: {n} is not divisible by {QK_K}"
    );

    const KMASK1: u32 = 0x03030303;
    const KMASK2: u32 = 0x0f0f0f0f;

    let mut aux = [0u32; 3];

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let mone = _mm256_set1_epi8(1);
        let m32 = _mm_set1_epi8(32);

        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * f16_f32(x.d);

            let mut q3 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            LittleEndian::read_u32_into(&x.scales, &mut aux);
            let scales128 = _mm_set_epi32(
                (((aux[1] >> 4) & KMASK2) | (((aux[2] >> 6) & KMASK1) << 4)) as i32,
                (((aux[0] >> 4) & KMASK2) | (((aux[2] >> 4) & KMASK1) << 4)) as i32,
                ((aux[1] & KMASK2) | (((aux[2] >> 2) & KMASK1) << 4)) as i32,
                ((aux[0] & KMASK2) | (((aux[2]) & KMASK1) << 4)) as i32,
            );
            let scales128 = _mm_sub_epi8(scales128, m32);
            let all_scales = _mm256_cvtepi8_epi16(scales128);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            // high bit
            let hbits = _mm256_loadu_si256(x.hmask.as_ptr() as *const __m256i);

            let mut sumi = _mm256_setzero_si256();

            for (j, scale) in scales.iter().enumerate() {
                // load low 2 bits
                let q3bits = _mm256_loadu_si256(q3 as *const __m256i);
                q3 = q3.add(32);

                // Prepare low and high bits
                // We hardcode the shifts here to avoid loading them into a separate register
                let q3l_0 = _mm256_and_si256(q3bits, m3);
                let q3h_0 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 0)), 0)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 4)), 4)
                };
                let q3h_0 = _mm256_slli_epi16(q3h_0, 2);

                let q3l_1 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 2), m3);
                let q3h_1 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 1)), 1)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 5)), 5)
                };
                let q3h_1 = _mm256_slli_epi16(q3h_1, 2);

                let q3l_2 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 4), m3);
                let q3h_2 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 2)), 2)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 6)), 6)
                };
                let q3h_2 = _mm256_slli_epi16(q3h_2, 2);

                let q3l_3 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 6), m3);
                let q3h_3 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 3)), 3)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 7)), 7)
                };
                let q3h_3 = _mm256_slli_epi16(q3h_3, 2);

                // load Q8 quants
                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                // Dot product: we multiply the 2 low bits and 1 high bit part separately, so we
                // can use _mm256_maddubs_epi16, and then subtract. The high bit part has the 2
                // already subtracted (and so, it is zero if the high bit was not set, and 2 if the
                // high bit was set)
                let q8s_0 = _mm256_maddubs_epi16(q3h_0, q8_0);
                let q8s_1 = _mm256_maddubs_epi16(q3h_1, q8_1);
                let q8s_2 = _mm256_maddubs_epi16(q3h_2, q8_2);
                let q8s_3 = _mm256_maddubs_epi16(q3h_3, q8_3);

                let p16_0 = _mm256_maddubs_epi16(q3l_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q3l_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q3l_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q3l_3, q8_3);

                let p16_0 = _mm256_sub_epi16(p16_0, q8s_0);
                let p16_1 = _mm256_sub_epi16(p16_1, q8s_1);
                let p16_2 = _mm256_sub_epi16(p16_2, q8s_2);
                let p16_3 = _mm256_sub_epi16(p16_3, q8s_3);

                // multiply with scales
                let p16_0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(0)), p16_0);
                let p16_1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(1)), p16_1);
                let p16_2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(2)), p16_2);
                let p16_3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(3)), p16_3);

                // accumulate
                let p16_0 = _mm256_add_epi32(p16_0, p16_1);
                let p16_2 = _mm256_add_epi32(p16_2, p16_3);
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_2));
            }

            // multiply with block scale and accumulate
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q4k_q8k(n: usize, xs: &[BlockQ4K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q4k_q8k: {n} is not divisible by {QK_K}"
    );
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * f16_f32(x.d);
            let dmin = -y.d * f16_f32(x.dmin);

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q4 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_l = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q4bits = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);

                let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16l = _mm256_maddubs_epi16(q4l, q8l);
                let p16l = _mm256_madd_epi16(scale_l, p16l);
                sumi = _mm256_add_epi32(sumi, p16l);

                let q8h = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16h = _mm256_maddubs_epi16(q4h, q8h);
                let p16h = _mm256_madd_epi16(scale_h, p16h);
                sumi = _mm256_add_epi32(sumi, p16h);
            }

            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }

        let acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));

        hsum_float_8(acc) + _mm_cvtss_f32(acc_m)
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q5k_q8k(n: usize, xs: &[BlockQ5K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q5k_q8k: {n} is not divisible by {QK_K}"
    );
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let mzero = _mm_setzero_si128();
        let mone = _mm256_set1_epi8(1);

        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0;

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * f16_f32(x.d);
            let dmin = -y.d * f16_f32(x.dmin);

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q5 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            let hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, mzero), mzero);
            summs += dmin * _mm_extract_epi32(hsum, 0) as f32;

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let hbits = _mm256_loadu_si256(x.qh.as_ptr() as *const __m256i);
            let mut hmask = mone;

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_0 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_1 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q5bits = _mm256_loadu_si256(q5 as *const __m256i);
                q5 = q5.add(32);

                //Similar to q3k we hardcode the shifts here to avoid loading them into a separate register
                let q5l_0 = _mm256_and_si256(q5bits, m4);
                let q5l_0_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_0_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_0_shift_input, 0),
                    1 => _mm256_srli_epi16(q5l_0_shift_input, 2),
                    2 => _mm256_srli_epi16(q5l_0_shift_input, 4),
                    3 => _mm256_srli_epi16(q5l_0_shift_input, 6),
                    _ => unreachable!(),
                };
                let q5h_0 = _mm256_slli_epi16(q5l_0_right_shift, 4);
                let q5_0 = _mm256_add_epi8(q5l_0, q5h_0);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q5l_1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4);
                let q5l_1_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_1_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_1_shift_input, 1),
                    1 => _mm256_srli_epi16(q5l_1_shift_input, 3),
                    2 => _mm256_srli_epi16(q5l_1_shift_input, 5),
                    3 => _mm256_srli_epi16(q5l_1_shift_input, 7),
                    _ => unreachable!(),
                };

                let q5h_1 = _mm256_slli_epi16(q5l_1_right_shift, 4);
                let q5_1 = _mm256_add_epi8(q5l_1, q5h_1);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let p16_0 = _mm256_maddubs_epi16(q5_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q5_1, q8_1);

                let p16_0 = _mm256_madd_epi16(scale_0, p16_0);
                let p16_1 = _mm256_madd_epi16(scale_1, p16_1);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
            }
            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc) + summs
    }
}

#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn vec_dot_q8k_q8k(n: usize, xs: &[BlockQ8K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q8k_8k: {n} is not divisible by {QK_K}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let mut sumi = _mm256_setzero_si256();
            let x_qs = xs.qs.as_ptr();
            let y_qs = ys.qs.as_ptr();
            for j in (0..QK_K).step_by(32) {
                let xs = _mm256_loadu_si256(x_qs.add(j) as *const __m256i);
                let ys = _mm256_loadu_si256(y_qs.add(j) as *const __m256i);

                let xs0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 0));
                let ys0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs0, ys0));

                let xs1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 1));
                let ys1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 1));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs1, ys1));
            }
            let d = _mm256_set1_ps(xs.d * ys.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}

// Troupe patch: AVX-512 VNNI forms of the Q8_0 and Q4_0 one-row kernels, chosen
// at run time (`super::cpu_kernels`) on CPUs that have it, while the binary as a whole needs only
// AVX2. `vpdpbusd` does the work of `vpmaddubsw` + `vpmaddwd` in one instruction. The results are
// bit-identical to the AVX2 kernels': `vpmaddubsw` saturates a pair sum to i16, but with the
// sign trick one factor is |x| <= 128 and the other in [-128, 127], so a pair sum lies in
// [-32768, 32512] and never saturates; everything after the integer dot is the same code.
#[cfg(target_arch = "x86_64")]
macro_rules! troupe_vnni {
    ($one:ident, $x:ty, |$xb:ident| $unpack:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(crate) unsafe fn $one(xs: &[$x], ys: &[BlockQ8_0]) -> f32 {
            let mut acc = _mm256_setzero_ps();
            for ($xb, y) in xs.iter().zip(ys.iter()) {
                let d = _mm256_mul_ps(f16_splat_8($xb.d), f16_splat_8(y.d));
                let bx = $unpack;
                let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let q = _mm256_dpbusd_epi32(
                    _mm256_setzero_si256(),
                    _mm256_sign_epi8(bx, bx),
                    _mm256_sign_epi8(by, bx),
                );
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q), acc);
            }
            hsum_float_8(acc)
        }
    };
}

#[cfg(target_arch = "x86_64")]
troupe_vnni!(vec_dot_q8_0_q8_0_vnni, BlockQ8_0, |x| _mm256_loadu_si256(
    x.qs.as_ptr() as *const __m256i
));
#[cfg(target_arch = "x86_64")]
troupe_vnni!(vec_dot_q4_0_q8_0_vnni, BlockQ4_0, |x| _mm256_sub_epi8(
    bytes_from_nibbles_32(x.qs.as_ptr()),
    _mm256_set1_epi8(8)
));

// Troupe patch: the Q8_0 and Q4_0 kernels with the activation rows' block scales given as f32
// (`GgmlType::activation_scales`, converted once per matmul) instead of read as f16 in every
// dot product. Profiled, the f16 loads and conversions of the scales were as much work as the
// integer dot itself. The scale product is formed as the one-row kernel forms it (dx * dy in
// f32, every lane alike), so each result stays bit-identical to `vec_dot`. Each has an AVX2 and
// an AVX-512 VNNI form (see above).
macro_rules! troupe_scaled {
    (#[$tf:meta] $x4:ident, $one:ident, $x:ty, |$xb:ident| $unpack:expr, |$ax:ident, $sy:ident| $idot:expr) => {
        #[$tf]
        pub(crate) unsafe fn $x4(xs: &[$x], ys: [&[BlockQ8_0]; 4], dys: [&[f32]; 4]) -> [f32; 4] {
            let nb = xs.len();
            assert!((0..4).all(|r| ys[r].len() >= nb && dys[r].len() >= nb));
            let mut acc = [_mm256_setzero_ps(); 4];
            for i in 0..nb {
                let $xb = xs.get_unchecked(i);
                let bx = $unpack;
                let $ax = _mm256_sign_epi8(bx, bx);
                let dx = f16_splat_8($xb.d);
                for r in 0..4 {
                    let y = ys[r].get_unchecked(i);
                    let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    let $sy = _mm256_sign_epi8(by, bx);
                    let d = _mm256_mul_ps(dx, _mm256_broadcast_ss(dys[r].get_unchecked(i)));
                    acc[r] = _mm256_fmadd_ps(d, $idot, acc[r]);
                }
            }
            [
                hsum_float_8(acc[0]),
                hsum_float_8(acc[1]),
                hsum_float_8(acc[2]),
                hsum_float_8(acc[3]),
            ]
        }

        #[$tf]
        pub(crate) unsafe fn $one(xs: &[$x], ys: &[BlockQ8_0], dys: &[f32]) -> f32 {
            let nb = xs.len();
            assert!(ys.len() >= nb && dys.len() >= nb);
            let mut acc = _mm256_setzero_ps();
            for i in 0..nb {
                let $xb = xs.get_unchecked(i);
                let bx = $unpack;
                let $ax = _mm256_sign_epi8(bx, bx);
                let by = _mm256_loadu_si256(ys.get_unchecked(i).qs.as_ptr() as *const __m256i);
                let $sy = _mm256_sign_epi8(by, bx);
                let d = _mm256_mul_ps(
                    f16_splat_8($xb.d),
                    _mm256_broadcast_ss(dys.get_unchecked(i)),
                );
                acc = _mm256_fmadd_ps(d, $idot, acc);
            }
            hsum_float_8(acc)
        }
    };
}

troupe_scaled!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q8_0_q8_0_x4_scaled,
    vec_dot_q8_0_q8_0_scaled,
    BlockQ8_0,
    |x| _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i),
    |ax, sy| mul_sum_us8_pairs_float(ax, sy)
);
troupe_scaled!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_0_q8_0_x4_scaled,
    vec_dot_q4_0_q8_0_scaled,
    BlockQ4_0,
    |x| _mm256_sub_epi8(bytes_from_nibbles_32(x.qs.as_ptr()), _mm256_set1_epi8(8)),
    |ax, sy| mul_sum_us8_pairs_float(ax, sy)
);
#[cfg(target_arch = "x86_64")]
troupe_scaled!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q8_0_q8_0_x4_scaled_vnni,
    vec_dot_q8_0_q8_0_scaled_vnni,
    BlockQ8_0,
    |x| _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i),
    |ax, sy| _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy))
);
#[cfg(target_arch = "x86_64")]
troupe_scaled!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_0_q8_0_x4_scaled_vnni,
    vec_dot_q4_0_q8_0_scaled_vnni,
    BlockQ4_0,
    |x| _mm256_sub_epi8(bytes_from_nibbles_32(x.qs.as_ptr()), _mm256_set1_epi8(8)),
    |ax, sy| _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy))
);

// Troupe patch: a decode step's matmuls (one activation row) called the one-row kernel once per
// weight row: a call, a dispatch on the kernel level and a loop set-up for every 28 blocks of a
// 896-wide row. These kernels take consecutive weight rows, one sequential stream as before, and
// give each row exactly what the one-row scaled kernel gives: the same float operations on the
// same per-lane integer sums, in the same order.
//
// Q4_0's integer sums need no sign trick here. The nibbles (0..=15) go in as the unsigned
// operand against the signed activations, and each lane's sum starts at minus 8 times the sum
// of its four activations, worked out once per call: sum((q - 8) y) = sum(q y) - 8 sum(y), the
// exact integer the sign trick gives (|y| <= 127 for a quantised activation). That saves three
// instructions a block. `vpmaddubsw` cannot saturate on it: |15 y0 + 15 y1| <= 3840.
macro_rules! troupe_rows {
    (#[$tf:meta] $name:ident, $x:ty, false, |$xb:ident, $by:ident, $off:ident| $idot:expr) => {
        troupe_rows!(
            #[$tf]
            $name,
            $x,
            no_offsets,
            false,
            |$xb, $by, $off| $idot
        );
    };
    (#[$tf:meta] $name:ident, $x:ty, $offset:ident, |$xb:ident, $by:ident, $off:ident| $idot:expr) => {
        troupe_rows!(
            #[$tf]
            $name,
            $x,
            $offset,
            true,
            |$xb, $by, $off| $idot
        );
    };
    (#[$tf:meta] $name:ident, $x:ty, $offset:ident, $offsets:literal, |$xb:ident, $by:ident, $off:ident| $idot:expr) => {
        #[$tf]
        pub(crate) unsafe fn $name(xs: &[$x], ys: &[BlockQ8_0], dys: &[f32], out: &mut [f32]) {
            let nb = ys.len();
            assert!(dys.len() >= nb && xs.len() >= nb * out.len());
            let mut offsets: Vec<__m256i> = Vec::new();
            if $offsets {
                offsets.reserve_exact(nb);
                for y in ys {
                    offsets.push($offset(y));
                }
            }
            let mut row = xs.as_ptr();
            for o in out.iter_mut() {
                let mut acc = _mm256_setzero_ps();
                for i in 0..nb {
                    let $xb = &*row.add(i);
                    let y = ys.get_unchecked(i);
                    let $by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                    let $off = if $offsets {
                        *offsets.get_unchecked(i)
                    } else {
                        _mm256_setzero_si256()
                    };
                    let d = _mm256_mul_ps(
                        f16_splat_8($xb.d),
                        _mm256_broadcast_ss(dys.get_unchecked(i)),
                    );
                    acc = _mm256_fmadd_ps(d, $idot, acc);
                }
                *o = hsum_float_8(acc);
                row = row.add(nb);
            }
        }
    };
}

/// Never called: the row kernels without offsets.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn no_offsets(_: &BlockQ8_0) -> __m256i {
    _mm256_setzero_si256()
}

/// Minus 8 times the sum of each group of four activations of `y` (one i32 per lane).
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn minus_8_lane_sums(y: &BlockQ8_0) -> __m256i {
    let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
    let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), by);
    let lanes = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
    _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(lanes, 3))
}

troupe_rows!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q8_0_q8_0_rows,
    BlockQ8_0,
    false,
    |x, by, _off| {
        let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
        mul_sum_us8_pairs_float(_mm256_sign_epi8(bx, bx), _mm256_sign_epi8(by, bx))
    }
);
troupe_rows!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_0_q8_0_rows,
    BlockQ4_0,
    minus_8_lane_sums,
    |x, by, off| {
        let q = bytes_from_nibbles_32(x.qs.as_ptr());
        let pairs = _mm256_maddubs_epi16(q, by);
        _mm256_cvtepi32_ps(_mm256_add_epi32(
            _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)),
            off,
        ))
    }
);
#[cfg(target_arch = "x86_64")]
troupe_rows!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q8_0_q8_0_rows_vnni,
    BlockQ8_0,
    false,
    |x, by, _off| {
        let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
        _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(
            _mm256_setzero_si256(),
            _mm256_sign_epi8(bx, bx),
            _mm256_sign_epi8(by, bx),
        ))
    }
);
#[cfg(target_arch = "x86_64")]
troupe_rows!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_0_q8_0_rows_vnni,
    BlockQ4_0,
    minus_8_lane_sums,
    |x, by, off| _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(
        off,
        bytes_from_nibbles_32(x.qs.as_ptr()),
        by
    ))
);

// Troupe patch: the prefill kernels for Q8_0 and Q4_0 weights on AVX-512 VNNI CPUs: two weight
// rows against `G` groups of four activation rows packed block by block (`PackedQ8x4`).
// Against the four-row kernels above, per pair of blocks:
// - no sign trick. `vpdpbusd` takes one operand unsigned, and the packing stored the
//   activations plus 128 (as u8); the signed weights go in as they are, and each lane's sum
//   starts at minus 128 × (the sum of its four weights), what the +128 adds, worked out once
//   per weight block;
// - two activation rows per 512-bit instruction (the weight block broadcast to both halves, two
//   rows' blocks side by side); each weight block unpacked once for 4 × G rows, and the packed
//   rows loaded once for two weight rows, which halves the traffic from cache for the matmuls
//   whose rows do not stay in L1.
// Every lane's integer sum is the exact dot of its four pairs, as in the kernels above, and each
// half of a 512-bit register goes through the same float operations, in the same order, as one
// row's register there: the results are bit-identical.
#[cfg(target_arch = "x86_64")]
macro_rules! troupe_packed {
    ($name:ident, $x:ty, |$xb:ident| $unpack:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(crate) unsafe fn $name<const G: usize>(
            xs: [&[$x]; 2],
            ys: [&[PackedQ8x4]; G],
        ) -> [[[f32; 4]; G]; 2] {
            let nb = xs[0].len();
            assert!(xs[1].len() == nb && ys.iter().all(|y| y.len() >= nb));
            let zero = _mm512_setzero_si512();
            let plus128 = _mm512_set1_epi8(-128); // 0x80: 128 as the unsigned operand
            let rows01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            let rows23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
            let mut acc = [[[_mm512_setzero_ps(); 2]; G]; 2];
            for i in 0..nb {
                let mut a = [[_mm512_setzero_si512(); 2]; G];
                let mut dy = [[_mm512_setzero_ps(); 2]; G];
                for g in 0..G {
                    let y = ys[g].get_unchecked(i);
                    a[g] = [
                        _mm512_loadu_si512(y.qs.as_ptr() as *const __m512i),
                        _mm512_loadu_si512(y.qs.as_ptr().add(2) as *const __m512i),
                    ];
                    let d = _mm512_castps128_ps512(_mm_loadu_ps(y.d.as_ptr()));
                    dy[g] = [
                        _mm512_permutexvar_ps(rows01, d),
                        _mm512_permutexvar_ps(rows23, d),
                    ];
                }
                for c in 0..2 {
                    let $xb = xs[c].get_unchecked(i);
                    let w: __m512i = $unpack;
                    let start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, plus128, w));
                    // As `f16_splat_8`, in sixteen lanes.
                    let dx = _mm512_cvtph_ps(_mm256_set1_epi16($xb.d.to_bits() as i16));
                    for g in 0..G {
                        for r in 0..2 {
                            let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, a[g][r], w));
                            let d = _mm512_mul_ps(dx, dy[g][r]);
                            acc[c][g][r] = _mm512_fmadd_ps(d, q, acc[c][g][r]);
                        }
                    }
                }
            }
            // Plain loops, not `map` with closures: those were left out of line, a call per
            // group (1% of a prefill's samples).
            let mut out = [[[0f32; 4]; G]; 2];
            for c in 0..2 {
                for g in 0..G {
                    let [a01, a23] = acc[c][g];
                    let hi01 = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a01));
                    let hi23 = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a23));
                    out[c][g] = [
                        hsum_float_8(_mm512_castps512_ps256(a01)),
                        hsum_float_8(_mm256_castpd_ps(hi01)),
                        hsum_float_8(_mm512_castps512_ps256(a23)),
                        hsum_float_8(_mm256_castpd_ps(hi23)),
                    ];
                }
            }
            out
        }
    };
}

#[cfg(target_arch = "x86_64")]
troupe_packed!(vec_dot_q8_0_q8_0_packed_vnni, BlockQ8_0, |x| {
    _mm512_broadcast_i64x4(_mm256_loadu_si256(x.qs.as_ptr() as *const __m256i))
});

#[cfg(target_arch = "x86_64")]
troupe_packed!(vec_dot_q4_0_q8_0_packed_vnni, BlockQ4_0, |x| {
    // The 16 bytes in every 128-bit lane, shifted in the odd ones, masked: the low nibbles
    // (elements 0..16) then the high ones (16..32), twice; minus 8, as `bytes_from_nibbles_32`.
    let v = _mm512_broadcast_i32x4(_mm_loadu_si128(x.qs.as_ptr() as *const __m128i));
    let w = _mm512_mask_blend_epi64(0b1100_1100, v, _mm512_srli_epi16(v, 4));
    _mm512_sub_epi8(
        _mm512_and_si512(w, _mm512_set1_epi8(0x0F)),
        _mm512_set1_epi8(8),
    )
});

// Troupe patch: `BlockQ8_0::from_float` (activations quantised before every matmul) in AVX2;
// upstream ran the scalar loop, ~5% of a prefill's samples. Every step is the scalar code's, in
// f32: the block's largest magnitude (a max is exact in any order), d = amax / 127, id = 1 / d,
// x * id rounded half away from zero as `f32::round` does (not `_mm256_round_ps`'s half to
// even); so the blocks are the scalar code's, bit for bit.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
pub(crate) fn quantize_row_q8_0(xs: &[f32], ys: &mut [BlockQ8_0]) {
    assert!(xs.len() >= ys.len() * QK8_0);
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        for (i, y) in ys.iter_mut().enumerate() {
            let p = xs.as_ptr().add(i * QK8_0);
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let a = [
                _mm256_andnot_ps(sign, v[0]),
                _mm256_andnot_ps(sign, v[1]),
                _mm256_andnot_ps(sign, v[2]),
                _mm256_andnot_ps(sign, v[3]),
            ];
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            let amax = _mm_cvtss_f32(m);
            let d = amax / ((1 << 7) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            // As `f16::from_f32` (round to nearest, ties to even), without asking at run time
            // whether the CPU has F16C.
            y.d = f16::from_bits(_mm_extract_epi16::<0>(_mm_cvtps_ph::<0>(_mm_set_ss(d))) as u16);
            let id = _mm256_set1_ps(id);
            let round = |v: __m256| {
                let x = _mm256_mul_ps(v, id);
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
                let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
                let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, half);
                let step = _mm256_or_ps(_mm256_and_ps(x, sign), one);
                _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)))
            };
            let q = [round(v[0]), round(v[1]), round(v[2]), round(v[3])];
            let q = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            // The packs work within 128-bit lanes; put the eight groups of four back in order.
            let q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(y.qs.as_mut_ptr() as *mut __m256i, q);
        }
    }
}

// Troupe patch: the decode kernels for weights repacked into groups of eight rows
// (`repack.rs`): `out.len() / 8` consecutive groups of `ys.len()` blocks each against one
// activation row, into `out`. Chunk `c` of a repacked block holds four bytes of each of the
// eight rows, so an integer dot against four activation bytes broadcast to every lane adds four
// products to each row's lane; after a block's chunks each lane holds its row's exact integer
// dot (`sums`: each activation block's sum, for the offsets), and the float work, as
// `repack::dot8_reference` does it, is done once for the eight rows. Bit for bit the reference's
// results (tests in `repack.rs`). A type with block minimums (Q4_1) gives them as `mins` (eight
// f32), and each block adds minimum × (activation scale × sum) by a second fused multiply-add.
macro_rules! troupe_rows8 {
    (#[$tf:meta] $name:ident, $x:ty, |$xb:ident, $y:ident, $sum:ident| $idot:expr) => {
        troupe_rows8!(#[$tf] $name, $x, |$xb, $y, $sum| $idot, mins: |_x| None);
    };
    (#[$tf:meta] $name:ident, $x:ty, |$xb:ident, $y:ident, $sum:ident| $idot:expr,
        mins: |$xm:ident| $mins:expr) => {
        #[$tf]
        pub(crate) unsafe fn $name(
            xs: &[$x],
            ys: &[BlockQ8_0],
            dys: &[f32],
            sums: &[i32],
            out: &mut [f32],
        ) {
            let nb = ys.len();
            assert!(dys.len() >= nb && sums.len() >= nb);
            assert!(out.len() % 8 == 0 && xs.len() >= nb * (out.len() / 8));
            let mut group = xs.as_ptr();
            for out in out.chunks_exact_mut(8) {
                let mut acc = _mm256_setzero_ps();
                for i in 0..nb {
                    let $xb = &*group.add(i);
                    let $y = ys.get_unchecked(i).qs.as_ptr() as *const i32;
                    let $sum = *sums.get_unchecked(i);
                    let dot: __m256i = $idot;
                    let dy = *dys.get_unchecked(i);
                    let d = _mm256_mul_ps(
                        _mm256_cvtph_ps(_mm_loadu_si128($xb.d.as_ptr() as *const __m128i)),
                        _mm256_set1_ps(dy),
                    );
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc);
                    let $xm = $xb;
                    let mins: Option<__m256> = $mins;
                    if let Some(m) = mins {
                        acc = _mm256_fmadd_ps(m, _mm256_set1_ps(dy * $sum as f32), acc);
                    }
                }
                _mm256_storeu_ps(out.as_mut_ptr(), acc);
                group = group.add(nb);
            }
        }
    };
}

/// Chunk `c` (32 bytes) of a repacked block.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn chunk(qs: *const u8, c: usize) -> __m256i {
    _mm256_loadu_si256(qs.add(c * 32) as *const __m256i)
}

/// Activation bytes `4j..4j + 4` of a block, in every lane.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn quad(y: *const i32, j: usize) -> __m256i {
    _mm256_set1_epi32(y.add(j).read_unaligned())
}

// Q4_0: the nibbles (0..=15) are the unsigned operand and each lane starts at -8 × the block's
// activation sum: sum((q - 8) y) = sum(q y) - 8 sum(y). On AVX2 the eight `vpmaddubsw` pair
// sums of a lane add up in 16 bits without overflow: at most 8 × 2 × 15 × 128 = 30720.
troupe_rows8!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_0x8_q8_0,
    BlockQ4_0x8,
    |x, y, sum| {
        let m4 = _mm256_set1_epi8(0x0F);
        let mut lo = _mm256_setzero_si256();
        let mut hi = _mm256_setzero_si256();
        for c in 0..4 {
            let w = chunk(x.qs.as_ptr(), c);
            let wl = _mm256_and_si256(w, m4);
            let wh = _mm256_and_si256(_mm256_srli_epi16::<4>(w), m4);
            lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(wl, quad(y, c)));
            hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(wh, quad(y, 4 + c)));
        }
        let pairs = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
        _mm256_add_epi32(pairs, _mm256_set1_epi32(-8 * sum))
    }
);
#[cfg(target_arch = "x86_64")]
troupe_rows8!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_0x8_q8_0_vnni,
    BlockQ4_0x8,
    |x, y, sum| {
        let m4 = _mm256_set1_epi8(0x0F);
        let mut lo = _mm256_set1_epi32(-8 * sum);
        let mut hi = _mm256_setzero_si256();
        for c in 0..4 {
            let w = chunk(x.qs.as_ptr(), c);
            let wl = _mm256_and_si256(w, m4);
            let wh = _mm256_and_si256(_mm256_srli_epi16::<4>(w), m4);
            lo = _mm256_dpbusd_epi32(lo, wl, quad(y, c));
            hi = _mm256_dpbusd_epi32(hi, wh, quad(y, 4 + c));
        }
        _mm256_add_epi32(lo, hi)
    }
);

// Q8_0 on AVX2: the sign trick, as the one-row kernels (`vpmaddubsw` pair sums of |w| × ±y
// reach 2 × 128 × 127 = 32512 and cannot saturate; a quantised activation is never -128). No
// offsets: `sums` goes unread.
troupe_rows8!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q8_0x8_q8_0,
    BlockQ8_0x8,
    |x, y, _sum| {
        let ones = _mm256_set1_epi16(1);
        let mut even = _mm256_setzero_si256();
        let mut odd = _mm256_setzero_si256();
        for c in (0..8).step_by(2) {
            let w0 = chunk(x.qs.as_ptr() as *const u8, c);
            let w1 = chunk(x.qs.as_ptr() as *const u8, c + 1);
            let p0 =
                _mm256_maddubs_epi16(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(quad(y, c), w0));
            let p1 = _mm256_maddubs_epi16(
                _mm256_sign_epi8(w1, w1),
                _mm256_sign_epi8(quad(y, c + 1), w1),
            );
            even = _mm256_add_epi32(even, _mm256_madd_epi16(p0, ones));
            odd = _mm256_add_epi32(odd, _mm256_madd_epi16(p1, ones));
        }
        _mm256_add_epi32(even, odd)
    }
);

// Q8_0 on AVX-512 VNNI: the weights offset to unsigned (w + 128, a flipped top bit) and each
// lane starting at -128 × the block's activation sum.
#[cfg(target_arch = "x86_64")]
troupe_rows8!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q8_0x8_q8_0_vnni,
    BlockQ8_0x8,
    |x, y, sum| {
        let top = _mm256_set1_epi8(-128);
        let mut even = _mm256_set1_epi32(-128 * sum);
        let mut odd = _mm256_setzero_si256();
        for c in (0..8).step_by(2) {
            let w0 = _mm256_xor_si256(chunk(x.qs.as_ptr() as *const u8, c), top);
            let w1 = _mm256_xor_si256(chunk(x.qs.as_ptr() as *const u8, c + 1), top);
            even = _mm256_dpbusd_epi32(even, w0, quad(y, c));
            odd = _mm256_dpbusd_epi32(odd, w1, quad(y, c + 1));
        }
        _mm256_add_epi32(even, odd)
    }
);

// Troupe patch: the prefill kernels for repacked weights: one group of eight rows (`xs`, all
// its blocks) against four activation rows, each weight block unpacked once for the four. Each
// row's result is what the decode kernels above give it, bit for bit (the same integer dot, the
// same float operations in the same order).
macro_rules! troupe_rows8_x4 {
    (#[$tf:meta] $name:ident, $x:ty, |$xb:ident| $unpack:expr, |$w:ident, $y:ident, $sum:ident| $idot:expr) => {
        troupe_rows8_x4!(#[$tf] $name, $x, |$xb| $unpack, |$w, $y, $sum| $idot, mins: |_x| None);
    };
    (#[$tf:meta] $name:ident, $x:ty, |$xb:ident| $unpack:expr, |$w:ident, $y:ident, $sum:ident| $idot:expr,
        mins: |$xm:ident| $mins:expr) => {
        #[$tf]
        pub(crate) unsafe fn $name(
            xs: &[$x],
            ys: [&[BlockQ8_0]; 4],
            dys: [&[f32]; 4],
            sums: [&[i32]; 4],
        ) -> [[f32; 8]; 4] {
            let nb = xs.len();
            for a in 0..4 {
                assert!(ys[a].len() >= nb && dys[a].len() >= nb && sums[a].len() >= nb);
            }
            let mut acc = [_mm256_setzero_ps(); 4];
            for i in 0..nb {
                let $xb = xs.get_unchecked(i);
                let $w = $unpack;
                let dw = _mm256_cvtph_ps(_mm_loadu_si128($xb.d.as_ptr() as *const __m128i));
                let $xm = $xb;
                let mins: Option<__m256> = $mins;
                for a in 0..4 {
                    let $y = ys[a].get_unchecked(i).qs.as_ptr() as *const i32;
                    let $sum = *sums[a].get_unchecked(i);
                    let dot: __m256i = $idot;
                    let dy = *dys[a].get_unchecked(i);
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(dy));
                    acc[a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc[a]);
                    if let Some(m) = mins {
                        acc[a] = _mm256_fmadd_ps(m, _mm256_set1_ps(dy * $sum as f32), acc[a]);
                    }
                }
            }
            let mut out = [[0f32; 8]; 4];
            for a in 0..4 {
                _mm256_storeu_ps(out[a].as_mut_ptr(), acc[a]);
            }
            out
        }
    };
}

/// The nibbles of a repacked Q4_0, Q4_1 or Q5_0 block (`qs`, four chunks): low ones of chunk
/// `c` at `c`, high ones at `4 + c`.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn nibbles8(qs: *const u8) -> [__m256i; 8] {
    let m4 = _mm256_set1_epi8(0x0F);
    let mut w = [_mm256_setzero_si256(); 8];
    for c in 0..4 {
        let v = chunk(qs, c);
        w[c] = _mm256_and_si256(v, m4);
        w[4 + c] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4);
    }
    w
}

/// A repacked Q5_0 block's values plus 16 (0..=31), in `nibbles8`'s order: each nibble with its
/// fifth bit spread from `qh` (`bytes_from_bits_32`).
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn q5_0x8_values(x: &BlockQ5_0x8) -> [__m256i; 8] {
    let mut w = nibbles8(x.qs.as_ptr());
    let fifth = _mm256_set1_epi8(0x10);
    for (w, qh) in w.iter_mut().zip(&x.qh) {
        *w = _mm256_or_si256(*w, _mm256_and_si256(bytes_from_bits_32(qh), fifth));
    }
    w
}

/// `q5_0x8_values` with AVX-512's byte masks: 16 added where the word's bit is set.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn q5_0x8_values_avx512(x: &BlockQ5_0x8) -> [__m256i; 8] {
    let mut w = nibbles8(x.qs.as_ptr());
    let fifth = _mm256_set1_epi8(0x10);
    for (w, qh) in w.iter_mut().zip(&x.qh) {
        *w = _mm256_mask_add_epi8(*w, u32::from_le_bytes(*qh), *w, fifth);
    }
    w
}

/// The exact integer dots of eight Q5_0 rows' values (`q5_0x8_values`) with one activation
/// block, on AVX2: `vpmaddubsw` pair sums of the low chunks, and apart those of the high ones,
/// add up in 16 bits without overflow (4 × 2 × 31 × 127 = 31496; the eight of Q4_0's sum would
/// not fit here), widened, plus the -16 × sum offset.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn q5_0x8_idot(w: &[__m256i; 8], y: *const i32, sum: i32) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let mut lo = _mm256_setzero_si256();
    let mut hi = _mm256_setzero_si256();
    for c in 0..4 {
        lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(w[c], quad(y, c)));
        hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(w[4 + c], quad(y, 4 + c)));
    }
    let lanes = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones));
    _mm256_add_epi32(lanes, _mm256_set1_epi32(-16 * sum))
}

/// `q5_0x8_idot` with `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_0x8_idot_vnni(w: &[__m256i; 8], y: *const i32, sum: i32) -> __m256i {
    let mut lo = _mm256_set1_epi32(-16 * sum);
    let mut hi = _mm256_setzero_si256();
    for c in 0..4 {
        lo = _mm256_dpbusd_epi32(lo, w[c], quad(y, c));
        hi = _mm256_dpbusd_epi32(hi, w[4 + c], quad(y, 4 + c));
    }
    _mm256_add_epi32(lo, hi)
}

// Q5_0, as Q4_0: the values plus 16 are the unsigned operand and each lane starts at -16 × the
// block's activation sum: sum((q - 16) y) = sum(q y) - 16 sum(y).
troupe_rows8!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q5_0x8_q8_0,
    BlockQ5_0x8,
    |x, y, sum| q5_0x8_idot(&q5_0x8_values(x), y, sum)
);
#[cfg(target_arch = "x86_64")]
troupe_rows8!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q5_0x8_q8_0_vnni,
    BlockQ5_0x8,
    |x, y, sum| q5_0x8_idot_vnni(&q5_0x8_values_avx512(x), y, sum)
);
troupe_rows8_x4!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q5_0x8_q8_0_x4,
    BlockQ5_0x8,
    |x| q5_0x8_values(x),
    |w, y, sum| q5_0x8_idot(&w, y, sum)
);
#[cfg(target_arch = "x86_64")]
troupe_rows8_x4!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q5_0x8_q8_0_x4_vnni,
    BlockQ5_0x8,
    |x| q5_0x8_values_avx512(x),
    |w, y, sum| q5_0x8_idot_vnni(&w, y, sum)
);

/// A repacked Q4_1 block's eight minimums as f32.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn q4_1x8_mins(x: &BlockQ4_1x8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(x.m.as_ptr() as *const __m128i))
}

/// The exact integer dots of eight Q4_1 rows' nibbles (0..=15, no offset: the minimum is added
/// apart) with one activation block, on AVX2: the eight `vpmaddubsw` pair sums of a lane add up
/// in 16 bits, at most 8 × 2 × 15 × 127 = 30480.
#[inline]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn q4_1x8_idot(w: &[__m256i; 8], y: *const i32) -> __m256i {
    let mut pairs = _mm256_setzero_si256();
    for c in 0..8 {
        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w[c], quad(y, c)));
    }
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// `q4_1x8_idot` with `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_1x8_idot_vnni(w: &[__m256i; 8], y: *const i32) -> __m256i {
    let mut lo = _mm256_setzero_si256();
    let mut hi = _mm256_setzero_si256();
    for c in 0..4 {
        lo = _mm256_dpbusd_epi32(lo, w[c], quad(y, c));
        hi = _mm256_dpbusd_epi32(hi, w[4 + c], quad(y, 4 + c));
    }
    _mm256_add_epi32(lo, hi)
}

// Q4_1: value = scale × nibble + minimum, so a block gives scale × activation scale × (the
// nibbles' integer dot) + minimum × activation scale × (the activations' sum).
troupe_rows8!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_1x8_q8_0,
    BlockQ4_1x8,
    |x, y, _sum| q4_1x8_idot(&nibbles8(x.qs.as_ptr()), y),
    mins: |x| Some(q4_1x8_mins(x))
);
#[cfg(target_arch = "x86_64")]
troupe_rows8!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_1x8_q8_0_vnni,
    BlockQ4_1x8,
    |x, y, _sum| q4_1x8_idot_vnni(&nibbles8(x.qs.as_ptr()), y),
    mins: |x| Some(q4_1x8_mins(x))
);
troupe_rows8_x4!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_1x8_q8_0_x4,
    BlockQ4_1x8,
    |x| nibbles8(x.qs.as_ptr()),
    |w, y, _sum| q4_1x8_idot(&w, y),
    mins: |x| Some(q4_1x8_mins(x))
);
#[cfg(target_arch = "x86_64")]
troupe_rows8_x4!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_1x8_q8_0_x4_vnni,
    BlockQ4_1x8,
    |x| nibbles8(x.qs.as_ptr()),
    |w, y, _sum| q4_1x8_idot_vnni(&w, y),
    mins: |x| Some(q4_1x8_mins(x))
);

troupe_rows8_x4!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q4_0x8_q8_0_x4,
    BlockQ4_0x8,
    |x| nibbles8(x.qs.as_ptr()),
    |w, y, sum| {
        let mut lo = _mm256_setzero_si256();
        let mut hi = _mm256_setzero_si256();
        for c in 0..4 {
            lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(w[c], quad(y, c)));
            hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(w[4 + c], quad(y, 4 + c)));
        }
        let pairs = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
        _mm256_add_epi32(pairs, _mm256_set1_epi32(-8 * sum))
    }
);
#[cfg(target_arch = "x86_64")]
troupe_rows8_x4!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q4_0x8_q8_0_x4_vnni,
    BlockQ4_0x8,
    |x| nibbles8(x.qs.as_ptr()),
    |w, y, sum| {
        let mut lo = _mm256_set1_epi32(-8 * sum);
        let mut hi = _mm256_setzero_si256();
        for c in 0..4 {
            lo = _mm256_dpbusd_epi32(lo, w[c], quad(y, c));
            hi = _mm256_dpbusd_epi32(hi, w[4 + c], quad(y, 4 + c));
        }
        _mm256_add_epi32(lo, hi)
    }
);
troupe_rows8_x4!(
    #[target_feature(enable = "avx,avx2,fma,f16c")]
    vec_dot_q8_0x8_q8_0_x4,
    BlockQ8_0x8,
    // The weights' magnitudes once per block; their signs are read again from the block (in
    // L1) for each row, as 16 registers cannot hold both.
    |x| {
        let qs = x.qs.as_ptr() as *const u8;
        let mut abs = [_mm256_setzero_si256(); 8];
        for (c, a) in abs.iter_mut().enumerate() {
            let w = chunk(qs, c);
            *a = _mm256_sign_epi8(w, w);
        }
        (qs, abs)
    },
    |w, y, _sum| {
        let (qs, abs) = w;
        let ones = _mm256_set1_epi16(1);
        let mut even = _mm256_setzero_si256();
        let mut odd = _mm256_setzero_si256();
        for c in (0..8).step_by(2) {
            let p0 = _mm256_maddubs_epi16(abs[c], _mm256_sign_epi8(quad(y, c), chunk(qs, c)));
            let p1 = _mm256_maddubs_epi16(
                abs[c + 1],
                _mm256_sign_epi8(quad(y, c + 1), chunk(qs, c + 1)),
            );
            even = _mm256_add_epi32(even, _mm256_madd_epi16(p0, ones));
            odd = _mm256_add_epi32(odd, _mm256_madd_epi16(p1, ones));
        }
        _mm256_add_epi32(even, odd)
    }
);
#[cfg(target_arch = "x86_64")]
troupe_rows8_x4!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    vec_dot_q8_0x8_q8_0_x4_vnni,
    BlockQ8_0x8,
    |x| {
        let top = _mm256_set1_epi8(-128);
        let mut w = [_mm256_setzero_si256(); 8];
        for (c, w) in w.iter_mut().enumerate() {
            *w = _mm256_xor_si256(chunk(x.qs.as_ptr() as *const u8, c), top);
        }
        w
    },
    |w, y, sum| {
        let mut even = _mm256_set1_epi32(-128 * sum);
        let mut odd = _mm256_setzero_si256();
        for c in (0..8).step_by(2) {
            even = _mm256_dpbusd_epi32(even, w[c], quad(y, c));
            odd = _mm256_dpbusd_epi32(odd, w[c + 1], quad(y, c + 1));
        }
        _mm256_add_epi32(even, odd)
    }
);
