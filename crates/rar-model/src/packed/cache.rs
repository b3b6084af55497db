//! The host KV cache of [`super::PackedDecoder`] and the scratch buffers of its steps.

use crate::error::{RarModelError, Result};

/// Keys and values of one block on the host: values `[B, H, N + 2, d]`, keys transposed per
/// head, `[B, H, d, N + 2]` (the layout `rar_kernels::attend_one` reads fastest).
#[derive(Debug, Clone)]
pub(crate) struct HostKv {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// Scratch buffers reused by every step (so a step allocates nothing once warm).
#[derive(Debug, Default, Clone)]
pub(crate) struct Scratch {
    pub x: Vec<f32>,
    pub cond: Vec<f32>,
    pub modulation: Vec<f32>,
    pub h: Vec<f32>,
    pub qkv: Vec<f32>,
    pub attn: Vec<f32>,
    pub out: Vec<f32>,
    pub hidden: Vec<f32>,
    pub last: Vec<f32>,
}

/// Grows `buf` to `len` values (never shrinks; the contents are overwritten by the caller).
pub(crate) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The decoding state of a batch for a [`super::PackedDecoder`]: host keys and values of
/// every block, the rows' condition ids and the plan's positional rows.
///
/// Made by [`super::PackedDecoder::new_cache`]; [`PackedCache::reset`] reuses the buffers.
#[derive(Debug, Clone)]
pub struct PackedCache {
    pub(crate) layers: Vec<HostKv>,
    pub(crate) batch: usize,
    pub(crate) heads: usize,
    pub(crate) capacity: usize,
    pub(crate) head_dim: usize,
    pub(crate) len: usize,
    /// Condition id of every row (set by prefill).
    pub(crate) condition: Vec<i64>,
    /// The distinct condition ids and, per row, the index of its id among them: rows with the
    /// same condition (every unconditional row of a guided batch) share one adaLN product.
    pub(crate) groups: Vec<i64>,
    pub(crate) group_of_row: Vec<usize>,
    /// `positional` of the plan, `[P, N + 2, C]` with `P` 1 or `B`; `timesteps` `[N + 2, C]`.
    pub(crate) positional: Vec<f32>,
    pub(crate) positional_rows: usize,
    pub(crate) timesteps: Vec<f32>,
    pub(crate) scratch: Scratch,
}

impl PackedCache {
    pub(crate) fn new(
        layers: usize,
        batch: usize,
        heads: usize,
        capacity: usize,
        head_dim: usize,
    ) -> Self {
        let size = batch * heads * capacity * head_dim;
        Self {
            layers: (0..layers)
                .map(|_| HostKv {
                    k: vec![0.0; size],
                    v: vec![0.0; size],
                })
                .collect(),
            batch,
            heads,
            capacity,
            head_dim,
            len: 0,
            condition: Vec::new(),
            groups: Vec::new(),
            group_of_row: Vec::new(),
            positional: Vec::new(),
            positional_rows: 0,
            timesteps: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// Number of rows `B`.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Positions it can hold (`N + 2`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions filled (0 before prefill, 2 after it, +1 per step).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the batch; the buffers are kept.
    pub fn reset(&mut self) {
        self.len = 0;
        self.condition.clear();
    }

    /// Groups the rows by condition id (see `groups`).
    pub(crate) fn set_condition(&mut self, ids: Vec<i64>) {
        self.groups.clear();
        self.group_of_row.clear();
        for &id in &ids {
            let g = match self.groups.iter().position(|&x| x == id) {
                Some(g) => g,
                None => {
                    self.groups.push(id);
                    self.groups.len() - 1
                }
            };
            self.group_of_row.push(g);
        }
        self.condition = ids;
    }

    /// Keeps only the rows `rows` (in the order given), as [`crate::KvCache::retain_rows`].
    /// With per-row orders, their positional rows are kept with them.
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch) {
            return Err(RarModelError::Cache(format!(
                "row {bad} is not in the cache's {} rows",
                self.batch
            )));
        }
        if rows.is_empty() {
            return Err(RarModelError::Cache(
                "retain_rows needs at least one row to keep".into(),
            ));
        }
        let per_row = self.heads * self.capacity * self.head_dim;
        let keep = |buf: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| buf[r * per_row..(r + 1) * per_row].iter().copied())
                .collect()
        };
        for layer in &mut self.layers {
            layer.k = keep(&layer.k);
            layer.v = keep(&layer.v);
        }
        if self.positional_rows > 1 {
            let slot_table = self.positional.len() / self.positional_rows;
            self.positional = rows
                .iter()
                .flat_map(|&r| self.positional[r * slot_table..(r + 1) * slot_table].to_vec())
                .collect();
            self.positional_rows = rows.len();
        }
        if !self.condition.is_empty() {
            let ids = rows.iter().map(|&r| self.condition[r]).collect();
            self.set_condition(ids);
        }
        self.batch = rows.len();
        Ok(())
    }
}
