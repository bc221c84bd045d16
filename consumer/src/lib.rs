//! `millpond-consumer`: one bounded Kafka consumer loop.
//!
//! Data flows through the modules in this order:
//! [`source`] (librdkafka, bounded prefetch) → [`buffer`] (adaptive batch,
//! NDJSON lines per partition) → [`sink`] (bounded by the in-flight
//! [`limits`]) → [`offsets`] (acknowledgements) → commit.
//!
//! [`budget`] derives every memory bound from one number, [`limits`] holds the
//! values that can change while the process runs, [`server`] serves
//! `/metrics`, `/healthz`, `/readyz` and the admin endpoint.

pub mod buffer;
pub mod config;
pub mod delivery;
pub mod error;
pub mod kafka_config;
pub mod limits;
pub mod metrics;
pub mod offsets;
pub mod record;
pub mod server;
pub mod sink;
pub mod source;

pub use error::{Error, Result};
// The budget and the quantity grammar are shared with the operator and the API.
pub use millpond_core::{budget, quantity};
