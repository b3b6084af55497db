//! `x · W + b` on flex as one autodiff node, calling the `gemm` crate (the one burn-flex uses)
//! directly. burn's linear is a product and a broadcast bias add; burn-flex zero-fills every
//! product's output and then copies it once more to align it, and its backward transposes
//! operands into fresh buffers. Here the output starts as the bias rows (or uninitialised
//! memory) and the product accumulates into it; the backward hands `gemm` the transposes as
//! strides.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Shape;
use burn_flex::FlexTensor;

use super::{contiguous, from_vec, register, values};

/// Products below this many multiply-adds stay on the calling thread (burn-flex's bound).
const PARALLEL_MACS: usize = 192 * 192 * 192;

/// A row-major view for `gemm`: element `(i, j)` at `i · row_stride + j · col_stride`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View<'_> {
    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst ← (accumulate ? dst : 0) + lhs · rhs` for `dst` `[m, n]` row-major.
fn product(dst: &mut [std::mem::MaybeUninit<f32>], accumulate: bool, lhs: View, rhs: View) {
    product_strided(dst, rhs.cols, accumulate, lhs, rhs);
}

/// [`product`] into `dst` `[m, n]` whose rows lie `dst_stride ≥ n` values apart (a column
/// block of a wider matrix); values between the rows are not touched.
pub(super) fn product_strided(
    dst: &mut [std::mem::MaybeUninit<f32>],
    dst_stride: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let dst_fits = m == 0 || n == 0 || (dst_stride >= n && dst.len() >= (m - 1) * dst_stride + n);
    assert!(
        rhs.rows == k && dst_fits && lhs.in_bounds() && rhs.in_bounds(),
        "fused linear: product of [{m}, {k}] and [{}, {n}] into {} values",
        rhs.rows,
        dst.len()
    );
    let parallelism = if m * n * k >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion bounds every element gemm reads in `lhs` and `rhs` and writes in
    // `dst` (`[m, n]`, row stride `dst_stride`); without `accumulate` gemm only writes `dst`, so its
    // uninitialised contents are never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `[rows, cols]` of a row-major buffer.
pub(super) fn rows_of(data: &[f32], rows: usize, cols: usize) -> View<'_> {
    View {
        data,
        rows,
        cols,
        row_stride: cols,
        col_stride: 1,
    }
}

/// `[rows, cols]` stored transposed (`[cols, rows]` row-major).
pub(super) fn transposed(data: &[f32], rows: usize, cols: usize) -> View<'_> {
    View {
        data,
        rows,
        cols,
        row_stride: 1,
        col_stride: rows,
    }
}

/// A fresh `[m, n]` buffer holding `lhs · rhs`, plus `bias` on every row when given.
pub(super) fn new_product(lhs: View, rhs: View, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, n) = (lhs.rows, rhs.cols);
    let mut out = Vec::with_capacity(m * n);
    match bias {
        Some(b) => {
            fill_rows(&mut out, b, m);
            // SAFETY: `f32` and `MaybeUninit<f32>` have the same layout; every value is set.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len()) };
            product(dst, true, lhs, rhs);
        }
        None => {
            product(&mut out.spare_capacity_mut()[..m * n], false, lhs, rhs);
            // SAFETY: `product` wrote all `m · n` values.
            unsafe { out.set_len(m * n) };
        }
    }
    out
}

/// Appends `m` copies of `row` to the empty `out`, in a few large copies (each doubling the
/// filled part) instead of one small copy per row, split over rayon's threads when large: it
/// runs before the product, which cannot start until the rows are there.
fn fill_rows(out: &mut Vec<f32>, row: &[f32], m: usize) {
    use rayon::prelude::*;
    /// Values below which one thread fills them all.
    const PARALLEL_VALUES: usize = 1 << 18;
    let (n, total) = (row.len(), m * row.len());
    assert!(out.is_empty(), "fused linear: bias rows into a used buffer");
    if total == 0 {
        return;
    }
    out.reserve(total);
    let dst = &mut out.spare_capacity_mut()[..total];
    if total >= PARALLEL_VALUES {
        dst.par_chunks_mut(n * 64)
            .for_each(|block| fill_uninit(block, row));
    } else {
        fill_uninit(dst, row);
    }
    // SAFETY: `fill_uninit` wrote all `total` values.
    unsafe { out.set_len(total) };
}

/// Writes copies of `row` over all of `block` (whole rows).
fn fill_uninit(block: &mut [std::mem::MaybeUninit<f32>], row: &[f32]) {
    let n = row.len();
    assert!(
        block.len().is_multiple_of(n) && !block.is_empty(),
        "fused linear: bias rows"
    );
    let p = block.as_mut_ptr().cast::<f32>();
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; every copy stays inside `block`
    // (`filled + len ≤ block.len()`) and reads only its already written first `filled` values,
    // which do not overlap the destination.
    unsafe {
        std::ptr::copy_nonoverlapping(row.as_ptr(), p, n);
        let mut filled = n;
        while filled < block.len() {
            let len = filled.min(block.len() - filled);
            std::ptr::copy_nonoverlapping(p, p.add(filled), len);
            filled += len;
        }
    }
}

/// The inputs, contiguous, kept for the backward.
#[derive(Clone, Debug)]
pub(super) struct LinearState {
    pub x: FlexTensor,
    pub weight: FlexTensor,
    pub bias: FlexTensor,
}

impl LinearState {
    pub fn new(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> Self {
        // A column block of a weight (`linear_chunks`) stays a strided view: gemm reads it
        // in place.
        let strided_ok = weight.dtype() == burn::tensor::DType::F32
            && weight.layout().num_dims() == 2
            && weight.layout().strides().iter().all(|&s| s >= 0);
        Self {
            x: contiguous(x),
            weight: if strided_ok {
                weight
            } else {
                contiguous(weight)
            },
            bias: contiguous(bias),
        }
    }

    /// The weight `[K, N]` as gemm reads it (`transpose`: `Wᵀ`, `[N, K]`).
    fn weight_view(&self, transpose: bool) -> View<'_> {
        let layout = self.weight.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        let data = &self.weight.storage::<f32>()[layout.start_offset()..];
        let (rows, cols) = (shape[0], shape[1]);
        let (rs, cs) = (strides[0] as usize, strides[1] as usize);
        if transpose {
            View {
                data,
                rows: cols,
                cols: rows,
                row_stride: cs,
                col_stride: rs,
            }
        } else {
            View {
                data,
                rows,
                cols,
                row_stride: rs,
                col_stride: cs,
            }
        }
    }

    /// `[K, N]` of the weight and the rows of `x`.
    fn sizes(&self) -> (usize, usize, usize) {
        let w = self.weight.layout().shape();
        let (k, n) = (w[0], w[1]);
        let xs = self.x.layout().shape();
        assert!(
            w.num_dims() == 2 && xs[xs.num_dims() - 1] == k,
            "fused linear: input {xs:?} against weight {w:?}"
        );
        (self.x.layout().num_elements() / k.max(1), k, n)
    }

    pub fn forward(&self) -> FlexTensor {
        let (rows, k, n) = self.sizes();
        let out = new_product(
            rows_of(values(&self.x), rows, k),
            self.weight_view(false),
            Some(values(&self.bias)),
        );
        let mut shape = self.x.layout().shape().clone();
        let last = shape.num_dims() - 1;
        shape[last] = n;
        from_vec(out, shape)
    }
}

/// Backward of the linear layer (parents `x`, `weight`, `bias`).
#[derive(Debug)]
pub(super) struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        ops.state.backward(values(&g), parents, grads);
    }
}

impl LinearState {
    /// Registers the gradients of the tracked parents (`x`, `weight`, `bias`) for the output
    /// gradient `g` (`[rows, N]`, row-major).
    pub(super) fn backward(&self, g: &[f32], parents: [Option<NodeId>; 3], grads: &mut Gradients) {
        let (rows, k, n) = self.sizes();
        let [node_x, node_w, node_b] = parents;
        let grad = rows_of(g, rows, n);
        if node_x.is_some() {
            // dx = g · Wᵀ
            let dx = new_product(grad, self.weight_view(true), None);
            register(grads, node_x, dx, &self.x);
        }
        if let Some(node) = node_w {
            // dW = xᵀ · g
            let dw = new_product(transposed(values(&self.x), k, rows), grad, None);
            grads.register::<Flex>(node, from_vec(dw, Shape::new([k, n])));
        }
        if node_b.is_some() {
            let mut db = vec![0f32; n];
            rar_kernels::column_sums(g, n, &mut db)
                .unwrap_or_else(|e| panic!("fused linear bias gradient: {e}"));
            register(grads, node_b, db, &self.bias);
        }
    }
}
