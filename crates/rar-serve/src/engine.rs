//! The batching engine: one worker thread owns the model and runs batches; callers on any
//! thread submit jobs (one or more images, each a [`SampleRequest`]) and get a [`Ticket`].
//!
//! Jobs that arrive while a batch runs wait in a bounded queue and form the next batch
//! together — as many as fit in [`EngineConfig::max_batch_images`] — so concurrent clients
//! share the KV-cached steps instead of taking turns (`max_jobs_per_batch = 1` is the
//! one-request-at-a-time baseline). Between steps the worker drops the rows of cancelled jobs
//! from the running batch ([`rar_sample::RequestBatch::retain`]) and sends progress events.
//! Every request draws from its own seeded stream, so a job's images are the same whatever
//! it was batched with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rar_model::{Decoder, PackedDecoder, PackedPrecision, Rar};
use rar_sample::{RequestBatch, SampleRequest};

use crate::error::EngineError;
use crate::job::{JobEvent, Ticket};
use crate::queue::{JobQueue, PushError, QueuedJob};

/// How the engine batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Images (KV-cache request rows; a guided image takes two cache rows) in one batch; also
    /// the most one job may ask for.
    pub max_batch_images: usize,
    /// Jobs merged into one batch (1: one request at a time, the baseline batching is
    /// measured against).
    pub max_jobs_per_batch: usize,
    /// Jobs that may wait; one more is refused with [`EngineError::QueueFull`].
    pub queue_capacity: usize,
    /// How long an idle worker that found a batch with room waits for more jobs before it
    /// starts (0: start at once). Clients that resubmit as soon as their answer arrives
    /// come back a few milliseconds apart; a short window lets them share one batch
    /// instead of splitting into a lone job and the rest.
    pub gather_window: Duration,
    /// Decode with the model's weights packed on the host in this format
    /// ([`PackedDecoder`], for CPU devices: several times faster than burn's tensor ops
    /// there), or with burn's tensor ops on the model's device (`None`, the choice for GPUs).
    pub packed_weights: Option<PackedPrecision>,
}

impl Default for EngineConfig {
    /// 16 images per batch, any number of jobs per batch, 64 waiting jobs, no gather
    /// window, burn's tensor ops.
    fn default() -> Self {
        Self {
            max_batch_images: 16,
            max_jobs_per_batch: usize::MAX,
            queue_capacity: 64,
            gather_window: Duration::ZERO,
            packed_weights: None,
        }
    }
}

/// Counters of the engine (all since start), shared with the worker.
#[derive(Debug, Default)]
struct EngineStats {
    jobs_submitted: AtomicU64,
    jobs_rejected: AtomicU64,
    jobs_completed: AtomicU64,
    jobs_cancelled: AtomicU64,
    jobs_failed: AtomicU64,
    images_completed: AtomicU64,
    batches: AtomicU64,
    running_images: AtomicUsize,
}

/// The engine's counters (since start) and its queue depth, read by [`Engine::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct EngineSnapshot {
    /// Jobs accepted into the queue.
    pub jobs_submitted: u64,
    /// Jobs refused because the queue was full.
    pub jobs_rejected: u64,
    /// Jobs whose images were all delivered.
    pub jobs_completed: u64,
    /// Jobs cancelled by their caller (waiting or running).
    pub jobs_cancelled: u64,
    /// Jobs that failed on the device.
    pub jobs_failed: u64,
    /// Images delivered.
    pub images_completed: u64,
    /// Batches run.
    pub batches: u64,
    /// Images in the batch running now.
    pub running_images: usize,
    /// Jobs waiting.
    pub queue_depth: usize,
}

/// The engine: a worker thread with the model, and the queue in front of it.
pub struct Engine {
    config: EngineConfig,
    num_classes: usize,
    num_tokens: usize,
    codebook_size: usize,
    queue: Arc<JobQueue>,
    stats: Arc<EngineStats>,
    next_id: AtomicU64,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the worker thread, which owns `model` (use a model without autodiff).
    pub fn start(model: Rar, config: EngineConfig) -> Result<Self, EngineError> {
        if config.max_batch_images == 0 || config.max_jobs_per_batch == 0 {
            return Err(EngineError::InvalidRequest(
                "max_batch_images and max_jobs_per_batch must be at least 1".into(),
            ));
        }
        let num_classes = model.config().num_classes;
        let num_tokens = model.config().image_seq_len;
        let codebook_size = model.config().codebook_size;
        let packed = config
            .packed_weights
            .map(|format| PackedDecoder::new(&model, format))
            .transpose()
            .map_err(|e| EngineError::Sampling(format!("packing the weights: {e}")))?;
        let queue = Arc::new(JobQueue::new(config.queue_capacity));
        let stats = Arc::new(EngineStats::default());
        let worker = {
            let (queue, stats, config) = (queue.clone(), stats.clone(), config.clone());
            std::thread::Builder::new()
                .name("rar-serve-engine".into())
                .spawn(move || {
                    let decoder = match &packed {
                        Some(p) => Decoder::packed(&model, p)
                            .expect("packed from this model, so the configurations match"),
                        None => Decoder::from(&model),
                    };
                    while let Some(jobs) = queue.take_batch(
                        config.max_batch_images,
                        config.max_jobs_per_batch,
                        config.gather_window,
                    ) {
                        run_batch(decoder, jobs, &stats);
                    }
                })
                .map_err(|e| EngineError::Sampling(format!("starting the worker: {e}")))?
        };
        Ok(Self {
            config,
            num_classes,
            num_tokens,
            codebook_size,
            queue,
            stats,
            next_id: AtomicU64::new(1),
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The batching settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Classes of the model.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Tokens per image (`N`).
    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    /// Codebook size (`V`): token ids are below it.
    pub fn codebook_size(&self) -> usize {
        self.codebook_size
    }

    /// Queues a job of `requests` (one image each). With `progress_every = Some(k)` the
    /// ticket receives the tokens so far every `k` tokens. Refused at once when a request is
    /// invalid, the job is larger than a batch, or the queue is full.
    pub fn submit(
        &self,
        requests: Vec<SampleRequest>,
        progress_every: Option<usize>,
    ) -> Result<Ticket, EngineError> {
        if requests.is_empty() {
            return Err(EngineError::InvalidRequest(
                "a job needs at least one image".into(),
            ));
        }
        if requests.len() > self.config.max_batch_images {
            return Err(EngineError::TooManyImages {
                images: requests.len(),
                limit: self.config.max_batch_images,
            });
        }
        for (i, r) in requests.iter().enumerate() {
            r.check(self.num_classes)
                .map_err(|m| EngineError::InvalidRequest(format!("image {i}: {m}")))?;
        }
        if progress_every == Some(0) {
            return Err(EngineError::InvalidRequest(
                "progress_every must be at least 1 token".into(),
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancelled = Arc::new(AtomicBool::new(false));
        let (progress_tx, progress) = sync_channel(2);
        let (result_tx, result) = sync_channel(1);
        let job = QueuedJob {
            id,
            requests,
            progress_every,
            cancelled: cancelled.clone(),
            progress: progress_tx,
            result: result_tx,
        };
        match self.queue.push(job) {
            Ok(()) => {
                self.stats.jobs_submitted.fetch_add(1, Ordering::Relaxed);
                Ok(Ticket {
                    id,
                    cancelled,
                    queue: self.queue.clone(),
                    progress,
                    result,
                })
            }
            Err(PushError::Full) => {
                self.stats.jobs_rejected.fetch_add(1, Ordering::Relaxed);
                Err(EngineError::QueueFull {
                    capacity: self.queue.capacity(),
                })
            }
            Err(PushError::ShutDown) => Err(EngineError::Stopped),
        }
    }

    /// The counters and the queue depth now.
    pub fn snapshot(&self) -> EngineSnapshot {
        let s = &self.stats;
        EngineSnapshot {
            jobs_submitted: s.jobs_submitted.load(Ordering::Relaxed),
            jobs_rejected: s.jobs_rejected.load(Ordering::Relaxed),
            jobs_completed: s.jobs_completed.load(Ordering::Relaxed),
            jobs_cancelled: s.jobs_cancelled.load(Ordering::Relaxed)
                + self.queue.cancelled_waiting(),
            jobs_failed: s.jobs_failed.load(Ordering::Relaxed),
            images_completed: s.images_completed.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            running_images: s.running_images.load(Ordering::Relaxed),
            queue_depth: self.queue.len(),
        }
    }

    /// Stops taking jobs, serves those already queued and waits for the worker.
    pub fn shut_down(&self) {
        self.queue.shut_down();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Runs one batch of `jobs` to the end, dropping cancelled jobs between steps.
fn run_batch(decoder: Decoder<'_>, jobs: Vec<QueuedJob>, stats: &EngineStats) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    let requests: Vec<SampleRequest> = jobs.iter().flat_map(|j| j.requests.clone()).collect();
    // owner[i]: the job of batch row i
    let mut owner: Vec<usize> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| std::iter::repeat_n(j, job.requests.len()))
        .collect();
    let mut live = vec![true; jobs.len()];
    stats.running_images.store(owner.len(), Ordering::Relaxed);
    let fail = |jobs: &[QueuedJob], live: &[bool], message: String| {
        for (job, _) in jobs.iter().zip(live).filter(|(_, l)| **l) {
            stats.jobs_failed.fetch_add(1, Ordering::Relaxed);
            let _ = job
                .result
                .try_send(Err(EngineError::Sampling(message.clone())));
        }
    };
    let mut batch = match RequestBatch::start(decoder, requests) {
        Ok(batch) => batch,
        Err(e) => {
            fail(&jobs, &live, e.to_string());
            stats.running_images.store(0, Ordering::Relaxed);
            return;
        }
    };
    let n = batch.num_tokens();
    loop {
        let done = match batch.step() {
            Ok(done) => done,
            Err(e) => {
                fail(&jobs, &live, e.to_string());
                break;
            }
        };
        // cancelled jobs leave the batch
        let mut dropped = false;
        for (j, job) in jobs.iter().enumerate() {
            if live[j] && job.is_cancelled() {
                live[j] = false;
                dropped = true;
                stats.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        if dropped {
            let kept = batch.retain(|i, _| live[owner[i]]);
            owner = kept.iter().map(|&i| owner[i]).collect();
            stats.running_images.store(owner.len(), Ordering::Relaxed);
            if batch.is_empty() {
                break;
            }
        }
        let steps = batch.steps_done();
        let tokens_of = |j: usize| -> Vec<Vec<u32>> {
            (0..owner.len())
                .filter(|&i| owner[i] == j)
                .map(|i| batch.tokens(i).to_vec())
                .collect()
        };
        if done {
            for (j, job) in jobs.iter().enumerate().filter(|(j, _)| live[*j]) {
                let tokens = tokens_of(j);
                stats.jobs_completed.fetch_add(1, Ordering::Relaxed);
                stats
                    .images_completed
                    .fetch_add(tokens.len() as u64, Ordering::Relaxed);
                let _ = job.result.try_send(Ok(tokens));
            }
            break;
        }
        for (j, job) in jobs.iter().enumerate().filter(|(j, _)| live[*j]) {
            if job.progress_every.is_some_and(|k| steps % k == 0) && steps < n {
                let tokens = tokens_of(j);
                // a full channel means a slow reader: it misses this frame, not the result
                let _ = job.progress.try_send(JobEvent {
                    steps,
                    num_tokens: n,
                    tokens,
                });
            }
        }
    }
    stats.running_images.store(0, Ordering::Relaxed);
}
