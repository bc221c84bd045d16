//! The consumer against the real Kafka broker when its sink is in trouble:
//! down for longer than `max.poll.interval.ms`, refusing one record of a
//! batch, or handed a record larger than a batch may be.
//!
//! Starts: the `millpond-consumer` binary and an HTTP endpoint in this
//! process whose answers the test scripts. Needs a running broker
//! (`e2e/stack up kafka`); `e2e/test` runs these with `--include-ignored`.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::endpoint::Endpoint;
use support::*;

const RECORD: usize = 200;

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_sink_down_past_the_poll_interval_holds_the_group_and_delivers_once_after() {
    let work = tempfile::tempdir().unwrap();
    let n = 20_000;
    let topic = topic("sinkdown", 4);
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..n, RECORD).unwrap();
    let group = format!("millpond-{topic}");
    let down = Arc::new(AtomicBool::new(true));
    let is_down = down.clone();
    let endpoint = Endpoint::start(Arc::new(move |_: &str| {
        if is_down.load(Ordering::Relaxed) {
            (503, "maintenance".into())
        } else {
            (200, String::new())
        }
    }));
    let mut c = Consumer::start(
        work.path(),
        "held",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", endpoint.url()),
            ("FLUSH_BYTES", "256Ki".into()),
            ("SINK_BACKOFF_BASE_MS", "100".into()),
            ("SINK_BACKOFF_CAP_MS", "1000".into()),
            // A loop that stopped polling would lose its partitions after 8 s.
            (
                "KAFKA_CONFIG",
                "session.timeout.ms=6000,max.poll.interval.ms=8000".into(),
            ),
        ],
    );
    wait_until(Duration::from_secs(30), "the sink reported down", || {
        c.metric("millpond_sink_up") == Some(0.0)
    });
    // Three poll intervals with the sink down.
    std::thread::sleep(Duration::from_secs(24));
    assert!(!c.exited(), "the consumer holds:\n{}", c.log_text());
    assert_eq!(
        c.get("/healthz").map(|r| r.0),
        Some(200),
        "the loop is alive"
    );
    assert!(c.metric("millpond_sink_down_seconds").unwrap() >= 20.0);
    assert!(
        c.metric("millpond_buffer_fullness").unwrap() >= 1.0,
        "a pod waiting on its sink is full"
    );
    let (_, metrics) = c.get("/metrics").unwrap();
    assert!(
        metrics.contains(r#"millpond_sink_last_error_info{error="POST http://127.0.0.1:"#)
            && metrics.contains(r#"HTTP 503 Service Unavailable: maintenance"} 1"#),
        "the last error names the endpoint and its answer:\n{metrics}"
    );
    assert_eq!(
        kafka::committed(&kafka::bootstrap(), &group, &topic, 4)
            .unwrap()
            .values()
            .sum::<i64>(),
        0,
        "nothing is committed while nothing was written"
    );

    down.store(false, Ordering::Relaxed);
    wait_until(Duration::from_secs(120), "delivery after recovery", || {
        endpoint.accepted() >= n
    });
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 4).unwrap();
    wait_until(
        Duration::from_secs(30),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap() == highs,
    );
    let dups = assert_all_present(&endpoint.ids.lock().unwrap(), n);
    assert_eq!(dups, 0, "no rebalance, so no record twice");
    let log = c.log_text();
    assert_eq!(
        log.matches("partitions assigned").count(),
        1,
        "one assignment, no rebalance during the outage:\n{log}"
    );
    assert!(!log.contains("partitions revoked"), "{log}");
    assert_eq!(c.metric("millpond_sink_up"), Some(1.0));
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn sigterm_while_the_sink_is_down_exits_zero_within_the_hand_off_time_committing_nothing_unwritten()
{
    let work = tempfile::tempdir().unwrap();
    let topic = topic("sinkdownterm", 2);
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..2_000, RECORD).unwrap();
    let group = format!("millpond-{topic}");
    let endpoint = Endpoint::start(Arc::new(|_: &str| (503, String::new())));
    let mut c = Consumer::start(
        work.path(),
        "term",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", endpoint.url()),
            ("HANDOFF_TIMEOUT_MS", "3000".into()),
            ("SINK_BACKOFF_CAP_MS", "500".into()),
        ],
    );
    wait_until(Duration::from_secs(30), "the sink reported down", || {
        c.metric("millpond_sink_up") == Some(0.0)
    });
    let asked = std::time::Instant::now();
    c.signal("TERM");
    let status = c.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", c.log_text());
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped within the hand-off time: {:?}",
        asked.elapsed()
    );
    assert!(
        c.log_text().contains("HANDOFF_TIMEOUT_MS"),
        "{}",
        c.log_text()
    );
    assert_eq!(
        kafka::committed(&kafka::bootstrap(), &group, &topic, 2)
            .unwrap()
            .values()
            .sum::<i64>(),
        0
    );
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn one_record_the_sink_refuses_goes_to_the_dead_letter_topic_and_the_rest_is_delivered() {
    let work = tempfile::tempdir().unwrap();
    let n = 3_000;
    let bad = 1_234;
    let topic = topic("refused", 2);
    let servers = kafka::bootstrap();
    kafka::produce_json(&servers, &topic, 2, 0..n, RECORD).unwrap();
    let dlq = format!("{topic}-dlq");
    block_on(kafka::create_topic(&servers, &dlq, 1)).unwrap();
    let marker = format!("{{\"id\":{bad},");
    let endpoint = Endpoint::start(Arc::new(move |body: &str| {
        if body.contains(&marker) {
            (422, format!("record {bad} has no customer"))
        } else {
            (200, String::new())
        }
    }));
    let mut c = Consumer::start(
        work.path(),
        "refused",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", endpoint.url()),
            ("FLUSH_BYTES", "128Ki".into()),
            ("DEAD_LETTER_TOPIC", dlq.clone()),
        ],
    );
    let group = format!("millpond-{topic}");
    let highs = kafka::high_watermarks(&servers, &topic, 2).unwrap();
    wait_until(
        Duration::from_secs(60),
        "commits at the high watermarks",
        || kafka::committed(&servers, &group, &topic, 2).unwrap() == highs,
    );
    let ids = endpoint.ids.lock().unwrap().clone();
    assert!(!ids.contains_key(&bad));
    let others: BTreeMap<u64, u32> = (0..n).filter(|i| *i != bad).map(|i| (i, 1)).collect();
    let delivered: BTreeMap<u64, u32> = ids.into_iter().collect();
    assert_eq!(delivered, others, "every other record once");
    assert!(endpoint.refusals() >= 2, "bisected");
    let dead = kafka::read_all(&servers, &dlq, 1).unwrap();
    assert_eq!(dead.len(), 1, "only the refused record");
    let value: serde_json::Value = serde_json::from_slice(&dead[0].0).unwrap();
    assert_eq!(value["id"], bad);
    assert_eq!(dead[0].1["millpond.sink.status"], "422");
    assert!(
        dead[0].1["millpond.error"].ends_with(&format!(
            "HTTP 422 Unprocessable Entity: record {bad} has no customer"
        )),
        "{:?}",
        dead[0].1
    );
    assert_eq!(c.metric("millpond_sink_refused_records_total"), Some(1.0));
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_refused_record_without_a_dead_letter_topic_stops_the_consumer_at_its_offset() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("refusedstop", 1);
    let servers = kafka::bootstrap();
    kafka::produce_json(&servers, &topic, 1, 0..500, RECORD).unwrap();
    let endpoint = Endpoint::start(Arc::new(|body: &str| {
        if body.contains("{\"id\":300,") {
            (400, "bad".into())
        } else {
            (200, String::new())
        }
    }));
    let mut c = Consumer::start(
        work.path(),
        "refusedstop",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", endpoint.url()),
            ("FLUSH_BYTES", "64Ki".into()),
        ],
    );
    let status = c.wait(Duration::from_secs(60));
    let log = c.log_text();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains(&format!(
            "poison record at {topic}/0@300: the sink refused it"
        )),
        "{log}"
    );
    let committed = kafka::committed(&servers, &format!("millpond-{topic}"), &topic, 1).unwrap();
    assert_eq!(
        committed.get(&0),
        Some(&300),
        "up to, not past, the refused record"
    );
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_record_larger_than_the_flush_size_goes_to_the_dead_letter_topic() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("huge", 1);
    let servers = kafka::bootstrap();
    kafka::produce_json(&servers, &topic, 1, 0..100, RECORD).unwrap();
    kafka::produce_json(&servers, &topic, 1, 100..101, 300 << 10).unwrap();
    kafka::produce_json(&servers, &topic, 1, 101..200, RECORD).unwrap();
    let dlq = format!("{topic}-dlq");
    block_on(kafka::create_topic(&servers, &dlq, 1)).unwrap();
    let mut c = Consumer::start(
        work.path(),
        "huge",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", format!("file://{}", out.display())),
            ("FLUSH_BYTES", "256Ki".into()),
            ("DEAD_LETTER_TOPIC", dlq.clone()),
        ],
    );
    let group = format!("millpond-{topic}");
    wait_until(
        Duration::from_secs(60),
        "commit at the high watermark",
        || {
            kafka::committed(&servers, &group, &topic, 1)
                .unwrap()
                .get(&0)
                == Some(&200)
        },
    );
    let ids = ids_in_dir(&out);
    assert!(!ids.contains_key(&100));
    assert_eq!(ids.len(), 199);
    let dead = kafka::read_all(&servers, &dlq, 1).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["millpond.source.offset"], "100");
    assert!(
        dead[0].1["millpond.error"].starts_with("record too large: 307"),
        "{:?}",
        dead[0].1
    );
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}
