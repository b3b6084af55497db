//! What a caller gets back for a submitted job: a [`Ticket`] with the progress events and the
//! final tokens. Dropping the ticket cancels the job — it leaves the queue, or its rows leave
//! the running batch at the next step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use crate::error::EngineError;
use crate::queue::JobQueue;

/// A partial result: the raster-order tokens drawn so far for each image of the job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Tokens drawn per image so far (`0 < steps ≤ N`).
    pub steps: usize,
    /// Tokens per image (`N`).
    pub num_tokens: usize,
    /// One row of `steps` tokens per image.
    pub tokens: Vec<Vec<u32>>,
}

/// The outcome of a job: `N` raster-order tokens per image, or why it failed.
pub type JobResult = Result<Vec<Vec<u32>>, EngineError>;

/// A submitted job. Read progress with [`Ticket::try_progress`] and the result with
/// [`Ticket::wait`]; drop it to cancel.
pub struct Ticket {
    pub(crate) id: u64,
    pub(crate) cancelled: Arc<AtomicBool>,
    pub(crate) queue: Arc<JobQueue>,
    pub(crate) progress: Receiver<JobEvent>,
    pub(crate) result: Receiver<JobResult>,
}

impl Ticket {
    /// The engine's id of this job.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The newest progress event not yet read, if any (older unread ones are skipped: a slow
    /// reader never holds the engine back, it just sees fewer frames).
    pub fn try_progress(&self) -> Option<JobEvent> {
        let mut newest = None;
        loop {
            match self.progress.try_recv() {
                Ok(event) => newest = Some(event),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return newest,
            }
        }
    }

    /// Waits up to `timeout` for the next progress event.
    pub fn next_progress(&self, timeout: Duration) -> Option<JobEvent> {
        self.progress.recv_timeout(timeout).ok()
    }

    /// Waits for the result, or returns `None` after `timeout` (the job keeps running).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<JobResult> {
        match self.result.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(EngineError::Stopped)),
        }
    }

    /// Waits for the result.
    pub fn wait(self) -> JobResult {
        self.result.recv().unwrap_or(Err(EngineError::Stopped))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
        self.queue.remove(self.id);
    }
}
