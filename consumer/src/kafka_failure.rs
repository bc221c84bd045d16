//! Why a Kafka client could not talk to the brokers, told apart from what
//! librdkafka reports through its error callback, so that the pod's exit
//! message names the cause a person has to fix: the network, TLS, or the
//! credentials.

use std::fmt;

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
    let reason = last_reason.unwrap_or("");
    let cause = ConnectFailure::from_reason(reason);
    let mut message = format!("{cause} at {servers}: {}", cause.hint(reason));
    if !reason.is_empty() {
        message.push_str(&format!(" (librdkafka: {reason})"));
    }
    message
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
}
