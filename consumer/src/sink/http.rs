//! The HTTP sink: each batch is one `POST` of NDJSON lines.
//!
//! One call is one attempt ([`super::retry`] repeats it). 429, 5xx, 408,
//! timeouts and connection errors mean the endpoint cannot take writes now;
//! so do 401, 403, 404, 405 and 407, which say nothing about the records
//! (wrong URL or credentials: fixed outside the pod, then the writes go on).
//! Any other 4xx (400, 413, 422, ...) refuses the batch's content: the
//! delivery protocol splits the batch to find the records it refuses.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use url::Url;

use super::{HttpOptions, WriteError};
use crate::buffer::Batch;
use crate::{Error, Result};

/// Longest part of an endpoint's answer kept in a refusal.
const ANSWER_BYTES: usize = 1024;

/// Capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}

impl HttpSink {
    pub fn new(url: Url, options: &HttpOptions) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::Config(format!("building HTTP client: {e}")))?;
        Ok(HttpSink { url, client })
    }

    pub fn describe(&self) -> String {
        format!("http {}", self.shown())
    }

    /// The endpoint's URL without credentials.
    fn shown(&self) -> Url {
        let mut shown = self.url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        shown
    }

    /// One `POST` of the batch, with its offset ranges in
    /// `X-Millpond-Offsets` (`partition:first-last,...`) for deduplication.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
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
        let offsets = HeaderValue::from_str(&ranges.join(","))
            .map_err(|e| WriteError::refused(None, format!("offset header: {e}")))?;
        let sent = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header("X-Millpond-Topic", batch.topic.as_ref())
            .header("X-Millpond-Offsets", offsets)
            .body(body)
            .send()
            .await;
        let resp =
            sent.map_err(|e| WriteError::unavailable(format!("POST {}: {e}", self.shown())))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = resp.text().await.unwrap_or_default();
        Err(classify(
            status,
            retry_after,
            self.shown().as_str(),
            &answer,
        ))
    }
}

/// What a non-2xx answer means for the batch.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    sink: &str,
    answer: &str,
) -> WriteError {
    let mut answer = answer.trim().to_string();
    if answer.len() > ANSWER_BYTES {
        let mut cut = ANSWER_BYTES;
        while !answer.is_char_boundary(cut) {
            cut -= 1;
        }
        answer.truncate(cut);
    }
    let said = if answer.is_empty() {
        format!("POST {sink}: HTTP {status}")
    } else {
        format!("POST {sink}: HTTP {status}: {answer}")
    };
    let about_the_endpoint = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );
    if status.is_client_error() && !about_the_endpoint {
        WriteError::refused(Some(status.as_u16()), said)
    } else {
        WriteError::Unavailable {
            message: said,
            retry_after,
        }
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
    fn refusals_are_told_apart_from_an_endpoint_that_cannot_take_writes() {
        let unavailable = |status| {
            matches!(
                classify(status, None, "x", ""),
                WriteError::Unavailable { .. }
            )
        };
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
        ] {
            assert!(unavailable(status), "{status}");
        }
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(3)),
                "x",
                ""
            ),
            WriteError::Unavailable {
                message: "POST x: HTTP 429 Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ] {
            assert_eq!(
                classify(status, None, "x", " field id is missing\n"),
                WriteError::Refused {
                    status: Some(status.as_u16()),
                    message: format!("POST x: HTTP {status}: field id is missing")
                }
            );
        }
        let long = "é".repeat(ANSWER_BYTES);
        let WriteError::Refused { message, .. } =
            classify(StatusCode::BAD_REQUEST, None, "x", &long)
        else {
            panic!("a 400 refuses the batch")
        };
        assert!(message.len() <= ANSWER_BYTES + 40, "{}", message.len());
    }
}
