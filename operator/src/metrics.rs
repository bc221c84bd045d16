//! Operator metrics. Per-consumer labels are the namespace and name of each
//! `MillpondConsumer` (as many series as consumers, no more).

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The Kafka requests the operator's observers send (label `request`:
/// `Metadata`, `ListOffsets`, `OffsetFetch`), counted where
/// [`crate::observe::kafka`] issues them. Process-wide, as the observers
/// are: every [`Metrics`] registry exports the same series.
pub static KAFKA_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let requests = IntCounterVec::new(
        Opts::new(
            "millpond_operator_kafka_requests_total",
            "Kafka requests sent to observe the consumers, by request type",
        ),
        &["request"],
    )
    .expect("metric");
    for request in KAFKA_REQUEST_TYPES {
        requests.with_label_values(&[request]);
    }
    requests
});

/// The values of `millpond_operator_kafka_requests_total`'s `request` label.
pub const KAFKA_REQUEST_TYPES: [&str; 3] = ["Metadata", "ListOffsets", "OffsetFetch"];

/// Kafka clients the operator holds open (one per cluster and credentials).
pub static KAFKA_CLIENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "millpond_operator_kafka_clients",
        "Kafka clients open for observing (one per cluster and credentials)",
    )
    .expect("metric")
});

/// Upper bounds of `millpond_operator_reconcile_duration_seconds`' buckets.
pub const RECONCILE_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: IntCounterVec,
    pub decisions: IntCounterVec,
    pub desired_replicas: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // The standard process metrics, as every Prometheus client exports them.
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics registered once");
        // Prometheus' default buckets up to 10 s, then 30 s, 1 and 2 minutes:
        // a reconcile waits on the API server and Kafka, which an overloaded
        // control plane can keep for longer than 10 s.
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "millpond_operator_reconcile_duration_seconds",
                "Time one reconciliation took",
            )
            .buckets(RECONCILE_BUCKETS.to_vec()),
        )
        .expect("metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "millpond_operator_reconcile_errors_total",
                "Reconciliations that failed, by cause",
            ),
            &["type"],
        )
        .expect("metric");
        let decisions = IntCounterVec::new(
            Opts::new(
                "millpond_operator_decisions_total",
                "Scaling decisions by direction",
            ),
            &["direction"],
        )
        .expect("metric");
        let desired_replicas = IntGaugeVec::new(
            Opts::new(
                "millpond_operator_desired_replicas",
                "Replicas the operator decided on",
            ),
            &["namespace", "name"],
        )
        .expect("metric");
        for m in [
            Box::new(reconcile_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(decisions.clone()),
            Box::new(desired_replicas.clone()),
            Box::new(KAFKA_REQUESTS.clone()),
            Box::new(KAFKA_CLIENTS.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Metrics {
            registry,
            reconcile_duration,
            reconcile_errors,
            decisions,
            desired_replicas,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_metrics_are_exported() {
        let text = Metrics::new().render();
        let rss = text
            .lines()
            .find(|l| l.starts_with("process_resident_memory_bytes "))
            .expect("process_resident_memory_bytes missing");
        let bytes: f64 = rss["process_resident_memory_bytes".len()..]
            .trim()
            .parse()
            .expect("a number");
        assert!(bytes > 1e6, "{rss}");
        assert!(text.contains("\nprocess_open_fds "), "open fds missing");
    }

    /// The value of the series that starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
    }

    #[test]
    fn kafka_requests_and_clients_are_exported() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for request in KAFKA_REQUEST_TYPES {
            // Present before the first request (other tests may have counted).
            value(
                &text,
                &format!("millpond_operator_kafka_requests_total{{request=\"{request}\"}}"),
            );
        }
        let series = "millpond_operator_kafka_requests_total{request=\"OffsetFetch\"}";
        let before = value(&text, series);
        KAFKA_REQUESTS.with_label_values(&["OffsetFetch"]).inc();
        assert!(value(&metrics.render(), series) >= before + 1.0);
        value(&text, "millpond_operator_kafka_clients");
    }

    #[test]
    fn reconcile_durations_are_told_apart_up_to_two_minutes() {
        let metrics = Metrics::new();
        metrics.reconcile_duration.observe(45.0);
        let text = metrics.render();
        let bucket = |le: &str| {
            value(
                &text,
                &format!("millpond_operator_reconcile_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("30"), 0.0);
        assert_eq!(bucket("60"), 1.0);
        assert_eq!(bucket("120"), 1.0);
    }
}
