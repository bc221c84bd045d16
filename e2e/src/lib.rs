//! Helpers for tests that run against the real local stack (`e2e/stack up`):
//! Kafka helpers (a real broker at `KAFKA_BOOTSTRAP_SERVERS`), the ledger of
//! the latency-bound test sink, the timeline a journey records, the stack's
//! TLS listeners, and the Prometheus text format the benchmarks read.

pub mod cgroup;
pub mod connect;
pub mod iceberg;
pub mod kafka;
pub mod ledger;
pub mod process;
pub mod prom;
pub mod timeline;
pub mod tls;
