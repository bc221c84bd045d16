//! Scraping the consumer pods' `/metrics`.

use std::time::Duration;

use millpond_core::pod::metric;
use millpond_core::prom;

use millpond_policy as policy;

/// What one pod reported. Counters are totals since the pod started; rates
/// come from the difference of two scrapes ([`interval`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodMetrics {
    pub records_total: f64,
    pub records_delivered_total: f64,
    pub buffer_fullness: f64,
    /// The integral of the buffer fullness over time; `None` from a pod
    /// that does not export it.
    pub buffer_fullness_seconds_total: Option<f64>,
    pub in_flight: f64,
    pub max_in_flight: f64,
    pub flush_bytes: f64,
    pub flush_duration_sum: f64,
    pub flush_duration_count: f64,
    pub flushes_by_size: f64,
    pub flushes_total: f64,
    pub backpressure_wait_seconds_total: f64,
    /// Sink write failures (`millpond_errors_total{type="sink"|"io"}`).
    pub sink_errors_total: f64,
    pub limits_generation: f64,
    pub assigned_partitions: f64,
    /// Partitions it reports lag for (its assignment).
    pub partitions: Vec<i32>,
    /// 1 while its sink takes writes, 0 from a failed write until one
    /// succeeds; `None` from a pod that does not export it (counted as up).
    pub sink_up: Option<f64>,
    /// Seconds since the first failed write of the current outage.
    pub sink_down_seconds: f64,
    /// The sink's last error, unescaped.
    pub sink_last_error: String,
}

/// Reads the metrics the operator uses from the Prometheus text format.
pub fn parse(text: &str) -> PodMetrics {
    let mut s = PodMetrics::default();
    for sample in prom::parse(text) {
        let value = sample.value;
        match sample.name.as_str() {
            metric::RECORDS_TOTAL => s.records_total = value,
            metric::RECORDS_DELIVERED_TOTAL => s.records_delivered_total = value,
            metric::BUFFER_FULLNESS => s.buffer_fullness = value,
            metric::BUFFER_FULLNESS_SECONDS_TOTAL => s.buffer_fullness_seconds_total = Some(value),
            metric::SINK_UP => s.sink_up = Some(value),
            metric::SINK_DOWN_SECONDS => s.sink_down_seconds = value,
            metric::SINK_LAST_ERROR_INFO => s.sink_last_error = sample.label("error").to_string(),
            metric::IN_FLIGHT_BATCHES => s.in_flight = value,
            metric::LIMIT_MAX_IN_FLIGHT => s.max_in_flight = value,
            metric::LIMIT_FLUSH_BYTES => s.flush_bytes = value,
            metric::FLUSH_DURATION_SECONDS_SUM => s.flush_duration_sum = value,
            metric::FLUSH_DURATION_SECONDS_COUNT => s.flush_duration_count = value,
            metric::FLUSHES_TOTAL => {
                s.flushes_total += value;
                if sample.label("trigger") == "size" {
                    s.flushes_by_size += value;
                }
            }
            metric::BACKPRESSURE_WAIT_SECONDS_TOTAL => s.backpressure_wait_seconds_total = value,
            // Only the sink's failures say the sink struggles; Kafka, commit
            // and refused-limits errors (rebalances, hand-overs) do not.
            metric::ERRORS_TOTAL if matches!(sample.label("type"), "sink" | "io") => {
                s.sink_errors_total += value
            }
            metric::LIMITS_GENERATION => s.limits_generation = value,
            metric::ASSIGNED_PARTITIONS => s.assigned_partitions = value,
            metric::PARTITION_LAG => {
                if let Ok(p) = sample.label("partition").parse() {
                    s.partitions.push(p);
                }
            }
            _ => {}
        }
    }
    s.partitions.sort_unstable();
    s
}

/// One pod's behaviour between two scrapes `seconds` apart, as the policy
/// reads it. Without a previous scrape (new pod) or after a counter reset
/// (restarted pod) the interval is not a fair capacity sample. The buffer
/// fullness is the interval's mean ([`mean_fullness`]); a pod whose sink is
/// down says since when and its last error.
pub fn interval(prev: Option<&PodMetrics>, cur: &PodMetrics, seconds: f64) -> policy::PodSample {
    let fair = prev.is_some_and(|p| {
        p.records_total <= cur.records_total
            && p.records_delivered_total <= cur.records_delivered_total
            && p.partitions == cur.partitions
            && !cur.partitions.is_empty()
    });
    let zero = PodMetrics::default();
    let p = if fair { prev.unwrap_or(&zero) } else { &zero };
    let delta = |a: f64, b: f64| (b - a).max(0.0);
    let flushes = delta(p.flushes_total, cur.flushes_total);
    let flush_time = delta(p.flush_duration_sum, cur.flush_duration_sum);
    let flush_count = delta(p.flush_duration_count, cur.flush_duration_count);
    policy::PodSample {
        partitions: cur.partitions.clone(),
        full_interval: fair,
        delivered_rate: if fair {
            delta(p.records_delivered_total, cur.records_delivered_total) / seconds.max(1e-3)
        } else {
            0.0
        },
        buffer_fullness: mean_fullness(prev.filter(|_| fair), cur, seconds),
        flushes: flushes as u64,
        size_flushes: delta(p.flushes_by_size, cur.flushes_by_size) as u64,
        flush_seconds: (flush_count > 0.0).then(|| flush_time / flush_count),
        in_flight_saturation: if cur.max_in_flight > 0.0 {
            cur.in_flight / cur.max_in_flight
        } else {
            0.0
        },
        errors: delta(p.sink_errors_total, cur.sink_errors_total) as u64,
        backpressure_seconds: delta(
            p.backpressure_wait_seconds_total,
            cur.backpressure_wait_seconds_total,
        ),
        sink_down: sink_down(cur),
        ..policy::PodSample::default()
    }
}

/// The buffer's mean fullness between the `prev` scrape and `cur`,
/// `seconds` apart: the growth of its integral over the time. The gauge
/// at `cur` without a fair previous scrape or without the integral (an
/// older pod).
fn mean_fullness(prev: Option<&PodMetrics>, cur: &PodMetrics, seconds: f64) -> f64 {
    let before = prev.and_then(|p| p.buffer_fullness_seconds_total);
    match (before, cur.buffer_fullness_seconds_total) {
        (Some(a), Some(b)) if b >= a && seconds > 0.0 => (b - a) / seconds,
        _ => cur.buffer_fullness,
    }
}

/// The pod's sink outage, when it reports one; a pod that does not export
/// `millpond_sink_up` counts as up.
fn sink_down(m: &PodMetrics) -> Option<policy::SinkDown> {
    m.sink_up
        .is_some_and(|up| up < 0.5)
        .then(|| policy::SinkDown {
            seconds: m.sink_down_seconds,
            error: m.sink_last_error.clone(),
        })
}

/// Fetches and parses `http://<ip>:<port>/metrics` with a deadline.
pub async fn scrape(
    client: &reqwest::Client,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> Result<PodMetrics, String> {
    let url = format!("http://{ip}:{port}/metrics");
    let resp = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("scraping {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("scraping {url}: HTTP {}", resp.status()));
    }
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    Ok(parse(&body))
}

/// What to tell a person when the metrics of ready pods could not be read:
/// `failed` holds `(pod, error)`, `scraped` how many pods were read.
pub fn unscraped_message(failed: &[(String, String)], scraped: usize) -> String {
    let names: Vec<&str> = failed.iter().map(|(p, _)| p.as_str()).collect();
    let first = failed.first().map_or("", |(_, e)| e.as_str());
    let consequence = if scraped == 0 {
        "keeping the last decision".to_string()
    } else {
        format!("deciding with the {scraped} other pod(s)")
    };
    format!(
        "cannot read the metrics of ready pods {names:?} ({first}); {consequence}: check that the operator can reach the pods' port {}",
        crate::desired::METRICS_PORT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_pods_are_named_with_what_follows() {
        let failed = vec![
            ("orders-a".to_string(), "connection refused".to_string()),
            ("orders-b".to_string(), "timed out".to_string()),
        ];
        let all = unscraped_message(&failed, 0);
        assert!(all.contains(r#"["orders-a", "orders-b"]"#), "{all}");
        assert!(
            all.contains("(connection refused); keeping the last decision"),
            "{all}"
        );
        let some = unscraped_message(&failed[..1], 3);
        assert!(some.contains("deciding with the 3 other pod(s)"), "{some}");
    }

    #[test]
    fn reads_the_metrics_the_policy_needs() {
        let text = r#"
# HELP millpond_records_total Records consumed from Kafka
millpond_records_total 1500
millpond_buffer_fullness 0.25
millpond_limit_max_in_flight 4
millpond_in_flight_batches 3
millpond_flushes_total{trigger="size"} 7
millpond_flushes_total{trigger="time"} 2
millpond_errors_total{type="sink"} 1
millpond_errors_total{type="kafka"} 2
millpond_errors_total{type="commit"} 4
millpond_errors_total{type="io"} 1
millpond_flush_duration_seconds_sum 1.5
millpond_flush_duration_seconds_count 9
millpond_limits_generation 12
millpond_partition_lag{partition="3"} 10
millpond_partition_lag{partition="1"} 0
"#;
        let s = parse(text);
        assert_eq!(s.records_total, 1500.0);
        assert_eq!(s.flushes_by_size, 7.0);
        assert_eq!(s.flushes_total, 9.0);
        assert_eq!(s.sink_errors_total, 2.0, "sink and io errors only");
        assert_eq!(s.max_in_flight, 4.0);
        assert_eq!(s.limits_generation, 12.0);
        assert_eq!(s.partitions, vec![1, 3]);
    }

    #[test]
    fn an_interval_turns_counters_into_rates_and_flags_restarts() {
        let before = PodMetrics {
            records_total: 1000.0,
            records_delivered_total: 800.0,
            flushes_total: 2.0,
            partitions: vec![0, 1],
            ..Default::default()
        };
        let after = PodMetrics {
            records_total: 6000.0,
            records_delivered_total: 3800.0,
            flushes_total: 4.0,
            flushes_by_size: 2.0,
            partitions: vec![0, 1],
            ..Default::default()
        };
        let s = interval(Some(&before), &after, 10.0);
        assert!(s.full_interval);
        // What the sink acknowledged, not what was pulled into the buffer.
        assert_eq!(s.delivered_rate, 300.0);
        assert_eq!((s.flushes, s.size_flushes), (2, 2));
        // A restarted pod's counters went down: not a capacity sample.
        let restarted = PodMetrics {
            records_total: 10.0,
            partitions: vec![0, 1],
            ..Default::default()
        };
        assert!(!interval(Some(&after), &restarted, 10.0).full_interval);
        // A rebalance changed its partitions: not a capacity sample either.
        let moved = PodMetrics {
            records_total: 7000.0,
            records_delivered_total: 4000.0,
            partitions: vec![0],
            ..Default::default()
        };
        assert!(!interval(Some(&after), &moved, 10.0).full_interval);
    }

    /// Two scrapes of a real consumer, recorded by `e2e/record-pod-metrics`.
    fn recorded(situation: &str) -> (PodMetrics, PodMetrics) {
        let text = |n| match (situation, n) {
            ("sink-bound", 1) => include_str!("fixtures/sink-bound.1.prom"),
            ("sink-bound", 2) => include_str!("fixtures/sink-bound.2.prom"),
            ("sink-down", 1) => include_str!("fixtures/sink-down.1.prom"),
            ("sink-down", 2) => include_str!("fixtures/sink-down.2.prom"),
            _ => unreachable!(),
        };
        (parse(text(1)), parse(text(2)))
    }

    /// Both fixtures are recorded 15 s apart.
    const RECORDED_INTERVAL: f64 = 15.0;

    fn classified(situation: &str) -> (policy::PodSample, policy::Signals) {
        let (before, after) = recorded(situation);
        let sample = interval(Some(&before), &after, RECORDED_INTERVAL);
        let obs = policy::Observation {
            pods: vec![sample.clone()],
            ..Default::default()
        };
        let signals =
            policy::bottleneck::classify(&obs, &[true], Some(RECORDED_INTERVAL), None, None);
        (sample, signals)
    }

    #[test]
    fn a_real_pod_waiting_on_a_slow_sink_reads_as_full_and_sink_bound() {
        let (sample, signals) = classified("sink-bound");
        assert!(sample.full_interval);
        assert!(sample.sink_down.is_none());
        // The interval's mean, from the fullness-seconds counter.
        assert!(
            sample.buffer_fullness >= 0.7,
            "mean fullness {}",
            sample.buffer_fullness
        );
        assert_eq!(
            signals.bottleneck,
            policy::Bottleneck::SinkBound,
            "{}",
            signals.describe()
        );
    }

    #[test]
    fn a_real_pod_whose_sink_is_down_says_so_with_its_last_error() {
        let (sample, signals) = classified("sink-down");
        let down = sample.sink_down.as_ref().expect("the sink is down");
        assert!(down.seconds >= 20.0, "{down:?}");
        assert!(
            down.error.starts_with("POST http://127.0.0.1:") && down.error.ends_with("/ingest)"),
            "the error as the pod wrote it, unescaped: {}",
            down.error
        );
        assert_eq!(
            signals.bottleneck,
            policy::Bottleneck::SinkDown,
            "{}",
            signals.describe()
        );
    }

    #[test]
    fn label_values_are_unescaped() {
        let m = parse(
            "millpond_sink_up 0\nmillpond_sink_last_error_info{error=\"a \\\"quoted\\\" path C:\\\\x\\nline\"} 1\n",
        );
        assert_eq!(m.sink_up, Some(0.0));
        assert_eq!(m.sink_last_error, "a \"quoted\" path C:\\x\nline");
    }
}
