//! Operator metrics. Per-consumer labels are the namespace and name of each
//! `MillpondConsumer` (as many series as consumers, no more).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

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
        let reconcile_duration = Histogram::with_opts(HistogramOpts::new(
            "millpond_operator_reconcile_duration_seconds",
            "Time one reconciliation took",
        ))
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
}
