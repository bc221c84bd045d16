//! The consumer pod's interface as the operator uses it: the environment
//! variables it reads, the metrics the operator scrapes, and the update its
//! admin endpoint takes. The operator writes these names and the pod reads
//! them from here, and a test of the pod checks it reads every variable.

use serde::{Deserialize, Serialize};

/// Environment variables the operator sets and the pod reads.
pub mod env {
    pub const KAFKA_BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";
    pub const KAFKA_TOPIC: &str = "KAFKA_TOPIC";
    pub const KAFKA_GROUP_ID: &str = "KAFKA_GROUP_ID";
    pub const KAFKA_CONFIG: &str = "KAFKA_CONFIG";
    pub const SINK_URL: &str = "SINK_URL";
    pub const SINK_METADATA: &str = "SINK_METADATA";
    pub const DEAD_LETTER_TOPIC: &str = "DEAD_LETTER_TOPIC";
    pub const HTTP_TIMEOUT_MS: &str = "HTTP_TIMEOUT_MS";
    /// Give up on a failing sink write after this long (0: retry without end).
    pub const SINK_GIVE_UP_AFTER_MS: &str = "SINK_GIVE_UP_AFTER_MS";
    pub const MEMORY_BUDGET: &str = "MEMORY_BUDGET";
    pub const METRICS_ADDR: &str = "METRICS_ADDR";
    /// The admin endpoint's own listen address.
    pub const ADMIN_ADDR: &str = "ADMIN_ADDR";
    pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
    /// The limits, from the ConfigMap new pods start from.
    pub const FLUSH_BYTES: &str = "FLUSH_BYTES";
    pub const FLUSH_INTERVAL_MS: &str = "FLUSH_INTERVAL_MS";
    pub const MAX_IN_FLIGHT: &str = "MAX_IN_FLIGHT";
    pub const CONSUME_BATCH_SIZE: &str = "CONSUME_BATCH_SIZE";
    pub const LIMITS_GENERATION: &str = "LIMITS_GENERATION";
    /// The REST catalog of an `iceberg://` sink, and how to sign in to it.
    pub const ICEBERG_CATALOG_URI: &str = "ICEBERG_CATALOG_URI";
    pub const ICEBERG_WAREHOUSE: &str = "ICEBERG_WAREHOUSE";
    pub const ICEBERG_CATALOG_TOKEN: &str = "ICEBERG_CATALOG_TOKEN";
    pub const ICEBERG_CATALOG_CREDENTIAL: &str = "ICEBERG_CATALOG_CREDENTIAL";
    pub const ICEBERG_CATALOG_SCOPE: &str = "ICEBERG_CATALOG_SCOPE";
    pub const ICEBERG_OAUTH2_SERVER_URI: &str = "ICEBERG_OAUTH2_SERVER_URI";
    pub const ICEBERG_AUTO_CREATE: &str = "ICEBERG_AUTO_CREATE";
    pub const ICEBERG_EVOLVE_SCHEMA: &str = "ICEBERG_EVOLVE_SCHEMA";
    pub const ICEBERG_COMMIT_INTERVAL_SECONDS: &str = "ICEBERG_COMMIT_INTERVAL_SECONDS";

    /// Every variable above.
    pub const ALL: [&str; 27] = [
        KAFKA_BOOTSTRAP_SERVERS,
        KAFKA_TOPIC,
        KAFKA_GROUP_ID,
        KAFKA_CONFIG,
        SINK_URL,
        SINK_METADATA,
        DEAD_LETTER_TOPIC,
        HTTP_TIMEOUT_MS,
        SINK_GIVE_UP_AFTER_MS,
        MEMORY_BUDGET,
        METRICS_ADDR,
        ADMIN_ADDR,
        ADMIN_TOKEN,
        FLUSH_BYTES,
        FLUSH_INTERVAL_MS,
        MAX_IN_FLIGHT,
        CONSUME_BATCH_SIZE,
        LIMITS_GENERATION,
        ICEBERG_CATALOG_URI,
        ICEBERG_WAREHOUSE,
        ICEBERG_CATALOG_TOKEN,
        ICEBERG_CATALOG_CREDENTIAL,
        ICEBERG_CATALOG_SCOPE,
        ICEBERG_OAUTH2_SERVER_URI,
        ICEBERG_AUTO_CREATE,
        ICEBERG_EVOLVE_SCHEMA,
        ICEBERG_COMMIT_INTERVAL_SECONDS,
    ];
}

/// Metrics of the pod the operator reads.
pub mod metric {
    pub const RECORDS_TOTAL: &str = "millpond_records_total";
    pub const RECORDS_DELIVERED_TOTAL: &str = "millpond_records_delivered_total";
    pub const BUFFER_FULLNESS: &str = "millpond_buffer_fullness";
    /// The integral of the buffer fullness over time: its difference between
    /// two scrapes divided by the seconds between them is the interval's mean
    /// fullness (a point sample of the gauge misses a pod that waits on its sink).
    pub const BUFFER_FULLNESS_SECONDS_TOTAL: &str = "millpond_buffer_fullness_seconds_total";
    /// 1 while the sink takes writes, 0 from a failed write until one succeeds.
    pub const SINK_UP: &str = "millpond_sink_up";
    /// Unix time of the last write the sink acknowledged.
    pub const SINK_LAST_SUCCESS_SECONDS: &str = "millpond_sink_last_success_timestamp_seconds";
    /// Seconds since the sink's first failed write of the current outage (0 while up).
    pub const SINK_DOWN_SECONDS: &str = "millpond_sink_down_seconds";
    /// The sink's last error, in the label `error` (one series, value 1).
    pub const SINK_LAST_ERROR_INFO: &str = "millpond_sink_last_error_info";
    /// Failed sink writes that were retried.
    pub const SINK_RETRIES_TOTAL: &str = "millpond_sink_retries_total";
    /// Records the sink refused, isolated and sent to the dead-letter topic.
    pub const SINK_REFUSED_RECORDS_TOTAL: &str = "millpond_sink_refused_records_total";
    pub const IN_FLIGHT_BATCHES: &str = "millpond_in_flight_batches";
    pub const LIMIT_MAX_IN_FLIGHT: &str = "millpond_limit_max_in_flight";
    pub const LIMIT_FLUSH_BYTES: &str = "millpond_limit_flush_bytes";
    pub const FLUSH_DURATION_SECONDS: &str = "millpond_flush_duration_seconds";
    /// The histogram's `_sum` and `_count` series.
    pub const FLUSH_DURATION_SECONDS_SUM: &str = "millpond_flush_duration_seconds_sum";
    pub const FLUSH_DURATION_SECONDS_COUNT: &str = "millpond_flush_duration_seconds_count";
    pub const FLUSHES_TOTAL: &str = "millpond_flushes_total";
    pub const BACKPRESSURE_WAIT_SECONDS_TOTAL: &str = "millpond_backpressure_wait_seconds_total";
    pub const ERRORS_TOTAL: &str = "millpond_errors_total";
    pub const LIMITS_GENERATION: &str = "millpond_limits_generation";
    pub const ASSIGNED_PARTITIONS: &str = "millpond_assigned_partitions";
    pub const PARTITION_LAG: &str = "millpond_partition_lag";
}

/// Path of the admin endpoint that takes a [`LimitsUpdate`] (`PUT`, bearer
/// token `ADMIN_TOKEN`).
pub const ADMIN_LIMITS_PATH: &str = "/admin/limits";

/// A change of the live limits, sent by the operator to the pod's admin
/// endpoint; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsUpdate {
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_batch_size: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_update_reads_back_as_written_and_refuses_unknown_fields() {
        let update = LimitsUpdate {
            generation: 7,
            flush_bytes: Some(4 << 20),
            max_in_flight: Some(2),
            ..LimitsUpdate::default()
        };
        let json = serde_json::to_string(&update).unwrap();
        assert_eq!(
            json,
            r#"{"generation":7,"flushBytes":4194304,"maxInFlight":2}"#
        );
        assert_eq!(serde_json::from_str::<LimitsUpdate>(&json).unwrap(), update);
        assert!(serde_json::from_str::<LimitsUpdate>(r#"{"generation":1,"flushSize":1}"#).is_err());
    }
}
