//! The server's counters: requests by status, images per second, latency quantiles — as JSON
//! for the page (`/v1/metrics`) and in Prometheus' text format (`/metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::EngineSnapshot;

/// Latencies kept for the quantiles (the most recent ones).
const LATENCY_WINDOW: usize = 2048;
/// The window of the recent images/s figure.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Counters shared by the handlers.
pub struct Metrics {
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    responses: BTreeMap<u16, u64>,
    images: u64,
    latencies: VecDeque<f64>,
    completions: VecDeque<(Instant, u64)>,
}

/// Request latency quantiles over the most recent completed generations, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Generations the quantiles are taken over.
    pub samples: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// A snapshot of every counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Requests answered, by HTTP status.
    pub responses: BTreeMap<u16, u64>,
    /// Images generated and sent.
    pub images: u64,
    /// Images per second over the last minute.
    pub images_per_s_1m: f64,
    /// Images per second since the start.
    pub images_per_s: f64,
    /// Latency of completed generations (queueing + sampling + encoding).
    pub latency_s: Option<Latency>,
    /// The engine: queue depth, running images, jobs.
    pub engine: EngineSnapshot,
}

/// The `q`-quantile of sorted values (linear interpolation between order statistics).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Counters starting now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an answered request.
    pub fn record_response(&self, status: u16) {
        *self.lock().responses.entry(status).or_default() += 1;
    }

    /// Records a completed generation of `images` images that took `latency`.
    pub fn record_generation(&self, images: usize, latency: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.images += images as u64;
        if inner.latencies.len() == LATENCY_WINDOW {
            inner.latencies.pop_front();
        }
        inner.latencies.push_back(latency.as_secs_f64());
        inner.completions.push_back((now, images as u64));
        while inner
            .completions
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            inner.completions.pop_front();
        }
    }

    /// Every counter now, with the engine's.
    pub fn report(&self, engine: EngineSnapshot) -> MetricsReport {
        let now = Instant::now();
        let inner = self.lock();
        let uptime = now.duration_since(self.started).as_secs_f64();
        let recent: u64 = inner
            .completions
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        let window = uptime.clamp(1e-9, RATE_WINDOW.as_secs_f64());
        let mut sorted: Vec<f64> = inner.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let latency_s = (!sorted.is_empty()).then(|| Latency {
            samples: sorted.len(),
            p50: quantile(&sorted, 0.5),
            p90: quantile(&sorted, 0.9),
            p99: quantile(&sorted, 0.99),
        });
        MetricsReport {
            uptime_s: uptime,
            responses: inner.responses.clone(),
            images: inner.images,
            images_per_s_1m: recent as f64 / window,
            images_per_s: inner.images as f64 / uptime.max(1e-9),
            latency_s,
            engine,
        }
    }
}

impl MetricsReport {
    /// The report in Prometheus' text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let e = &self.engine;
        metric(
            "rar_http_responses_total",
            "counter",
            "HTTP responses by status",
            &self
                .responses
                .iter()
                .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n as f64))
                .collect::<Vec<_>>(),
        );
        metric(
            "rar_images_total",
            "counter",
            "images generated",
            &one(self.images as f64),
        );
        metric(
            "rar_images_per_second",
            "gauge",
            "images per second over the last minute",
            &one(self.images_per_s_1m),
        );
        if let Some(l) = &self.latency_s {
            metric(
                "rar_generation_latency_seconds",
                "summary",
                "latency of recent generations",
                &[
                    ("{quantile=\"0.5\"}".into(), l.p50),
                    ("{quantile=\"0.9\"}".into(), l.p90),
                    ("{quantile=\"0.99\"}".into(), l.p99),
                ],
            );
        }
        metric(
            "rar_queue_depth",
            "gauge",
            "jobs waiting",
            &one(e.queue_depth as f64),
        );
        metric(
            "rar_running_images",
            "gauge",
            "images in the running batch",
            &one(e.running_images as f64),
        );
        metric(
            "rar_batches_total",
            "counter",
            "batches run",
            &one(e.batches as f64),
        );
        metric(
            "rar_jobs_total",
            "counter",
            "jobs by outcome",
            &[
                ("{outcome=\"submitted\"}".into(), e.jobs_submitted as f64),
                ("{outcome=\"rejected\"}".into(), e.jobs_rejected as f64),
                ("{outcome=\"completed\"}".into(), e.jobs_completed as f64),
                ("{outcome=\"cancelled\"}".into(), e.jobs_cancelled as f64),
                ("{outcome=\"failed\"}".into(), e.jobs_failed as f64),
            ],
        );
        metric(
            "rar_uptime_seconds",
            "gauge",
            "seconds since start",
            &one(self.uptime_s),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert!((quantile(&v, 0.9) - 4.6).abs() < 1e-12);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn reports_count_images_and_responses() {
        let m = Metrics::new();
        m.record_response(200);
        m.record_response(200);
        m.record_response(429);
        m.record_generation(3, Duration::from_millis(100));
        m.record_generation(1, Duration::from_millis(300));
        let r = m.report(EngineSnapshot::default());
        assert_eq!(r.responses[&200], 2);
        assert_eq!(r.images, 4);
        let l = r.latency_s.clone().unwrap();
        assert!((l.p50 - 0.2).abs() < 1e-9, "{l:?}");
        let text = r.prometheus();
        assert!(
            text.contains("rar_http_responses_total{status=\"429\"} 1"),
            "{text}"
        );
        assert!(text.contains("rar_images_total 4"), "{text}");
    }
}
