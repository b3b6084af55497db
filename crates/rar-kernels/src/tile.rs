//! The micro-kernels of [`crate::PackedLinear`]: one tile of up to
//! [`crate::MAX_TILE_ROWS`] rows against `G` adjacent 16-column weight panels — AVX-512 (a
//! panel row is one 512-bit register), AVX2 + FMA (two 256-bit registers) or portable.
//!
//! The tile's shape is what decides the speed of a decode step, which multiplies only
//! `2·B` rows by every weight: each `k` step loads `G` weight registers and broadcasts one
//! value of each of the `MR` rows, then issues `MR·G` multiply-adds. With one panel and six
//! rows (AVX2's 16 registers allow no more) that is 7 loads per 6 multiply-adds, and six
//! accumulator chains do not hide the FMA latency; AVX-512's 32 registers take 8 rows × 3
//! panels: 11 loads per 24 multiply-adds and 24 independent chains.
//!
//! `tile` is row-major `[MR, G·16]`; the `G` panels lie one after the other in `w`
//! (`k·16` values each), as [`crate::PackedLinear`] stores them.

use crate::bf16::from_bf16;
use crate::isa::Isa;
use crate::packed::PANEL;

/// Calls `$module::$kernel::<MR, G>` for `$mr` rows (1 to 8; more is 8) and `$g` panels (1 to
/// 3; more is 3).
#[cfg(target_arch = "x86_64")]
macro_rules! by_shape {
    ($module:ident::$kernel:ident, $mr:expr, $g:expr, $($arg:expr),*) => {
        match $g {
            1 => by_shape!(@rows $module::$kernel, $mr, 1, $($arg),*),
            2 => by_shape!(@rows $module::$kernel, $mr, 2, $($arg),*),
            _ => by_shape!(@rows $module::$kernel, $mr, 3, $($arg),*),
        }
    };
    (@rows $module:ident::$kernel:ident, $mr:expr, $g:literal, $($arg:expr),*) => {
        match $mr {
            1 => $module::$kernel::<1, $g>($($arg),*),
            2 => $module::$kernel::<2, $g>($($arg),*),
            3 => $module::$kernel::<3, $g>($($arg),*),
            4 => $module::$kernel::<4, $g>($($arg),*),
            5 => $module::$kernel::<5, $g>($($arg),*),
            6 => $module::$kernel::<6, $g>($($arg),*),
            7 => $module::$kernel::<7, $g>($($arg),*),
            _ => $module::$kernel::<8, $g>($($arg),*),
        }
    };
}

/// Most panels one micro-kernel call multiplies.
pub(crate) const MAX_TILE_PANELS: usize = 3;

/// The tile shape `(rows, panels)` that fits `isa`'s registers (see the module docs).
pub(crate) fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Avx512 => (crate::MAX_TILE_ROWS, MAX_TILE_PANELS),
        Isa::Avx2Fma | Isa::Portable => (6, 1),
    }
}

/// `tile[r, 0..16·g] = Σ_kk x[r, kk] · w[kk, 0..16·g]` for `mr` rows and `g` f32 panels.
pub(crate) fn tile_f32(
    isa: Isa,
    (mr, g): (usize, usize),
    x: &[f32],
    k: usize,
    w: &[f32],
    tile: &mut [f32],
) {
    debug_assert!(
        mr <= crate::MAX_TILE_ROWS
            && g <= MAX_TILE_PANELS
            && w.len() >= g * k * PANEL
            && tile.len() >= mr * g * PANEL
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `forward_with` lowers `isa` to what the CPU has (here AVX-512F); the slices
        // have the lengths the kernel reads.
        unsafe { by_shape!(avx512::tile_f32, mr, g, x, k, w, tile) }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: as above, for AVX2 and FMA.
        unsafe { by_shape!(avx2::tile_f32, mr, g, x, k, w, tile) }
        return;
    }
    let _ = isa;
    portable_tile((mr, g), x, k, tile, |p, kk, j| w[(p * k + kk) * PANEL + j]);
}

/// As [`tile_f32`] for bf16 panels.
pub(crate) fn tile_bf16(
    isa: Isa,
    (mr, g): (usize, usize),
    x: &[f32],
    k: usize,
    w: &[u16],
    tile: &mut [f32],
) {
    debug_assert!(
        mr <= crate::MAX_TILE_ROWS
            && g <= MAX_TILE_PANELS
            && w.len() >= g * k * PANEL
            && tile.len() >= mr * g * PANEL
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: as in `tile_f32`.
        unsafe { by_shape!(avx512::tile_bf16, mr, g, x, k, w, tile) }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: as in `tile_f32`.
        unsafe { by_shape!(avx2::tile_bf16, mr, g, x, k, w, tile) }
        return;
    }
    let _ = isa;
    portable_tile((mr, g), x, k, tile, |p, kk, j| {
        from_bf16(w[(p * k + kk) * PANEL + j])
    });
}

fn portable_tile(
    (mr, g): (usize, usize),
    x: &[f32],
    k: usize,
    tile: &mut [f32],
    weight: impl Fn(usize, usize, usize) -> f32,
) {
    let width = g * PANEL;
    for r in 0..mr {
        let xr = &x[r * k..(r + 1) * k];
        for p in 0..g {
            let mut acc = [0f32; PANEL];
            for (kk, &xv) in xr.iter().enumerate() {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += xv * weight(p, kk, j);
                }
            }
            tile[r * width + p * PANEL..r * width + (p + 1) * PANEL].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` holds `MR·k` values, `w` `G·k·16`, `tile`
    /// ≥ `MR·G·16`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_f32<const MR: usize, const G: usize>(
        x: &[f32],
        k: usize,
        w: &[f32],
        tile: &mut [f32],
    ) {
        debug_assert!(
            x.len() >= MR * k && w.len() >= G * k * PANEL && tile.len() >= MR * G * PANEL
        );
        let mut acc = [[[_mm256_setzero_ps(); 2]; G]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: kk < k and p < G, so every load is inside `w` and every broadcast
            // inside `x`.
            unsafe {
                let mut wv = [[_mm256_setzero_ps(); 2]; G];
                for (p, v) in wv.iter_mut().enumerate() {
                    let at = wp.add((p * k + kk) * PANEL);
                    *v = [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))];
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xp.add(r * k + kk));
                    for (a, v) in a.iter_mut().zip(&wv) {
                        a[0] = _mm256_fmadd_ps(xv, v[0], a[0]);
                        a[1] = _mm256_fmadd_ps(xv, v[1], a[1]);
                    }
                }
            }
        }
        store(&acc, tile);
    }

    /// # Safety
    /// As [`tile_f32`], with bf16 panels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_bf16<const MR: usize, const G: usize>(
        x: &[f32],
        k: usize,
        w: &[u16],
        tile: &mut [f32],
    ) {
        debug_assert!(
            x.len() >= MR * k && w.len() >= G * k * PANEL && tile.len() >= MR * G * PANEL
        );
        let mut acc = [[[_mm256_setzero_ps(); 2]; G]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: as in `tile_f32`; 16 u16 = one 256-bit load.
            unsafe {
                let mut wv = [[_mm256_setzero_ps(); 2]; G];
                for (p, v) in wv.iter_mut().enumerate() {
                    let raw = _mm256_loadu_si256(wp.add((p * k + kk) * PANEL) as *const __m256i);
                    let lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
                    let hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(raw));
                    *v = [
                        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
                        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
                    ];
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xp.add(r * k + kk));
                    for (a, v) in a.iter_mut().zip(&wv) {
                        a[0] = _mm256_fmadd_ps(xv, v[0], a[0]);
                        a[1] = _mm256_fmadd_ps(xv, v[1], a[1]);
                    }
                }
            }
        }
        store(&acc, tile);
    }

    #[target_feature(enable = "avx2,fma")]
    fn store<const MR: usize, const G: usize>(acc: &[[[__m256; 2]; G]; MR], tile: &mut [f32]) {
        for (r, a) in acc.iter().enumerate() {
            for (p, a) in a.iter().enumerate() {
                let at = (r * G + p) * PANEL;
                let dst = &mut tile[at..at + PANEL];
                // SAFETY: `dst` holds 16 values.
                unsafe {
                    _mm256_storeu_ps(dst.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(dst.as_mut_ptr().add(8), a[1]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// # Safety
    /// The CPU must support AVX-512F; `x` holds `MR·k` values, `w` `G·k·16`, `tile`
    /// ≥ `MR·G·16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_f32<const MR: usize, const G: usize>(
        x: &[f32],
        k: usize,
        w: &[f32],
        tile: &mut [f32],
    ) {
        debug_assert!(
            x.len() >= MR * k && w.len() >= G * k * PANEL && tile.len() >= MR * G * PANEL
        );
        let mut acc = [[_mm512_setzero_ps(); G]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: kk < k and p < G, so every load is inside `w` and every broadcast
            // inside `x`.
            unsafe {
                let mut wv = [_mm512_setzero_ps(); G];
                for (p, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(wp.add((p * k + kk) * PANEL));
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*xp.add(r * k + kk));
                    for (a, &v) in a.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, v, *a);
                    }
                }
            }
        }
        store(&acc, tile);
    }

    /// # Safety
    /// As [`tile_f32`], with bf16 panels (16 u16 widened to f32 by a shift of 16 bits).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_bf16<const MR: usize, const G: usize>(
        x: &[f32],
        k: usize,
        w: &[u16],
        tile: &mut [f32],
    ) {
        debug_assert!(
            x.len() >= MR * k && w.len() >= G * k * PANEL && tile.len() >= MR * G * PANEL
        );
        let mut acc = [[_mm512_setzero_ps(); G]; MR];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for kk in 0..k {
            // SAFETY: as in `tile_f32`; 16 u16 = one 256-bit load.
            unsafe {
                let mut wv = [_mm512_setzero_ps(); G];
                for (p, v) in wv.iter_mut().enumerate() {
                    let raw = _mm256_loadu_si256(wp.add((p * k + kk) * PANEL) as *const __m256i);
                    *v = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(raw)));
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*xp.add(r * k + kk));
                    for (a, &v) in a.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, v, *a);
                    }
                }
            }
        }
        store(&acc, tile);
    }

    #[target_feature(enable = "avx512f")]
    fn store<const MR: usize, const G: usize>(acc: &[[__m512; G]; MR], tile: &mut [f32]) {
        for (r, a) in acc.iter().enumerate() {
            for (p, a) in a.iter().enumerate() {
                let at = (r * G + p) * PANEL;
                let dst = &mut tile[at..at + PANEL];
                // SAFETY: `dst` holds 16 values.
                unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *a) };
            }
        }
    }
}
