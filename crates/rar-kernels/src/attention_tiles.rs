//! Register-tiled products of the training attention ([`crate::causal_attention_forward`] and
//! its backward), for a block of [`ROWS`] query rows at a time.
//!
//! With `FMA = true` (only reached from code compiled for AVX2 + FMA, see `causal_attention`)
//! the kernels are written with AVX2 intrinsics — the compiler does not keep a tile of plain
//! arrays in registers — as tiles of 6 rows (or keys) × 16 columns (or features); otherwise
//! they are plain loops over `ROWS` × 8 tiles. Matrices are row-major with an explicit row
//! stride; padded widths are multiples of [`LANES`] and zero-filled.

/// Query rows per block.
pub(crate) const ROWS: usize = 6;
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
        #[allow(clippy::too_many_arguments)]
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
    /// [`LANES`]); `a` is `[ROWS, d]` with rows `lda` apart, `bt` `[d, stride]` and `out`
    /// `[ROWS, stride]`.
    rows_by_transposed,
    portable_rows_by_transposed,
    (a: &[f32], lda: usize, d: usize, bt: &[f32], stride: usize, cols: usize, scale: f32, out: &mut [f32]),
    cols.is_multiple_of(LANES)
        && cols <= stride
        && lda >= d
        && a.len() >= (ROWS - 1) * lda + d
        && bt.len() >= d * stride
        && out.len() >= ROWS * stride
);

dispatch!(
    /// `out[r, t] = Σ_{j < n} p[r, j] · b[j, t]` for `r < ROWS`; `p` is `[ROWS, stride]`, `b`
    /// `[≥ n, d]` with rows `ldb` apart and `out` `[ROWS, d]`.
    rows_by_matrix,
    portable_rows_by_matrix,
    (p: &[f32], stride: usize, n: usize, b: &[f32], ldb: usize, d: usize, out: &mut [f32]),
    n <= stride
        && ldb >= d
        && p.len() >= ROWS * stride
        && (n == 0 || b.len() >= (n - 1) * ldb + d)
        && out.len() >= ROWS * d
);

dispatch!(
    /// `out[j, t] += Σ_r g[r, j] · a[r, t]` for `j < n` (the transposed block product that
    /// accumulates key and value gradients); `g` is `[ROWS, stride]`, `a` `[ROWS, d]` with rows
    /// `lda` apart, `out` `[≥ n, d]`.
    transposed_rows_accumulate,
    portable_transposed_rows_accumulate,
    (g: &[f32], stride: usize, n: usize, a: &[f32], lda: usize, d: usize, out: &mut [f32]),
    n <= stride
        && lda >= d
        && g.len() >= ROWS * stride
        && a.len() >= (ROWS - 1) * lda + d
        && out.len() >= n * d
);

#[allow(clippy::too_many_arguments)]
fn portable_rows_by_transposed(
    a: &[f32],
    lda: usize,
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
                let x = a[r * lda + t];
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
    ldb: usize,
    d: usize,
    out: &mut [f32],
) {
    let full = d / LANES * LANES;
    for t0 in (0..full).step_by(LANES) {
        let mut acc = [[0f32; LANES]; ROWS];
        for j in 0..n {
            let bv: &[f32; LANES] = b[j * ldb + t0..][..LANES].try_into().expect("lanes");
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
            out[r * d + t] = (0..n).map(|j| p[r * stride + j] * b[j * ldb + t]).sum();
        }
    }
}

fn portable_transposed_rows_accumulate(
    g: &[f32],
    stride: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    d: usize,
    out: &mut [f32],
) {
    let full = d / LANES * LANES;
    for t0 in (0..full).step_by(LANES) {
        let mut av = [[0f32; LANES]; ROWS];
        for (r, av) in av.iter_mut().enumerate() {
            av.copy_from_slice(&a[r * lda + t0..r * lda + t0 + LANES]);
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
                .map(|r| g[r * stride + j] * a[r * lda + t])
                .sum::<f32>();
        }
    }
}

/// Keys per step of the gradient accumulation (independent accumulator chains).
const KEYS: usize = 4;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Tiles sized for AVX2's sixteen vector registers: twelve accumulators (six rows, or six
    //! keys, by two vectors), two loaded vectors and one broadcast scalar. Each step of an
    //! inner loop then costs 2 loads and 6 broadcasts per 12 multiply-adds, where the
    //! earlier 8 rows × 1 vector tiles needed 9 per 8 and, with only 8 accumulator chains
    //! against the FMA latency, ran at about 60 % of the FMA peak on the attention's
    //! shapes (issue #12). Tiles of 4 × 3 vectors need one register more than there are:
    //! the compiler spills an accumulator inside the loop, which halves their speed.
    use std::arch::x86_64::*;

    use super::{LANES, ROWS};

    /// Vectors of columns (or features) per tile.
    const NV: usize = 2;

    /// `out[r, j] = scale · Σ_t a[r, t] · bt[t, j]` for the [`ROWS`] rows and `V` vectors of
    /// columns `j`; pointers at the tile's first column.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn scores_tile<const V: usize>(
        a: *const f32,
        lda: usize,
        d: usize,
        bt: *const f32,
        stride: usize,
        scale: __m256,
        o: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; ROWS];
        for t in 0..d {
            // SAFETY (whole body): the caller bounds `ROWS` rows of `a` (`d` each), `d` rows
            // of `bt` and `ROWS` rows of `o` (`stride` apart) by `V` vectors from the pointers.
            unsafe {
                let mut b = [_mm256_setzero_ps(); V];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = _mm256_loadu_ps(bt.add(t * stride + v * LANES));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a.add(r * lda + t));
                    for (acc, b) in acc.iter_mut().zip(&b) {
                        *acc = _mm256_fmadd_ps(x, *b, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe {
                    _mm256_storeu_ps(o.add(r * stride + v * LANES), _mm256_mul_ps(*acc, scale))
                };
            }
        }
    }

    /// # Safety
    /// AVX2 + FMA; lengths as asserted by the dispatching wrapper.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows_by_transposed(
        a: &[f32],
        lda: usize,
        d: usize,
        bt: &[f32],
        stride: usize,
        cols: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let (a, bt, o) = (a.as_ptr(), bt.as_ptr(), out.as_mut_ptr());
        let scale = _mm256_set1_ps(scale);
        let mut j0 = 0;
        // SAFETY: j0 + V·8 ≤ cols ≤ stride columns of `bt` and `out`.
        unsafe {
            while j0 + NV * LANES <= cols {
                scores_tile::<NV>(a, lda, d, bt.add(j0), stride, scale, o.add(j0));
                j0 += NV * LANES;
            }
            if j0 < cols {
                scores_tile::<1>(a, lda, d, bt.add(j0), stride, scale, o.add(j0));
            }
        }
    }

    /// `out[r, t] = Σ_{j < n} p[r, j] · b[j, t]` for the [`ROWS`] rows and `V` vectors of
    /// `t`; pointers at the tile's first feature.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn values_tile<const V: usize>(
        p: *const f32,
        stride: usize,
        n: usize,
        b: *const f32,
        ldb: usize,
        d: usize,
        o: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; ROWS];
        for j in 0..n {
            // SAFETY (whole body): the caller bounds `ROWS` rows of `p` (`n` used), `n` rows
            // of `b` and `ROWS` rows of `o` (`d` apart) by `V` vectors from the pointers.
            unsafe {
                let mut bv = [_mm256_setzero_ps(); V];
                for (v, bv) in bv.iter_mut().enumerate() {
                    *bv = _mm256_loadu_ps(b.add(j * ldb + v * LANES));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*p.add(r * stride + j));
                    for (acc, bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(x, *bv, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(o.add(r * d + v * LANES), *acc) };
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
        ldb: usize,
        d: usize,
        out: &mut [f32],
    ) {
        let vectors = d / LANES;
        let (pp, bp, o) = (p.as_ptr(), b.as_ptr(), out.as_mut_ptr());
        let mut v0 = 0;
        // SAFETY: (v0 + V)·8 ≤ d features of `b` and `out`.
        unsafe {
            while v0 + NV <= vectors {
                values_tile::<NV>(pp, stride, n, bp.add(v0 * LANES), ldb, d, o.add(v0 * LANES));
                v0 += NV;
            }
            if v0 < vectors {
                values_tile::<1>(pp, stride, n, bp.add(v0 * LANES), ldb, d, o.add(v0 * LANES));
            }
        }
        for r in 0..ROWS {
            for t in vectors * LANES..d {
                out[r * d + t] = (0..n).map(|j| p[r * stride + j] * b[j * ldb + t]).sum();
            }
        }
    }

    /// `out[j, t] += Σ_r g[r, j] · a[r, t]` for `K` keys from `j` and `V` vectors of `t`;
    /// pointers at the tile's first key column of `g`, feature of `a` and row/feature of `o`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn keys_tile<const K: usize, const V: usize>(
        g: *const f32,
        stride: usize,
        a: *const f32,
        lda: usize,
        d: usize,
        o: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; K];
        // SAFETY (whole body): the caller bounds `ROWS` rows of `g` (`K` used from the
        // pointer) and of `a`, and `K` rows of `o` (`d` apart), by `V` vectors.
        unsafe {
            for (k, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_loadu_ps(o.add(k * d + v * LANES));
                }
            }
            for r in 0..ROWS {
                let mut av = [_mm256_setzero_ps(); V];
                for (v, av) in av.iter_mut().enumerate() {
                    *av = _mm256_loadu_ps(a.add(r * lda + v * LANES));
                }
                for (k, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*g.add(r * stride + k));
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        *acc = _mm256_fmadd_ps(x, *av, *acc);
                    }
                }
            }
            for (k, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(o.add(k * d + v * LANES), *acc);
                }
            }
        }
    }

    /// Keys per gradient tile.
    const KEYS: usize = 6;

    /// The keys `0..n` of one feature chunk of `V` vectors, [`KEYS`] keys per tile.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn keys_chunk<const V: usize>(
        g: *const f32,
        stride: usize,
        n: usize,
        a: *const f32,
        lda: usize,
        d: usize,
        o: *mut f32,
    ) {
        let whole = n / KEYS * KEYS;
        // SAFETY: every tile's keys are below n ≤ stride (columns of `g`, rows of `o`); the
        // caller bounds the features.
        unsafe {
            for j in (0..whole).step_by(KEYS) {
                keys_tile::<KEYS, V>(g.add(j), stride, a, lda, d, o.add(j * d));
            }
            for j in whole..n {
                keys_tile::<1, V>(g.add(j), stride, a, lda, d, o.add(j * d));
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
        lda: usize,
        d: usize,
        out: &mut [f32],
    ) {
        let vectors = d / LANES;
        let (gp, ap, o) = (g.as_ptr(), a.as_ptr(), out.as_mut_ptr());
        let mut v0 = 0;
        // SAFETY: (v0 + V)·8 ≤ d features of `a` and `out`.
        unsafe {
            while v0 + NV <= vectors {
                keys_chunk::<NV>(gp, stride, n, ap.add(v0 * LANES), lda, d, o.add(v0 * LANES));
                v0 += NV;
            }
            if v0 < vectors {
                keys_chunk::<1>(gp, stride, n, ap.add(v0 * LANES), lda, d, o.add(v0 * LANES));
            }
        }
        for j in 0..n {
            for t in vectors * LANES..d {
                out[j * d + t] += (0..ROWS)
                    .map(|r| g[r * stride + j] * a[r * lda + t])
                    .sum::<f32>();
            }
        }
    }
}

#[cfg(test)]
#[path = "attention_tiles_tests.rs"]
mod tests;
