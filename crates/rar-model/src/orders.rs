//! Per-sample generation orders as device index tensors (paper §3.2; `modeling/rar.py`).
//!
//! [`rar_core::target`] decides, for each sequence slot, which row of `pos_embed`, of
//! `target_aware_pos_embed` and of `timesteps_embeddings` the slot reads, and which raster
//! token each label is. [`BatchOrders`] uploads those indices once per batch so the forward
//! pass can gather the positional terms of every sample with two `select`s, whatever mix of
//! random and raster orders the batch holds.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::SequenceLayout;
use rar_core::target::{BatchRows, PREFIX_SLOTS};

use crate::error::{RarModelError, Result};

/// The generation orders of a batch, ready for the forward pass.
///
/// `orders[b][k]` is the raster index of the `k`-th token sample `b` generates (the reference's
/// `orders` tensor). Built from [`SequenceLayout`]s, so every order is validated as a
/// permutation.
#[derive(Debug, Clone)]
pub struct BatchOrders {
    layouts: Vec<SequenceLayout>,
    /// `pos_embed` row per slot, `[B·(N+2)]`.
    pub(crate) position_rows: Tensor<1, Int>,
    /// `target_aware_pos_embed` row per slot, `[B·(N+2)]` (absent targets point at row 0).
    pub(crate) target_rows: Tensor<1, Int>,
    /// 1 where the slot has a target-aware term, 0 at `cls` and at the last slot, `[B, N+2, 1]`.
    pub(crate) target_present: Tensor<3>,
    /// `label[b, k] = tokens[b, label_gather[b, k]]`, `[B, N]`.
    pub(crate) label_gather: Tensor<2, Int>,
}

impl BatchOrders {
    /// Orders from validated layouts (all of the same length).
    pub fn new(layouts: Vec<SequenceLayout>, device: &Device) -> Result<Self> {
        if layouts.is_empty() {
            return Err(RarModelError::InvalidInput(
                "a batch needs at least one order".into(),
            ));
        }
        let rows = BatchRows::new(&layouts)?;
        let b = layouts.len();
        let n = layouts[0].num_tokens();
        let slots = n + PREFIX_SLOTS;
        let ints = |v: Vec<i64>, shape: Vec<usize>| {
            Tensor::<1, Int>::from_data(
                TensorData::new(v, [shape.iter().product::<usize>()]),
                device,
            )
        };
        Ok(Self {
            position_rows: ints(rows.position_rows, vec![b * slots]),
            target_rows: ints(rows.target_rows, vec![b * slots]),
            target_present: Tensor::<1>::from_data(
                TensorData::new(rows.target_present, [b * slots]),
                device,
            )
            .reshape([b, slots, 1]),
            label_gather: ints(rows.label_gather, vec![b * n]).reshape([b, n]),
            layouts,
        })
    }

    /// Orders from plain index vectors (`orders[b][k]` = raster index of the `k`-th token).
    pub fn from_orders(orders: &[Vec<usize>], device: &Device) -> Result<Self> {
        let layouts = orders
            .iter()
            .map(|o| SequenceLayout::new(o.clone()))
            .collect::<rar_core::Result<Vec<_>>>()?;
        Self::new(layouts, device)
    }

    /// Raster order for every sample (the sampling order and the order once `r = 0`).
    pub fn raster(batch: usize, num_tokens: usize, device: &Device) -> Result<Self> {
        let layout = SequenceLayout::raster(num_tokens)?;
        Self::new(vec![layout; batch], device)
    }

    /// Number of samples `B`.
    pub fn batch_size(&self) -> usize {
        self.layouts.len()
    }

    /// Number of image tokens `N` per sample.
    pub fn num_tokens(&self) -> usize {
        self.layouts[0].num_tokens()
    }

    /// The per-sample layouts.
    pub fn layouts(&self) -> &[SequenceLayout] {
        &self.layouts
    }
}
