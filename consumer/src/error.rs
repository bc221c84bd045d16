//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong inside the consumer.
#[derive(Debug, Error)]
pub enum Error {
    /// A setting is invalid; the message says which and why.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The memory budget cannot hold what the settings ask for.
    #[error("memory budget: {0}")]
    Budget(String),

    /// Kafka could not be reached or refused a request.
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A record the sink cannot take and no dead-letter topic is configured.
    #[error("poison record at {topic}/{partition}@{offset}: {reason}")]
    Poison {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },

    /// Kafka handed over a record batch this consumer cannot read; nothing
    /// after it is committed.
    #[error("a record batch of {topic} cannot be read: {why} (librdkafka: {code}); stopping, nothing after it is committed")]
    Unreadable {
        topic: String,
        code: rdkafka::types::RDKafkaErrorCode,
        why: &'static str,
    },

    /// The sink failed permanently (after its retries).
    #[error("sink: {0}")]
    Sink(String),

    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A bounded label for the `millpond_errors_total{type}` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Budget(_) => "budget",
            Error::Kafka { .. } => "kafka",
            Error::Poison { .. } => "poison",
            Error::Unreadable { .. } => "unreadable",
            Error::Sink(_) => "sink",
            Error::Io { .. } => "io",
        }
    }

    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a consume error means a record batch cannot be read (decompression,
/// an unknown codec or message format, a corrupt batch): consuming on could
/// commit past the batch's records. `None` for other (transient) errors.
pub fn unreadable_batch(code: rdkafka::types::RDKafkaErrorCode) -> Option<&'static str> {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        C::NotImplemented => Some(
            "it is compressed with a codec this consumer lacks (it reads gzip, snappy, lz4 and zstd) or in a message format it does not know",
        ),
        C::BadCompression => Some(
            "its compressed data cannot be decompressed (corrupt, or a codec this consumer lacks)",
        ),
        C::BadMessage => Some("the batch is corrupt"),
        _ => None,
    }
}

impl From<millpond_core::Error> for Error {
    fn from(e: millpond_core::Error) -> Self {
        match e {
            millpond_core::Error::Budget(m) => Error::Budget(m),
            other @ millpond_core::Error::Quantity { .. } => Error::Config(other.to_string()),
            millpond_core::Error::Config(m) => Error::Config(m),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn a_batch_librdkafka_skips_stops_the_consumer_and_says_why() {
        let why = unreadable_batch(C::NotImplemented).unwrap();
        let e = Error::Unreadable {
            topic: "orders".into(),
            code: C::NotImplemented,
            why,
        };
        assert!(
            e.to_string().starts_with(
                "a record batch of orders cannot be read: it is compressed with a codec this consumer lacks (it reads gzip, snappy, lz4 and zstd)"
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("stopping, nothing after it is committed"),
            "{e}"
        );
        assert!(unreadable_batch(C::BadCompression).is_some());
        assert!(unreadable_batch(C::BadMessage).is_some());
        // Transient errors are retried by librdkafka: keep consuming.
        for code in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::PartitionEOF,
        ] {
            assert_eq!(unreadable_batch(code), None, "{code:?}");
        }
    }
}
