//! Troupe patch: Q4_0, Q4_1, Q5_0 and Q8_0 weight matrices repacked at load into groups of eight
//! rows, for the quantised matmuls (decode and prefill) on x86-64 CPUs with AVX2.
//!
//! Why: with one row per kernel pass each weight block costs, per row, an unpacking, an integer
//! dot spread over eight lanes, a conversion and three float operations: on one core that, not
//! the memory, set a decode step's pace. Here block `i` of eight rows lies in one 144-byte
//! (Q4_0), 160-byte (Q4_1), 176-byte (Q5_0) or 272-byte (Q8_0) piece, four bytes of each row side by side, so
//! one `vpdpbusd` (AVX2: `vpmaddubsw`) against four activation bytes broadcast to every lane
//! adds four products to each of the eight rows at once. The eight rows' exact integer dots end
//! in one register, and the float work (one conversion, one multiply, one fused multiply-add)
//! is done once per eight rows. llama.cpp repacks Q4_0 in the same spirit
//! (`q4_0_8x8`).
//!
//! Contract:
//! - [`Rows8`] is a [`QuantizedType`] of the dtype it was packed from, holding the same number
//!   of bytes. [`QuantizedType::data`] and `dequantize` give the file's layout back, so whatever
//!   reads the tensor's blocks sees the GGUF's blocks.
//! - A matmul gives, for each weight row and activation row, `sum over blocks of (exact
//!   integer dot) × (weight scale × activation scale)`, added in block order with one fused
//!   multiply-add per block: ggml's reference formula. A type with block minimums (Q4_1) adds
//!   `minimum × (activation scale × activation sum)` after each block's product, by a second. The one-row kernels (`avx::vec_dot_*_rows`) add eight
//!   partial sums per block instead, so the two differ by float rounding; the engine A/B test
//!   in Troupe's `tests/engine.rs` bounds what that does to the model's perplexity.
//! - A prefill matmul (m > 1) runs four activation rows at a time through each group, each
//!   weight block unpacked once for the four, and gives every row what a decode step gives it.
//! - Every SIMD kernel gives [`dot8_reference`]'s bits exactly (tests below); the scalar kernel
//!   level runs that reference.
//! - Tensors are repacked only on x86-64 with SIMD kernels on, only 2-D ones whose row count is
//!   a multiple of eight, and not after [`set_repack_weights`]`(false)`.
use super::k_quants::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, GgmlType, QK4_0, QK4_1, QK5_0, QK8_0,
};
use super::{GgmlDType, QuantizedType};
use crate::{CpuStorage, Result};
use half::f16;
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows per group.
pub const ROWS: usize = 8;

static REPACK: AtomicBool = AtomicBool::new(true);

/// Whether Q4_0 and Q8_0 tensors loaded from now on are repacked (the default), for
/// comparisons; tensors already loaded keep their form.
pub fn set_repack_weights(on: bool) {
    REPACK.store(on, Ordering::Relaxed);
}

thread_local! {
    static NOT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Troupe patch: runs `load` with repacking off on this thread only, for a tensor that is read
/// a row at a time rather than multiplied (an embedding table). Other threads, loading other
/// models meanwhile, keep repacking (a global switch here would race them).
pub fn without_repacking<T>(load: impl FnOnce() -> T) -> T {
    let before = NOT_HERE.with(|n| n.replace(true));
    let out = load();
    NOT_HERE.with(|n| n.set(before));
    out
}

/// Whether a tensor of `dims` loaded now would be repacked.
pub fn repacks(dims: &[usize]) -> bool {
    cfg!(target_arch = "x86_64")
        && REPACK.load(Ordering::Relaxed)
        && !NOT_HERE.with(|n| n.get())
        && super::simd_kernels_on()
        && dims.len() == 2
        && dims[0] > 0
        && dims[0].is_multiple_of(ROWS)
}

/// Block `i` of eight Q4_0 rows: their scales, then four chunks of 32 bytes, chunk `c` holding
/// bytes `4c..4c + 4` of each row's `qs` in row order (low nibbles: elements `4c..4c + 4`,
/// high nibbles: elements `16 + 4c..16 + 4c + 4`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0x8 {
    pub(crate) d: [f16; ROWS],
    pub(crate) qs: [u8; ROWS * QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0x8>() == ROWS * 18);

/// Block `i` of eight Q4_1 rows: their scales, their minimums, then their nibbles as
/// [`BlockQ4_0x8`] holds them. Kept as Q4_1 rather than widened to Q8_0: 20 bytes a row-block
/// instead of 34.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1x8 {
    pub(crate) d: [f16; ROWS],
    pub(crate) m: [f16; ROWS],
    pub(crate) qs: [u8; ROWS * QK4_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1x8>() == ROWS * 20);

/// Block `i` of eight Q5_0 rows: their scales, their fifth bits, then their nibbles as
/// [`BlockQ4_0x8`] holds them. `qh[m]` holds one bit per byte of nibble chunk `m` (the low
/// nibbles of chunk `c` at `m = c`, its high ones at `m = 4 + c`): bit `4r + j` of the
/// little-endian word is the fifth bit of row `r`'s element `4m + j`, so a kernel turns a word
/// into the 32 bytes' fifth bits with one mask (AVX-512) or one bit spread (AVX2). Kept as 5-bit
/// values rather than widened to Q8_0: 22 bytes a row-block instead of 34.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0x8 {
    pub(crate) d: [f16; ROWS],
    pub(crate) qh: [[u8; 4]; 8],
    pub(crate) qs: [u8; ROWS * QK5_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0x8>() == ROWS * 22);

/// Block `i` of eight Q8_0 rows: their scales, then eight chunks of 32 bytes, chunk `c` holding
/// elements `4c..4c + 4` of each row in row order.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0x8 {
    pub(crate) d: [f16; ROWS],
    pub(crate) qs: [i8; ROWS * QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0x8>() == ROWS * 34);

/// A block type that has an eight-row form. Its matmuls quantise the activations to Q8_0
/// whatever the type's own `VecDotType`.
pub trait Repack: GgmlType + 'static {
    type X8: Copy + Send + Sync + 'static;
    /// One block index of eight rows, interleaved.
    fn pack(rows: [&Self; ROWS]) -> Self::X8;
    /// Row `r`'s block, as the file had it.
    fn unpack(x: &Self::X8, r: usize) -> Self;
    /// Row `r`'s weight scale.
    fn scale(x: &Self::X8, r: usize) -> f16;
    /// Row `r`'s block minimum, for a type whose values are scale × quant + minimum.
    fn min(_x: &Self::X8, _r: usize) -> Option<f16> {
        None
    }
    /// The exact integer dot of row `r`'s block with `y`'s.
    fn int_dot(x: &Self::X8, r: usize, y: &BlockQ8_0) -> i32;
    /// `dot8_reference` of consecutive groups (`out.len() / 8` groups of `ys.len()` blocks
    /// each, from the start of `xs`) into `out`, with the kernels of the level in use.
    /// `dys` are the activation scales as f32, `sums` the sums of each block's 32 activations.
    fn dot8_rows(xs: &[Self::X8], ys: &[BlockQ8_0], dys: &[f32], sums: &[i32], out: &mut [f32]);
    /// One group of eight rows (`xs`, all its blocks) against four activation rows: for each,
    /// what `dot8_rows` gives it, bit for bit. A prefill's kernel.
    fn dot8_x4(
        xs: &[Self::X8],
        ys: [&[BlockQ8_0]; 4],
        dys: [&[f32]; 4],
        sums: [&[i32]; 4],
    ) -> [[f32; ROWS]; 4];
}

/// Eight rows against one activation row: per row, the blocks' exact integer dots times
/// (weight scale × activation scale), added in block order by fused multiply-adds, each
/// followed, for a type with minimums, by minimum × (activation scale × activation sum). What
/// every kernel of this module gives, bit for bit.
pub fn dot8_reference<T: Repack>(xs: &[T::X8], ys: &[BlockQ8_0], dys: &[f32]) -> [f32; ROWS] {
    let mut acc = [0f32; ROWS];
    for ((x, y), &dy) in xs.iter().zip(ys).zip(dys) {
        let sum: i32 = y.qs.iter().map(|&q| q as i32).sum();
        for (r, acc) in acc.iter_mut().enumerate() {
            let d = T::scale(x, r).to_f32() * dy;
            *acc = (T::int_dot(x, r, y) as f32).mul_add(d, *acc);
            if let Some(m) = T::min(x, r) {
                *acc = m.to_f32().mul_add(dy * sum as f32, *acc);
            }
        }
    }
    acc
}

fn dot8_rows_reference<T: Repack>(xs: &[T::X8], ys: &[BlockQ8_0], dys: &[f32], out: &mut [f32]) {
    let nb = ys.len();
    for (g, out) in out.chunks_exact_mut(ROWS).enumerate() {
        out.copy_from_slice(&dot8_reference::<T>(&xs[g * nb..(g + 1) * nb], ys, dys));
    }
}

impl Repack for BlockQ4_0 {
    type X8 = BlockQ4_0x8;

    fn pack(rows: [&Self; ROWS]) -> BlockQ4_0x8 {
        let mut x = BlockQ4_0x8 {
            d: rows.map(|b| b.d),
            qs: [0; ROWS * QK4_0 / 2],
        };
        for c in 0..4 {
            for (r, b) in rows.iter().enumerate() {
                let at = c * 32 + r * 4;
                x.qs[at..at + 4].copy_from_slice(&b.qs[c * 4..c * 4 + 4]);
            }
        }
        x
    }

    fn unpack(x: &BlockQ4_0x8, r: usize) -> Self {
        let mut qs = [0u8; QK4_0 / 2];
        for c in 0..4 {
            let at = c * 32 + r * 4;
            qs[c * 4..c * 4 + 4].copy_from_slice(&x.qs[at..at + 4]);
        }
        BlockQ4_0 { d: x.d[r], qs }
    }

    fn scale(x: &BlockQ4_0x8, r: usize) -> f16 {
        x.d[r]
    }

    fn int_dot(x: &BlockQ4_0x8, r: usize, y: &BlockQ8_0) -> i32 {
        let b = Self::unpack(x, r);
        (0..QK4_0 / 2)
            .map(|j| {
                let lo = (b.qs[j] & 0x0F) as i32 - 8;
                let hi = (b.qs[j] >> 4) as i32 - 8;
                lo * y.qs[j] as i32 + hi * y.qs[j + QK4_0 / 2] as i32
            })
            .sum()
    }

    fn dot8_rows(xs: &[BlockQ4_0x8], ys: &[BlockQ8_0], dys: &[f32], sums: &[i32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q4_0x8_q8_0_vnni(xs, ys, dys, sums, out);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q4_0x8_q8_0(xs, ys, dys, sums, out);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        dot8_rows_reference::<Self>(xs, ys, dys, out)
    }

    fn dot8_x4(
        xs: &[BlockQ4_0x8],
        ys: [&[BlockQ8_0]; 4],
        dys: [&[f32]; 4],
        sums: [&[i32]; 4],
    ) -> [[f32; ROWS]; 4] {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q4_0x8_q8_0_x4_vnni(xs, ys, dys, sums);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q4_0x8_q8_0_x4(xs, ys, dys, sums);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        std::array::from_fn(|a| dot8_reference::<Self>(xs, ys[a], dys[a]))
    }
}

impl Repack for BlockQ4_1 {
    type X8 = BlockQ4_1x8;

    fn pack(rows: [&Self; ROWS]) -> BlockQ4_1x8 {
        let mut x = BlockQ4_1x8 {
            d: rows.map(|b| b.d),
            m: rows.map(|b| b.m),
            qs: [0; ROWS * QK4_1 / 2],
        };
        for c in 0..4 {
            for (r, b) in rows.iter().enumerate() {
                let at = c * 32 + r * 4;
                x.qs[at..at + 4].copy_from_slice(&b.qs[c * 4..c * 4 + 4]);
            }
        }
        x
    }

    fn unpack(x: &BlockQ4_1x8, r: usize) -> Self {
        let mut qs = [0u8; QK4_1 / 2];
        for c in 0..4 {
            let at = c * 32 + r * 4;
            qs[c * 4..c * 4 + 4].copy_from_slice(&x.qs[at..at + 4]);
        }
        BlockQ4_1 {
            d: x.d[r],
            m: x.m[r],
            qs,
        }
    }

    fn scale(x: &BlockQ4_1x8, r: usize) -> f16 {
        x.d[r]
    }

    fn min(x: &BlockQ4_1x8, r: usize) -> Option<f16> {
        Some(x.m[r])
    }

    fn int_dot(x: &BlockQ4_1x8, r: usize, y: &BlockQ8_0) -> i32 {
        let b = Self::unpack(x, r);
        (0..QK4_1 / 2)
            .map(|j| {
                let lo = (b.qs[j] & 0x0F) as i32;
                let hi = (b.qs[j] >> 4) as i32;
                lo * y.qs[j] as i32 + hi * y.qs[j + QK4_1 / 2] as i32
            })
            .sum()
    }

    fn dot8_rows(xs: &[BlockQ4_1x8], ys: &[BlockQ8_0], dys: &[f32], sums: &[i32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q4_1x8_q8_0_vnni(xs, ys, dys, sums, out);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q4_1x8_q8_0(xs, ys, dys, sums, out);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        dot8_rows_reference::<Self>(xs, ys, dys, out)
    }

    fn dot8_x4(
        xs: &[BlockQ4_1x8],
        ys: [&[BlockQ8_0]; 4],
        dys: [&[f32]; 4],
        sums: [&[i32]; 4],
    ) -> [[f32; ROWS]; 4] {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q4_1x8_q8_0_x4_vnni(xs, ys, dys, sums);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q4_1x8_q8_0_x4(xs, ys, dys, sums);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        std::array::from_fn(|a| dot8_reference::<Self>(xs, ys[a], dys[a]))
    }
}

impl Repack for BlockQ5_0 {
    type X8 = BlockQ5_0x8;

    fn pack(rows: [&Self; ROWS]) -> BlockQ5_0x8 {
        let mut x = BlockQ5_0x8 {
            d: rows.map(|b| b.d),
            qh: [[0; 4]; 8],
            qs: [0; ROWS * QK5_0 / 2],
        };
        for c in 0..4 {
            for (r, b) in rows.iter().enumerate() {
                let at = c * 32 + r * 4;
                x.qs[at..at + 4].copy_from_slice(&b.qs[c * 4..c * 4 + 4]);
            }
        }
        for (m, qh) in x.qh.iter_mut().enumerate() {
            let mut word = 0u32;
            for (r, b) in rows.iter().enumerate() {
                word |= ((u32::from_le_bytes(b.qh) >> (4 * m)) & 0xF) << (4 * r);
            }
            *qh = word.to_le_bytes();
        }
        x
    }

    fn unpack(x: &BlockQ5_0x8, r: usize) -> Self {
        let mut qs = [0u8; QK5_0 / 2];
        for c in 0..4 {
            let at = c * 32 + r * 4;
            qs[c * 4..c * 4 + 4].copy_from_slice(&x.qs[at..at + 4]);
        }
        let mut qh = 0u32;
        for (m, word) in x.qh.iter().enumerate() {
            qh |= ((u32::from_le_bytes(*word) >> (4 * r)) & 0xF) << (4 * m);
        }
        BlockQ5_0 {
            d: x.d[r],
            qh: qh.to_le_bytes(),
            qs,
        }
    }

    fn scale(x: &BlockQ5_0x8, r: usize) -> f16 {
        x.d[r]
    }

    fn int_dot(x: &BlockQ5_0x8, r: usize, y: &BlockQ8_0) -> i32 {
        let b = Self::unpack(x, r);
        let qh = u32::from_le_bytes(b.qh);
        (0..QK5_0 / 2)
            .map(|j| {
                let lo = ((b.qs[j] & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32) - 16;
                let hi = ((b.qs[j] >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32) - 16;
                lo * y.qs[j] as i32 + hi * y.qs[j + QK5_0 / 2] as i32
            })
            .sum()
    }

    fn dot8_rows(xs: &[BlockQ5_0x8], ys: &[BlockQ8_0], dys: &[f32], sums: &[i32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q5_0x8_q8_0_vnni(xs, ys, dys, sums, out);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q5_0x8_q8_0(xs, ys, dys, sums, out);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        dot8_rows_reference::<Self>(xs, ys, dys, out)
    }

    fn dot8_x4(
        xs: &[BlockQ5_0x8],
        ys: [&[BlockQ8_0]; 4],
        dys: [&[f32]; 4],
        sums: [&[i32]; 4],
    ) -> [[f32; ROWS]; 4] {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q5_0x8_q8_0_x4_vnni(xs, ys, dys, sums);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q5_0x8_q8_0_x4(xs, ys, dys, sums);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        std::array::from_fn(|a| dot8_reference::<Self>(xs, ys[a], dys[a]))
    }
}

impl Repack for BlockQ8_0 {
    type X8 = BlockQ8_0x8;

    fn pack(rows: [&Self; ROWS]) -> BlockQ8_0x8 {
        let mut x = BlockQ8_0x8 {
            d: rows.map(|b| b.d),
            qs: [0; ROWS * QK8_0],
        };
        for c in 0..8 {
            for (r, b) in rows.iter().enumerate() {
                let at = c * 32 + r * 4;
                x.qs[at..at + 4].copy_from_slice(&b.qs[c * 4..c * 4 + 4]);
            }
        }
        x
    }

    fn unpack(x: &BlockQ8_0x8, r: usize) -> Self {
        let mut qs = [0i8; QK8_0];
        for c in 0..8 {
            let at = c * 32 + r * 4;
            qs[c * 4..c * 4 + 4].copy_from_slice(&x.qs[at..at + 4]);
        }
        BlockQ8_0 { d: x.d[r], qs }
    }

    fn scale(x: &BlockQ8_0x8, r: usize) -> f16 {
        x.d[r]
    }

    fn int_dot(x: &BlockQ8_0x8, r: usize, y: &BlockQ8_0) -> i32 {
        let b = Self::unpack(x, r);
        b.qs.iter()
            .zip(&y.qs)
            .map(|(&w, &a)| w as i32 * a as i32)
            .sum()
    }

    fn dot8_rows(xs: &[BlockQ8_0x8], ys: &[BlockQ8_0], dys: &[f32], sums: &[i32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q8_0x8_q8_0_vnni(xs, ys, dys, sums, out);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q8_0x8_q8_0(xs, ys, dys, sums, out);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        dot8_rows_reference::<Self>(xs, ys, dys, out)
    }

    fn dot8_x4(
        xs: &[BlockQ8_0x8],
        ys: [&[BlockQ8_0]; 4],
        dys: [&[f32]; 4],
        sums: [&[i32]; 4],
    ) -> [[f32; ROWS]; 4] {
        #[cfg(target_arch = "x86_64")]
        match super::cpu_kernels() {
            // SAFETY: the level is Avx512Vnni only where the CPU has those features.
            super::CpuKernels::Avx512Vnni => unsafe {
                return super::avx::vec_dot_q8_0x8_q8_0_x4_vnni(xs, ys, dys, sums);
            },
            // SAFETY: the level is Avx2 only where the CPU has AVX, AVX2, FMA and F16C.
            super::CpuKernels::Avx2 => unsafe {
                return super::avx::vec_dot_q8_0x8_q8_0_x4(xs, ys, dys, sums);
            },
            super::CpuKernels::Scalar => {}
        }
        let _ = sums;
        std::array::from_fn(|a| dot8_reference::<Self>(xs, ys[a], dys[a]))
    }
}

/// A weight matrix of `T` blocks repacked into groups of eight rows (group `g`'s block `i` at
/// `groups[g * k_in_blocks + i]`).
pub struct Rows8<T: Repack> {
    groups: Vec<T::X8>,
    k_in_blocks: usize,
}

impl<T: Repack> Rows8<T> {
    /// `blocks` as rows of `k_in_blocks` blocks, repacked; their row count must be a multiple
    /// of eight.
    pub fn pack(blocks: &[T], k_in_blocks: usize) -> Self {
        assert!(k_in_blocks > 0 && blocks.len().is_multiple_of(ROWS * k_in_blocks));
        // Indexed, so rayon writes each piece in place (no per-task vectors to concatenate).
        let groups = (0..blocks.len() / ROWS)
            .into_par_iter()
            .with_min_len(1024)
            .map(|j| {
                let (g, i) = (j / k_in_blocks, j % k_in_blocks);
                T::pack(std::array::from_fn(|r| {
                    &blocks[(g * ROWS + r) * k_in_blocks + i]
                }))
            })
            .collect();
        Self {
            groups,
            k_in_blocks,
        }
    }

    fn rows(&self) -> usize {
        self.groups.len() / self.k_in_blocks * ROWS
    }

    /// The blocks as the file had them.
    fn unpack_all(&self) -> Vec<T> {
        let kb = self.k_in_blocks;
        let mut all = Vec::with_capacity(self.groups.len() * ROWS);
        for group in self.groups.chunks_exact(kb) {
            for r in 0..ROWS {
                all.extend(group.iter().map(|x| T::unpack(x, r)));
            }
        }
        all
    }
}

impl<T: Repack> QuantizedType for Rows8<T> {
    fn dtype(&self) -> GgmlDType {
        T::DTYPE
    }

    fn matmul_t(
        &self,
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        dst: &mut [f32],
    ) -> Result<()> {
        let kb = self.k_in_blocks;
        if k.div_ceil(T::BLCK_SIZE) != kb || n != self.rows() || lhs.len() != m * k {
            crate::bail!(
                "matmul ({m},{k},{n}) against {} rows of {kb} blocks",
                self.rows()
            )
        }
        assert!(dst.len() >= m * n, "dst too small for ({m},{k},{n})");
        let acts = quantise(m, k, lhs);
        let groups = |g: std::ops::Range<usize>| &self.groups[g.start * kb..g.end * kb];
        if m == 1 {
            // A decode step: runs of eight groups per kernel call, two to eight runs per task.
            const RUN: usize = 8 * ROWS;
            dst[..n]
                .par_chunks_mut(RUN)
                .enumerate()
                .with_min_len(2)
                .with_max_len(8)
                .for_each(|(run, out)| {
                    let first = run * RUN / ROWS;
                    let xs = groups(first..first + out.len() / ROWS);
                    T::dot8_rows(xs, &acts.ys, &acts.dys, &acts.sums, out);
                });
            return Ok(());
        }
        // A prefill: each task takes two groups (16 weight rows, which stay in cache) and runs
        // every activation row through them, four at a time.
        const GROUPS_PER_TASK: usize = 2;
        struct Dst(*mut f32);
        // SAFETY: every task writes a disjoint set of columns of `dst`.
        unsafe impl Sync for Dst {}
        let out = Dst(dst.as_mut_ptr());
        let out = &out;
        let n_groups = n / ROWS;
        (0..n_groups.div_ceil(GROUPS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                let first = task * GROUPS_PER_TASK;
                let own = first..(first + GROUPS_PER_TASK).min(n_groups);
                let put = |r: usize, g: usize, values: &[f32; ROWS]| {
                    // SAFETY: in bounds (r < m, (g + 1) * 8 <= n, dst holds m * n), and no
                    // other task writes these columns.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            values.as_ptr(),
                            out.0.add(r * n + g * ROWS),
                            ROWS,
                        )
                    }
                };
                let mut r = 0;
                while r + 4 <= m {
                    let rows: [usize; 4] = std::array::from_fn(|a| r + a);
                    for g in own.clone() {
                        let values = T::dot8_x4(
                            groups(g..g + 1),
                            rows.map(|r| acts.ys(r)),
                            rows.map(|r| acts.dys(r)),
                            rows.map(|r| acts.sums(r)),
                        );
                        for (a, values) in values.iter().enumerate() {
                            put(r + a, g, values);
                        }
                    }
                    r += 4;
                }
                for r in r..m {
                    for g in own.clone() {
                        let mut values = [0f32; ROWS];
                        let xs = groups(g..g + 1);
                        T::dot8_rows(xs, acts.ys(r), acts.dys(r), acts.sums(r), &mut values);
                        put(r, g, &values);
                    }
                }
            });
        Ok(())
    }

    fn matmul_t_f16(&self, mkn: (usize, usize, usize), lhs: &[f16], dst: &mut [f16]) -> Result<()> {
        // Not a path Troupe runs (its CPU activations are f32): correct, not fast.
        super::k_quants::matmul_f16(mkn, lhs, &self.unpack_all(), dst)
    }

    fn dequantize(&self, elem_count: usize) -> Result<CpuStorage> {
        let mut ys = vec![0.0f32; elem_count];
        T::to_float(&self.unpack_all(), &mut ys);
        Ok(CpuStorage::F32(ys))
    }

    fn storage_size_in_bytes(&self) -> usize {
        self.groups.len() * std::mem::size_of::<T::X8>()
    }

    /// The repacked bytes; `data` gives the file's layout.
    fn as_ptr(&self) -> *const u8 {
        self.groups.as_ptr() as *const u8
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let blocks = self.unpack_all();
        // SAFETY: the blocks are plain `repr(C)` data with no padding (size asserts in
        // `k_quants`), and the Vec is dropped only after the bytes are copied out of it.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                blocks.as_ptr() as *const u8,
                blocks.len() * std::mem::size_of::<T>(),
            )
        };
        Cow::Owned(bytes.to_vec())
    }

    fn block_size(&self) -> usize {
        T::BLCK_SIZE
    }

    fn from_float(&mut self, xs: &[f32]) {
        let mut blocks = self.unpack_all();
        T::from_float(xs, &mut blocks);
        *self = Self::pack(&blocks, self.k_in_blocks);
    }

    fn from_float_imatrix(&mut self, xs: &[f32], imatrix_weights: &[f32], n_per_row: usize) {
        let mut blocks = self.unpack_all();
        T::from_float_imatrix(xs, &mut blocks, imatrix_weights, n_per_row);
        *self = Self::pack(&blocks, self.k_in_blocks);
    }

    fn size(&self) -> usize {
        self.storage_size_in_bytes()
    }

    /// Troupe patch: a row read out of its group, so a model whose output layer is its
    /// embedding table (tied) keeps one copy, repacked for the matmul and read a row per token.
    fn dequantize_row(&self, row: usize, row_len: usize, out: &mut [f32]) -> Result<()> {
        let kb = self.k_in_blocks;
        if row_len != kb * T::BLCK_SIZE || out.len() != row_len {
            crate::bail!("a row of {row_len} elements against rows of {kb} blocks")
        }
        if row >= self.rows() {
            crate::bail!("row {row} is outside the tensor")
        }
        let group = &self.groups[row / ROWS * kb..(row / ROWS + 1) * kb];
        for (x, out) in group.iter().zip(out.chunks_exact_mut(T::BLCK_SIZE)) {
            T::to_float(&[T::unpack(x, row % ROWS)], out);
        }
        Ok(())
    }
}

/// A matmul's activation rows quantised as `k_quants::matmul` quantises them (Q8_0, rows in
/// parallel), with each block's scale as f32 and the sum of its quants.
struct Quantised {
    k_in_blocks: usize,
    ys: Vec<BlockQ8_0>,
    dys: Vec<f32>,
    sums: Vec<i32>,
}

fn quantise(m: usize, k: usize, lhs: &[f32]) -> Quantised {
    let kb = k.div_ceil(QK8_0);
    let mut ys = vec![BlockQ8_0::zeros(); m * kb];
    ys.par_chunks_mut(kb)
        .zip(lhs.par_chunks(k))
        .with_min_len(16)
        .for_each(|(ys, xs)| BlockQ8_0::from_float(xs, ys));
    let dys = ys.iter().map(|y| y.d.to_f32()).collect();
    let sums = ys
        .iter()
        .map(|y| y.qs.iter().map(|&q| q as i32).sum())
        .collect();
    Quantised {
        k_in_blocks: kb,
        ys,
        dys,
        sums,
    }
}

impl Quantised {
    fn ys(&self, r: usize) -> &[BlockQ8_0] {
        &self.ys[r * self.k_in_blocks..(r + 1) * self.k_in_blocks]
    }
    fn dys(&self, r: usize) -> &[f32] {
        &self.dys[r * self.k_in_blocks..(r + 1) * self.k_in_blocks]
    }
    fn sums(&self, r: usize) -> &[i32] {
        &self.sums[r * self.k_in_blocks..(r + 1) * self.k_in_blocks]
    }
}

/// The CPU storage for `blocks` loaded as a tensor of `dims`: repacked where [`repacks`] says
/// so, the blocks as they are otherwise.
pub(crate) fn cpu_storage<T: Repack>(blocks: &[T], dims: &[usize]) -> Box<dyn QuantizedType> {
    if repacks(dims) {
        let k_in_blocks = blocks.len() / dims[0];
        if k_in_blocks > 0 && blocks.len() == dims[0] * k_in_blocks {
            return Box::new(Rows8::pack(blocks, k_in_blocks));
        }
    }
    Box::new(blocks.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantized::{best_cpu_kernels, CpuKernels};

    fn rand_fn(seed: u64) -> impl FnMut() -> f32 {
        let mut seed = seed;
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2001) as f32 / 1000.0 - 1.0
        }
    }

    fn weights<T: Repack>(rows: usize, k: usize, seed: u64) -> Vec<T> {
        let mut rand = rand_fn(seed);
        let w: Vec<f32> = (0..rows * k).map(|_| rand() * 0.1).collect();
        let mut blocks = vec![T::zeros(); rows * k / 32];
        T::from_float(&w, &mut blocks);
        blocks
    }

    fn activations(k: usize, seed: u64) -> Vec<f32> {
        let mut rand = rand_fn(seed);
        // A few outliers, as real hidden states have.
        (0..k)
            .map(|i| if i % 97 == 5 { rand() * 20.0 } else { rand() })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn troupe_packing_round_trips() {
        let q4 = weights::<BlockQ4_0>(16, 96, 1);
        let q8 = weights::<BlockQ8_0>(16, 96, 2);
        let q5 = weights::<BlockQ5_0>(16, 96, 3);
        let q41 = weights::<BlockQ4_1>(16, 96, 4);
        let p41 = Rows8::pack(&q41, 3);
        assert_eq!(p41.unpack_all(), q41);
        assert_eq!(p41.storage_size_in_bytes(), q41.len() * 20);
        let p4 = Rows8::pack(&q4, 3);
        let p8 = Rows8::pack(&q8, 3);
        let p5 = Rows8::pack(&q5, 3);
        assert_eq!(p4.unpack_all(), q4);
        assert_eq!(p8.unpack_all(), q8);
        assert_eq!(p5.unpack_all(), q5);
        assert_eq!(p4.storage_size_in_bytes(), q4.len() * 18);
        assert_eq!(p5.storage_size_in_bytes(), q5.len() * 22);
        assert_eq!(p8.data().len(), q8.len() * 34);
        // `data` gives the file's bytes.
        let file: &[u8] =
            unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, q8.len() * 34) };
        assert_eq!(&*p8.data(), file);
        match (
            p4.dequantize(16 * 96).unwrap(),
            q4.dequantize(16 * 96).unwrap(),
        ) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => assert_eq!(a, b),
            _ => unreachable!(),
        }
    }

    /// Troupe patch: single rows dequantised (an embedding lookup) are the whole table's rows,
    /// bit for bit, from the file's layout and from the repacked one (a tied output layer).
    #[test]
    fn troupe_dequantize_rows_gives_the_tables_rows() {
        use crate::quantized::{QStorage, QTensor};
        use crate::Device;
        fn check<T: Repack>(seed: u64) {
            let blocks = weights::<T>(16, 96, seed);
            let packed = Rows8::pack(&blocks, 3);
            let table = QTensor::new(QStorage::Cpu(Box::new(blocks)), (16, 96)).unwrap();
            let packed = QTensor::new(QStorage::Cpu(Box::new(packed)), (16, 96)).unwrap();
            let whole = table.dequantize(&Device::Cpu).unwrap();
            for t in [&table, &packed] {
                let rows = t.dequantize_rows(&[3, 0, 15, 3, 9], &Device::Cpu).unwrap();
                for (i, id) in [3usize, 0, 15, 3, 9].into_iter().enumerate() {
                    let want: Vec<f32> = whole.get(id).unwrap().to_vec1().unwrap();
                    let got: Vec<f32> = rows.get(i).unwrap().to_vec1().unwrap();
                    assert_eq!(bits(&got), bits(&want), "{:?} row {id}", T::DTYPE);
                }
                assert!(t.dequantize_rows(&[16], &Device::Cpu).is_err());
            }
        }
        check::<BlockQ8_0>(4);
        check::<BlockQ4_0>(5);
        check::<BlockQ5_0>(6);
        check::<BlockQ4_1>(7);
        // A table loaded for row reads stays in the file's layout, on this thread only.
        let before = repacks(&[16, 96]);
        assert!(!without_repacking(|| repacks(&[16, 96])));
        assert_eq!(repacks(&[16, 96]), before);
        let other = std::thread::spawn(|| repacks(&[16, 96]));
        assert_eq!(without_repacking(|| other.join().unwrap()), before);
    }

    /// The reference against the one-row scalar code of the type (`vec_dot_unopt`), which
    /// adds the same products in another float order: close, not identical.
    #[test]
    fn troupe_reference_agrees_with_the_one_row_scalar_code() {
        for k in [32, 896] {
            let kb = k / 32;
            let mut y = vec![BlockQ8_0::zeros(); kb];
            BlockQ8_0::from_float(&activations(k, 7), &mut y);
            let dys: Vec<f32> = y.iter().map(|b| b.d.to_f32()).collect();
            fn check<T: Repack + GgmlType<VecDotType = BlockQ8_0>>(
                w: &[T],
                y: &[BlockQ8_0],
                dys: &[f32],
                k: usize,
            ) {
                let kb = k / 32;
                let p = Rows8::pack(w, kb);
                let got = dot8_reference::<T>(&p.groups[..kb], y, dys);
                for r in 0..ROWS {
                    let want = T::vec_dot_unopt(k, &w[r * kb..(r + 1) * kb], y);
                    assert!(
                        (got[r] - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{:?} k={k} row {r}: {} vs {want}",
                        T::DTYPE,
                        got[r]
                    );
                }
            }
            check(&weights::<BlockQ4_0>(8, k, 3), &y, &dys, k);
            check(&weights::<BlockQ8_0>(8, k, 4), &y, &dys, k);
            check(&weights::<BlockQ5_0>(8, k, 5), &y, &dys, k);
            // Q4_1's scalar code takes Q8_1 activations: against the f32 dot of the
            // dequantised weights and activations instead.
            let w = weights::<BlockQ4_1>(8, k, 6);
            let got = dot8_reference::<BlockQ4_1>(&Rows8::pack(&w, kb).groups[..kb], &y, &dys);
            let mut wf = vec![0f32; 8 * k];
            let mut yf = vec![0f32; k];
            BlockQ4_1::to_float(&w, &mut wf);
            BlockQ8_0::to_float(&y, &mut yf);
            for r in 0..ROWS {
                let want: f32 = wf[r * k..(r + 1) * k]
                    .iter()
                    .zip(&yf)
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(
                    (got[r] - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "Q4_1 k={k} row {r}: {} vs {want}",
                    got[r]
                );
            }
        }
    }

    /// Every kernel level gives the reference's bits: random rows, weights at the ends of their
    /// range (Q8_0 -128 and 127, Q4_0 nibbles 0 and 15, Q5_0 values -16 and 15) against
    /// activations at -127 and 127, where `vpmaddubsw` would saturate if a sum could.
    #[test]
    fn troupe_kernels_match_the_reference_bit_for_bit() {
        let best = best_cpu_kernels();
        if best == CpuKernels::Scalar {
            eprintln!("this CPU has no AVX2: only the reference runs");
        }
        for k in [32, 96, 896, 4864] {
            let kb = k / 32;
            let rows = 24;
            let mut q4 = weights::<BlockQ4_0>(rows, k, k as u64);
            let mut q8 = weights::<BlockQ8_0>(rows, k, k as u64 + 1);
            q4[0].qs = [0; 16];
            q4[1].qs = [0xff; 16];
            q4[kb].qs = [0xff; 16];
            q8[0].qs = [-128; 32];
            q8[1].qs = [127; 32];
            q8[kb].qs = [-128; 32];
            let mut q5 = weights::<BlockQ5_0>(rows, k, k as u64 + 2);
            (q5[0].qs, q5[0].qh) = ([0; 16], [0; 4]);
            (q5[1].qs, q5[1].qh) = ([0xff; 16], [0xff; 4]);
            (q5[kb].qs, q5[kb].qh) = ([0xff; 16], [0xff; 4]);
            let mut q41 = weights::<BlockQ4_1>(rows, k, k as u64 + 3);
            q41[0].qs = [0; 16];
            q41[1].qs = [0xff; 16];
            q41[kb].qs = [0xff; 16];
            let mut y = vec![BlockQ8_0::zeros(); kb];
            BlockQ8_0::from_float(&activations(k, 11), &mut y);
            y[0].qs = [-127; 32];
            if kb > 1 {
                y[1].qs = [127; 32];
            }
            let dys: Vec<f32> = y.iter().map(|b| b.d.to_f32()).collect();
            let sums: Vec<i32> = y
                .iter()
                .map(|b| b.qs.iter().map(|&q| q as i32).sum())
                .collect();
            let p4 = Rows8::pack(&q4, kb);
            let p8 = Rows8::pack(&q8, kb);
            let p5 = Rows8::pack(&q5, kb);
            let p41 = Rows8::pack(&q41, kb);
            let mut want41 = vec![0f32; rows];
            dot8_rows_reference::<BlockQ4_1>(&p41.groups, &y, &dys, &mut want41);
            let mut want4 = vec![0f32; rows];
            let mut want8 = vec![0f32; rows];
            let mut want5 = vec![0f32; rows];
            dot8_rows_reference::<BlockQ4_0>(&p4.groups, &y, &dys, &mut want4);
            dot8_rows_reference::<BlockQ8_0>(&p8.groups, &y, &dys, &mut want8);
            dot8_rows_reference::<BlockQ5_0>(&p5.groups, &y, &dys, &mut want5);
            let mut got = vec![0f32; rows];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: each form runs only where the CPU has its features.
            unsafe {
                use crate::quantized::avx;
                if best >= CpuKernels::Avx2 {
                    avx::vec_dot_q4_0x8_q8_0(&p4.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want4), "Q4_0 AVX2 k={k}");
                    avx::vec_dot_q8_0x8_q8_0(&p8.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want8), "Q8_0 AVX2 k={k}");
                    avx::vec_dot_q5_0x8_q8_0(&p5.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want5), "Q5_0 AVX2 k={k}");
                    avx::vec_dot_q4_1x8_q8_0(&p41.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want41), "Q4_1 AVX2 k={k}");
                }
                if best == CpuKernels::Avx512Vnni {
                    avx::vec_dot_q4_0x8_q8_0_vnni(&p4.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want4), "Q4_0 VNNI k={k}");
                    avx::vec_dot_q8_0x8_q8_0_vnni(&p8.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want8), "Q8_0 VNNI k={k}");
                    avx::vec_dot_q5_0x8_q8_0_vnni(&p5.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want5), "Q5_0 VNNI k={k}");
                    avx::vec_dot_q4_1x8_q8_0_vnni(&p41.groups, &y, &dys, &sums, &mut got);
                    assert_eq!(bits(&got), bits(&want41), "Q4_1 VNNI k={k}");
                }
            }
            // The prefill kernels: four activation rows (the one above and three more) against
            // each group, every row's result the reference's.
            let more: Vec<Vec<BlockQ8_0>> = (0..3u64)
                .map(|s| {
                    let mut y = vec![BlockQ8_0::zeros(); kb];
                    BlockQ8_0::from_float(&activations(k, 100 + s), &mut y);
                    y
                })
                .collect();
            let ys4 = [&y[..], &more[0], &more[1], &more[2]];
            let dys4: Vec<Vec<f32>> = ys4
                .iter()
                .map(|y| y.iter().map(|b| b.d.to_f32()).collect())
                .collect();
            let sums4: Vec<Vec<i32>> = ys4
                .iter()
                .map(|y| {
                    y.iter()
                        .map(|b| b.qs.iter().map(|&q| q as i32).sum())
                        .collect()
                })
                .collect();
            let dys4 = [&dys4[0][..], &dys4[1], &dys4[2], &dys4[3]];
            let sums4 = [&sums4[0][..], &sums4[1], &sums4[2], &sums4[3]];
            for g in 0..rows / ROWS {
                let g4 = &p4.groups[g * kb..(g + 1) * kb];
                let g8 = &p8.groups[g * kb..(g + 1) * kb];
                let g5 = &p5.groups[g * kb..(g + 1) * kb];
                let g41 = &p41.groups[g * kb..(g + 1) * kb];
                let want41: Vec<Vec<u32>> = (0..4)
                    .map(|a| bits(&dot8_reference::<BlockQ4_1>(g41, ys4[a], dys4[a])))
                    .collect();
                let want4: Vec<Vec<u32>> = (0..4)
                    .map(|a| bits(&dot8_reference::<BlockQ4_0>(g4, ys4[a], dys4[a])))
                    .collect();
                let want8: Vec<Vec<u32>> = (0..4)
                    .map(|a| bits(&dot8_reference::<BlockQ8_0>(g8, ys4[a], dys4[a])))
                    .collect();
                let want5: Vec<Vec<u32>> = (0..4)
                    .map(|a| bits(&dot8_reference::<BlockQ5_0>(g5, ys4[a], dys4[a])))
                    .collect();
                let all = |v: [[f32; ROWS]; 4]| v.iter().map(|r| bits(r)).collect::<Vec<_>>();
                #[cfg(target_arch = "x86_64")]
                // SAFETY: each form runs only where the CPU has its features.
                unsafe {
                    use crate::quantized::avx;
                    if best >= CpuKernels::Avx2 {
                        let got = avx::vec_dot_q4_0x8_q8_0_x4(g4, ys4, dys4, sums4);
                        assert_eq!(all(got), want4, "Q4_0 AVX2 x4 k={k}");
                        let got = avx::vec_dot_q8_0x8_q8_0_x4(g8, ys4, dys4, sums4);
                        assert_eq!(all(got), want8, "Q8_0 AVX2 x4 k={k}");
                        let got = avx::vec_dot_q5_0x8_q8_0_x4(g5, ys4, dys4, sums4);
                        assert_eq!(all(got), want5, "Q5_0 AVX2 x4 k={k}");
                        let got = avx::vec_dot_q4_1x8_q8_0_x4(g41, ys4, dys4, sums4);
                        assert_eq!(all(got), want41, "Q4_1 AVX2 x4 k={k}");
                    }
                    if best == CpuKernels::Avx512Vnni {
                        let got = avx::vec_dot_q4_0x8_q8_0_x4_vnni(g4, ys4, dys4, sums4);
                        assert_eq!(all(got), want4, "Q4_0 VNNI x4 k={k}");
                        let got = avx::vec_dot_q8_0x8_q8_0_x4_vnni(g8, ys4, dys4, sums4);
                        assert_eq!(all(got), want8, "Q8_0 VNNI x4 k={k}");
                        let got = avx::vec_dot_q5_0x8_q8_0_x4_vnni(g5, ys4, dys4, sums4);
                        assert_eq!(all(got), want5, "Q5_0 VNNI x4 k={k}");
                        let got = avx::vec_dot_q4_1x8_q8_0_x4_vnni(g41, ys4, dys4, sums4);
                        assert_eq!(all(got), want41, "Q4_1 VNNI x4 k={k}");
                    }
                }
                let _ = (&want4, &want8, &want5, &want41, &all);
            }
            // The scalar level runs the reference.
            let _ = (&mut got, &sums, &want41);
        }
    }

    /// A repacked matmul gives every activation row, one (a decode step) or several (a
    /// prefill, four at a time and the rest one by one), the reference's bits, at every kernel
    /// level this CPU has; and that is close to what the unrepacked tensor gives.
    #[test]
    fn troupe_repacked_matmul_gives_the_reference() {
        // `tol`: how close to the unrepacked matmul. Q4_1's takes Q8_1 activations, whose
        // block sums are rounded to f16.
        fn check<T: Repack>(seed: u64, tol: f32) {
            let (k, n) = (128, 48);
            let kb = k / 32;
            let w = weights::<T>(n, k, seed);
            let p = Rows8::pack(&w, kb);
            for m in [1, 2, 5, 9] {
                let lhs: Vec<f32> = (0..m)
                    .flat_map(|r| activations(k, seed + r as u64))
                    .collect();
                let acts = quantise(m, k, &lhs);
                let mut plain = vec![0f32; m * n];
                super::super::k_quants::matmul((m, k, n), &lhs, &w, &mut plain).unwrap();
                let mut packed = vec![0f32; m * n];
                p.matmul_t((m, k, n), &lhs, &mut packed).unwrap();
                for r in 0..m {
                    for g in 0..n / ROWS {
                        let want = dot8_reference::<T>(
                            &p.groups[g * kb..(g + 1) * kb],
                            acts.ys(r),
                            acts.dys(r),
                        );
                        let got = &packed[r * n + g * ROWS..r * n + (g + 1) * ROWS];
                        assert_eq!(bits(got), bits(&want), "{:?} m={m} row {r}", T::DTYPE);
                    }
                }
                for (a, b) in packed.iter().zip(&plain) {
                    assert!(
                        (a - b).abs() <= tol * b.abs().max(1.0),
                        "{:?}: {a} vs {b}",
                        T::DTYPE
                    );
                }
            }
            let mut bad = vec![0f32; 40];
            assert!(p
                .matmul_t((1, k, 40), &activations(k, 1), &mut bad)
                .is_err());
        }
        check::<BlockQ4_0>(5, 1e-4);
        check::<BlockQ8_0>(6, 1e-4);
        check::<BlockQ5_0>(7, 1e-4);
        check::<BlockQ4_1>(8, 2e-3);
    }
}
