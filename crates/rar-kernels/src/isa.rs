//! Which instruction set the kernels use, chosen once at run time.
//!
//! The project's machines differ (some have AVX-512, some only AVX2 + FMA), so nothing is
//! compiled for a fixed target: every kernel has a portable version and, on x86-64, an
//! AVX2 + FMA version (and the packed products an AVX-512 one) selected by
//! `is_x86_feature_detected!`. `RAR_KERNELS_ISA=portable` or `=avx2` caps the level (the
//! tests run every level the CPU has).

use std::sync::OnceLock;

/// An instruction-set level the kernels are compiled for; each level includes the ones
/// before it (kernels without a version for a level use the highest one below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the baseline target only.
    Portable,
    /// x86-64 with AVX2 and FMA (256-bit registers, fused multiply-add).
    Avx2Fma,
    /// x86-64 with AVX-512F besides AVX2 and FMA (512-bit registers).
    Avx512,
}

impl Isa {
    /// The best level this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Self::Avx512;
                }
                return Self::Avx2Fma;
            }
        }
        Self::Portable
    }

    /// The level in use: [`Isa::detect`], capped by `RAR_KERNELS_ISA=portable` or `=avx2`
    /// (read once per process).
    pub fn active() -> Self {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| match std::env::var("RAR_KERNELS_ISA").as_deref() {
            Ok("portable") => Self::Portable,
            Ok("avx2") => Self::detect().min(Self::Avx2Fma),
            _ => Self::detect(),
        })
    }

    /// Every level this CPU can run, lowest first (for tests and benchmarks).
    pub fn available() -> Vec<Self> {
        [Self::Portable, Self::Avx2Fma, Self::Avx512]
            .into_iter()
            .filter(|&isa| isa <= Self::detect())
            .collect()
    }

    /// A short name for logs and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2Fma => "avx2+fma",
            Self::Avx512 => "avx512f",
        }
    }
}

/// Runs `body` compiled for AVX2 + FMA when [`Isa::active`] has them, as plain Rust
/// otherwise: loops written once (`#[inline(always)]` helpers called from `body`) are then
/// vectorised 8 floats wide with fused multiply-adds on the CPUs that have them. Mark the
/// closure `#[inline(always)]` (else it may be compiled on its own, for the baseline), and
/// keep rayon out of `body`: work it spawns runs outside this function and loses the features.
#[inline(always)]
pub(crate) fn with_simd<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if Isa::active() >= Isa::Avx512 {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn avx512<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        // SAFETY: the active level includes AVX-512F, AVX2 and FMA, so the CPU has them.
        return unsafe { avx512(body) };
    }
    #[cfg(target_arch = "x86_64")]
    if Isa::active() >= Isa::Avx2Fma {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        // SAFETY: the active level includes AVX2 and FMA, so the CPU has both.
        return unsafe { avx2(body) };
    }
    body()
}
