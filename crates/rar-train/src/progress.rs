//! What a person watching a run sees: a metrics line every `log_every` steps and, on a
//! terminal, a live progress bar.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Averages over the last logging window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetrics {
    /// Optimizer steps done so far (the last step of the window is `step − 1`).
    pub step: u64,
    /// Mean training loss over the window.
    pub loss: f64,
    /// Mean token accuracy over the window.
    pub accuracy: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
    /// Random-order ratio `r` of the window's last step.
    pub random_ratio: f64,
    /// Mean pre-clip global gradient norm over the window.
    pub grad_norm: f64,
    /// Training throughput over the window (image tokens per second).
    pub tokens_per_sec: f64,
}

impl std::fmt::Display for StepMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {:>6} | loss {:.4} | acc {:.3} | lr {:.3e} | r {:.3} | grad_norm {:.3} | {:.0} tok/s",
            self.step,
            self.loss,
            self.accuracy,
            self.lr,
            self.random_ratio,
            self.grad_norm,
            self.tokens_per_sec
        )
    }
}

/// Sums of a logging window.
#[derive(Debug, Default)]
pub(crate) struct Window {
    steps: u64,
    loss: f64,
    accuracy: f64,
    grad_norm: f64,
    tokens: usize,
    started: Option<Instant>,
}

impl Window {
    /// Notes the start of a step (the window's clock starts with its first step).
    pub fn start_step(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    /// Adds a finished step.
    pub fn add(&mut self, loss: f64, accuracy: f64, grad_norm: f64, tokens: usize) {
        self.steps += 1;
        self.loss += loss;
        self.accuracy += accuracy;
        self.grad_norm += grad_norm;
        self.tokens += tokens;
    }

    /// The window's averages after `done` steps, and a fresh window.
    pub fn close(&mut self, done: u64, lr: f64, random_ratio: f64) -> StepMetrics {
        let n = self.steps.max(1) as f64;
        let elapsed = self
            .started
            .take()
            .map_or(1e-9, |s| s.elapsed().as_secs_f64().max(1e-9));
        let metrics = StepMetrics {
            step: done,
            loss: self.loss / n,
            accuracy: self.accuracy / n,
            lr,
            random_ratio,
            grad_norm: self.grad_norm / n,
            tokens_per_sec: self.tokens as f64 / elapsed,
        };
        *self = Self::default();
        metrics
    }
}

/// What the training loop reports while it runs. Every method has a default that ignores
/// the event; a closure `FnMut(&StepMetrics)` is an observer of the metrics lines.
pub trait RunObserver {
    /// Optimizer step `done − 1` finished (called every step).
    fn step_done(&mut self, done: u64, total: u64) {
        let _ = (done, total);
    }

    /// The averages of the last `log_every` steps.
    fn metrics(&mut self, metrics: &StepMetrics) {
        let _ = metrics;
    }

    /// A checkpoint or a preview was written.
    fn saved(&mut self, what: &str, path: &Path) {
        let _ = (what, path);
    }
}

impl<F: FnMut(&StepMetrics)> RunObserver for F {
    fn metrics(&mut self, metrics: &StepMetrics) {
        self(metrics)
    }
}

/// Progress on the console: on a terminal a live bar (steps, rate, time left, the latest
/// loss) with the metrics lines printed above it; otherwise (CI, a log file) the metrics
/// lines and the saved files, one per line on stdout.
pub struct ConsoleProgress {
    bar: ProgressBar,
}

impl ConsoleProgress {
    /// A display for a run of `total` steps that starts after `done` steps; the bar is drawn
    /// only when stderr is a terminal.
    pub fn new(done: u64, total: u64) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] step {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_position(done);
        Self { bar }
    }

    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}

impl RunObserver for ConsoleProgress {
    fn step_done(&mut self, done: u64, _total: u64) {
        self.bar.set_position(done);
    }

    fn metrics(&mut self, metrics: &StepMetrics) {
        self.bar.set_message(format!("loss {:.4}", metrics.loss));
        self.line(metrics.to_string());
    }

    fn saved(&mut self, what: &str, path: &Path) {
        self.line(format!("wrote {what} {}", path.display()));
    }
}

impl Drop for ConsoleProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
