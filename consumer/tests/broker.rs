//! The consumer against the real Kafka broker of the local stack.
//!
//! Starts: the `millpond-consumer` binary (one or two processes) and, for the
//! HTTP sink tests, an HTTP endpoint in this process. Needs a running broker
//! (`e2e/stack up kafka`); `e2e/test` runs these with `--include-ignored`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use millpond_testkit::tls;
use support::endpoint::Endpoint;
use support::*;

const N: u64 = 100_000;
const RECORD: usize = 200;

fn sink_url(dir: &std::path::Path) -> String {
    format!("file://{}", dir.display())
}

fn total(offsets: &BTreeMap<i32, i64>) -> i64 {
    offsets.values().sum()
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn every_record_of_four_partitions_reaches_the_file_sink_and_is_committed() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("all", 4);
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..N, RECORD).unwrap();

    let mut c = Consumer::start(
        work.path(),
        "c",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", sink_url(&out)),
            ("FLUSH_BYTES", "1Mi".into()),
        ],
    );
    wait_until(Duration::from_secs(180), "all records in the sink", || {
        ids_in_dir(&out).len() as u64 == N
    });
    let group = format!("millpond-{topic}");
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 4).unwrap();
    wait_until(
        Duration::from_secs(30),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap() == highs,
    );
    assert_eq!(c.metric("millpond_records_delivered_total"), Some(N as f64));
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    let dups = assert_all_present(&ids_in_dir(&out), N);
    assert_eq!(dups, 0, "a clean run delivers every record once");
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn tombstones_are_skipped_and_counted_and_records_with_headers_are_delivered() {
    use rdkafka::message::{Header, OwnedHeaders};
    const RECORDS: u64 = 10_000;
    let tombstone = |id: u64| id % 10 == 3;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("tombstones", 2);
    kafka::produce_records(&kafka::bootstrap(), &topic, 2, 0..RECORDS, |id| {
        let trace = id.to_string();
        kafka::Outgoing {
            value: (!tombstone(id)).then(|| kafka::json_record(id, RECORD)),
            headers: Some(OwnedHeaders::new().insert(Header {
                key: "trace-id",
                value: Some(&trace),
            })),
        }
    })
    .unwrap();
    let values = (0..RECORDS).filter(|id| !tombstone(*id)).count();

    let mut c = Consumer::start(
        work.path(),
        "c",
        &[("KAFKA_TOPIC", topic.clone()), ("SINK_URL", sink_url(&out))],
    );
    let group = format!("millpond-{topic}");
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 2).unwrap();
    wait_until(
        Duration::from_secs(60),
        "every record with a value written and the commits at the high watermarks",
        || {
            c.exited()
                || (ids_in_dir(&out).len() == values
                    && kafka::committed(&kafka::bootstrap(), &group, &topic, 2).unwrap() == highs)
        },
    );
    let skipped = c
        .get("/metrics")
        .map(|(_, text)| {
            text.lines()
                .find(|l| l.starts_with("millpond_records_skipped_total{reason=\"tombstone\"}"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    let ids = ids_in_dir(&out);
    assert!(ids.keys().all(|id| !tombstone(*id)), "no tombstone written");
    assert_eq!(ids.len(), values);
    assert!(ids.values().all(|n| *n == 1), "each record once");
    assert_eq!(
        skipped.as_deref(),
        Some(
            format!(
                "millpond_records_skipped_total{{reason=\"tombstone\"}} {}",
                RECORDS as usize - values
            )
            .as_str()
        )
    );
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_at_most_the_unacknowledged_batches()
{
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("kill9", 4);
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..N, RECORD).unwrap();
    let env = [
        ("KAFKA_TOPIC", topic.clone()),
        ("SINK_URL", sink_url(&out)),
        ("FLUSH_BYTES", "64Ki".into()),
        ("MAX_IN_FLIGHT", "2".into()),
    ];
    let mut first = Consumer::start(work.path(), "first", &env);
    wait_until(
        Duration::from_secs(120),
        "a third of the records delivered",
        || out.exists() && ids_in_dir(&out).len() as u64 > N / 3,
    );
    first.signal("KILL");
    first.wait(Duration::from_secs(10));
    let before_restart = ids_in_dir(&out).len() as u64;
    assert!(
        before_restart < N,
        "killed before the end ({before_restart} delivered)"
    );

    let mut second = Consumer::start(work.path(), "second", &env);
    wait_until(
        Duration::from_secs(180),
        "all records after the restart",
        || ids_in_dir(&out).len() as u64 == N,
    );
    second.signal("TERM");
    assert!(second.wait(Duration::from_secs(30)).success());

    let dups = assert_all_present(&ids_in_dir(&out), N);
    // One batch is at most FLUSH_BYTES plus one line; at most MAX_IN_FLIGHT
    // writes plus the acknowledged-but-not-yet-committed ones (one loop turn)
    // can be unacknowledged in Kafka when the process dies.
    let line = kafka::json_record(N, RECORD).len() as u64 + 1;
    let per_batch = (64 << 10) / line + 1;
    let bound = (2 + 2) * per_batch;
    assert!(dups <= bound, "{dups} duplicates, bound {bound}");
    println!("kill -9 at {before_restart} records: {dups} duplicates (bound {bound})");
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_second_consumer_joins_and_the_first_leaves_on_sigterm_without_loss() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("group", 4);
    let env = [
        ("KAFKA_TOPIC", topic.clone()),
        ("SINK_URL", sink_url(&out)),
        ("FLUSH_BYTES", "256Ki".into()),
    ];
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..N / 2, RECORD).unwrap();
    let mut a = Consumer::start(work.path(), "a", &env);
    wait_until(
        Duration::from_secs(60),
        "consumer a owns all partitions",
        || a.metric("millpond_assigned_partitions") == Some(4.0),
    );
    let b = Consumer::start(work.path(), "b", &env);
    wait_until(
        Duration::from_secs(60),
        "partitions split between a and b",
        || {
            let (pa, pb) = (
                a.metric("millpond_assigned_partitions"),
                b.metric("millpond_assigned_partitions"),
            );
            matches!((pa, pb), (Some(x), Some(y)) if x >= 1.0 && y >= 1.0 && x + y == 4.0)
        },
    );
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, N / 2..N, RECORD).unwrap();

    a.signal("TERM");
    let status = a.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        a.log_text()
    );
    assert!(a
        .log_text()
        .contains("partitions revoked: flushed, committed, handed over"));
    wait_until(Duration::from_secs(60), "b owns all partitions", || {
        b.metric("millpond_assigned_partitions") == Some(4.0)
    });
    wait_until(Duration::from_secs(180), "all records delivered", || {
        ids_in_dir(&out).len() as u64 == N
    });
    let dups = assert_all_present(&ids_in_dir(&out), N);
    assert_eq!(dups, 0, "a cooperative hand-off commits before letting go");
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn partitions_added_while_running_are_planned_for_before_they_are_read_and_nothing_is_lost() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("grow", 2);
    let servers = kafka::bootstrap();
    kafka::produce_json(&servers, &topic, 2, 0..N / 2, RECORD).unwrap();
    let c = Consumer::start(
        work.path(),
        "c",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", sink_url(&out)),
            ("MEMORY_BUDGET", "128Mi".into()),
            // The group leader notices new partitions on a metadata refresh.
            (
                "KAFKA_CONFIG",
                "topic.metadata.refresh.interval.ms=1000,statistics.interval.ms=200".into(),
            ),
            // Slow the sink down so librdkafka's queues fill up.
            ("FLUSH_BYTES", "64Ki".into()),
            ("MAX_IN_FLIGHT", "1".into()),
        ],
    );
    wait_until(Duration::from_secs(60), "two partitions assigned", || {
        c.metric("millpond_assigned_partitions") == Some(2.0)
    });
    let small_plan = c.metric("millpond_prefetch_limit_bytes").unwrap();
    assert_eq!(c.metric("millpond_planned_partitions"), Some(2.0));

    block_on(kafka::add_partitions(&servers, &topic, 12)).unwrap();
    kafka::produce_json(&servers, &topic, 12, N / 2..N, RECORD).unwrap();
    // The fullest librdkafka's queues were, against the plan in force.
    let mut worst_prefetch = (0.0f64, 1.0f64);
    wait_until(Duration::from_secs(180), "all records in the sink", || {
        if let (Some(used), Some(limit)) = (
            c.metric("millpond_prefetch_bytes"),
            c.metric("millpond_prefetch_limit_bytes"),
        ) {
            if used / limit > worst_prefetch.0 / worst_prefetch.1 {
                worst_prefetch = (used, limit);
            }
        }
        ids_in_dir(&out).len() as u64 == N
    });
    assert!(
        worst_prefetch.0 <= worst_prefetch.1,
        "librdkafka's queues held {} B against a plan of {} B",
        worst_prefetch.0,
        worst_prefetch.1
    );
    assert_eq!(
        c.metric("millpond_replans_total"),
        Some(1.0),
        "{}",
        c.log_text()
    );
    assert_eq!(c.metric("millpond_planned_partitions"), Some(12.0));
    assert_eq!(c.metric("millpond_assigned_partitions"), Some(12.0));
    let log = c.log_text();
    assert!(
        log.contains("more partitions assigned than the memory plan holds"),
        "{log}"
    );
    println!(
        "prefetch plan {small_plan} B for 2 partitions, {} B for 12; worst sample {} of {} B",
        c.metric("millpond_prefetch_limit_bytes").unwrap(),
        worst_prefetch.0,
        worst_prefetch.1
    );
    let dups = assert_all_present(&ids_in_dir(&out), N);
    assert_eq!(
        dups, 0,
        "the hand-off before re-planning commits what was written"
    );
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn http_sink_outage_commits_nothing_unwritten_and_delivers_everything_after_recovery() {
    let work = tempfile::tempdir().unwrap();
    let n = 20_000;
    let topic = topic("http", 4);
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..n, RECORD).unwrap();
    let group = format!("millpond-{topic}");
    let endpoint = Endpoint::failing_until(Instant::now() + Duration::from_secs(8));

    // Retries outlast the outage inside one process.
    let mut c = Consumer::start(
        work.path(),
        "retrying",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", endpoint.url()),
            ("FLUSH_BYTES", "256Ki".into()),
            ("SINK_BACKOFF_BASE_MS", "100".into()),
            ("SINK_BACKOFF_CAP_MS", "1000".into()),
        ],
    );
    let mut samples = 0;
    while endpoint.accepted() < n {
        // Committed first: what is accepted only grows after.
        let committed = kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap();
        let accepted = endpoint.accepted_through();
        for (p, offset) in &committed {
            let through = accepted.get(p).copied().unwrap_or(0);
            assert!(
                *offset <= through,
                "partition {p} committed at {offset}, but the endpoint accepted it only up to {through}"
            );
        }
        samples += 1;
        assert!(samples < 600, "not delivered in time:\n{}", c.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(endpoint.refusals() > 0, "the outage was exercised");
    assert_all_present(&endpoint.ids.lock().unwrap(), n);
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 4).unwrap();
    wait_until(
        Duration::from_secs(30),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap() == highs,
    );
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_sink_down_past_the_give_up_time_ends_the_process_non_zero_without_commit_and_a_restart_delivers(
) {
    let work = tempfile::tempdir().unwrap();
    let n = 5_000;
    let topic = topic("httpdown", 2);
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..n, RECORD).unwrap();
    let group = format!("millpond-{topic}");
    let endpoint = Endpoint::failing_until(Instant::now() + Duration::from_secs(3600));
    let env = |url: String| {
        vec![
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", url),
            ("SINK_BACKOFF_BASE_MS", "50".into()),
            ("SINK_BACKOFF_CAP_MS", "200".into()),
            ("SINK_GIVE_UP_AFTER_MS", "2000".into()),
        ]
    };
    let mut c = Consumer::start(work.path(), "down", &env(endpoint.url()));
    let status = c.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", c.log_text());
    assert!(
        c.log_text()
            .contains("HTTP 500 Internal Server Error; giving up after"),
        "{}",
        c.log_text()
    );
    assert_eq!(
        total(&kafka::committed(&kafka::bootstrap(), &group, &topic, 2).unwrap()),
        0
    );

    // Kubernetes would restart the pod; the data is still in Kafka.
    let healthy = Endpoint::failing_until(Instant::now());
    let mut c = Consumer::start(work.path(), "restarted", &env(healthy.url()));
    wait_until(Duration::from_secs(60), "delivery after restart", || {
        healthy.accepted() >= n
    });
    assert_all_present(&healthy.ids.lock().unwrap(), n);
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn limits_change_live_through_the_admin_endpoint() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("limits", 2);
    let mut c = Consumer::start(
        work.path(),
        "live",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", sink_url(&out)),
            ("FLUSH_BYTES", "4Mi".into()),
            ("FLUSH_INTERVAL_MS", "60000".into()),
            ("ADMIN_TOKEN", "s3cret".into()),
        ],
    );
    wait_until(Duration::from_secs(60), "partitions assigned", || {
        c.metric("millpond_assigned_partitions") == Some(2.0)
    });
    assert_eq!(c.metric("millpond_limits_generation"), Some(0.0));
    assert_eq!(
        c.metric("millpond_limit_flush_bytes"),
        Some((4 << 20) as f64)
    );

    let put = |token: &str, body: &str| {
        let auth = format!("Bearer {token}");
        http_request(
            "PUT",
            &c.url("/admin/limits"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .expect("admin endpoint answers")
    };
    assert_eq!(put("wrong", r#"{"generation":1}"#).0, 401);
    let (status, body) = put("s3cret", r#"{"generation":2,"flushBytes":1073741824}"#);
    assert_eq!(status, 422);
    assert!(body.contains("budget is 256.0Mi"), "{body}");
    let (status, body) = put(
        "s3cret",
        r#"{"generation":7,"flushBytes":65536,"maxInFlight":1,"flushIntervalMs":200}"#,
    );
    assert_eq!(status, 200, "{body}");

    wait_until(Duration::from_secs(10), "generation 7 in force", || {
        c.metric("millpond_limits_generation") == Some(7.0)
    });
    assert_eq!(c.metric("millpond_limit_flush_bytes"), Some(65536.0));
    assert_eq!(c.metric("millpond_limit_max_in_flight"), Some(1.0));

    // The same process now flushes small batches: with the old 4Mi / 60s limits
    // nothing would have been written yet.
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..20_000, RECORD).unwrap();
    wait_until(Duration::from_secs(60), "all records delivered", || {
        out.exists() && ids_in_dir(&out).len() == 20_000
    });
    assert!(c.child.try_wait().unwrap().is_none(), "no restart");
    let line = kafka::json_record(20_000, RECORD).len() as u64 + 1;
    for f in std::fs::read_dir(&out).unwrap() {
        let size = f.unwrap().metadata().unwrap().len();
        assert!(
            size <= 65536 + line,
            "file of {size} bytes exceeds the new flush size"
        );
    }
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_poison_record_stops_the_consumer_at_its_offset_or_goes_to_the_dead_letter_topic() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("poison", 2);
    let servers = kafka::bootstrap();
    // Partition 1 gets ids 1, 3, ..., 999 (offsets 0..=499), then the poison at offset 500.
    kafka::produce_json(&servers, &topic, 2, 0..1000, RECORD).unwrap();
    kafka::produce_with(&servers, &topic, 2, 1001..1002, |_| b"not json".to_vec()).unwrap();
    kafka::produce_json(&servers, &topic, 2, 2000..3000, RECORD).unwrap();
    let group = format!("millpond-{topic}");

    let mut stopped = Consumer::start(
        work.path(),
        "stop",
        &[("KAFKA_TOPIC", topic.clone()), ("SINK_URL", sink_url(&out))],
    );
    let status = stopped.wait(Duration::from_secs(60));
    let log = stopped.log_text();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains(&format!(
            "poison record at {topic}/1@500: value is not a JSON object"
        )),
        "{log}"
    );
    let committed = kafka::committed(&servers, &group, &topic, 2).unwrap();
    assert_eq!(
        committed.get(&1),
        Some(&500),
        "committed up to, not past, the poison record"
    );
    let ids = ids_in_dir(&out);
    assert!(
        (0..1000)
            .filter(|i| i % 2 == 1)
            .all(|i| ids.contains_key(&i)),
        "records before the poison are delivered"
    );

    let dlq = format!("{topic}-dlq");
    block_on(kafka::create_topic(&servers, &dlq, 1)).unwrap();
    let mut diverted = Consumer::start(
        work.path(),
        "dlq",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", sink_url(&out)),
            ("DEAD_LETTER_TOPIC", dlq.clone()),
        ],
    );
    let highs = kafka::high_watermarks(&servers, &topic, 2).unwrap();
    wait_until(
        Duration::from_secs(60),
        "commits at the high watermarks",
        || kafka::committed(&servers, &group, &topic, 2).unwrap() == highs,
    );
    let ids = ids_in_dir(&out);
    assert!(
        (0..1000).chain(2000..3000).all(|i| ids.contains_key(&i)),
        "every good record delivered"
    );
    let dead = kafka::read_all(&servers, &dlq, 1).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, b"not json");
    assert_eq!(dead[0].1["millpond.source.offset"], "500");
    assert_eq!(dead[0].1["millpond.source.partition"], "1");
    assert_eq!(
        diverted.metric("millpond_dead_letter_records_total"),
        Some(1.0)
    );
    diverted.signal("TERM");
    assert!(diverted.wait(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn parquet_files_hold_every_record_with_metadata() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let topic = topic("parquet", 4);
    let n = 10_000;
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..n, RECORD).unwrap();
    let mut c = Consumer::start(
        work.path(),
        "pq",
        &[
            ("KAFKA_TOPIC", topic.clone()),
            ("SINK_URL", format!("{}?format=parquet", sink_url(&out))),
            ("SINK_METADATA", "true".into()),
        ],
    );
    let group = format!("millpond-{topic}");
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 4).unwrap();
    wait_until(
        Duration::from_secs(60),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap() == highs,
    );
    c.signal("TERM");
    assert!(c.wait(Duration::from_secs(30)).success());
    let mut ids = BTreeMap::new();
    for f in std::fs::read_dir(&out).unwrap() {
        for batch in parquet_batches(&f.unwrap().path()) {
            assert!(
                batch.schema().field_with_name("_offset").is_ok(),
                "metadata column present"
            );
            count_parquet_ids(&batch, &mut ids);
        }
    }
    assert_eq!(assert_all_present(&ids, n), 0);
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_missing_topic_is_refused_with_its_name() {
    let work = tempfile::tempdir().unwrap();
    let mut c = Consumer::start(
        work.path(),
        "missing",
        &[
            ("KAFKA_TOPIC", "no-such-topic-millpond".into()),
            ("SINK_URL", "file:///tmp/millpond-missing".into()),
        ],
    );
    let status = c.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2));
    assert!(
        c.log_text()
            .contains("topic `no-such-topic-millpond` does not exist"),
        "{}",
        c.log_text()
    );
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_flush_size_beyond_the_budget_is_refused_with_the_numbers() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("budget", 4);
    let mut c = Consumer::start(
        work.path(),
        "budget",
        &[
            ("KAFKA_TOPIC", topic),
            ("SINK_URL", "file:///tmp/millpond-budget".into()),
            ("MEMORY_BUDGET", "128Mi".into()),
            ("FLUSH_BYTES", "64Mi".into()),
        ],
    );
    let status = c.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{}", c.log_text());
    let log = c.log_text();
    assert!(
        log.contains("flush_bytes=64.0Mi with max_in_flight=4 needs")
            && log.contains("but the budget is 128.0Mi"),
        "{log}"
    );
}

/// librdkafka properties for the broker's SASL_SSL listener (SCRAM-SHA-512,
/// the stack's CA, hostname verification on) and for its mutual TLS one.
fn secure_listeners() -> [(&'static str, String, String); 2] {
    let ca = tls::stack_env("KAFKA_CA_FILE");
    [
        (
            "SASL_SSL with SCRAM-SHA-512",
            tls::stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
            format!(
                "security.protocol=sasl_ssl,sasl.mechanism=SCRAM-SHA-512,sasl.username={},sasl.password={},ssl.ca.location={ca}",
                tls::stack_env("KAFKA_SCRAM_TEST_USER"),
                tls::stack_env("KAFKA_SCRAM_TEST_PASSWORD"),
            ),
        ),
        (
            "mutual TLS",
            tls::stack_env("KAFKA_MTLS_BOOTSTRAP_SERVERS"),
            format!(
                "security.protocol=ssl,ssl.ca.location={ca},ssl.certificate.location={},ssl.key.location={}",
                tls::stack_env("KAFKA_CLIENT_CERT_FILE"),
                tls::stack_env("KAFKA_CLIENT_KEY_FILE"),
            ),
        ),
    ]
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn every_codec_is_delivered_over_sasl_ssl_scram_and_over_mutual_tls() {
    const RECORDS: u64 = 20_000;
    let work = tempfile::tempdir().unwrap();
    let codecs = ["zstd", "lz4", "snappy", "gzip"];
    let topics: Vec<String> = codecs
        .iter()
        .map(|codec| {
            let t = topic(&format!("codec-{codec}"), 2);
            kafka::produce_json_compressed(&kafka::bootstrap(), &t, 2, 0..RECORDS, RECORD, codec)
                .unwrap();
            t
        })
        .collect();
    for (l, (listener, bootstrap, config)) in secure_listeners().into_iter().enumerate() {
        for (codec, topic) in codecs.iter().zip(&topics) {
            let name = format!("{codec}-{l}");
            let out = work.path().join(&name);
            let mut c = Consumer::start(
                work.path(),
                &name,
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone()),
                    ("KAFKA_CONFIG", config.clone()),
                    ("KAFKA_TOPIC", topic.clone()),
                    ("KAFKA_GROUP_ID", format!("{topic}-{l}")),
                    ("SINK_URL", sink_url(&out)),
                ],
            );
            let what = format!("every {codec} record over {listener}");
            wait_until(Duration::from_secs(60), &what, || {
                ids_in_dir(&out).len() as u64 == RECORDS || c.exited()
            });
            c.signal("TERM");
            let status = c.wait(Duration::from_secs(30));
            assert!(status.success(), "{what}: {}", c.log_text());
            let dups = assert_all_present(&ids_in_dir(&out), RECORDS);
            assert_eq!(dups, 0, "{what}: a clean run delivers every record once");
        }
    }
}

/// Starts a consumer with `config` against `bootstrap` and returns its exit
/// code and log once it gave up.
fn refused_start(
    work: &std::path::Path,
    name: &str,
    bootstrap: String,
    config: String,
) -> (Option<i32>, String) {
    let mut c = Consumer::start(
        work,
        name,
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
            ("KAFKA_CONFIG", config),
            ("KAFKA_TOPIC", "any".into()),
            ("KAFKA_STARTUP_TIMEOUT_MS", "5000".into()),
            ("SINK_URL", sink_url(&work.join(name))),
        ],
    );
    let status = c.wait(Duration::from_secs(30));
    (status.code(), c.log_text())
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn a_wrong_ca_a_certificate_for_another_name_and_a_wrong_password_are_named_as_such() {
    let work = tempfile::tempdir().unwrap();
    // A CA that did not sign the brokers' certificate.
    let other_ca = tls::untrusted_ca(work.path());

    let ca = tls::stack_env("KAFKA_CA_FILE");
    let wrong_name = format!(
        "the brokers' certificate does not name the address connected to ({}); it names kafka.wrong-name.invalid",
        tls::wrong_name_host()
    );
    let cases = [
        (
            "wrong-ca",
            tls::stack_env("KAFKA_SSL_BOOTSTRAP_SERVERS"),
            format!("security.protocol=ssl,ssl.ca.location={}", other_ca.display()),
            [
                "TLS handshake with Kafka failed at",
                "the brokers' certificate is not signed by the trusted CA",
                "certificate verify failed",
            ],
        ),
        (
            "wrong-name",
            tls::stack_env("KAFKA_WRONG_NAME_BOOTSTRAP_SERVERS"),
            format!("security.protocol=ssl,ssl.ca.location={ca}"),
            ["TLS handshake with Kafka failed at", wrong_name.as_str(), "certificate verify failed"],
        ),
        (
            "wrong-password",
            tls::stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
            format!(
                "security.protocol=sasl_ssl,sasl.mechanism=SCRAM-SHA-512,sasl.username={},sasl.password=not-the-password,ssl.ca.location={ca}",
                tls::stack_env("KAFKA_SCRAM_TEST_USER"),
            ),
            [
                "Kafka refused the credentials (authentication failed) at",
                "check the SASL mechanism, username and password",
                "SASL authentication error",
            ],
        ),
    ];
    for (name, bootstrap, config, expected) in cases {
        let (code, log) = refused_start(work.path(), name, bootstrap, config);
        assert_eq!(code, Some(1), "{name}: {log}");
        for text in expected {
            assert!(log.contains(text), "{name}: no `{text}` in {log}");
        }
    }
}
