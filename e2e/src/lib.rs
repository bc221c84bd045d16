//! Helpers for tests that run against the real local stack (`e2e/stack up`):
//! Kafka helpers (a real broker at `KAFKA_BOOTSTRAP_SERVERS`), the ledger of
//! the latency-bound test sink, the timeline a journey records, and the
//! stack's TLS listeners.

pub mod kafka;
pub mod ledger;
pub mod process;
pub mod timeline;
pub mod tls;
