#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use candle_core::{Context, DType, Device, Layout, Result, Storage, Tensor, WithDType};

use half::bf16;
use half::f16;
use rayon::prelude::*;

use std::{f32, iter::Sum};

// Optional hardware prefetch for ping‑pong style scheduling.
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::_mm_prefetch;

// --- portable wrapper around architecture‑specific prefetch -------------
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    _mm_prefetch(addr as *const i8, core::arch::x86_64::_MM_HINT_T0);
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn prefetch(addr: *const u8) {
    core::arch::asm!(
        "prfm pldl1keep, [{0}]",
        in(reg) addr,
        options(readonly, nostack, preserves_flags)
    );
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
unsafe fn prefetch(_addr: *const u8) {}
// -----------------------------------------------------------------------

use crate::attention::SdpaParams;

#[cfg(target_os = "macos")]
#[allow(dead_code)]
/// Elevate the thread QoS so macOS prefers running it on Performance (P) cores.
unsafe fn set_thread_affinity() {
    // USER_INTERACTIVE has the highest scheduling priority that user code
    // can request and is most likely to be scheduled on P‑cores.
    use libc::{pthread_set_qos_class_self_np, qos_class_t::QOS_CLASS_USER_INTERACTIVE};
    // The second argument is a relative priority within the QoS class (0 = default).
    pthread_set_qos_class_self_np(QOS_CLASS_USER_INTERACTIVE, 0);
}

#[cfg(not(target_os = "macos"))]
#[inline(always)]
#[allow(dead_code)]
unsafe fn set_thread_affinity() {
    // On non‑macOS platforms we currently leave affinity untouched.
}

/// Troupe patch: the attention kernels run in rayon's global pool, the one candle's matmuls
/// use. Upstream gave them a pool of their own; with as many threads as cores in each, the idle
/// pool's threads spin (sched_yield) while the other works, which on a 2-core machine took ~15%
/// of a decode step. (So `set_thread_affinity`, a macOS QoS hint for that pool, is unused.)
struct GlobalPool;

impl GlobalPool {
    #[inline]
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
}

static FLASH_ATTN_POOL: GlobalPool = GlobalPool;

/// Size (in KV positions) processed by each inner‑tile job.
const TILE_KV: usize = 16;

/// Dot product in `f32`.
///
/// Troupe patch: eight independent accumulators (one per AVX lane) instead of one running sum,
/// so the compiler can vectorise it; upstream's single chain of scalar adds ran at a fraction of
/// the speed and made attention a third of a decode step on CPU. `AVX`: f32 rows go through
/// `vec_dot_f32_avx`; only code compiled for AVX passes true (`decode_tile_avx2`).
/// Troupe patch: `b` may be F16 rows (the KV cache's keys, `kv_cache::set_kv_cache_f16`)
/// against f32 `a`; in AVX code they are widened eight at a time (`vec_dot_f32_f16_avx`).
#[inline(always)]
fn vec_dot_f32<T: UpcastF32 + Copy, K: UpcastF32 + Copy, const AVX: bool>(a: &[T], b: &[K]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        if let Some(a) = T::as_f32s(a) {
            // SAFETY: AVX is true only in code that runs where the CPU has AVX2, FMA and F16C
            // (`simd_avx2`).
            if let Some(b) = K::as_f32s(b) {
                return unsafe { vec_dot_f32_avx(a, b) };
            }
            if let Some(b) = K::as_f16s(b) {
                return unsafe { vec_dot_f32_f16_avx(a, b) };
            }
        }
    }
    vec_dot_f32_portable(a, b)
}

/// Troupe patch: `vec_dot_f32_avx` with `b` in F16, widened exactly (F16C), so the result is
/// `vec_dot_f32_portable`'s bit for bit.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx,f16c")]
unsafe fn vec_dot_f32_f16_avx(a: &[f32], b: &[f16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let chunks = n / 8;
    // Every load is within the first `8 * chunks <= n` elements.
    let mut acc = _mm256_setzero_ps();
    for c in 0..chunks {
        let x = _mm256_loadu_ps(a.as_ptr().add(8 * c));
        let y = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(8 * c) as *const __m128i));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(x, y));
    }
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let t = _mm_add_ps(s, _mm_shuffle_ps::<0b10_11_00_01>(s, s));
    let mut sum = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehl_ps(t, t)));
    for i in 8 * chunks..n {
        sum += a[i] * b[i].to_f32();
    }
    sum
}

/// Troupe patch: `vec_dot_f32_portable` for f32 rows in AVX registers, bit for bit: the same
/// eight lanes, each a multiply then an add (no fused multiply-add, as the portable code has
/// none), added together in the same order. LLVM had vectorised the portable loop into 128-bit
/// halves with two shuffles per eight products, the largest part of a decode step's attention.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx")]
unsafe fn vec_dot_f32_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let chunks = n / 8;
    // Every load is within the first `8 * chunks <= n` elements.
    let mut acc = _mm256_setzero_ps();
    for c in 0..chunks {
        let x = _mm256_loadu_ps(a.as_ptr().add(8 * c));
        let y = _mm256_loadu_ps(b.as_ptr().add(8 * c));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(x, y));
    }
    // s = [acc0 + acc4, acc1 + acc5, acc2 + acc6, acc3 + acc7], then (s0 + s1) + (s2 + s3).
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let t = _mm_add_ps(s, _mm_shuffle_ps::<0b10_11_00_01>(s, s));
    let mut sum = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehl_ps(t, t)));
    for i in 8 * chunks..n {
        sum += a[i] * b[i];
    }
    sum
}

/// Troupe patch: whether this CPU runs the attention loops compiled for AVX2 (with FMA, as the
/// quantised kernels want, and F16C for F16 keys and values, which every AVX2 CPU has; no float
/// expression here is contracted into one, so the results are the portable code's). The binary
/// itself is built for any x86-64 CPU. A cached load.
#[inline]
fn simd_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[inline]
fn vec_dot_f32_portable<T: UpcastF32 + Copy, K: UpcastF32 + Copy>(a: &[T], b: &[K]) -> f32 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i].to_f32() * y[i].to_f32();
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x.to_f32() * y.to_f32();
    }
    sum
}

/// `acc += v * w` over a row. Troupe patch: slices zipped instead of indexed, so there are no
/// bounds checks in the loop and it vectorises.
#[inline(always)]
fn axpy_f32<T: UpcastF32 + Copy, const AVX: bool>(acc: &mut [f32], v: &[T], w: f32) {
    // Troupe patch: F16 rows (the KV cache's values) widened eight at a time in AVX code.
    #[cfg(target_arch = "x86_64")]
    if AVX {
        if let Some(v) = T::as_f16s(v) {
            // SAFETY: AVX is true only where the CPU has AVX2, FMA and F16C (`simd_avx2`).
            return unsafe { axpy_f16_avx(acc, v, w) };
        }
    }
    for (a, x) in acc.iter_mut().zip(v) {
        *a += x.to_f32() * w;
    }
}

/// Troupe patch: `axpy_f32` for F16 rows, bit for bit (an exact widening, then a multiply and an
/// add per value, as the portable loop does).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx,f16c")]
unsafe fn axpy_f16_avx(acc: &mut [f32], v: &[f16], w: f32) {
    use std::arch::x86_64::*;
    let n = acc.len().min(v.len());
    let chunks = n / 8;
    let wv = _mm256_set1_ps(w);
    for c in 0..chunks {
        let x = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(8 * c) as *const __m128i));
        let a = acc.as_mut_ptr().add(8 * c);
        _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_mul_ps(x, wv)));
    }
    for i in 8 * chunks..n {
        acc[i] += v[i].to_f32() * w;
    }
}

/// `e^d` for `d <= 0`, as a branch-free polynomial the compiler vectorises in loops (libm's
/// `expf` is one call per value). Results are in [0, 1]; -inf (a masked key) gives exactly 0.
/// Relative error about 2e-7: 2^k * p(r) with r = d - k ln 2 in [-ln2/2, ln2/2] and p the
/// degree-6 Taylor polynomial of exp.
#[inline(always)]
fn exp_nonpositive(d: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let masked = d < -87.0; // also -inf and NaN-free: e^-87 is below f32's normal range
    let t = d.max(-87.0);
    let k = (t * LOG2E + 0.5).floor();
    let r = t - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // wrapping: an overflow check (on in dev builds) would stop loops vectorising; k is in
    // [-126, 0] here, so nothing wraps.
    let scale = f32::from_bits(((k as i32).wrapping_add(127) << 23) as u32);
    if masked {
        0.0
    } else {
        p * scale
    }
}

/// Troupe patch: `x[i] = exp(x[i] - max)` for a tile (see `exp_nonpositive`). Inputs are at most
/// `max`.
#[inline]
fn exp_tile(x: &mut [f32; TILE_KV], max: f32) {
    for v in x.iter_mut() {
        *v = exp_nonpositive(*v - max);
    }
}

/// Troupe patch: `x[i] = exp(x[i] - max[i])` (see `exp_nonpositive`); `x[i] <= max[i]`. In
/// AVX2 where the CPU has it: the polynomial's `floor` is one instruction there, a libm call in
/// plain x86-64 code (which then does not vectorise).
#[inline]
fn exp_minus(x: &mut [f32], max: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { exp_minus_avx2(x, max) };
    }
    exp_minus_body(x, max)
}

#[inline(always)]
fn exp_minus_body(x: &mut [f32], max: &[f32]) {
    for (v, m) in x.iter_mut().zip(max) {
        *v = exp_nonpositive(*v - m);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma")]
unsafe fn exp_minus_avx2(x: &mut [f32], max: &[f32]) {
    exp_minus_body(x, max)
}

#[inline]
fn clamp_index(idx: usize, dim: usize) -> usize {
    if dim == 0 {
        0
    } else if idx >= dim {
        dim - 1
    } else {
        idx
    }
}

#[inline]
fn mask_offset(
    dims: &[usize],
    b: usize,
    h: usize,
    b_i: usize,
    h_i: usize,
    q_pos: usize,
    kv_pos: usize,
) -> Option<usize> {
    if dims.is_empty() {
        return Some(0);
    }

    match dims.len() {
        1 => {
            let kv_dim = dims[0];
            if kv_dim == 0 {
                None
            } else {
                Some(clamp_index(kv_pos, kv_dim))
            }
        }
        2 => {
            let q_dim = dims[0];
            let kv_dim = dims[1];
            if q_dim == 0 || kv_dim == 0 {
                None
            } else {
                let q_idx = clamp_index(q_pos, q_dim);
                let kv_idx = clamp_index(kv_pos, kv_dim);
                Some(q_idx * kv_dim + kv_idx)
            }
        }
        3 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            if d0 == 0 || d1 == 0 || d2 == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, d1);
            let kv_idx = clamp_index(kv_pos, d2);
            if d0 == b || d0 == 1 {
                let b_idx = if d0 == 1 { 0 } else { clamp_index(b_i, d0) };
                Some((b_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == h || d0 == 1 {
                let h_idx = if d0 == 1 { 0 } else { clamp_index(h_i, d0) };
                Some((h_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == b.saturating_mul(h) {
                let combined_idx = clamp_index(b_i * h + h_i, d0);
                Some((combined_idx * d1 + q_idx) * d2 + kv_idx)
            } else {
                Some(q_idx * d2 + kv_idx)
            }
        }
        4 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            let d3 = dims[3];
            if d0 == 0 || d1 == 0 || d2 == 0 || d3 == 0 {
                return None;
            }
            let b_idx = if d0 == 1 {
                0
            } else if d0 == b {
                clamp_index(b_i, d0)
            } else if d0 == b.saturating_mul(h) {
                clamp_index(b_i * h + h_i, d0)
            } else {
                clamp_index(b_i, d0)
            };
            let h_idx = if d1 == 1 {
                0
            } else if d1 == h {
                clamp_index(h_i, d1)
            } else if d1 == b {
                clamp_index(b_i, d1)
            } else {
                clamp_index(h_i, d1)
            };
            let q_idx = clamp_index(q_pos, d2);
            let kv_idx = clamp_index(kv_pos, d3);
            Some(((b_idx * d1 + h_idx) * d2 + q_idx) * d3 + kv_idx)
        }
        _ => {
            let q_dim = *dims.get(dims.len().saturating_sub(2))?;
            let kv_dim = *dims.last()?;
            if q_dim == 0 || kv_dim == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, q_dim);
            let kv_idx = clamp_index(kv_pos, kv_dim);
            let mut prefix_dim = 1usize;
            for &dim in &dims[..dims.len() - 2] {
                if dim == 0 {
                    return None;
                }
                prefix_dim = prefix_dim.saturating_mul(dim);
            }
            let combined_idx = if prefix_dim == 0 {
                0
            } else {
                let idx_val = b_i * h + h_i;
                idx_val.min(prefix_dim - 1)
            };
            Some((combined_idx * q_dim + q_idx) * kv_dim + kv_idx)
        }
    }
}

struct MaskInfo<'a> {
    data: &'a [f32],
    dims: &'a [usize],
    b: usize,
    h: usize,
}

impl<'a> MaskInfo<'a> {
    #[inline]
    fn value(&self, b_i: usize, h_i: usize, q_pos: usize, kv_pos: usize) -> f32 {
        if let Some(idx) = mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, kv_pos) {
            *self.data.get(idx).unwrap_or(&0.0)
        } else {
            0.0
        }
    }
}

pub(crate) trait DowncastF32 {
    fn cast(x: f32) -> Self;
}

impl DowncastF32 for f32 {
    fn cast(x: f32) -> Self {
        x
    }
}

impl DowncastF32 for f16 {
    fn cast(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl DowncastF32 for bf16 {
    fn cast(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// Up‑cast helper: convert any supported element type to `f32` once so that the
/// hot kernels can run entirely in `f32` and only down‑cast when writing out.
pub trait UpcastF32 {
    fn to_f32(self) -> f32;

    /// Troupe patch: the slice itself where it is already f32 (for `vec_dot_f32_avx`).
    #[inline(always)]
    fn as_f32s(_xs: &[Self]) -> Option<&[f32]>
    where
        Self: Sized,
    {
        None
    }

    /// Troupe patch: the slice itself where it is F16 (for `vec_dot_f32_f16_avx`).
    #[inline(always)]
    fn as_f16s(_xs: &[Self]) -> Option<&[f16]>
    where
        Self: Sized,
    {
        None
    }
}

impl UpcastF32 for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn as_f32s(xs: &[f32]) -> Option<&[f32]> {
        Some(xs)
    }
}

impl UpcastF32 for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }

    #[inline(always)]
    fn as_f16s(xs: &[f16]) -> Option<&[f16]> {
        Some(xs)
    }
}

impl UpcastF32 for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
}

pub fn run_flash_attn_cpu<T>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor>
where
    T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy,
{
    // Troupe patch: f32 queries against keys and values the KV cache keeps in F16.
    if T::DTYPE == DType::F32 && k.dtype() == DType::F16 && v.dtype() == DType::F16 {
        return run_with_f16_kv(q, k, v, mask, sdpa_params);
    }
    // Inline CPU slice extraction for q, k, v, and optional mask
    let (q_guard, q_layout) = q.storage_and_layout();
    let q_data: &[T] = if let Storage::Cpu(cpu) = &*q_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for q")?;
        &data[q_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for q".into()));
    };
    let (k_guard, k_layout) = k.storage_and_layout();
    let k_data: &[T] = if let Storage::Cpu(cpu) = &*k_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for k")?;
        &data[k_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for k".into()));
    };
    let (v_guard, v_layout) = v.storage_and_layout();
    let v_data: &[T] = if let Storage::Cpu(cpu) = &*v_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for v")?;
        &data[v_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for v".into()));
    };
    let mut mask_buffer: Option<Vec<f32>> = None;
    let mut mask_dims: Option<Vec<usize>> = None;
    if let Some(mask_tensor) = mask {
        mask_dims = Some(mask_tensor.shape().dims().to_vec());
        let buffer = {
            let (guard, layout) = mask_tensor.storage_and_layout();
            if let Storage::Cpu(cpu) = &*guard {
                let data = cpu
                    .as_slice::<T>()
                    .context("Expected CPU storage for mask")?;
                data[layout.start_offset()..]
                    .iter()
                    .map(|v| (*v).to_f32())
                    .collect::<Vec<f32>>()
            } else {
                return Err(candle_core::Error::Msg(
                    "Expected CPU storage for mask".into(),
                ));
            }
        };
        mask_buffer = Some(buffer);
    }
    // q_guard, k_guard, v_guard, and m_guard (if any) are kept in scope to hold storage alive

    let q_stride = q.stride();
    let k_stride = k.stride();
    let v_stride = v.stride();

    // Fast path for decode: q_len == 1
    let mask_dims_ref = mask_dims.as_deref();
    let mask_slice = mask_buffer.as_deref();

    if q.shape().dims()[1] == 1 {
        return flash_attn_cpu_single_q(
            q_data,
            k_data,
            v_data,
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
            0.0,
            sdpa_params.softcap.unwrap_or(0.0),
        );
    }

    // Troupe patch: prefill (several query rows) as matrix products; see `prefill_attn_gemm`.
    if T::DTYPE == candle_core::DType::F32
        && sdpa_params.softcap.unwrap_or(0.0) == 0.0
        && k.shape().dims()[2] == v.shape().dims()[2]
        && k.shape().dims()[3] == q.shape().dims()[3]
    {
        // SAFETY: T is f32 (checked through its DType just above), so the slices are f32 slices.
        let as_f32 =
            |x: &[T]| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) };
        return prefill_attn_gemm(
            as_f32(q_data),
            as_f32(k_data),
            as_f32(v_data),
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
        );
    }

    flash_attn_cpu(
        q_data,
        k_data,
        v_data,
        mask_slice,
        mask_dims_ref,
        q.shape().dims(),
        k.shape().dims(),
        v.shape().dims(),
        q_stride,
        k_stride,
        v_stride,
        sdpa_params.softmax_scale,
        0.0,
        sdpa_params.softcap.unwrap_or(0.0),
    )
}

/// Troupe patch: the CPU data of a tensor from its first element on, as `T`.
fn cpu_data<'a, T: WithDType>(
    storage: &'a Storage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [T]> {
    match storage {
        Storage::Cpu(cpu) => Ok(&cpu.as_slice::<T>()?[layout.start_offset()..]),
        _ => Err(candle_core::Error::Msg(format!(
            "Expected CPU storage for {what}"
        ))),
    }
}

/// Troupe patch: a key or value view (`dims` [batch, tokens, heads, head dim] with `stride`, over
/// `data`, its storage from its start) widened to f32 for the prefill's matrix products, with
/// the strides to read the result by. Only the tokens the view holds are widened, not the
/// cache's capacity past them: in the cache's layout each head's tokens are one run, widened
/// as one and kept as one. Through our own F16C loop (`widen_f16_avx`): the `half` crate's
/// slice conversion had cost a call per eight values or none, depending on how the compiler
/// split this crate's code (docs/PERFORMANCE.md, "A decode step's query heads grouped").
fn widened(data: &[f16], dims: &[usize], stride: &[usize]) -> Result<(Vec<f32>, [usize; 4])> {
    let &[b, t, h, d] = dims else {
        candle_core::bail!("attention expects 4 dims, got {dims:?}")
    };
    let mut out = vec![0f32; b * t * h * d];
    if out.is_empty() {
        return Ok((out, [t * h * d, h * d, d, 1]));
    }
    if stride[3] == 1 && stride[1] == d {
        // Each (batch, head)'s tokens are `t * d` values in a row, in `data` and in `out`.
        let run = t * d;
        for (i, dst) in out.chunks_exact_mut(run).enumerate() {
            let from = (i / h) * stride[0] + (i % h) * stride[2];
            widen_into(&data[from..from + run], dst);
        }
        return Ok((out, [h * run, d, run, 1]));
    }
    let mut o = 0;
    for bi in 0..b {
        for ti in 0..t {
            for hi in 0..h {
                let row = bi * stride[0] + ti * stride[1] + hi * stride[2];
                for di in 0..d {
                    out[o] = data[row + di * stride[3]].to_f32();
                    o += 1;
                }
            }
        }
    }
    Ok((out, [t * h * d, h * d, d, 1]))
}

/// Troupe patch: `dst[i] = src[i]` widened to f32, exactly.
fn widen_into(src: &[f16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_avx2() {
        // SAFETY: the CPU has F16C (`simd_avx2`).
        return unsafe { widen_f16_avx(src, dst) };
    }
    for (o, x) in dst.iter_mut().zip(src) {
        *o = x.to_f32();
    }
}

/// Troupe patch: `widen_into`, eight values per F16C conversion.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn widen_f16_avx(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let chunks = n / 8;
    // Every load and store is within the first `8 * chunks <= n` elements.
    for c in 0..chunks {
        let x = _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().add(8 * c) as *const __m128i));
        _mm256_storeu_ps(dst.as_mut_ptr().add(8 * c), x);
    }
    for i in 8 * chunks..n {
        dst[i] = src[i].to_f32();
    }
}

/// Troupe patch: attention with f32 queries over F16 keys and values (the KV cache keeps them
/// in F16 where the app asks: `kv_cache::set_kv_cache_f16`, half its bytes). A decode step
/// reads the F16 rows as they are (`decode_tile` widens them as it goes); a prefill widens the
/// keys and values once and runs the f32 matrix products, whose work grows with the query rows
/// times the keys while the widening grows with the keys alone.
fn run_with_f16_kv(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor> {
    let softcap = sdpa_params.softcap.unwrap_or(0.0);
    let gemm = softcap == 0.0
        && k.shape().dims()[2] == v.shape().dims()[2]
        && k.shape().dims()[3] == q.shape().dims()[3];
    if q.shape().dims()[1] > 1 && !gemm {
        // The generic loop reads one dtype throughout.
        let (k, v) = (k.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
        return run_flash_attn_cpu::<f32>(q, &k, &v, mask, sdpa_params);
    }
    let (q_guard, q_layout) = q.storage_and_layout();
    let (k_guard, k_layout) = k.storage_and_layout();
    let (v_guard, v_layout) = v.storage_and_layout();
    let q_data = cpu_data::<f32>(&q_guard, q_layout, "q")?;
    let k_data = cpu_data::<f16>(&k_guard, k_layout, "k")?;
    let v_data = cpu_data::<f16>(&v_guard, v_layout, "v")?;
    let mask_dims = mask.map(|m| m.shape().dims().to_vec());
    let mask_buffer = match mask {
        Some(m) => {
            let (guard, layout) = m.storage_and_layout();
            Some(cpu_data::<f32>(&guard, layout, "mask")?.to_vec())
        }
        None => None,
    };
    let (mask_slice, mask_dims) = (mask_buffer.as_deref(), mask_dims.as_deref());
    let (qd, kd, vd) = (q.shape().dims(), k.shape().dims(), v.shape().dims());
    let (qs, ks, vs) = (q.stride(), k.stride(), v.stride());
    if qd[1] == 1 {
        let scale = sdpa_params.softmax_scale;
        return flash_attn_cpu_single_q::<f32, f16>(
            q_data, k_data, v_data, mask_slice, mask_dims, qd, kd, vd, qs, ks, vs, scale, 0.0,
            softcap,
        );
    }
    let ((k32, ks), (v32, vs)) = (widened(k_data, kd, ks)?, widened(v_data, vd, vs)?);
    prefill_attn_gemm(
        q_data,
        &k32,
        &v32,
        mask_slice,
        mask_dims,
        qd,
        kd,
        vd,
        qs,
        &ks,
        &vs,
        sdpa_params.softmax_scale,
    )
}

/// Troupe patch: one head's keys `start..end` in a decode step (one tile), for `decode_tile`.
struct DecodeTile<'a, T, K> {
    q_row: &'a [T],
    k_data: &'a [K],
    v_data: &'a [K],
    kstride: &'a [usize],
    vstride: &'a [usize],
    mask_info: Option<&'a MaskInfo<'a>>,
    b_i: usize,
    h_i: usize,
    k_head: usize,
    v_head: usize,
    d: usize,
    dv: usize,
    slope: f32,
    scale: f32,
    logit_softcap: f32,
    start: usize,
    end: usize,
}

/// Troupe patch: a tile of `flash_attn_cpu_single_q`: adds the tile's softmax-weighted V rows
/// (weights relative to the tile's max) to `vkq`; returns (sum of the weights, max score).
/// The tile runs in two passes (all scores, then one max, one batch of exponentials and the
/// weighted sum of V) instead of an online softmax that branched and rescaled at every key; the
/// exponentials are a polynomial the compiler vectorises (`exp_tile`) rather than one libm call
/// per key. At a few thousand tokens of context this halves a decode step. Compiled twice:
/// portable, and for AVX2 (`decode_tile_avx2`), since the binary targets any x86-64 CPU.
#[inline(always)]
fn decode_tile<T: UpcastF32 + Copy, K: UpcastF32 + Copy, const AVX: bool>(
    t: &DecodeTile<'_, T, K>,
    vkq: &mut [f32],
) -> (f32, f32) {
    let (kstride, vstride) = (t.kstride, t.vstride);
    let (b_i, k_head, v_head, d, dv) = (t.b_i, t.k_head, t.v_head, t.d, t.dv);
    let (start, end) = (t.start, t.end);
    let n = end - start;
    let mut scores = [f32::NEG_INFINITY; TILE_KV];
    for (j, kv_pos) in (start..end).enumerate() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            // One‑step look‑ahead prefetch of the next K row.
            let next_pos = kv_pos + 1;
            if next_pos < end {
                let next_k_base = b_i * kstride[0] + next_pos * kstride[1] + k_head * kstride[2];
                unsafe {
                    prefetch(t.k_data.as_ptr().add(next_k_base) as *const u8);
                }
            }
            // Troupe patch: this key's V row too, every cache line of it, so the weighted sum
            // below finds the tile's V rows loaded (it had waited on memory for each: the KV
            // cache outgrows the caches).
            let v_base = b_i * vstride[0] + kv_pos * vstride[1] + v_head * vstride[2];
            let v_row = t.v_data[v_base..v_base + dv].as_ptr() as *const u8;
            let row_bytes = dv * std::mem::size_of::<K>();
            for off in (0..row_bytes).step_by(64) {
                // SAFETY: `off` < the row's length in bytes: within the slice above.
                unsafe { prefetch(v_row.add(off)) };
            }
        }
        let k_base = b_i * kstride[0] + kv_pos * kstride[1] + k_head * kstride[2];
        let k_row = &t.k_data[k_base..k_base + d];
        let mut s_val = vec_dot_f32::<T, K, AVX>(t.q_row, k_row) * t.scale;
        if t.logit_softcap != 0.0 {
            s_val = t.logit_softcap * (s_val / t.logit_softcap).tanh();
        }
        let mask_delta = t
            .mask_info
            .map(|mask| t.slope * mask.value(b_i, t.h_i, 0, kv_pos))
            .unwrap_or(0.0);
        scores[j] = s_val + mask_delta;
    }
    let m = scores[..n]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    if m != f32::NEG_INFINITY {
        exp_tile(&mut scores, m);
        for (j, kv_pos) in (start..end).enumerate() {
            let v_base = b_i * vstride[0] + kv_pos * vstride[1] + v_head * vstride[2];
            axpy_f32::<K, AVX>(vkq, &t.v_data[v_base..v_base + dv], scores[j]);
            s += scores[j];
        }
    }
    (s, m)
}

/// `decode_tile` compiled for AVX2; call only where the CPU has AVX2 and FMA (`simd_avx2`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn decode_tile_avx2<T: UpcastF32 + Copy, K: UpcastF32 + Copy>(
    t: &DecodeTile<'_, T, K>,
    vkq: &mut [f32],
) -> (f32, f32) {
    decode_tile::<T, K, true>(t, vkq)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn decode_tile_avx2<T: UpcastF32 + Copy, K: UpcastF32 + Copy>(
    t: &DecodeTile<'_, T, K>,
    vkq: &mut [f32],
) -> (f32, f32) {
    decode_tile::<T, K, false>(t, vkq)
}

/// Troupe patch: the most query heads one grouped decode tile takes (`decode_tile_group_f16`):
/// eight accumulators and two operands fit AVX2's sixteen registers.
const GROUP_MAX: usize = 8;

/// Troupe patch: `decode_tile` for `N` query heads that share one key/value head (grouped-query
/// attention: 3 per key/value head in SmolLM2, 7 in Qwen2.5-0.5B, 4 in Llama 3 8B), keys and
/// values in F16 against f32 queries, no ALiBi slope or soft cap. Each key and value row is
/// widened once for the `N` heads instead of once per head, and the heads' dot products run as
/// `N` independent chains of adds where one head's tile waited on a single chain. Per head every
/// operation is `decode_tile`'s, in the same order (the eight-lane dot product and its horizontal
/// sum, the scale, the mask, the max, the exponentials, the weighted sum of V and the weights'
/// sum), so the results are bit for bit the same. `q_rows[g]` is head `t.h_i + g`'s query; its
/// weighted sum goes to `vkq[g * dv..][..dv]`; returns each head's (sum of weights, max score).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn decode_tile_group_f16<const N: usize>(
    t: &DecodeTile<'_, f32, f16>,
    q_rows: &[&[f32]; N],
    vkq: &mut [f32],
) -> [(f32, f32); N] {
    use std::arch::x86_64::*;
    let (kstride, vstride) = (t.kstride, t.vstride);
    let (b_i, d, dv) = (t.b_i, t.d, t.dv);
    let (start, end) = (t.start, t.end);
    let n = end - start;
    let mut scores = [[f32::NEG_INFINITY; TILE_KV]; N];
    let (k_chunks, v_chunks) = (d / 8, dv / 8);
    for (j, kv_pos) in (start..end).enumerate() {
        // The same look-ahead as `decode_tile`: the next K row, and this key's V row.
        if kv_pos + 1 < end {
            let next_k_base = b_i * kstride[0] + (kv_pos + 1) * kstride[1] + t.k_head * kstride[2];
            prefetch(t.k_data.as_ptr().add(next_k_base) as *const u8);
        }
        let v_base = b_i * vstride[0] + kv_pos * vstride[1] + t.v_head * vstride[2];
        let v_row = t.v_data[v_base..v_base + dv].as_ptr() as *const u8;
        for off in (0..dv * 2).step_by(64) {
            prefetch(v_row.add(off));
        }
        let k_base = b_i * kstride[0] + kv_pos * kstride[1] + t.k_head * kstride[2];
        let k_row = &t.k_data[k_base..k_base + d];
        let mut acc = [_mm256_setzero_ps(); N];
        for c in 0..k_chunks {
            // Every load is within the first `8 * k_chunks <= d` elements of each row.
            let y = _mm256_cvtph_ps(_mm_loadu_si128(k_row.as_ptr().add(8 * c) as *const __m128i));
            for g in 0..N {
                let x = _mm256_loadu_ps(q_rows[g].as_ptr().add(8 * c));
                acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(x, y));
            }
        }
        for g in 0..N {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(acc[g]),
                _mm256_extractf128_ps::<1>(acc[g]),
            );
            let u = _mm_add_ps(s, _mm_shuffle_ps::<0b10_11_00_01>(s, s));
            let mut sum = _mm_cvtss_f32(_mm_add_ss(u, _mm_movehl_ps(u, u)));
            for i in 8 * k_chunks..d {
                sum += q_rows[g][i] * k_row[i].to_f32();
            }
            let mask_delta = t
                .mask_info
                .map(|mask| t.slope * mask.value(b_i, t.h_i + g, 0, kv_pos))
                .unwrap_or(0.0);
            scores[g][j] = sum * t.scale + mask_delta;
        }
    }
    let mut out = [(0f32, f32::NEG_INFINITY); N];
    for g in 0..N {
        let m = scores[g][..n]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if m != f32::NEG_INFINITY {
            exp_tile(&mut scores[g], m);
        }
        out[g].1 = m;
    }
    for (j, kv_pos) in (start..end).enumerate() {
        let v_base = b_i * vstride[0] + kv_pos * vstride[1] + t.v_head * vstride[2];
        let v_row = &t.v_data[v_base..v_base + dv];
        for c in 0..v_chunks {
            let x = _mm256_cvtph_ps(_mm_loadu_si128(v_row.as_ptr().add(8 * c) as *const __m128i));
            for g in 0..N {
                if out[g].1 != f32::NEG_INFINITY {
                    let a = vkq[g * dv..][..dv].as_mut_ptr().add(8 * c);
                    let w = _mm256_set1_ps(scores[g][j]);
                    _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_mul_ps(x, w)));
                }
            }
        }
        for g in 0..N {
            if out[g].1 != f32::NEG_INFINITY {
                for i in 8 * v_chunks..dv {
                    vkq[g * dv + i] += v_row[i].to_f32() * scores[g][j];
                }
                out[g].0 += scores[g][j];
            }
        }
    }
    out
}

/// Troupe patch: `decode_tile_group_f16` for as many heads as `q_rows` holds (1 to
/// `GROUP_MAX`); returns each head's (sum of weights, max score), in the first `q_rows.len()`
/// places. Call only where the CPU has AVX2, FMA and F16C (`simd_avx2`).
#[cfg(target_arch = "x86_64")]
unsafe fn decode_group_f16(
    t: &DecodeTile<'_, f32, f16>,
    q_rows: &[&[f32]],
    vkq: &mut [f32],
) -> [(f32, f32); GROUP_MAX] {
    macro_rules! run {
        ($n:literal) => {{
            let mut out = [(0f32, f32::NEG_INFINITY); GROUP_MAX];
            let rows = q_rows
                .try_into()
                .expect("as many rows as the match arm's heads");
            out[..$n].copy_from_slice(&decode_tile_group_f16::<$n>(t, rows, vkq));
            out
        }};
    }
    match q_rows.len() {
        1 => run!(1),
        2 => run!(2),
        3 => run!(3),
        4 => run!(4),
        5 => run!(5),
        6 => run!(6),
        7 => run!(7),
        8 => run!(8),
        n => unreachable!("{n} heads in one group (at most GROUP_MAX)"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn decode_group_f16(
    _t: &DecodeTile<'_, f32, f16>,
    _q_rows: &[&[f32]],
    _vkq: &mut [f32],
) -> [(f32, f32); GROUP_MAX] {
    unreachable!("grouped tiles run only where the CPU has AVX2 (`simd_avx2`)")
}

/// Optimised path for the common decode case: q_len == 1 but kv_len ≫ 1.
/// All intermediate maths is done in `f32`; we down‑cast to `T` exactly once
/// when writing the output buffer.
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_single_q<T, K>(
    q_data: &[T],
    k_data: &[K],
    v_data: &[K],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
    K: Copy + UpcastF32 + Sync,
{
    let (b, _q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let kv_tiles = kv_len.div_ceil(TILE_KV);
    let dv = d;

    // --- head tiling factors and softmax helper -----------------------
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    // final output
    let mut out = vec![T::cast(0.0); b * h * dv];
    // scratch: one tile  ×  heads ×  dv  (flattened)
    let mut scratch = vec![0f32; kv_tiles * h * dv];
    let mut scratch_s = vec![0f32; kv_tiles * h]; // softmax S per tile
    let mut scratch_m = vec![f32::NEG_INFINITY; kv_tiles * h];

    // Store as plain usize so the capture is Sync (raw *mut T is not Sync)
    let scratch_ptr = scratch.as_mut_ptr() as usize;
    let scratch_s_ptr = scratch_s.as_mut_ptr() as usize;
    let scratch_m_ptr = scratch_m.as_mut_ptr() as usize;

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    let avx2 = simd_avx2();
    // Troupe patch: heads sharing a key/value head run one grouped tile where it applies.
    let grouped = (avx2 && max_bias == 0.0 && logit_softcap == 0.0 && rk2 == rv2 && rk2 > 1)
        .then(|| {
            Some((
                T::as_f32s(q_data)?,
                K::as_f16s(k_data)?,
                K::as_f16s(v_data)?,
            ))
        })
        .flatten();
    FLASH_ATTN_POOL.install(|| {
        (0..kv_tiles).into_par_iter().for_each(|tile_idx| {
            let start = tile_idx * TILE_KV;
            let end = (start + TILE_KV).min(kv_len);

            for b_i in 0..b {
                let mut h_i = 0;
                while h_i < h {
                    if let Some((q32, k16, v16)) = grouped {
                        let heads = (rk2 - h_i % rk2).min(GROUP_MAX);
                        let mut rows: [&[f32]; GROUP_MAX] = [&[]; GROUP_MAX];
                        for (g, row) in rows[..heads].iter_mut().enumerate() {
                            *row = &q32[b_i * qstride[0] + (h_i + g) * qstride[2]..][..d];
                        }
                        let q_rows = &rows[..heads];
                        let tile = DecodeTile {
                            q_row: q_rows[0],
                            k_data: k16,
                            v_data: v16,
                            kstride,
                            vstride,
                            mask_info: mask_info.as_ref(),
                            b_i,
                            h_i,
                            k_head: h_i / rk2,
                            v_head: h_i / rv2,
                            d,
                            dv,
                            slope: 1.0,
                            scale,
                            logit_softcap,
                            start,
                            end,
                        };
                        let first = tile_idx * h + h_i;
                        // SAFETY: this tile's heads' rows of the scratch buffers, which no
                        // other tile or head touches; the CPU has AVX2, FMA and F16C (`avx2`).
                        unsafe {
                            let vkq = std::slice::from_raw_parts_mut(
                                (scratch_ptr as *mut f32).add(first * dv),
                                heads * dv,
                            );
                            let sm = decode_group_f16(&tile, q_rows, vkq);
                            for (g, &(s, m)) in sm[..heads].iter().enumerate() {
                                *((scratch_s_ptr as *mut f32).add(first + g)) = s;
                                *((scratch_m_ptr as *mut f32).add(first + g)) = m;
                            }
                        }
                        h_i += heads;
                        continue;
                    }
                    // Per‑head slope for ALiBi / NTK bias.
                    let slope = if max_bias > 0.0 {
                        2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                    } else {
                        1.0
                    };
                    let k_head = h_i / rk2;
                    let v_head = h_i / rv2;

                    // pointers into scratch
                    let base_vk = ((tile_idx * h + h_i) * dv) as isize;
                    let base_s = (tile_idx * h + h_i) as isize;

                    let q_base = b_i * qstride[0] + h_i * qstride[2];
                    let q_row = &q_data[q_base..q_base + d];

                    // Re‑materialise the pointer from the captured usize.
                    let vkq: &mut [f32] = unsafe {
                        std::slice::from_raw_parts_mut(
                            (scratch_ptr as *mut f32).add(base_vk as usize),
                            dv,
                        )
                    };
                    let tile = DecodeTile {
                        q_row,
                        k_data,
                        v_data,
                        kstride,
                        vstride,
                        mask_info: mask_info.as_ref(),
                        b_i,
                        h_i,
                        k_head,
                        v_head,
                        d,
                        dv,
                        slope,
                        scale,
                        logit_softcap,
                        start,
                        end,
                    };
                    let (s, m) = if avx2 {
                        // SAFETY: the CPU has AVX2 and FMA (`simd_avx2`).
                        unsafe { decode_tile_avx2(&tile, vkq) }
                    } else {
                        decode_tile::<T, K, false>(&tile, vkq)
                    };

                    unsafe {
                        *((scratch_s_ptr as *mut f32).add(base_s as usize)) = s;
                        *((scratch_m_ptr as *mut f32).add(base_s as usize)) = m;
                    }
                    h_i += 1;
                }
            }
        });
    });

    // -------- serial reduction over tiles (per head) --------
    for b_i in 0..b {
        for h_i in 0..h {
            let out_off = (b_i * h + h_i) * dv;

            // start with tile 0
            let mut vkq = vec![0f32; dv];
            vkq.copy_from_slice(&scratch[(h_i * dv)..(h_i * dv + dv)]);
            let mut s = scratch_s[h_i];
            let mut m = scratch_m[h_i];

            for tile_idx in 1..kv_tiles {
                let base = (tile_idx * h + h_i) * dv;
                let base_s = tile_idx * h + h_i;

                let m_b = scratch_m[base_s];
                let s_b = scratch_s[base_s];
                let vkq_b = &scratch[base..base + dv];

                if m >= m_b {
                    let factor = (m_b - m).exp();
                    for (v, v_b) in vkq.iter_mut().zip(vkq_b) {
                        *v += v_b * factor;
                    }
                    s += s_b * factor;
                } else {
                    let factor = (m - m_b).exp();
                    for (v, v_a) in vkq.iter_mut().zip(vkq_b) {
                        *v = v_a + *v * factor;
                    }
                    s = s_b + s * factor;
                    m = m_b;
                }
            }

            let inv_s = 1.0 / s;
            for (o, v) in out[out_off..][..dv].iter_mut().zip(vkq.iter()) {
                *o = T::cast(*v * inv_s);
            }
        }
    }

    Tensor::from_vec(out, (b, h, 1, dv), &Device::Cpu)
}

/// Troupe patch: attention for several query rows (a prefill) as two matrix products per block
/// of rows, `S = scale * Q Kᵀ` then `O = softmax(S) V`, through `gemm`'s register-blocked
/// kernels. The query rows of all heads that share a key/value head form one block, so each key
/// and value row is read once per block rather than once per query row and head, and no
/// horizontal sum is paid per key. Upstream's loop did one 64-wide dot product, one mask lookup
/// and one axpy per (query row, key): 25 new tokens over 4,000 cached ones took ~570 ms over
/// SmolLM2's 30 layers on two cores, which made a long chat's first word ~3x slower than a short
/// one's. Keys past the last one any row of the block may see (causal masking) are skipped.
/// The softmax is exact (max, then exponentials, then the sum) since a block's scores fit in
/// memory: rows × keys floats. Same shapes and result as `flash_attn_cpu` (B, H, S, D).
#[allow(clippy::too_many_arguments)]
fn prefill_attn_gemm(
    q_data: &[f32],
    k_data: &[f32],
    v_data: &[f32],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
) -> Result<Tensor> {
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let (kv_len, kv_h, dv) = (kshape[1], kshape[2], vshape[3]);
    let group = h / kv_h; // query heads per key/value head
    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");
    let mask = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };
    // Query positions per block: enough blocks that every thread gets two (a chat turn's ~25 new
    // tokens over 3 key/value heads would otherwise leave one of two threads idle a third of the
    // time), at most 32 so a long prompt's score matrix stays a few MB per thread. Larger blocks
    // amortise gemm's packing of the keys, once per block.
    let wanted = 2 * rayon::current_num_threads();
    let q_block = q_len.div_ceil(wanted.div_ceil(b * kv_h)).clamp(1, 32);
    let q_blocks = q_len.div_ceil(q_block);
    let blocks: Vec<(usize, usize, usize)> = (0..b)
        .flat_map(|b_i| (0..kv_h).flat_map(move |g| (0..q_blocks).map(move |qb| (b_i, g, qb))))
        .collect();

    let results: Vec<Vec<f32>> = blocks
        .par_iter()
        .map(|&(b_i, g, qb)| {
            let q0 = qb * q_block;
            let nq = q_block.min(q_len - q0);
            let rows = group * nq;
            // Row r is head g*group + r / nq at query position q0 + r % nq.
            let row_of = |r: usize| (g * group + r / nq, q0 + r % nq);

            let mut qbuf = vec![0f32; rows * d];
            for (r, dst) in qbuf.chunks_exact_mut(d).enumerate() {
                let (h_i, q_pos) = row_of(r);
                let base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                dst.copy_from_slice(&q_data[base..base + d]);
            }

            // Each row's mask as a slice when the mask is laid out contiguously along the keys.
            let mask_row = |h_i: usize, q_pos: usize| -> Option<&[f32]> {
                let m = mask.as_ref()?;
                let at0 = mask_offset(m.dims, m.b, m.h, b_i, h_i, q_pos, 0)?;
                let contiguous = kv_len == 1
                    || mask_offset(m.dims, m.b, m.h, b_i, h_i, q_pos, 1) == Some(at0 + 1);
                (contiguous && at0 + kv_len <= m.data.len()).then(|| &m.data[at0..at0 + kv_len])
            };
            let mask_at = |h_i: usize, q_pos: usize, kv: usize| -> f32 {
                mask.as_ref()
                    .map(|m| m.value(b_i, h_i, q_pos, kv))
                    .unwrap_or(0.0)
            };

            // Keys past the last one any row may see are never computed.
            let mut n = if mask.is_some() { 1 } else { kv_len };
            if mask.is_some() {
                for r in 0..rows {
                    let (h_i, q_pos) = row_of(r);
                    let last = match mask_row(h_i, q_pos) {
                        Some(m) => m[n..]
                            .iter()
                            .rposition(|&x| x != f32::NEG_INFINITY)
                            .map_or(n, |i| n + i + 1),
                        None => (n..kv_len)
                            .rev()
                            .find(|&j| mask_at(h_i, q_pos, j) != f32::NEG_INFINITY)
                            .map_or(n, |j| j + 1),
                    };
                    n = n.max(last);
                }
            }

            // S = scale * Q Kᵀ, stored key-major (the scores of key j for all rows at
            // j*rows..): gemm then reads the cached keys where they lie instead of first copying
            // them into its own layout, one scalar move per element, which cost as much as the
            // product. Kept in this thread's scratch buffer: a fresh allocation this size per
            // block would be mapped and page-faulted anew each time.
            let mut scores = SCORES.with(|s| std::mem::take(&mut *s.borrow_mut()));
            scores.clear();
            scores.resize(rows * n, 0.0);
            let k_base = b_i * kstride[0] + g * kstride[2];
            let v_base = b_i * vstride[0] + g * vstride[2];
            // SAFETY: every index gemm touches lies inside the buffers: S and Q hold rows × n
            // and rows × d; key j, element c is k_data[k_base + j*kstride[1] + c] with
            // j < n <= kv_len and c < d, inside the cache tensor's storage (likewise for V).
            unsafe {
                gemm::gemm(
                    rows,
                    n,
                    d,
                    scores.as_mut_ptr(),
                    rows as isize,
                    1,
                    false,
                    qbuf.as_ptr(),
                    1,
                    d as isize,
                    k_data[k_base..].as_ptr(),
                    kstride[1] as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }

            // The mask, where it is not zero: a causal mask over cached keys is zero but for the
            // last few keys, so only the columns from the first non-zero one on are touched.
            if mask.is_some() {
                let masks: Vec<Option<&[f32]>> = (0..rows)
                    .map(|r| {
                        let (h_i, q_pos) = row_of(r);
                        mask_row(h_i, q_pos)
                    })
                    .collect();
                let from = masks
                    .iter()
                    .map(|m| match m {
                        Some(m) => m[..n].iter().position(|&x| x != 0.0).unwrap_or(n),
                        None => 0,
                    })
                    .min()
                    .unwrap_or(n);
                for j in from..n {
                    let col = &mut scores[j * rows..(j + 1) * rows];
                    for (r, s) in col.iter_mut().enumerate() {
                        *s += match masks[r] {
                            Some(m) => m[j],
                            None => {
                                let (h_i, q_pos) = row_of(r);
                                mask_at(h_i, q_pos, j)
                            }
                        };
                    }
                }
            }

            // Softmax per row (unnormalised; each output row is divided by its sum below), with
            // the key-major layout walked one key at a time so every step is a vector over rows.
            let mut maxes = vec![f32::NEG_INFINITY; rows];
            for col in scores.chunks_exact(rows) {
                maxes.iter_mut().zip(col).for_each(|(m, &s)| *m = m.max(s));
            }
            let mut sums = vec![0f32; rows];
            for col in scores.chunks_exact_mut(rows) {
                exp_minus(col, &maxes);
                sums.iter_mut().zip(col.iter()).for_each(|(t, &p)| *t += p);
            }

            // O = P V, rows × dv.
            let mut outbuf = vec![0f32; rows * dv];
            // SAFETY: as above; V row j, element c is v_data[v_base + j*vstride[1] + c].
            unsafe {
                gemm::gemm(
                    rows,
                    dv,
                    n,
                    outbuf.as_mut_ptr(),
                    1,
                    dv as isize,
                    false,
                    scores.as_ptr(),
                    rows as isize,
                    1,
                    v_data[v_base..].as_ptr(),
                    1,
                    vstride[1] as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for (row, sum) in outbuf.chunks_exact_mut(dv).zip(&sums) {
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inv);
            }
            SCORES.with(|s| *s.borrow_mut() = scores);
            outbuf
        })
        .collect();

    let mut out = vec![0f32; b * h * q_len * dv];
    for (&(b_i, g, qb), block) in blocks.iter().zip(&results) {
        let q0 = qb * q_block;
        let nq = q_block.min(q_len - q0);
        for (r, row) in block.chunks_exact(dv).enumerate() {
            let (h_i, q_pos) = (g * group + r / nq, q0 + r % nq);
            let at = ((b_i * h + h_i) * q_len + q_pos) * dv;
            out[at..at + dv].copy_from_slice(row);
        }
    }
    Tensor::from_vec(out, (b, h, q_len, dv), &Device::Cpu)
}

thread_local! {
    /// Troupe patch: `prefill_attn_gemm`'s score matrix, kept per thread between calls.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Main forward flash-attention CPU routine.
/// Shapes follow Candle convention: (B, S, H, D)
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[f32]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let dv = d;

    let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);

    let mut out = vec![T::cast(0.0); b * q_len * h * dv];

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    FLASH_ATTN_POOL.install(|| {
        out.par_chunks_mut(dv)
            .with_min_len(64)
            .enumerate()
            .for_each(|(row_idx, out_chunk)| {
                // Decode flat index back to (batch, head, q_pos)
                let rows_per_batch = h * q_len;
                let b_i = row_idx / rows_per_batch;
                let rem = row_idx % rows_per_batch;
                let h_i = rem / q_len;
                let q_pos = rem % q_len;

                let slope = if max_bias > 0.0 {
                    2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
                } else {
                    1.0
                };

                let k_head = h_i / rk2;
                let v_head = h_i / rv2;

                let mut vkq = vec![0f32; dv];
                let mut s = 0.0f32;
                let mut m = f32::NEG_INFINITY;

                // Q row
                let q_base = b_i * qstride[0] + q_pos * qstride[1] + h_i * qstride[2];
                let q_row = &q_data[q_base..q_base + d];

                let mut scale_applied = scale;
                if logit_softcap != 0.0 {
                    scale_applied /= logit_softcap;
                }

                // Troupe patch: keys in tiles of TILE_KV, each in two passes (scores, then one
                // max, one rescale of the accumulator and one batch of vectorised exponentials)
                // instead of a branch, a possible rescale and a libm exp at every key.
                let mut scores = [f32::NEG_INFINITY; TILE_KV];
                let mut tile_start = 0;
                while tile_start < kv_len {
                    let tile_end = (tile_start + TILE_KV).min(kv_len);
                    let n = tile_end - tile_start;
                    let mut any = false;
                    for (j, kv_pos) in (tile_start..tile_end).enumerate() {
                        let mv = mask_info
                            .as_ref()
                            .map(|mask| slope * mask.value(b_i, h_i, q_pos, kv_pos))
                            .unwrap_or(0.0);
                        if mv == f32::NEG_INFINITY {
                            scores[j] = f32::NEG_INFINITY;
                            continue;
                        }
                        let k_base = b_i * kstride[0] + kv_pos * kstride[1] + k_head * kstride[2];
                        let k_row = &k_data[k_base..k_base + d];
                        let mut s_val = vec_dot_f32::<T, T, false>(q_row, k_row) * scale_applied;
                        if logit_softcap != 0.0 {
                            s_val = logit_softcap * s_val.tanh();
                        }
                        scores[j] = s_val + mv;
                        any = true;
                    }
                    if any {
                        let tile_m = scores[..n]
                            .iter()
                            .copied()
                            .fold(f32::NEG_INFINITY, f32::max);
                        if tile_m > m {
                            if m != f32::NEG_INFINITY {
                                let ms = (m - tile_m).exp();
                                for v in vkq.iter_mut() {
                                    *v *= ms;
                                }
                                s *= ms;
                            }
                            m = tile_m;
                        }
                        scores[n..].fill(f32::NEG_INFINITY);
                        exp_tile(&mut scores, m);
                        for (j, kv_pos) in (tile_start..tile_end).enumerate() {
                            if scores[j] == 0.0 {
                                continue;
                            }
                            let v_base =
                                b_i * vstride[0] + kv_pos * vstride[1] + v_head * vstride[2];
                            axpy_f32::<T, false>(&mut vkq, &v_data[v_base..v_base + dv], scores[j]);
                            s += scores[j];
                        }
                    }
                    tile_start = tile_end;
                }

                // final normalisation + downcast
                let inv_s = 1.0 / s;
                for (o, v) in out_chunk.iter_mut().zip(vkq.iter()) {
                    *o = T::cast(*v * inv_s);
                }
            });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SdpaParams;
    use candle_core::{Device, Tensor, D};
    use candle_nn::ops::softmax;

    use candle_core::Result as CandleResult;

    const EPS: f32 = 1e-4;

    // Troupe patch: the gemm prefill path against plain attention (matmul, mask, softmax,
    // matmul), with grouped heads, a causal mask over cached keys, and a block size that does
    // not divide the query length.
    #[test]
    fn prefill_gemm_matches_plain_attention() -> CandleResult<()> {
        let (b, h, kv_h, d) = (2, 6, 2, 64);
        for &(q_len, past) in &[(25usize, 300usize), (7, 0), (70, 33), (1 + 1, 5)] {
            let kv_len = past + q_len;
            let dev = &Device::Cpu;
            let q = Tensor::randn(0f32, 1., (b, q_len, h, d), dev)?;
            let k = Tensor::randn(0f32, 1., (b, kv_len, kv_h, d), dev)?;
            let v = Tensor::randn(0f32, 1., (b, kv_len, kv_h, d), dev)?;
            let m: Vec<f32> = (0..q_len * kv_len)
                .map(|i| {
                    if i % kv_len > past + i / kv_len {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(m, (1, 1, q_len, kv_len), dev)?;
            let sdpa = SdpaParams {
                softmax_scale: 0.125,
                softcap: None,
                n_kv_groups: h / kv_h,
                sliding_window: None,
                sinks: None,
            };
            let out = run_flash_attn_cpu::<f32>(&q, &k, &v, Some(&mask), &sdpa)?;

            let rep = |x: &Tensor| -> CandleResult<Tensor> {
                // (b, s, kv_h, d) -> (b, h, s, d), each key/value head repeated for its group.
                let x = x.permute((0, 2, 1, 3))?.contiguous()?;
                let parts: Vec<Tensor> = (0..h)
                    .map(|i| x.narrow(1, i / (h / kv_h), 1))
                    .collect::<CandleResult<_>>()?;
                Tensor::cat(&parts, 1)?.contiguous()
            };
            let qp = q.permute((0, 2, 1, 3))?.contiguous()?;
            let logits = (qp.matmul(&rep(&k)?.transpose(2, 3)?.contiguous()?)? * 0.125)?;
            let logits = logits.broadcast_add(&mask)?;
            let want = softmax(&logits, D::Minus1)?.matmul(&rep(&v)?)?;
            assert_eq!(out.dims(), want.dims());
            let diff = (out - want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(
                diff < EPS,
                "q_len {q_len}, past {past}: max difference {diff}"
            );
        }
        Ok(())
    }

    // Troupe patch: the vectorised exponential against libm, over the whole range it sees.
    #[test]
    fn exp_tile_matches_expf() {
        let mut worst = 0f32;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let mut tile = [x; TILE_KV];
            tile[1] = f32::NEG_INFINITY;
            exp_tile(&mut tile, 0.0);
            assert_eq!(tile[1], 0.0, "a masked key weighs nothing");
            let want = x.exp();
            if want > 1e-30 {
                worst = worst.max(((tile[0] - want) / want).abs());
            } else {
                assert!(tile[0] < 1e-30);
            }
            x += 0.013;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }

    // Troupe patch: the vectorised dot product against a plain sum, odd lengths included.
    #[test]
    fn vec_dot_matches_the_plain_sum() {
        for n in [1usize, 7, 8, 63, 64, 128, 130] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 104729) % 89) as f32 / 40.0 - 1.0)
                .collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = vec_dot_f32::<f32, f32, false>(&a, &b) as f64;
            assert!(
                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                "n={n}: {got} vs {want}"
            );
            // The AVX form gives the portable loop's result, bit for bit.
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                assert_eq!(
                    unsafe { vec_dot_f32_avx(&a, &b) }.to_bits(),
                    vec_dot_f32_portable(&a, &b).to_bits(),
                    "n={n}"
                );
            }
        }
    }

    // Troupe patch: the decode tile compiled for AVX2 gives the portable build's weights, sums
    // and maxima bit for bit (f32 keys and values, a partial tile, a masked key).
    #[test]
    fn decode_tile_avx2_matches_the_portable_one_bit_for_bit() {
        if !simd_avx2() {
            eprintln!("no AVX2 here: only the portable decode tile runs");
            return;
        }
        let (d, kv_len) = (64usize, 13usize);
        let val = |i: usize, p: usize, m: usize| ((i * p) % m) as f32 / (m as f32 / 2.0) - 1.0;
        let q: Vec<f32> = (0..d).map(|i| val(i, 7919, 97)).collect();
        let k: Vec<f32> = (0..kv_len * d).map(|i| val(i, 104729, 89)).collect();
        let v: Vec<f32> = (0..kv_len * d).map(|i| val(i, 15485863, 83)).collect();
        let mut mask = vec![0f32; kv_len];
        mask[3] = f32::NEG_INFINITY;
        let dims = [1usize, 1, 1, kv_len];
        let mask_info = MaskInfo {
            data: &mask,
            dims: &dims,
            b: 1,
            h: 1,
        };
        let stride = [kv_len * d, d, d, 1];
        for masked in [false, true] {
            let tile = DecodeTile {
                q_row: &q,
                k_data: &k,
                v_data: &v,
                kstride: &stride,
                vstride: &stride,
                mask_info: masked.then_some(&mask_info),
                b_i: 0,
                h_i: 0,
                k_head: 0,
                v_head: 0,
                d,
                dv: d,
                slope: 1.0,
                scale: 0.125,
                logit_softcap: 0.0,
                start: 0,
                end: kv_len,
            };
            let mut plain = vec![0f32; d];
            let mut avx = vec![0f32; d];
            let (s0, m0) = decode_tile::<f32, f32, false>(&tile, &mut plain);
            let (s1, m1) = unsafe { decode_tile_avx2(&tile, &mut avx) };
            assert!(s0 > 0.0 && m0.is_finite());
            assert_eq!((s0.to_bits(), m0.to_bits()), (s1.to_bits(), m1.to_bits()));
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain), bits(&avx), "masked: {masked}");
        }
    }

    // Troupe patch: F16 keys and values (the KV cache kept in F16) read against f32 queries
    // give what the f32 kernels give on the same, widened, values, bit for bit, in the portable
    // tile and the AVX2 one; and a whole decode step and prefill through `run_flash_attn_cpu`
    // stay within F16's rounding of the f32 result.
    #[test]
    fn f16_keys_and_values_read_as_their_f32_values() -> CandleResult<()> {
        let (d, kv_len) = (64usize, 21usize);
        let val = |i: usize, p: usize, m: usize| ((i * p) % m) as f32 / (m as f32 / 2.0) - 1.0;
        let q: Vec<f32> = (0..d).map(|i| val(i, 7919, 97)).collect();
        let k16: Vec<f16> = (0..kv_len * d)
            .map(|i| f16::from_f32(val(i, 104729, 89)))
            .collect();
        let v16: Vec<f16> = (0..kv_len * d)
            .map(|i| f16::from_f32(val(i, 15485863, 83)))
            .collect();
        let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
        let v32: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
        let stride = [kv_len * d, d, d, 1];
        let tile = |k: &[f32], v: &[f32], avx: bool| {
            let t = DecodeTile {
                q_row: &q,
                k_data: k,
                v_data: v,
                kstride: &stride,
                vstride: &stride,
                mask_info: None,
                b_i: 0,
                h_i: 0,
                k_head: 0,
                v_head: 0,
                d,
                dv: d,
                slope: 1.0,
                scale: 0.125,
                logit_softcap: 0.0,
                start: 0,
                end: TILE_KV.min(kv_len),
            };
            let mut out = vec![0f32; d];
            let (s, m) = if avx {
                unsafe { decode_tile_avx2(&t, &mut out) }
            } else {
                decode_tile::<f32, f32, false>(&t, &mut out)
            };
            (
                s.to_bits(),
                m.to_bits(),
                out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            )
        };
        let tile16 = |avx: bool| {
            let t = DecodeTile {
                q_row: &q,
                k_data: &k16,
                v_data: &v16,
                kstride: &stride,
                vstride: &stride,
                mask_info: None,
                b_i: 0,
                h_i: 0,
                k_head: 0,
                v_head: 0,
                d,
                dv: d,
                slope: 1.0,
                scale: 0.125,
                logit_softcap: 0.0,
                start: 0,
                end: TILE_KV.min(kv_len),
            };
            let mut out = vec![0f32; d];
            let (s, m) = if avx {
                unsafe { decode_tile_avx2(&t, &mut out) }
            } else {
                decode_tile::<f32, f16, false>(&t, &mut out)
            };
            (
                s.to_bits(),
                m.to_bits(),
                out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(tile16(false), tile(&k32, &v32, false));
        if simd_avx2() {
            assert_eq!(tile16(true), tile(&k32, &v32, true));
        }

        // Whole steps: (b, seq, heads, d), two query heads over one key/value head.
        let dev = Device::Cpu;
        let (h, kv_h, q_len) = (2usize, 1usize, 5usize);
        let sdpa = SdpaParams {
            n_kv_groups: h / kv_h,
            softcap: None,
            softmax_scale: 0.125,
            sliding_window: None,
            sinks: None,
        };
        let k = Tensor::from_vec(k32.clone(), (1, kv_len, kv_h, d), &dev)?;
        let v = Tensor::from_vec(v32.clone(), (1, kv_len, kv_h, d), &dev)?;
        let (k16t, v16t) = (k.to_dtype(DType::F16)?, v.to_dtype(DType::F16)?);
        let causal: Vec<f32> = (0..q_len * kv_len)
            .map(|i| {
                if i % kv_len > kv_len - q_len + i / kv_len {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        for rows in [1usize, q_len] {
            let qs: Vec<f32> = (0..rows * h * d).map(|i| val(i, 7919, 97)).collect();
            let q = Tensor::from_vec(qs, (1, rows, h, d), &dev)?;
            let mask = (rows > 1)
                .then(|| Tensor::from_vec(causal.clone(), (1, 1, rows, kv_len), &dev))
                .transpose()?;
            let want = run_flash_attn_cpu::<f32>(&q, &k, &v, mask.as_ref(), &sdpa)?;
            let got = run_flash_attn_cpu::<f32>(&q, &k16t, &v16t, mask.as_ref(), &sdpa)?;
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "{rows} query rows");
        }
        Ok(())
    }

    // Troupe patch: a prefill over F16 keys and values laid out as the KV cache lays them out
    // (heads first, a capacity past the tokens written, viewed as (b, seq, heads, d)) and laid
    // out token first gives what the f32 kernels give on the same values, bit for bit: the
    // widening reads only the tokens in view, each from where the view's strides put it.
    #[test]
    fn a_prefill_widens_the_cache_views_tokens_where_they_lie() -> CandleResult<()> {
        let dev = Device::Cpu;
        let (d, kv_h, h, capacity, kv_len, q_len) = (64usize, 2usize, 4usize, 40, 29, 6);
        let val = |i: usize, p: usize, m: usize| ((i * p) % m) as f32 / (m as f32 / 2.0) - 1.0;
        let cache = |p: usize, m: usize| -> CandleResult<Tensor> {
            let xs: Vec<f32> = (0..kv_h * capacity * d).map(|i| val(i, p, m)).collect();
            Tensor::from_vec(xs, (1, kv_h, capacity, d), &dev)?.to_dtype(DType::F16)
        };
        let (k_cache, v_cache) = (cache(104729, 89)?, cache(15485863, 83)?);
        // As the cache hands them out: the tokens written, then (b, seq, heads, d).
        let view = |c: &Tensor| c.narrow(2, 0, kv_len)?.transpose(1, 2);
        let (k16, v16) = (view(&k_cache)?, view(&v_cache)?);
        assert_ne!(
            k16.stride()[2],
            kv_len * d,
            "the view must reach past its tokens"
        );
        // The same values, token first (another stride order).
        let (k16c, v16c) = (k16.contiguous()?, v16.contiguous()?);
        let (k32, v32) = (k16.to_dtype(DType::F32)?, v16.to_dtype(DType::F32)?);
        let sdpa = SdpaParams {
            n_kv_groups: h / kv_h,
            softcap: None,
            softmax_scale: 0.125,
            sliding_window: None,
            sinks: None,
        };
        let causal: Vec<f32> = (0..q_len * kv_len)
            .map(|i| {
                if i % kv_len > kv_len - q_len + i / kv_len {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(causal, (1, 1, q_len, kv_len), &dev)?;
        let qs: Vec<f32> = (0..q_len * h * d).map(|i| val(i, 7919, 97)).collect();
        let q = Tensor::from_vec(qs, (1, q_len, h, d), &dev)?;
        let want = run_flash_attn_cpu::<f32>(&q, &k32, &v32, Some(&mask), &sdpa)?;
        for (k, v, layout) in [(&k16, &v16, "the cache's"), (&k16c, &v16c, "token first")] {
            let got = run_flash_attn_cpu::<f32>(&q, k, v, Some(&mask), &sdpa)?;
            let diff = (got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "{layout} layout");
        }
        Ok(())
    }

    // Troupe patch: a grouped decode tile (heads sharing a key/value head, F16 keys and values)
    // gives each head what the one-head tile gives it, bit for bit: 1 to GROUP_MAX heads, a
    // partial tile, a row length with a tail past the last eight, a masked key and a head whose
    // every key is masked. Then whole decode steps through `flash_attn_cpu_single_q` (groups of
    // 7 and of 9, split 8 + 1, over three tiles) against the f32 path on the same values.
    #[test]
    fn grouped_decode_tiles_match_one_head_at_a_time_bit_for_bit() -> CandleResult<()> {
        if !simd_avx2() {
            eprintln!("no AVX2 here: grouped tiles do not run");
            return Ok(());
        }
        let val = |i: usize, p: usize, m: usize| ((i * p) % m) as f32 / (m as f32 / 2.0) - 1.0;
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for d in [64usize, 68] {
            let kv_len = 13usize;
            let k: Vec<f16> = (0..kv_len * d)
                .map(|i| f16::from_f32(val(i, 104729, 89)))
                .collect();
            let v: Vec<f16> = (0..kv_len * d)
                .map(|i| f16::from_f32(val(i, 15485863, 83)))
                .collect();
            let stride = [kv_len * d, d, d, 1];
            for n in 1..=GROUP_MAX {
                let q: Vec<Vec<f32>> = (0..n)
                    .map(|g| (0..d).map(|i| val(i + g * d, 7919, 97)).collect())
                    .collect();
                let mut mask = vec![0f32; n * kv_len];
                mask[3] = f32::NEG_INFINITY;
                if n > 2 {
                    mask[2 * kv_len..3 * kv_len].fill(f32::NEG_INFINITY);
                }
                let dims = [1usize, n, 1, kv_len];
                let mask_info = MaskInfo {
                    data: &mask,
                    dims: &dims,
                    b: 1,
                    h: n,
                };
                let tile = |h_i: usize| DecodeTile {
                    q_row: &q[h_i],
                    k_data: &k,
                    v_data: &v,
                    kstride: &stride,
                    vstride: &stride,
                    mask_info: Some(&mask_info),
                    b_i: 0,
                    h_i,
                    k_head: 0,
                    v_head: 0,
                    d,
                    dv: d,
                    slope: 1.0,
                    scale: 0.125,
                    logit_softcap: 0.0,
                    start: 0,
                    end: kv_len,
                };
                let rows: Vec<&[f32]> = q.iter().map(|r| r.as_slice()).collect();
                let mut grouped = vec![0f32; n * d];
                let sm = unsafe { decode_group_f16(&tile(0), &rows, &mut grouped) };
                for g in 0..n {
                    let mut one = vec![0f32; d];
                    let (s, m) = unsafe { decode_tile_avx2(&tile(g), &mut one) };
                    let (gs, gm) = sm[g];
                    assert_eq!((gs.to_bits(), gm.to_bits()), (s.to_bits(), m.to_bits()));
                    assert_eq!(
                        bits(&grouped[g * d..][..d]),
                        bits(&one),
                        "d {d}, head {g}/{n}"
                    );
                }
            }
        }

        for (h, kv_h) in [(14usize, 2usize), (18, 2)] {
            let (d, kv_len) = (64usize, 37usize);
            let q: Vec<f32> = (0..h * d).map(|i| val(i, 7919, 97)).collect();
            let k16: Vec<f16> = (0..kv_len * kv_h * d)
                .map(|i| f16::from_f32(val(i, 104729, 89)))
                .collect();
            let v16: Vec<f16> = (0..kv_len * kv_h * d)
                .map(|i| f16::from_f32(val(i, 15485863, 83)))
                .collect();
            let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
            let v32: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
            let mask: Vec<f32> = (0..h * kv_len)
                .map(|i| if i % 11 == 5 { f32::NEG_INFINITY } else { 0.0 })
                .collect();
            let mdims = [1usize, h, 1, kv_len];
            let (qshape, kshape) = ([1usize, 1, h, d], [1usize, kv_len, kv_h, d]);
            let (qstride, kstride) = ([h * d, h * d, d, 1], [kv_len * kv_h * d, kv_h * d, d, 1]);
            let step = |k: &[f32], v: &[f32]| {
                flash_attn_cpu_single_q::<f32, f32>(
                    &q,
                    k,
                    v,
                    Some(&mask),
                    Some(&mdims),
                    &qshape,
                    &kshape,
                    &kshape,
                    &qstride,
                    &kstride,
                    &kstride,
                    0.125,
                    0.0,
                    0.0,
                )
            };
            let want = step(&k32, &v32)?.flatten_all()?.to_vec1::<f32>()?;
            let got = flash_attn_cpu_single_q::<f32, f16>(
                &q,
                &k16,
                &v16,
                Some(&mask),
                Some(&mdims),
                &qshape,
                &kshape,
                &kshape,
                &qstride,
                &kstride,
                &kstride,
                0.125,
                0.0,
                0.0,
            )?
            .flatten_all()?
            .to_vec1::<f32>()?;
            assert_eq!(bits(&got), bits(&want), "{h} heads over {kv_h}");
        }
        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_single_q() -> CandleResult<()> {
        // Test for q_len == 1 (single Q)
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q() -> CandleResult<()> {
        // Test for q_len > 1 (full Q)
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        // 7) Compare element‐by‐element
        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_single_q_softcap() -> CandleResult<()> {
        // Test for q_len == 1 (single Q) with softcap
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q_softcap() -> CandleResult<()> {
        // Test for q_len > 1 (full Q) with softcap
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }
}
