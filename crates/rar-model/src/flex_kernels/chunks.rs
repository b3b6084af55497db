//! `Linear(x).chunk(n)` on flex with one gradient per parameter instead of `n`.
//!
//! burn's autodiff gives a node one output, so the chunks of a product are `n` nodes, and as
//! `n` independent linears (column blocks of the weight) each chunk's backward registers its
//! own `[rows, K]` input gradient and a zero-padded, full-size weight and bias gradient,
//! which burn then sums pass by pass on one thread: 6 chunks per block for the adaLN
//! modulation, 3 for the attention's `qkv`. Here a [`ChunkSource`] node stands between the
//! input and the chunk products: its output is the input itself, it holds the weight, and its
//! parents are the input, the weight and the bias. Each [`ChunkProduct`] (parent: the source
//! only) computes its block as before, and in the backward leaves its output gradient for the
//! source — kept by the source's node id — with a one-value placeholder registered so that burn
//! still runs the source's backward, which it does after all its consumers'. That backward
//! accumulates `dx = Σᵢ gᵢ·Wᵢᵀ` into one buffer, writes each `dWᵢ = xᵀ·gᵢ` and `dbᵢ` into its
//! columns of one weight and one bias gradient (zero for a chunk that got no gradient), and
//! registers each once: no sums, no zero-filled slices, the same products.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{LazyLock, Mutex};

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::{Shape, TensorData};
use burn_flex::FlexTensor;

use super::linear::{View, new_product, product_strided, rows_of, transposed};
use super::{contiguous, from_vec, register, values};

/// The source's state: its input and the whole weight (contiguous) and the chunk count.
#[derive(Clone, Debug)]
pub(super) struct SourceState {
    x: FlexTensor,
    weight: FlexTensor,
    count: usize,
}

/// Backward of [`super::FusedCpuOps::chunk_source`] (parents: input, weight, bias).
#[derive(Debug)]
pub(super) struct ChunkSource;

/// Backward of [`super::FusedCpuOps::chunk_product`] (parent: the source); its state is the
/// chunk's index and the chunk count.
#[derive(Debug)]
pub(super) struct ChunkProduct;

/// Output gradients of the chunks of each source node (by its id) not yet consumed. An entry
/// lives from the first chunk's backward to the source's, which burn runs after all of them
/// in the same pass.
static PENDING: LazyLock<Mutex<HashMap<u64, Vec<Option<FlexTensor>>>>> =
    LazyLock::new(Default::default);

fn pending() -> std::sync::MutexGuard<'static, HashMap<u64, Vec<Option<FlexTensor>>>> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SourceState {
    pub fn new(x: FlexTensor, weight: FlexTensor, count: usize) -> Self {
        Self {
            x: contiguous(x),
            weight: contiguous(weight),
            count,
        }
    }

    /// `(rows, K, N, N / count)` of `x` `[rows, K]` and the weight `[K, N]`.
    fn sizes(&self) -> (usize, usize, usize, usize) {
        let w = self.weight.layout().shape();
        let (k, n) = (w[0], w[1]);
        let xs = self.x.layout().shape();
        assert!(
            w.num_dims() == 2
                && xs[xs.num_dims() - 1] == k
                && self.count > 0
                && n.is_multiple_of(self.count),
            "fused linear chunks: input {xs:?}, weight {w:?}, {} chunks",
            self.count
        );
        (
            self.x.layout().num_elements() / k.max(1),
            k,
            n,
            n / self.count,
        )
    }

    /// Columns `i·c … (i + 1)·c` of the weight as gemm reads them (`transpose`: their
    /// transpose, `[c, K]`).
    fn block(&self, i: usize, transpose: bool) -> View<'_> {
        let (_, k, n, c) = self.sizes();
        let data = &values(&self.weight)[i * c..];
        if transpose {
            View {
                data,
                rows: c,
                cols: k,
                row_stride: 1,
                col_stride: n,
            }
        } else {
            View {
                data,
                rows: k,
                cols: c,
                row_stride: n,
                col_stride: 1,
            }
        }
    }
}

/// Chunk `index` of `x · weight + bias` (`x` `[…, K]`, `weight` `[K, N]`, `bias` `[N]`).
pub(super) fn product(source: &SourceState, bias: &FlexTensor, index: usize) -> FlexTensor {
    let (rows, k, _, c) = source.sizes();
    let bias = contiguous(bias.clone());
    let out = new_product(
        rows_of(values(&source.x), rows, k),
        source.block(index, false),
        Some(&values(&bias)[index * c..(index + 1) * c]),
    );
    let mut shape = source.x.layout().shape().clone();
    let last = shape.num_dims() - 1;
    shape[last] = c;
    from_vec(out, shape)
}

impl Backward<Flex, 1> for ChunkProduct {
    type State = (usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        let Some(parent) = parent else { return };
        let (index, count) = ops.state;
        pending()
            .entry(parent.id.value)
            .or_insert_with(|| vec![None; count])[index] = Some(g);
        let placeholder = FlexTensor::from_data(TensorData::new(vec![0f32], Shape::new([1])));
        grads.register::<Flex>(parent.id, placeholder);
    }
}

impl Backward<Flex, 3> for ChunkSource {
    type State = SourceState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // The chunks' placeholders; their gradients are pending.
        let _ = grads.consume::<Flex>(&ops.node);
        let Some(chunks) = pending().remove(&ops.node.id.value) else {
            return;
        };
        let s = ops.state;
        let (rows, k, n, c) = s.sizes();
        let [node_x, node_w, node_b] = ops.parents.map(|p| p.map(|n| n.id));
        let given: Vec<(usize, &[f32])> = chunks
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (i, values(g))))
            .collect();
        if node_x.is_some() && !given.is_empty() {
            // dx = Σᵢ gᵢ · Wᵢᵀ, accumulated by gemm into one buffer.
            let mut dx = Vec::with_capacity(rows * k);
            for (j, &(i, g)) in given.iter().enumerate() {
                let dst = &mut dx.spare_capacity_mut()[..rows * k];
                product_strided(dst, k, j > 0, rows_of(g, rows, c), s.block(i, true));
            }
            // SAFETY: the first product wrote all `rows · k` values.
            unsafe { dx.set_len(rows * k) };
            register(grads, node_x, dx, &s.x);
        }
        if let Some(node) = node_w {
            // dWᵢ = xᵀ · gᵢ into columns `i·c…` of one `[K, N]` gradient.
            let mut dw: Vec<MaybeUninit<f32>> = Vec::with_capacity(k * n);
            // SAFETY: `MaybeUninit` values need no initialisation.
            unsafe { dw.set_len(k * n) };
            for (i, g) in chunks.iter().enumerate() {
                match g {
                    Some(g) => product_strided(
                        &mut dw[i * c..],
                        n,
                        false,
                        transposed(values(&s.x), k, rows),
                        rows_of(values(g), rows, c),
                    ),
                    None => dw
                        .chunks_exact_mut(n)
                        .for_each(|row| row[i * c..(i + 1) * c].fill(MaybeUninit::new(0.0))),
                }
            }
            let mut dw = std::mem::ManuallyDrop::new(dw);
            let (ptr, len, cap) = (dw.as_mut_ptr(), dw.len(), dw.capacity());
            // SAFETY: every column block was written by a product or zero-filled, so all
            // `k · n` values are initialised; `MaybeUninit<f32>` has the layout of `f32`.
            let dw = unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, cap) };
            grads.register::<Flex>(node, from_vec(dw, Shape::new([k, n])));
        }
        if let Some(node) = node_b {
            let mut db = vec![0f32; n];
            for &(i, g) in &given {
                rar_kernels::column_sums(g, c, &mut db[i * c..(i + 1) * c])
                    .unwrap_or_else(|e| panic!("fused linear chunks bias gradient: {e}"));
            }
            grads.register::<Flex>(node, from_vec(db, Shape::new([n])));
        }
    }
}
