//! Useful functions for checking features.
use std::str::FromStr;

pub fn get_num_threads() -> usize {
    // Respond to the same environment variable as rayon.
    match std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| usize::from_str(&s).ok())
    {
        Some(x) if x > 0 => x,
        Some(_) | None => num_cpus::get(),
    }
}

pub fn has_accelerate() -> bool {
    cfg!(feature = "accelerate")
}

pub fn has_mkl() -> bool {
    cfg!(feature = "mkl")
}

pub fn cuda_is_available() -> bool {
    cfg!(feature = "cuda")
}

pub fn metal_is_available() -> bool {
    cfg!(feature = "metal")
}

// Troupe patch: the quantised kernels are chosen at run time (`quantized::cpu_kernels`), so a
// binary built for plain x86-64 runs AVX2 code where the CPU has it. These two say what the
// kernels use now, instead of what the build targeted (false on every CPU for such a binary).
pub fn with_avx() -> bool {
    cfg!(target_feature = "avx2")
        || crate::quantized::cpu_kernels() != crate::quantized::CpuKernels::Scalar
}

pub fn with_neon() -> bool {
    cfg!(target_feature = "neon")
}

pub fn with_simd128() -> bool {
    cfg!(target_feature = "simd128")
}

pub fn with_f16c() -> bool {
    cfg!(target_feature = "f16c")
        || crate::quantized::cpu_kernels() != crate::quantized::CpuKernels::Scalar
}
