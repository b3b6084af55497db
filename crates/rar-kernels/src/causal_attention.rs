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

use crate::attention_tiles::{
    LANES, ROWS, rows_by_matrix, rows_by_transposed, transposed_rows_accumulate,
};
use crate::error::{KernelError, Result};
use crate::exp::exp;
use crate::isa::Isa;

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

    /// Keys visible to query `i`.
    #[inline]
    fn visible(&self, i: usize) -> usize {
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
    scale: f32,
    out: &mut [f32],
    lse: &mut [f32],
) -> Result<()> {
    shape.check_rows()?;
    shape.check("q", q.len(), shape.queries)?;
    shape.check("k", k.len(), shape.keys)?;
    shape.check("v", v.len(), shape.keys)?;
    shape.check("out", out.len(), shape.queries)?;
    if lse.len() != shape.pairs * shape.queries {
        return Err(KernelError::Shape(format!(
            "causal attention: `lse` holds {} values, {shape:?} needs {}",
            lse.len(),
            shape.pairs * shape.queries
        )));
    }
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
                q: &q[p * lq * d..(p + 1) * lq * d],
                k: &k[p * lk * d..(p + 1) * lk * d],
                v: &v[p * lk * d..(p + 1) * lk * d],
                shape,
                scale,
            };
            #[cfg(target_arch = "x86_64")]
            if isa == Isa::Avx2Fma {
                // SAFETY: `Isa::active` only reports AVX2 + FMA when the CPU has them.
                unsafe { avx2::forward_pair(&pair, scratch, out, lse) };
                return;
            }
            let _ = isa;
            forward_pair::<false>(&pair, scratch, out, lse);
        });
    Ok(())
}

/// One (batch row, head) pair's inputs.
struct Pair<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    shape: CausalShape,
    scale: f32,
}

/// The forward of one pair, [`ROWS`] queries at a time; `FMA` selects fused multiply-adds
/// (only inside the AVX2 + FMA wrapper, where they compile to one instruction).
#[inline(always)]
fn forward_pair<const FMA: bool>(
    pair: &Pair,
    scratch: &mut Scratch,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let CausalShape {
        queries: lq,
        head_dim: d,
        ..
    } = pair.shape;
    scratch.load(pair, false);
    let stride = scratch.stride;
    for i0 in (0..lq).step_by(ROWS) {
        let rows = ROWS.min(lq - i0);
        let n = pair.shape.visible(i0 + rows - 1);
        let Scratch {
            kt,
            block,
            probs,
            tile,
            ..
        } = &mut *scratch;
        load_rows(&pair.q[i0 * d..(i0 + rows) * d], d, block);
        rows_by_transposed::<FMA>(
            block,
            d,
            kt,
            stride,
            n.div_ceil(LANES) * LANES,
            pair.scale,
            probs,
        );
        for r in 0..ROWS {
            let row = &mut probs[r * stride..r * stride + n];
            if r >= rows {
                row.fill(0.0);
                continue;
            }
            let vis = pair.shape.visible(i0 + r);
            let max = lanes(&row[..vis], f32::NEG_INFINITY, f32::max);
            row[..vis].iter_mut().for_each(|s| *s = exp(*s - max));
            let sum = lanes(&row[..vis], 0.0, |a, b| a + b);
            let inv = 1.0 / sum;
            row[..vis].iter_mut().for_each(|s| *s *= inv);
            row[vis..].fill(0.0);
            lse[i0 + r] = max + sum.ln();
        }
        rows_by_matrix::<FMA>(probs, stride, n, pair.v, d, tile);
        out[i0 * d..(i0 + rows) * d].copy_from_slice(&tile[..rows * d]);
    }
}

/// The backward of one pair: `grad_out`, `out` and `lse` are the pair's rows. Per block of
/// queries: probabilities from the log-sum-exp, `grad_out·vᵀ`, the score gradients, then
/// `grad_q = grad_s·k`, `grad_k += grad_sᵀ·q`, `grad_v += pᵀ·grad_out`.
#[inline(always)]
fn backward_pair<const FMA: bool>(
    pair: &Pair,
    (out, lse, grad_out): (&[f32], &[f32], &[f32]),
    scratch: &mut Scratch,
    (gq, gk, gv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let CausalShape {
        queries: lq,
        head_dim: d,
        ..
    } = pair.shape;
    let scale = pair.scale;
    scratch.load(pair, true);
    let stride = scratch.stride;
    gk.fill(0.0);
    gv.fill(0.0);
    for i0 in (0..lq).step_by(ROWS) {
        let rows = ROWS.min(lq - i0);
        let n = pair.shape.visible(i0 + rows - 1);
        let cols = n.div_ceil(LANES) * LANES;
        let Scratch {
            kt,
            vt,
            block,
            grad_block,
            probs,
            grads,
            tile,
            ..
        } = &mut *scratch;
        load_rows(&pair.q[i0 * d..(i0 + rows) * d], d, block);
        load_rows(&grad_out[i0 * d..(i0 + rows) * d], d, grad_block);
        rows_by_transposed::<FMA>(block, d, kt, stride, cols, scale, probs);
        rows_by_transposed::<FMA>(grad_block, d, vt, stride, cols, 1.0, grads);
        for r in 0..ROWS {
            let (p, g) = (
                &mut probs[r * stride..r * stride + n],
                &mut grads[r * stride..r * stride + n],
            );
            if r >= rows {
                p.fill(0.0);
                g.fill(0.0);
                continue;
            }
            let (i, vis) = (i0 + r, pair.shape.visible(i0 + r));
            let delta: f32 = grad_out[i * d..(i + 1) * d]
                .iter()
                .zip(&out[i * d..(i + 1) * d])
                .map(|(a, b)| a * b)
                .sum();
            for (p, g) in p[..vis].iter_mut().zip(&mut g[..vis]) {
                *p = exp(*p - lse[i]);
                *g = *p * (*g - delta) * scale;
            }
            p[vis..].fill(0.0);
            g[vis..].fill(0.0);
        }
        rows_by_matrix::<FMA>(grads, stride, n, pair.k, d, tile);
        gq[i0 * d..(i0 + rows) * d].copy_from_slice(&tile[..rows * d]);
        transposed_rows_accumulate::<FMA>(grads, stride, n, block, d, gk);
        transposed_rows_accumulate::<FMA>(probs, stride, n, grad_block, d, gv);
    }
}

/// `values` folded by `f` in eight interleaved lanes (so the loop vectorises), then across
/// the lanes.
#[inline(always)]
fn lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = f(acc[l], c[l]);
        }
    }
    let lanes = acc.into_iter().fold(init, &f);
    tail.iter().fold(lanes, |a, &b| f(a, b))
}

/// `src` (`rows ≤ ROWS` rows of `d`) into `block` `[ROWS, d]`, the missing rows zero.
fn load_rows(src: &[f32], d: usize, block: &mut Vec<f32>) {
    block.clear();
    block.extend_from_slice(src);
    block.resize(ROWS * d, 0.0);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Pair, Scratch};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_pair(
        pair: &Pair,
        scratch: &mut Scratch,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        super::forward_pair::<true>(pair, scratch, out, lse)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_pair(
        pair: &Pair,
        rows: (&[f32], &[f32], &[f32]),
        scratch: &mut Scratch,
        grads: (&mut [f32], &mut [f32], &mut [f32]),
    ) {
        super::backward_pair::<true>(pair, rows, scratch, grads)
    }
}

/// Per-thread buffers: `k` (and `v` for the backward) of one pair transposed to
/// `[d, stride]` (stride = keys rounded up to [`LANES`], zero-padded) so score tiles read
/// contiguous keys; a block of query rows (and of output gradients); `[ROWS, stride]`
/// probabilities and score gradients; a `[ROWS, d]` result tile.
#[derive(Default)]
struct Scratch {
    stride: usize,
    kt: Vec<f32>,
    vt: Vec<f32>,
    block: Vec<f32>,
    grad_block: Vec<f32>,
    probs: Vec<f32>,
    grads: Vec<f32>,
    tile: Vec<f32>,
}

impl Scratch {
    fn load(&mut self, pair: &Pair, with_values: bool) {
        let (lk, d) = (pair.shape.keys, pair.shape.head_dim);
        self.stride = lk.div_ceil(LANES) * LANES;
        transpose_into(pair.k, d, self.stride, &mut self.kt);
        if with_values {
            transpose_into(pair.v, d, self.stride, &mut self.vt);
        }
        for buf in [&mut self.probs, &mut self.grads] {
            buf.clear();
            buf.resize(ROWS * self.stride, 0.0);
        }
        self.tile.clear();
        self.tile.resize(ROWS * d, 0.0);
    }
}

/// `src` `[rows, d]` → `dst` `[d, stride]`, columns past `rows` zero.
fn transpose_into(src: &[f32], d: usize, stride: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(d * stride, 0.0);
    for (r, row) in src.chunks_exact(d).enumerate() {
        for (t, &x) in row.iter().enumerate() {
            dst[t * stride + r] = x;
        }
    }
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
    scale: f32,
    grad_q: &mut [f32],
    grad_k: &mut [f32],
    grad_v: &mut [f32],
) -> Result<()> {
    shape.check_rows()?;
    for (name, len, rows) in [
        ("q", q.len(), shape.queries),
        ("k", k.len(), shape.keys),
        ("v", v.len(), shape.keys),
        ("out", out.len(), shape.queries),
        ("grad_out", grad_out.len(), shape.queries),
        ("grad_q", grad_q.len(), shape.queries),
        ("grad_k", grad_k.len(), shape.keys),
        ("grad_v", grad_v.len(), shape.keys),
    ] {
        shape.check(name, len, rows)?;
    }
    if lse.len() != shape.pairs * shape.queries {
        return Err(KernelError::Shape(format!(
            "causal attention backward: `lse` holds {} values, {shape:?} needs {}",
            lse.len(),
            shape.pairs * shape.queries
        )));
    }
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
                q: &q[qs.clone()],
                k: &k[p * lk * d..(p + 1) * lk * d],
                v: &v[p * lk * d..(p + 1) * lk * d],
                shape,
                scale,
            };
            let rows = (&out[qs.clone()], &lse[p * lq..(p + 1) * lq], &grad_out[qs]);
            #[cfg(target_arch = "x86_64")]
            if isa == Isa::Avx2Fma {
                // SAFETY: as in the forward.
                unsafe { avx2::backward_pair(&pair, rows, scratch, (gq, gk, gv)) };
                return;
            }
            let _ = isa;
            backward_pair::<false>(&pair, rows, scratch, (gq, gk, gv));
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * s).sin() * 1.7).collect()
    }

    /// The definition in f64 with the full `[lq, lk]` matrix and an explicit mask: output, and
    /// the loss `Σ out ⊙ w` so that its gradients can be taken by central differences.
    fn reference(q: &[f32], k: &[f32], v: &[f32], s: CausalShape, scale: f64) -> Vec<f64> {
        let (lq, lk, d) = (s.queries, s.keys, s.head_dim);
        let mut out = vec![0f64; s.pairs * lq * d];
        for p in 0..s.pairs {
            for i in 0..lq {
                let scores: Vec<f64> = (0..lk)
                    .map(|j| {
                        if j > i + lk - lq {
                            f64::NEG_INFINITY
                        } else {
                            (0..d)
                                .map(|t| {
                                    q[(p * lq + i) * d + t] as f64 * k[(p * lk + j) * d + t] as f64
                                })
                                .sum::<f64>()
                                * scale
                        }
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for t in 0..d {
                    out[(p * lq + i) * d + t] = (0..lk)
                        .map(|j| e[j] / z * v[(p * lk + j) * d + t] as f64)
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

    #[test]
    fn forward_matches_the_masked_softmax_definition() {
        for shape in [
            CausalShape {
                pairs: 3,
                queries: 7,
                keys: 7,
                head_dim: 5,
            },
            CausalShape {
                pairs: 2,
                queries: 3,
                keys: 8,
                head_dim: 16,
            },
            // Several row blocks, a last block of 3 rows, keys not a multiple of 8.
            CausalShape {
                pairs: 2,
                queries: 19,
                keys: 19,
                head_dim: 24,
            },
            CausalShape {
                pairs: 1,
                queries: 10,
                keys: 21,
                head_dim: 11,
            },
        ] {
            let (lq, lk, d) = (shape.queries, shape.keys, shape.head_dim);
            let q = data(shape.pairs * lq * d, 0.37);
            let k = data(shape.pairs * lk * d, 1.21);
            let v = data(shape.pairs * lk * d, 0.53);
            let scale = 1.0 / (d as f32).sqrt();
            let mut out = vec![0f32; q.len()];
            let mut lse = vec![0f32; shape.pairs * lq];
            causal_attention_forward(&q, &k, &v, shape, scale, &mut out, &mut lse).unwrap();
            let want = reference(&q, &k, &v, shape, scale as f64);
            assert!(rel(&out, &want) < 1e-6, "{shape:?}: {}", rel(&out, &want));
        }
    }

    /// Analytic gradients against central differences of the f64 definition.
    #[test]
    fn backward_matches_central_differences() {
        let shape = CausalShape {
            pairs: 2,
            queries: 5,
            keys: 6,
            head_dim: 4,
        };
        let (lq, lk, d) = (shape.queries, shape.keys, shape.head_dim);
        let q = data(shape.pairs * lq * d, 0.41);
        let k = data(shape.pairs * lk * d, 0.93);
        let v = data(shape.pairs * lk * d, 0.29);
        let w = data(q.len(), 1.77); // loss = Σ out ⊙ w, so grad_out = w
        let scale = 0.6f32;
        let mut out = vec![0f32; q.len()];
        let mut lse = vec![0f32; shape.pairs * lq];
        causal_attention_forward(&q, &k, &v, shape, scale, &mut out, &mut lse).unwrap();
        let (mut gq, mut gk, mut gv) = (
            vec![0f32; q.len()],
            vec![0f32; k.len()],
            vec![0f32; v.len()],
        );
        causal_attention_backward(
            &q, &k, &v, &out, &lse, &w, shape, scale, &mut gq, &mut gk, &mut gv,
        )
        .unwrap();

        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let o = reference(q, k, v, shape, scale as f64);
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
            let want = numeric(which, got.len());
            let err = rel(got, &want);
            assert!(err < 1e-4, "{shape:?} grad {name}: rel err {err}");
        }
    }

    #[test]
    fn refuses_buffers_that_do_not_fit() {
        let shape = CausalShape {
            pairs: 1,
            queries: 4,
            keys: 4,
            head_dim: 2,
        };
        let buf = vec![0f32; 8];
        let mut out = vec![0f32; 8];
        let mut lse = vec![0f32; 3];
        let err = causal_attention_forward(&buf, &buf, &buf, shape, 1.0, &mut out, &mut lse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`lse`"), "{err}");
        let bad = CausalShape { keys: 3, ..shape };
        assert!(causal_attention_forward(&buf, &buf, &buf, bad, 1.0, &mut out, &mut lse).is_err());
    }
}
