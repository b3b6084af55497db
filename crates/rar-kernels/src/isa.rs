//! Which instruction set the kernels use, chosen once at run time.
//!
//! The project's machines differ (some have AVX-512, some only AVX2 + FMA), so nothing is
//! compiled for a fixed target: every kernel has a portable version and, on x86-64, an
//! AVX2 + FMA version selected by `is_x86_feature_detected!`. `RAR_KERNELS_ISA=portable`
//! forces the portable code (the tests run both).

use std::sync::OnceLock;

/// An instruction-set level the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the baseline target only.
    Portable,
    /// x86-64 with AVX2 and FMA (256-bit registers, fused multiply-add).
    Avx2Fma,
}

impl Isa {
    /// The best level this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2Fma;
            }
        }
        Self::Portable
    }

    /// The level in use: [`Isa::detect`], unless `RAR_KERNELS_ISA=portable` asks for the
    /// portable code (read once per process).
    pub fn active() -> Self {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| match std::env::var("RAR_KERNELS_ISA").as_deref() {
            Ok("portable") => Self::Portable,
            _ => Self::detect(),
        })
    }

    /// A short name for logs and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2Fma => "avx2+fma",
        }
    }
}
