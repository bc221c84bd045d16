//! What tests and benchmarks share against the real local stack
//! (`e2e/stack up`): Kafka topics and records (a real broker at
//! `KAFKA_BOOTSTRAP_SERVERS`), the stack's TLS listeners, the ledger of the
//! latency-bound test sink, the Prometheus text format, Iceberg tables through
//! the stack's catalog, a Kafka Connect worker's REST API, and the processes
//! and control groups a benchmark measures.
//!
//! Of the product it depends on `millpond-core` only (the contracts, such
//! as the Prometheus text format the pods speak): the consumer's and the
//! operator's tests use it without a dependency cycle.

pub mod cgroup;
pub mod connect;
pub mod iceberg;
pub mod kafka;
pub mod ledger;
pub mod process;
pub mod prom;
pub mod runtime;
pub mod tls;
