//! Target-aware index logic (paper §3.2; the official `modeling/rar.py`).
//!
//! RAR's transformer input has two prefix slots before the `N` image tokens:
//!
//! ```text
//! slot j:          0      1        2          3        …   N+1
//! content:        cls   class   x[τ₀]      x[τ₁]     …   x[τ_{N−1}]
//! pos_embed row:   0      1     2+τ₀       2+τ₁      …   2+τ_{N−1}
//! target row:      —    2+τ₀    2+τ₁       2+τ₂      …     —
//! timestep row:    0      1       2          3       …    N+1
//! predicts:        —     x[τ₀]  x[τ₁]      x[τ₂]     …     —
//! ```
//!
//! * the ordinary positional embedding travels with its token (row `2 +` the token's raster
//!   index);
//! * the **target-aware** embedding at a slot is the row of the token that slot must
//!   *predict* next — the class slot gets `τ₀`'s, the slot of `x[τ_k]` gets `τ_{k+1}`'s — and
//!   is zero at `cls` and at the last slot (rows 0 and 1 of the table are never read);
//! * the adaLN "timestep" row is the slot index itself (never permuted);
//! * labels are the tokens in generation order, `label[k] = x[τ_k]`, predicted by slot `k+1`.
//!
//! For the raster order every slot `1 ≤ j ≤ N` gets `P[j] + T[j+1]`.

use crate::scan::validate_permutation;
use crate::{CoreError, Result};

/// Number of prefix slots before the image tokens: `cls` and the class token.
pub const PREFIX_SLOTS: usize = 2;

/// The table rows one sequence slot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRows {
    /// Row of `pos_embed` added at this slot.
    pub position_row: usize,
    /// Row of `target_aware_pos_embed` added at this slot, or `None` for a zero vector.
    pub target_row: Option<usize>,
    /// Row of `timesteps_embeddings` in this slot's adaLN condition.
    pub timestep_row: usize,
}

/// The full slot layout of one sample's sequence for a given generation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceLayout {
    order: Vec<usize>,
}

impl SequenceLayout {
    /// The layout for `order` (`order[k]` = raster position of the `k`-th generated token);
    /// fails unless `order` is a permutation of `0..order.len()`.
    pub fn new(order: Vec<usize>) -> Result<Self> {
        if order.is_empty() {
            return Err(CoreError::NotAPermutation {
                len: 0,
                reason: "an order needs at least one token".into(),
            });
        }
        validate_permutation(&order, order.len())?;
        Ok(Self { order })
    }

    /// The raster layout of `num_tokens` tokens.
    pub fn raster(num_tokens: usize) -> Result<Self> {
        Self::new((0..num_tokens).collect())
    }

    /// The generation order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Number of image tokens `N`.
    pub fn num_tokens(&self) -> usize {
        self.order.len()
    }

    /// Sequence length in training, `N + 2` (cls, class token, N image tokens).
    pub fn seq_len(&self) -> usize {
        self.order.len() + PREFIX_SLOTS
    }

    /// The rows slot `slot` (`0 ≤ slot < N + 2`) reads. Panics if `slot` is out of range
    /// (a programming error; use [`Self::seq_len`]).
    pub fn slot(&self, slot: usize) -> SlotRows {
        let n = self.order.len();
        assert!(
            slot < n + PREFIX_SLOTS,
            "slot {slot} ≥ sequence length {}",
            n + 2
        );
        let position_row = if slot < PREFIX_SLOTS {
            slot
        } else {
            PREFIX_SLOTS + self.order[slot - PREFIX_SLOTS]
        };
        SlotRows {
            position_row,
            target_row: self.target_position(slot).map(|p| PREFIX_SLOTS + p),
            timestep_row: slot,
        }
    }

    /// The raster position of the token slot `slot` must predict: `τ_{slot−1}` for
    /// `1 ≤ slot ≤ N`, `None` for `cls` (slot 0) and the last slot.
    pub fn target_position(&self, slot: usize) -> Option<usize> {
        (1..=self.order.len())
            .contains(&slot)
            .then(|| self.order[slot - 1])
    }

    /// All slots' rows, `N + 2` entries.
    pub fn slots(&self) -> Vec<SlotRows> {
        (0..self.seq_len()).map(|j| self.slot(j)).collect()
    }

    /// The labels in generation order: `label[k] = tokens[order[k]]`.
    pub fn labels<T: Copy>(&self, tokens: &[T]) -> Result<Vec<T>> {
        if tokens.len() != self.order.len() {
            return Err(CoreError::InvalidGrid(format!(
                "{} tokens given for an order of {} positions",
                tokens.len(),
                self.order.len()
            )));
        }
        Ok(self.order.iter().map(|&p| tokens[p]).collect())
    }
}

/// Flattened, batch-major index arrays for gathering the positional tables of a batch of
/// orders in one go (each array has `B · (N + 2)` entries, slot-minor).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRows {
    /// `pos_embed` row per slot.
    pub position_rows: Vec<i64>,
    /// `target_aware_pos_embed` row per slot; absent targets point at row 0 and are zeroed by
    /// [`Self::target_present`].
    pub target_rows: Vec<i64>,
    /// 1.0 where a slot has a target-aware embedding, 0.0 where it must be zero.
    pub target_present: Vec<f32>,
    /// Index into the raster tokens for each label: `label[b, k] = tokens[b, gather[b·N + k]]`.
    pub label_gather: Vec<i64>,
}

impl BatchRows {
    /// Builds the arrays for `layouts` (all must have the same `N`).
    pub fn new(layouts: &[SequenceLayout]) -> Result<Self> {
        let n = layouts.first().map_or(0, SequenceLayout::num_tokens);
        let mut rows = BatchRows {
            position_rows: Vec::with_capacity(layouts.len() * (n + PREFIX_SLOTS)),
            target_rows: Vec::with_capacity(layouts.len() * (n + PREFIX_SLOTS)),
            target_present: Vec::with_capacity(layouts.len() * (n + PREFIX_SLOTS)),
            label_gather: Vec::with_capacity(layouts.len() * n),
        };
        for layout in layouts {
            if layout.num_tokens() != n {
                return Err(CoreError::InvalidGrid(format!(
                    "orders of different lengths in one batch ({} and {n})",
                    layout.num_tokens()
                )));
            }
            for slot in layout.slots() {
                rows.position_rows.push(slot.position_row as i64);
                rows.target_rows.push(slot.target_row.unwrap_or(0) as i64);
                rows.target_present
                    .push(if slot.target_row.is_some() { 1.0 } else { 0.0 });
            }
            rows.label_gather
                .extend(layout.order().iter().map(|&p| p as i64));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raster_layout_matches_the_spec_table() {
        let l = SequenceLayout::raster(4).unwrap();
        let s = l.slots();
        assert_eq!(s.len(), 6);
        assert_eq!(
            s[0],
            SlotRows {
                position_row: 0,
                target_row: None,
                timestep_row: 0
            }
        );
        // class slot: P[1] + T[2]; token slots j: P[j] + T[j+1]; last slot: no target.
        for (j, slot) in s.iter().enumerate().skip(1).take(4) {
            assert_eq!(slot.position_row, j);
            assert_eq!(slot.target_row, Some(j + 1));
            assert_eq!(slot.timestep_row, j);
        }
        assert_eq!(s[5].position_row, 5);
        assert_eq!(s[5].target_row, None);
    }

    #[test]
    fn permuted_layout() {
        // τ = (2, 0, 3, 1)
        let l = SequenceLayout::new(vec![2, 0, 3, 1]).unwrap();
        let pos: Vec<_> = l.slots().iter().map(|s| s.position_row).collect();
        let tgt: Vec<_> = l.slots().iter().map(|s| s.target_row).collect();
        assert_eq!(pos, [0, 1, 4, 2, 5, 3]);
        assert_eq!(tgt, [None, Some(4), Some(2), Some(5), Some(3), None]);
        assert_eq!(l.labels(&[10, 11, 12, 13]).unwrap(), [12, 10, 13, 11]);
        assert_eq!(l.target_position(1), Some(2));
        assert_eq!(l.target_position(4), Some(1));
        assert_eq!(l.target_position(5), None);
    }

    #[test]
    fn batch_rows_flatten_and_validate() {
        let a = SequenceLayout::new(vec![1, 0]).unwrap();
        let b = SequenceLayout::raster(2).unwrap();
        let rows = BatchRows::new(&[a, b]).unwrap();
        assert_eq!(rows.position_rows, [0, 1, 3, 2, 0, 1, 2, 3]);
        assert_eq!(rows.target_rows, [0, 3, 2, 0, 0, 2, 3, 0]);
        assert_eq!(rows.target_present, [0., 1., 1., 0., 0., 1., 1., 0.]);
        assert_eq!(rows.label_gather, [1, 0, 0, 1]);
        let c = SequenceLayout::raster(3).unwrap();
        assert!(BatchRows::new(&[SequenceLayout::raster(2).unwrap(), c]).is_err());
        assert!(SequenceLayout::new(vec![0, 2]).is_err());
    }
}
