//! Register-tiled products of the training attention ([`crate::causal_attention_forward`] and
//! its backward), for a block of [`ROWS`] query rows at a time.
//!
//! Each kernel keeps a `ROWS × 8` (or `4 × 8`) tile of accumulators in registers and streams
//! one operand through it, so every loaded vector feeds eight multiply-adds. With `FMA = true`
//! (only reached from code compiled for AVX2 + FMA, see `causal_attention`) the kernels are
//! written with AVX2 intrinsics — the compiler does not keep a tile of plain arrays in
//! registers; otherwise they are plain loops. Matrices are row-major with an explicit row
//! stride; padded widths are multiples of [`LANES`] and zero-filled.

/// Query rows per block.
pub(crate) const ROWS: usize = 8;
/// Columns per accumulator vector.
pub(crate) const LANES: usize = 8;

#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    a * b + c
}

/// Defines `pub(crate) fn $name<const FMA: bool>(args)`: the AVX2 kernel when `FMA`, the
/// portable one otherwise. Both check the buffer lengths the kernel reads first.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $portable:ident, ($($arg:ident: $ty:ty),*), $check:expr) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name<const FMA: bool>($($arg: $ty),*) {
            assert!($check, concat!(stringify!($name), ": buffers shorter than the sizes"));
            #[cfg(target_arch = "x86_64")]
            if FMA {
                // SAFETY: `FMA = true` is only used at `Isa::Avx2Fma` or above (the CPU has AVX2
                // and FMA), and the assertion above bounds every access.
                unsafe { avx2::$name($($arg),*) };
                return;
            }
            $portable($($arg),*)
        }
    };
}

dispatch!(
    /// `out[r, j] = scale · Σ_t a[r, t] · bt[t, j]` for `r < ROWS`, `j < cols` (a multiple of
    /// [`LANES`]); `a` is `[ROWS, d]`, `bt` `[d, stride]` and `out` `[ROWS, stride]`.
    rows_by_transposed,
    portable_rows_by_transposed,
    (a: &[f32], d: usize, bt: &[f32], stride: usize, cols: usize, scale: f32, out: &mut [f32]),
    cols.is_multiple_of(LANES)
        && cols <= stride
        && a.len() >= ROWS * d
        && bt.len() >= d * stride
        && out.len() >= ROWS * stride
);

dispatch!(
    /// `out[r, t] = Σ_{j < n} p[r, j] · b[j, t]` for `r < ROWS`; `p` is `[ROWS, stride]`, `b`
    /// `[≥ n, d]` and `out` `[ROWS, d]`.
    rows_by_matrix,
    portable_rows_by_matrix,
    (p: &[f32], stride: usize, n: usize, b: &[f32], d: usize, out: &mut [f32]),
    n <= stride && p.len() >= ROWS * stride && b.len() >= n * d && out.len() >= ROWS * d
);

dispatch!(
    /// `out[j, t] += Σ_r g[r, j] · a[r, t]` for `j < n` (the transposed block product that
    /// accumulates key and value gradients); `g` is `[ROWS, stride]`, `a` `[ROWS, d]`, `out`
    /// `[≥ n, d]`. Four keys at a time, so four accumulator chains run side by side.
    transposed_rows_accumulate,
    portable_transposed_rows_accumulate,
    (g: &[f32], stride: usize, n: usize, a: &[f32], d: usize, out: &mut [f32]),
    n <= stride && g.len() >= ROWS * stride && a.len() >= ROWS * d && out.len() >= n * d
);

fn portable_rows_by_transposed(
    a: &[f32],
    d: usize,
    bt: &[f32],
    stride: usize,
    cols: usize,
    scale: f32,
    out: &mut [f32],
) {
    debug_assert!(cols.is_multiple_of(LANES) && cols <= stride);
    for j0 in (0..cols).step_by(LANES) {
        let mut acc = [[0f32; LANES]; ROWS];
        for t in 0..d {
            let b: &[f32; LANES] = bt[t * stride + j0..][..LANES].try_into().expect("lanes");
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[r * d + t];
                for c in 0..LANES {
                    acc[c] = madd(x, b[c], acc[c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for c in 0..LANES {
                out[r * stride + j0 + c] = acc[c] * scale;
            }
        }
    }
}

fn portable_rows_by_matrix(
    p: &[f32],
    stride: usize,
    n: usize,
    b: &[f32],
    d: usize,
    out: &mut [f32],
) {
    let full = d / LANES * LANES;
    for t0 in (0..full).step_by(LANES) {
        let mut acc = [[0f32; LANES]; ROWS];
        for j in 0..n {
            let bv: &[f32; LANES] = b[j * d + t0..][..LANES].try_into().expect("lanes");
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = p[r * stride + j];
                for c in 0..LANES {
                    acc[c] = madd(x, bv[c], acc[c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[r * d + t0..r * d + t0 + LANES].copy_from_slice(acc);
        }
    }
    for r in 0..ROWS {
        for t in full..d {
            out[r * d + t] = (0..n).map(|j| p[r * stride + j] * b[j * d + t]).sum();
        }
    }
}

fn portable_transposed_rows_accumulate(
    g: &[f32],
    stride: usize,
    n: usize,
    a: &[f32],
    d: usize,
    out: &mut [f32],
) {
    let full = d / LANES * LANES;
    for t0 in (0..full).step_by(LANES) {
        let mut av = [[0f32; LANES]; ROWS];
        for (r, av) in av.iter_mut().enumerate() {
            av.copy_from_slice(&a[r * d + t0..r * d + t0 + LANES]);
        }
        let quads = n / KEYS * KEYS;
        for j0 in (0..quads).step_by(KEYS) {
            let mut acc = [[0f32; LANES]; KEYS];
            for (jj, acc) in acc.iter_mut().enumerate() {
                acc.copy_from_slice(&out[(j0 + jj) * d + t0..][..LANES]);
            }
            for (r, av) in av.iter().enumerate() {
                for (jj, acc) in acc.iter_mut().enumerate() {
                    let x = g[r * stride + j0 + jj];
                    for c in 0..LANES {
                        acc[c] = madd(x, av[c], acc[c]);
                    }
                }
            }
            for (jj, acc) in acc.iter().enumerate() {
                out[(j0 + jj) * d + t0..][..LANES].copy_from_slice(acc);
            }
        }
        for j in quads..n {
            let o = &mut out[j * d + t0..][..LANES];
            for (r, av) in av.iter().enumerate() {
                let x = g[r * stride + j];
                for c in 0..LANES {
                    o[c] = madd(x, av[c], o[c]);
                }
            }
        }
    }
    for j in 0..n {
        for t in full..d {
            out[j * d + t] += (0..ROWS)
                .map(|r| g[r * stride + j] * a[r * d + t])
                .sum::<f32>();
        }
    }
}

/// Keys per step of the gradient accumulation (independent accumulator chains).
const KEYS: usize = 4;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{KEYS, LANES, ROWS};

    /// # Safety
    /// AVX2 + FMA; lengths as asserted by the dispatching wrapper.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_by_transposed(
        a: &[f32],
        d: usize,
        bt: &[f32],
        stride: usize,
        cols: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let (a, bt, o) = (a.as_ptr(), bt.as_ptr(), out.as_mut_ptr());
        let scale = _mm256_set1_ps(scale);
        for j0 in (0..cols).step_by(LANES) {
            let mut acc = [_mm256_setzero_ps(); ROWS];
            for t in 0..d {
                // SAFETY: t < d, j0 + 8 ≤ cols ≤ stride, so within `d · stride`; r·d + t < ROWS·d.
                unsafe {
                    let b = _mm256_loadu_ps(bt.add(t * stride + j0));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(_mm256_set1_ps(*a.add(r * d + t)), b, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: r·stride + j0 + 8 ≤ ROWS·stride.
                unsafe { _mm256_storeu_ps(o.add(r * stride + j0), _mm256_mul_ps(*acc, scale)) };
            }
        }
    }

    /// # Safety
    /// AVX2 + FMA; lengths as asserted by the dispatching wrapper.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_by_matrix(
        p: &[f32],
        stride: usize,
        n: usize,
        b: &[f32],
        d: usize,
        out: &mut [f32],
    ) {
        let full = d / LANES * LANES;
        let (pp, bp, o) = (p.as_ptr(), b.as_ptr(), out.as_mut_ptr());
        for t0 in (0..full).step_by(LANES) {
            let mut acc = [_mm256_setzero_ps(); ROWS];
            for j in 0..n {
                // SAFETY: j < n, t0 + 8 ≤ d: within `n · d`; r·stride + j < ROWS·stride.
                unsafe {
                    let bv = _mm256_loadu_ps(bp.add(j * d + t0));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(_mm256_set1_ps(*pp.add(r * stride + j)), bv, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: r·d + t0 + 8 ≤ ROWS·d.
                unsafe { _mm256_storeu_ps(o.add(r * d + t0), *acc) };
            }
        }
        for r in 0..ROWS {
            for t in full..d {
                out[r * d + t] = (0..n).map(|j| p[r * stride + j] * b[j * d + t]).sum();
            }
        }
    }

    /// # Safety
    /// AVX2 + FMA; lengths as asserted by the dispatching wrapper.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transposed_rows_accumulate(
        g: &[f32],
        stride: usize,
        n: usize,
        a: &[f32],
        d: usize,
        out: &mut [f32],
    ) {
        let full = d / LANES * LANES;
        let (gp, ap, o) = (g.as_ptr(), a.as_ptr(), out.as_mut_ptr());
        let quads = n / KEYS * KEYS;
        for t0 in (0..full).step_by(LANES) {
            let mut av = [_mm256_setzero_ps(); ROWS];
            for (r, av) in av.iter_mut().enumerate() {
                // SAFETY: r·d + t0 + 8 ≤ ROWS·d.
                *av = unsafe { _mm256_loadu_ps(ap.add(r * d + t0)) };
            }
            for j0 in (0..quads).step_by(KEYS) {
                // SAFETY: (j0 + jj)·d + t0 + 8 ≤ n·d; r·stride + j0 + jj < ROWS·stride.
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); KEYS];
                    for (jj, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_loadu_ps(o.add((j0 + jj) * d + t0));
                    }
                    for (r, av) in av.iter().enumerate() {
                        for (jj, acc) in acc.iter_mut().enumerate() {
                            let x = _mm256_set1_ps(*gp.add(r * stride + j0 + jj));
                            *acc = _mm256_fmadd_ps(x, *av, *acc);
                        }
                    }
                    for (jj, acc) in acc.iter().enumerate() {
                        _mm256_storeu_ps(o.add((j0 + jj) * d + t0), *acc);
                    }
                }
            }
            for j in quads..n {
                // SAFETY: as above for a single key.
                unsafe {
                    let mut acc = _mm256_loadu_ps(o.add(j * d + t0));
                    for (r, av) in av.iter().enumerate() {
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(*gp.add(r * stride + j)), *av, acc);
                    }
                    _mm256_storeu_ps(o.add(j * d + t0), acc);
                }
            }
        }
        for j in 0..n {
            for t in full..d {
                out[j * d + t] += (0..ROWS)
                    .map(|r| g[r * stride + j] * a[r * d + t])
                    .sum::<f32>();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * s).sin()).collect()
    }

    /// Each tile kernel (portable, and AVX2 where the CPU has it) against its plain triple
    /// loop, with a feature count that leaves a tail after the full vectors (d = 11) and one
    /// that does not (d = 16).
    #[test]
    fn tiles_match_plain_loops() {
        check::<false>();
        if crate::Isa::detect() >= crate::Isa::Avx2Fma {
            check::<true>();
        }
    }

    fn check<const FMA: bool>() {
        for d in [11, 16] {
            let (stride, n) = (24, 21);
            let a = data(ROWS * d, 0.31);
            let bt = data(d * stride, 0.77);
            let mut out = vec![0f32; ROWS * stride];
            rows_by_transposed::<FMA>(&a, d, &bt, stride, stride, 0.5, &mut out);
            for r in 0..ROWS {
                for j in 0..stride {
                    let want: f32 = (0..d).map(|t| a[r * d + t] * bt[t * stride + j]).sum();
                    assert!((out[r * stride + j] - 0.5 * want).abs() < 1e-5, "{FMA} {d}");
                }
            }
            let p = data(ROWS * stride, 0.13);
            let b = data(n * d, 0.57);
            let mut o = vec![0f32; ROWS * d];
            rows_by_matrix::<FMA>(&p, stride, n, &b, d, &mut o);
            for r in 0..ROWS {
                for t in 0..d {
                    let want: f32 = (0..n).map(|j| p[r * stride + j] * b[j * d + t]).sum();
                    assert!((o[r * d + t] - want).abs() < 1e-5, "{FMA} {d}");
                }
            }
            let mut acc = data(n * d, 0.91);
            let before = acc.clone();
            transposed_rows_accumulate::<FMA>(&p, stride, n, &a, d, &mut acc);
            for j in 0..n {
                for t in 0..d {
                    let want: f32 = (0..ROWS).map(|r| p[r * stride + j] * a[r * d + t]).sum();
                    assert!(
                        (acc[j * d + t] - before[j * d + t] - want).abs() < 1e-5,
                        "{FMA} {d}"
                    );
                }
            }
        }
    }
}
