//! The Iceberg table sink against the stack's Iceberg REST catalog (Apache
//! Iceberg's own server) and S3 store (versitygw). What landed is read by
//! pyiceberg, not by the consumer's code.
//!
//! Starts: `millpond-consumer` processes. Needs the local Kafka broker, the
//! S3 store and the catalog (`e2e/stack up kafka iceberg`,
//! `eval "$(e2e/stack env)"`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::*;

const RECORD: usize = 200;

use millpond_testkit::iceberg::{create_table, read, stack_var, Catalog};

/// What a consumer needs to reach the REST catalog and the store.
fn iceberg_env(table: &str) -> Vec<(&'static str, String)> {
    iceberg_env_in(Catalog::Rest, table)
}

/// What a consumer needs to reach `catalog` and the store.
fn iceberg_env_in(catalog: Catalog, table: &str) -> Vec<(&'static str, String)> {
    let (namespace, name) = table.split_once('.').unwrap();
    let mut env = vec![
        ("SINK_URL", format!("iceberg://{namespace}/{name}")),
        ("ICEBERG_CATALOG_URI", catalog.uri()),
        ("AWS_ENDPOINT", stack_var("S3_ENDPOINT")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", stack_var("S3_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", stack_var("S3_SECRET_ACCESS_KEY")),
        ("AWS_REGION", stack_var("S3_REGION")),
    ];
    if catalog == Catalog::Sql {
        // Where the SQL catalog puts a table it creates.
        env.push(("ICEBERG_WAREHOUSE", stack_var("ICEBERG_WAREHOUSE")));
    }
    env
}

/// A fresh table of the test records in the stack's catalog.
fn table(slug: &str, partition: Option<&str>) -> String {
    let name = format!("millpond_tests.{}", slug.replace('-', "_"));
    create_table(&name, partition);
    name
}

fn committed_to_the_end(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let highs = kafka::high_watermarks(&kafka::bootstrap(), topic, partitions).unwrap();
    wait_until(
        Duration::from_secs(120),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), group, topic, partitions).unwrap() == highs,
    );
    highs
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn every_record_lands_once_and_the_tables_offsets_are_the_groups() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("ice-once", 4);
    let table = table(&topic, None);
    let n = 20_000;
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..n, RECORD).unwrap();
    let mut env = iceberg_env(&table);
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("FLUSH_BYTES", "512Ki".into()));
    let mut c = Consumer::start(work.path(), "ice", &env);
    let highs = committed_to_the_end(&format!("millpond-{topic}"), &topic, 4);
    let (_, metrics) = c.get("/metrics").unwrap();
    let committed = metrics
        .lines()
        .find(|l| l.starts_with("millpond_table_commits_total{result=\"committed\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    let read = read(&table, &topic);
    read.assert_every_id_once(n);
    assert_eq!(read.offsets, highs, "the table's offsets are the group's");
    assert!(read.snapshots >= 2, "one snapshot per flush: {read:?}");
    assert_eq!(
        committed, read.snapshots,
        "every snapshot counted as a commit"
    );
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn a_partitioned_table_gets_every_record_once() {
    let table = table(&kafka::unique_topic("ice-bucketed"), Some("bucket"));
    let read = deliver(
        &table,
        "ice-bucketed",
        |id| kafka::json_record(id, RECORD),
        &[],
    );
    read.assert_every_id_once(500);
    assert!(
        read.data_files.len() >= 2,
        "one data file per bucket: {read:?}"
    );
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn a_table_partitioned_by_every_kind_of_transform_gets_every_record_once() {
    let table = table(&kafka::unique_topic("ice-transforms"), Some("transforms"));
    let record = |id: u64| {
        let region = ["eu", "us", "ap"][id as usize % 3];
        format!(
            r#"{{"id":{id},"pad":"p{}","region":"{region}","at":"2026-12-03T{:02}:15:00Z","on":"2026-{:02}-10","key":"0190e0b2-7c1a-7000-8000-{id:012x}"}}"#,
            id % 5,
            id % 3,
            1 + id % 2
        )
        .into_bytes()
    };
    let read = deliver(&table, "ice-transforms", record, &[]);
    read.assert_every_id_once(500);
    assert_eq!(read.keys, Some(500), "every uuid landed: {read:?}");
    let regions: std::collections::BTreeSet<&str> = read
        .data_files
        .iter()
        .map(|f| {
            let at = f.find("/region=").expect("files laid out by region") + 8;
            &f[at..at + 2]
        })
        .collect();
    assert_eq!(regions, ["ap", "eu", "us"].into(), "{read:?}");
    for file in &read.data_files {
        for field in ["at_hour=", "on_month=", "id_bucket=", "pad_trunc="] {
            assert!(
                file.contains(field),
                "{file} is under its {field} partition"
            );
        }
    }
}

/// Three writers on one table while records keep coming: two are killed
/// with SIGKILL (and replaced), one is paused past its session timeout
/// while its partitions move to the others, then resumed with its batches
/// in hand. pyiceberg must find every id once, and the table's offsets must
/// be the group's.
#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn killed_and_paused_writers_leave_every_record_once() {
    killed_and_paused_writers(Catalog::Rest, &[]);
}

/// The same through the SQL catalog in PostgreSQL, with a commit interval:
/// files written and waiting for their commit when a writer is killed or
/// paused.
#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalogs: run e2e/test"]
fn killed_and_paused_writers_leave_every_record_once_through_the_sql_catalog() {
    killed_and_paused_writers(Catalog::Sql, &[("ICEBERG_COMMIT_INTERVAL_SECONDS", "2")]);
}

fn killed_and_paused_writers(catalog: Catalog, extra: &[(&'static str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let partitions = 6;
    let topic = topic("ice-faults", partitions);
    let table = format!("millpond_tests.{}", topic.replace('-', "_"));
    catalog.create_table(&table, None);
    let read = |table: &str, topic: &str| catalog.read(table, topic);
    let group = format!("millpond-{topic}");
    let mut env = iceberg_env_in(catalog, &table);
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("FLUSH_BYTES", "128Ki".into()));
    env.push(("FLUSH_INTERVAL_MS", "300".into()));
    env.push((
        "KAFKA_CONFIG",
        "session.timeout.ms=6000,heartbeat.interval.ms=1000".into(),
    ));
    let start = |name: &str| Consumer::start(work.path(), name, &env);
    let produce = |ids: std::ops::Range<u64>| {
        kafka::produce_json(&kafka::bootstrap(), &topic, partitions, ids, RECORD).unwrap()
    };
    let step = 15_000;
    produce(0..step);
    let mut a = start("a");
    let b = start("b");
    let mut c = start("c");
    let progress = |at_least: u64| {
        wait_until(Duration::from_secs(90), "the table grows", || {
            read(&table, &topic).rows >= at_least
        })
    };
    progress(2_000);
    // Killed while writing (records keep coming).
    produce(step..2 * step);
    a.signal("KILL");
    a.wait(Duration::from_secs(5));
    let a2 = start("a2");
    progress(step);
    // Paused past the session timeout: its partitions move to the others.
    produce(2 * step..3 * step);
    b.signal("STOP");
    std::thread::sleep(Duration::from_secs(12));
    progress(2 * step);
    b.signal("CONT");
    // Killed again, while the paused one comes back.
    produce(3 * step..4 * step);
    c.signal("KILL");
    c.wait(Duration::from_secs(5));
    let c2 = start("c2");
    let n = 4 * step;
    let highs = committed_to_the_end(&group, &topic, partitions);
    let read = read(&table, &topic);
    for mut p in [b, a2, c2] {
        p.signal("TERM");
        p.wait(Duration::from_secs(30));
    }
    read.assert_every_id_once(n);
    assert_eq!(read.offsets, highs, "the table's offsets are the group's");
}

/// Runs a consumer that cannot write its table: it must hold (no exit,
/// nothing committed) with a last error that starts with `trouble` (the
/// operator's `Degraded` reason) and holds each of `words`.
fn holds_with(slug: &str, env: Vec<(&'static str, String)>, trouble: &str, words: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let topic = topic(slug, 2);
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..500, RECORD).unwrap();
    let mut env = env;
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("SINK_BACKOFF_CAP_MS", "500".into()));
    env.push(("HANDOFF_TIMEOUT_MS", "2000".into()));
    let mut c = Consumer::start(work.path(), slug, &env);
    let error = c.sink_down_error();
    assert!(error.starts_with(&format!("{trouble}: ")), "{error}");
    for word in words {
        assert!(error.contains(word), "the error says {word}: {error}");
    }
    assert!(!c.exited(), "the pod holds instead of crashing");
    let committed =
        kafka::committed(&kafka::bootstrap(), &format!("millpond-{topic}"), &topic, 2).unwrap();
    assert!(
        committed.values().all(|&o| o <= 0),
        "nothing committed: {committed:?}"
    );
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn a_missing_table_holds_and_says_so() {
    let env = iceberg_env("millpond_tests.no_such_table");
    holds_with(
        "ice-missing",
        env,
        "TableNotFound",
        &["millpond_tests.no_such_table", "create the table"],
    );
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn an_unreachable_catalog_holds_and_says_so() {
    let mut env = iceberg_env("millpond_tests.any");
    let closed = format!("http://127.0.0.1:{}", free_port());
    env.retain(|(k, _)| *k != "ICEBERG_CATALOG_URI");
    env.push(("ICEBERG_CATALOG_URI", closed.clone()));
    holds_with("ice-nocatalog", env, "CatalogUnreachable", &[&closed]);
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn refused_storage_keys_hold_and_say_so() {
    let table = table(&kafka::unique_topic("ice-denied"), None);
    let mut env = iceberg_env(&table);
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    holds_with("ice-denied", env, "StorageAccessDenied", &["403", &table]);
    assert_eq!(read(&table, "any").rows, 0, "nothing in the table");
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn a_record_that_does_not_fit_the_table_goes_to_the_dead_letter_topic() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("ice-unfit", 2);
    let dlq = format!("{topic}-dlq");
    block_on(kafka::create_topic(&kafka::bootstrap(), &dlq, 1)).unwrap();
    let table = table(&topic, None);
    let n = 2_000;
    // Record 777 carries its id as a string: the column is a long.
    kafka::produce_with(&kafka::bootstrap(), &topic, 2, 0..n, |id| {
        if id == 777 {
            br#"{"id":"seven-seven-seven","pad":"x"}"#.to_vec()
        } else {
            kafka::json_record(id, RECORD)
        }
    })
    .unwrap();
    let mut env = iceberg_env(&table);
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("DEAD_LETTER_TOPIC", dlq.clone()));
    let mut c = Consumer::start(work.path(), "ice-unfit", &env);
    let highs = committed_to_the_end(&format!("millpond-{topic}"), &topic, 2);
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    let dead = kafka::read_all(&kafka::bootstrap(), &dlq, 1).unwrap();
    assert_eq!(dead.len(), 1, "one record diverted");
    assert!(String::from_utf8_lossy(&dead[0].0).contains("seven-seven-seven"));
    let reason = &dead[0].1["millpond.error"];
    assert!(
        reason.contains(&format!("does not fit table {table}")),
        "{reason}"
    );
    let read = read(&table, &topic);
    assert_eq!((read.rows, read.duplicates), (n - 1, 0), "{read:?}");
    assert_eq!(
        read.offsets, highs,
        "the table's offsets step over the diverted record"
    );
}

/// Without a dead-letter topic the pod stops at the record, and its exit
/// message names the trouble first (the operator's `Degraded` reason) with
/// the record's position; what came before it is in the table.
#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn without_a_dead_letter_topic_an_unfit_record_stops_the_pod_with_schema_mismatch() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("ice-mismatch", 1);
    let table = table(&topic, None);
    kafka::produce_with(&kafka::bootstrap(), &topic, 1, 0..100, |id| {
        if id == 42 {
            br#"{"id":"forty-two","pad":"x"}"#.to_vec()
        } else {
            kafka::json_record(id, RECORD)
        }
    })
    .unwrap();
    let mut env = iceberg_env(&table);
    env.push(("KAFKA_TOPIC", topic.clone()));
    let mut c = Consumer::start(work.path(), "ice-mismatch", &env);
    let status = c.wait(Duration::from_secs(60));
    let log = c.log_text();
    assert_eq!(status.code(), Some(3), "stops at the record: {log}");
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    let want = format!(
        "error: poison record at {topic}/0@42: SchemaMismatch: the sink refused it: a record does not fit table {table}: "
    );
    assert!(last.starts_with(&want), "{last}");
    let read = read(&table, &topic);
    assert_eq!((read.rows, read.max), (42, Some(41)), "{read:?}");
    assert_eq!(
        read.offsets,
        [(0, 42)].into(),
        "the table holds up to the record"
    );
}

/// Runs one consumer on `records` into `table` with `extra` settings until
/// its group committed everything; what pyiceberg reads then.
fn deliver(
    table: &str,
    slug: &str,
    records: impl FnMut(u64) -> Vec<u8>,
    extra: &[(&'static str, &str)],
) -> millpond_testkit::iceberg::Read {
    let work = tempfile::tempdir().unwrap();
    let topic = topic(slug, 2);
    kafka::produce_with(&kafka::bootstrap(), &topic, 2, 0..500, records).unwrap();
    let mut env = iceberg_env(table);
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let mut c = Consumer::start(work.path(), slug, &env);
    committed_to_the_end(&format!("millpond-{topic}"), &topic, 2);
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    read(table, &topic)
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn auto_create_makes_the_missing_table_from_the_records() {
    let table = format!(
        "millpond_created_{}.events",
        kafka::unique_topic("ns").replace('-', "_")
    );
    let read = deliver(
        &table,
        "ice-create",
        |id| kafka::json_record(id, RECORD),
        &[("ICEBERG_AUTO_CREATE", "true")],
    );
    read.assert_every_id_once(500);
    assert_eq!(read.columns, ["id", "pad"], "{read:?}");
}

#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn new_fields_become_columns_only_with_evolve_schema() {
    let scored = |id: u64| format!(r#"{{"id":{id},"pad":"p","score":{}.5}}"#, id % 7).into_bytes();
    let kept = table(&kafka::unique_topic("ice-fixed"), None);
    let read = deliver(&kept, "ice-fixed", scored, &[]);
    read.assert_every_id_once(500);
    assert_eq!(read.columns, ["id", "pad"], "left out without evolveSchema");

    let evolving = table(&kafka::unique_topic("ice-evolve"), None);
    let read = deliver(
        &evolving,
        "ice-evolve",
        scored,
        &[("ICEBERG_EVOLVE_SCHEMA", "true")],
    );
    read.assert_every_id_once(500);
    assert_eq!(read.columns, ["id", "pad", "score"], "{read:?}");
}

/// A trickle of records with a commit interval: many flushes, few commits,
/// one data file per commit, every record once. A group holds at most the
/// pod's in-flight permits (each staged flush keeps its permit until the
/// commit): 16 here, more than the interval gathers.
#[test]
#[ignore = "needs the local Kafka broker, S3 store and Iceberg catalog: run e2e/test"]
fn a_commit_interval_gathers_flushes_into_fewer_larger_files() {
    let work = tempfile::tempdir().unwrap();
    let topic = topic("ice-interval", 2);
    let table = table(&topic, None);
    let mut env = iceberg_env(&table);
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("FLUSH_INTERVAL_MS", "200".into()));
    env.push(("ICEBERG_COMMIT_INTERVAL_SECONDS", "4".into()));
    env.push(("FLUSH_BYTES", "256Ki".into()));
    env.push(("MAX_IN_FLIGHT", "16".into()));
    let mut c = Consumer::start(work.path(), "ice-interval", &env);
    let (rounds, per_round) = (40, 50);
    for round in 0..rounds {
        let ids = round * per_round..(round + 1) * per_round;
        kafka::produce_json(&kafka::bootstrap(), &topic, 2, ids, RECORD).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    committed_to_the_end(&format!("millpond-{topic}"), &topic, 2);
    let (_, metrics) = c.get("/metrics").unwrap();
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    let flushes: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("millpond_flushes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let read = read(&table, &topic);
    read.assert_every_id_once(rounds * per_round);
    assert!(flushes >= 20, "the records came in many flushes: {flushes}");
    assert!(
        read.snapshots <= 5,
        "about one commit per 4 s over ~10 s, not one per flush ({flushes}): {read:?}"
    );
    assert_eq!(
        read.data_files.len() as u64,
        read.snapshots,
        "one data file per commit: {read:?}"
    );
}
