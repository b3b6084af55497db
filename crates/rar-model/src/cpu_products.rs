//! Which instruction set flex's f32 matrix products run on here. They are `gemm`'s kernels
//! (burn-flex's products and the fused linear of the training step), which pick their level
//! once at run time; the AVX-512 level exists only when this crate's `avx512` feature put it
//! into the build. A benchmark prints this next to its figures, since the same binary runs
//! different kernels on different CPUs, and a build without the feature runs the products as
//! an AVX2-only CPU would.

use std::fmt;

/// The kernel level of flex's f32 matrix products, as `gemm` chooses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuProducts {
    /// 512-bit kernels: the `avx512` feature is on and the CPU has avx512f.
    Avx512,
    /// 256-bit AVX2 + FMA kernels: the CPU has FMA, and AVX-512 is absent or not built in.
    Avx2Fma,
    /// Anything else: scalar kernels on x86 without FMA, or another architecture's own.
    Other,
}

impl CpuProducts {
    /// The level `gemm` uses in this build on this CPU (its own dispatch order: avx512f when
    /// built in, then fma, then scalar).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if Self::avx512_built_in() && std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("fma") {
                return Self::Avx2Fma;
            }
        }
        Self::Other
    }

    /// Whether this build holds the AVX-512 kernels at all (whatever the CPU).
    pub fn avx512_built_in() -> bool {
        cfg!(all(feature = "flex", feature = "avx512"))
    }
}

impl fmt::Display for CpuProducts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = if Self::avx512_built_in() {
            "AVX-512 built in"
        } else {
            "built without AVX-512"
        };
        let level = match self {
            Self::Avx512 => "gemm AVX-512",
            Self::Avx2Fma => "gemm AVX2+FMA",
            Self::Other => "gemm scalar/other",
        };
        write!(f, "{level} ({built})")
    }
}
