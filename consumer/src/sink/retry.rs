//! Writing a batch until the sink takes it: a failed attempt is retried with
//! capped exponential backoff and jitter, without end unless a give-up time is
//! set. The sink's health (up, last success, last error, how long it has been
//! failing) is kept for the metrics and `/healthz` stays green meanwhile: the
//! loop is alive, it is the sink that is down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Backoff, Sink, WriteError};
use crate::buffer::Batch;
use crate::delivery::Written;
use crate::metrics::Metrics;

/// How failed writes are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Give up (the process exits 1) after failing this long; `None`: never.
    pub give_up_after: Option<Duration>,
}

/// The sink's health as the writes see it.
#[derive(Clone)]
pub struct SinkHealth {
    metrics: Metrics,
    failing_since: Arc<Mutex<Option<Instant>>>,
}

impl SinkHealth {
    pub fn new(metrics: Metrics) -> Self {
        metrics.sink_up.set(1);
        SinkHealth {
            metrics,
            failing_since: Arc::new(Mutex::new(None)),
        }
    }

    /// The sink answered (took the batch, or refused its content).
    fn answered(&self) {
        *self.failing_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.metrics.sink_up.set(1);
        self.metrics.sink_down_seconds.set(0.0);
        self.metrics
            .sink_last_success_seconds
            .set(now.as_secs_f64());
    }

    fn failed(&self, error: &str) {
        self.failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        self.metrics.sink_up.set(0);
        self.metrics.sink_retries_total.inc();
        self.metrics.set_sink_error(error);
        self.refresh();
    }

    /// Updates how long the sink has been failing (called every loop turn).
    pub fn refresh(&self) {
        let since = *self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        let down = since.map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.metrics.sink_down_seconds.set(down);
    }
}

/// Writes `batch` until the sink takes it, refuses it, or the give-up time
/// passes.
pub async fn write(
    sink: &Sink,
    batch: Arc<Batch>,
    policy: RetryPolicy,
    health: &SinkHealth,
) -> Written {
    let mut attempt = 0u32;
    let started = Instant::now();
    loop {
        let error = match sink.write(batch.clone()).await {
            Ok(()) => {
                health.answered();
                return Written::Done;
            }
            Err(WriteError::Refused { status, message }) => {
                health.answered();
                return Written::Refused { status, message };
            }
            Err(WriteError::Unavailable {
                message,
                retry_after,
            }) => (message, retry_after),
        };
        let (message, retry_after) = error;
        health.failed(&message);
        if let Some(limit) = policy.give_up_after {
            if started.elapsed() >= limit {
                return Written::GaveUp(format!(
                    "{message}; giving up after {} attempts in {:.0} s (SINK_GIVE_UP_AFTER_MS)",
                    attempt + 1,
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        let backoff = policy.backoff.delay(attempt, &mut rand::rng());
        let delay = retry_after.map_or(backoff, |r| r.min(policy.backoff.cap));
        tracing::warn!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %message, batch = batch.id, "sink write failed, retrying");
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}
