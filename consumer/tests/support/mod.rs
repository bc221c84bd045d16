//! Running the real `millpond-consumer` binary against the local Kafka broker.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use millpond_testkit::kafka;

pub mod endpoint;

/// Reason given by every ignored broker test.
pub const NEEDS_KAFKA: &str = "needs the local Kafka broker: run `e2e/test` (or `e2e/stack up kafka` and `cargo test -- --include-ignored`)";

/// A local TCP port nothing listens on now.
pub fn free_port() -> u16 {
    millpond_testkit::process::free_port().expect("a free local port")
}

/// A running consumer process.
pub struct Consumer {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Consumer {
    /// Starts the consumer with the given extra environment.
    pub fn start(workdir: &Path, name: &str, env: &[(&str, String)]) -> Consumer {
        let port = free_port();
        let log = workdir.join(format!("{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_millpond-consumer"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KAFKA_BOOTSTRAP_SERVERS", kafka::bootstrap())
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("FLUSH_INTERVAL_MS", "500")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting millpond-consumer");
        Consumer { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Body of `GET path`, if the endpoint answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = raw_http::blocking_get(&self.url(path))?;
        Some(resp)
    }

    /// The value of an unlabelled metric.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the consumer reports its sink down; its last error (the
    /// `error` label of `millpond_sink_last_error_info`).
    pub fn sink_down_error(&self) -> String {
        wait_until(Duration::from_secs(60), "the sink reported down", || {
            self.metric("millpond_sink_up") == Some(0.0)
        });
        let (_, metrics) = self.get("/metrics").unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("millpond_sink_last_error_info{error=\""))
            .and_then(|l| l.rsplit_once("\"}"))
            .map(|(error, _)| error.to_string())
            .unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    /// True once the process has exited (on its own, before any signal).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "consumer did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP GET against loopback (no client dependency needed).
mod raw_http {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn blocking_get(url: &str) -> Option<(u16, String)> {
        request("GET", url, &[], "")
    }

    pub fn request(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
        let mut s = TcpStream::connect(host).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split(' ').nth(1)?.parse().ok()?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    }
}

#[allow(unused_imports)]
pub use self::raw_http::request as http_request;

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Counts every id found in the NDJSON files of a directory.
pub fn ids_in_dir(dir: &Path) -> BTreeMap<u64, u32> {
    let mut ids = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return ids; // the consumer creates the directory when it starts
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ndjson") {
            continue;
        }
        count_ids(&std::fs::read_to_string(&path).unwrap(), &mut ids);
    }
    ids
}

/// Adds the `id` of every NDJSON line to `ids`.
/// Every record batch of a Parquet file.
pub fn parquet_batches(path: &Path) -> Vec<arrow::array::RecordBatch> {
    assert_eq!(path.extension().unwrap(), "parquet", "{}", path.display());
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|batch| batch.unwrap())
    .collect()
}

/// Counts the values of a batch's `id` column (Int64).
pub fn count_parquet_ids(batch: &arrow::array::RecordBatch, ids: &mut BTreeMap<u64, u32>) {
    let col = batch.column_by_name("id").unwrap();
    let col = col
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    for v in col.iter() {
        *ids.entry(v.unwrap() as u64).or_insert(0u32) += 1;
    }
}

pub fn count_ids(ndjson: &str, ids: &mut BTreeMap<u64, u32>) {
    for line in ndjson.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("sink wrote valid JSON");
        *ids.entry(v["id"].as_u64().expect("id field")).or_default() += 1;
    }
}

/// Asserts every id in `0..n` is present; returns the number of duplicates.
pub fn assert_all_present(ids: &BTreeMap<u64, u32>, n: u64) -> u64 {
    let missing: Vec<u64> = (0..n).filter(|i| !ids.contains_key(i)).take(10).collect();
    assert!(missing.is_empty(), "missing ids (first 10): {missing:?}");
    assert!(ids.keys().all(|i| *i < n), "unexpected ids");
    ids.values().map(|c| (*c - 1) as u64).sum()
}

/// Tokio runtime for the async helpers.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Creates a fresh topic with `partitions` partitions and returns its name.
pub fn topic(prefix: &str, partitions: i32) -> String {
    let name = kafka::unique_topic(prefix);
    block_on(kafka::create_topic(&kafka::bootstrap(), &name, partitions)).unwrap();
    name
}
