use super::utils::{
    get_scale_min_k4, group_for_dequantization, group_for_quantization, make_q3_quants,
    make_qkx1_quants, make_qx_quants, nearest_int,
};
use super::GgmlDType;
use crate::quantized::utils::{make_qkx3_quants, make_qp_quants};
use crate::Result;
use byteorder::{ByteOrder, LittleEndian};
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

// Default to QK_K 256 rather than 64.
pub const QK_K: usize = 256;
pub const K_SCALE_SIZE: usize = 12;

pub const QK4_0: usize = 32;
pub const QK4_1: usize = 32;
pub const QK5_0: usize = 32;
pub const QK5_1: usize = 32;
pub const QK8_0: usize = 32;
pub const QK8_1: usize = 32;

pub trait GgmlType: Sized + Clone + Send + Sync {
    const DTYPE: GgmlDType;
    const BLCK_SIZE: usize;
    const DIRECT_COPY: bool = false;
    type VecDotType: GgmlType;

    // This is only safe for types that include immediate values such as float/int/...
    fn zeros() -> Self {
        unsafe { std::mem::MaybeUninit::zeroed().assume_init() }
    }
    fn to_float(xs: &[Self], ys: &mut [f32]);
    fn from_float(xs: &[f32], ys: &mut [Self]);
    fn from_float_imatrix(
        _xs: &[f32],
        _ys: &mut [Self],
        _imatrix_weights: &[f32],
        _n_per_row: usize,
    ) {
        panic!(
            "`from_float_imatrix` is unimplemented for {:?}",
            Self::DTYPE
        );
    }

    fn direct_copy(_xs: &[f32], _ys: &mut [Self]) {}

    /// Dot product used as a building block for quantized mat-mul.
    /// n is the number of elements to be considered.
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32;

    /// Generic implementation of the dot product without simd optimizations.
    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32;

    /// Troupe patch: the dot products of one weight row `xs` with four activation rows, for the
    /// prefill matmul. A SIMD kernel unpacks each weight block once for the four rows instead
    /// of once per row; each result is bit-identical to `vec_dot` (same operations per row, in
    /// the same order).
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        ys.map(|y| Self::vec_dot(n, xs, y))
    }

    /// Troupe patch: the block scales of quantised activation rows as f32, for the kernels that
    /// take them ready (`vec_dot_scaled`, `vec_dot_x4_scaled`), or `None` where the kernels in
    /// use do not. Called once per matmul.
    fn activation_scales(_ys: &[Self::VecDotType]) -> Option<Vec<f32>> {
        None
    }

    /// Troupe patch: `vec_dot` with the activation row's block scales given
    /// (`activation_scales`); the same result, bit for bit.
    fn vec_dot_scaled(n: usize, xs: &[Self], ys: &[Self::VecDotType], _dys: &[f32]) -> f32 {
        Self::vec_dot(n, xs, ys)
    }

    /// Troupe patch: `vec_dot_scaled` of consecutive weight rows (`out.len()` rows of
    /// `ys.len()` blocks each, from the start of `xs`) against one activation row, into `out`;
    /// the same results, bit for bit. A decode step's matmuls call it once per run of rows.
    fn vec_dot_rows_scaled(
        n: usize,
        xs: &[Self],
        ys: &[Self::VecDotType],
        dys: &[f32],
        out: &mut [f32],
    ) {
        let nb = ys.len();
        for (r, o) in out.iter_mut().enumerate() {
            *o = Self::vec_dot_scaled(n, &xs[r * nb..(r + 1) * nb], ys, dys);
        }
    }

    /// Troupe patch: `vec_dot_x4` with the activation rows' block scales given; the same
    /// results, bit for bit.
    fn vec_dot_x4_scaled(
        n: usize,
        xs: &[Self],
        ys: [&[Self::VecDotType]; 4],
        _dys: [&[f32]; 4],
    ) -> [f32; 4] {
        Self::vec_dot_x4(n, xs, ys)
    }

    /// Troupe patch: the quantised activation rows (groups of four rows of `k_in_blocks` blocks,
    /// scales from `activation_scales`) packed for `vec_dot_packed`, or `None` where the
    /// kernels in use have no packed form. Called once per matmul.
    fn pack_activations_x4(
        _ys: &[Self::VecDotType],
        _dys: &[f32],
        _k_in_blocks: usize,
    ) -> Option<Vec<PackedQ8x4>> {
        None
    }

    /// Troupe patch: `vec_dot_x4_scaled` of two weight rows over `G` groups of four rows packed
    /// by `pack_activations_x4`; the same results, bit for bit. Called only where that gave
    /// `Some`.
    fn vec_dot_packed<const G: usize>(
        _xs: [&[Self]; 2],
        _ys: [&[PackedQ8x4]; G],
    ) -> [[[f32; 4]; G]; 2] {
        unreachable!("no packed kernel for {:?}", Self::DTYPE)
    }
}

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub(crate) d: f16,
    pub(crate) qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub(crate) d: f16,
    pub(crate) m: f16,
    pub(crate) qs: [u8; QK4_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub(crate) d: f16,
    pub(crate) qh: [u8; 4],
    pub(crate) qs: [u8; QK5_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub(crate) d: f16,
    pub(crate) m: f16,
    pub(crate) qh: [u8; 4],
    pub(crate) qs: [u8; QK5_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub(crate) d: f16,
    pub(crate) qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Troupe patch: four activation rows quantised to Q8_0, interleaved block by block for the
/// AVX-512 VNNI prefill kernels (`avx::vec_dot_*_packed_vnni`): the four rows' i-th blocks
/// sit side by side, so one 512-bit load brings two rows; each quant is stored plus 128, as u8
/// (`vpdpbusd` takes one operand unsigned), and the scales as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct PackedQ8x4 {
    pub(crate) qs: [[u8; QK8_0]; 4],
    pub(crate) d: [f32; 4],
}
const _: () = assert!(std::mem::size_of::<PackedQ8x4>() == 144);

/// Troupe patch: `rows` (whole groups of four rows of `k_in_blocks` blocks, scales `dys` as
/// `activation_scales` gives them) packed for the AVX-512 VNNI kernels; `None` unless those
/// kernels run.
#[allow(unused_variables, unreachable_code)]
fn pack_q8_0_x4(rows: &[BlockQ8_0], dys: &[f32], k_in_blocks: usize) -> Option<Vec<PackedQ8x4>> {
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu_kernels() != super::CpuKernels::Avx512Vnni || rows.len() < 4 * k_in_blocks {
            return None;
        }
        let groups = rows.len() / (4 * k_in_blocks);
        let zero = PackedQ8x4 {
            qs: [[0; QK8_0]; 4],
            d: [0.0; 4],
        };
        let mut out = vec![zero; groups * k_in_blocks];
        out.par_chunks_mut(k_in_blocks)
            .enumerate()
            .for_each(|(g, packed)| {
                for (i, p) in packed.iter_mut().enumerate() {
                    for r in 0..4 {
                        let at = (4 * g + r) * k_in_blocks + i;
                        for (q, &y) in p.qs[r].iter_mut().zip(rows[at].qs.iter()) {
                            *q = (y as u8) ^ 0x80;
                        }
                        p.d[r] = dys[at];
                    }
                }
            });
        return Some(out);
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub(crate) d: f16,
    pub(crate) s: f16,
    pub(crate) qs: [i8; QK8_1],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ2K {
    pub(crate) scales: [u8; QK_K / 16],
    pub(crate) qs: [u8; QK_K / 4],
    pub(crate) d: f16,
    pub(crate) dmin: f16,
}
const _: () = assert!(QK_K / 16 + QK_K / 4 + 2 * 2 == std::mem::size_of::<BlockQ2K>());

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ3K {
    pub(crate) hmask: [u8; QK_K / 8],
    pub(crate) qs: [u8; QK_K / 4],
    pub(crate) scales: [u8; 12],
    pub(crate) d: f16,
}
const _: () = assert!(QK_K / 8 + QK_K / 4 + 12 + 2 == std::mem::size_of::<BlockQ3K>());

#[derive(Debug, Clone, PartialEq)]
// https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/k_quants.h#L82
#[repr(C)]
pub struct BlockQ4K {
    pub(crate) d: f16,
    pub(crate) dmin: f16,
    pub(crate) scales: [u8; K_SCALE_SIZE],
    pub(crate) qs: [u8; QK_K / 2],
}
const _: () = assert!(QK_K / 2 + K_SCALE_SIZE + 2 * 2 == std::mem::size_of::<BlockQ4K>());

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ5K {
    pub(crate) d: f16,
    pub(crate) dmin: f16,
    pub(crate) scales: [u8; K_SCALE_SIZE],
    pub(crate) qh: [u8; QK_K / 8],
    pub(crate) qs: [u8; QK_K / 2],
}
const _: () =
    assert!(QK_K / 8 + QK_K / 2 + 2 * 2 + K_SCALE_SIZE == std::mem::size_of::<BlockQ5K>());

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ6K {
    pub(crate) ql: [u8; QK_K / 2],
    pub(crate) qh: [u8; QK_K / 4],
    pub(crate) scales: [i8; QK_K / 16],
    pub(crate) d: f16,
}
const _: () = assert!(3 * QK_K / 4 + QK_K / 16 + 2 == std::mem::size_of::<BlockQ6K>());

#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    pub(crate) d: f32,
    pub(crate) qs: [i8; QK_K],
    pub(crate) bsums: [i16; QK_K / 16],
}
const _: () = assert!(4 + QK_K + QK_K / 16 * 2 == std::mem::size_of::<BlockQ8K>());

impl GgmlType for BlockQ4_0 {
    const DTYPE: GgmlDType = GgmlDType::Q4_0;
    const BLCK_SIZE: usize = QK4_0;
    type VecDotType = BlockQ8_0;

    // https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/ggml.c#L1525
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        let qk = Self::BLCK_SIZE;
        debug_assert!(
            k.is_multiple_of(qk),
            "dequantize_row_q4_0: {k} is not divisible by {qk}"
        );

        let nb = k / qk;
        for i in 0..nb {
            let d = xs[i].d.to_f32();

            for j in 0..(qk / 2) {
                let x0 = (xs[i].qs[j] & 0x0F) as i16 - 8;
                let x1 = (xs[i].qs[j] >> 4) as i16 - 8;

                ys[i * qk + j] = (x0 as f32) * d;
                ys[i * qk + j + qk / 2] = (x1 as f32) * d;
            }
        }
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // quantize_row_q4_0
        let qk = Self::BLCK_SIZE;
        let k = xs.len();
        debug_assert!(k.is_multiple_of(qk), "{k} is not divisible by {qk}");
        debug_assert_eq!(
            ys.len(),
            k / qk,
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            qk,
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let mut amax = 0f32;
            let mut max = 0f32;

            let xs = &xs[i * qk..(i + 1) * qk];
            for &x in xs.iter() {
                if amax < x.abs() {
                    amax = x.abs();
                    max = x;
                }
            }
            let d = max / -8.0;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);

            for (j, q) in ys.qs.iter_mut().enumerate() {
                let x0 = xs[j] * id;
                let x1 = xs[qk / 2 + j] * id;
                let xi0 = u8::min(15, (x0 + 8.5) as u8);
                let xi1 = u8::min(15, (x1 + 8.5) as u8);
                *q = xi0 | (xi1 << 4)
            }
        }
    }

    // Troupe patch: the kernels that take the activation scales as f32 (`avx.rs`).
    #[cfg(target_arch = "x86_64")]
    fn activation_scales(ys: &[Self::VecDotType]) -> Option<Vec<f32>> {
        super::simd_kernels_on().then(|| ys.iter().map(|y| f16::to_f32(y.d)).collect())
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_scaled(n: usize, xs: &[Self], ys: &[Self::VecDotType], dys: &[f32]) -> f32 {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q4_0_q8_0_scaled_vnni(xs, ys, dys)
            },
            super::CpuKernels::Scalar => Self::vec_dot_unopt(n, xs, ys),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q4_0_q8_0_scaled(xs, ys, dys) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_rows_scaled(
        n: usize,
        xs: &[Self],
        ys: &[Self::VecDotType],
        dys: &[f32],
        out: &mut [f32],
    ) {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q4_0_q8_0_rows_vnni(xs, ys, dys, out)
            },
            super::CpuKernels::Scalar => {
                let nb = ys.len();
                for (r, o) in out.iter_mut().enumerate() {
                    *o = Self::vec_dot_unopt(n, &xs[r * nb..(r + 1) * nb], ys);
                }
            }
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q4_0_q8_0_rows(xs, ys, dys, out) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4_scaled(
        n: usize,
        xs: &[Self],
        ys: [&[Self::VecDotType]; 4],
        dys: [&[f32]; 4],
    ) -> [f32; 4] {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q4_0_q8_0_x4_scaled_vnni(xs, ys, dys)
            },
            super::CpuKernels::Scalar => ys.map(|y| Self::vec_dot_unopt(n, xs, y)),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q4_0_q8_0_x4_scaled(xs, ys, dys) },
        }
    }

    fn pack_activations_x4(
        ys: &[Self::VecDotType],
        dys: &[f32],
        k_in_blocks: usize,
    ) -> Option<Vec<PackedQ8x4>> {
        pack_q8_0_x4(ys, dys, k_in_blocks)
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_packed<const G: usize>(
        xs: [&[Self]; 2],
        ys: [&[PackedQ8x4]; G],
    ) -> [[[f32; 4]; G]; 2] {
        // SAFETY: rows are packed only where the kernels in use are the VNNI ones, so where the
        // CPU has those features (`pack_q8_0_x4`).
        unsafe { super::avx::vec_dot_q4_0_q8_0_packed_vnni(xs, ys) }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        match super::cpu_kernels() {
            super::CpuKernels::Scalar => ys.map(|y| Self::vec_dot_unopt(n, xs, y)),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q4_0_q8_0_x4(n, xs, ys) },
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/b5ffb2849d23afe73647f68eec7b68187af09be6/ggml.c#L2361C10-L2361C122
    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => {
                return unsafe { super::avx::vec_dot_q4_0_q8_0_vnni(xs, ys) };
            }
            super::CpuKernels::Scalar => {}
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => return unsafe { super::avx::vec_dot_q4_0_q8_0(n, xs, ys) },
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q4_0_q8_0(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q4_0_q8_0(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK8_0),
            "vec_dot_q4_0_q8_0: {n} is not divisible by {QK8_0}"
        );
        // Generic implementation.
        let mut sumf = 0f32;
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let mut sum_i = 0;
            for j in 0..QK8_0 / 2 {
                let v0 = (xs.qs[j] & 0x0F) as i32 - 8;
                let v1 = (xs.qs[j] >> 4) as i32 - 8;
                sum_i += v0 * ys.qs[j] as i32 + v1 * ys.qs[j + QK8_0 / 2] as i32
            }
            sumf += sum_i as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
        }
        sumf
    }
}

impl GgmlType for BlockQ4_1 {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const BLCK_SIZE: usize = QK4_1;
    type VecDotType = BlockQ8_1;

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            unsafe { super::avx::vec_dot_q4_1_q8_1_x4(n, xs, ys) }
        } else {
            ys.map(|y| Self::vec_dot_unopt(n, xs, y))
        }
    }

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        // Troupe patch: the AVX2 kernel (see `avx::vec_dot_q4_1_q8_1`).
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q4_1_q8_1(n, xs, ys) };
        }

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        // ggml_vec_dot_q4_1_q8_1
        let qk = QK8_1;
        debug_assert!(
            n.is_multiple_of(qk),
            "vec_dot_q4_1_q8_1: {n} is not divisible by {qk}"
        );
        debug_assert!(
            (n / qk).is_multiple_of(2),
            "vec_dot_q4_1_q8_1: {n}, nb is not divisible by 2"
        );

        // Generic implementation.
        let mut sumf = 0f32;

        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let mut sumi = 0i32;

            for j in 0..qk / 2 {
                let v0 = xs.qs[j] as i32 & 0x0F;
                let v1 = xs.qs[j] as i32 >> 4;
                sumi += (v0 * ys.qs[j] as i32) + (v1 * ys.qs[j + qk / 2] as i32);
            }

            sumf += sumi as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
                + f16::to_f32(xs.m) * f16::to_f32(ys.s)
        }
        sumf
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // quantize_row_q4_1
        let qk = Self::BLCK_SIZE;

        debug_assert_eq!(
            ys.len() * qk,
            xs.len(),
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            qk,
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let xs = &xs[i * qk..(i + 1) * qk];

            let mut min = f32::INFINITY;
            let mut max = f32::NEG_INFINITY;
            for &x in xs.iter() {
                min = f32::min(x, min);
                max = f32::max(x, max);
            }
            let d = (max - min) / ((1 << 4) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);
            ys.m = f16::from_f32(min);

            for (j, q) in ys.qs.iter_mut().take(qk / 2).enumerate() {
                let x0 = (xs[j] - min) * id;
                let x1 = (xs[qk / 2 + j] - min) * id;

                let xi0 = u8::min(15, (x0 + 0.5) as u8);
                let xi1 = u8::min(15, (x1 + 0.5) as u8);

                *q = xi0 | (xi1 << 4);
            }
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/ggml.c#L1545
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK4_1),
            "dequantize_row_q4_1: {k} is not divisible by {QK4_1}"
        );

        let nb = k / QK4_1;
        for i in 0..nb {
            let d = xs[i].d.to_f32();
            let m = xs[i].m.to_f32();

            for j in 0..(QK4_1 / 2) {
                let x0 = xs[i].qs[j] & 0x0F;
                let x1 = xs[i].qs[j] >> 4;

                ys[i * QK4_1 + j] = (x0 as f32) * d + m;
                ys[i * QK4_1 + j + QK4_1 / 2] = (x1 as f32) * d + m;
            }
        }
    }
}

impl GgmlType for BlockQ5_0 {
    const DTYPE: GgmlDType = GgmlDType::Q5_0;
    const BLCK_SIZE: usize = QK5_0;
    type VecDotType = BlockQ8_0;

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            unsafe { super::avx::vec_dot_q5_0_q8_0_x4(n, xs, ys) }
        } else {
            ys.map(|y| Self::vec_dot_unopt(n, xs, y))
        }
    }

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        let qk = Self::BLCK_SIZE;

        debug_assert!(
            n.is_multiple_of(qk),
            "vec_dot_q5_0_q8_0: {n} is not divisible by {qk}"
        );
        debug_assert!(
            (n / qk).is_multiple_of(2),
            "vec_dot_q5_0_q8_0: {n}, nb is not divisible by 2"
        );
        // Troupe patch: the AVX2 kernel (see `avx::vec_dot_q5_0_q8_0`).
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q5_0_q8_0(n, xs, ys) };
        }
        #[allow(unreachable_code)]
        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(_n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        // Generic implementation.
        let mut sumf = 0f32;

        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let qh = LittleEndian::read_u32(&xs.qh);
            let mut sumi = 0i32;

            for j in 0..Self::BLCK_SIZE / 2 {
                let xh_0 = (((qh & (1u32 << j)) >> j) << 4) as u8;
                let xh_1 = ((qh & (1u32 << (j + 16))) >> (j + 12)) as u8;

                let x0 = ((xs.qs[j] & 0x0F) as i32 | xh_0 as i32) - 16;
                let x1 = ((xs.qs[j] >> 4) as i32 | xh_1 as i32) - 16;

                sumi += (x0 * ys.qs[j] as i32) + (x1 * ys.qs[j + Self::BLCK_SIZE / 2] as i32);
            }

            sumf += sumi as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
        }
        sumf
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // quantize_row_q5_0
        debug_assert_eq!(
            ys.len() * Self::BLCK_SIZE,
            xs.len(),
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            Self::BLCK_SIZE,
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let xs = &xs[i * Self::BLCK_SIZE..(i + 1) * Self::BLCK_SIZE];

            let mut amax = 0f32;
            let mut max = 0f32;
            for &x in xs.iter() {
                if amax < x.abs() {
                    amax = x.abs();
                    max = x;
                }
            }
            let d = max / -16.;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);
            let mut qh = 0u32;
            for j in 0..Self::BLCK_SIZE / 2 {
                let x0 = xs[j] * id;
                let x1 = xs[j + Self::BLCK_SIZE / 2] * id;
                let xi0 = ((x0 + 16.5) as i8).min(31) as u8;
                let xi1 = ((x1 + 16.5) as i8).min(31) as u8;
                ys.qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
                qh |= ((xi0 as u32 & 0x10) >> 4) << j;
                qh |= ((xi1 as u32 & 0x10) >> 4) << (j + Self::BLCK_SIZE / 2);
            }
            LittleEndian::write_u32(&mut ys.qh, qh)
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/ggml.c#L1566
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK5_0),
            "dequantize_row_q5_0: {k} is not divisible by {QK5_0}"
        );
        let nb = k / QK5_0;
        for i in 0..nb {
            let d = xs[i].d.to_f32();
            let qh: u32 = LittleEndian::read_u32(&xs[i].qh);

            for j in 0..(QK5_0 / 2) {
                let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
                let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;

                let x0 = ((xs[i].qs[j] & 0x0F) | xh_0) as i32 - 16;
                let x1 = ((xs[i].qs[j] >> 4) | xh_1) as i32 - 16;

                ys[i * QK5_0 + j] = (x0 as f32) * d;
                ys[i * QK5_0 + j + QK5_0 / 2] = (x1 as f32) * d;
            }
        }
    }
}

impl GgmlType for BlockQ5_1 {
    const DTYPE: GgmlDType = GgmlDType::Q5_1;
    const BLCK_SIZE: usize = QK5_1;
    type VecDotType = BlockQ8_1;

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            unsafe { super::avx::vec_dot_q5_1_q8_1_x4(n, xs, ys) }
        } else {
            ys.map(|y| Self::vec_dot_unopt(n, xs, y))
        }
    }

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        // Troupe patch: the AVX2 kernel (see `avx::vec_dot_q5_1_q8_1`).
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q5_1_q8_1(n, xs, ys) };
        }

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        let qk = Self::BLCK_SIZE;
        debug_assert!(
            n.is_multiple_of(qk),
            "vec_dot_q5_1_q8_1: {n} is not divisible by {qk}"
        );
        debug_assert!(
            (n / qk).is_multiple_of(2),
            "vec_dot_q5_1_q8_1: {n}, nb is not divisible by 2"
        );

        // Generic implementation.
        let mut sumf = 0f32;

        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let qh = LittleEndian::read_u32(&xs.qh);
            let mut sumi = 0i32;

            for j in 0..Self::BLCK_SIZE / 2 {
                let xh_0 = ((qh >> j) << 4) & 0x10;
                let xh_1 = (qh >> (j + 12)) & 0x10;

                let x0 = (xs.qs[j] as i32 & 0xF) | xh_0 as i32;
                let x1 = (xs.qs[j] as i32 >> 4) | xh_1 as i32;

                sumi += (x0 * ys.qs[j] as i32) + (x1 * ys.qs[j + Self::BLCK_SIZE / 2] as i32);
            }

            sumf += sumi as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
                + f16::to_f32(xs.m) * f16::to_f32(ys.s)
        }
        sumf
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // quantize_row_q5_1
        let qk = Self::BLCK_SIZE;
        debug_assert_eq!(
            ys.len() * qk,
            xs.len(),
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            qk,
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let xs = &xs[i * qk..(i + 1) * qk];

            let mut min = f32::INFINITY;
            let mut max = f32::NEG_INFINITY;
            for &x in xs.iter() {
                min = f32::min(x, min);
                max = f32::max(x, max);
            }
            let d = (max - min) / ((1 << 5) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);
            ys.m = f16::from_f32(min);

            let mut qh = 0u32;
            for (j, q) in ys.qs.iter_mut().take(qk / 2).enumerate() {
                let x0 = (xs[j] - min) * id;
                let x1 = (xs[qk / 2 + j] - min) * id;

                let xi0 = (x0 + 0.5) as u8;
                let xi1 = (x1 + 0.5) as u8;

                *q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
                // get the 5-th bit and store it in qh at the right position
                qh |= ((xi0 as u32 & 0x10) >> 4) << j;
                qh |= ((xi1 as u32 & 0x10) >> 4) << (j + qk / 2);
            }
            LittleEndian::write_u32(&mut ys.qh, qh);
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/ggml.c#L1592
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK5_1),
            "dequantize_row_q5_1: {k} is not divisible by {QK5_1}"
        );

        let nb = k / QK5_1;
        for i in 0..nb {
            let d = xs[i].d.to_f32();
            let m = xs[i].m.to_f32();
            let qh: u32 = LittleEndian::read_u32(&xs[i].qh);

            for j in 0..(QK5_1 / 2) {
                let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
                let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;

                let x0 = (xs[i].qs[j] & 0x0F) | xh_0;
                let x1 = (xs[i].qs[j] >> 4) | xh_1;

                ys[i * QK5_1 + j] = (x0 as f32) * d + m;
                ys[i * QK5_1 + j + QK5_1 / 2] = (x1 as f32) * d + m;
            }
        }
    }
}

impl GgmlType for BlockQ8_0 {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const BLCK_SIZE: usize = QK8_0;
    type VecDotType = BlockQ8_0;

    // https://github.com/ggerganov/llama.cpp/blob/468ea24fb4633a0d681f7ac84089566c1c6190cb/ggml.c#L1619
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK8_0),
            "dequantize_row_q8_0: {k} is not divisible by {QK8_0}"
        );

        let nb = k / QK8_0;

        for i in 0..nb {
            let d = xs[i].d.to_f32();

            for j in 0..QK8_0 {
                ys[i * QK8_0 + j] = xs[i].qs[j] as f32 * d;
            }
        }
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // Troupe patch: the AVX2 form (`avx::quantize_row_q8_0`, the same blocks bit for bit),
        // unless scalar kernels are forced.
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() && xs.len() == ys.len() * Self::BLCK_SIZE {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::quantize_row_q8_0(xs, ys) };
        }
        // quantize_row_q8_0
        let k = xs.len();
        debug_assert!(
            k.is_multiple_of(Self::BLCK_SIZE),
            "{k} is not divisible by {}",
            Self::BLCK_SIZE
        );
        debug_assert_eq!(
            ys.len(),
            k / Self::BLCK_SIZE,
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            Self::BLCK_SIZE
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let mut amax = 0f32;
            let xs = &xs[i * Self::BLCK_SIZE..(i + 1) * Self::BLCK_SIZE];
            for &x in xs.iter() {
                amax = amax.max(x.abs())
            }
            let d = amax / ((1 << 7) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);
            for (y, &x) in ys.qs.iter_mut().zip(xs.iter()) {
                *y = f32::round(x * id) as i8
            }
        }
    }

    // Troupe patch: the kernels that take the activation scales as f32 (`avx.rs`).
    #[cfg(target_arch = "x86_64")]
    fn activation_scales(ys: &[Self::VecDotType]) -> Option<Vec<f32>> {
        super::simd_kernels_on().then(|| ys.iter().map(|y| f16::to_f32(y.d)).collect())
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_scaled(n: usize, xs: &[Self], ys: &[Self::VecDotType], dys: &[f32]) -> f32 {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q8_0_q8_0_scaled_vnni(xs, ys, dys)
            },
            super::CpuKernels::Scalar => Self::vec_dot_unopt(n, xs, ys),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q8_0_q8_0_scaled(xs, ys, dys) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_rows_scaled(
        n: usize,
        xs: &[Self],
        ys: &[Self::VecDotType],
        dys: &[f32],
        out: &mut [f32],
    ) {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q8_0_q8_0_rows_vnni(xs, ys, dys, out)
            },
            super::CpuKernels::Scalar => {
                let nb = ys.len();
                for (r, o) in out.iter_mut().enumerate() {
                    *o = Self::vec_dot_unopt(n, &xs[r * nb..(r + 1) * nb], ys);
                }
            }
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q8_0_q8_0_rows(xs, ys, dys, out) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4_scaled(
        n: usize,
        xs: &[Self],
        ys: [&[Self::VecDotType]; 4],
        dys: [&[f32]; 4],
    ) -> [f32; 4] {
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => unsafe {
                super::avx::vec_dot_q8_0_q8_0_x4_scaled_vnni(xs, ys, dys)
            },
            super::CpuKernels::Scalar => ys.map(|y| Self::vec_dot_unopt(n, xs, y)),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q8_0_q8_0_x4_scaled(xs, ys, dys) },
        }
    }

    fn pack_activations_x4(
        ys: &[Self::VecDotType],
        dys: &[f32],
        k_in_blocks: usize,
    ) -> Option<Vec<PackedQ8x4>> {
        pack_q8_0_x4(ys, dys, k_in_blocks)
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_packed<const G: usize>(
        xs: [&[Self]; 2],
        ys: [&[PackedQ8x4]; G],
    ) -> [[[f32; 4]; G]; 2] {
        // SAFETY: rows are packed only where the kernels in use are the VNNI ones, so where the
        // CPU has those features (`pack_q8_0_x4`).
        unsafe { super::avx::vec_dot_q8_0_q8_0_packed_vnni(xs, ys) }
    }

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        match super::cpu_kernels() {
            super::CpuKernels::Scalar => ys.map(|y| Self::vec_dot_unopt(n, xs, y)),
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => unsafe { super::avx::vec_dot_q8_0_q8_0_x4(n, xs, ys) },
        }
    }

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            #[cfg(target_arch = "x86_64")]
            super::CpuKernels::Avx512Vnni => {
                return unsafe { super::avx::vec_dot_q8_0_q8_0_vnni(xs, ys) };
            }
            super::CpuKernels::Scalar => {}
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            _ => return unsafe { super::avx::vec_dot_q8_0_q8_0(n, xs, ys) },
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q8_0_q8_0(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q8_0_q8_0(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK8_0),
            "vec_dot_q8_0_q8_0: {n} is not divisible by {QK8_0}"
        );

        // Generic implementation.
        let mut sumf = 0f32;
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let sum_i = xs
                .qs
                .iter()
                .zip(ys.qs.iter())
                .map(|(&x, &y)| x as i32 * y as i32)
                .sum::<i32>();
            sumf += sum_i as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
        }
        sumf
    }
}

impl GgmlType for BlockQ8_1 {
    const DTYPE: GgmlDType = GgmlDType::Q8_1;
    const BLCK_SIZE: usize = QK8_1;
    type VecDotType = BlockQ8_1;

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK8_1),
            "vec_dot_q8_1_q8_1: {n} is not divisible by {QK8_1}"
        );

        // Generic implementation.
        let mut sumf = 0f32;
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let sum_i = xs
                .qs
                .iter()
                .zip(ys.qs.iter())
                .map(|(&x, &y)| x as i32 * y as i32)
                .sum::<i32>();
            sumf += sum_i as f32 * f16::to_f32(xs.d) * f16::to_f32(ys.d)
        }
        sumf
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        // quantize_row_q8_1
        debug_assert_eq!(
            ys.len() * Self::BLCK_SIZE,
            xs.len(),
            "size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            Self::BLCK_SIZE
        );
        for (i, ys) in ys.iter_mut().enumerate() {
            let mut amax = 0f32;
            let xs = &xs[i * Self::BLCK_SIZE..(i + 1) * Self::BLCK_SIZE];
            for &x in xs.iter() {
                amax = amax.max(x.abs())
            }
            let d = amax / ((1 << 7) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            ys.d = f16::from_f32(d);
            let mut sum = 0i32;
            for j in 0..Self::BLCK_SIZE / 2 {
                let v0 = xs[j] * id;
                let v1 = xs[j + Self::BLCK_SIZE / 2] * id;
                ys.qs[j] = f32::round(v0) as i8;
                ys.qs[j + Self::BLCK_SIZE / 2] = f32::round(v1) as i8;
                sum += ys.qs[j] as i32 + ys.qs[j + Self::BLCK_SIZE / 2] as i32;
            }
            // Troupe patch: the product in f32, rounded once, as ggml does (the f16 product
            // rounded twice).
            ys.s = f16::from_f32(sum as f32 * d);
        }
    }

    fn to_float(_xs: &[Self], _ys: &mut [f32]) {
        unimplemented!("no support for vec-dot on Q8_1")
    }
}

impl GgmlType for BlockQ2K {
    const DTYPE: GgmlDType = GgmlDType::Q2K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q2k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q2k_q8k(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q2k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q2k_q8k: {n} is not divisible by {QK_K}"
        );

        let mut sumf = 0.0;
        for (x, y) in xs.iter().zip(ys.iter()) {
            let mut q2: &[_] = &x.qs;
            let mut q8: &[_] = &y.qs;
            let sc = &x.scales;

            let mut summs = 0;
            for (bsum, scale) in y.bsums.iter().zip(sc) {
                summs += *bsum as i32 * ((scale >> 4) as i32);
            }

            let dall = y.d * x.d.to_f32();
            let dmin = y.d * x.dmin.to_f32();

            let mut isum = 0;
            let mut is = 0;
            for _ in 0..(QK_K / 128) {
                let mut shift = 0;
                for _ in 0..4 {
                    let d = (sc[is] & 0xF) as i32;
                    is += 1;
                    let mut isuml = 0;
                    for l in 0..16 {
                        isuml += q8[l] as i32 * (((q2[l] >> shift) & 3) as i32);
                    }
                    isum += d * isuml;
                    let d = (sc[is] & 0xF) as i32;
                    is += 1;
                    isuml = 0;
                    for l in 16..32 {
                        isuml += q8[l] as i32 * (((q2[l] >> shift) & 3) as i32);
                    }
                    isum += d * isuml;
                    shift += 2;
                    // adjust the indexing
                    q8 = &q8[32..];
                }
                // adjust the indexing
                q2 = &q2[32..];
            }
            sumf += dall * isum as f32 - dmin * summs as f32;
        }

        sumf
    }

    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L279
    fn from_float(xs: &[f32], ys: &mut [Self]) {
        const Q4SCALE: f32 = 15.0;

        for (block, x) in group_for_quantization(xs, ys) {
            //calculate scales and mins
            let mut mins: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut scales: [f32; QK_K / 16] = [0.0; QK_K / 16];

            for (j, x_scale_slice) in x.chunks(16).enumerate() {
                (scales[j], mins[j]) = make_qkx1_quants(3, 5, x_scale_slice);
            }
            // get max scale and max min and ensure they are >= 0.0
            let max_scale = scales.iter().fold(0.0, |max, &val| val.max(max));
            let max_min = mins.iter().fold(0.0, |max, &val| val.max(max));

            if max_scale > 0.0 {
                let iscale = Q4SCALE / max_scale;
                for (j, scale) in scales.iter().enumerate().take(QK_K / 16) {
                    block.scales[j] = nearest_int(iscale * scale) as u8;
                }
                block.d = f16::from_f32(max_scale / Q4SCALE);
            } else {
                for j in 0..QK_K / 16 {
                    block.scales[j] = 0;
                }
                block.d = f16::from_f32(0.0);
            }

            if max_min > 0.0 {
                let iscale = Q4SCALE / max_min;
                for (j, scale) in block.scales.iter_mut().enumerate() {
                    let l = nearest_int(iscale * mins[j]) as u8;
                    *scale |= l << 4;
                }
                block.dmin = f16::from_f32(max_min / Q4SCALE);
            } else {
                block.dmin = f16::from_f32(0.0);
            }

            let mut big_l: [u8; QK_K] = [0; QK_K];

            for j in 0..QK_K / 16 {
                let d = block.d.to_f32() * (block.scales[j] & 0xF) as f32;
                if d == 0.0 {
                    continue;
                }
                let dm = block.dmin.to_f32() * (block.scales[j] >> 4) as f32;
                for ii in 0..16 {
                    let ll = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
                    big_l[16 * j + ii] = ll as u8;
                }
            }

            for j in (0..QK_K).step_by(128) {
                for ll in 0..32 {
                    block.qs[j / 4 + ll] = big_l[j + ll]
                        | (big_l[j + ll + 32] << 2)
                        | (big_l[j + ll + 64] << 4)
                        | (big_l[j + ll + 96] << 6);
                }
            }
        }
    }

    fn from_float_imatrix(xs: &[f32], ys: &mut [Self], imatrix_weights: &[f32], n_per_row: usize) {
        for (sblk_idx, (block, x)) in group_for_quantization(xs, ys).into_iter().enumerate() {
            let mut mins: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut scales: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut weights: [f32; 16] = [0.0; 16];
            let mut sw: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut ls: [u8; QK_K / 16] = [0; QK_K / 16];
            let mut lm: [u8; QK_K / 16] = [0; QK_K / 16];

            let sum_x2 = x.iter().map(|x| x * x).sum::<f32>();
            let sigma2 = sum_x2 / QK_K as f32;
            for (j, x_scale_slice) in x.chunks_exact(16).enumerate() {
                for (l, (w_elem, x_elem)) in weights.iter_mut().zip(x_scale_slice).enumerate() {
                    let imatrix_row = sblk_idx % (n_per_row / QK_K);
                    let imatrix_w = imatrix_weights[imatrix_row * QK_K + 16 * j + l];
                    *w_elem = imatrix_w * (sigma2 + x_elem * x_elem).sqrt();
                }
                let sumw = weights.iter().sum::<f32>();
                sw[j] = sumw;
                (scales[j], mins[j]) =
                    make_qkx3_quants(3, x_scale_slice, Some(&weights), -0.9, 0.05, 36, false);
            }

            let d_block = make_qp_quants(QK_K / 16, 15, &scales, &mut ls, &sw);
            let m_block = make_qp_quants(QK_K / 16, 15, &mins, &mut lm, &sw);

            block.d = f16::from_f32(d_block);
            block.dmin = f16::from_f32(m_block);

            for j in 0..QK_K / 16 {
                block.scales[j] = ls[j] | (lm[j] << 4);
            }

            let mut big_l: [u8; QK_K] = [0; QK_K];

            for j in 0..QK_K / 16 {
                let d = block.d.to_f32() * (block.scales[j] & 0xF) as f32;
                if d == 0.0 {
                    continue;
                }
                let dm = block.dmin.to_f32() * (block.scales[j] >> 4) as f32;
                for ii in 0..16 {
                    let ll = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
                    big_l[16 * j + ii] = ll as u8;
                }
            }

            for j in (0..QK_K).step_by(128) {
                for ll in 0..32 {
                    block.qs[j / 4 + ll] = big_l[j + ll]
                        | (big_l[j + ll + 32] << 2)
                        | (big_l[j + ll + 64] << 4)
                        | (big_l[j + ll + 96] << 6);
                }
            }
        }
    }
    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L354
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        for (block, y) in group_for_dequantization(xs, ys) {
            let d = block.d.to_f32();
            let min = block.dmin.to_f32();

            let mut is = 0;

            for (y_block, qs) in y.chunks_exact_mut(128).zip(block.qs.chunks_exact(32)) {
                // Step by 32 over q.
                let mut shift = 0;
                let mut y_block_index = 0;
                for _j in 0..4 {
                    let sc = block.scales[is];
                    is += 1;
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for q in &qs[..16] {
                        let y = dl * ((q >> shift) & 3) as f32 - ml;
                        y_block[y_block_index] = y;
                        y_block_index += 1;
                    }

                    let sc = block.scales[is];
                    is += 1;
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for q in &qs[16..] {
                        let y = dl * ((q >> shift) & 3) as f32 - ml;
                        y_block[y_block_index] = y;
                        y_block_index += 1;
                    }

                    shift += 2;
                }
            }
        }
    }
}

impl GgmlType for BlockQ3K {
    const DTYPE: GgmlDType = GgmlDType::Q3K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q3k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q3k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q3k_q8k: {n} is not divisible by {QK_K}"
        );

        const KMASK1: u32 = 0x03030303;
        const KMASK2: u32 = 0x0f0f0f0f;

        let mut aux8: [i8; QK_K] = [0; QK_K];
        let mut aux16: [i16; 8] = [0; 8];
        let mut sums: [f32; 8] = [0.0; 8];
        let mut aux32: [i32; 8] = [0; 8];

        let mut auxs: [u32; 4] = [0; 4];

        for (x, y) in xs.iter().zip(ys.iter()) {
            let mut q3: &[u8] = &x.qs;
            let hmask: &[u8] = &x.hmask;
            let mut q8: &[i8] = &y.qs;

            aux32.fill(0);
            let mut a = &mut aux8[..];

            let mut m = 1;
            //Like the GGML original this is written this way to enable the compiler to vectorize it.
            for _ in 0..QK_K / 128 {
                a.iter_mut()
                    .take(32)
                    .zip(q3)
                    .for_each(|(a_val, q3_val)| *a_val = (q3_val & 3) as i8);
                a.iter_mut()
                    .take(32)
                    .zip(hmask)
                    .for_each(|(a_val, hmask_val)| {
                        *a_val -= if hmask_val & m != 0 { 0 } else { 4 }
                    });
                a = &mut a[32..];
                m <<= 1;

                a.iter_mut()
                    .take(32)
                    .zip(q3)
                    .for_each(|(a_val, q3_val)| *a_val = ((q3_val >> 2) & 3) as i8);
                a.iter_mut()
                    .take(32)
                    .zip(hmask)
                    .for_each(|(a_val, hmask_val)| {
                        *a_val -= if hmask_val & m != 0 { 0 } else { 4 }
                    });
                a = &mut a[32..];
                m <<= 1;

                a.iter_mut()
                    .take(32)
                    .zip(q3)
                    .for_each(|(a_val, q3_val)| *a_val = ((q3_val >> 4) & 3) as i8);
                a.iter_mut()
                    .take(32)
                    .zip(hmask)
                    .for_each(|(a_val, hmask_val)| {
                        *a_val -= if hmask_val & m != 0 { 0 } else { 4 }
                    });
                a = &mut a[32..];
                m <<= 1;

                a.iter_mut()
                    .take(32)
                    .zip(q3)
                    .for_each(|(a_val, q3_val)| *a_val = ((q3_val >> 6) & 3) as i8);
                a.iter_mut()
                    .take(32)
                    .zip(hmask)
                    .for_each(|(a_val, hmask_val)| {
                        *a_val -= if hmask_val & m != 0 { 0 } else { 4 }
                    });
                a = &mut a[32..];
                m <<= 1;
                q3 = &q3[32..];
            }

            a = &mut aux8[..];

            LittleEndian::read_u32_into(&x.scales, &mut auxs[0..3]);

            let tmp = auxs[2];
            auxs[2] = ((auxs[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
            auxs[3] = ((auxs[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
            auxs[0] = (auxs[0] & KMASK2) | (((tmp) & KMASK1) << 4);
            auxs[1] = (auxs[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);

            for aux in auxs {
                for scale in aux.to_le_bytes() {
                    let scale = i8::from_be_bytes([scale]);
                    for l in 0..8 {
                        aux16[l] = q8[l] as i16 * a[l] as i16;
                    }
                    for l in 0..8 {
                        aux32[l] += (scale as i32 - 32) * aux16[l] as i32;
                    }
                    q8 = &q8[8..];
                    a = &mut a[8..];

                    for l in 0..8 {
                        aux16[l] = q8[l] as i16 * a[l] as i16;
                    }
                    for l in 0..8 {
                        aux32[l] += (scale as i32 - 32) * aux16[l] as i32;
                    }
                    q8 = &q8[8..];
                    a = &mut a[8..];
                }
            }
            let d = x.d.to_f32() * y.d;
            for l in 0..8 {
                sums[l] += d * aux32[l] as f32;
            }
        }

        sums.iter().sum()
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        for (block, x) in group_for_quantization(xs, ys) {
            let mut scales: [f32; QK_K / 16] = [0.0; QK_K / 16];
            for (j, x_scale_slice) in x.chunks_exact(16).enumerate() {
                scales[j] = make_q3_quants(x_scale_slice, 4, true);
            }

            // Get max scale by absolute value.
            let mut max_scale: f32 = 0.0;
            for &scale in scales.iter() {
                if scale.abs() > max_scale.abs() {
                    max_scale = scale;
                }
            }

            block.scales.fill(0);

            if max_scale != 0.0 {
                let iscale = -32.0 / max_scale;
                for (j, scale) in scales.iter().enumerate() {
                    let l_val = nearest_int(iscale * scale);
                    let l_val = l_val.clamp(-32, 31) + 32;
                    if j < 8 {
                        block.scales[j] = (l_val & 0xF) as u8;
                    } else {
                        block.scales[j - 8] |= ((l_val & 0xF) << 4) as u8;
                    }
                    let l_val = l_val >> 4;
                    block.scales[j % 4 + 8] |= (l_val << (2 * (j / 4))) as u8;
                }
                block.d = f16::from_f32(1.0 / iscale);
            } else {
                block.d = f16::from_f32(0.0);
            }

            let mut l: [i8; QK_K] = [0; QK_K];

            for j in 0..QK_K / 16 {
                let sc = if j < 8 {
                    block.scales[j] & 0xF
                } else {
                    block.scales[j - 8] >> 4
                };
                let sc = (sc | (((block.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
                let d = block.d.to_f32() * sc as f32;
                if d != 0.0 {
                    for ii in 0..16 {
                        let l_val = nearest_int(x[16 * j + ii] / d);
                        l[16 * j + ii] = (l_val.clamp(-4, 3) + 4) as i8;
                    }
                }
            }

            block.hmask.fill(0);
            let mut m = 0;
            let mut hm = 1;

            for ll in l.iter_mut() {
                if *ll > 3 {
                    block.hmask[m] |= hm;
                    *ll -= 4;
                }
                m += 1;
                if m == QK_K / 8 {
                    m = 0;
                    hm <<= 1;
                }
            }

            for j in (0..QK_K).step_by(128) {
                for l_val in 0..32 {
                    block.qs[j / 4 + l_val] = (l[j + l_val]
                        | (l[j + l_val + 32] << 2)
                        | (l[j + l_val + 64] << 4)
                        | (l[j + l_val + 96] << 6))
                        as u8;
                }
            }
        }
    }

    fn from_float_imatrix(xs: &[f32], ys: &mut [Self], imatrix_weights: &[f32], n_per_row: usize) {
        for (sblk_idx, (block, x)) in group_for_quantization(xs, ys).into_iter().enumerate() {
            let mut scales: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut weights: [f32; 16] = [0.0; 16];
            let mut sw: [f32; QK_K / 16] = [0.0; QK_K / 16];
            let mut ls: [i8; QK_K / 16] = [0; QK_K / 16];
            let mut l: [i8; QK_K] = [0; QK_K];

            let sum_x2 = x.iter().map(|x| x * x).sum::<f32>();
            let sigma2 = 2. * sum_x2 / QK_K as f32;

            for (j, x_scale_slice) in x.chunks_exact(16).enumerate() {
                for (l_idx, (w_elem, x_elem)) in weights.iter_mut().zip(x_scale_slice).enumerate() {
                    let imatrix_row = sblk_idx % (n_per_row / QK_K);
                    let imatrix_w = imatrix_weights[imatrix_row * QK_K + 16 * j + l_idx];
                    *w_elem = imatrix_w * (sigma2 + x_elem * x_elem).sqrt();
                }
                let sumw = weights.iter().sum::<f32>();
                sw[j] = sumw;
                scales[j] = unsafe {
                    make_qx_quants(
                        16,
                        4,
                        x_scale_slice.as_ptr(),
                        l.as_mut_ptr().add(16 * j),
                        1,
                        weights.as_ptr(),
                    )
                };
            }

            block.scales.fill(0);
            let d_block = unsafe {
                make_qx_quants(
                    QK_K / 16,
                    32,
                    scales.as_ptr(),
                    ls.as_mut_ptr(),
                    1,
                    sw.as_ptr(),
                )
            };
            block.d = f16::from_f32(d_block);
            for (j, l_val) in ls.iter().enumerate().take(QK_K / 16) {
                if j < 8 {
                    block.scales[j] = (l_val & 0xF) as u8;
                } else {
                    block.scales[j - 8] |= ((l_val & 0xF) << 4) as u8;
                }
                let l_val = l_val >> 4;
                block.scales[j % 4 + 8] |= (l_val << (2 * (j / 4))) as u8;
            }

            for j in 0..QK_K / 16 {
                let sc = if j < 8 {
                    block.scales[j] & 0xF
                } else {
                    block.scales[j - 8] >> 4
                };
                let sc = (sc | (((block.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
                let d = block.d.to_f32() * sc as f32;
                if d != 0.0 {
                    for ii in 0..16 {
                        let l_val = nearest_int(x[16 * j + ii] / d);
                        l[16 * j + ii] = (l_val.clamp(-4, 3) + 4) as i8;
                    }
                }
            }

            block.hmask.fill(0);
            let mut m = 0;
            let mut hm = 1;

            for ll in l.iter_mut() {
                if *ll > 3 {
                    block.hmask[m] |= hm;
                    *ll -= 4;
                }
                m += 1;
                if m == QK_K / 8 {
                    m = 0;
                    hm <<= 1;
                }
            }

            for j in (0..QK_K).step_by(128) {
                for l_val in 0..32 {
                    block.qs[j / 4 + l_val] = (l[j + l_val]
                        | (l[j + l_val + 32] << 2)
                        | (l[j + l_val + 64] << 4)
                        | (l[j + l_val + 96] << 6))
                        as u8;
                }
            }
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L533
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        const KMASK1: u32 = 0x03030303;
        const KMASK2: u32 = 0x0f0f0f0f;

        for (block, y) in group_for_dequantization(xs, ys) {
            //Reconstruct the scales
            let mut aux = [0; 4];
            LittleEndian::read_u32_into(&block.scales, &mut aux[0..3]);

            let tmp = aux[2];
            aux[2] = ((aux[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
            aux[3] = ((aux[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
            aux[0] = (aux[0] & KMASK2) | (((tmp) & KMASK1) << 4);
            aux[1] = (aux[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);

            //Transfer the scales into an i8 array
            let scales: &mut [i8] =
                unsafe { std::slice::from_raw_parts_mut(aux.as_mut_ptr() as *mut i8, 16) };

            let d_all = block.d.to_f32();
            let mut m = 1;
            let mut is = 0;

            // Dequantize both 128 long blocks
            // 32 qs values per 128 long block
            // Each 16 elements get a scale
            for (y, qs) in y.chunks_exact_mut(128).zip(block.qs.chunks_exact(32)) {
                let mut shift = 0;
                for shift_scoped_y in y.chunks_exact_mut(32) {
                    for (scale_index, scale_scoped_y) in
                        shift_scoped_y.chunks_exact_mut(16).enumerate()
                    {
                        let dl = d_all * (scales[is] as f32 - 32.0);
                        for (i, inner_y) in scale_scoped_y.iter_mut().enumerate() {
                            let new_y = dl
                                * (((qs[i + 16 * scale_index] >> shift) & 3) as i8
                                    - if (block.hmask[i + 16 * scale_index] & m) == 0 {
                                        4
                                    } else {
                                        0
                                    }) as f32;
                            *inner_y = new_y;
                        }
                        // 16 block finished => advance scale index
                        is += 1;
                    }
                    // 32 block finished => increase shift and m
                    shift += 2;
                    m <<= 1;
                }
            }
        }
    }
}

impl GgmlType for BlockQ4K {
    const DTYPE: GgmlDType = GgmlDType::Q4K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            unsafe { super::avx::vec_dot_q4k_q8k_x4(n, xs, ys) }
        } else {
            ys.map(|y| Self::vec_dot_unopt(n, xs, y))
        }
    }

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q4k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q4k_q8k(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q4k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q4k_q8k: {n} is not divisible by {QK_K}"
        );

        const KMASK1: u32 = 0x3f3f3f3f;
        const KMASK2: u32 = 0x0f0f0f0f;
        const KMASK3: u32 = 0x03030303;

        let mut utmp: [u32; 4] = [0; 4];
        let mut scales: [u8; 8] = [0; 8];
        let mut mins: [u8; 8] = [0; 8];

        let mut aux8: [i8; QK_K] = [0; QK_K];
        let mut aux16: [i16; 8] = [0; 8];
        let mut sums: [f32; 8] = [0.0; 8];
        let mut aux32: [i32; 8] = [0; 8];

        let mut sumf = 0.0;
        for (y, x) in ys.iter().zip(xs.iter()) {
            let q4 = &x.qs;
            let q8 = &y.qs;
            aux32.fill(0);

            let mut a = &mut aux8[..];
            let mut q4 = &q4[..];
            for _ in 0..QK_K / 64 {
                for l in 0..32 {
                    a[l] = (q4[l] & 0xF) as i8;
                }
                a = &mut a[32..];
                for l in 0..32 {
                    a[l] = (q4[l] >> 4) as i8;
                }
                a = &mut a[32..];
                q4 = &q4[32..];
            }

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            //extract scales and mins
            LittleEndian::write_u32_into(&utmp[0..2], &mut scales);
            LittleEndian::write_u32_into(&utmp[2..4], &mut mins);

            let mut sumi = 0;
            for j in 0..QK_K / 16 {
                sumi += y.bsums[j] as i32 * mins[j / 2] as i32;
            }

            let mut a = &mut aux8[..];
            let mut q8 = &q8[..];

            for scale in scales {
                let scale = scale as i32;
                for _ in 0..4 {
                    for l in 0..8 {
                        aux16[l] = q8[l] as i16 * a[l] as i16;
                    }
                    for l in 0..8 {
                        aux32[l] += scale * aux16[l] as i32;
                    }
                    q8 = &q8[8..];
                    a = &mut a[8..];
                }
            }
            let d = x.d.to_f32() * y.d;
            for l in 0..8 {
                sums[l] += d * aux32[l] as f32;
            }
            let dmin = x.dmin.to_f32() * y.d;
            sumf -= dmin * sumi as f32;
        }
        sumf + sums.iter().sum::<f32>()
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        for (block, x) in group_for_quantization(xs, ys) {
            let mut mins: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut scales: [f32; QK_K / 32] = [0.0; QK_K / 32];

            for (j, x_scale_slice) in x.chunks_exact(32).enumerate() {
                (scales[j], mins[j]) = make_qkx1_quants(15, 5, x_scale_slice);
            }

            // get max scale and max min and ensure they are >= 0.0
            let max_scale = scales.iter().fold(0.0, |max, &val| val.max(max));
            let max_min = mins.iter().fold(0.0, |max, &val| val.max(max));

            let inv_scale = if max_scale > 0.0 {
                63.0 / max_scale
            } else {
                0.0
            };
            let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };

            for j in 0..QK_K / 32 {
                let ls = nearest_int(inv_scale * scales[j]).min(63) as u8;
                let lm = nearest_int(inv_min * mins[j]).min(63) as u8;
                if j < 4 {
                    block.scales[j] = ls;
                    block.scales[j + 4] = lm;
                } else {
                    block.scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                    block.scales[j - 4] |= (ls >> 4) << 6;
                    block.scales[j] |= (lm >> 4) << 6;
                }
            }

            block.d = f16::from_f32(max_scale / 63.0);
            block.dmin = f16::from_f32(max_min / 63.0);

            let mut l: [u8; QK_K] = [0; QK_K];

            for j in 0..QK_K / 32 {
                let (sc, m) = get_scale_min_k4(j, &block.scales);
                let d = block.d.to_f32() * sc as f32;
                if d != 0.0 {
                    let dm = block.dmin.to_f32() * m as f32;
                    for ii in 0..32 {
                        let l_val = nearest_int((x[32 * j + ii] + dm) / d);
                        l[32 * j + ii] = l_val.clamp(0, 15) as u8;
                    }
                }
            }

            let q = &mut block.qs;
            for j in (0..QK_K).step_by(64) {
                for l_val in 0..32 {
                    let offset_index = (j / 64) * 32 + l_val;
                    q[offset_index] = l[j + l_val] | (l[j + l_val + 32] << 4);
                }
            }
        }
    }

    fn from_float_imatrix(xs: &[f32], ys: &mut [Self], imatrix_weights: &[f32], n_per_row: usize) {
        for (sblk_idx, (block, x)) in group_for_quantization(xs, ys).into_iter().enumerate() {
            let mut mins: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut scales: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut weights: [f32; 32] = [0.0; 32];
            let mut sw: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut ls: [u8; QK_K / 32] = [0; QK_K / 32];
            let mut lm: [u8; QK_K / 32] = [0; QK_K / 32];

            let sum_x2 = x.iter().map(|x| x * x).sum::<f32>();
            let sigma2 = 2. * sum_x2 / QK_K as f32;

            for (j, x_scale_slice) in x.chunks_exact(32).enumerate() {
                for (l, (w_elem, x_elem)) in weights.iter_mut().zip(x_scale_slice).enumerate() {
                    let imatrix_row = sblk_idx % (n_per_row / QK_K);
                    let imatrix_w = imatrix_weights[imatrix_row * QK_K + 32 * j + l];
                    *w_elem = imatrix_w * (sigma2 + x_elem * x_elem).sqrt();
                }
                let sumw = weights.iter().sum::<f32>();
                sw[j] = sumw;
                (scales[j], mins[j]) =
                    make_qkx3_quants(15, x_scale_slice, Some(&weights), -0.9, 0.05, 36, false);
            }

            let d_block = make_qp_quants(QK_K / 32, 63, &scales, &mut ls, &sw);
            let m_block = make_qp_quants(QK_K / 32, 63, &mins, &mut lm, &sw);
            for j in 0..QK_K / 32 {
                let ls_val = ls[j];
                let lm_val = lm[j];
                if j < 4 {
                    block.scales[j] = ls_val;
                    block.scales[j + 4] = lm_val;
                } else {
                    block.scales[j + 4] = (ls_val & 0xF) | ((lm_val & 0xF) << 4);
                    block.scales[j - 4] |= (ls_val >> 4) << 6;
                    block.scales[j] |= (lm_val >> 4) << 6;
                }
            }

            block.d = f16::from_f32(d_block);
            block.dmin = f16::from_f32(m_block);

            let mut l: [u8; QK_K] = [0; QK_K];
            for j in 0..QK_K / 32 {
                let (sc, m) = get_scale_min_k4(j, &block.scales);
                let d = block.d.to_f32() * sc as f32;
                if d != 0.0 {
                    let dm = block.dmin.to_f32() * m as f32;
                    for ii in 0..32 {
                        let l_val = nearest_int((x[32 * j + ii] + dm) / d);
                        l[32 * j + ii] = l_val.clamp(0, 15) as u8;
                    }
                }
            }

            let q = &mut block.qs;
            for j in (0..QK_K).step_by(64) {
                for l_val in 0..32 {
                    let offset_index = (j / 64) * 32 + l_val;
                    q[offset_index] = l[j + l_val] | (l[j + l_val + 32] << 4);
                }
            }
        }
    }
    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L735
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        for (block, y) in group_for_dequantization(xs, ys) {
            let d = block.d.to_f32();
            let min = block.dmin.to_f32();
            let q = &block.qs;
            let mut is = 0;
            let mut ys_index = 0;

            for j in (0..QK_K).step_by(64) {
                let q = &q[j / 2..j / 2 + 32];
                let (sc, m) = get_scale_min_k4(is, &block.scales);
                let d1 = d * sc as f32;
                let m1 = min * m as f32;
                let (sc, m) = get_scale_min_k4(is + 1, &block.scales);
                let d2 = d * sc as f32;
                let m2 = min * m as f32;
                for q in q {
                    y[ys_index] = d1 * (q & 0xF) as f32 - m1;
                    ys_index += 1;
                }
                for q in q {
                    y[ys_index] = d2 * (q >> 4) as f32 - m2;
                    ys_index += 1;
                }
                is += 2;
            }
        }
    }
}

// https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L928
impl GgmlType for BlockQ5K {
    const DTYPE: GgmlDType = GgmlDType::Q5K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q5k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q5k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q5k_q8k: {n} is not divisible by {QK_K}"
        );

        const KMASK1: u32 = 0x3f3f3f3f;
        const KMASK2: u32 = 0x0f0f0f0f;
        const KMASK3: u32 = 0x03030303;

        let mut utmp: [u32; 4] = [0; 4];
        let mut scales: [u8; 8] = [0; 8];
        let mut mins: [u8; 8] = [0; 8];

        let mut aux8: [i8; QK_K] = [0; QK_K];
        let mut aux16: [i16; 8] = [0; 8];
        let mut sums: [f32; 8] = [0.0; 8];
        let mut aux32: [i32; 8] = [0; 8];

        let mut sumf = 0.0;
        for (y, x) in ys.iter().zip(xs.iter()) {
            let q5 = &x.qs;
            let hm = &x.qh;
            let q8 = &y.qs;
            aux32.fill(0);

            let mut a = &mut aux8[..];
            let mut q5 = &q5[..];
            let mut m = 1u8;

            for _ in 0..QK_K / 64 {
                for l in 0..32 {
                    a[l] = (q5[l] & 0xF) as i8;
                    a[l] += if hm[l] & m != 0 { 16 } else { 0 };
                }
                a = &mut a[32..];
                m <<= 1;
                for l in 0..32 {
                    a[l] = (q5[l] >> 4) as i8;
                    a[l] += if hm[l] & m != 0 { 16 } else { 0 };
                }
                a = &mut a[32..];
                m <<= 1;
                q5 = &q5[32..];
            }

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            //extract scales and mins
            LittleEndian::write_u32_into(&utmp[0..2], &mut scales);
            LittleEndian::write_u32_into(&utmp[2..4], &mut mins);

            let mut sumi = 0;
            for j in 0..QK_K / 16 {
                sumi += y.bsums[j] as i32 * mins[j / 2] as i32;
            }

            let mut a = &mut aux8[..];
            let mut q8 = &q8[..];

            for scale in scales {
                let scale = scale as i32;
                for _ in 0..4 {
                    for l in 0..8 {
                        aux16[l] = q8[l] as i16 * a[l] as i16;
                    }
                    for l in 0..8 {
                        aux32[l] += scale * aux16[l] as i32;
                    }
                    q8 = &q8[8..];
                    a = &mut a[8..];
                }
            }
            let d = x.d.to_f32() * y.d;
            for l in 0..8 {
                sums[l] += d * aux32[l] as f32;
            }
            let dmin = x.dmin.to_f32() * y.d;
            sumf -= dmin * sumi as f32;
        }
        sumf + sums.iter().sum::<f32>()
    }

    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L793
    fn from_float(xs: &[f32], ys: &mut [Self]) {
        for (block, x) in group_for_quantization(xs, ys) {
            let mut mins: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut scales: [f32; QK_K / 32] = [0.0; QK_K / 32];

            for (j, x_scale_slice) in x.chunks_exact(32).enumerate() {
                (scales[j], mins[j]) = make_qkx1_quants(31, 5, x_scale_slice);
            }

            // get max scale and max min and ensure they are >= 0.0
            let max_scale = scales.iter().fold(0.0, |max, &val| val.max(max));
            let max_min = mins.iter().fold(0.0, |max, &val| val.max(max));

            let inv_scale = if max_scale > 0.0 {
                63.0 / max_scale
            } else {
                0.0
            };
            let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
            for j in 0..QK_K / 32 {
                let ls = nearest_int(inv_scale * scales[j]).min(63) as u8;
                let lm = nearest_int(inv_min * mins[j]).min(63) as u8;
                if j < 4 {
                    block.scales[j] = ls;
                    block.scales[j + 4] = lm;
                } else {
                    block.scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                    block.scales[j - 4] |= (ls >> 4) << 6;
                    block.scales[j] |= (lm >> 4) << 6;
                }
            }
            block.d = f16::from_f32(max_scale / 63.0);
            block.dmin = f16::from_f32(max_min / 63.0);

            let mut l: [u8; QK_K] = [0; QK_K];
            for j in 0..QK_K / 32 {
                let (sc, m) = get_scale_min_k4(j, &block.scales);
                let d = block.d.to_f32() * sc as f32;
                if d == 0.0 {
                    continue;
                }
                let dm = block.dmin.to_f32() * m as f32;
                for ii in 0..32 {
                    let ll = nearest_int((x[32 * j + ii] + dm) / d);
                    l[32 * j + ii] = ll.clamp(0, 31) as u8;
                }
            }

            let qh = &mut block.qh;
            let ql = &mut block.qs;
            qh.fill(0);

            let mut m1 = 1;
            let mut m2 = 2;
            for n in (0..QK_K).step_by(64) {
                let offset = (n / 64) * 32;
                for j in 0..32 {
                    let mut l1 = l[n + j];
                    if l1 > 15 {
                        l1 -= 16;
                        qh[j] |= m1;
                    }
                    let mut l2 = l[n + j + 32];
                    if l2 > 15 {
                        l2 -= 16;
                        qh[j] |= m2;
                    }
                    ql[offset + j] = l1 | (l2 << 4);
                }
                m1 <<= 2;
                m2 <<= 2;
            }
        }
    }

    fn from_float_imatrix(xs: &[f32], ys: &mut [Self], imatrix_weights: &[f32], n_per_row: usize) {
        for (sblk_idx, (block, x)) in group_for_quantization(xs, ys).into_iter().enumerate() {
            let mut mins: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut scales: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut weights: [f32; 32] = [0.0; 32];
            let mut sw: [f32; QK_K / 32] = [0.0; QK_K / 32];
            let mut ls: [u8; QK_K / 32] = [0; QK_K / 32];
            let mut lm: [u8; QK_K / 32] = [0; QK_K / 32];

            let sum_x2 = x.iter().map(|x| x * x).sum::<f32>();
            let sigma2 = 2. * sum_x2 / QK_K as f32;

            for (j, x_scale_slice) in x.chunks_exact(32).enumerate() {
                for (l, (w_elem, x_elem)) in weights.iter_mut().zip(x_scale_slice).enumerate() {
                    let imatrix_row = sblk_idx % (n_per_row / QK_K);
                    let imatrix_w = imatrix_weights[imatrix_row * QK_K + 32 * j + l];
                    *w_elem = imatrix_w * (sigma2 + x_elem * x_elem).sqrt();
                }
                let sumw = weights.iter().sum::<f32>();
                sw[j] = sumw;
                (scales[j], mins[j]) =
                    make_qkx3_quants(31, x_scale_slice, Some(&weights), -0.9, 0.05, 36, false);
            }

            let d_block = make_qp_quants(QK_K / 32, 63, &scales, &mut ls, &sw);
            let m_block = make_qp_quants(QK_K / 32, 63, &mins, &mut lm, &sw);
            for j in 0..QK_K / 32 {
                let ls_val = ls[j].min(63);
                let lm_val = lm[j].min(63);
                if j < 4 {
                    block.scales[j] = ls_val;
                    block.scales[j + 4] = lm_val;
                } else {
                    block.scales[j + 4] = (ls_val & 0xF) | ((lm_val & 0xF) << 4);
                    block.scales[j - 4] |= (ls_val >> 4) << 6;
                    block.scales[j] |= (lm_val >> 4) << 6;
                }
            }

            block.d = f16::from_f32(d_block);
            block.dmin = f16::from_f32(m_block);

            let mut l: [u8; QK_K] = [0; QK_K];
            for j in 0..QK_K / 32 {
                let (sc, m) = get_scale_min_k4(j, &block.scales);
                let d = block.d.to_f32() * sc as f32;
                if d != 0.0 {
                    let dm = block.dmin.to_f32() * m as f32;
                    for ii in 0..32 {
                        let l_val = nearest_int((x[32 * j + ii] + dm) / d);
                        l[32 * j + ii] = l_val.clamp(0, 31) as u8;
                    }
                }
            }

            let qh = &mut block.qh;
            let ql = &mut block.qs;
            qh.fill(0);

            let mut m1 = 1;
            let mut m2 = 2;
            for n in (0..QK_K).step_by(64) {
                let offset = (n / 64) * 32;
                for j in 0..32 {
                    let mut l1 = l[n + j];
                    if l1 > 15 {
                        l1 -= 16;
                        qh[j] |= m1;
                    }
                    let mut l2 = l[n + j + 32];
                    if l2 > 15 {
                        l2 -= 16;
                        qh[j] |= m2;
                    }
                    ql[offset + j] = l1 | (l2 << 4);
                }
                m1 <<= 2;
                m2 <<= 2;
            }
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L928
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        for (block, y) in group_for_dequantization(xs, ys) {
            let d = block.d.to_f32();
            let min = block.dmin.to_f32();
            let ql = &block.qs;
            let qh = &block.qh;
            let mut is = 0;
            let mut u1 = 1;
            let mut u2 = 2;
            let mut ys_index = 0;

            for j in (0..QK_K).step_by(64) {
                let ql = &ql[j / 2..j / 2 + 32];
                let (sc, m) = get_scale_min_k4(is, &block.scales);
                let d1 = d * sc as f32;
                let m1 = min * m as f32;
                let (sc, m) = get_scale_min_k4(is + 1, &block.scales);
                let d2 = d * sc as f32;
                let m2 = min * m as f32;
                for (ql, qh) in ql.iter().zip(qh) {
                    let to_add = if qh & u1 != 0 { 16f32 } else { 0f32 };
                    y[ys_index] = d1 * ((ql & 0xF) as f32 + to_add) - m1;
                    ys_index += 1;
                }
                for (ql, qh) in ql.iter().zip(qh) {
                    let to_add = if qh & u2 != 0 { 16f32 } else { 0f32 };
                    y[ys_index] = d2 * ((ql >> 4) as f32 + to_add) - m2;
                    ys_index += 1;
                }
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
    }
}

impl GgmlType for BlockQ6K {
    const DTYPE: GgmlDType = GgmlDType::Q6K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[cfg(target_arch = "x86_64")]
    fn vec_dot_x4(n: usize, xs: &[Self], ys: [&[Self::VecDotType]; 4]) -> [f32; 4] {
        // Troupe patch: the AVX2 four-row kernel, unless scalar kernels are forced.
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            unsafe { super::avx::vec_dot_q6k_q8k_x4(n, xs, ys) }
        } else {
            ys.map(|y| Self::vec_dot_unopt(n, xs, y))
        }
    }

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q6k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q6k_q8k(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q6k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q6k_q8k: {n} is not divisible by {QK_K}"
        );

        let mut aux8 = [0i8; QK_K];
        let mut aux16 = [0i16; 8];
        let mut sums = [0f32; 8];
        let mut aux32 = [0f32; 8];

        for (x, y) in xs.iter().zip(ys.iter()) {
            let q4 = &x.ql;
            let qh = &x.qh;
            let q8 = &y.qs;
            aux32.fill(0f32);

            for j in (0..QK_K).step_by(128) {
                let aux8 = &mut aux8[j..];
                let q4 = &q4[j / 2..];
                let qh = &qh[j / 4..];
                for l in 0..32 {
                    aux8[l] = (((q4[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32) as i8;
                    aux8[l + 32] =
                        (((q4[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32) as i8;
                    aux8[l + 64] = (((q4[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32) as i8;
                    aux8[l + 96] =
                        (((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32) as i8;
                }
            }

            for (j, &scale) in x.scales.iter().enumerate() {
                let scale = scale as f32;
                let q8 = &q8[16 * j..];
                let aux8 = &aux8[16 * j..];
                for l in 0..8 {
                    aux16[l] = q8[l] as i16 * aux8[l] as i16;
                }
                for l in 0..8 {
                    aux32[l] += scale * aux16[l] as f32
                }
                let q8 = &q8[8..];
                let aux8 = &aux8[8..];
                for l in 0..8 {
                    aux16[l] = q8[l] as i16 * aux8[l] as i16;
                }
                for l in 0..8 {
                    aux32[l] += scale * aux16[l] as f32
                }
            }

            let d = x.d.to_f32() * y.d;
            for (sum, &a) in sums.iter_mut().zip(aux32.iter()) {
                *sum += a * d;
            }
        }
        sums.iter().sum()
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        debug_assert_eq!(
            xs.len(),
            ys.len() * Self::BLCK_SIZE,
            "quantize_row_q6k: size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            Self::BLCK_SIZE
        );
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let mut x = xs.as_ptr();
        let l = l.as_mut_ptr();
        unsafe {
            for y in ys.iter_mut() {
                let mut max_scale = 0f32;
                let mut max_abs_scale = 0f32;
                for (ib, scale_) in scales.iter_mut().enumerate() {
                    let scale =
                        make_qx_quants(16, 32, x.add(16 * ib), l.add(16 * ib), 1, std::ptr::null());
                    *scale_ = scale;
                    let abs_scale = scale.abs();
                    if abs_scale > max_abs_scale {
                        max_abs_scale = abs_scale;
                        max_scale = scale
                    }
                }

                let iscale = -128f32 / max_scale;
                y.d = f16::from_f32(1.0 / iscale);

                for (y_scale, scale) in y.scales.iter_mut().zip(scales.iter()) {
                    *y_scale = nearest_int(iscale * scale).min(127) as i8
                }

                for (j, &y_scale) in y.scales.iter().enumerate() {
                    let d = y.d.to_f32() * y_scale as f32;
                    if d == 0. {
                        continue;
                    }
                    for ii in 0..16 {
                        let ll = nearest_int(*x.add(16 * j + ii) / d).clamp(-32, 31);
                        *l.add(16 * j + ii) = (ll + 32) as i8
                    }
                }

                let mut ql = y.ql.as_mut_ptr();
                let mut qh = y.qh.as_mut_ptr();

                for j in (0..QK_K).step_by(128) {
                    for l_idx in 0..32 {
                        let q1 = *l.add(j + l_idx) & 0xF;
                        let q2 = *l.add(j + l_idx + 32) & 0xF;
                        let q3 = *l.add(j + l_idx + 64) & 0xF;
                        let q4 = *l.add(j + l_idx + 96) & 0xF;
                        *ql.add(l_idx) = (q1 | (q3 << 4)) as u8;
                        *ql.add(l_idx + 32) = (q2 | (q4 << 4)) as u8;
                        *qh.add(l_idx) = ((*l.add(j + l_idx) >> 4)
                            | ((*l.add(j + l_idx + 32) >> 4) << 2)
                            | ((*l.add(j + l_idx + 64) >> 4) << 4)
                            | ((*l.add(j + l_idx + 96) >> 4) << 6))
                            as u8;
                    }
                    ql = ql.add(64);
                    qh = qh.add(32);
                }

                x = x.add(QK_K)
            }
        }
    }

    fn from_float_imatrix(xs: &[f32], ys: &mut [Self], imatrix_weights: &[f32], n_per_row: usize) {
        debug_assert_eq!(
            xs.len(),
            ys.len() * Self::BLCK_SIZE,
            "quantize_row_q6k imatrix: size mismatch {} {} {}",
            xs.len(),
            ys.len(),
            Self::BLCK_SIZE
        );
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let mut x = xs.as_ptr();
        let imatrix_weights = imatrix_weights.as_ptr();
        let l = l.as_mut_ptr();
        unsafe {
            for (sblk_idx, y) in ys.iter_mut().enumerate() {
                let mut max_scale = 0f32;
                let mut max_abs_scale = 0f32;
                for (ib, scale_) in scales.iter_mut().enumerate() {
                    let imatrix_row = sblk_idx % (n_per_row / QK_K);
                    let scale = make_qx_quants(
                        16,
                        32,
                        x.add(16 * ib),
                        l.add(16 * ib),
                        1,
                        imatrix_weights.add(QK_K * imatrix_row + 16 * ib),
                    );
                    *scale_ = scale;
                    let abs_scale = scale.abs();
                    if abs_scale > max_abs_scale {
                        max_abs_scale = abs_scale;
                        max_scale = scale
                    }
                }

                let iscale = -128f32 / max_scale;
                y.d = f16::from_f32(1.0 / iscale);

                for (y_scale, scale) in y.scales.iter_mut().zip(scales.iter()) {
                    *y_scale = nearest_int(iscale * scale).min(127) as i8
                }

                for (j, &y_scale) in y.scales.iter().enumerate() {
                    let d = y.d.to_f32() * y_scale as f32;
                    if d == 0. {
                        continue;
                    }
                    for ii in 0..16 {
                        let ll = nearest_int(*x.add(16 * j + ii) / d).clamp(-32, 31);
                        *l.add(16 * j + ii) = (ll + 32) as i8
                    }
                }

                let mut ql = y.ql.as_mut_ptr();
                let mut qh = y.qh.as_mut_ptr();

                for j in (0..QK_K).step_by(128) {
                    for l_idx in 0..32 {
                        let q1 = *l.add(j + l_idx) & 0xF;
                        let q2 = *l.add(j + l_idx + 32) & 0xF;
                        let q3 = *l.add(j + l_idx + 64) & 0xF;
                        let q4 = *l.add(j + l_idx + 96) & 0xF;
                        *ql.add(l_idx) = (q1 | (q3 << 4)) as u8;
                        *ql.add(l_idx + 32) = (q2 | (q4 << 4)) as u8;
                        *qh.add(l_idx) = ((*l.add(j + l_idx) >> 4)
                            | ((*l.add(j + l_idx + 32) >> 4) << 2)
                            | ((*l.add(j + l_idx + 64) >> 4) << 4)
                            | ((*l.add(j + l_idx + 96) >> 4) << 6))
                            as u8;
                    }
                    ql = ql.add(64);
                    qh = qh.add(32);
                }

                x = x.add(QK_K)
            }
        }
    }

    // https://github.com/ggerganov/llama.cpp/blob/8183159cf3def112f6d1fe94815fce70e1bffa12/k_quants.c#L1067
    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK_K),
            "dequantize_row_q6k: {k} is not divisible by {QK_K}"
        );

        for (idx_x, x) in xs.iter().enumerate() {
            let d = x.d.to_f32();
            let ql = &x.ql;
            let qh = &x.qh;
            let sc = &x.scales;
            for n in (0..QK_K).step_by(128) {
                let idx = n / 128;
                let ys = &mut ys[idx_x * QK_K + n..];
                let sc = &sc[8 * idx..];
                let ql = &ql[64 * idx..];
                let qh = &qh[32 * idx..];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    ys[l] = d * sc[is] as f32 * q1 as f32;
                    ys[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                    ys[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                    ys[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
                }
            }
        }
    }
}

impl GgmlType for BlockQ8K {
    const DTYPE: GgmlDType = GgmlDType::Q8K;
    const BLCK_SIZE: usize = QK_K;
    type VecDotType = BlockQ8K;

    #[allow(unreachable_code)]
    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if super::simd_kernels_on() {
            // SAFETY: SIMD kernels run only where the CPU has AVX2, FMA and F16C.
            return unsafe { super::avx::vec_dot_q8k_q8k(n, xs, ys) };
        }

        #[cfg(target_feature = "neon")]
        return super::neon::vec_dot_q8k_q8k(n, xs, ys);

        #[cfg(target_feature = "simd128")]
        return super::simd128::vec_dot_q8k_q8k(n, xs, ys);

        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(
            n.is_multiple_of(QK_K),
            "vec_dot_q8k_q8k: {n} is not divisible by {QK_K}"
        );
        // Generic implementation.
        let mut sumf = 0f32;
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let sum_i = xs
                .qs
                .iter()
                .zip(ys.qs.iter())
                .map(|(&x, &y)| x as i32 * y as i32)
                .sum::<i32>();
            sumf += sum_i as f32 * xs.d * ys.d
        }
        sumf
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        let k = xs.len();
        debug_assert!(
            k.is_multiple_of(QK_K),
            "quantize_row_q8k: {k} is not divisible by {QK_K}"
        );
        for (i, y) in ys.iter_mut().enumerate() {
            let mut max = 0f32;
            let mut amax = 0f32;
            let xs = &xs[i * QK_K..(i + 1) * QK_K];
            for &x in xs.iter() {
                if amax < x.abs() {
                    amax = x.abs();
                    max = x;
                }
            }
            if amax == 0f32 {
                y.d = 0f32;
                y.qs.fill(0)
            } else {
                let iscale = -128f32 / max;
                for (j, q) in y.qs.iter_mut().enumerate() {
                    // ggml uses nearest_int with bit magic here, maybe we want the same
                    // but we would have to test and benchmark it.
                    let v = (iscale * xs[j]).round();
                    *q = v.min(127.) as i8
                }
                for j in 0..QK_K / 16 {
                    let mut sum = 0i32;
                    for ii in 0..16 {
                        sum += y.qs[j * 16 + ii] as i32
                    }
                    y.bsums[j] = sum as i16
                }
                y.d = 1.0 / iscale
            }
        }
    }

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        let k = ys.len();
        debug_assert!(
            k.is_multiple_of(QK_K),
            "dequantize_row_q8k: {k} is not divisible by {QK_K}"
        );
        for (i, x) in xs.iter().enumerate() {
            for (j, &q) in x.qs.iter().enumerate() {
                ys[i * QK_K + j] = x.d * q as f32
            }
        }
    }
}

// https://github.com/ggml-org/llama.cpp/blob/aa3ee0eb0b80efca126cedf9bcb4fb5864b46ce3/ggml/src/ggml-cpu/ggml-cpu.c#L1205
pub fn matmul<T: GgmlType>(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs_t: &[T],
    dst: &mut [f32],
) -> Result<()> {
    debug_assert_eq!(
        T::BLCK_SIZE,
        T::VecDotType::BLCK_SIZE,
        "Mismatched block sizes"
    );
    debug_assert_eq!(
        m * k,
        lhs.len(),
        "unexpected lhs length {} ({m},{k},{n})",
        lhs.len()
    );
    let k_in_blocks = k.div_ceil(T::BLCK_SIZE);

    // TODO: Pre-allocate this.
    let mut lhs_b = vec![T::VecDotType::zeros(); m * k_in_blocks];
    // f32, f16, and bf16 support direct copy
    if T::DIRECT_COPY {
        T::VecDotType::direct_copy(lhs, &mut lhs_b);
    } else {
        // Troupe patch: rows quantised in parallel.
        lhs_b
            .par_chunks_mut(k_in_blocks)
            .zip(lhs.par_chunks(k))
            .with_min_len(16)
            .for_each(|(lhs_b_mut, lhs)| T::VecDotType::from_float(lhs, lhs_b_mut));
    }

    // Troupe patch: the activation scales as f32 once, for the kernels that take them; and,
    // where the kernels have a packed form, whole groups of four rows packed once.
    let lhs_d = T::activation_scales(&lhs_b);
    let packed = match &lhs_d {
        Some(d) if m >= 4 => T::pack_activations_x4(&lhs_b, d, k_in_blocks),
        _ => None,
    };
    let dot = |rhs_col: &[T], r: usize| {
        let lhs_row = &lhs_b[r * k_in_blocks..(r + 1) * k_in_blocks];
        match &lhs_d {
            Some(d) => T::vec_dot_scaled(k, rhs_col, lhs_row, &d[r * k_in_blocks..]),
            None => T::vec_dot(k, rhs_col, lhs_row),
        }
    };

    if m == 1 {
        // Troupe patch: runs of 64 weight rows per kernel call where the kernels take the
        // scales (`vec_dot_rows_scaled`), tasks of 128 to 512 rows as before.
        const RUN: usize = 64;
        let dst_row = &mut dst[..n];
        match &lhs_d {
            Some(d) => dst_row
                .par_chunks_mut(RUN)
                .enumerate()
                .with_min_len(2)
                .with_max_len(8)
                .for_each(|(run, out)| {
                    let first = run * RUN;
                    let rhs = &rhs_t[first * k_in_blocks..(first + out.len()) * k_in_blocks];
                    T::vec_dot_rows_scaled(k, rhs, &lhs_b, d, out);
                }),
            None => dst_row
                .into_par_iter()
                .enumerate()
                .with_min_len(128)
                .with_max_len(512)
                .for_each(|(col_idx, dst)| {
                    let rhs_col = &rhs_t[col_idx * k_in_blocks..(col_idx + 1) * k_in_blocks];
                    *dst = dot(rhs_col, 0);
                }),
        }
        return Ok(());
    }

    // Troupe patch: several rows (a prompt being prefilled). Upstream looped over rows and, for
    // each, split the columns across threads: one fork-join per row (hundreds per matmul) and
    // the whole weight matrix streamed from memory once per row. Here each task takes a block
    // of columns, whose weights stay in cache, and runs every row through it.
    const COLS_PER_TASK: usize = 16;
    assert!(dst.len() >= m * n, "dst too small for ({m},{k},{n})");
    struct Dst(*mut f32);
    // SAFETY: every task writes a disjoint set of columns of `dst`.
    unsafe impl Sync for Dst {}
    let out = Dst(dst.as_mut_ptr());
    let out = &out;
    (0..n.div_ceil(COLS_PER_TASK))
        .into_par_iter()
        .for_each(|block| {
            let cols = block * COLS_PER_TASK..((block + 1) * COLS_PER_TASK).min(n);
            let row = |r: usize| &lhs_b[r * k_in_blocks..(r + 1) * k_in_blocks];
            let mut row_idx = 0;
            let rhs_col = |c: usize| &rhs_t[c * k_in_blocks..(c + 1) * k_in_blocks];
            let put = |row_idx: usize, col_idx: usize, values: &[f32]| {
                for (i, &value) in values.iter().enumerate() {
                    // SAFETY: as below.
                    unsafe { *out.0.add((row_idx + i) * n + col_idx) = value };
                }
            };
            if let Some(p) = &packed {
                // Eight rows (two packed groups) by two columns at a time: each weight block
                // is unpacked once for eight rows, each packed block loaded once for two
                // columns; then the last group of four, if any.
                let group = |r: usize| &p[(r / 4) * k_in_blocks..(r / 4 + 1) * k_in_blocks];
                let pairs = || {
                    cols.clone().step_by(2).map(|c| {
                        let next = (c + 1).min(cols.end - 1);
                        (c, next, [rhs_col(c), rhs_col(next)])
                    })
                };
                while row_idx + 8 <= m {
                    for (c, next, pair) in pairs() {
                        let values = T::vec_dot_packed(pair, [group(row_idx), group(row_idx + 4)]);
                        put(row_idx, c, values[0].as_flattened());
                        put(row_idx, next, values[1].as_flattened());
                    }
                    row_idx += 8;
                }
                if row_idx + 4 <= m {
                    for (c, next, pair) in pairs() {
                        let values = T::vec_dot_packed(pair, [group(row_idx)]);
                        put(row_idx, c, values[0].as_flattened());
                        put(row_idx, next, values[1].as_flattened());
                    }
                    row_idx += 4;
                }
            }
            // Otherwise four rows at a time: each weight block is unpacked once for four
            // activation rows.
            while row_idx + 4 <= m {
                let rows = [
                    row(row_idx),
                    row(row_idx + 1),
                    row(row_idx + 2),
                    row(row_idx + 3),
                ];
                let scales = lhs_d.as_ref().map(|d| {
                    let at = |r: usize| &d[r * k_in_blocks..(r + 1) * k_in_blocks];
                    [
                        at(row_idx),
                        at(row_idx + 1),
                        at(row_idx + 2),
                        at(row_idx + 3),
                    ]
                });
                for col_idx in cols.clone() {
                    let values = match scales {
                        Some(dys) => T::vec_dot_x4_scaled(k, rhs_col(col_idx), rows, dys),
                        None => T::vec_dot_x4(k, rhs_col(col_idx), rows),
                    };
                    put(row_idx, col_idx, &values);
                }
                row_idx += 4;
            }
            for row_idx in row_idx..m {
                for col_idx in cols.clone() {
                    let rhs_col = &rhs_t[col_idx * k_in_blocks..(col_idx + 1) * k_in_blocks];
                    let value = dot(rhs_col, row_idx);
                    // SAFETY: in bounds (row < m, col < n, dst is m * n), and no other task
                    // writes this column.
                    unsafe { *out.0.add(row_idx * n + col_idx) = value };
                }
            }
        });
    Ok(())
}

pub fn matmul_f16<T: GgmlType>(
    mkn: (usize, usize, usize),
    lhs: &[f16],
    rhs_t: &[T],
    dst: &mut [f16],
) -> Result<()> {
    let (m, k, n) = mkn;
    if m * k != lhs.len() {
        crate::bail!("unexpected lhs length {} {mkn:?}", lhs.len());
    }

    let k_in_lhs_blocks = k.div_ceil(T::BLCK_SIZE);
    let k_in_rhs_blocks = k.div_ceil(T::VecDotType::BLCK_SIZE);
    let mut lhs_b = vec![T::VecDotType::zeros(); m * k_in_lhs_blocks];
    for row_idx in 0..m {
        let lhs_b = &mut lhs_b[row_idx * k_in_lhs_blocks..(row_idx + 1) * k_in_lhs_blocks];
        let lhs = &lhs[row_idx * k..(row_idx + 1) * k];
        let lhs_f32: Vec<_> = lhs.iter().map(|&x| x.to_f32()).collect();
        T::VecDotType::from_float(&lhs_f32, lhs_b);
    }
    let lhs_b = lhs_b.as_slice();

    for row_idx in 0..m {
        let lhs_row = &lhs_b[row_idx * k_in_lhs_blocks..(row_idx + 1) * k_in_lhs_blocks];
        let dst_row = &mut dst[row_idx * n..(row_idx + 1) * n];

        for (col_idx, dst) in dst_row.iter_mut().enumerate() {
            let rhs_col = &rhs_t[col_idx * k_in_rhs_blocks..(col_idx + 1) * k_in_rhs_blocks];
            let value = T::vec_dot(k, rhs_col, lhs_row);
            *dst = f16::from_f32(value);
        }
    }
    Ok(())
}

impl GgmlType for f32 {
    const DTYPE: GgmlDType = GgmlDType::F32;
    const BLCK_SIZE: usize = 1;
    const DIRECT_COPY: bool = true;
    type VecDotType = f32;

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(xs.len() >= n, "size mismatch xs {} < {n}", xs.len());
        debug_assert!(ys.len() >= n, "size mismatch ys {} < {n}", ys.len());
        let mut res = 0f32;
        unsafe { crate::cpu::vec_dot_f32(xs.as_ptr(), ys.as_ptr(), &mut res, n) };
        res
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        ys.copy_from_slice(xs);
    }

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        ys.copy_from_slice(xs);
    }

    fn direct_copy(xs: &[f32], ys: &mut [Self]) {
        Self::from_float(xs, ys)
    }
}

impl GgmlType for f16 {
    const DTYPE: GgmlDType = GgmlDType::F16;
    const BLCK_SIZE: usize = 1;
    const DIRECT_COPY: bool = true;
    type VecDotType = f16;

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(xs.len() >= n, "size mismatch xs {} < {n}", xs.len());
        debug_assert!(ys.len() >= n, "size mismatch ys {} < {n}", ys.len());
        let mut res = 0f32;
        unsafe { crate::cpu::vec_dot_f16(xs.as_ptr(), ys.as_ptr(), &mut res, n) };
        res
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        ys.convert_from_f32_slice(xs);
    }

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        xs.convert_to_f32_slice(ys);
    }

    fn direct_copy(xs: &[f32], ys: &mut [Self]) {
        Self::from_float(xs, ys)
    }
}

impl GgmlType for bf16 {
    const DTYPE: GgmlDType = GgmlDType::BF16;
    const BLCK_SIZE: usize = 1;
    const DIRECT_COPY: bool = true;
    type VecDotType = bf16;

    fn vec_dot(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        Self::vec_dot_unopt(n, xs, ys)
    }

    fn vec_dot_unopt(n: usize, xs: &[Self], ys: &[Self::VecDotType]) -> f32 {
        debug_assert!(xs.len() >= n, "size mismatch xs {} < {n}", xs.len());
        debug_assert!(ys.len() >= n, "size mismatch ys {} < {n}", ys.len());
        let mut res = 0f32;
        unsafe { crate::cpu::vec_dot_bf16(xs.as_ptr(), ys.as_ptr(), &mut res, n) };
        res
    }

    fn from_float(xs: &[f32], ys: &mut [Self]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        ys.convert_from_f32_slice(xs);
    }

    fn to_float(xs: &[Self], ys: &mut [f32]) {
        debug_assert_eq!(
            xs.len(),
            ys.len(),
            "size mismatch xs {} != ys {}",
            xs.len(),
            ys.len()
        );
        xs.convert_to_f32_slice(ys);
    }

    fn direct_copy(xs: &[f32], ys: &mut [Self]) {
        Self::from_float(xs, ys)
    }
}

macro_rules! verify_block_size {
    ( $block_type:ident ) => {
        const _: () =
            assert!($block_type::BLCK_SIZE == <$block_type as GgmlType>::VecDotType::BLCK_SIZE);
    };
}

macro_rules! verify_block_sizes {
    ( $( $block_type:ident ),* ) => {
        $(
            verify_block_size!($block_type);
        )*
    };
}

verify_block_sizes!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, BlockQ2K, BlockQ3K, BlockQ4K,
    BlockQ5K, BlockQ6K, BlockQ8K, f32, f16, bf16
);

// Troupe patch: the blocked prefill path of `matmul` gives exactly what the row-by-row loop it
// replaced gives (same vec_dot per element, so bit-identical), for shapes that are not multiples
// of the column block, and for several quantisation types.
#[cfg(test)]
mod troupe_matmul_tests {
    use super::*;

    fn reference<T: GgmlType>(
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        rhs_t: &[T],
    ) -> Vec<f32> {
        let kb = k.div_ceil(T::BLCK_SIZE);
        let mut lhs_b = vec![T::VecDotType::zeros(); m * kb];
        for r in 0..m {
            T::VecDotType::from_float(&lhs[r * k..(r + 1) * k], &mut lhs_b[r * kb..(r + 1) * kb]);
        }
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = T::vec_dot(
                    k,
                    &rhs_t[c * kb..(c + 1) * kb],
                    &lhs_b[r * kb..(r + 1) * kb],
                );
            }
        }
        out
    }

    fn check<T: GgmlType>(k: usize) {
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2001) as f32 / 1000.0 - 1.0
        };
        for (m, n) in [(1, 37), (2, 16), (7, 45), (33, 100)] {
            let lhs: Vec<f32> = (0..m * k).map(|_| rand()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rand()).collect();
            let mut rhs_t = vec![T::zeros(); n * k / T::BLCK_SIZE];
            T::from_float(&w, &mut rhs_t);
            let mut got = vec![0f32; m * n];
            matmul((m, k, n), &lhs, &rhs_t, &mut got).unwrap();
            assert_eq!(got, reference((m, k, n), &lhs, &rhs_t), "m={m} n={n} k={k}");
        }
    }

    #[test]
    fn blocked_matmul_matches_the_row_loop() {
        check::<BlockQ8_0>(64);
        check::<BlockQ4_0>(96);
        check::<BlockQ4_1>(96);
        check::<BlockQ5_0>(64);
        check::<BlockQ5_1>(64);
        check::<BlockQ4K>(256);
        check::<BlockQ6K>(512);
    }
}

// Troupe patch: every SIMD vec-dot kernel against the type's scalar reference (`vec_dot_unopt`),
// on random rows of several lengths. The sums are added in another order, so they agree to
// float rounding, not bit for bit.
#[cfg(test)]
mod troupe_simd_tests {
    use super::*;

    fn rows(k: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut seed = seed;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2001) as f32 / 1000.0 - 1.0
        };
        let w = (0..k).map(|_| rand() * 0.1).collect();
        // Activations with a few outliers, as real hidden states have.
        let x = (0..k)
            .map(|i| if i % 97 == 5 { rand() * 20.0 } else { rand() })
            .collect();
        (w, x)
    }

    pub(crate) fn check<T: GgmlType>(k: usize) {
        for seed in 1..20u64 {
            let (w, x) = rows(k, 0x9E3779B97F4A7C15 ^ seed);
            let mut wq = vec![T::zeros(); k / T::BLCK_SIZE];
            T::from_float(&w, &mut wq);
            let mut xq = vec![T::VecDotType::zeros(); k / T::VecDotType::BLCK_SIZE];
            T::VecDotType::from_float(&x, &mut xq);
            let fast = T::vec_dot(k, &wq, &xq);
            let slow = T::vec_dot_unopt(k, &wq, &xq);
            let scale: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (fast - slow).abs() <= 1e-5 * scale.max(1.0),
                "{:?} k={k}: simd {fast} vs scalar {slow}",
                T::DTYPE
            );
        }
    }

    // The AVX-512 VNNI one-row kernels give exactly what the AVX2 kernels give, the ends of the
    // i8 range included (where `vpmaddubsw` could saturate and `vpdpbusd` does not). It needs a
    // CPU with VNNI; elsewhere it says so and compares nothing.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vnni_kernels_match_the_avx2_ones_bit_for_bit() {
        use crate::quantized::{avx, best_cpu_kernels, CpuKernels};
        if best_cpu_kernels() != CpuKernels::Avx512Vnni {
            eprintln!("this CPU has no AVX-512 VNNI: nothing to compare");
            return;
        }
        for k in [32, 576, 1536] {
            for seed in 1..10u64 {
                let w = rows(k, seed).0;
                let mut w8 = vec![BlockQ8_0::zeros(); k / 32];
                BlockQ8_0::from_float(&w, &mut w8);
                let mut w4 = vec![BlockQ4_0::zeros(); k / 32];
                BlockQ4_0::from_float(&w, &mut w4);
                let mut xs: Vec<Vec<BlockQ8_0>> = (0..4)
                    .map(|r| {
                        let x = rows(k, seed * 31 + r).1;
                        let mut q = vec![BlockQ8_0::zeros(); k / 32];
                        BlockQ8_0::from_float(&x, &mut q);
                        q
                    })
                    .collect();
                if seed == 1 {
                    w8[0].qs = [-128; 32];
                    xs[0][0].qs = [-128; 32];
                    xs[1][0].qs = [127; 32];
                    xs[2][0].qs = [-127; 32];
                }
                for y in &xs {
                    // SAFETY: the CPU has the features (checked above).
                    unsafe {
                        assert_eq!(
                            avx::vec_dot_q8_0_q8_0(k, &w8, y).to_bits(),
                            avx::vec_dot_q8_0_q8_0_vnni(&w8, y).to_bits(),
                            "Q8_0, k={k} seed={seed}"
                        );
                        assert_eq!(
                            avx::vec_dot_q4_0_q8_0(k, &w4, y).to_bits(),
                            avx::vec_dot_q4_0_q8_0_vnni(&w4, y).to_bits(),
                            "Q4_0, k={k} seed={seed}"
                        );
                    }
                }
            }
        }
    }

    // The packed prefill kernels (AVX-512 VNNI: two weight rows against one or two packed groups
    // of four activation rows) give what the AVX2 four-row kernels give, bit for bit, for Q8_0
    // and Q4_0 weights, the ends of both ranges included: weights at -128 and 127, activations
    // at -127 and 127 (a quantised activation is never -128). It needs a CPU with VNNI;
    // elsewhere it says so and compares nothing.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn packed_kernels_match_the_four_row_ones_bit_for_bit() {
        use crate::quantized::{avx, best_cpu_kernels, CpuKernels};
        if best_cpu_kernels() != CpuKernels::Avx512Vnni {
            eprintln!("this CPU has no AVX-512 VNNI: nothing to compare");
            return;
        }
        let bits = |v: [f32; 4]| v.map(f32::to_bits);
        for k in [32, 576, 1536] {
            let kb = k / 32;
            for seed in 1..6u64 {
                let weights = |s: u64| {
                    let w = rows(k, s).0;
                    let mut w8 = vec![BlockQ8_0::zeros(); kb];
                    BlockQ8_0::from_float(&w, &mut w8);
                    let mut w4 = vec![BlockQ4_0::zeros(); kb];
                    BlockQ4_0::from_float(&w, &mut w4);
                    (w8, w4)
                };
                let (mut w8a, w4a) = weights(seed);
                let (mut w8b, w4b) = weights(seed + 100);
                w8a[0].qs = [-128; 32];
                w8b[kb - 1].qs = [127; 32];
                // Eight activation rows, quantised and packed as `matmul` does.
                let mut xs: Vec<BlockQ8_0> = (0..8)
                    .flat_map(|r| {
                        let x = rows(k, seed * 31 + r).1;
                        let mut q = vec![BlockQ8_0::zeros(); kb];
                        BlockQ8_0::from_float(&x, &mut q);
                        q
                    })
                    .collect();
                xs[0].qs = [-127; 32];
                xs[kb].qs = [127; 32];
                let ds = BlockQ8_0::activation_scales(&xs).unwrap();
                let packed = BlockQ8_0::pack_activations_x4(&xs, &ds, kb).unwrap();
                let group = |g: usize| &packed[g * kb..(g + 1) * kb];
                let row = |r: usize| &xs[r * kb..(r + 1) * kb];
                let rows4 = |g: usize| [row(4 * g), row(4 * g + 1), row(4 * g + 2), row(4 * g + 3)];
                // SAFETY: the CPU has the features (checked above).
                unsafe {
                    let one8 = avx::vec_dot_q8_0_q8_0_packed_vnni([&w8a, &w8b], [group(0)]);
                    let two8 =
                        avx::vec_dot_q8_0_q8_0_packed_vnni([&w8a, &w8b], [group(0), group(1)]);
                    let one4 = avx::vec_dot_q4_0_q8_0_packed_vnni([&w4a, &w4b], [group(0)]);
                    let two4 =
                        avx::vec_dot_q4_0_q8_0_packed_vnni([&w4a, &w4b], [group(0), group(1)]);
                    for (c, (w8, w4)) in [(&w8a, &w4a), (&w8b, &w4b)].into_iter().enumerate() {
                        for g in 0..2 {
                            let want8 = bits(avx::vec_dot_q8_0_q8_0_x4(k, w8, rows4(g)));
                            let want4 = bits(avx::vec_dot_q4_0_q8_0_x4(k, w4, rows4(g)));
                            assert_eq!(bits(two8[c][g]), want8, "Q8_0 k={k} seed={seed} c={c}");
                            assert_eq!(bits(two4[c][g]), want4, "Q4_0 k={k} seed={seed} c={c}");
                            if g == 0 {
                                assert_eq!(bits(one8[c][0]), want8);
                                assert_eq!(bits(one4[c][0]), want4);
                            }
                        }
                    }
                }
            }
        }
    }

    // The kernels that take the activation scales as f32 give what the plain ones give, bit for
    // bit: AVX2 always, the AVX-512 VNNI forms where the CPU has them.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn scaled_kernels_match_the_plain_ones_bit_for_bit() {
        use crate::quantized::{avx, best_cpu_kernels, CpuKernels};
        if best_cpu_kernels() < CpuKernels::Avx2 {
            eprintln!("this CPU has no AVX2: nothing to compare");
            return;
        }
        let vnni = best_cpu_kernels() == CpuKernels::Avx512Vnni;
        let bits = |v: [f32; 4]| v.map(f32::to_bits);
        for k in [32, 576, 1536] {
            for seed in 1..10u64 {
                let w = rows(k, seed).0;
                let mut w8 = vec![BlockQ8_0::zeros(); k / 32];
                BlockQ8_0::from_float(&w, &mut w8);
                let mut w4 = vec![BlockQ4_0::zeros(); k / 32];
                BlockQ4_0::from_float(&w, &mut w4);
                let xs: Vec<Vec<BlockQ8_0>> = (0..4)
                    .map(|r| {
                        let x = rows(k, seed * 31 + r).1;
                        let mut q = vec![BlockQ8_0::zeros(); k / 32];
                        BlockQ8_0::from_float(&x, &mut q);
                        q
                    })
                    .collect();
                let ds: Vec<Vec<f32>> = xs
                    .iter()
                    .map(|x| BlockQ8_0::activation_scales(x).unwrap())
                    .collect();
                let ys = [&xs[0][..], &xs[1][..], &xs[2][..], &xs[3][..]];
                let dys = [&ds[0][..], &ds[1][..], &ds[2][..], &ds[3][..]];
                // SAFETY: the CPU has AVX2 (checked above); the VNNI forms only where it has
                // them.
                unsafe {
                    let (p8, p4) = (
                        bits(avx::vec_dot_q8_0_q8_0_x4(k, &w8, ys)),
                        bits(avx::vec_dot_q4_0_q8_0_x4(k, &w4, ys)),
                    );
                    assert_eq!(bits(avx::vec_dot_q8_0_q8_0_x4_scaled(&w8, ys, dys)), p8);
                    assert_eq!(bits(avx::vec_dot_q4_0_q8_0_x4_scaled(&w4, ys, dys)), p4);
                    if vnni {
                        assert_eq!(
                            bits(avx::vec_dot_q8_0_q8_0_x4_scaled_vnni(&w8, ys, dys)),
                            p8
                        );
                        assert_eq!(
                            bits(avx::vec_dot_q4_0_q8_0_x4_scaled_vnni(&w4, ys, dys)),
                            p4
                        );
                    }
                    for r in 0..4 {
                        let one8 = avx::vec_dot_q8_0_q8_0(k, &w8, ys[r]).to_bits();
                        let one4 = avx::vec_dot_q4_0_q8_0(k, &w4, ys[r]).to_bits();
                        let s8 = avx::vec_dot_q8_0_q8_0_scaled(&w8, ys[r], dys[r]);
                        let s4 = avx::vec_dot_q4_0_q8_0_scaled(&w4, ys[r], dys[r]);
                        assert_eq!((s8.to_bits(), s4.to_bits()), (one8, one4));
                        if vnni {
                            let s8 = avx::vec_dot_q8_0_q8_0_scaled_vnni(&w8, ys[r], dys[r]);
                            let s4 = avx::vec_dot_q4_0_q8_0_scaled_vnni(&w4, ys[r], dys[r]);
                            assert_eq!((s8.to_bits(), s4.to_bits()), (one8, one4));
                        }
                    }
                }
            }
        }
    }

    // The decode kernels over runs of weight rows give each row what the one-row scaled kernel
    // gives, bit for bit, AVX2 always and the AVX-512 VNNI forms where the CPU has them: Q8_0
    // weights at -128 and 127, Q4_0 nibbles at 0 and 15, activations at -127 and 127 (a
    // quantised activation is never -128; the Q4_0 form's offset sums rely on that, as the sign
    // trick does).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn row_run_kernels_match_the_one_row_ones_bit_for_bit() {
        use crate::quantized::{avx, best_cpu_kernels, CpuKernels};
        if best_cpu_kernels() < CpuKernels::Avx2 {
            eprintln!("this CPU has no AVX2: nothing to compare");
            return;
        }
        let vnni = best_cpu_kernels() == CpuKernels::Avx512Vnni;
        for k in [32, 96, 896, 1536] {
            let kb = k / 32;
            for (seed, rows_n) in [(1u64, 1usize), (2, 7), (3, 64)] {
                let w: Vec<f32> = (0..rows_n as u64)
                    .flat_map(|r| rows(k, seed * 97 + r).0)
                    .collect();
                let mut w8 = vec![BlockQ8_0::zeros(); rows_n * kb];
                BlockQ8_0::from_float(&w, &mut w8);
                let mut w4 = vec![BlockQ4_0::zeros(); rows_n * kb];
                BlockQ4_0::from_float(&w, &mut w4);
                w8[0].qs = [-128; 32];
                w8[rows_n * kb - 1].qs = [127; 32];
                w4[0].qs = [0; 16];
                w4[rows_n * kb - 1].qs = [0xff; 16];
                let mut y = vec![BlockQ8_0::zeros(); kb];
                BlockQ8_0::from_float(&rows(k, seed).1, &mut y);
                y[0].qs = [-127; 32];
                y[kb - 1].qs[..16].copy_from_slice(&[127; 16]);
                let dy = BlockQ8_0::activation_scales(&y).unwrap();
                let mut out8 = vec![0f32; rows_n];
                let mut out4 = vec![0f32; rows_n];
                // SAFETY: the CPU has AVX2 (checked above); the VNNI forms only where it has
                // them.
                unsafe {
                    let one8: Vec<u32> = w8
                        .chunks(kb)
                        .map(|r| avx::vec_dot_q8_0_q8_0_scaled(r, &y, &dy).to_bits())
                        .collect();
                    let one4: Vec<u32> = w4
                        .chunks(kb)
                        .map(|r| avx::vec_dot_q4_0_q8_0_scaled(r, &y, &dy).to_bits())
                        .collect();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    avx::vec_dot_q8_0_q8_0_rows(&w8, &y, &dy, &mut out8);
                    avx::vec_dot_q4_0_q8_0_rows(&w4, &y, &dy, &mut out4);
                    assert_eq!(bits(&out8), one8, "Q8_0 AVX2 k={k} rows={rows_n}");
                    assert_eq!(bits(&out4), one4, "Q4_0 AVX2 k={k} rows={rows_n}");
                    if vnni {
                        avx::vec_dot_q8_0_q8_0_rows_vnni(&w8, &y, &dy, &mut out8);
                        avx::vec_dot_q4_0_q8_0_rows_vnni(&w4, &y, &dy, &mut out4);
                        assert_eq!(bits(&out8), one8, "Q8_0 VNNI k={k} rows={rows_n}");
                        assert_eq!(bits(&out4), one4, "Q4_0 VNNI k={k} rows={rows_n}");
                    }
                }
            }
        }
    }

    // The AVX2 quantisation of activations gives the scalar code's blocks, bit for bit: random
    // rows with outliers, values exactly halfway between two steps (rounded away from zero),
    // just under a half, zeros, and an all-zero block.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_q8_0_quantisation_matches_the_scalar_code() {
        let scalar = |xs: &[f32]| {
            let mut out = vec![BlockQ8_0::zeros(); xs.len() / 32];
            for (b, x) in out.iter_mut().zip(xs.chunks(32)) {
                // The scalar loop, as `from_float` runs it without AVX2.
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0f32 { 1. / d } else { 0. };
                b.d = f16::from_f32(d);
                for (q, &v) in b.qs.iter_mut().zip(x) {
                    *q = f32::round(v * id) as i8;
                }
            }
            out
        };
        let mut xs: Vec<f32> = (0..20).flat_map(|s| rows(1536, s).1).collect();
        // amax 127 gives id 1: exact halves and near-halves, both signs.
        let edge = [
            127.0,
            2.5,
            -2.5,
            0.5,
            -0.5,
            126.5,
            -126.5,
            0.49999997,
            -0.49999997,
            3.5,
        ];
        xs.extend((0..32).map(|i| edge[i % edge.len()]));
        xs.extend([0f32; 32]);
        use crate::quantized::{best_cpu_kernels, CpuKernels};
        if best_cpu_kernels() < CpuKernels::Avx2 {
            eprintln!("this CPU has no AVX2: nothing to compare");
            return;
        }
        let mut fast = vec![BlockQ8_0::zeros(); xs.len() / 32];
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { crate::quantized::avx::quantize_row_q8_0(&xs, &mut fast) };
        assert_eq!(fast, scalar(&xs));
    }

    #[test]
    fn simd_vec_dots_match_the_scalar_reference() {
        for k in [256, 576, 1536] {
            check::<BlockQ4_0>(k);
            check::<BlockQ4_1>(k);
            check::<BlockQ5_0>(k);
            check::<BlockQ5_1>(k);
            check::<BlockQ8_0>(k);
            check::<BlockQ4K>(k.div_ceil(256) * 256);
            check::<BlockQ6K>(k.div_ceil(256) * 256);
        }
    }
}
