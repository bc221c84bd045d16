//! The HTTP sink: each batch is one `POST` of NDJSON lines.
//!
//! 429, 5xx, timeouts and connection errors are retried with capped
//! exponential backoff and jitter (honouring `Retry-After` on 429, within the
//! cap). Any other answer, or running out of retries, is a permanent error: the
//! process then stops without committing the batch.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use url::Url;

use super::HttpOptions;
use crate::buffer::Batch;
use crate::{Error, Result};

/// Capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Delay before retry number `attempt` (0-based): half of
    /// `min(cap, base * 2^attempt)` fixed, the other half random.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let half = ceiling / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

/// Posts batches to one URL.
pub struct HttpSink {
    url: Url,
    client: reqwest::Client,
    options: HttpOptions,
}

enum Outcome {
    Done,
    Retry(String, Option<Duration>),
    Fail(String),
}

impl HttpSink {
    pub fn new(url: Url, options: &HttpOptions) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::Config(format!("building HTTP client: {e}")))?;
        Ok(HttpSink {
            url,
            client,
            options: options.clone(),
        })
    }

    pub fn describe(&self) -> String {
        let mut shown = self.url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        format!("http {shown}")
    }

    pub async fn write(&self, batch: Arc<Batch>) -> Result<()> {
        let mut body = Vec::with_capacity(batch.bytes() as usize);
        let mut ranges = Vec::new();
        for chunk in &batch.chunks {
            for segment in &chunk.segments {
                body.extend_from_slice(segment);
            }
            ranges.push(format!(
                "{}:{}-{}",
                chunk.partition, chunk.first_offset, chunk.last_offset
            ));
        }
        if body.is_empty() {
            return Ok(());
        }
        let body = bytes::Bytes::from(body);
        let offsets = HeaderValue::from_str(&ranges.join(","))
            .map_err(|e| Error::Sink(format!("offset header: {e}")))?;
        let mut attempt = 0;
        loop {
            let outcome = match self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/x-ndjson")
                .header("X-Millpond-Topic", batch.topic.as_ref())
                .header("X-Millpond-Offsets", offsets.clone())
                .body(body.clone())
                .send()
                .await
            {
                Ok(resp) => classify(resp.status(), resp.headers().get(RETRY_AFTER)),
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    Outcome::Retry(format!("{e}"), None)
                }
                Err(e) => Outcome::Fail(format!("{e}")),
            };
            match outcome {
                Outcome::Done => return Ok(()),
                Outcome::Fail(why) => {
                    return Err(Error::Sink(format!(
                        "POST {}: {why} (not retryable)",
                        self.describe()
                    )))
                }
                Outcome::Retry(why, _) if attempt >= self.options.max_retries => {
                    return Err(Error::Sink(format!(
                        "POST {}: {why}, giving up after {} attempts",
                        self.describe(),
                        attempt + 1
                    )))
                }
                Outcome::Retry(why, retry_after) => {
                    let backoff = self.options.backoff.delay(attempt, &mut rand::rng());
                    let delay = retry_after.map_or(backoff, |r| r.min(self.options.backoff.cap));
                    tracing::warn!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, reason = %why, batch = batch.id, "sink write failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<&HeaderValue>) -> Outcome {
    if status.is_success() {
        Outcome::Done
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let after = retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Outcome::Retry(format!("HTTP {status}"), after)
    } else {
        Outcome::Fail(format!("HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = rand::rng();
        for attempt in 0..40 {
            let d = b.delay(attempt, &mut rng);
            let ceiling = Duration::from_millis(100 * (1u64 << attempt.min(20))).min(b.cap);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        assert!(matches!(classify(StatusCode::OK, None), Outcome::Done));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, None),
            Outcome::Retry(..)
        ));
        let after = HeaderValue::from_static("3");
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(&after)),
            Outcome::Retry(_, Some(d)) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, None),
            Outcome::Fail(_)
        ));
    }
}
