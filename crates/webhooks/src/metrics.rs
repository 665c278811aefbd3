//! Per-webhook metrics: counters, gauges, rates and a latency histogram.
//!
//! They keep EMQX's invariant `matched = success + failed + dropped + queuing + inflight`:
//! an event is matched once, then ends in exactly one of the other five.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use hookmq_broker::message::now_ms;

/// Upper bounds of the latency buckets, in milliseconds (the last bucket is unbounded).
pub const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// Rate samples kept for `rate_last5m` (one per sampling interval of 5 s).
const RATE_SAMPLES: usize = 60;
/// Failures remembered for the details page.
const FAILURES_KEPT: usize = 20;

/// One failed delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    /// When, ms since the epoch.
    pub at: u64,
    /// The event's name.
    pub event: String,
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Why it failed.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

#[derive(Debug, Default)]
struct Rates {
    last_matched: u64,
    samples: VecDeque<f64>,
    current: f64,
    max: f64,
}

/// Live metrics of one webhook.
#[derive(Debug, Default)]
pub struct Metrics {
    matched: AtomicU64,
    /// Events matched and dropped in one step because the queue was full when they were
    /// emitted (the broker did not build them): one counter, read into both `matched` and
    /// `dropped.queue_full`, so the publisher pays one increment.
    skipped: AtomicU64,
    success: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped_queue_full: AtomicU64,
    /// Older than `request_ttl` before they were sent: dropped, not sent.
    dropped_expired: AtomicU64,
    /// Answered after `request_ttl`: the outcome is not counted as a success or a failure.
    late_reply: AtomicU64,
    /// Gauge: deliveries under way (including waits between retries).
    inflight: AtomicI64,
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_ms: AtomicU64,
    /// Short critical sections (a sample every 5 s, a failure now and then).
    rates: Mutex<Rates>,
    failures: Mutex<VecDeque<Failure>>,
    /// Drops and failures already told in the log's summaries (restored counters count as
    /// told). Taken every 5 s.
    summarised: Mutex<(u64, u64)>,
}

/// A copy of the metrics, as the API shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct MetricsSnapshot {
    /// Events the trigger selected.
    pub matched: u64,
    /// Delivered with a 2xx answer.
    pub success: u64,
    /// Given up (non-retryable answer, retries exhausted, or unrenderable).
    pub failed: u64,
    /// Retries made (an event retried twice counts 2).
    pub retried: u64,
    /// Dropped without delivery, all reasons.
    pub dropped: u64,
    /// Dropped because the queue was full.
    #[serde(rename = "dropped.queue_full")]
    pub dropped_queue_full: u64,
    /// Dropped because they were older than `request_ttl` before they were sent.
    #[serde(rename = "dropped.expired")]
    pub dropped_expired: u64,
    /// Answered after `request_ttl` (EMQX's `late_reply`): neither a success nor a failure.
    pub late_reply: u64,
    /// Waiting in the queue now.
    pub queuing: u64,
    /// Being delivered now.
    pub inflight: u64,
    /// Matched events per second over the last 5 s.
    pub rate: f64,
    /// Highest `rate` seen.
    pub rate_max: f64,
    /// Mean rate over the last 5 minutes.
    pub rate_last5m: f64,
    /// Request latency.
    pub latency: LatencySnapshot,
    /// The most recent failures, newest first.
    pub last_failures: Vec<Failure>,
    /// The disk buffer, for a disk-buffered webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferState>,
    /// Dead letters kept now (see `GET /webhooks/{name}/dead_letters`).
    pub dead_letters: u64,
    /// Dead letters dropped at their bound, oldest first.
    #[serde(rename = "dead_letters.dropped")]
    pub dead_letters_dropped: u64,
}

/// A disk buffer's state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct BufferState {
    /// Bytes its journal takes on disk.
    pub disk_bytes: u64,
    /// Events queued or in flight not yet on disk (written within milliseconds).
    pub unwritten: u64,
    /// Queued events kept on disk only (past `queue_capacity` in memory).
    pub on_disk_only: u64,
    /// Groups of events that could not be written (a full disk): they stay in memory only.
    pub write_errors: u64,
    /// How long events waited between happening and reaching the disk (per group written).
    pub write_window: Option<crate::queue::WriteWindow>,
}

/// Latency figures in milliseconds (estimated from the histogram's bucket bounds).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LatencySnapshot {
    /// Requests measured.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median (upper bound of its bucket).
    pub p50_ms: u64,
    /// 90th percentile.
    pub p90_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Counts per bucket, aligned with `bounds_ms` (plus one for slower).
    pub buckets: Vec<u64>,
    /// Bucket upper bounds.
    pub bounds_ms: Vec<u64>,
}

impl Metrics {
    pub(crate) fn matched(&self, count: u64) {
        self.matched.fetch_add(count, Ordering::Relaxed);
    }
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dropped_queue_full(&self, count: u64) {
        if count > 0 {
            self.dropped_queue_full.fetch_add(count, Ordering::Relaxed);
        }
    }
    /// Events dropped (queue full, or skipped while the buffer was full) and events failed
    /// for good.
    fn troubles(&self) -> (u64, u64) {
        (
            self.dropped_queue_full.load(Ordering::Relaxed)
                + self.skipped.load(Ordering::Relaxed)
                + self.dropped_expired.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
    /// Events dropped and events failed for good since the last call, with the reason of
    /// the last failure: what the log's summary lines tell.
    pub(crate) fn since_last_summary(&self) -> (u64, u64, Option<String>) {
        let now = self.troubles();
        let mut told = self.summarised.lock();
        let new = (now.0.saturating_sub(told.0), now.1.saturating_sub(told.1));
        *told = now;
        drop(told);
        let last = (new.1 > 0)
            .then(|| self.failures.lock().front().map(|f| f.reason.clone()))
            .flatten();
        (new.0, new.1, last)
    }
    /// Events delivered so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.success.load(Ordering::Relaxed)
    }
    pub(crate) fn success(&self) {
        self.success.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn expired(&self) {
        self.dropped_expired.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn late_reply(&self) {
        self.late_reply.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Events in flight now.
    pub(crate) fn in_flight(&self) -> u64 {
        u64::try_from(self.inflight.load(Ordering::Relaxed)).unwrap_or(0)
    }

    pub(crate) fn start(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn finish(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, failure: Failure) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock();
        if failures.len() >= FAILURES_KEPT {
            failures.pop_back();
        }
        failures.push_front(failure);
    }

    pub(crate) fn latency(&self, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Records a rate sample over `interval`; called every 5 s.
    pub(crate) fn sample_rate(&self, interval: Duration) {
        let matched = self.matched.load(Ordering::Relaxed) + self.skipped.load(Ordering::Relaxed);
        let mut rates = self.rates.lock();
        let delta = matched.saturating_sub(rates.last_matched);
        rates.last_matched = matched;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = delta as f64 / interval.as_secs_f64().max(0.001);
        rates.current = rate;
        rates.max = rates.max.max(rate);
        if rates.samples.len() >= RATE_SAMPLES {
            rates.samples.pop_front();
        }
        rates.samples.push_back(rate);
    }

    /// Zeroes the counters. `matched` restarts at what is still queued or in flight, so the
    /// invariant holds after the reset too.
    pub(crate) fn reset(&self, queuing: u64) {
        let inflight = u64::try_from(self.inflight.load(Ordering::Relaxed)).unwrap_or(0);
        for counter in [
            &self.success,
            &self.failed,
            &self.retried,
            &self.dropped_queue_full,
            &self.dropped_expired,
            &self.late_reply,
            &self.skipped,
            &self.latency_sum_ms,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        for bucket in &self.latency {
            bucket.store(0, Ordering::Relaxed);
        }
        self.matched.store(queuing + inflight, Ordering::Relaxed);
        *self.rates.lock() = Rates {
            last_matched: queuing + inflight,
            ..Rates::default()
        };
        self.failures.lock().clear();
        *self.summarised.lock() = (0, 0);
    }

    /// The metrics now, with `queuing` from the queue.
    #[must_use]
    pub fn snapshot(&self, queuing: usize) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let buckets: Vec<u64> = self.latency.iter().map(load).collect();
        let count: u64 = buckets.iter().sum();
        let percentile = |p: f64| {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let rank = ((count as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX);
                }
            }
            0
        };
        let rates = self.rates.lock();
        #[allow(clippy::cast_precision_loss)]
        let last5m = if rates.samples.is_empty() {
            0.0
        } else {
            rates.samples.iter().sum::<f64>() / rates.samples.len() as f64
        };
        let skipped = load(&self.skipped);
        let dropped_queue_full = load(&self.dropped_queue_full) + skipped;
        #[allow(clippy::cast_precision_loss)]
        let mean_ms = if count == 0 {
            0.0
        } else {
            load(&self.latency_sum_ms) as f64 / count as f64
        };
        MetricsSnapshot {
            matched: load(&self.matched) + skipped,
            success: load(&self.success),
            failed: load(&self.failed),
            retried: load(&self.retried),
            dropped: dropped_queue_full + load(&self.dropped_expired),
            dropped_queue_full,
            dropped_expired: load(&self.dropped_expired),
            late_reply: load(&self.late_reply),
            queuing: queuing as u64,
            inflight: u64::try_from(self.inflight.load(Ordering::Relaxed)).unwrap_or(0),
            rate: rates.current,
            rate_max: rates.max,
            rate_last5m: last5m,
            latency: LatencySnapshot {
                count,
                mean_ms,
                p50_ms: if count == 0 { 0 } else { percentile(0.5) },
                p90_ms: if count == 0 { 0 } else { percentile(0.9) },
                p99_ms: if count == 0 { 0 } else { percentile(0.99) },
                buckets,
                bounds_ms: LATENCY_BUCKETS_MS.to_vec(),
            },
            last_failures: self.failures.lock().iter().cloned().collect(),
            buffer: None,
            dead_letters: 0,
            dead_letters_dropped: 0,
        }
    }
}

/// The counters of a webhook as saved under its directory, so they survive a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SavedMetrics {
    /// Delivered.
    pub success: u64,
    /// Failed.
    pub failed: u64,
    /// Retries made.
    pub retried: u64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Dropped as older than `request_ttl`.
    pub dropped_expired: u64,
    /// Answered after `request_ttl`.
    pub late_reply: u64,
    /// Latency histogram counts, one per bucket.
    pub latency: Vec<u64>,
    /// Sum of the latencies, ms.
    pub latency_sum_ms: u64,
    /// Highest rate seen.
    pub rate_max: f64,
    /// The most recent failures, newest first.
    pub last_failures: Vec<Failure>,
}

impl Metrics {
    /// What to save.
    #[must_use]
    pub fn saved(&self) -> SavedMetrics {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SavedMetrics {
            success: load(&self.success),
            failed: load(&self.failed),
            retried: load(&self.retried),
            dropped_queue_full: load(&self.dropped_queue_full) + load(&self.skipped),
            dropped_expired: load(&self.dropped_expired),
            late_reply: load(&self.late_reply),
            latency: self.latency.iter().map(load).collect(),
            latency_sum_ms: load(&self.latency_sum_ms),
            rate_max: self.rates.lock().max,
            last_failures: self.failures.lock().iter().cloned().collect(),
        }
    }

    /// Metrics that go on from `saved`. Events still queued are matched again as they are
    /// put back in the queue, so `matched` starts at the events that reached their end.
    #[must_use]
    pub fn restored(saved: &SavedMetrics) -> Self {
        let metrics = Self::default();
        let store = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        store(&metrics.success, saved.success);
        store(&metrics.failed, saved.failed);
        store(&metrics.retried, saved.retried);
        store(&metrics.dropped_queue_full, saved.dropped_queue_full);
        store(&metrics.dropped_expired, saved.dropped_expired);
        store(&metrics.late_reply, saved.late_reply);
        store(&metrics.latency_sum_ms, saved.latency_sum_ms);
        for (bucket, count) in metrics.latency.iter().zip(&saved.latency) {
            store(bucket, *count);
        }
        let ended = saved.success
            + saved.failed
            + saved.dropped_queue_full
            + saved.dropped_expired
            + saved.late_reply;
        store(&metrics.matched, ended);
        {
            let mut rates = metrics.rates.lock();
            rates.max = saved.rate_max;
            rates.last_matched = ended;
        }
        metrics
            .failures
            .lock()
            .extend(saved.last_failures.iter().take(FAILURES_KEPT).cloned());
        *metrics.summarised.lock() = metrics.troubles();
        metrics
    }
}

/// A failure record stamped now.
pub(crate) fn failure(event: &str, status: Option<u16>, reason: String, attempts: u32) -> Failure {
    Failure {
        at: now_ms(),
        event: event.to_owned(),
        status,
        reason,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_tell_each_drop_once_and_not_what_was_restored() {
        let metrics = Metrics::default();
        metrics.dropped_queue_full(3);
        assert_eq!(metrics.since_last_summary(), (3, 0, None));
        assert_eq!(metrics.since_last_summary(), (0, 0, None));
        let restored = Metrics::restored(&metrics.saved());
        assert_eq!(
            restored.since_last_summary(),
            (0, 0, None),
            "told before the restart"
        );
        restored.dropped_queue_full(2);
        restored.reset(0);
        restored.dropped_queue_full(1);
        assert_eq!(
            restored.since_last_summary(),
            (1, 0, None),
            "counted from the reset"
        );
    }

    #[test]
    fn percentiles_and_reset() {
        let metrics = Metrics::default();
        for ms in [1, 1, 3, 40, 900] {
            metrics.matched(1);
            metrics.latency(Duration::from_millis(ms));
            metrics.success();
        }
        let snap = metrics.snapshot(0);
        assert_eq!(snap.latency.count, 5);
        assert_eq!(snap.latency.p50_ms, 5);
        assert_eq!(snap.latency.p99_ms, 1000);
        assert_eq!(snap.matched, snap.success);
        // Skipped events count as matched and as dropped (queue full), once each.
        metrics.skipped();
        metrics.skipped();
        let snap = metrics.snapshot(0);
        assert_eq!(
            (snap.matched, snap.dropped, snap.dropped_queue_full),
            (7, 2, 2)
        );
        assert_eq!(
            snap.matched,
            snap.success + snap.failed + snap.dropped + snap.queuing + snap.inflight
        );
        metrics.matched(1);
        metrics.reset(1);
        let snap = metrics.snapshot(1);
        assert_eq!((snap.matched, snap.success, snap.queuing), (1, 0, 1));
    }

    #[test]
    fn saved_counters_come_back_with_the_books_balanced() {
        let metrics = Metrics::default();
        metrics.matched(6);
        metrics.success();
        metrics.success();
        metrics.latency(Duration::from_millis(3));
        metrics.failed(failure("message.publish", Some(400), "bad".into(), 1));
        metrics.skipped();
        metrics.retried();
        let saved = metrics.saved();
        let json = serde_json::to_string(&saved).expect("serializes");
        let back: SavedMetrics = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, saved);
        let restored = Metrics::restored(&back);
        // Three events were still queued: they are matched again as they are put back.
        restored.matched(3);
        let snap = restored.snapshot(3);
        assert_eq!(
            (
                snap.success,
                snap.failed,
                snap.dropped,
                snap.retried,
                snap.matched
            ),
            (2, 1, 1, 1, 7)
        );
        assert_eq!(snap.latency.count, 1);
        assert_eq!(snap.last_failures[0].status, Some(400));
        assert_eq!(
            snap.matched,
            snap.success + snap.failed + snap.dropped + snap.queuing + snap.inflight
        );
    }

    #[test]
    fn rates() {
        let metrics = Metrics::default();
        for _ in 0..50 {
            metrics.matched(1);
        }
        metrics.sample_rate(Duration::from_secs(5));
        metrics.sample_rate(Duration::from_secs(5));
        let snap = metrics.snapshot(0);
        assert!((snap.rate - 0.0).abs() < f64::EPSILON);
        assert!((snap.rate_max - 10.0).abs() < f64::EPSILON);
        assert!((snap.rate_last5m - 5.0).abs() < f64::EPSILON);
    }
}
