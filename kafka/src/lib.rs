//! Kafka client helpers the consumer pods and the operator share.
//!
//! [`connect_failure`] tells why a client could not use the brokers (the
//! network, TLS, or the credentials) from what librdkafka reports, and
//! [`tls_check`] finds out which check a refused brokers' certificate
//! failed.

pub mod connect_failure;
pub mod tls_check;
