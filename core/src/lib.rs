//! What the operator, the consumer pods and the `MillpondConsumer` API must
//! agree on, in one place and without Kubernetes or Kafka dependencies:
//!
//! * [`quantity`]: byte sizes with the Kubernetes quantity grammar;
//! * [`budget`]: the memory budget every bound is derived from;
//! * [`properties`]: the librdkafka properties Millpond owns, and
//!   `key=value` lists of them;
//! * [`sink`]: what each sink holds in memory beside a batch;
//! * [`pod`]: the consumer pod's environment, the metrics the operator
//!   reads and the limits update its admin endpoint takes;
//! * [`prom`]: the Prometheus text format those metrics are read in.

pub mod budget;
pub mod pod;
pub mod prom;
pub mod properties;
pub mod quantity;
pub mod sink;

/// Why a value shared by operator and pod is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; the message says which and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The memory budget cannot hold what the settings ask for.
    #[error("memory budget: {0}")]
    Budget(String),
    /// A byte quantity that does not parse, or is out of range.
    #[error("`{value}` is not a byte quantity: {why}")]
    Quantity { value: String, why: String },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
