//! The training attention over strided `[batch, heads, rows, head_dim]` views, so that a model
//! can hand it its `[batch, rows, heads, head_dim]` activations as they are.
//!
//! The model's Q, K and V come out of their products as `[B, L, C]`, i.e. `[B, L, H, d]`;
//! the pair-major `[B·H, L, d]` layout of [`causal_attention_forward`] needed a transposed
//! copy of each (and of the output, and of every gradient in the backward): six full passes
//! per layer and step, on one thread. Here each (batch row, head) pair's rows are gathered
//! from the view into a per-thread buffer (a few KB, cache-resident, used at once), the
//! pair is computed as before, and its rows are scattered into the output's layout, all in
//! the parallel loop. The pair order, and so the dropout mask, is the same as in the
//! pair-major functions.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::attention_pair::avx2;
use crate::attention_pair::{Pair, Scratch, Strided, backward_pair, forward_pair, sized};
use crate::causal_attention::{CausalOptions, CausalShape};
use crate::error::{KernelError, Result};
use crate::isa::Isa;

/// Where the rows of a `[batch, heads, rows, head_dim]` tensor lie in a buffer whose head
/// dimension is contiguous: element `(b, h, i, t)` is at
/// `offset + b·batch_stride + h·head_stride + i·row_stride + t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadView {
    /// Heads per batch row (pairs are numbered `b·heads + h`).
    pub heads: usize,
    /// Distance between batch rows.
    pub batch_stride: usize,
    /// Distance between heads.
    pub head_stride: usize,
    /// Distance between rows (positions).
    pub row_stride: usize,
    /// Position of element `(0, 0, 0, 0)`.
    pub offset: usize,
}

/// The layout [`causal_attention_forward_views`] and [`causal_attention_backward_views`]
/// write their outputs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLayout {
    /// `[batch·heads, rows, head_dim]`, the layout of [`causal_attention_forward`](crate::causal_attention_forward).
    PairMajor,
    /// `[batch, rows, heads, head_dim]`: each position's heads side by side.
    HeadsLast,
}

impl HeadLayout {
    /// The view of a buffer in this layout.
    pub fn view(self, heads: usize, rows: usize, head_dim: usize) -> HeadView {
        let (head_stride, row_stride) = match self {
            Self::PairMajor => (rows * head_dim, head_dim),
            Self::HeadsLast => (head_dim, heads * head_dim),
        };
        HeadView {
            heads,
            batch_stride: heads * rows * head_dim,
            head_stride,
            row_stride,
            offset: 0,
        }
    }
}

impl HeadView {
    /// Index of row `i` of pair `p`.
    #[inline]
    fn row(&self, p: usize, i: usize) -> usize {
        self.offset
            + (p / self.heads) * self.batch_stride
            + (p % self.heads) * self.head_stride
            + i * self.row_stride
    }

    /// Errors unless the view fits `len` values for `shape.pairs` pairs of `rows` rows.
    fn check(&self, name: &str, len: usize, shape: &CausalShape, rows: usize) -> Result<()> {
        let bad = |why: String| {
            Err(KernelError::Shape(format!(
                "causal attention: view of `{name}` {self:?}: {why}"
            )))
        };
        if self.heads == 0 || !shape.pairs.is_multiple_of(self.heads) {
            return bad(format!("{} pairs are not whole batch rows", shape.pairs));
        }
        if shape.pairs == 0 || rows == 0 {
            return Ok(());
        }
        let end = self.row(shape.pairs - 1, rows - 1) + shape.head_dim;
        if end > len {
            return bad(format!("reaches index {end}, the buffer holds {len}"));
        }
        Ok(())
    }

    /// Pair `p`'s rows of `src`, where they lie (the view was checked to fit `src`).
    fn rows_of<'a>(&self, src: &'a [f32], p: usize) -> Strided<'a> {
        Strided {
            data: &src[self.row(p, 0).min(src.len())..],
            stride: self.row_stride,
        }
    }
}

/// Checks the sizes and that the inputs' views fit their buffers.
fn check_inputs(
    shape: &CausalShape,
    options: &CausalOptions,
    inputs: &[(&str, &[f32], HeadView, usize)],
) -> Result<()> {
    if shape.keys < shape.queries || shape.head_dim == 0 {
        return Err(KernelError::Shape(format!(
            "causal attention: {shape:?} needs keys ≥ queries and head_dim > 0"
        )));
    }
    if let Some(d) = options.dropout
        && !(d.keep > 0.0 && d.keep <= 1.0)
    {
        return Err(KernelError::Shape(format!(
            "causal attention: dropout keep probability {} is not in (0, 1]",
            d.keep
        )));
    }
    for &(name, buf, view, rows) in inputs {
        view.check(name, buf.len(), shape, rows)?;
    }
    Ok(())
}

fn check_output(name: &str, len: usize, want: usize) -> Result<()> {
    if len != want {
        return Err(KernelError::Shape(format!(
            "causal attention: `{name}` holds {len} values, {want} are needed"
        )));
    }
    Ok(())
}

/// An output buffer shared by the pairs, each writing only its own rows.
#[derive(Clone, Copy)]
struct Rows {
    ptr: *mut f32,
    len: usize,
    view: HeadView,
}

// SAFETY: pairs write disjoint rows (see `Rows::scatter`), so sharing the pointer between
// rayon's threads never lets two of them touch one value.
unsafe impl Send for Rows {}
unsafe impl Sync for Rows {}

impl Rows {
    fn new(buf: &mut [f32], layout: HeadLayout, heads: usize, rows: usize, d: usize) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            view: layout.view(heads, rows, d),
        }
    }

    /// Writes pair `p`'s rows `src` (`[rows, d]`).
    fn scatter(&self, p: usize, src: &[f32], d: usize) {
        for (i, row) in src.chunks_exact(d).enumerate() {
            let at = self.view.row(p, i);
            assert!(at + d <= self.len, "attention output row out of bounds");
            // SAFETY: in bounds (asserted); a `HeadLayout` view maps distinct (pair, row)
            // to disjoint ranges of `d` values, and each pair is written by one task.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), self.ptr.add(at), d) };
        }
    }
}

/// Per-thread buffers of one pair's output rows (scattered into the output's layout after).
#[derive(Default)]
struct PairOutputs {
    out: Vec<f32>,
    grad_q: Vec<f32>,
    grad_k: Vec<f32>,
    grad_v: Vec<f32>,
}

/// The three inputs of both passes, each with its view.
#[derive(Clone, Copy)]
struct Qkv<'a> {
    q: (&'a [f32], HeadView),
    k: (&'a [f32], HeadView),
    v: (&'a [f32], HeadView),
}

impl<'a> Qkv<'a> {
    /// The entries of [`check_inputs`] for q, k and v.
    fn checked(&self, shape: &CausalShape) -> [(&'static str, &'a [f32], HeadView, usize); 3] {
        [
            ("q", self.q.0, self.q.1, shape.queries),
            ("k", self.k.0, self.k.1, shape.keys),
            ("v", self.v.0, self.v.1, shape.keys),
        ]
    }

    /// Pair `p` of q, k and v, read in place.
    fn pair(&self, p: usize, shape: CausalShape, options: CausalOptions) -> Pair<'a> {
        Pair {
            q: self.q.1.rows_of(self.q.0, p),
            k: self.k.1.rows_of(self.k.0, p),
            v: self.v.1.rows_of(self.v.0, p),
            shape,
            options,
            index: p,
        }
    }
}

/// [`causal_attention_forward`](crate::causal_attention_forward) of `q`, `k`, `v` read
/// through their views, `out` written in `layout` (`pairs · queries · head_dim` values) and
/// `lse` pair-major (`pairs · queries`).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward_views(
    q: (&[f32], HeadView),
    k: (&[f32], HeadView),
    v: (&[f32], HeadView),
    shape: CausalShape,
    options: CausalOptions,
    (out, layout): (&mut [f32], HeadLayout),
    lse: &mut [f32],
) -> Result<()> {
    let CausalShape {
        pairs,
        queries: lq,
        keys: _,
        head_dim: d,
    } = shape;
    let qkv = Qkv { q, k, v };
    check_inputs(&shape, &options, &qkv.checked(&shape))?;
    check_output("out", out.len(), pairs * lq * d)?;
    check_output("lse", lse.len(), pairs * lq)?;
    let out = Rows::new(out, layout, q.1.heads, lq, d);
    let isa = Isa::active();
    lse.par_chunks_mut(lq.max(1)).enumerate().for_each_init(
        || (Scratch::default(), PairOutputs::default()),
        |(scratch, g), (p, lse)| {
            sized(&mut g.out, lq * d);
            let pair = qkv.pair(p, shape, options);
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx2Fma {
                // SAFETY: `Isa::active` only reports AVX2 + FMA (or above) when the CPU has them.
                unsafe { avx2::forward_pair(&pair, scratch, &mut g.out, lse) };
                out.scatter(p, &g.out, d);
                return;
            }
            let _ = isa;
            forward_pair::<false>(&pair, scratch, &mut g.out, lse);
            out.scatter(p, &g.out, d);
        },
    );
    Ok(())
}

/// [`causal_attention_backward`](crate::causal_attention_backward) with `q`, `k`, `v`,
/// `out` and `grad_out` read through their views (`lse` pair-major, as the forward wrote it)
/// and `grad_q`, `grad_k`, `grad_v` written in `layout`.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward_views(
    q: (&[f32], HeadView),
    k: (&[f32], HeadView),
    v: (&[f32], HeadView),
    (out, out_view): (&[f32], HeadView),
    lse: &[f32],
    (grad_out, grad_out_view): (&[f32], HeadView),
    shape: CausalShape,
    options: CausalOptions,
    layout: HeadLayout,
    [grad_q, grad_k, grad_v]: [&mut [f32]; 3],
) -> Result<()> {
    let CausalShape {
        pairs,
        queries: lq,
        keys: lk,
        head_dim: d,
    } = shape;
    let qkv = Qkv { q, k, v };
    let [cq, ck, cv] = qkv.checked(&shape);
    check_inputs(
        &shape,
        &options,
        &[
            cq,
            ck,
            cv,
            ("out", out, out_view, lq),
            ("grad_out", grad_out, grad_out_view, lq),
        ],
    )?;
    check_output("lse", lse.len(), pairs * lq)?;
    check_output("grad_q", grad_q.len(), pairs * lq * d)?;
    check_output("grad_k", grad_k.len(), pairs * lk * d)?;
    check_output("grad_v", grad_v.len(), pairs * lk * d)?;
    let heads = q.1.heads;
    let grad_q = Rows::new(grad_q, layout, heads, lq, d);
    let grad_k = Rows::new(grad_k, layout, heads, lk, d);
    let grad_v = Rows::new(grad_v, layout, heads, lk, d);
    let isa = Isa::active();
    lse.par_chunks(lq.max(1)).enumerate().for_each_init(
        || (Scratch::default(), PairOutputs::default()),
        |(scratch, g), (p, lse)| {
            // Every value of the three is written by the pair's backward.
            sized(&mut g.grad_q, lq * d);
            sized(&mut g.grad_k, lk * d);
            sized(&mut g.grad_v, lk * d);
            let pair = qkv.pair(p, shape, options);
            let rows = (
                out_view.rows_of(out, p),
                lse,
                grad_out_view.rows_of(grad_out, p),
            );
            let grads = (&mut g.grad_q[..], &mut g.grad_k[..], &mut g.grad_v[..]);
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx2Fma {
                // SAFETY: as in the forward.
                unsafe { avx2::backward_pair(&pair, rows, scratch, grads) };
            } else {
                backward_pair::<false>(&pair, rows, scratch, grads);
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = isa;
                backward_pair::<false>(&pair, rows, scratch, grads);
            }
            grad_q.scatter(p, &g.grad_q, d);
            grad_k.scatter(p, &g.grad_k, d);
            grad_v.scatter(p, &g.grad_v, d);
        },
    );
    Ok(())
}

#[cfg(test)]
#[path = "attention_views_tests.rs"]
mod tests;
