//! Prometheus metrics of the consumer. Label values are bounded: flush
//! triggers, error types, and partition numbers of the one topic consumed.

use millpond_core::pod::metric;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the consumer exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub buffer_fullness: Gauge,
    pub buffer_fullness_seconds_total: prometheus::Counter,
    pub sink_up: IntGauge,
    pub sink_down_seconds: Gauge,
    pub sink_last_success_seconds: Gauge,
    pub sink_last_error: IntGaugeVec,
    pub sink_retries_total: IntCounter,
    pub sink_refused_records_total: IntCounter,
    pub buffer_bytes: IntGauge,
    pub consume_batch_size_current: IntGauge,
    pub backpressure_wait_seconds_total: prometheus::Counter,
    pub backpressure_events_total: IntCounter,
    pub limits_generation: IntGauge,
    pub flush_bytes_limit: IntGauge,
    pub flush_interval_ms_limit: IntGauge,
    pub max_in_flight_limit: IntGauge,
    pub consume_batch_size_limit: IntGauge,
    pub in_flight: IntGauge,
    pub records_total: IntCounter,
    pub bytes_total: IntCounter,
    pub records_delivered_total: IntCounter,
    pub dead_letter_total: IntCounter,
    pub records_skipped_total: IntCounterVec,
    pub flushes_total: IntCounterVec,
    pub errors_total: IntCounterVec,
    pub flush_duration_seconds: Histogram,
    pub partition_lag: IntGaugeVec,
    pub committed_offset: IntGaugeVec,
    pub prefetch_bytes: IntGauge,
    pub assigned_partitions: IntGauge,
    pub memory_budget_bytes: IntGauge,
    pub planned_partitions: IntGauge,
    pub prefetch_limit_bytes: IntGauge,
    pub replans_total: IntCounter,
    pub table: TableMetrics,
}

/// The Iceberg table sink's commits (zero for other sinks).
#[derive(Clone)]
pub struct TableMetrics {
    /// By result: `committed`, `conflict` (another writer committed first;
    /// checked again and retried), `failed`.
    pub commits_total: IntCounterVec,
    pub commit_duration_seconds: Histogram,
    pub data_files_total: IntCounter,
    pub data_bytes_total: IntCounter,
    /// Records a write left out because the table held them already.
    pub records_held_total: IntCounter,
    /// The table's next offset per partition, as the last commit left it.
    pub offset: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // The standard process metrics, as every Prometheus client exports
        // them: the resident memory is what the memory budget is held to.
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics registered once");
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definition");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric");
                m
            }};
        }
        let ig = |name: &str, help: &str| IntGauge::new(name, help);
        Metrics {
            buffer_fullness: reg!(Gauge::new(
                metric::BUFFER_FULLNESS,
                "Buffered bytes divided by the flush size (may exceed 1.0)"
            )),
            buffer_fullness_seconds_total: reg!(prometheus::Counter::new(
                metric::BUFFER_FULLNESS_SECONDS_TOTAL,
                "Buffer fullness integrated over time: its increase over an interval divided by the interval is the mean fullness"
            )),
            sink_up: reg!(ig(
                metric::SINK_UP,
                "1 while the sink takes writes; 0 from a failed write until one succeeds"
            )),
            sink_down_seconds: reg!(Gauge::new(
                metric::SINK_DOWN_SECONDS,
                "Seconds since the first failed write of the current sink outage (0 while up)"
            )),
            sink_last_success_seconds: reg!(Gauge::new(
                metric::SINK_LAST_SUCCESS_SECONDS,
                "Unix time of the sink's last answer to a write"
            )),
            sink_last_error: reg!(IntGaugeVec::new(
                Opts::new(metric::SINK_LAST_ERROR_INFO, "The sink's last error, in the label"),
                &["error"]
            )),
            sink_retries_total: reg!(IntCounter::new(
                metric::SINK_RETRIES_TOTAL,
                "Failed sink writes that were retried"
            )),
            sink_refused_records_total: reg!(IntCounter::new(
                metric::SINK_REFUSED_RECORDS_TOTAL,
                "Records the sink refused, isolated and sent to the dead-letter topic"
            )),
            buffer_bytes: reg!(ig(
                "millpond_buffer_bytes",
                "Bytes buffered for the next flush"
            )),
            consume_batch_size_current: reg!(ig(
                "millpond_consume_batch_size_current",
                "Records pulled from librdkafka per loop turn, after adapting to buffer fullness"
            )),
            backpressure_wait_seconds_total: reg!(prometheus::Counter::new(
                metric::BACKPRESSURE_WAIT_SECONDS_TOTAL,
                "Time the loop waited for an in-flight permit instead of consuming"
            )),
            backpressure_events_total: reg!(IntCounter::new(
                "millpond_backpressure_events_total",
                "Flushes that had to wait for an in-flight permit"
            )),
            limits_generation: reg!(ig(
                metric::LIMITS_GENERATION,
                "Generation of the limits in force"
            )),
            flush_bytes_limit: reg!(ig(metric::LIMIT_FLUSH_BYTES, "Flush size in force")),
            flush_interval_ms_limit: reg!(ig(
                "millpond_limit_flush_interval_ms",
                "Flush interval in force"
            )),
            max_in_flight_limit: reg!(ig(
                metric::LIMIT_MAX_IN_FLIGHT,
                "In-flight permits in force"
            )),
            consume_batch_size_limit: reg!(ig(
                "millpond_limit_consume_batch_size",
                "Consume batch size in force"
            )),
            in_flight: reg!(ig(metric::IN_FLIGHT_BATCHES, "Sink writes running now")),
            records_total: reg!(IntCounter::new(
                metric::RECORDS_TOTAL,
                "Records consumed from Kafka"
            )),
            bytes_total: reg!(IntCounter::new(
                "millpond_bytes_total",
                "Bytes handed to the sink"
            )),
            records_delivered_total: reg!(IntCounter::new(
                metric::RECORDS_DELIVERED_TOTAL,
                "Records the sink acknowledged"
            )),
            dead_letter_total: reg!(IntCounter::new(
                "millpond_dead_letter_records_total",
                "Records sent to the dead-letter topic"
            )),
            flushes_total: reg!(IntCounterVec::new(
                Opts::new(metric::FLUSHES_TOTAL, "Flushes by trigger"),
                &["trigger"]
            )),
            records_skipped_total: reg!(IntCounterVec::new(
                Opts::new(
                    "millpond_records_skipped_total",
                    "Records with nothing to write, by reason (tombstone: a null value), committed past"
                ),
                &["reason"]
            )),
            errors_total: reg!(IntCounterVec::new(
                Opts::new(metric::ERRORS_TOTAL, "Errors by type"),
                &["type"]
            )),
            flush_duration_seconds: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    metric::FLUSH_DURATION_SECONDS,
                    "Time a sink write took, retries included"
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16).expect("buckets"))
            )),
            partition_lag: reg!(IntGaugeVec::new(
                Opts::new(
                    metric::PARTITION_LAG,
                    "Records behind the high watermark, per assigned partition"
                ),
                &["partition"]
            )),
            committed_offset: reg!(IntGaugeVec::new(
                Opts::new(
                    "millpond_committed_offset",
                    "Last committed offset, per assigned partition"
                ),
                &["partition"]
            )),
            prefetch_bytes: reg!(ig(
                "millpond_prefetch_bytes",
                "Bytes in librdkafka's fetch queues (bounded by the memory budget)"
            )),
            assigned_partitions: reg!(ig(
                metric::ASSIGNED_PARTITIONS,
                "Partitions assigned to this consumer"
            )),
            memory_budget_bytes: reg!(ig(
                "millpond_memory_budget_bytes",
                "The memory budget in force"
            )),
            planned_partitions: reg!(ig(
                "millpond_planned_partitions",
                "Partitions the memory plan holds prefetch queues for"
            )),
            prefetch_limit_bytes: reg!(ig(
                "millpond_prefetch_limit_bytes",
                "Worst case of librdkafka's queues in the memory plan"
            )),
            replans_total: reg!(IntCounter::new(
                "millpond_replans_total",
                "Times the consumer handed off and re-planned its memory because partitions were added"
            )),
            table: TableMetrics {
                commits_total: reg!(IntCounterVec::new(
                    Opts::new(
                        "millpond_table_commits_total",
                        "Iceberg commits by result: committed, conflict (another writer committed first), failed"
                    ),
                    &["result"]
                )),
                commit_duration_seconds: reg!(Histogram::with_opts(
                    HistogramOpts::new(
                        "millpond_table_commit_duration_seconds",
                        "Time one Iceberg commit took (the catalog's answer included)"
                    )
                    .buckets(prometheus::exponential_buckets(0.005, 2.0, 12).expect("buckets"))
                )),
                data_files_total: reg!(IntCounter::new(
                    "millpond_table_data_files_total",
                    "Data files committed to the Iceberg table"
                )),
                data_bytes_total: reg!(IntCounter::new(
                    "millpond_table_data_bytes_total",
                    "Bytes of data files committed to the Iceberg table"
                )),
                records_held_total: reg!(IntCounter::new(
                    "millpond_table_records_held_total",
                    "Records left out of a write because the table held them already (read again after a crash or a rebalance)"
                )),
                offset: reg!(IntGaugeVec::new(
                    Opts::new(
                        "millpond_table_offset",
                        "The table's next offset per partition of the topic, after this pod's last commit"
                    ),
                    &["partition"]
                )),
            },
            registry,
        }
    }

    /// Publishes the limits in force.
    pub fn set_limits(&self, limits: &crate::limits::Limits) {
        self.limits_generation.set(limits.generation as i64);
        self.flush_bytes_limit.set(limits.flush_bytes as i64);
        self.flush_interval_ms_limit
            .set(limits.flush_interval_ms as i64);
        self.max_in_flight_limit.set(limits.max_in_flight as i64);
        self.consume_batch_size_limit
            .set(limits.consume_batch_size as i64);
    }

    /// Keeps the sink's last error as the one series of
    /// `millpond_sink_last_error_info` (cut to 300 characters).
    pub fn set_sink_error(&self, error: &str) {
        let shown: String = error.chars().take(300).collect();
        self.sink_last_error.reset();
        self.sink_last_error.with_label_values(&[&shown]).set(1);
    }

    /// Counts an error by its bounded label.
    pub fn error(&self, label: &str) {
        self.errors_total.with_label_values(&[label]).inc();
    }

    /// Drops the per-partition series of a partition no longer assigned.
    pub fn forget_partition(&self, partition: i32) {
        let p = partition.to_string();
        let _ = self.partition_lag.remove_label_values(&[&p]);
        let _ = self.committed_offset.remove_label_values(&[&p]);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding metrics");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The lag a pod reports for an assigned partition, from librdkafka's
/// statistics: from the committed offset when there is one, else (before the
/// group's first commit of the partition) from the fetch position. `None`
/// while neither the high watermark nor the position is known.
///
/// Reported for every assigned partition as soon as it can be, so that the
/// set of `millpond_partition_lag` series is the pod's assignment.
pub fn reported_lag(consumer_lag: i64, high_watermark: i64, position: i64) -> Option<i64> {
    if consumer_lag >= 0 {
        Some(consumer_lag)
    } else if high_watermark >= 0 && position >= 0 {
        Some((high_watermark - position).max(0))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{reported_lag, Metrics};

    #[test]
    fn lag_is_reported_before_the_first_commit() {
        assert_eq!(
            reported_lag(40, 100, 90),
            Some(40),
            "from the committed offset"
        );
        assert_eq!(
            reported_lag(-1, 100, 30),
            Some(70),
            "no commit yet: from the position"
        );
        assert_eq!(reported_lag(-1, 100, -1001), None, "position unknown");
        assert_eq!(reported_lag(-1, -1, 0), None, "watermark unknown");
        assert_eq!(reported_lag(-1, 10, 12), Some(0));
    }

    #[test]
    fn the_process_metrics_are_exported() {
        let text = Metrics::new().render();
        let value = |name: &str| -> f64 {
            let sample = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing"));
            sample[name.len()..].trim().parse().expect("a number")
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") > 0.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
