//! The one sample order of training: seeded, endless, a pure function of the position.
//!
//! A dataset of `len` records is read as an endless stream; global position `p` is record
//! `p mod len` of epoch `p / len`. The data is stored in *units* (a token shard; the toy
//! dataset is one unit) and every unit is cut into `C` = [`StreamConfig::chunks_per_unit`]
//! contiguous *chunks* of whole images (chunk `c` of a unit of `m` images covers images
//! `⌊c·m/C⌋ .. ⌊(c+1)·m/C⌋`, i.e. their `granule` consecutive records each; a unit whose
//! record count is not a multiple of its granule is cut by records). With `S` units there are
//! `T = S·C` chunks, some possibly empty. For epoch `e`:
//!
//! 1. the `T` chunks are shuffled (generator `for_stream(seed, [TAG, e, 0])`);
//! 2. the shuffled list is cut into `W = ⌈S / K⌉` consecutive *windows* of `⌊T/W⌋` or
//!    `⌈T/W⌉` chunks each (`K` = [`StreamConfig::window_units`]), so a window holds at most
//!    `K·C` chunks, i.e. about `K` units' worth of records;
//! 3. the records of window `w` (its chunks in shuffled order, each chunk's records in storage
//!    order) are shuffled uniformly (generator `for_stream(seed, [TAG, e, 1, w])`);
//! 4. the epoch is window 0's shuffled records, then window 1's, and so on.
//!
//! Every record appears exactly once per epoch. The generator is rar-core's
//! [`Xoshiro256PlusPlus`] with its fixed shuffle, so the order is the same on every platform
//! and thread count, and a run resumed at any position reads what the uninterrupted run would
//! have read. A reader holds one window at a time
//! ([`SampleOrder::memory_bound_records`]); with one window per epoch (a single unit, as the
//! toy dataset) the epoch is one uniform permutation.
//!
//! Mixing: within a window the order is a uniform permutation; across the epoch the chunks
//! are spread over windows uniformly, so two given chunks share a window with probability
//! ≈ `1/W`. The pretokenizer writes images in class order, so a chunk holds one or two
//! classes and a window (hence any batch drawn from it) holds up to `K·C` chunks from as many
//! places in the dataset. For ten-crop ImageNet (2048 images per shard: ≈20 480 records,
//! 10.5 MB per shard) the defaults `K = 32`, `C = 16` hold ≈340 MB and mix 512 chunks of ≈128
//! images each per window; `C = 1` gives whole-shard windows (32 shards, ≈50 classes), which
//! is coarser but lets the reader check every shard's checksum. The ten crops of an image stay
//! in one chunk, hence one window, but are spread over it: a batch of 256 from a window of
//! ≈655 000 records holds two crops of one image ≈0.45 times on average.

use rar_core::rng::Xoshiro256PlusPlus;

use crate::error::{DataError, Result};

/// First key of every random stream of the order, so that the same seed used elsewhere (token
/// orders, label dropout) gives unrelated numbers here (`"SHRDSTRM"`).
const ORDER_TAG: u64 = 0x5348_5244_5354_524d;

/// Default [`StreamConfig::window_units`].
pub const DEFAULT_WINDOW_UNITS: usize = 32;
/// Default [`StreamConfig::chunks_per_unit`].
pub const DEFAULT_CHUNKS_PER_UNIT: usize = 16;

/// How a stream orders and buffers records (see the [module docs](crate::order)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Seed of the order.
    pub seed: u64,
    /// `K`: a window holds about this many storage units' worth of records (the memory
    /// bound).
    pub window_units: usize,
    /// `C`: each unit is cut into this many contiguous chunks, the pieces spread over windows
    /// (1: whole units).
    pub chunks_per_unit: usize,
}

impl StreamConfig {
    /// The defaults ([`DEFAULT_WINDOW_UNITS`], [`DEFAULT_CHUNKS_PER_UNIT`]) with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            window_units: DEFAULT_WINDOW_UNITS,
            chunks_per_unit: DEFAULT_CHUNKS_PER_UNIT,
        }
    }

    /// Sets [`Self::window_units`].
    pub fn with_window_units(mut self, window_units: usize) -> Self {
        self.window_units = window_units;
        self
    }

    /// Sets [`Self::chunks_per_unit`].
    pub fn with_chunks_per_unit(mut self, chunks_per_unit: usize) -> Self {
        self.chunks_per_unit = chunks_per_unit;
        self
    }

    /// A description of everything the order depends on besides the data
    /// (`seed 7, window_units 1, chunks_per_unit 2`).
    pub fn describe(&self) -> String {
        format!(
            "seed {}, window_units {}, chunks_per_unit {}",
            self.seed, self.window_units, self.chunks_per_unit
        )
    }
}

/// A contiguous storage unit of a dataset (a shard): its record count and the records per
/// image, which chunks are not cut inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUnit {
    /// Records in the unit.
    pub records: u64,
    /// Consecutive records that belong together (the crops of one image).
    pub granule: u64,
}

/// A contiguous range of one unit's records, by global record index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The unit it belongs to.
    pub unit: u32,
    /// Global index of its first record.
    pub start: u64,
    /// Number of records.
    pub len: u64,
}

/// The order of a dataset's records: see the [module docs](crate::order).
#[derive(Debug, Clone)]
pub struct SampleOrder {
    config: StreamConfig,
    /// Every chunk, unit after unit (the unshuffled order).
    chunks: Vec<Chunk>,
    windows: usize,
    len: u64,
    max_window_records: u64,
}

/// The shuffled chunk layout of one epoch.
#[derive(Debug)]
pub(crate) struct EpochPlan {
    pub epoch: u64,
    /// Chunk ids (into `SampleOrder::chunks`) in epoch order.
    order: Vec<u32>,
    /// `order.len() + 1` record offsets: chunk `order[k]` covers `starts[k]..starts[k + 1]`.
    starts: Vec<u64>,
    /// `windows + 1` positions in `order`: window `w` is `order[bounds[w]..bounds[w + 1]]`.
    bounds: Vec<usize>,
}

impl SampleOrder {
    /// The order of a dataset stored in `units` (in storage order; global record indices run
    /// through them). Errors name the setting: `window_units` or `chunks_per_unit` of 0, no
    /// record at all, or a window too large to index with 32 bits.
    pub fn new(units: &[StorageUnit], config: StreamConfig) -> Result<Self> {
        if config.window_units == 0 || config.chunks_per_unit == 0 {
            return Err(DataError::input(
                "stream config",
                format!(
                    "window_units ({}) and chunks_per_unit ({}) must be at least 1",
                    config.window_units, config.chunks_per_unit
                ),
            ));
        }
        let len: u64 = units.iter().map(|u| u.records).sum();
        if len == 0 {
            return Err(DataError::input("data", "there is no record to read"));
        }
        if units.len() > u32::MAX as usize / config.chunks_per_unit {
            return Err(DataError::input(
                "stream config",
                format!(
                    "{} units × {} chunks per unit is too many chunks",
                    units.len(),
                    config.chunks_per_unit
                ),
            ));
        }
        let c = config.chunks_per_unit as u64;
        let mut chunks = Vec::with_capacity(units.len() * config.chunks_per_unit);
        let mut first = 0u64;
        for (u, unit) in units.iter().enumerate() {
            let n = unit.records;
            // Cut between images (runs of `granule` records) when the count allows.
            let granule = unit.granule.max(1);
            let step = if n.is_multiple_of(granule) {
                granule
            } else {
                1
            };
            let pieces = n / step;
            // u128: `i · pieces` may exceed u64 for absurd counts.
            let at = |i: u64| (u128::from(i) * u128::from(pieces) / u128::from(c)) as u64 * step;
            for i in 0..c {
                chunks.push(Chunk {
                    unit: u as u32,
                    start: first + at(i),
                    len: at(i + 1) - at(i),
                });
            }
            first += n;
        }
        let windows = units.len().div_ceil(config.window_units);
        let per_window = chunks.len().div_ceil(windows);
        let mut lens: Vec<u64> = chunks.iter().map(|c| c.len).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let max_window_records: u64 = lens.iter().take(per_window).sum();
        if max_window_records > u64::from(u32::MAX) {
            return Err(DataError::input(
                "stream config",
                format!(
                    "a window may hold {max_window_records} records, more than 2^32 - 1; \
                     use fewer window_units"
                ),
            ));
        }
        Ok(Self {
            config,
            chunks,
            windows,
            len,
            max_window_records,
        })
    }

    /// The settings of the order.
    pub fn config(&self) -> StreamConfig {
        self.config
    }

    /// Records per epoch (never 0).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always `false`: [`Self::new`] refuses data without records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Windows per epoch (`⌈units / window_units⌉`).
    pub fn windows_per_epoch(&self) -> usize {
        self.windows
    }

    /// The most records a window can hold: the memory bound of a reader, in records.
    pub fn memory_bound_records(&self) -> u64 {
        self.max_window_records
    }

    /// The global record index at `position` (epoch `position / len`). Costs the epoch's chunk
    /// shuffle and the permutation of one window (4 bytes per window record).
    pub fn record_index(&self, position: u64) -> u64 {
        let plan = self.plan(position / self.len);
        let q = position % self.len;
        let w = plan.window_of(q);
        let start = plan.window_start(w);
        let perm = self.window_permutation(plan.epoch, w, plan.window_start(w + 1) - start);
        let local = u64::from(perm[(q - start) as usize]);
        let (a, b) = (plan.bounds[w], plan.bounds[w + 1]);
        // The last chunk of the window starting at or before `local` (skips empty chunks).
        let k = a + plan.starts[a..b].partition_point(|&s| s - start <= local) - 1;
        let chunk = self.chunks[plan.order[k] as usize];
        chunk.start + (local - (plan.starts[k] - start))
    }

    /// The chunk layout of `epoch`.
    pub(crate) fn plan(&self, epoch: u64) -> EpochPlan {
        let total = self.chunks.len();
        let mut order: Vec<u32> = (0..total as u32).collect();
        Xoshiro256PlusPlus::for_stream(self.config.seed, &[ORDER_TAG, epoch, 0])
            .shuffle(&mut order);
        let mut starts = Vec::with_capacity(total + 1);
        let mut acc = 0u64;
        starts.push(0);
        for &c in &order {
            acc += self.chunks[c as usize].len;
            starts.push(acc);
        }
        let w = self.windows;
        let bounds = (0..=w).map(|i| i * total / w).collect();
        EpochPlan {
            epoch,
            order,
            starts,
            bounds,
        }
    }

    /// The permutation of window `w`'s `n` records in `epoch`.
    pub(crate) fn window_permutation(&self, epoch: u64, w: usize, n: u64) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        Xoshiro256PlusPlus::for_stream(self.config.seed, &[ORDER_TAG, epoch, 1, w as u64])
            .shuffle(&mut perm);
        perm
    }

    /// Chunk `id`.
    pub(crate) fn chunk(&self, id: u32) -> Chunk {
        self.chunks[id as usize]
    }
}

impl EpochPlan {
    /// First record (epoch position) of window `w`.
    pub fn window_start(&self, w: usize) -> u64 {
        self.starts[self.bounds[w]]
    }

    /// The window holding epoch position `q < len` (never an empty window).
    pub fn window_of(&self, q: u64) -> usize {
        // The last window starting at or before `q` (window 0 starts at 0); empty windows
        // start where the next one does, so they are never chosen.
        let (mut lo, mut hi) = (0, self.bounds.len() - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.window_start(mid) <= q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Chunk ids of window `w` in order, with their offsets inside the window.
    pub fn window_chunks(&self, w: usize) -> impl Iterator<Item = (u32, u64)> + '_ {
        let (a, b) = (self.bounds[w], self.bounds[w + 1]);
        let base = self.starts[a];
        (a..b).map(move |k| (self.order[k], self.starts[k] - base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(counts: &[u64], granule: u64) -> Vec<StorageUnit> {
        counts
            .iter()
            .map(|&records| StorageUnit { records, granule })
            .collect()
    }

    #[test]
    fn windows_are_balanced_and_bounded() {
        // 7 units, K = 3 → 3 windows of ≤ 3·C chunks each.
        for c in [1usize, 2, 5] {
            let order = SampleOrder::new(
                &units(&[4; 7], 1),
                StreamConfig::new(0)
                    .with_window_units(3)
                    .with_chunks_per_unit(c),
            )
            .unwrap();
            assert_eq!(order.windows_per_epoch(), 3);
            let plan = order.plan(0);
            assert_eq!(plan.bounds[0], 0);
            assert_eq!(plan.bounds[3], 7 * c);
            for w in 0..3 {
                let size = plan.bounds[w + 1] - plan.bounds[w];
                assert!(size <= 3 * c && size >= 7 * c / 3, "{c}: {size}");
            }
        }
    }

    #[test]
    fn chunks_cut_between_images() {
        // 2 records per image: 10 records = 5 images, and 7 records (not whole images).
        let order = SampleOrder::new(
            &units(&[10, 7], 2),
            StreamConfig::new(0)
                .with_window_units(1)
                .with_chunks_per_unit(3),
        )
        .unwrap();
        let cut: Vec<(u32, u64, u64)> = order
            .chunks
            .iter()
            .map(|c| (c.unit, c.start, c.len))
            .collect();
        assert_eq!(
            cut,
            [
                (0, 0, 2),
                (0, 2, 4),
                (0, 6, 4),
                (1, 10, 2),
                (1, 12, 2),
                (1, 14, 3)
            ]
        );
        // 2 windows of 3 chunks: the bound is the 3 largest chunks.
        assert_eq!(order.memory_bound_records(), 11);
    }

    #[test]
    fn permutations_are_seeded() {
        let order = |seed| SampleOrder::new(&units(&[50], 1), StreamConfig::new(seed)).unwrap();
        let a = order(1).window_permutation(0, 0, 50);
        assert_eq!(a, order(1).window_permutation(0, 0, 50));
        assert_ne!(a, order(2).window_permutation(0, 0, 50));
        assert_ne!(a, order(1).window_permutation(1, 0, 50));
        assert_ne!(a, order(1).window_permutation(0, 1, 50));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<u32>>());
    }

    #[test]
    fn one_unit_is_one_uniform_permutation_per_epoch() {
        let order = SampleOrder::new(&units(&[10], 1), StreamConfig::new(3)).unwrap();
        let first: Vec<u64> = (0..10).map(|p| order.record_index(p)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let second: Vec<u64> = (10..20).map(|p| order.record_index(p)).collect();
        assert_ne!(first, second, "each epoch has its own shuffle");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            SampleOrder::new(&units(&[3], 1), StreamConfig::new(0).with_window_units(0)).is_err()
        );
        assert!(
            SampleOrder::new(
                &units(&[3], 1),
                StreamConfig::new(0).with_chunks_per_unit(0)
            )
            .is_err()
        );
        assert!(SampleOrder::new(&units(&[0, 0], 1), StreamConfig::new(0)).is_err());
    }
}
