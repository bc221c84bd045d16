//! The object storage sink against the stack's S3-compatible store
//! (versitygw): what lands is read back from the store's own files, not
//! through the client the consumer uses.
//!
//! Starts: the `millpond-consumer` binary. Needs the local Kafka broker and
//! the S3 store (`e2e/stack up kafka s3`, `eval "$(e2e/stack env)"`).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use support::*;

const RECORD: usize = 200;

/// The store's address, credentials and the directory its bucket lives in.
fn store() -> (Vec<(&'static str, String)>, String, PathBuf) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run `e2e/stack up s3` and `eval \"$(e2e/stack env)\"`")
        })
    };
    let env = vec![
        ("AWS_ENDPOINT", var("S3_ENDPOINT")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", var("AWS_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", var("AWS_SECRET_ACCESS_KEY")),
        ("AWS_REGION", var("AWS_REGION")),
    ];
    let bucket = var("S3_BUCKET");
    let dir = PathBuf::from(var("S3_DATA_DIR")).join(&bucket);
    (env, bucket, dir)
}

/// Waits until the consumer's group committed every partition of `topic`
/// to its end, then stops it with SIGTERM and checks it exits 0.
fn committed_to_the_end_then_stopped(c: &mut Consumer, topic: &str, partitions: i32) {
    let group = format!("millpond-{topic}");
    let highs = kafka::high_watermarks(&kafka::bootstrap(), topic, partitions).unwrap();
    wait_until(
        Duration::from_secs(60),
        "commits at the high watermarks",
        || kafka::committed(&kafka::bootstrap(), &group, topic, partitions).unwrap() == highs,
    );
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
}

#[test]
#[ignore = "needs the local Kafka broker and S3 store: run e2e/test"]
fn every_record_lands_once_as_ndjson_objects_and_is_committed() {
    let work = tempfile::tempdir().unwrap();
    let (mut env, bucket, dir) = store();
    let topic = topic("s3-ndjson", 4);
    let n = 20_000;
    kafka::produce_json(&kafka::bootstrap(), &topic, 4, 0..n, RECORD).unwrap();
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("SINK_URL", format!("s3://{bucket}/runs/{topic}")));
    env.push(("FLUSH_BYTES", "256Ki".into()));
    let mut c = Consumer::start(work.path(), "s3", &env);
    let objects = dir.join("runs").join(&topic);
    wait_until(
        Duration::from_secs(120),
        "all records in the bucket",
        || ids_in_dir(&objects).len() as u64 == n,
    );
    committed_to_the_end_then_stopped(&mut c, &topic, 4);
    assert_eq!(assert_all_present(&ids_in_dir(&objects), n), 0);
    for entry in std::fs::read_dir(&objects).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name.starts_with(&format!("{topic}-")) && name.ends_with(".ndjson"),
            "objects are named as the file sink names files: {name}"
        );
    }
}

#[test]
#[ignore = "needs the local Kafka broker and S3 store: run e2e/test"]
fn parquet_objects_hold_every_record() {
    let work = tempfile::tempdir().unwrap();
    let (mut env, bucket, dir) = store();
    let topic = topic("s3-parquet", 2);
    let n = 10_000;
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..n, RECORD).unwrap();
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("SINK_URL", format!("s3://{bucket}/{topic}?format=parquet")));
    let mut c = Consumer::start(work.path(), "s3pq", &env);
    committed_to_the_end_then_stopped(&mut c, &topic, 2);
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join(&topic)).unwrap() {
        for batch in parquet_batches(&entry.unwrap().path()) {
            count_parquet_ids(&batch, &mut ids);
        }
    }
    assert_eq!(assert_all_present(&ids, n), 0);
}

/// Runs a consumer whose store refuses every write: it must hold (no exit,
/// nothing committed) and export an error naming the object and holding
/// each of `answer`.
fn holds_and_says(slug: &str, env: Vec<(&'static str, String)>, bucket: &str, answer: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let mut env = env;
    let topic = topic(slug, 2);
    kafka::produce_json(&kafka::bootstrap(), &topic, 2, 0..1_000, RECORD).unwrap();
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("SINK_URL", format!("s3://{bucket}/{topic}")));
    env.push(("FLUSH_INTERVAL_MS", "200".into()));
    env.push(("SINK_BACKOFF_CAP_MS", "500".into()));
    env.push(("HANDOFF_TIMEOUT_MS", "2000".into()));
    let mut c = Consumer::start(work.path(), slug, &env);
    let error = c.sink_down_error();
    assert!(
        error.contains(&format!("putting s3://{bucket}/{topic}/{topic}-")),
        "the error names the object: {error}"
    );
    for word in answer {
        assert!(error.contains(word), "the error says {word}: {error}");
    }
    assert!(!c.exited(), "the pod holds instead of crashing");
    let group = format!("millpond-{topic}");
    let committed = kafka::committed(&kafka::bootstrap(), &group, &topic, 2).unwrap();
    assert!(
        committed.values().all(|&o| o <= 0),
        "nothing committed: {committed:?}"
    );
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
}

#[test]
#[ignore = "needs the local Kafka broker and S3 store: run e2e/test"]
fn a_store_that_refuses_the_credentials_holds_commits_nothing_and_says_why() {
    let (mut env, bucket, _) = store();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".into();
        }
    }
    holds_and_says(
        "s3-denied",
        env,
        &bucket,
        &["403 Forbidden", "SignatureDoesNotMatch"],
    );
}

#[test]
#[ignore = "needs the local Kafka broker and S3 store: run e2e/test"]
fn a_missing_bucket_holds_commits_nothing_and_says_so() {
    let (env, _, _) = store();
    holds_and_says(
        "s3-nobucket",
        env,
        "no-such-bucket",
        &["404 Not Found", "NoSuchBucket"],
    );
}

#[test]
#[ignore = "needs the local Kafka broker and S3 store: run e2e/test"]
fn an_object_above_16_mib_goes_up_in_parts_and_lands_whole() {
    let work = tempfile::tempdir().unwrap();
    let (mut env, bucket, dir) = store();
    let topic = topic("s3-multipart", 1);
    // About 30 MB on one partition, flushed as one batch after 15 s.
    let n = 150_000;
    kafka::produce_json(&kafka::bootstrap(), &topic, 1, 0..n, RECORD).unwrap();
    env.push(("KAFKA_TOPIC", topic.clone()));
    env.push(("SINK_URL", format!("s3://{bucket}/{topic}")));
    env.push(("FLUSH_BYTES", "32Mi".into()));
    env.push(("MAX_IN_FLIGHT", "1".into()));
    env.push(("MEMORY_BUDGET", "512Mi".into()));
    env.push(("FLUSH_INTERVAL_MS", "15000".into()));
    let mut c = Consumer::start(work.path(), "s3mp", &env);
    let objects = dir.join(&topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ids_in_dir(&objects).len() as u64 != n {
        assert!(
            std::time::Instant::now() < deadline && !c.exited(),
            "not all records in the bucket after 120 s: {}",
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    c.signal("TERM");
    assert!(
        c.wait(Duration::from_secs(30)).success(),
        "{}",
        c.log_text()
    );
    assert_eq!(assert_all_present(&ids_in_dir(&objects), n), 0);
    let largest = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(
        largest > 16 << 20,
        "one object above the multipart threshold: the largest is {largest} bytes"
    );
    // The store's access log (`e2e/lib/s3.sh` keeps it beside the data)
    // shows the parts: 8 MiB each.
    let log = PathBuf::from(std::env::var("S3_DATA_DIR").unwrap())
        .with_file_name("logs")
        .join("versitygw.log");
    let log = std::fs::read_to_string(&log).unwrap();
    let parts = log
        .lines()
        .filter(|l| l.contains(&format!("/{topic}/")) && l.contains("partNumber="))
        .count();
    assert!(
        parts as u64 >= largest / (8 << 20),
        "{parts} parts uploaded for an object of {largest} bytes"
    );
}
