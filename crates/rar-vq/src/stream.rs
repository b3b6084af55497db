//! Streaming, seeded, resumable reading of a pretokenization run for training.
//!
//! [`TokenDataset`](crate::TokenDataset) holds every record in memory (≈6.6 GB for ten-crop
//! ImageNet). [`ShardStream`] instead reads the shards of a finished run piece by piece, with
//! a fixed memory bound, in a shuffled order that is a pure function of
//! `(seed, epoch, position)`, so a trainer can resume at any data position after a restart.
//!
//! # The order
//!
//! Every shard is cut into `C` = [`StreamOptions::chunks_per_shard`] contiguous *chunks*
//! of whole images (chunk `c` of a shard of `m` images covers images `⌊c·m/C⌋ .. ⌊(c+1)·m/C⌋`,
//! i.e. their `crops_per_image` consecutive records each; a shard whose record count is not a
//! multiple of `crops_per_image` is cut by records); with `S` shards there are `T = S·C`
//! chunks, some possibly empty. For epoch `e`:
//!
//! 1. the `T` chunks are shuffled (generator `for_stream(seed, [TAG, e, 0])`);
//! 2. the shuffled list is cut into `W = ⌈S / K⌉` consecutive *windows* of `⌊T/W⌋` or
//!    `⌈T/W⌉` chunks each (`K` = [`StreamOptions::window_shards`]), so a window holds at most
//!    `K·C` chunks, i.e. about `K` shards' worth of records;
//! 3. the records of window `w` (its chunks in shuffled order, each chunk's records in file
//!    order) are shuffled uniformly (generator `for_stream(seed, [TAG, e, 1, w])`);
//! 4. the epoch is window 0's shuffled records, then window 1's, and so on.
//!
//! Global position `p` is record `p mod len` of epoch `p / len`, where `len` is the number of
//! records. Every record appears exactly once per epoch. The generator is rar-core's
//! [`Xoshiro256PlusPlus`] with its fixed shuffle, so the order is the same on every platform
//! and thread count.
//!
//! # Memory bound and mixing
//!
//! A [`ShardCursor`] (sequential reading) holds one window at a time: at most
//! [`ShardStream::memory_bound_records`] records (the `⌈T/W⌉ ≤ K·C` largest chunks,
//! ≤ `K·(n_max + C·crops_per_image)` for shards of at most `n_max` records), each costing `2 + 2·N` bytes of data plus 4 bytes
//! of permutation ([`ShardStream::memory_bound_bytes`]). It drops a window before it loads the
//! next one. Sequential reading reads every record of the run exactly once per epoch, chunk by
//! chunk (two contiguous reads per chunk, grouped by file); [`ShardStream::record_at`] reads one
//! record (`2 + 2·N` bytes) after building the permutation of its window (4 bytes per window
//! record, no token data).
//!
//! Mixing: within a window the order is a uniform permutation; across the epoch the chunks
//! are spread over windows uniformly, so two given chunks share a window with probability
//! ≈ `1/W`. The pretokenizer writes images in class order, so a chunk holds one or two
//! classes and a window (hence any batch drawn from it) holds up to `K·C` chunks from as many
//! different places in the dataset. For ten-crop ImageNet (2048 images per shard: ≈20 480
//! records, 10.5 MB per shard) the defaults `K = 32`, `C = 16` hold ≈340 MB and mix 512 chunks
//! of ≈128 images each per window; `C = 1` gives whole-shard windows (32 shards, ≈50
//! classes), which is coarser but checks every shard's checksum while reading. The ten crops
//! of an image stay in one chunk, hence one window, but are spread over it: a batch of 256
//! from a window of ≈655 000 records holds two crops of one image ≈0.45 times on average.
//!
//! # Validation
//!
//! [`ShardStream::open`] reads only `index.json` and the 40-byte header and length of every
//! shard: a missing shard, a truncated or oversized file, a bad magic / version, or a header
//! that disagrees with the index (record count, tokens per record, codebook size, crops per
//! image) is an error naming the file and the values. Token data is checked as it is read:
//! labels against the class count and tokens against the codebook size, and the CRC-32 when a
//! chunk is a whole shard (always with `C = 1`). [`ShardStream::verify_checksums`] checks
//! every shard's CRC in one streaming pass with a 1 MiB buffer.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rar_core::rng::Xoshiro256PlusPlus;

use crate::error::{Result, VqError};
use crate::pretokenize::{INDEX_FILE, ShardIndex};
use crate::shard::{SHARD_HEADER_LEN, ShardHeader};

/// First key of every random stream this module draws, so that the same seed used elsewhere
/// (e.g. for token orders) gives unrelated numbers here (`"SHRDSTRM"`).
const STREAM_TAG: u64 = 0x5348_5244_5354_524d;

/// Largest piece (in 16-bit words) read at once: bounds the scratch buffer to 1 MiB.
const READ_BLOCK_WORDS: usize = 1 << 19;

/// Default [`StreamOptions::window_shards`].
pub const DEFAULT_WINDOW_SHARDS: usize = 32;
/// Default [`StreamOptions::chunks_per_shard`].
pub const DEFAULT_CHUNKS_PER_SHARD: usize = 16;

/// How a [`ShardStream`] orders and buffers records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Seed of the order; the order is a pure function of `(seed, epoch, position)`.
    pub seed: u64,
    /// `K`: a window holds about this many shards' worth of records (the memory bound).
    pub window_shards: usize,
    /// `C`: each shard is cut into this many contiguous chunks, the units spread over windows
    /// (1: whole shards).
    pub chunks_per_shard: usize,
}

impl StreamOptions {
    /// The defaults ([`DEFAULT_WINDOW_SHARDS`], [`DEFAULT_CHUNKS_PER_SHARD`]) with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            window_shards: DEFAULT_WINDOW_SHARDS,
            chunks_per_shard: DEFAULT_CHUNKS_PER_SHARD,
        }
    }

    /// Sets [`Self::window_shards`].
    pub fn with_window_shards(mut self, window_shards: usize) -> Self {
        self.window_shards = window_shards;
        self
    }

    /// Sets [`Self::chunks_per_shard`].
    pub fn with_chunks_per_shard(mut self, chunks_per_shard: usize) -> Self {
        self.chunks_per_shard = chunks_per_shard;
        self
    }
}

/// Where a global position's record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordLocation {
    /// The epoch of the position.
    pub epoch: u64,
    /// The shard's position in the index.
    pub shard: usize,
    /// The record within the shard.
    pub record: u64,
}

/// A validated shard of the run.
#[derive(Debug)]
struct ShardInfo {
    path: PathBuf,
    header: ShardHeader,
}

/// A contiguous range of one shard's records.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    shard: u32,
    start: u64,
    len: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    index: ShardIndex,
    options: StreamOptions,
    shards: Vec<ShardInfo>,
    /// Every chunk, shard after shard (the unshuffled order).
    chunks: Vec<Chunk>,
    /// Number of windows per epoch.
    windows: usize,
    len: u64,
    max_window_records: u64,
    bytes_read: AtomicU64,
}

/// A finished pretokenization run read as a shuffled, endless stream of `(class, tokens)`
/// records with bounded memory (see the [module docs](self) for the order, the memory bound
/// and the validation).
///
/// Cloning is cheap (the shard table is shared). Read sequentially with a [`ShardCursor`]
/// ([`Self::cursor`]), or one record at any global position with [`Self::record_at`].
#[derive(Debug, Clone)]
pub struct ShardStream {
    inner: Arc<Inner>,
}

/// The shuffled chunk layout of one epoch.
#[derive(Debug)]
struct EpochPlan {
    epoch: u64,
    /// Chunk ids (into `Inner::chunks`) in epoch order.
    order: Vec<u32>,
    /// `order.len() + 1` record offsets: chunk `order[k]` covers `starts[k]..starts[k + 1]`.
    starts: Vec<u64>,
    /// `windows + 1` positions in `order`: window `w` is `order[bounds[w]..bounds[w + 1]]`.
    bounds: Vec<usize>,
}

impl EpochPlan {
    fn new(inner: &Inner, epoch: u64) -> Self {
        let total = inner.chunks.len();
        let mut order: Vec<u32> = (0..total as u32).collect();
        Xoshiro256PlusPlus::for_stream(inner.options.seed, &[STREAM_TAG, epoch, 0])
            .shuffle(&mut order);
        let mut starts = Vec::with_capacity(total + 1);
        let mut acc = 0u64;
        starts.push(0);
        for &c in &order {
            acc += inner.chunks[c as usize].len;
            starts.push(acc);
        }
        let w = inner.windows;
        let bounds = (0..=w).map(|i| i * total / w).collect();
        Self {
            epoch,
            order,
            starts,
            bounds,
        }
    }

    /// First record (epoch position) of window `w`.
    fn window_start(&self, w: usize) -> u64 {
        self.starts[self.bounds[w]]
    }

    /// The window holding epoch position `q < len` (never an empty window).
    fn window_of(&self, q: u64) -> usize {
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
    fn window_chunks(&self, w: usize) -> impl Iterator<Item = (u32, u64)> + '_ {
        let (a, b) = (self.bounds[w], self.bounds[w + 1]);
        let base = self.starts[a];
        (a..b).map(move |k| (self.order[k], self.starts[k] - base))
    }
}

/// The permutation of window `w`'s `n` records in epoch `epoch`.
fn window_permutation(seed: u64, epoch: u64, w: usize, n: u64) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..n as u32).collect();
    Xoshiro256PlusPlus::for_stream(seed, &[STREAM_TAG, epoch, 1, w as u64]).shuffle(&mut perm);
    perm
}

fn invalid(path: &Path, message: String) -> VqError {
    VqError::InvalidShard {
        path: path.to_path_buf(),
        message,
    }
}

/// Turns a failed read into a truncation error when the file got shorter than its header
/// says, into an I/O error naming the file otherwise.
fn read_error(file: &File, path: &Path, header: &ShardHeader, e: std::io::Error) -> VqError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        let found = file.metadata().map(|m| m.len()).unwrap_or(0);
        return VqError::TruncatedShard {
            path: path.to_path_buf(),
            expected: header.file_len(),
            found,
        };
    }
    VqError::io(path, e)
}

/// Reads `dest.len()` little-endian words at byte `offset`, in pieces of at most 1 MiB,
/// feeding the raw bytes to `crc` if given. Returns the bytes read.
fn read_words(
    file: &mut File,
    path: &Path,
    header: &ShardHeader,
    offset: u64,
    dest: &mut [u16],
    scratch: &mut Vec<u8>,
    mut crc: Option<&mut crc32fast::Hasher>,
) -> Result<u64> {
    if dest.is_empty() {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| VqError::io(path, e))?;
    for piece in dest.chunks_mut(READ_BLOCK_WORDS) {
        scratch.resize(2 * piece.len(), 0);
        file.read_exact(scratch)
            .map_err(|e| read_error(file, path, header, e))?;
        if let Some(h) = crc.as_deref_mut() {
            h.update(scratch);
        }
        for (d, c) in piece.iter_mut().zip(scratch.chunks_exact(2)) {
            *d = u16::from_le_bytes([c[0], c[1]]);
        }
    }
    Ok(2 * dest.len() as u64)
}

/// Checks the labels and tokens of records `first..` of a shard against the class count and
/// the codebook size.
fn check_records(
    path: &Path,
    first: u64,
    labels: &[u16],
    tokens: &[u16],
    n: usize,
    num_classes: usize,
    codebook_size: u32,
) -> Result<()> {
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(invalid(
            path,
            format!(
                "record {}: label {l} but the index has {num_classes} classes",
                first + i as u64
            ),
        ));
    }
    if let Some((i, &t)) = tokens
        .iter()
        .enumerate()
        .find(|&(_, &t)| u32::from(t) >= codebook_size)
    {
        return Err(invalid(
            path,
            format!(
                "record {}: token {t} is not below the codebook size {codebook_size}",
                first + (i / n) as u64
            ),
        ));
    }
    Ok(())
}

impl ShardStream {
    /// Opens the finished run in `dir`: reads `index.json` and validates the header and
    /// length of every shard it lists (no token data is read). Errors name the file and the
    /// offending value: an unfinished run, a missing shard, a truncated file, a header that
    /// disagrees with the index, an empty run, or options out of range.
    pub fn open(dir: impl AsRef<Path>, options: StreamOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if options.window_shards == 0 || options.chunks_per_shard == 0 {
            return Err(VqError::input(
                "options",
                format!(
                    "window_shards ({}) and chunks_per_shard ({}) must be at least 1",
                    options.window_shards, options.chunks_per_shard
                ),
            ));
        }
        let index = ShardIndex::read(dir)?;
        let index_path = dir.join(INDEX_FILE);
        if !index.is_complete() {
            return Err(invalid(
                &index_path,
                format!(
                    "pretokenization is unfinished: {} of {} shards done (rerun it to resume)",
                    index.shards.len(),
                    index.num_shards()
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut shards = Vec::with_capacity(index.shards.len());
        for (k, entry) in index.shards.iter().enumerate() {
            let mut components = Path::new(&entry.file).components();
            let plain = matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(_)), None)
            );
            if !plain {
                return Err(invalid(
                    &index_path,
                    format!(
                        "shard {k}: file {:?} is not a plain file name inside the directory",
                        entry.file
                    ),
                ));
            }
            if !seen.insert(entry.file.as_str()) {
                return Err(invalid(
                    &index_path,
                    format!("shard {k}: file {:?} is listed twice", entry.file),
                ));
            }
            let path = dir.join(&entry.file);
            let header = match ShardHeader::read(&path) {
                Ok(h) => h,
                Err(VqError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(invalid(
                        &path,
                        format!(
                            "missing: {INDEX_FILE} lists it as shard {k} but it does not exist"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
            let mismatch = |what: &str, found: u64, expected: u64| {
                invalid(
                    &path,
                    format!("header has {found} {what}, the index says {expected}"),
                )
            };
            if header.tokens_per_record != index.tokens_per_record {
                return Err(mismatch(
                    "tokens per record",
                    header.tokens_per_record.into(),
                    index.tokens_per_record.into(),
                ));
            }
            if header.codebook_size != index.codebook_size {
                return Err(mismatch(
                    "as codebook size",
                    header.codebook_size.into(),
                    index.codebook_size.into(),
                ));
            }
            if header.crops_per_image != index.crops_per_image {
                return Err(mismatch(
                    "crops per image",
                    header.crops_per_image.into(),
                    index.crops_per_image.into(),
                ));
            }
            if header.count != entry.num_records {
                return Err(mismatch("records", header.count, entry.num_records));
            }
            shards.push(ShardInfo { path, header });
        }
        let len: u64 = shards.iter().map(|s| s.header.count).sum();
        if len == 0 {
            return Err(invalid(&index_path, "the run has no records".into()));
        }
        if shards.len() > u32::MAX as usize / options.chunks_per_shard {
            return Err(VqError::input(
                "options",
                format!(
                    "{} shards × {} chunks per shard is too many chunks",
                    shards.len(),
                    options.chunks_per_shard
                ),
            ));
        }
        let c = options.chunks_per_shard as u64;
        let mut chunks = Vec::with_capacity(shards.len() * options.chunks_per_shard);
        for (s, info) in shards.iter().enumerate() {
            let n = info.header.count;
            // Cut between images (runs of `crops_per_image` records) when the count allows.
            let crops = u64::from(info.header.crops_per_image);
            let unit = if n % crops == 0 { crops } else { 1 };
            let units = n / unit;
            for i in 0..c {
                // u128: `i · units` may exceed u64 for absurd counts.
                let at = |i: u64| (u128::from(i) * u128::from(units) / u128::from(c)) as u64 * unit;
                chunks.push(Chunk {
                    shard: s as u32,
                    start: at(i),
                    len: at(i + 1) - at(i),
                });
            }
        }
        let windows = shards.len().div_ceil(options.window_shards);
        let per_window = chunks.len().div_ceil(windows);
        let mut lens: Vec<u64> = chunks.iter().map(|c| c.len).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let max_window_records: u64 = lens.iter().take(per_window).sum();
        if max_window_records > u64::from(u32::MAX) {
            return Err(VqError::input(
                "options",
                format!(
                    "a window may hold {max_window_records} records, more than 2^32 - 1; \
                     use fewer window_shards"
                ),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                index,
                options,
                shards,
                chunks,
                windows,
                len,
                max_window_records,
                bytes_read: AtomicU64::new(0),
            }),
        })
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The run's index.
    pub fn index(&self) -> &ShardIndex {
        &self.inner.index
    }

    /// The options the stream was opened with.
    pub fn options(&self) -> StreamOptions {
        self.inner.options
    }

    /// Records per epoch (never 0).
    pub fn len(&self) -> usize {
        self.inner.len as usize
    }

    /// Always `false`: [`Self::open`] refuses a run without records.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Tokens per record.
    pub fn tokens_per_record(&self) -> usize {
        self.inner.index.tokens_per_record as usize
    }

    /// Codebook size.
    pub fn codebook_size(&self) -> usize {
        self.inner.index.codebook_size as usize
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.inner.index.classes.len()
    }

    /// Number of shards.
    pub fn num_shards(&self) -> usize {
        self.inner.shards.len()
    }

    /// Path of shard `k` (its position in the index).
    pub fn shard_path(&self, k: usize) -> Option<&Path> {
        self.inner.shards.get(k).map(|s| s.path.as_path())
    }

    /// Number of records of shard `k`.
    pub fn shard_len(&self, k: usize) -> Option<u64> {
        self.inner.shards.get(k).map(|s| s.header.count)
    }

    /// Windows per epoch (`⌈shards / window_shards⌉`).
    pub fn windows_per_epoch(&self) -> usize {
        self.inner.windows
    }

    /// The most records a window can hold: the memory bound of a [`ShardCursor`], in records.
    pub fn memory_bound_records(&self) -> u64 {
        self.inner.max_window_records
    }

    /// The memory bound of a [`ShardCursor`] in bytes: `(2 + 2·N + 4)` per record of
    /// [`Self::memory_bound_records`] (label, tokens, permutation entry), plus a read buffer
    /// of at most 1 MiB.
    pub fn memory_bound_bytes(&self) -> u64 {
        self.inner.max_window_records * (6 + 2 * u64::from(self.inner.index.tokens_per_record))
            + 2 * READ_BLOCK_WORDS as u64
    }

    /// Bytes of shard data read so far by this stream, its clones and their cursors.
    pub fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Relaxed)
    }

    /// Where the record of global position `position` lives. Costs the epoch's chunk shuffle
    /// and the permutation of one window (4 bytes per window record); reads nothing.
    pub fn locate(&self, position: u64) -> RecordLocation {
        let epoch = position / self.inner.len;
        let plan = EpochPlan::new(&self.inner, epoch);
        self.locate_in(&plan, position % self.inner.len)
    }

    fn locate_in(&self, plan: &EpochPlan, q: u64) -> RecordLocation {
        let w = plan.window_of(q);
        let start = plan.window_start(w);
        let n = plan.window_start(w + 1) - start;
        let perm = window_permutation(self.inner.options.seed, plan.epoch, w, n);
        let local = u64::from(perm[(q - start) as usize]);
        let (a, b) = (plan.bounds[w], plan.bounds[w + 1]);
        // The last chunk of the window starting at or before `local` (skips empty chunks).
        let k = a + plan.starts[a..b].partition_point(|&s| s - start <= local) - 1;
        let chunk = self.inner.chunks[plan.order[k] as usize];
        RecordLocation {
            epoch: plan.epoch,
            shard: chunk.shard as usize,
            record: chunk.start + (local - (plan.starts[k] - start)),
        }
    }

    /// The record at global position `position` (epoch `position / len`), reading only that
    /// record (`2 + 2·N` bytes) from its shard. Equals the `position`-th item of sequential
    /// reading from position 0. Its label and tokens are range-checked; its shard's checksum
    /// is not (see [`Self::verify_checksums`]).
    pub fn record_at(&self, position: u64) -> Result<(u16, Vec<u16>)> {
        let loc = self.locate(position);
        self.read_record(loc.shard, loc.record)
    }

    /// Reads record `record` of shard `shard` (positions in the index and the file).
    pub fn read_record(&self, shard: usize, record: u64) -> Result<(u16, Vec<u16>)> {
        let info = self.inner.shards.get(shard).ok_or_else(|| {
            VqError::input(
                "shard",
                format!("shard {shard} of {}", self.inner.shards.len()),
            )
        })?;
        let h = &info.header;
        if record >= h.count {
            return Err(VqError::input(
                "record",
                format!("record {record} of {} in {}", h.count, info.path.display()),
            ));
        }
        let n = h.tokens_per_record as usize;
        let path = &info.path;
        let mut file = File::open(path).map_err(|e| VqError::io(path, e))?;
        let mut scratch = Vec::new();
        let mut label = [0u16];
        let mut tokens = vec![0u16; n];
        let mut bytes = read_words(
            &mut file,
            path,
            h,
            SHARD_HEADER_LEN + 2 * record,
            &mut label,
            &mut scratch,
            None,
        )?;
        bytes += read_words(
            &mut file,
            path,
            h,
            SHARD_HEADER_LEN + 2 * h.count + 2 * n as u64 * record,
            &mut tokens,
            &mut scratch,
            None,
        )?;
        self.inner.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        check_records(
            path,
            record,
            &label,
            &tokens,
            n,
            self.num_classes(),
            h.codebook_size,
        )?;
        Ok((label[0], tokens))
    }

    /// A sequential reader starting at global position `position`.
    pub fn cursor(&self, position: u64) -> ShardCursor {
        ShardCursor {
            stream: self.clone(),
            position,
            plan: None,
            window: None,
            stats: CursorStats::default(),
        }
    }

    /// Streams every shard once (1 MiB buffer) and checks its CRC-32, labels and tokens:
    /// the checks [`crate::Shard::read`] does, without holding a shard in memory.
    pub fn verify_checksums(&self) -> Result<()> {
        let num_classes = self.num_classes();
        let n = self.tokens_per_record();
        // Whole records per piece, so a token piece starts at a record boundary.
        let per_piece = (READ_BLOCK_WORDS / n).max(1);
        let mut words = vec![0u16; per_piece * n];
        let mut scratch = Vec::new();
        for info in &self.inner.shards {
            let (path, h) = (&info.path, &info.header);
            let mut file = File::open(path).map_err(|e| VqError::io(path, e))?;
            let mut crc = crc32fast::Hasher::new();
            let mut bytes = 0;
            for tokens_part in [false, true] {
                let mut first = 0u64;
                while first < h.count {
                    let m = (per_piece as u64).min(h.count - first) as usize;
                    let (offset, piece) = if tokens_part {
                        let at = SHARD_HEADER_LEN + 2 * h.count + 2 * (n as u64) * first;
                        (at, &mut words[..m * n])
                    } else {
                        (SHARD_HEADER_LEN + 2 * first, &mut words[..m])
                    };
                    bytes += read_words(
                        &mut file,
                        path,
                        h,
                        offset,
                        piece,
                        &mut scratch,
                        Some(&mut crc),
                    )?;
                    let (labels, tokens): (&[u16], &[u16]) = if tokens_part {
                        (&[], piece)
                    } else {
                        (piece, &[])
                    };
                    check_records(path, first, labels, tokens, n, num_classes, h.codebook_size)?;
                    first += m as u64;
                }
            }
            self.inner.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            let crc = crc.finalize();
            if crc != h.crc32 {
                return Err(invalid(
                    path,
                    format!(
                        "checksum mismatch (header {:#010x}, data {crc:#010x}): the file is corrupt",
                        h.crc32
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Counters of a [`ShardCursor`]: what it read and how much it held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorStats {
    /// Windows loaded.
    pub windows_loaded: u64,
    /// Chunks read.
    pub chunks_loaded: u64,
    /// Records read.
    pub records_loaded: u64,
    /// Shard files opened.
    pub files_opened: u64,
    /// Records held now.
    pub resident_records: u64,
    /// Distinct shards with records held now.
    pub resident_shards: u64,
    /// Most records ever held at once.
    pub peak_resident_records: u64,
    /// Most distinct shards ever held at once.
    pub peak_resident_shards: u64,
}

/// One loaded window of a [`ShardCursor`].
#[derive(Debug)]
struct Window {
    epoch: u64,
    /// Epoch positions `start..end`.
    start: u64,
    end: u64,
    /// Position in the window → index into `labels` / `tokens`.
    perm: Vec<u32>,
    labels: Vec<u16>,
    tokens: Vec<u16>,
}

/// Sequential reader of a [`ShardStream`] from some global position on, holding one window
/// at a time (see the [module docs](self)). Endless: after the last record of an epoch come
/// the records of the next one. As an [`Iterator`] it never returns `None` (use `take`).
///
/// The position advances only when a record is returned, so after an error (a shard that
/// went missing or bad since [`ShardStream::open`]) the same record is tried again.
#[derive(Debug)]
pub struct ShardCursor {
    stream: ShardStream,
    position: u64,
    plan: Option<EpochPlan>,
    window: Option<Window>,
    stats: CursorStats,
}

impl ShardCursor {
    /// Global position of the next record (save it to resume with [`ShardStream::cursor`]).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves to global position `position`; the window is kept if it still applies.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// The stream being read.
    pub fn stream(&self) -> &ShardStream {
        &self.stream
    }

    /// What this cursor read and held.
    pub fn stats(&self) -> CursorStats {
        self.stats
    }

    /// The next record: its class and its tokens (valid until the next call).
    pub fn next_record(&mut self) -> Result<(u16, &[u16])> {
        let len = self.stream.inner.len;
        let (epoch, q) = (self.position / len, self.position % len);
        let n = self.stream.tokens_per_record();
        self.ensure_window(epoch, q)?;
        let win = self
            .window
            .as_ref()
            .ok_or_else(|| VqError::input("cursor", "internal error: no window loaded"))?;
        let i = win.perm[(q - win.start) as usize] as usize;
        self.position += 1;
        Ok((win.labels[i], &win.tokens[i * n..(i + 1) * n]))
    }

    /// Appends the next `count` records to `labels` (one each) and `tokens` (`N` each).
    /// On error nothing is appended and the position is unchanged.
    pub fn next_batch_into(
        &mut self,
        count: usize,
        labels: &mut Vec<u16>,
        tokens: &mut Vec<u16>,
    ) -> Result<()> {
        let (start, nl, nt) = (self.position, labels.len(), tokens.len());
        labels.reserve(count);
        tokens.reserve(count * self.stream.tokens_per_record());
        for _ in 0..count {
            match self.next_record() {
                Ok((l, t)) => {
                    labels.push(l);
                    tokens.extend_from_slice(t);
                }
                Err(e) => {
                    labels.truncate(nl);
                    tokens.truncate(nt);
                    self.position = start;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Loads the window holding epoch position `q` of `epoch` unless it is the one held.
    fn ensure_window(&mut self, epoch: u64, q: u64) -> Result<()> {
        let hit = matches!(&self.window, Some(w) if w.epoch == epoch && w.start <= q && q < w.end);
        if !hit {
            // Release the old window first: at most one is ever resident.
            self.window = None;
            self.stats.resident_records = 0;
            self.stats.resident_shards = 0;
            self.window = Some(self.load_window(epoch, q)?);
        }
        Ok(())
    }

    fn load_window(&mut self, epoch: u64, q: u64) -> Result<Window> {
        if self.plan.as_ref().is_none_or(|p| p.epoch != epoch) {
            self.plan = Some(EpochPlan::new(&self.stream.inner, epoch));
        }
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| VqError::input("cursor", "internal error: no epoch plan"))?;
        let inner = &self.stream.inner;
        let n = inner.index.tokens_per_record as usize;
        let num_classes = inner.index.classes.len();
        let w = plan.window_of(q);
        let (start, end) = (plan.window_start(w), plan.window_start(w + 1));
        let records = (end - start) as usize;
        let mut labels = vec![0u16; records];
        let mut tokens = vec![0u16; records * n];

        // Read in file order (shard, start) for locality; store in window order.
        let mut reads: Vec<(Chunk, usize)> = plan
            .window_chunks(w)
            .map(|(c, off)| (inner.chunks[c as usize], off as usize))
            .filter(|(c, _)| c.len > 0)
            .collect();
        reads.sort_by_key(|(c, _)| (c.shard, c.start));
        let mut scratch = Vec::new();
        let mut open: Option<(u32, File)> = None;
        let mut shards_held = 0u64;
        let mut bytes = 0u64;
        let mut stats = self.stats;
        for (chunk, off) in reads {
            let info = &inner.shards[chunk.shard as usize];
            let (path, h) = (&info.path, &info.header);
            let file = match &mut open {
                Some((s, f)) if *s == chunk.shard => f,
                slot => {
                    let f = File::open(path).map_err(|e| VqError::io(path, e))?;
                    stats.files_opened += 1;
                    shards_held += 1;
                    &mut slot.insert((chunk.shard, f)).1
                }
            };
            let len = chunk.len as usize;
            let whole = chunk.start == 0 && chunk.len == h.count;
            let mut crc = whole.then(crc32fast::Hasher::new);
            let dest_labels = &mut labels[off..off + len];
            let dest_tokens = &mut tokens[off * n..(off + len) * n];
            bytes += read_words(
                file,
                path,
                h,
                SHARD_HEADER_LEN + 2 * chunk.start,
                dest_labels,
                &mut scratch,
                crc.as_mut(),
            )?;
            bytes += read_words(
                file,
                path,
                h,
                SHARD_HEADER_LEN + 2 * h.count + 2 * n as u64 * chunk.start,
                dest_tokens,
                &mut scratch,
                crc.as_mut(),
            )?;
            if let Some(crc) = crc {
                let crc = crc.finalize();
                if crc != h.crc32 {
                    return Err(invalid(
                        path,
                        format!(
                            "checksum mismatch (header {:#010x}, data {crc:#010x}): the file is corrupt",
                            h.crc32
                        ),
                    ));
                }
            }
            check_records(
                path,
                chunk.start,
                dest_labels,
                dest_tokens,
                n,
                num_classes,
                h.codebook_size,
            )?;
            stats.chunks_loaded += 1;
            stats.records_loaded += chunk.len;
        }
        inner.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        let perm = window_permutation(inner.options.seed, epoch, w, end - start);
        stats.windows_loaded += 1;
        stats.resident_records = records as u64;
        stats.resident_shards = shards_held;
        stats.peak_resident_records = stats.peak_resident_records.max(records as u64);
        stats.peak_resident_shards = stats.peak_resident_shards.max(shards_held);
        self.stats = stats;
        Ok(Window {
            epoch,
            start,
            end,
            perm,
            labels,
            tokens,
        })
    }
}

impl Iterator for ShardCursor {
    type Item = Result<(u16, Vec<u16>)>;

    /// The next record as owned data; never `None`.
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_record().map(|(l, t)| (l, t.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_balanced_and_bounded() {
        // 7 shards, K = 3 → 3 windows of ≤ 3·C chunks each.
        for c in [1usize, 2, 5] {
            let total = 7 * c;
            let windows = 7usize.div_ceil(3);
            let bounds: Vec<usize> = (0..=windows).map(|i| i * total / windows).collect();
            assert_eq!(bounds[0], 0);
            assert_eq!(bounds[windows], total);
            for w in 0..windows {
                let size = bounds[w + 1] - bounds[w];
                assert!(size <= 3 * c && size >= total / windows, "{c}: {size}");
            }
        }
    }

    #[test]
    fn chunks_cut_between_images() {
        use crate::Shard;
        use crate::pretokenize::{INDEX_VERSION, ShardEntry, shard_file_name};
        let dir = tempfile::tempdir().unwrap();
        // 2 crops per image: 10 records = 5 images, and 7 records (not whole images).
        let counts = [10usize, 7];
        let mut shards = Vec::new();
        for (k, &n) in counts.iter().enumerate() {
            let file = shard_file_name(k);
            Shard::new(1, 4, 2, vec![0; n], vec![1; n])
                .unwrap()
                .write(dir.path().join(&file))
                .unwrap();
            shards.push(ShardEntry {
                file,
                first_image: k,
                num_images: 1,
                num_records: n as u64,
                skipped: Vec::new(),
            });
        }
        let index = ShardIndex {
            version: INDEX_VERSION,
            tokens_per_record: 1,
            codebook_size: 4,
            crop_mode: "center-flip".into(),
            crops_per_image: 2,
            image_size: 16,
            classes: vec!["a".into()],
            num_images: 2,
            images_fingerprint: "0".into(),
            images_per_shard: 1,
            shards,
        };
        std::fs::write(
            dir.path().join(INDEX_FILE),
            serde_json::to_string(&index).unwrap(),
        )
        .unwrap();
        let options = StreamOptions::new(0)
            .with_window_shards(1)
            .with_chunks_per_shard(3);
        let stream = ShardStream::open(dir.path(), options).unwrap();
        let cut: Vec<(u32, u64, u64)> = stream
            .inner
            .chunks
            .iter()
            .map(|c| (c.shard, c.start, c.len))
            .collect();
        assert_eq!(
            cut,
            [
                (0, 0, 2),
                (0, 2, 4),
                (0, 6, 4),
                (1, 0, 2),
                (1, 2, 2),
                (1, 4, 3)
            ]
        );
        // 2 windows of 3 chunks: the bound is the 3 largest chunks.
        assert_eq!(stream.memory_bound_records(), 11);
    }

    #[test]
    fn permutations_are_seeded() {
        let a = window_permutation(1, 0, 0, 50);
        assert_eq!(a, window_permutation(1, 0, 0, 50));
        assert_ne!(a, window_permutation(2, 0, 0, 50));
        assert_ne!(a, window_permutation(1, 1, 0, 50));
        assert_ne!(a, window_permutation(1, 0, 1, 50));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<u32>>());
    }
}
