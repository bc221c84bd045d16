//! The runs against the stack: topics loaded, the consumer into each sink
//! and kcat started, watched (records consumed, peak RSS) and checked (every
//! record delivered), and the machine they ran on.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use millpond_testkit::kafka;
use millpond_testkit::process::{free_port, peak_rss_kib};
use millpond_testkit::runtime::block_on;

use crate::Args;

/// What one run of a contender took.
pub struct Run {
    pub seconds: f64,
    pub peak_rss_kib: u64,
    /// Records per second between 10 % and 90 % of the records (the
    /// start-up and the final flush left out), when it could be sampled.
    pub steady: Option<f64>,
}

/// The machine, as the report's header names it.
pub struct Machine {
    /// `date -u`, minutes.
    pub date: String,
    pub cores: usize,
    /// The second field of /proc/meminfo's first line (MemTotal in kB).
    pub memory_kb: Option<String>,
}

pub fn machine() -> Machine {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    Machine {
        date: String::from_utf8(date)
            .unwrap_or_default()
            .trim()
            .to_string(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_kb: std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let first = m.lines().next()?;
            Some(first.split_whitespace().nth(1).unwrap_or("?").to_string())
        }),
    }
}

/// A fresh topic of `--partitions` partitions holding `records` records.
pub fn load(args: &Args, prefix: &str, records: u64) -> Result<String> {
    let topic = kafka::unique_topic(prefix);
    block_on(kafka::create_topic(
        &args.bootstrap_servers,
        &topic,
        args.partitions,
    ))?;
    let started = Instant::now();
    kafka::produce_json(
        &args.bootstrap_servers,
        &topic,
        args.partitions,
        0..records,
        args.size,
    )?;
    eprintln!(
        "loaded {records} records of {} B into {topic} in {:.0}s",
        args.size,
        started.elapsed().as_secs_f64()
    );
    Ok(topic)
}

/// The contenders of the throughput comparison, in the order [`rounds`]
/// runs them.
pub const CONTENDERS: [&str; 6] = [
    "`kcat -C -e -q` → file (buffered)",
    "`kcat -C -e -q` → /dev/null",
    "millpond-consumer → NDJSON file sink",
    "millpond-consumer → Parquet file sink",
    "millpond-consumer → HTTP sink (local endpoint answering at once)",
    "millpond-consumer → Iceberg table (REST catalog, S3 store)",
];

/// `--runs` rounds, each running every contender once in turn: the runs of
/// each contender, in [`CONTENDERS`] order (Iceberg's empty with
/// `--skip-iceberg`).
pub fn rounds(args: &Args, topic: &str) -> Result<Vec<Vec<Run>>> {
    let mut runs: Vec<Vec<Run>> = CONTENDERS.iter().map(|_| Vec::new()).collect();
    for i in 0..args.runs {
        runs[0].push(run_kcat(args, topic, args.records, true)?);
        runs[1].push(run_kcat(args, topic, args.records, false)?);
        runs[2].push(run_ndjson(args, topic, args.records, &[])?);
        runs[3].push(run_parquet(args, topic, args.records)?);
        runs[4].push(run_http(args, topic, args.records)?);
        if !args.skip_iceberg {
            runs[5].push(run_iceberg(args, topic, args.records, &[])?);
        }
        eprintln!(
            "run {}: {}",
            i + 1,
            runs.iter()
                .map(|r| format!("{:.1}s", r[i as usize].seconds))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(runs)
}

/// The backlog into NDJSON within `--budget`.
pub fn bounded(args: &Args, topic: &str) -> Result<Run> {
    let budget = [("MEMORY_BUDGET", args.budget.as_str())];
    run_ndjson(args, topic, args.backlog_records, &budget)
}

/// The backlog into NDJSON, same consumer and flush size, with librdkafka's
/// default prefetch bounds.
pub fn default_prefetch(args: &Args, topic: &str) -> Result<Run> {
    run_ndjson(
        args,
        topic,
        args.backlog_records,
        &[
            ("MEMORY_BUDGET", "4Gi"),
            ("FLUSH_BYTES", "16Mi"),
            (
                "KAFKA_CONFIG",
                "queued.max.messages.kbytes=65536,fetch.max.bytes=52428800,max.partition.fetch.bytes=1048576",
            ),
        ],
    )
}

/// The backlog into an Iceberg table within 128 MiB.
pub fn iceberg_under_budget(args: &Args, topic: &str) -> Result<Run> {
    run_iceberg(
        args,
        topic,
        args.backlog_records,
        &[("MEMORY_BUDGET", "128Mi")],
    )
}

/// Records/s between the samples `(seconds, progress)` where progress
/// passes 10 % and 90 % of `total` (progress in any unit).
fn steady_rate(samples: &[(f64, f64)], total: f64, records: u64) -> Option<f64> {
    let at = |share: f64| {
        samples
            .iter()
            .find(|(_, p)| *p >= share * total)
            .map(|(t, _)| *t)
    };
    let (t10, t90) = (at(0.1)?, at(0.9)?);
    (t90 > t10).then(|| 0.8 * records as f64 / (t90 - t10))
}

fn fresh_dir(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Runs the consumer into `sink_url` until it has consumed `total` records,
/// then stops it (it flushes, waits for its writes and commits); returns
/// time, peak RSS and the steady-state rate. The caller checks the sink.
fn run_consumer(
    args: &Args,
    topic: &str,
    total: u64,
    sink_url: &str,
    extra: &[(&str, &str)],
) -> Result<Run> {
    let port = free_port().context("a port for the consumer's metrics")?;
    let group = format!("bench-{}", kafka::unique_topic("g"));
    let started = Instant::now();
    let mut child = Command::new(&args.consumer_bin)
        .env("KAFKA_BOOTSTRAP_SERVERS", &args.bootstrap_servers)
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_GROUP_ID", &group)
        .env("SINK_URL", sink_url)
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.consumer_bin.display()))?;
    let mut peak = 0;
    let samples = until_consumed(&mut child, port, total, started, &mut peak)?;
    stop_consumer(&mut child, &mut peak)?;
    Ok(Run {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kib: peak,
        steady: steady_rate(&samples, total as f64, total),
    })
}

/// Watches the consumer until its metrics count `total` records, like
/// `kcat -e`; samples `(seconds, records)` and raises `peak` to its RSS.
fn until_consumed(
    child: &mut Child,
    port: u16,
    total: u64,
    started: Instant,
    peak: &mut u64,
) -> Result<Vec<(f64, f64)>> {
    let mut samples = Vec::new();
    loop {
        *peak = (*peak).max(peak_rss_kib(child.id()));
        if let Some(status) = child.try_wait()? {
            bail!("consumer exited early: {status}");
        }
        let consumed = metric(port, "millpond_records_total").unwrap_or(0.0);
        samples.push((started.elapsed().as_secs_f64(), consumed));
        if consumed as u64 >= total {
            return Ok(samples);
        }
        if started.elapsed() > Duration::from_secs(1800) {
            let _ = child.kill();
            bail!("consumer did not finish in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then waits for the consumer to flush, write, commit and exit.
fn stop_consumer(child: &mut Child, peak: &mut u64) -> Result<()> {
    let pid = child.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill")?;
    loop {
        *peak = (*peak).max(peak_rss_kib(pid));
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("consumer failed: {status}");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A counter of the consumer's /metrics.
fn metric(port: u16, name: &str) -> Option<f64> {
    http_get(port, "/metrics")
        .ok()?
        .lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The consumer into NDJSON files; every record checked to be there.
fn run_ndjson(args: &Args, topic: &str, total: u64, extra: &[(&str, &str)]) -> Result<Run> {
    fresh_dir(&args.scratch)?;
    let url = format!("file://{}", args.scratch.display());
    let run = run_consumer(args, topic, total, &url, extra)?;
    let delivered = count_lines(&args.scratch)?;
    if delivered != total {
        bail!("consumer delivered {delivered} records, expected {total}");
    }
    Ok(run)
}

/// The consumer into Parquet files; the rows of every file counted.
fn run_parquet(args: &Args, topic: &str, total: u64) -> Result<Run> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    fresh_dir(&args.scratch)?;
    let url = format!("file://{}?format=parquet", args.scratch.display());
    let run = run_consumer(args, topic, total, &url, &[])?;
    let mut rows = 0;
    for entry in std::fs::read_dir(&args.scratch)? {
        let path = entry?.path();
        let file = std::fs::File::open(&path)?;
        let reader = SerializedFileReader::new(file)
            .with_context(|| format!("reading {}", path.display()))?;
        rows += reader.metadata().file_metadata().num_rows() as u64;
    }
    if rows != total {
        bail!("consumer wrote {rows} Parquet rows, expected {total}");
    }
    Ok(run)
}

/// The consumer into a fresh table of the stack's Iceberg REST catalog; the
/// rows counted by pyiceberg, each id once.
fn run_iceberg(args: &Args, topic: &str, total: u64, extra: &[(&str, &str)]) -> Result<Run> {
    use millpond_testkit::iceberg::{create_table, read, stack_var};
    let table = format!(
        "millpond_bench.{}",
        kafka::unique_topic("t").replace('-', "_")
    );
    create_table(&table, None);
    let (namespace, name) = table.split_once('.').expect("namespace.table");
    let url = format!("iceberg://{namespace}/{name}");
    let stack: Vec<(&str, String)> = [
        ("ICEBERG_CATALOG_URI", "ICEBERG_REST_URI"),
        ("AWS_ENDPOINT", "S3_ENDPOINT"),
        ("AWS_ACCESS_KEY_ID", "S3_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY"),
        ("AWS_REGION", "S3_REGION"),
    ]
    .into_iter()
    .map(|(var, from)| (var, stack_var(from)))
    .collect();
    let mut env: Vec<(&str, &str)> = stack.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("AWS_ALLOW_HTTP", "true"));
    env.extend_from_slice(extra);
    let run = run_consumer(args, topic, total, &url, &env)?;
    let read = read(&table, topic);
    if read.rows != total || read.duplicates != 0 {
        bail!("the table holds {read:?}, expected {total} rows once");
    }
    eprintln!(
        "iceberg: {} data files, median {} B, {} snapshots",
        read.data_files.len(),
        read.median_file_bytes.unwrap_or(0),
        read.snapshots
    );
    Ok(run)
}

/// The consumer into the HTTP test sink on loopback (answering at once);
/// the sink's ledger checked for every id.
fn run_http(args: &Args, topic: &str, total: u64) -> Result<Run> {
    let port = free_port().context("a port for the HTTP test sink")?;
    let sink_bin = args.consumer_bin.with_file_name("millpond-test-sink");
    let mut sink = Command::new(&sink_bin)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--hold-ms", "0"])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", sink_bin.display()))?;
    let outcome = (|| {
        wait_listening(port)?;
        let url = format!("http://127.0.0.1:{port}/ingest");
        let run = run_consumer(args, topic, total, &url, &[])?;
        let stats = http_get(port, &format!("/stats?expected={total}"))?;
        let stats: serde_json::Value =
            serde_json::from_str(&stats).context("the HTTP sink's /stats")?;
        if stats["missing"].as_u64() != Some(0) {
            bail!("the HTTP sink misses records: {stats}");
        }
        Ok(run)
    })();
    let _ = sink.kill();
    let _ = sink.wait();
    outcome
}

/// Waits up to 10 s for something to listen on the loopback `port`.
fn wait_listening(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the HTTP test sink did not listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The body of a GET on the loopback `port`.
fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Lines in every file of a directory.
fn count_lines(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let data = std::fs::read(entry?.path())?;
        n += data.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok(n)
}

/// `kcat -C -e` from the beginning of every partition, as a user runs it
/// (buffered output; `-u` would write once per record): into one file
/// (`to_file`; steady-state rate from the file's growth) or into /dev/null
/// (the client's own limit on this machine).
fn run_kcat(args: &Args, topic: &str, total: u64, to_file: bool) -> Result<Run> {
    fresh_dir(&args.scratch)?;
    let path = args.scratch.join("kcat.ndjson");
    let out = if to_file {
        std::fs::File::create(&path)?
    } else {
        std::fs::File::create("/dev/null")?
    };
    let started = Instant::now();
    let mut child = spawn_kcat(args, topic, out)?;
    let mut peak = 0;
    let mut samples = Vec::new();
    let status = loop {
        peak = peak.max(peak_rss_kib(child.id()));
        if to_file {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            samples.push((started.elapsed().as_secs_f64(), size as f64));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("kcat failed: {status}");
    }
    let steady = if to_file {
        let lines = count_lines(&args.scratch)?;
        if lines != total {
            bail!("kcat wrote {lines} records, expected {total}");
        }
        let size = std::fs::metadata(&path)?.len() as f64;
        steady_rate(&samples, size, total)
    } else {
        None
    };
    Ok(Run {
        seconds,
        peak_rss_kib: peak,
        steady,
    })
}

fn spawn_kcat(args: &Args, topic: &str, out: std::fs::File) -> Result<Child> {
    Command::new("kcat")
        .args([
            "-C",
            "-b",
            &args.bootstrap_servers,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting kcat (install the Debian package kcat)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_rate_leaves_out_the_first_and_last_tenth() {
        // 1000 records; 10 % reached at 1 s, 90 % at 5 s.
        let samples = [(0.0, 0.0), (1.0, 100.0), (3.0, 500.0), (5.0, 900.0)];
        assert_eq!(steady_rate(&samples, 1000.0, 1000), Some(200.0));
        // Progress in bytes: only shares of the total count.
        let bytes = [(0.0, 0.0), (1.0, 1e5), (5.0, 9e5)];
        assert_eq!(steady_rate(&bytes, 1e6, 1000), Some(200.0));
    }

    #[test]
    fn no_steady_rate_without_both_samples() {
        assert_eq!(steady_rate(&[(1.0, 100.0)], 1000.0, 1000), None);
        assert_eq!(steady_rate(&[(1.0, 950.0)], 1000.0, 1000), None);
    }
}
