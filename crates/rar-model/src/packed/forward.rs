//! Prefill and step of [`PackedDecoder`]: the function of [`crate::Rar::prefill`] and
//! [`crate::Rar::step`] (the block of `block.rs`, the final layer of `final_layer.rs`) on
//! host buffers.

use rayon::prelude::*;

use super::cache::{PackedCache, sized};
use super::{PackedDecoder, host};
use crate::cache::DecodePlan;
use crate::error::{RarModelError, Result};

/// Attention work (query rows · heads · keys · d) below which it stays on one thread.
const PARALLEL_ATTENTION_MIN: usize = 1 << 17;

/// A decode step's (row, head) task scratch: attention scores, the normalised query and key.
type HeadScratch = (Vec<f32>, Vec<f32>, Vec<f32>);
/// A decode step's (row, head) task: its index, its output, its cached keys (transposed) and
/// values.
type HeadSlots<'a> = (usize, ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]));

/// Writes one position's key `k` and value `v` into one (row, head) part of a layer's cache:
/// the keys transposed (`[d, capacity]`, see `rar_kernels::CachedHead`), the values
/// `[capacity, d]`.
fn write_position(
    keys_t: &mut [f32],
    values: &mut [f32],
    capacity: usize,
    position: usize,
    k: &[f32],
    v: &[f32],
) {
    let d = v.len();
    values[position * d..(position + 1) * d].copy_from_slice(v);
    for (i, &k) in k.iter().enumerate() {
        keys_t[i * capacity + position] = k;
    }
}

impl PackedDecoder {
    /// First decode call (see [`crate::Rar::prefill`]): `condition` holds one id per cache
    /// row, already in the id space. Returns the logits `[B, V]` (row-major) predicting the
    /// first token of the plan's order. The plan's positional rows are copied into the cache,
    /// so later steps follow the plan given here.
    pub fn prefill(
        &self,
        condition: &[i64],
        plan: &DecodePlan,
        cache: &mut PackedCache,
    ) -> Result<Vec<f32>> {
        let config = &self.config;
        let b = cache.batch_size();
        if condition.len() != b {
            return Err(RarModelError::InvalidInput(format!(
                "condition has {} ids for a batch of {b}",
                condition.len()
            )));
        }
        if !cache.is_empty() {
            return Err(RarModelError::Cache(format!(
                "prefill on a cache holding {} positions: call reset() first",
                cache.len()
            )));
        }
        if plan.num_tokens() != config.image_seq_len {
            return Err(RarModelError::Cache(format!(
                "the decode plan covers {} tokens, the model generates {}",
                plan.num_tokens(),
                config.image_seq_len
            )));
        }
        self.check_cache(cache)?;
        plan.check_batch(b)?;
        self.check_ids(condition, config.vocab_size(), "condition id")?;

        let c = config.hidden_size;
        cache.positional = host(plan.positional.clone(), "the decode plan's positional rows")?;
        cache.positional_rows = plan.rows();
        let slots = config.seq_len();
        cache.timesteps = host(plan.timesteps.clone(), "the decode plan's timestep rows")?;
        cache.set_condition(condition.to_vec());

        // Slot 0 is `cls`, slot 1 the condition embedding; each plus its positional row.
        let mut x = std::mem::take(&mut cache.scratch.x);
        let xs = sized(&mut x, b * 2 * c);
        for r in 0..b {
            let pos = positional_row(cache, r, slots, c);
            let (slot0, slot1) = xs[r * 2 * c..(r + 1) * 2 * c].split_at_mut(c);
            add(slot0, &self.cls, &pos[..c]);
            add(slot1, self.embedding(condition[r]), &pos[c..2 * c]);
        }
        cache.scratch.x = x;
        self.run(cache, 0, 2)
    }

    /// One decode step (see [`crate::Rar::step`]): feeds one image code per row and returns
    /// the logits `[B, V]` predicting the next token of the order.
    pub fn step(&self, tokens: &[i64], cache: &mut PackedCache) -> Result<Vec<f32>> {
        let b = cache.batch_size();
        if tokens.len() != b {
            return Err(RarModelError::InvalidInput(format!(
                "step got {} tokens for a cache of {b} rows",
                tokens.len()
            )));
        }
        if cache.is_empty() {
            return Err(RarModelError::Cache("step before prefill".into()));
        }
        let j = cache.len();
        if j >= cache.capacity() {
            return Err(RarModelError::Cache(format!(
                "the cache is full: all {} positions are filled",
                cache.capacity()
            )));
        }
        self.check_ids(tokens, self.config.codebook_size, "image token")?;
        let c = self.config.hidden_size;
        let slots = self.config.seq_len();
        let mut x = std::mem::take(&mut cache.scratch.x);
        let xs = sized(&mut x, b * c);
        for r in 0..b {
            let pos = positional_row(cache, r, slots, c);
            add(
                &mut xs[r * c..(r + 1) * c],
                self.embedding(tokens[r]),
                &pos[j * c..(j + 1) * c],
            );
        }
        cache.scratch.x = x;
        self.run(cache, j, 1)
    }

    fn check_cache(&self, cache: &PackedCache) -> Result<()> {
        let config = &self.config;
        if cache.layers.len() != config.num_layers
            || cache.capacity() != config.seq_len()
            || cache.heads != config.num_heads
            || cache.head_dim != config.head_dim()
        {
            return Err(RarModelError::Cache(format!(
                "the cache was built for {} blocks × {} positions × {} heads of {}, the model \
                 has {} × {} × {} of {}",
                cache.layers.len(),
                cache.capacity(),
                cache.heads,
                cache.head_dim,
                config.num_layers,
                config.seq_len(),
                config.num_heads,
                config.head_dim()
            )));
        }
        Ok(())
    }

    fn embedding(&self, id: i64) -> &[f32] {
        let c = self.config.hidden_size;
        &self.embeddings[id as usize * c..(id as usize + 1) * c]
    }

    /// Runs the blocks and the head on the `len` new positions per row starting at slot
    /// `start` (their inputs in `scratch.x`, rows major: `[B, len, C]`), writes their keys
    /// and values, and returns the logits of each row's last new position.
    fn run(&self, cache: &mut PackedCache, start: usize, len: usize) -> Result<Vec<f32>> {
        let config = &self.config;
        let (c, heads, d) = (config.hidden_size, config.num_heads, config.head_dim());
        let b = cache.batch_size();
        let rows = b * len;
        let groups = cache.groups.len();
        let kernel = |e: rar_kernels::KernelError| RarModelError::InvalidInput(e.to_string());

        // adaLN condition per (distinct condition, position): SiLU(E[cond] + timesteps[slot]).
        let mut s = std::mem::take(&mut cache.scratch);
        let cond = sized(&mut s.cond, groups * len * c);
        for (g, &id) in cache.groups.iter().enumerate() {
            for l in 0..len {
                let slot = start + l;
                add(
                    &mut cond[(g * len + l) * c..(g * len + l + 1) * c],
                    self.embedding(id),
                    &cache.timesteps[slot * c..(slot + 1) * c],
                );
            }
        }
        rar_kernels::silu_in_place(cond);
        let cond = &s.cond[..groups * len * c];
        let modulation_row = |t: usize| cache.group_of_row[t / len] * len + t % len;

        let x = &mut s.x[..rows * c];
        let scale = 1.0 / (d as f32).sqrt();
        let per_row = heads * cache.capacity * d;
        let capacity = cache.capacity;
        for (block, kv) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let m = sized(&mut s.modulation, groups * len * 6 * c);
            block.ada.forward(cond, groups * len, m).map_err(kernel)?;
            let m = &s.modulation[..groups * len * 6 * c];
            let chunk = |t: usize, i: usize| {
                let row = modulation_row(t);
                &m[(row * 6 + i) * c..(row * 6 + i + 1) * c]
            };

            // Attention branch: LN1, modulate, qkv, QK-norm, cache write, attention, proj.
            let h = sized(&mut s.h, rows * c);
            h.copy_from_slice(x);
            block.norm1.apply(h);
            for t in 0..rows {
                rar_kernels::modulate(&mut h[t * c..(t + 1) * c], chunk(t, 0), chunk(t, 1));
            }
            let qkv = sized(&mut s.qkv, rows * 3 * c);
            block.qkv.forward(h, rows, qkv).map_err(kernel)?;
            let parallel = rows * heads * (start + len) * d >= PARALLEL_ATTENTION_MIN;
            if len == 1 {
                // A decode step: each (row, head) task normalises its query and key, writes
                // its key column and value row into its own part of the cache and attends.
                // On the calling thread the key writes (d values a cache row apart per head)
                // were the step's largest serial cost between the parallel products.
                let qkv = &s.qkv[..rows * 3 * c];
                let o = sized(&mut s.attn, rows * c);
                let span = capacity * d;
                let task = |(scores, q, k): &mut HeadScratch,
                            (i, ((out, keys_t), values)): HeadSlots| {
                    let (t, hh) = (i / heads, i % heads);
                    let row = &qkv[t * 3 * c..(t + 1) * 3 * c];
                    q.copy_from_slice(&row[hh * d..(hh + 1) * d]);
                    block.q_norm.apply(q);
                    k.copy_from_slice(&row[c + hh * d..c + (hh + 1) * d]);
                    block.k_norm.apply(k);
                    let v = &row[2 * c + hh * d..2 * c + (hh + 1) * d];
                    write_position(keys_t, values, capacity, start, k, v);
                    let head = rar_kernels::CachedHead {
                        keys_t,
                        stride: capacity,
                        values: &values[..(start + 1) * d],
                        visible: start + 1,
                    };
                    rar_kernels::attend_one(q, head, scale, out, scores);
                };
                let scratch = || (Vec::new(), vec![0f32; d], vec![0f32; d]);
                if parallel {
                    o.par_chunks_mut(d)
                        .zip(kv.k.par_chunks_mut(span))
                        .zip(kv.v.par_chunks_mut(span))
                        .enumerate()
                        .for_each_init(scratch, task);
                } else {
                    let mut buffers = scratch();
                    o.chunks_mut(d)
                        .zip(kv.k.chunks_mut(span))
                        .zip(kv.v.chunks_mut(span))
                        .enumerate()
                        .for_each(|e| task(&mut buffers, e));
                }
            } else {
                for t in 0..rows {
                    let (r, position) = (t / len, start + t % len);
                    let row = &mut qkv[t * 3 * c..(t + 1) * 3 * c];
                    block.q_norm.apply(&mut row[..c]);
                    block.k_norm.apply(&mut row[c..2 * c]);
                    for hh in 0..heads {
                        let part =
                            r * per_row + hh * capacity * d..r * per_row + (hh + 1) * capacity * d;
                        write_position(
                            &mut kv.k[part.clone()],
                            &mut kv.v[part],
                            capacity,
                            position,
                            &row[c + hh * d..c + (hh + 1) * d],
                            &row[2 * c + hh * d..2 * c + (hh + 1) * d],
                        );
                    }
                }
                let qkv = &s.qkv[..rows * 3 * c];
                let o = sized(&mut s.attn, rows * c);
                let (keys, values) = (&kv.k, &kv.v);
                let attend = |scores: &mut Vec<f32>, (i, out): (usize, &mut [f32])| {
                    let (t, hh) = (i / heads, i % heads);
                    let (r, visible) = (t / len, start + t % len + 1);
                    let base = r * per_row + hh * capacity * d;
                    let head = rar_kernels::CachedHead {
                        keys_t: &keys[base..base + capacity * d],
                        stride: capacity,
                        values: &values[base..base + visible * d],
                        visible,
                    };
                    rar_kernels::attend_one(
                        &qkv[t * 3 * c + hh * d..t * 3 * c + (hh + 1) * d],
                        head,
                        scale,
                        out,
                        scores,
                    );
                };
                if parallel {
                    o.par_chunks_mut(d)
                        .enumerate()
                        .for_each_init(Vec::new, attend);
                } else {
                    let mut scores = Vec::new();
                    o.chunks_mut(d)
                        .enumerate()
                        .for_each(|e| attend(&mut scores, e));
                }
            }
            let a = sized(&mut s.out, rows * c);
            block
                .proj
                .forward(&s.attn[..rows * c], rows, a)
                .map_err(kernel)?;
            for t in 0..rows {
                let span = t * c..(t + 1) * c;
                rar_kernels::gated_add(&mut x[span.clone()], chunk(t, 2), &a[span]);
            }

            // MLP branch: LN2, modulate, fc1, exact GELU, fc2.
            let h = sized(&mut s.h, rows * c);
            h.copy_from_slice(x);
            block.norm2.apply(h);
            for t in 0..rows {
                rar_kernels::modulate(&mut h[t * c..(t + 1) * c], chunk(t, 3), chunk(t, 4));
            }
            let inner = block.fc1.out_features();
            let f = sized(&mut s.hidden, rows * inner);
            block.fc1.forward(h, rows, f).map_err(kernel)?;
            rar_kernels::gelu_in_place(f);
            let y = sized(&mut s.out, rows * c);
            block
                .fc2
                .forward(&s.hidden[..rows * inner], rows, y)
                .map_err(kernel)?;
            for t in 0..rows {
                let span = t * c..(t + 1) * c;
                rar_kernels::gated_add(&mut x[span.clone()], chunk(t, 5), &y[span]);
            }
        }

        // Final adaLN layer (scale first, then shift) and the head, on each row's last slot.
        let fm = sized(&mut s.modulation, groups * 2 * c);
        // A step (len 1) already holds one condition row per group; only prefill gathers.
        let gathered: Vec<f32>;
        let last_cond: &[f32] = if len == 1 {
            cond
        } else {
            gathered = (0..groups)
                .flat_map(|g| {
                    cond[(g * len + len - 1) * c..(g * len + len) * c]
                        .iter()
                        .copied()
                })
                .collect();
            &gathered
        };
        self.final_ada
            .forward(last_cond, groups, fm)
            .map_err(kernel)?;
        let last = sized(&mut s.last, b * c);
        for r in 0..b {
            let t = r * len + len - 1;
            last[r * c..(r + 1) * c].copy_from_slice(&x[t * c..(t + 1) * c]);
        }
        rar_kernels::layer_norm_rows(last, c, None, None, self.final_eps);
        for r in 0..b {
            let g = cache.group_of_row[r];
            let (scale_f, shift_f) = (
                &fm[g * 2 * c..g * 2 * c + c],
                &fm[g * 2 * c + c..(g + 1) * 2 * c],
            );
            rar_kernels::modulate(&mut last[r * c..(r + 1) * c], shift_f, scale_f);
        }
        let v = self.head.out_features();
        let mut logits = vec![0f32; b * v];
        self.head
            .forward(&s.last[..b * c], b, &mut logits)
            .map_err(kernel)?;
        cache.scratch = s;
        cache.len = start + len;
        Ok(logits)
    }
}

/// Row `r`'s positional table `[N + 2, C]` (the shared one for a shared order).
fn positional_row(cache: &PackedCache, r: usize, slots: usize, c: usize) -> &[f32] {
    let p = if cache.positional_rows == 1 { 0 } else { r };
    &cache.positional[p * slots * c..(p + 1) * slots * c]
}

/// `out = a + b`.
fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.iter_mut()
        .zip(a)
        .zip(b)
        .for_each(|((o, &a), &b)| *o = a + b);
}
