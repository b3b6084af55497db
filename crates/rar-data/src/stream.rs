//! Reading token data as training reads it: the seeded, endless, resumable stream of
//! [`crate::order`], one window in memory at a time.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};
use crate::order::{EpochPlan, SampleOrder, StreamConfig};
use crate::record::{RecordSpec, TokenRecord};
use crate::source::TokenData;

/// Consecutive records of a stream: `labels.len()` records from `first_position` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// Stream position of the first record.
    pub first_position: u64,
    /// One class label per record.
    pub labels: Vec<u16>,
    /// `tokens_per_record` token ids per record, record after record.
    pub tokens: Vec<u16>,
}

impl RecordBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What a training run reads: any [`SampleStream`], object-safe, so that a trainer does not
/// depend on the data's type.
pub trait SampleSource: Send + Sync {
    /// The shape of every record.
    fn spec(&self) -> RecordSpec;
    /// What the data is, for messages.
    fn describe(&self) -> String;
    /// Everything the order of positions depends on (the stream's settings and the data's
    /// identity): a run records it and refuses to resume on a stream with another key.
    fn order_key(&self) -> String;
    /// Records per epoch.
    fn records_per_epoch(&self) -> u64;
    /// The `count` records at positions `first_position..`; on error nothing is consumed.
    fn read(&self, first_position: u64, count: usize) -> Result<RecordBatch>;
}

/// Counters of a reader: what it read and how much it held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorStats {
    /// Windows loaded.
    pub windows_loaded: u64,
    /// Chunks read.
    pub chunks_loaded: u64,
    /// Records read.
    pub records_loaded: u64,
    /// Records held now.
    pub resident_records: u64,
    /// Distinct storage units (shards) with records held now.
    pub resident_units: u64,
    /// Most records ever held at once.
    pub peak_resident_records: u64,
    /// Most distinct storage units ever held at once.
    pub peak_resident_units: u64,
}

/// One loaded window.
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

/// A reader's state: its position, the epoch plan and the window it holds.
#[derive(Debug, Default)]
struct ReadState {
    position: u64,
    plan: Option<EpochPlan>,
    window: Option<Window>,
    stats: CursorStats,
}

/// Token data read as a shuffled, endless stream with bounded memory (see [`crate::order`]).
///
/// Read sequentially with a [`Cursor`] ([`Self::cursor`]), through the stream's own cursor
/// with [`Self::read`] (what a trainer does: it seeks only when asked for a position other than
/// the next one, e.g. after a resume), or one record at any position with
/// [`Self::record_at`].
#[derive(Debug)]
pub struct SampleStream<D> {
    data: D,
    order: SampleOrder,
    reader: Mutex<ReadState>,
    seeks: AtomicU64,
}

impl<D: TokenData> SampleStream<D> {
    /// `data` in the order `config` describes.
    pub fn new(data: D, config: StreamConfig) -> Result<Self> {
        let order = SampleOrder::new(&data.units(), config).map_err(|e| match e {
            DataError::InvalidInput { name, message } => DataError::InvalidInput {
                name,
                message: format!("{}: {message}", data.describe()),
            },
            other => other,
        })?;
        Ok(Self {
            data,
            order,
            reader: Mutex::new(ReadState::default()),
            seeks: AtomicU64::new(0),
        })
    }

    /// The data being read.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// The order.
    pub fn order(&self) -> &SampleOrder {
        &self.order
    }

    /// Records per epoch (never 0).
    pub fn len(&self) -> u64 {
        self.order.len()
    }

    /// Always `false` (a stream has at least one record).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The memory bound of a reader in bytes: `(2 + 2·N + 4)` per record of
    /// [`SampleOrder::memory_bound_records`] (label, tokens, permutation entry).
    pub fn memory_bound_bytes(&self) -> u64 {
        let n = self.data.spec().tokens_per_record as u64;
        self.order.memory_bound_records() * (6 + 2 * n)
    }

    /// The record at `position`, read alone (no window: the data's random access).
    pub fn record_at(&self, position: u64) -> Result<TokenRecord> {
        self.data.get(self.order.record_index(position) as usize)
    }

    /// A sequential reader from `position` on, holding one window at a time.
    pub fn cursor(&self, position: u64) -> Cursor<'_, D> {
        Cursor {
            stream: self,
            state: ReadState {
                position,
                ..ReadState::default()
            },
        }
    }

    /// The next position the stream's own reader serves without seeking.
    pub fn position(&self) -> u64 {
        self.lock().position
    }

    /// How often the stream's own reader was asked for a position other than the next one.
    pub fn seeks(&self) -> u64 {
        self.seeks.load(Ordering::Relaxed)
    }

    /// What the stream's own reader read and held.
    pub fn stats(&self) -> CursorStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadState> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the next `count` records of `state` to the buffers; on error nothing is
    /// appended and the position is unchanged.
    fn read_into(
        &self,
        state: &mut ReadState,
        count: usize,
        labels: &mut Vec<u16>,
        tokens: &mut Vec<u16>,
    ) -> Result<()> {
        let (start, nl, nt) = (state.position, labels.len(), tokens.len());
        let n = self.data.spec().tokens_per_record;
        labels.reserve(count);
        tokens.reserve(count * n);
        for _ in 0..count {
            match self.next_in(state) {
                Ok((l, t)) => {
                    labels.push(l);
                    tokens.extend_from_slice(t);
                }
                Err(e) => {
                    labels.truncate(nl);
                    tokens.truncate(nt);
                    state.position = start;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The record at `state.position`, advancing it.
    fn next_in<'s>(&self, state: &'s mut ReadState) -> Result<(u16, &'s [u16])> {
        let len = self.order.len();
        let (epoch, q) = (state.position / len, state.position % len);
        let hit = matches!(&state.window, Some(w) if w.epoch == epoch && w.start <= q && q < w.end);
        if !hit {
            // Release the old window first: at most one is ever resident.
            state.window = None;
            state.stats.resident_records = 0;
            state.stats.resident_units = 0;
            let window = self.load_window(state, epoch, q)?;
            state.window = Some(window);
        }
        let n = self.data.spec().tokens_per_record;
        let win = state.window.as_ref().expect("loaded above");
        let i = win.perm[(q - win.start) as usize] as usize;
        state.position += 1;
        Ok((win.labels[i], &win.tokens[i * n..(i + 1) * n]))
    }

    fn load_window(&self, state: &mut ReadState, epoch: u64, q: u64) -> Result<Window> {
        if state.plan.as_ref().is_none_or(|p| p.epoch != epoch) {
            state.plan = Some(self.order.plan(epoch));
        }
        let plan = state.plan.as_ref().expect("set above");
        let n = self.data.spec().tokens_per_record;
        let w = plan.window_of(q);
        let (start, end) = (plan.window_start(w), plan.window_start(w + 1));
        let records = (end - start) as usize;
        let mut labels = vec![0u16; records];
        let mut tokens = vec![0u16; records * n];
        // Read in storage order for locality; store in window order.
        let mut reads: Vec<_> = plan
            .window_chunks(w)
            .map(|(c, off)| (self.order.chunk(c), off as usize))
            .filter(|(c, _)| c.len > 0)
            .collect();
        reads.sort_by_key(|(c, _)| c.start);
        let mut stats = state.stats;
        let mut units = HashSet::new();
        for (chunk, off) in reads {
            let len = chunk.len as usize;
            self.data.read_run(
                chunk.start,
                &mut labels[off..off + len],
                &mut tokens[off * n..(off + len) * n],
            )?;
            units.insert(chunk.unit);
            stats.chunks_loaded += 1;
            stats.records_loaded += chunk.len;
        }
        let perm = self.order.window_permutation(epoch, w, end - start);
        stats.windows_loaded += 1;
        stats.resident_records = records as u64;
        stats.resident_units = units.len() as u64;
        stats.peak_resident_records = stats.peak_resident_records.max(records as u64);
        stats.peak_resident_units = stats.peak_resident_units.max(units.len() as u64);
        state.stats = stats;
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

impl<D: TokenData> SampleSource for SampleStream<D> {
    fn spec(&self) -> RecordSpec {
        self.data.spec()
    }

    fn describe(&self) -> String {
        self.data.describe()
    }

    fn order_key(&self) -> String {
        format!(
            "{}; {}",
            self.order.config().describe(),
            self.data.identity()
        )
    }

    fn records_per_epoch(&self) -> u64 {
        self.order.len()
    }

    /// Served by the stream's own reader, which seeks only when `first_position` is not the
    /// next position (a seek inside the window held costs nothing).
    fn read(&self, first_position: u64, count: usize) -> Result<RecordBatch> {
        let mut state = self.lock();
        if state.position != first_position {
            self.seeks.fetch_add(1, Ordering::Relaxed);
            state.position = first_position;
        }
        let (mut labels, mut tokens) = (Vec::new(), Vec::new());
        self.read_into(&mut state, count, &mut labels, &mut tokens)?;
        Ok(RecordBatch {
            first_position,
            labels,
            tokens,
        })
    }
}

/// A sequential reader of a [`SampleStream`] from some position on, holding one window at a
/// time. Endless: after the last record of an epoch come the records of the next one; as an
/// [`Iterator`] it never returns `None` (use `take`).
///
/// The position advances only when a record is returned, so after an error (data that went
/// missing or bad since it was opened) the same record is tried again.
#[derive(Debug)]
pub struct Cursor<'a, D> {
    stream: &'a SampleStream<D>,
    state: ReadState,
}

impl<D: TokenData> Cursor<'_, D> {
    /// Position of the next record.
    pub fn position(&self) -> u64 {
        self.state.position
    }

    /// Moves to `position`; the window is kept if it still applies.
    pub fn seek(&mut self, position: u64) {
        self.state.position = position;
    }

    /// What this reader read and held.
    pub fn stats(&self) -> CursorStats {
        self.state.stats
    }

    /// The next record: its class and its tokens (valid until the next call).
    pub fn next_record(&mut self) -> Result<(u16, &[u16])> {
        self.stream.next_in(&mut self.state)
    }

    /// Appends the next `count` records to `labels` (one each) and `tokens` (`N` each). On
    /// error nothing is appended and the position is unchanged.
    pub fn next_batch_into(
        &mut self,
        count: usize,
        labels: &mut Vec<u16>,
        tokens: &mut Vec<u16>,
    ) -> Result<()> {
        self.stream
            .read_into(&mut self.state, count, labels, tokens)
    }
}

impl<D: TokenData> Iterator for Cursor<'_, D> {
    type Item = Result<TokenRecord>;

    /// The next record as owned data; never `None`.
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_record().map(|(class, t)| TokenRecord {
            class,
            tokens: t.to_vec(),
        }))
    }
}
