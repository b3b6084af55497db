//! The bounded queue between request handlers and the engine's worker: jobs wait here until
//! a batch has room; a full queue refuses new jobs (the server's 429) instead of growing, and a
//! cancelled job leaves it at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rar_sample::SampleRequest;

use crate::job::{JobEvent, JobResult};

/// A job as the worker sees it.
pub(crate) struct QueuedJob {
    pub id: u64,
    pub requests: Vec<SampleRequest>,
    /// Send a progress event every this many tokens (`None`: only the result).
    pub progress_every: Option<usize>,
    pub cancelled: Arc<AtomicBool>,
    pub progress: SyncSender<JobEvent>,
    pub result: SyncSender<JobResult>,
}

impl QueuedJob {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<QueuedJob>,
    shut_down: bool,
}

/// FIFO of waiting jobs with a fixed capacity.
pub(crate) struct JobQueue {
    capacity: usize,
    /// Jobs removed while waiting because their caller cancelled them.
    cancelled_waiting: AtomicU64,
    state: Mutex<State>,
    ready: Condvar,
}

/// Why a job was not queued.
pub(crate) enum PushError {
    Full,
    ShutDown,
}

impl JobQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            cancelled_waiting: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock cannot leave the deque half-updated
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn push(&self, job: QueuedJob) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.shut_down {
            return Err(PushError::ShutDown);
        }
        if state.jobs.len() >= self.capacity {
            return Err(PushError::Full);
        }
        state.jobs.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    /// Removes a waiting job (its client went away). Returns whether it was still queued.
    pub fn remove(&self, id: u64) -> bool {
        let mut state = self.lock();
        let before = state.jobs.len();
        state.jobs.retain(|j| j.id != id);
        let removed = state.jobs.len() != before;
        if removed {
            self.cancelled_waiting.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Jobs cancelled while they waited.
    pub fn cancelled_waiting(&self) -> u64 {
        self.cancelled_waiting.load(Ordering::Relaxed)
    }

    /// Waits for at least one job, then up to `gather` more for the batch to fill, then takes
    /// jobs in arrival order while their images fit in `max_rows` and their number in
    /// `max_jobs` (the first job is always taken). `None` once the queue is shut down and
    /// empty.
    pub fn take_batch(
        &self,
        max_rows: usize,
        max_jobs: usize,
        gather: Duration,
    ) -> Option<Vec<QueuedJob>> {
        let mut state = self.lock();
        loop {
            self.drop_cancelled(&mut state);
            if !state.jobs.is_empty() {
                break;
            }
            if state.shut_down {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let deadline = Instant::now() + gather;
        loop {
            let rows: usize = state.jobs.iter().map(|j| j.requests.len()).sum();
            let now = Instant::now();
            if rows >= max_rows
                || state.jobs.len() >= max_jobs
                || now >= deadline
                || state.shut_down
            {
                break;
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // Jobs cancelled during the window leave; if none is left, wait again.
        self.drop_cancelled(&mut state);
        if state.jobs.is_empty() {
            drop(state);
            return self.take_batch(max_rows, max_jobs, gather);
        }
        let mut batch = Vec::new();
        let mut rows = 0;
        while let Some(job) = state.jobs.front() {
            let n = job.requests.len();
            if !batch.is_empty() && (rows + n > max_rows || batch.len() >= max_jobs) {
                break;
            }
            rows += n;
            batch.push(state.jobs.pop_front().expect("front exists"));
        }
        Some(batch)
    }

    /// Removes the cancelled jobs, counting them.
    fn drop_cancelled(&self, state: &mut State) {
        let before = state.jobs.len();
        state.jobs.retain(|j| !j.is_cancelled());
        let gone = (before - state.jobs.len()) as u64;
        self.cancelled_waiting.fetch_add(gone, Ordering::Relaxed);
    }

    /// Refuses new jobs and wakes the worker; jobs already queued are still served.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.ready.notify_all();
    }
}
