//! Helpers for tests that run against the real local stack (`e2e/stack up`):
//! Kafka helpers (a real broker at `KAFKA_BOOTSTRAP_SERVERS`), the ledger of
//! the latency-bound test sink, and the timeline a journey records.

pub mod kafka;
pub mod ledger;
pub mod timeline;
