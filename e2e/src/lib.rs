//! Helpers for tests that run against the real local stack (`e2e/stack up`).
//!
//! Everything here talks to a real broker at `KAFKA_BOOTSTRAP_SERVERS`.

pub mod kafka;
