//! Products with few rows against a weight packed once: `y = x·W + b` for `x` `[R, K]`,
//! `W` `[K, N]`.
//!
//! A KV-cached decode step multiplies only `R = 2·B` rows (a guided batch of `B` images) by
//! every weight matrix of the model, so it is bound by the bandwidth of reading the weights,
//! not by arithmetic. A general GEMM re-packs the weight matrix into cache-friendly panels on
//! every call — work that a square product amortises and a skinny one does not (13 % of a
//! decode step in burn-flex's `gemm`, docs/BENCHMARKS.md). Here the packing is done once:
//!
//! ```text
//! W [K, N] row-major  →  panels of 16 columns, each K × 16 contiguous (the last one zero-padded)
//! panel p, row k:  W[k, 16p … 16p + 15]
//! ```
//!
//! A call streams the panels once, in order, a few adjacent ones at a time (three with
//! AVX-512, one with AVX2); for each such group, tiles of up to [`MAX_TILE_ROWS`] rows of `x`
//! are multiplied while the group stays in L1/L2 (24 accumulator registers of 16 lanes with
//! AVX-512, 12 of 8 with AVX2; the tile shapes are explained in `tile.rs`). The groups are
//! split over rayon's threads, each writing its own columns of `y`. With [`PackedPrecision::Bf16`] the panels hold bf16 and are widened to f32 in
//! registers: half the bytes to stream, products and sums still in f32.

use rayon::prelude::*;

use crate::bf16::to_bf16;
use crate::error::{KernelError, Result};
use crate::isa::Isa;
use crate::tile::{MAX_TILE_PANELS, tile_bf16, tile_f32, tile_shape};

/// Columns per packed panel (two AVX2 registers of f32).
pub const PANEL: usize = 16;

/// Most rows of `x` one micro-kernel call multiplies (AVX-512: 8 rows × 3 panels of
/// accumulators + 3 weight registers + 1 broadcast fit its 32 registers; AVX2 takes 6 rows ×
/// 1 panel in its 16).
pub const MAX_TILE_ROWS: usize = 8;

/// Below this many multiply-adds (`R·K·N`) a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// How the packed weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackedPrecision {
    /// IEEE f32, exact.
    #[default]
    F32,
    /// bfloat16 (weights rounded to 8 significant bits; half the memory traffic). Activations,
    /// products and sums stay f32.
    Bf16,
}

impl PackedPrecision {
    /// Bytes per stored weight.
    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 => 2,
        }
    }
}

#[derive(Clone)]
enum Panels {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

/// A weight matrix `[K, N]` (and optional bias `[N]`) packed for [`PackedLinear::forward`].
#[derive(Clone)]
pub struct PackedLinear {
    k: usize,
    n: usize,
    panels: Panels,
    bias: Option<Vec<f32>>,
}

impl std::fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedLinear")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("precision", &self.precision())
            .field("bias", &self.bias.is_some())
            .finish()
    }
}

impl PackedLinear {
    /// Packs `weight` (`[k, n]`, row-major, as burn's `Linear` stores it) and `bias` (`[n]`).
    pub fn new(
        weight: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        precision: PackedPrecision,
    ) -> Result<Self> {
        if k == 0 || n == 0 {
            return Err(KernelError::Shape(format!(
                "a packed weight needs k, n > 0, got [{k}, {n}]"
            )));
        }
        if weight.len() != k * n {
            return Err(KernelError::Shape(format!(
                "weight has {} values, [{k}, {n}] needs {}",
                weight.len(),
                k * n
            )));
        }
        if let Some(b) = bias
            && b.len() != n
        {
            return Err(KernelError::Shape(format!(
                "bias has {} values for {n} output columns",
                b.len()
            )));
        }
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0f32; panels * k * PANEL];
        for (p, panel) in packed.chunks_exact_mut(k * PANEL).enumerate() {
            let c0 = p * PANEL;
            let width = PANEL.min(n - c0);
            for (row, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                dst[..width].copy_from_slice(&weight[row * n + c0..row * n + c0 + width]);
            }
        }
        let panels = match precision {
            PackedPrecision::F32 => Panels::F32(packed),
            PackedPrecision::Bf16 => Panels::Bf16(packed.iter().map(|&w| to_bf16(w)).collect()),
        };
        Ok(Self {
            k,
            n,
            panels,
            bias: bias.map(<[f32]>::to_vec),
        })
    }

    /// Input width `K`.
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// Output width `N`.
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// The storage precision.
    pub fn precision(&self) -> PackedPrecision {
        match self.panels {
            Panels::F32(_) => PackedPrecision::F32,
            Panels::Bf16(_) => PackedPrecision::Bf16,
        }
    }

    /// Bytes held by the packed weights and bias.
    pub fn bytes(&self) -> usize {
        let w = match &self.panels {
            Panels::F32(p) => p.len() * 4,
            Panels::Bf16(p) => p.len() * 2,
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// `out = x·W + b` for `rows` rows: `x` is `[rows, K]`, `out` `[rows, N]`, both row-major.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.forward_with(Isa::active(), x, rows, out)
    }

    /// [`Self::forward`] with an explicit instruction set (for tests and benchmarks); a level
    /// this CPU lacks is lowered to the best one it has.
    pub fn forward_with(&self, isa: Isa, x: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        let (k, n) = (self.k, self.n);
        if x.len() != rows * k || out.len() != rows * n {
            return Err(KernelError::Shape(format!(
                "product of x [{rows}, {k}] ({} values) into out [{rows}, {n}] ({} values)",
                x.len(),
                out.len()
            )));
        }
        if rows == 0 {
            return Ok(());
        }
        let isa = isa.min(Isa::detect());
        let (tile_rows, group) = tile_shape(isa);
        let groups = n.div_ceil(PANEL).div_ceil(group);
        let out_ptr = SharedOut(out.as_mut_ptr());
        let run = |range: std::ops::Range<usize>| {
            // SAFETY: every task owns the columns of its panel groups; they never overlap.
            let out = unsafe { std::slice::from_raw_parts_mut(out_ptr.get(), rows * n) };
            for gi in range {
                self.group(isa, (tile_rows, group), gi, x, rows, out);
            }
        };
        if rows * k * n < PARALLEL_MIN_MACS || rayon::current_num_threads() == 1 {
            run(0..groups);
        } else {
            // A few tasks per thread, so a slow core does not hold up the others.
            let tasks = (rayon::current_num_threads() * 4).min(groups);
            (0..tasks)
                .into_par_iter()
                .for_each(|t| run(t * groups / tasks..(t + 1) * groups / tasks));
        }
        Ok(())
    }

    /// Computes the columns of panel group `gi` (panels `gi·group …`, fewer at the right
    /// edge) for every row, `tile_rows` rows per micro-kernel call.
    fn group(
        &self,
        isa: Isa,
        (tile_rows, group): (usize, usize),
        gi: usize,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
    ) {
        let (k, n) = (self.k, self.n);
        let p0 = gi * group;
        let g = group.min(n.div_ceil(PANEL) - p0);
        let c0 = p0 * PANEL;
        let width = (g * PANEL).min(n - c0);
        let weights = p0 * k * PANEL..(p0 + g) * k * PANEL;
        let mut tile = [0f32; MAX_TILE_ROWS * MAX_TILE_PANELS * PANEL];
        let mut r0 = 0;
        while r0 < rows {
            let mr = tile_rows.min(rows - r0);
            let xs = &x[r0 * k..(r0 + mr) * k];
            match &self.panels {
                Panels::F32(w) => tile_f32(isa, (mr, g), xs, k, &w[weights.clone()], &mut tile),
                Panels::Bf16(w) => tile_bf16(isa, (mr, g), xs, k, &w[weights.clone()], &mut tile),
            }
            for r in 0..mr {
                let dst = &mut out[(r0 + r) * n + c0..(r0 + r) * n + c0 + width];
                let src = &tile[r * g * PANEL..r * g * PANEL + width];
                match &self.bias {
                    Some(b) => {
                        for ((d, &s), &b) in dst.iter_mut().zip(src).zip(&b[c0..c0 + width]) {
                            *d = s + b;
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
            r0 += mr;
        }
    }
}

/// The output pointer shared by the tasks of one product (each writes disjoint columns).
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the tasks of a product write disjoint elements and the product waits for all of them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
impl SharedOut {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16::from_bf16;

    /// Deterministic values in [−1, 1) (no RNG dependency).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `x·W + b` in f64, the independent reference.
    fn reference(x: &[f32], w: &[f32], b: &[f32], rows: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * n];
        for r in 0..rows {
            for c in 0..n {
                let mut s = b[c] as f64;
                for kk in 0..k {
                    s += x[r * k + kk] as f64 * w[kk * n + c] as f64;
                }
                out[r * n + c] = s;
            }
        }
        out
    }

    fn rel_err(a: &[f32], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(&a, &b)| (a as f64 - b).powi(2)).sum();
        let den: f64 = b.iter().map(|b| b * b).sum();
        (num / den).sqrt()
    }

    #[test]
    fn matches_f64_reference_for_every_tile_and_edge_shape() {
        // Rows cover every tile size and more than one tile; n covers a partial last panel and
        // partial last panel groups (7 panels = 3 + 3 + 1, 5 = 3 + 2).
        for &(rows, k, n) in &[
            (1, 1, 1),
            (3, 7, 33),
            (6, 16, 16),
            (7, 64, 48),
            (13, 40, 100),
            (9, 24, 80),
            (16, 128, 384),
            (2, 300, 200),
        ] {
            let (x, w, b) = (values(rows * k, 1), values(k * n, 2), values(n, 3));
            let want = reference(&x, &w, &b, rows, k, n);
            for isa in Isa::available() {
                let packed = PackedLinear::new(&w, k, n, Some(&b), PackedPrecision::F32).unwrap();
                let mut out = vec![f32::NAN; rows * n];
                packed.forward_with(isa, &x, rows, &mut out).unwrap();
                let e = rel_err(&out, &want);
                assert!(
                    e < 1e-6,
                    "{isa:?} f32 [{rows}, {k}]x[{k}, {n}]: rel err {e}"
                );

                // bf16 weights: the reference is the product with the rounded weights.
                let wr: Vec<f32> = w.iter().map(|&v| from_bf16(to_bf16(v))).collect();
                let want_bf = reference(&x, &wr, &b, rows, k, n);
                let packed = PackedLinear::new(&w, k, n, Some(&b), PackedPrecision::Bf16).unwrap();
                packed.forward_with(isa, &x, rows, &mut out).unwrap();
                let e = rel_err(&out, &want_bf);
                assert!(
                    e < 1e-6,
                    "{isa:?} bf16 [{rows}, {k}]x[{k}, {n}]: rel err {e}"
                );
                // …and within bf16 rounding of the exact product.
                assert!(rel_err(&out, &want) < 1e-2);
            }
        }
    }

    #[test]
    fn large_products_split_over_threads_agree_with_one_thread() {
        let (rows, k, n) = (16, 256, 1000);
        let (x, w) = (values(rows * k, 4), values(k * n, 5));
        let packed = PackedLinear::new(&w, k, n, None, PackedPrecision::F32).unwrap();
        let mut par = vec![0f32; rows * n];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| packed.forward(&x, rows, &mut par)).unwrap();
        let mut seq = vec![0f32; rows * n];
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        one.install(|| packed.forward(&x, rows, &mut seq)).unwrap();
        assert_eq!(par, seq);
        let want = reference(&x, &w, &vec![0.0; n], rows, k, n);
        assert!(rel_err(&par, &want) < 1e-6);
    }

    #[test]
    fn wrong_shapes_are_errors_naming_the_sizes() {
        let w = values(12, 6);
        let e = PackedLinear::new(&w, 3, 5, None, PackedPrecision::F32).unwrap_err();
        assert!(e.to_string().contains("[3, 5]"), "{e}");
        let e = PackedLinear::new(&w, 3, 4, Some(&[0.0; 3]), PackedPrecision::F32).unwrap_err();
        assert!(e.to_string().contains("bias has 3"), "{e}");
        let p = PackedLinear::new(&w, 3, 4, None, PackedPrecision::F32).unwrap();
        let mut out = vec![0f32; 8];
        let e = p.forward(&[0.0; 5], 2, &mut out).unwrap_err();
        assert!(e.to_string().contains("x [2, 3]"), "{e}");
        assert_eq!(p.bytes(), 3 * 16 * 4);
    }
}
