//! When librdkafka says only "certificate verify failed", a TLS handshake of
//! our own with the same CA tells which check failed: the certificate chain
//! (not signed by the CA given) or the name (the certificate does not carry
//! the address connected to, and which names it does carry).

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509VerifyResult, X509};

/// What a second handshake found wrong with the brokers' certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateFinding {
    /// The chain is trusted, but the certificate does not name `host`.
    NameMismatch { host: String, names: Vec<String> },
    /// The chain is not trusted by the CA given (OpenSSL's reason).
    Untrusted(String),
}

impl std::fmt::Display for CertificateFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateFinding::NameMismatch { host, names } => write!(
                f,
                "the brokers' certificate does not name the address connected to ({host}); it names {}: use one of those in the bootstrap address (or fix the brokers' advertised listeners)",
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
            ),
            CertificateFinding::Untrusted(why) => write!(
                f,
                "the brokers' certificate is not signed by the trusted CA ({why}): check kafka.tls.caSecretRef / ssl.ca.location"
            ),
        }
    }
}

/// The CA the client was given: `ssl.ca.pem`, `ssl.ca.location` (file or
/// directory), else the system's store, as librdkafka does.
fn connector(
    properties: &BTreeMap<String, String>,
) -> Result<SslConnector, openssl::error::ErrorStack> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    if let Some(pem) = properties.get("ssl.ca.pem") {
        for cert in X509::stack_from_pem(pem.as_bytes())? {
            builder.cert_store_mut().add_cert(cert)?;
        }
    } else if let Some(location) = properties.get("ssl.ca.location") {
        if Path::new(location).is_dir() {
            builder.load_verify_locations(None, Some(Path::new(location)))?;
        } else {
            builder.set_ca_file(location)?;
        }
    } else {
        builder.set_default_verify_paths()?;
    }
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder.build())
}

/// Handshakes with the first of `servers` (without presenting a client
/// certificate) and reports why its certificate fails verification; `None`
/// when it cannot tell (no connection, or the certificate passes).
pub fn check(
    servers: &str,
    properties: &BTreeMap<String, String>,
    timeout: Duration,
) -> Option<CertificateFinding> {
    let server = servers.split(',').next()?.trim();
    let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
    let (host, _) = server.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = server.to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut config = connector(properties).ok()?.configure().ok()?;
    // The chain alone: if it passes, the name is what failed.
    config.set_verify_hostname(false);
    let (result, certificate) = match config.connect(host, stream) {
        Ok(tls) => (tls.ssl().verify_result(), tls.ssl().peer_certificate()),
        Err(HandshakeError::Failure(mid)) => {
            (mid.ssl().verify_result(), mid.ssl().peer_certificate())
        }
        Err(_) => return None,
    };
    if result != X509VerifyResult::OK {
        return Some(CertificateFinding::Untrusted(
            result.error_string().to_string(),
        ));
    }
    let certificate = certificate?;
    let names = certificate_names(&certificate);
    let matches = names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(host) || wildcard(n, host));
    (!matches).then(|| CertificateFinding::NameMismatch {
        host: host.to_string(),
        names,
    })
}

/// The DNS names and IP addresses of the certificate's subjectAltName.
fn certificate_names(certificate: &X509) -> Vec<String> {
    let Some(sans) = certificate.subject_alt_names() else {
        return Vec::new();
    };
    sans.iter()
        .filter_map(|n| {
            n.dnsname().map(str::to_string).or_else(|| {
                n.ipaddress().and_then(|ip| match ip.len() {
                    4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?).to_string()),
                    16 => {
                        Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?).to_string())
                    }
                    _ => None,
                })
            })
        })
        .collect()
}

/// `*.example.com` names `a.example.com` (one label).
fn wildcard(name: &str, host: &str) -> bool {
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((_, rest))) => rest.eq_ignore_ascii_case(suffix),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_names_one_label() {
        assert!(wildcard("*.kafka.example.com", "b-1.kafka.example.com"));
        assert!(!wildcard("*.kafka.example.com", "a.b-1.kafka.example.com"));
        assert!(!wildcard("kafka.example.com", "kafka.example.com"));
    }

    #[test]
    fn the_finding_says_what_the_certificate_names() {
        let f = CertificateFinding::NameMismatch {
            host: "10.0.0.5".into(),
            names: vec!["kafka.internal".into(), "10.0.0.6".into()],
        };
        assert!(f.to_string().starts_with(
            "the brokers' certificate does not name the address connected to (10.0.0.5); it names kafka.internal, 10.0.0.6"
        ));
    }

    #[test]
    fn nothing_to_tell_without_a_connection() {
        assert_eq!(
            check("127.0.0.1:1", &BTreeMap::new(), Duration::from_secs(1)),
            None
        );
        assert_eq!(
            check("not an address", &BTreeMap::new(), Duration::from_secs(1)),
            None
        );
    }
}
