//! Bad input is refused at start with a message that names the problem.
//!
//! Starts: the `millpond-consumer` binary only (no broker needed; the
//! unreachable-broker case points at a closed loopback port).

mod support;

use std::process::Command;
use std::time::Duration;

/// Runs the consumer with `env` and returns (exit code, stderr).
fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_millpond-consumer"));
    cmd.env_clear()
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("KAFKA_TOPIC", "orders")
        .env("SINK_URL", format!("file://{}", dir.path().display()))
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("KAFKA_STARTUP_TIMEOUT_MS", "2000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(env: &[(&str, &str)], code: i32, text: &str) {
    let (got, stderr) = run(env);
    assert_eq!(got, Some(code), "{env:?}: {stderr}");
    assert!(
        stderr.contains(text),
        "{env:?}: expected `{text}` in:\n{stderr}"
    );
}

#[test]
fn an_s3_sink_without_a_bucket_is_refused() {
    assert_refused(
        &[("SINK_URL", "s3:///prefix")],
        2,
        "an object storage sink names its bucket, e.g. s3://bucket/prefix",
    );
}

#[test]
fn an_unknown_sink_scheme_is_refused() {
    assert_refused(
        &[("SINK_URL", "gs://bucket/prefix")],
        2,
        "unknown sink scheme `gs` (supported: file, http, https, s3, iceberg)",
    );
}

#[test]
fn an_iceberg_sink_without_its_catalog_is_refused() {
    assert_refused(
        &[("SINK_URL", "iceberg://analytics/orders")],
        2,
        "an Iceberg sink needs ICEBERG_CATALOG_URI (its REST catalog)",
    );
    assert_refused(
        &[
            ("SINK_URL", "iceberg://analytics"),
            ("ICEBERG_CATALOG_URI", "http://127.0.0.1:9"),
        ],
        2,
        "no table name; an Iceberg sink names its table as iceberg://<namespace>/<table>",
    );
}

#[test]
fn an_unknown_file_format_is_refused() {
    assert_refused(
        &[("SINK_URL", "file:///tmp/x?format=csv")],
        2,
        "unknown file format `csv`",
    );
}

#[test]
fn a_librdkafka_override_that_breaks_at_least_once_is_refused() {
    assert_refused(
        &[("KAFKA_CONFIG", "enable.auto.commit=true")],
        2,
        "KAFKA_CONFIG: `enable.auto.commit=true` is not allowed: offsets are committed only after the sink acknowledged a batch",
    );
    assert_refused(
        &[("KAFKA_CONFIG", "partition.assignment.strategy=range")],
        2,
        "cooperative-sticky",
    );
}

#[test]
fn a_budget_too_small_is_refused_with_the_numbers() {
    assert_refused(
        &[("MEMORY_BUDGET", "32Mi")],
        2,
        "memory budget: budget 32.0Mi is below the 49.6Mi the process needs",
    );
}

#[test]
fn a_size_that_is_not_a_quantity_is_refused() {
    let (code, stderr) = run(&[("FLUSH_BYTES", "lots")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`lots` is not a byte quantity"), "{stderr}");
}

#[test]
fn an_unreachable_broker_is_reported_with_its_address() {
    assert_refused(
        &[],
        1,
        "cannot reach Kafka at 127.0.0.1:1: check the bootstrap address and that the brokers run",
    );
}

#[test]
fn help_lists_every_setting_with_its_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_millpond-consumer"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "KAFKA_GROUP_ID",
        "KAFKA_CONFIG",
        "KAFKA_CONFIG_FILE",
        "SINK_URL",
        "FLUSH_BYTES",
        "FLUSH_INTERVAL_MS",
        "MAX_IN_FLIGHT",
        "CONSUME_BATCH_SIZE",
        "MEMORY_BUDGET",
        "METRICS_ADDR",
        "DEAD_LETTER_TOPIC",
        "ADMIN_TOKEN",
    ] {
        assert!(help.contains(&format!("env: {var}")), "--help lacks {var}");
    }
}

#[test]
fn with_admin_addr_the_admin_endpoint_answers_only_on_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (support::free_port(), support::free_port());
    // The servers start before Kafka is reached; this broker never answers.
    let mut child = Command::new(env!("CARGO_BIN_EXE_millpond-consumer"))
        .env_clear()
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("KAFKA_TOPIC", "orders")
        .env("KAFKA_STARTUP_TIMEOUT_MS", "30000")
        .env("SINK_URL", format!("file://{}", dir.path().display()))
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("ADMIN_TOKEN", "s3cret")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |port: u16, path: &str| {
        support::http_request("GET", &format!("http://127.0.0.1:{port}{path}"), &[], "")
            .map(|(status, _)| status)
    };
    let mut answer = None;
    support::wait_until(Duration::from_secs(10), "both ports answer", || {
        answer = get(admin_port, "/admin/limits");
        answer.is_some() && get(port, "/metrics").is_some()
    });
    let seen = [
        answer,
        get(admin_port, "/metrics"),
        get(port, "/metrics"),
        get(port, "/admin/limits"),
    ];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen,
        [Some(200), Some(404), Some(200), Some(404)],
        "admin and metrics each on their own port"
    );
}
