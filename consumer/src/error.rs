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

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
