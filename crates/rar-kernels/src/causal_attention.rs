//! Causal softmax attention over whole sequences with its backward pass, flash-style: the
//! forward keeps only the output and one log-sum-exp per query row, and the backward
//! recomputes each probability from them, so no `[L, L]` score or probability matrix is ever
//! stored (paper §3.2's causal transformer; the gradients are those of
//! `softmax(scale·QKᵀ + causal mask)·V`).
//!
//! Layout: `q` is `[pairs, lq, d]` and `k`, `v` are `[pairs, lk, d]`, row-major, one pair per
//! (batch row, head). Query `i` sees keys `0..=i + lk − lq` (the mask aligned bottom-right, as
//! for queries appended after a cache). Only visible keys are touched: the masked upper
//! triangle costs nothing. Pairs run in parallel on rayon's threads.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::attention_pair::avx2;
use crate::attention_pair::{Pair, Scratch, Strided, backward_pair, forward_pair};
use crate::error::{KernelError, Result};
use crate::isa::Isa;

pub use crate::attention_pair::AttentionDropout;

/// What a call computes besides the shapes: the score scale (`1/√d` in the model) and
/// optional dropout on the probabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CausalOptions {
    /// Factor on `q·kᵀ` before the softmax.
    pub scale: f32,
    /// Dropout on the probabilities (training), or `None`.
    pub dropout: Option<AttentionDropout>,
}

impl CausalOptions {
    /// `scale`, no dropout.
    pub fn new(scale: f32) -> Self {
        Self {
            scale,
            dropout: None,
        }
    }

    fn check(&self) -> Result<()> {
        if let Some(d) = self.dropout
            && !(d.keep > 0.0 && d.keep <= 1.0)
        {
            return Err(KernelError::Shape(format!(
                "causal attention: dropout keep probability {} is not in (0, 1]",
                d.keep
            )));
        }
        Ok(())
    }
}

/// Sizes of one causal attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CausalShape {
    /// Independent (batch row, head) pairs.
    pub pairs: usize,
    /// Queries per pair.
    pub queries: usize,
    /// Keys (and values) per pair; at least `queries`.
    pub keys: usize,
    /// Features per head.
    pub head_dim: usize,
}

impl CausalShape {
    fn check(&self, name: &str, len: usize, rows: usize) -> Result<()> {
        let want = self.pairs * rows * self.head_dim;
        if len != want {
            return Err(KernelError::Shape(format!(
                "causal attention: `{name}` holds {len} values, {self:?} needs {want}"
            )));
        }
        Ok(())
    }

    fn check_rows(&self) -> Result<()> {
        if self.keys < self.queries || self.head_dim == 0 {
            return Err(KernelError::Shape(format!(
                "causal attention: {self:?} needs keys ≥ queries and head_dim > 0"
            )));
        }
        Ok(())
    }

    /// The sizes, the options, the lengths of `q`, `k`, `v`, `out`, each further
    /// `(name, length, rows)` buffer (`rows · head_dim` values per pair) and the `lse` length
    /// (one value per query row).
    fn check_all(
        &self,
        options: CausalOptions,
        [q, k, v, out]: [usize; 4],
        more: &[(&str, usize, usize)],
        lse: usize,
    ) -> Result<()> {
        self.check_rows()?;
        options.check()?;
        let io = [
            ("q", q, self.queries),
            ("k", k, self.keys),
            ("v", v, self.keys),
            ("out", out, self.queries),
        ];
        for &(name, len, rows) in io.iter().chain(more) {
            self.check(name, len, rows)?;
        }
        if lse != self.pairs * self.queries {
            return Err(KernelError::Shape(format!(
                "causal attention: `lse` holds {lse} values, {self:?} needs {}",
                self.pairs * self.queries
            )));
        }
        Ok(())
    }

    /// Keys visible to query `i`.
    #[inline]
    pub(crate) fn visible(&self, i: usize) -> usize {
        i + 1 + self.keys - self.queries
    }
}

/// `out = softmax(scale·q·kᵀ + causal mask)·v`; `lse[p, i]` receives the natural log of the
/// row's softmax denominator including its maximum (`m + ln Σ exp(s − m)`), which
/// [`causal_attention_backward`] needs. `lse` holds `pairs · queries` values.
pub fn causal_attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: CausalShape,
    options: CausalOptions,
    out: &mut [f32],
    lse: &mut [f32],
) -> Result<()> {
    shape.check_all(
        options,
        [q.len(), k.len(), v.len(), out.len()],
        &[],
        lse.len(),
    )?;
    let CausalShape {
        queries: lq,
        keys: lk,
        head_dim: d,
        ..
    } = shape;
    let isa = Isa::active();
    out.par_chunks_mut(lq * d)
        .zip(lse.par_chunks_mut(lq))
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (p, (out, lse))| {
            let pair = Pair {
                q: Strided::contiguous(&q[p * lq * d..(p + 1) * lq * d], d),
                k: Strided::contiguous(&k[p * lk * d..(p + 1) * lk * d], d),
                v: Strided::contiguous(&v[p * lk * d..(p + 1) * lk * d], d),
                shape,
                options,
                index: p,
            };
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx2Fma {
                // SAFETY: `Isa::active` only reports AVX2 + FMA (or above) when the CPU has them.
                unsafe { avx2::forward_pair(&pair, scratch, out, lse) };
                return;
            }
            let _ = isa;
            forward_pair::<false>(&pair, scratch, out, lse);
        });
    Ok(())
}

/// Gradients of [`causal_attention_forward`] with respect to `q`, `k` and `v`, given the
/// forward's `out` and `lse` and the gradient `grad_out` of the output (all in the forward's
/// layout). Each probability is recomputed as `exp(scale·qᵢ·kⱼ − lseᵢ)`; with
/// `δᵢ = grad_outᵢ·outᵢ` the score gradient is `pᵢⱼ·(grad_outᵢ·vⱼ − δᵢ)`.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    grad_out: &[f32],
    shape: CausalShape,
    options: CausalOptions,
    grad_q: &mut [f32],
    grad_k: &mut [f32],
    grad_v: &mut [f32],
) -> Result<()> {
    shape.check_all(
        options,
        [q.len(), k.len(), v.len(), out.len()],
        &[
            ("grad_out", grad_out.len(), shape.queries),
            ("grad_q", grad_q.len(), shape.queries),
            ("grad_k", grad_k.len(), shape.keys),
            ("grad_v", grad_v.len(), shape.keys),
        ],
        lse.len(),
    )?;
    let CausalShape {
        queries: lq,
        keys: lk,
        head_dim: d,
        ..
    } = shape;
    let isa = Isa::active();
    grad_q
        .par_chunks_mut(lq * d)
        .zip(grad_k.par_chunks_mut(lk * d))
        .zip(grad_v.par_chunks_mut(lk * d))
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (p, ((gq, gk), gv))| {
            let qs = p * lq * d..(p + 1) * lq * d;
            let pair = Pair {
                q: Strided::contiguous(&q[qs.clone()], d),
                k: Strided::contiguous(&k[p * lk * d..(p + 1) * lk * d], d),
                v: Strided::contiguous(&v[p * lk * d..(p + 1) * lk * d], d),
                shape,
                options,
                index: p,
            };
            let rows = (
                Strided::contiguous(&out[qs.clone()], d),
                &lse[p * lq..(p + 1) * lq],
                Strided::contiguous(&grad_out[qs], d),
            );
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx2Fma {
                // SAFETY: as in the forward.
                unsafe { avx2::backward_pair(&pair, rows, scratch, (gq, gk, gv)) };
                return;
            }
            let _ = isa;
            backward_pair::<false>(&pair, rows, scratch, (gq, gk, gv));
        });
    Ok(())
}

/// The dropout mask [`causal_attention_forward`] applies for `dropout`: `[pairs, queries,
/// keys]` values, `1 / keep` where a probability is kept and 0 where it is dropped (entries
/// above the causal diagonal are filled too; they multiply zero probabilities). For tests and
/// for running another implementation with the same mask.
pub fn causal_dropout_mask(dropout: AttentionDropout, shape: CausalShape) -> Vec<f32> {
    let rows = shape.pairs * shape.queries;
    let mut mask = Vec::with_capacity(rows * shape.keys);
    for row in 0..rows {
        let m = crate::attention_pair::RowMask::new(dropout, row as u64);
        mask.extend((0..shape.keys).map(|j| m.scale(j)));
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * s).sin() * 1.7).collect()
    }

    fn shape(pairs: usize, queries: usize, keys: usize, head_dim: usize) -> CausalShape {
        CausalShape {
            pairs,
            queries,
            keys,
            head_dim,
        }
    }

    /// The definition in f64 with the full `[lq, lk]` matrix, an explicit causal mask and the
    /// dropout mask of [`causal_dropout_mask`] (if any) on the normalised probabilities.
    fn reference(q: &[f32], k: &[f32], v: &[f32], s: CausalShape, o: CausalOptions) -> Vec<f64> {
        let (lq, lk, d) = (s.queries, s.keys, s.head_dim);
        let drop = o.dropout.map(|dr| causal_dropout_mask(dr, s));
        let mut out = vec![0f64; s.pairs * lq * d];
        for p in 0..s.pairs {
            for i in 0..lq {
                let scores: Vec<f64> = (0..lk)
                    .map(|j| {
                        if j > i + lk - lq {
                            f64::NEG_INFINITY
                        } else {
                            let qk: f64 = (0..d)
                                .map(|t| {
                                    q[(p * lq + i) * d + t] as f64 * k[(p * lk + j) * d + t] as f64
                                })
                                .sum();
                            qk * o.scale as f64
                        }
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let keep = |j: usize| {
                    drop.as_ref()
                        .map_or(1.0, |m| m[(p * lq + i) * lk + j] as f64)
                };
                for t in 0..d {
                    out[(p * lq + i) * d + t] = (0..lk)
                        .map(|j| e[j] / z * keep(j) * v[(p * lk + j) * d + t] as f64)
                        .sum();
                }
            }
        }
        out
    }

    fn rel(a: &[f32], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
        let den: f64 = b.iter().map(|y| y * y).sum();
        (num / den).sqrt()
    }

    const DROPOUT: AttentionDropout = AttentionDropout {
        keep: 0.75,
        seed: 0x5EED,
    };

    #[test]
    fn forward_matches_the_masked_softmax_definition() {
        for s in [
            shape(3, 7, 7, 5),
            shape(2, 3, 8, 16),
            // Several row blocks, a last block of 3 rows, keys not a multiple of 8.
            shape(2, 19, 19, 24),
            shape(1, 10, 21, 11),
        ] {
            let (lq, lk, d) = (s.queries, s.keys, s.head_dim);
            let q = data(s.pairs * lq * d, 0.37);
            let k = data(s.pairs * lk * d, 1.21);
            let v = data(s.pairs * lk * d, 0.53);
            let plain = CausalOptions::new(1.0 / (d as f32).sqrt());
            for options in [
                plain,
                CausalOptions {
                    dropout: Some(DROPOUT),
                    ..plain
                },
            ] {
                let mut out = vec![0f32; q.len()];
                let mut lse = vec![0f32; s.pairs * lq];
                causal_attention_forward(&q, &k, &v, s, options, &mut out, &mut lse).unwrap();
                let err = rel(&out, &reference(&q, &k, &v, s, options));
                assert!(err < 1e-6, "{s:?} {options:?}: {err}");
            }
        }
    }

    /// Analytic gradients against central differences of the f64 definition (the dropout
    /// mask is fixed by its seed, so the loss stays a smooth function of the inputs).
    #[test]
    fn backward_matches_central_differences() {
        let plain = CausalOptions::new(0.6);
        for (s, options) in [
            (shape(2, 5, 6, 4), plain),
            (shape(1, 11, 13, 9), plain),
            (shape(1, 17, 17, 8), plain),
            (
                shape(1, 12, 12, 8),
                CausalOptions {
                    dropout: Some(DROPOUT),
                    ..plain
                },
            ),
        ] {
            backward_case(s, options);
        }
    }

    fn backward_case(s: CausalShape, options: CausalOptions) {
        let (lq, lk, d) = (s.queries, s.keys, s.head_dim);
        let q = data(s.pairs * lq * d, 0.41);
        let k = data(s.pairs * lk * d, 0.93);
        let v = data(s.pairs * lk * d, 0.29);
        let w = data(q.len(), 1.77); // loss = Σ out ⊙ w, so grad_out = w
        let mut out = vec![0f32; q.len()];
        let mut lse = vec![0f32; s.pairs * lq];
        causal_attention_forward(&q, &k, &v, s, options, &mut out, &mut lse).unwrap();
        let (mut gq, mut gk, mut gv) = (
            vec![0f32; q.len()],
            vec![0f32; k.len()],
            vec![0f32; v.len()],
        );
        causal_attention_backward(
            &q, &k, &v, &out, &lse, &w, s, options, &mut gq, &mut gk, &mut gv,
        )
        .unwrap();
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let o = reference(q, k, v, s, options);
            o.iter().zip(&w).map(|(o, w)| o * *w as f64).sum()
        };
        let h = 1e-3f32;
        let numeric = |which: usize, len: usize| -> Vec<f64> {
            (0..len)
                .map(|idx| {
                    let mut bufs = [q.clone(), k.clone(), v.clone()];
                    bufs[which][idx] += h;
                    let up = loss(&bufs[0], &bufs[1], &bufs[2]);
                    bufs[which][idx] -= 2.0 * h;
                    let down = loss(&bufs[0], &bufs[1], &bufs[2]);
                    (up - down) / (2.0 * h as f64)
                })
                .collect()
        };
        for (name, which, got) in [("q", 0, &gq), ("k", 1, &gk), ("v", 2, &gv)] {
            let err = rel(got, &numeric(which, got.len()));
            assert!(err < 1e-4, "{s:?} {options:?} grad {name}: rel err {err}");
        }
    }

    /// The mask keeps about `keep` of the entries, scales them by `1 / keep`, is fixed by
    /// the seed and changes with it.
    #[test]
    fn dropout_mask_keeps_the_expected_fraction() {
        let s = shape(4, 64, 64, 1);
        let mask = causal_dropout_mask(DROPOUT, s);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        assert!(
            mask.iter()
                .all(|&m| m == 0.0 || (m - 1.0 / 0.75).abs() < 1e-6)
        );
        assert_eq!(mask, causal_dropout_mask(DROPOUT, s));
        let other = causal_dropout_mask(AttentionDropout { seed: 7, ..DROPOUT }, s);
        assert_ne!(mask, other);
    }

    #[test]
    fn refuses_buffers_that_do_not_fit() {
        let s = shape(1, 4, 4, 2);
        let buf = vec![0f32; 8];
        let mut out = vec![0f32; 8];
        let mut lse = vec![0f32; 3];
        let o = CausalOptions::new(1.0);
        let err = causal_attention_forward(&buf, &buf, &buf, s, o, &mut out, &mut lse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`lse`"), "{err}");
        let bad = CausalShape { keys: 3, ..s };
        assert!(causal_attention_forward(&buf, &buf, &buf, bad, o, &mut out, &mut lse).is_err());
        let mut lse = vec![0f32; 4];
        let drop = CausalOptions {
            dropout: Some(AttentionDropout { keep: 0.0, seed: 1 }),
            ..o
        };
        let err = causal_attention_forward(&buf, &buf, &buf, s, drop, &mut out, &mut lse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep probability 0"), "{err}");
    }
}
