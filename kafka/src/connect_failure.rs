//! Why a Kafka client could not talk to the brokers, told apart from what
//! librdkafka reports through its error callback, so that the pod's exit
//! message names the cause a person has to fix: the network, TLS, or the
//! credentials. [`FailureCapture`] is the client context that keeps those
//! reports; the pod's start-up probe and the operator's observer use it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

use crate::tls_check::{self, CertificateFinding};

/// The cause of a failed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// No answer: wrong address, broker down, network.
    Unreachable,
    /// The TLS handshake failed: untrusted certificate, name mismatch,
    /// missing or refused client certificate.
    Tls,
    /// The brokers refused the SASL credentials.
    Authentication,
}

impl ConnectFailure {
    /// The cause a librdkafka error reason names, e.g. `SASL authentication
    /// error: ...` or `SSL handshake failed: ... certificate verify failed`.
    pub fn from_reason(reason: &str) -> Self {
        let r = reason.to_ascii_lowercase();
        if r.contains("sasl authentication error") || r.contains("authentication failed") {
            ConnectFailure::Authentication
        } else if r.contains("ssl handshake failed")
            || r.contains("certificate verify failed")
            || r.contains("ssl routines")
        {
            ConnectFailure::Tls
        } else {
            ConnectFailure::Unreachable
        }
    }

    /// What to check for this cause.
    fn hint(self, reason: &str) -> &'static str {
        match self {
            ConnectFailure::Authentication => {
                "check the SASL mechanism, username and password (kafka.sasl)"
            }
            ConnectFailure::Tls if reason.contains("certificate verify failed") => {
                "the brokers' certificate is not signed by the trusted CA, or does not name the address connected to (check kafka.tls.caSecretRef / ssl.ca.location and the bootstrap address)"
            }
            ConnectFailure::Tls => {
                "check the CA, the client certificate and key (kafka.tls), and that the listener speaks TLS"
            }
            ConnectFailure::Unreachable => "check the bootstrap address and that the brokers run",
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectFailure::Unreachable => "cannot reach Kafka",
            ConnectFailure::Tls => "TLS handshake with Kafka failed",
            ConnectFailure::Authentication => {
                "Kafka refused the credentials (authentication failed)"
            }
        })
    }
}

/// The message for a connection to `servers` that failed, from the last
/// error reason librdkafka reported (if any).
pub fn describe(servers: &str, last_reason: Option<&str>) -> String {
    compose(servers, last_reason, None)
}

/// Like [`describe`]; when librdkafka only says the brokers' certificate
/// failed verification, a handshake of our own with the client's CA
/// (`properties`) tells whether the chain or the name failed. Blocking (up
/// to `timeout`).
pub fn diagnose(
    servers: &str,
    last_reason: Option<&str>,
    properties: &BTreeMap<String, String>,
    timeout: Duration,
) -> (ConnectFailure, String) {
    let reason = last_reason.unwrap_or("");
    let cause = ConnectFailure::from_reason(reason);
    let finding = (cause == ConnectFailure::Tls && reason.contains("certificate verify failed"))
        .then(|| tls_check::check(servers, properties, timeout))
        .flatten();
    (cause, compose(servers, last_reason, finding))
}

fn compose(
    servers: &str,
    last_reason: Option<&str>,
    finding: Option<CertificateFinding>,
) -> String {
    let reason = last_reason.unwrap_or("");
    let cause = ConnectFailure::from_reason(reason);
    let mut message = match finding {
        Some(finding) => format!("{cause} at {servers}: {finding}"),
        None => format!("{cause} at {servers}: {}", cause.hint(reason)),
    };
    if !reason.is_empty() {
        message.push_str(&format!(" (librdkafka: {reason})"));
    }
    message
}

/// A client context that keeps the last connection failure librdkafka
/// reported, which tells why it failed (TLS, credentials, network).
/// librdkafka queues these as logs and errors on the main queue, served by
/// polling the client.
/// With `statistics.interval.ms` set it also keeps librdkafka's latest
/// statistics (requests sent per broker and type, for benchmarks).
#[derive(Default)]
pub struct FailureCapture {
    last: Mutex<Option<(Instant, String)>>,
    statistics: Mutex<Option<Statistics>>,
}

impl FailureCapture {
    /// Keeps `reason` unless it only says "unreachable" (e.g. `1/1 brokers
    /// are down`) after a reason that named TLS or the credentials.
    pub fn remember(&self, reason: &str) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let named = last
            .as_ref()
            .is_some_and(|(_, r)| ConnectFailure::from_reason(r) != ConnectFailure::Unreachable);
        if !named || ConnectFailure::from_reason(reason) != ConnectFailure::Unreachable {
            *last = Some((Instant::now(), reason.to_string()));
        }
    }

    /// The latest statistics librdkafka emitted, if enabled.
    pub fn statistics(&self) -> Option<Statistics> {
        self.statistics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last failure reported.
    pub fn last_reason(&self) -> Option<String> {
        self.last_reason_within(None)
    }

    /// The last failure reported, if it is younger than `age` (`None`: any).
    pub fn last_reason_within(&self, age: Option<Duration>) -> Option<String> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, _)| age.is_none_or(|age| at.elapsed() <= age))
            .map(|(_, reason)| reason.clone())
    }
}

impl ClientContext for FailureCapture {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(facility = fac, message, "kafka client");
        }
        if fac == "FAIL" {
            self.remember(message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka client error");
        self.remember(reason);
    }

    fn stats(&self, statistics: Statistics) {
        *self
            .statistics
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(statistics);
    }
}

impl ConsumerContext for FailureCapture {}

/// Serves what a client queued on its main queue (errors, logs,
/// statistics): everything queued now, then what arrives within `wait`.
/// librdkafka reports a failed connection there, so a caller that saw a
/// request fail waits a moment for the report that says why.
pub fn serve_events<C: ConsumerContext>(consumer: &BaseConsumer<C>, wait: Duration) {
    // `poll` serves one event per call and answers `None` both for "served
    // one" and "none left"; an empty queue answers at once.
    for _ in 0..100 {
        let _ = consumer.poll(Duration::ZERO);
    }
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_told_apart_by_what_librdkafka_reports() {
        let cases = [
            ("sasl_ssl://k:9097/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 341ms in state AUTH_REQ)", ConnectFailure::Authentication),
            ("ssl://k:9095/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 4ms in state SSL_HANDSHAKE)", ConnectFailure::Tls),
            ("ssl://k:9096/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42", ConnectFailure::Tls),
            ("k:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)", ConnectFailure::Unreachable),
            ("", ConnectFailure::Unreachable),
        ];
        for (reason, cause) in cases {
            assert_eq!(ConnectFailure::from_reason(reason), cause, "{reason}");
        }
    }

    #[test]
    fn the_message_names_the_cause_the_address_and_what_to_check() {
        let m = describe(
            "k:9095",
            Some("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"),
        );
        assert!(m.starts_with("TLS handshake with Kafka failed at k:9095: the brokers' certificate is not signed by the trusted CA"), "{m}");
        assert!(m.ends_with("(librdkafka: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed)"), "{m}");
        assert_eq!(
            describe("k:1", None),
            "cannot reach Kafka at k:1: check the bootstrap address and that the brokers run"
        );
    }

    #[test]
    fn a_named_cause_is_not_overwritten_by_a_later_unreachable() {
        let capture = FailureCapture::default();
        assert_eq!(capture.last_reason(), None);
        capture.remember("Connect to ipv4#10.0.0.1:9092 failed: Connection refused");
        capture.remember("SASL authentication error: Authentication failed");
        capture.remember("1/1 brokers are down");
        assert_eq!(
            capture.last_reason().as_deref(),
            Some("SASL authentication error: Authentication failed")
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            capture.last_reason_within(Some(Duration::from_millis(1))),
            None
        );
    }
}
