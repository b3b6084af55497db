//! One (batch row, head) pair of the training attention: the blocked forward and backward
//! bodies behind [`crate::causal_attention_forward`] / [`crate::causal_attention_backward`],
//! their per-thread buffers, and the attention-dropout mask (regenerated from a key, never
//! stored).

use crate::attention_tiles::{
    LANES, ROWS, rows_by_matrix, rows_by_transposed, transposed_rows_accumulate,
};
use crate::causal_attention::{CausalOptions, CausalShape};
use crate::exp::exp_with;
use crate::transpose::transpose_padded;

/// Rows of a matrix `stride` values apart from the start of `data` (a pair's rows inside a
/// `[batch, rows, heads, head_dim]` activation, read where they lie instead of gathered).
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> Strided<'a> {
    /// Rows of `d` values stored one after another.
    pub fn contiguous(data: &'a [f32], d: usize) -> Self {
        Self { data, stride: d }
    }

    /// Row `i`'s `d` values.
    #[inline]
    pub(crate) fn row(&self, i: usize, d: usize) -> &'a [f32] {
        &self.data[i * self.stride..i * self.stride + d]
    }

    /// The rows from `i` on.
    #[inline]
    fn skip_rows(&self, i: usize) -> Self {
        Self {
            data: &self.data[(i * self.stride).min(self.data.len())..],
            stride: self.stride,
        }
    }
}

/// One (batch row, head) pair's inputs; `index` is its position among the pairs (it keys the
/// dropout mask).
pub(crate) struct Pair<'a> {
    pub q: Strided<'a>,
    pub k: Strided<'a>,
    pub v: Strided<'a>,
    pub shape: CausalShape,
    pub options: CausalOptions,
    pub index: usize,
}

impl Pair<'_> {
    /// The dropout scale (`0` or `1 / keep`) of each key for query `i`, or `None` without
    /// dropout.
    #[inline(always)]
    fn row_mask(&self, i: usize) -> Option<RowMask> {
        self.options
            .dropout
            .map(|d| RowMask::new(d, (self.index * self.shape.queries + i) as u64))
    }
}

/// Dropout on the attention probabilities (paper §3's transformer, as the reference's
/// `attn_drop`): each probability is kept with probability `keep` and scaled by `1 / keep`.
/// The mask is a hash of (`seed`, row, key), so the backward regenerates it instead of
/// storing `[L, L]` values; a given seed always gives the same mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDropout {
    /// Probability of keeping a probability, in `(0, 1]`.
    pub keep: f32,
    /// Key of the mask (draw it from the device RNG so the device seed fixes it).
    pub seed: u64,
}

/// The mask of one query row: `keep` exact to 2⁻³² (a 32-bit hash below a threshold).
#[derive(Clone, Copy)]
pub(crate) struct RowMask {
    key: u32,
    threshold: u64,
    scale: f32,
}

impl RowMask {
    pub(crate) fn new(dropout: AttentionDropout, row: u64) -> Self {
        // splitmix64 of (seed, row): one well-mixed 32-bit key per row.
        let mut z = dropout.seed ^ row.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            key: z as u32,
            threshold: (dropout.keep as f64 * 4_294_967_296.0).round() as u64,
            scale: 1.0 / dropout.keep,
        }
    }

    /// `1 / keep` if key `j` is kept, else 0 (a bijective 32-bit integer hash of `key ⊕ j·φ`,
    /// "lowbias32", so the keys of one row get independent-looking bits).
    #[inline(always)]
    pub(crate) fn scale(&self, j: usize) -> f32 {
        let mut x = self.key ^ (j as u32).wrapping_mul(0x9E37_79B9);
        x ^= x >> 16;
        x = x.wrapping_mul(0x7FEB_352D);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846C_A68B);
        x ^= x >> 16;
        if (x as u64) < self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// The forward of one pair, [`ROWS`] queries at a time; `FMA` selects fused multiply-adds
/// (only inside the AVX2 + FMA wrapper, where they compile to one instruction).
///
/// The exponentials are taken over whole vectors of the padded row (the causal tail is
/// zeroed after), and each output row is divided by its softmax sum once, after the
/// product with the values, instead of normalising every probability.
#[inline(always)]
pub(crate) fn forward_pair<const FMA: bool>(
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
    scratch.load::<FMA>(pair, false);
    let stride = scratch.stride;
    for i0 in (0..lq).step_by(ROWS) {
        let rows = ROWS.min(lq - i0);
        let n = pair.shape.visible(i0 + rows - 1);
        let cols = n.div_ceil(LANES) * LANES;
        let Scratch {
            kt,
            block,
            probs,
            tile,
            ..
        } = &mut *scratch;
        let q = rows_of(pair.q.skip_rows(i0), rows, d, block);
        rows_by_transposed::<FMA>(
            q.data,
            q.stride,
            d,
            kt,
            stride,
            cols,
            pair.options.scale,
            probs,
        );
        let mut inv = [0f32; ROWS];
        for (r, inv) in inv.iter_mut().enumerate() {
            let row = &mut probs[r * stride..r * stride + cols];
            if r >= rows {
                row.fill(0.0);
                continue;
            }
            let vis = pair.shape.visible(i0 + r);
            let max = lanes(&row[..vis], f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|s| *s = exp_with::<FMA>(*s - max));
            row[vis..].fill(0.0);
            let sum = lanes(row, 0.0, |a, b| a + b);
            *inv = 1.0 / sum;
            lse[i0 + r] = max + sum.ln();
            if let Some(mask) = pair.row_mask(i0 + r) {
                row[..vis]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, p)| *p *= mask.scale(j));
            }
        }
        let dst = &mut out[i0 * d..(i0 + rows) * d];
        if rows == ROWS {
            rows_by_matrix::<FMA>(probs, stride, n, pair.v.data, pair.v.stride, d, dst);
        } else {
            rows_by_matrix::<FMA>(probs, stride, n, pair.v.data, pair.v.stride, d, tile);
            dst.copy_from_slice(&tile[..rows * d]);
        }
        for (row, inv) in dst.chunks_exact_mut(d).zip(inv) {
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// The backward of one pair: `grad_out`, `out` and `lse` are the pair's rows. Per block of
/// queries: probabilities from the log-sum-exp, `grad_out·vᵀ`, the score gradients, then
/// `grad_q = grad_s·k`, `grad_k += grad_sᵀ·q`, `grad_v += pᵀ·grad_out`.
#[inline(always)]
pub(crate) fn backward_pair<const FMA: bool>(
    pair: &Pair,
    (out, lse, grad_out): (Strided, &[f32], Strided),
    scratch: &mut Scratch,
    (gq, gk, gv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let CausalShape {
        queries: lq,
        head_dim: d,
        ..
    } = pair.shape;
    let scale = pair.options.scale;
    scratch.load::<FMA>(pair, true);
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
        let q = rows_of(pair.q.skip_rows(i0), rows, d, block);
        let go = rows_of(grad_out.skip_rows(i0), rows, d, grad_block);
        rows_by_transposed::<FMA>(q.data, q.stride, d, kt, stride, cols, scale, probs);
        rows_by_transposed::<FMA>(go.data, go.stride, d, vt, stride, cols, 1.0, grads);
        for r in 0..ROWS {
            let (p, g) = (
                &mut probs[r * stride..r * stride + cols],
                &mut grads[r * stride..r * stride + cols],
            );
            if r >= rows {
                p.fill(0.0);
                g.fill(0.0);
                continue;
            }
            let (i, vis) = (i0 + r, pair.shape.visible(i0 + r));
            let delta: f32 = grad_out
                .row(i, d)
                .iter()
                .zip(out.row(i, d))
                .map(|(a, b)| a * b)
                .sum();
            // With dropout the output used the dropped probabilities p·m: the gradient of the
            // kept probability is m·(grad_outᵢ·vⱼ), δᵢ = grad_outᵢ·outᵢ still, and the values
            // see p·m.
            match pair.row_mask(i) {
                None => {
                    for (p, g) in p.iter_mut().zip(g.iter_mut()) {
                        *p = exp_with::<FMA>(*p - lse[i]);
                        *g = *p * (*g - delta) * scale;
                    }
                }
                Some(mask) => {
                    for (j, (p, g)) in p[..vis].iter_mut().zip(&mut g[..vis]).enumerate() {
                        let (prob, m) = (exp_with::<FMA>(*p - lse[i]), mask.scale(j));
                        *g = prob * (*g * m - delta) * scale;
                        *p = prob * m;
                    }
                }
            }
            p[vis..].fill(0.0);
            g[vis..].fill(0.0);
        }
        if rows == ROWS {
            let gq = &mut gq[i0 * d..(i0 + ROWS) * d];
            rows_by_matrix::<FMA>(grads, stride, n, pair.k.data, pair.k.stride, d, gq);
        } else {
            rows_by_matrix::<FMA>(grads, stride, n, pair.k.data, pair.k.stride, d, tile);
            gq[i0 * d..(i0 + rows) * d].copy_from_slice(&tile[..rows * d]);
        }
        transposed_rows_accumulate::<FMA>(grads, stride, n, q.data, q.stride, d, gk);
        transposed_rows_accumulate::<FMA>(probs, stride, n, go.data, go.stride, d, gv);
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

/// The first `rows ≤ ROWS` rows of `src` as `ROWS` rows: themselves when there are `ROWS`,
/// else copied into `block` (`[ROWS, d]`) with the missing rows zero.
fn rows_of<'a>(src: Strided<'a>, rows: usize, d: usize, block: &'a mut Vec<f32>) -> Strided<'a> {
    if rows == ROWS {
        return src;
    }
    block.clear();
    for i in 0..rows {
        block.extend_from_slice(src.row(i, d));
    }
    block.resize(ROWS * d, 0.0);
    Strided::contiguous(block, d)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{Pair, Scratch, Strided};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn forward_pair(
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
    pub(crate) unsafe fn backward_pair(
        pair: &Pair,
        rows: (Strided, &[f32], Strided),
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
pub(crate) struct Scratch {
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
    /// Transposes the pair's keys (and values) and sizes the buffers; nothing is zeroed but
    /// the padding columns (every other value is written before it is read).
    #[inline(always)]
    fn load<const FMA: bool>(&mut self, pair: &Pair, with_values: bool) {
        let (lk, d) = (pair.shape.keys, pair.shape.head_dim);
        self.stride = lk.div_ceil(LANES) * LANES;
        transpose_padded::<FMA>(pair.k, lk, d, self.stride, &mut self.kt);
        if with_values {
            transpose_padded::<FMA>(pair.v, lk, d, self.stride, &mut self.vt);
        }
        for buf in [&mut self.probs, &mut self.grads] {
            sized(buf, ROWS * self.stride);
        }
        sized(&mut self.tile, ROWS * d);
    }
}

/// `buf` holding `len` values (their contents unspecified).
pub(crate) fn sized(buf: &mut Vec<f32>, len: usize) {
    if buf.len() != len {
        buf.clear();
        buf.resize(len, 0.0);
    }
}
