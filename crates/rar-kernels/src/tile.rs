//! The micro-kernels of [`crate::PackedLinear`]: one tile of up to
//! [`crate::MAX_TILE_ROWS`] rows against one 16-column weight panel — AVX-512 (the panel is
//! one 512-bit register per row), AVX2 + FMA (two 256-bit registers) or portable.

use crate::bf16::from_bf16;
use crate::isa::Isa;
use crate::packed::PANEL;

/// Calls the micro-kernel `$module::$kernel::<MR>` for the row count `$mr` (1 to 6; more is 6).
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($module:ident::$kernel:ident, $mr:expr, $($arg:expr),*) => {
        match $mr {
            1 => $module::$kernel::<1>($($arg),*),
            2 => $module::$kernel::<2>($($arg),*),
            3 => $module::$kernel::<3>($($arg),*),
            4 => $module::$kernel::<4>($($arg),*),
            5 => $module::$kernel::<5>($($arg),*),
            _ => $module::$kernel::<6>($($arg),*),
        }
    };
}

/// `tile[r, 0..16] = Σ_k x[r, k] · w[k, 0..16]` for `mr` rows, f32 panel.
pub(crate) fn tile_f32(isa: Isa, mr: usize, x: &[f32], k: usize, w: &[f32], tile: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `forward_with` lowers `isa` to what the CPU has (here AVX-512F); the slices
        // have the lengths the kernel reads.
        unsafe { by_rows!(avx512::tile_f32, mr, x, k, w, tile) }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: as above, for AVX2 and FMA.
        unsafe { by_rows!(avx2::tile_f32, mr, x, k, w, tile) }
        return;
    }
    let _ = isa;
    portable_tile(mr, x, k, tile, |kk, j| w[kk * PANEL + j]);
}

/// As [`tile_f32`] for a bf16 panel.
pub(crate) fn tile_bf16(isa: Isa, mr: usize, x: &[f32], k: usize, w: &[u16], tile: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: as in `tile_f32`.
        unsafe { by_rows!(avx512::tile_bf16, mr, x, k, w, tile) }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: as in `tile_f32`.
        unsafe { by_rows!(avx2::tile_bf16, mr, x, k, w, tile) }
        return;
    }
    let _ = isa;
    portable_tile(mr, x, k, tile, |kk, j| from_bf16(w[kk * PANEL + j]));
}

fn portable_tile(
    mr: usize,
    x: &[f32],
    k: usize,
    tile: &mut [f32],
    weight: impl Fn(usize, usize) -> f32,
) {
    for r in 0..mr {
        let mut acc = [0f32; PANEL];
        let xr = &x[r * k..(r + 1) * k];
        for (kk, &xv) in xr.iter().enumerate() {
            for (j, a) in acc.iter_mut().enumerate() {
                *a += xv * weight(kk, j);
            }
        }
        tile[r * PANEL..(r + 1) * PANEL].copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` holds `MR·k` values, `w` `k·16`, `tile` ≥ `MR·16`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_f32<const MR: usize>(
        x: &[f32],
        k: usize,
        w: &[f32],
        tile: &mut [f32],
    ) {
        debug_assert!(x.len() >= MR * k && w.len() >= k * PANEL && tile.len() >= MR * PANEL);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: kk < k, so both loads are inside `w` and every broadcast inside `x`.
            unsafe {
                let w0 = _mm256_loadu_ps(wp.add(kk * PANEL));
                let w1 = _mm256_loadu_ps(wp.add(kk * PANEL + 8));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xp.add(r * k + kk));
                    a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                }
            }
        }
        store(&acc, tile);
    }

    /// # Safety
    /// As [`tile_f32`], with a bf16 panel.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_bf16<const MR: usize>(
        x: &[f32],
        k: usize,
        w: &[u16],
        tile: &mut [f32],
    ) {
        debug_assert!(x.len() >= MR * k && w.len() >= k * PANEL && tile.len() >= MR * PANEL);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: as in `tile_f32`; 16 u16 = one 256-bit load.
            unsafe {
                let raw = _mm256_loadu_si256(wp.add(kk * PANEL) as *const __m256i);
                let lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
                let hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(raw));
                let w0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo));
                let w1 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xp.add(r * k + kk));
                    a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                }
            }
        }
        store(&acc, tile);
    }

    #[target_feature(enable = "avx2,fma")]
    fn store<const MR: usize>(acc: &[[__m256; 2]; MR], tile: &mut [f32]) {
        for (r, a) in acc.iter().enumerate() {
            let dst = &mut tile[r * PANEL..(r + 1) * PANEL];
            // SAFETY: `dst` holds 16 values.
            unsafe {
                _mm256_storeu_ps(dst.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(8), a[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// # Safety
    /// The CPU must support AVX-512F; `x` holds `MR·k` values, `w` `k·16`, `tile` ≥ `MR·16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_f32<const MR: usize>(
        x: &[f32],
        k: usize,
        w: &[f32],
        tile: &mut [f32],
    ) {
        debug_assert!(x.len() >= MR * k && w.len() >= k * PANEL && tile.len() >= MR * PANEL);
        let mut acc = [_mm512_setzero_ps(); MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: kk < k, so the load is inside `w` and every broadcast inside `x`.
            unsafe {
                let wv = _mm512_loadu_ps(wp.add(kk * PANEL));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(r * k + kk)), wv, *a);
                }
            }
        }
        store(&acc, tile);
    }

    /// # Safety
    /// As [`tile_f32`], with a bf16 panel (16 u16 widened to f32 by a shift of 16 bits).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_bf16<const MR: usize>(
        x: &[f32],
        k: usize,
        w: &[u16],
        tile: &mut [f32],
    ) {
        debug_assert!(x.len() >= MR * k && w.len() >= k * PANEL && tile.len() >= MR * PANEL);
        let mut acc = [_mm512_setzero_ps(); MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: as in `tile_f32`; 16 u16 = one 256-bit load.
            unsafe {
                let raw = _mm256_loadu_si256(wp.add(kk * PANEL) as *const __m256i);
                let wv = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(raw)));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(r * k + kk)), wv, *a);
                }
            }
        }
        store(&acc, tile);
    }

    #[target_feature(enable = "avx512f")]
    fn store<const MR: usize>(acc: &[__m512; MR], tile: &mut [f32]) {
        for (r, a) in acc.iter().enumerate() {
            let dst = &mut tile[r * PANEL..(r + 1) * PANEL];
            // SAFETY: `dst` holds 16 values.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *a) };
        }
    }
}
