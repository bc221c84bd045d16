//! Benchmarks of the consumer against the local broker, run side by side:
//!
//! * throughput: `millpond-consumer` → NDJSON file sink vs `kcat -C -e` → file,
//!   on the same topic, alternating runs; also into Parquet files, an HTTP
//!   endpoint and an Iceberg table (the stack's REST catalog and S3 store,
//!   unless `--skip-iceberg`);
//! * memory: peak RSS catching up on a large backlog with `MEMORY_BUDGET`
//!   bounds vs the same consumer with librdkafka's default prefetch.
//!
//! Prints a Markdown report on stdout. Not a test: numbers on a shared
//! two-core machine are noisy, so only ratios of runs made together are reported.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use millpond_testkit::kafka;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// Records for the throughput comparison.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Records for the memory comparison (the backlog).
    #[arg(long, default_value_t = 4_400_000)]
    backlog_records: u64,
    /// Record size in bytes.
    #[arg(long, default_value_t = 500)]
    size: usize,
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Alternating runs of each contender in the throughput comparison.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Memory budget of the bounded run.
    #[arg(long, default_value = "256Mi")]
    budget: String,
    /// The consumer binary.
    #[arg(long, default_value = "target/release/millpond-consumer")]
    consumer_bin: PathBuf,
    /// Scratch directory for sink output (emptied between runs).
    #[arg(long, default_value = "/tmp/millpond-bench")]
    scratch: PathBuf,
    /// Skip a comparison.
    #[arg(long)]
    skip_throughput: bool,
    #[arg(long)]
    skip_memory: bool,
    /// Leave out the Iceberg sink (it needs `e2e/stack up iceberg`).
    #[arg(long)]
    skip_iceberg: bool,
}

struct Run {
    seconds: f64,
    peak_rss_kib: u64,
    /// Records per second between 10 % and 90 % of the records (the
    /// start-up and the final flush left out), when it could be sampled.
    steady: Option<f64>,
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

/// Peak resident set size of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    millpond_testkit::process::status_kib(&pid.to_string(), "VmHWM")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metric(port: u16, name: &str) -> Option<f64> {
    http_get(port, "/metrics")
        .ok()?
        .lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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
    let port = free_port();
    let group = format!("bench-{}", kafka::unique_topic("g"));
    let started = Instant::now();
    let mut child: Child = Command::new(&args.consumer_bin)
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
    let pid = child.id();
    let mut peak = 0;
    let mut samples = Vec::new();
    // Like `kcat -e`: once every record is consumed, stop; the consumer then
    // flushes, waits for its writes and commits before it exits.
    loop {
        peak = peak.max(peak_rss_kib(pid));
        if let Some(status) = child.try_wait()? {
            bail!("consumer exited early: {status}");
        }
        let consumed = metric(port, "millpond_records_total").unwrap_or(0.0);
        samples.push((started.elapsed().as_secs_f64(), consumed));
        if consumed as u64 >= total {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            let _ = child.kill();
            bail!("consumer did not finish in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    loop {
        peak = peak.max(peak_rss_kib(pid));
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("consumer failed: {status}");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Run {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kib: peak,
        steady: steady_rate(&samples, total as f64, total),
    })
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
    fresh_dir(&args.scratch)?;
    let url = format!("file://{}?format=parquet", args.scratch.display());
    let run = run_consumer(args, topic, total, &url, &[])?;
    let mut rows = 0;
    for entry in std::fs::read_dir(&args.scratch)? {
        let file = std::fs::File::open(entry?.path())?;
        let reader = parquet::file::reader::SerializedFileReader::new(file)?;
        use parquet::file::reader::FileReader;
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
    let (catalog, endpoint) = (stack_var("ICEBERG_REST_URI"), stack_var("S3_ENDPOINT"));
    let (key, secret) = (
        stack_var("S3_ACCESS_KEY_ID"),
        stack_var("S3_SECRET_ACCESS_KEY"),
    );
    let region = stack_var("S3_REGION");
    let mut env = vec![
        ("ICEBERG_CATALOG_URI", catalog.as_str()),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_REGION", region.as_str()),
    ];
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
    let port = free_port();
    let sink_bin = args.consumer_bin.with_file_name("millpond-test-sink");
    let mut sink = Command::new(&sink_bin)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--hold-ms", "0"])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", sink_bin.display()))?;
    let outcome = (|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the HTTP test sink did not listen");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let run = run_consumer(
            args,
            topic,
            total,
            &format!("http://127.0.0.1:{port}/ingest"),
            &[],
        )?;
        let stats = http_get(port, &format!("/stats?expected={total}"))?;
        let stats: serde_json::Value = serde_json::from_str(&stats)?;
        if stats["missing"].as_u64() != Some(0) {
            bail!("the HTTP sink misses records: {stats}");
        }
        Ok(run)
    })();
    let _ = sink.kill();
    let _ = sink.wait();
    outcome
}

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
    for entry in std::fs::read_dir(dir)? {
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
    let mut child = Command::new("kcat")
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
        .context("starting kcat (install the Debian package kcat)")?;
    let pid = child.id();
    let mut peak = 0;
    let mut samples = Vec::new();
    let status = loop {
        peak = peak.max(peak_rss_kib(pid));
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn load(args: &Args, prefix: &str, records: u64) -> Result<String> {
    let topic = kafka::unique_topic(prefix);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(kafka::create_topic(
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

fn main() -> Result<()> {
    let args = Args::parse();
    println!("## Run of {}\n", chrono_free_now());
    println!(
        "Machine: {} cores, {} (`nproc`, /proc/meminfo); broker: local single-node KRaft on {}.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l
                .split_whitespace()
                .nth(1)
                .unwrap_or("?")
                .to_string()))
            .map(|kb| format!("{} GiB RAM", kb.parse::<u64>().unwrap_or(0) >> 20))
            .unwrap_or_default(),
        args.bootstrap_servers,
    );

    if !args.skip_throughput {
        throughput(&args)?;
    }

    if !args.skip_memory {
        let topic = load(&args, "bench-mem", args.backlog_records)?;
        let gb = args.backlog_records as f64 * args.size as f64 / 1e9;
        let bounded = run_ndjson(
            &args,
            &topic,
            args.backlog_records,
            &[("MEMORY_BUDGET", &args.budget)],
        )?;
        // Same consumer, same flush size, librdkafka's default prefetch bounds.
        let defaults = run_ndjson(
            &args,
            &topic,
            args.backlog_records,
            &[
                ("MEMORY_BUDGET", "4Gi"),
                ("FLUSH_BYTES", "16Mi"),
                (
                    "KAFKA_CONFIG",
                    "queued.max.messages.kbytes=65536,fetch.max.bytes=52428800,max.partition.fetch.bytes=1048576",
                ),
            ],
        )?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "### Memory: catch-up on a {gb:.1} GB backlog ({} records over {} partitions)\n",
            args.backlog_records, args.partitions
        );
        println!("| run | peak RSS | time |\n|---|---:|---:|");
        println!(
            "| `MEMORY_BUDGET={}` (derived prefetch bounds) | {:.0} MiB | {:.0}s |",
            args.budget,
            mib(bounded.peak_rss_kib),
            bounded.seconds
        );
        println!("| librdkafka default prefetch (64 MiB queue, 50 MiB fetch), same flush size | {:.0} MiB | {:.0}s |", mib(defaults.peak_rss_kib), defaults.seconds);
        if !args.skip_iceberg {
            let iceberg = run_iceberg(
                &args,
                &topic,
                args.backlog_records,
                &[("MEMORY_BUDGET", "128Mi")],
            )?;
            println!(
                "| Iceberg table, `MEMORY_BUDGET=128Mi` | {:.0} MiB ({}) | {:.0}s |",
                mib(iceberg.peak_rss_kib),
                if mib(iceberg.peak_rss_kib) <= 128.0 {
                    "under the budget"
                } else {
                    "OVER the budget"
                },
                iceberg.seconds
            );
        }
        let budget = millpond_budget_mib(&args.budget);
        println!(
            "\nBounded peak / budget: {:.2} ({}); bounded / default peak: **{:.2}**.\n",
            mib(bounded.peak_rss_kib) / budget,
            if mib(bounded.peak_rss_kib) <= budget {
                "under the budget"
            } else {
                "OVER the budget"
            },
            bounded.peak_rss_kib as f64 / defaults.peak_rss_kib.max(1) as f64
        );
    }
    Ok(())
}

/// The contenders of the throughput comparison, run in turn, `--runs` times.
const CONTENDERS: [&str; 6] = [
    "`kcat -C -e -q` → file (buffered)",
    "`kcat -C -e -q` → /dev/null",
    "millpond-consumer → NDJSON file sink",
    "millpond-consumer → Parquet file sink",
    "millpond-consumer → HTTP sink (local endpoint answering at once)",
    "millpond-consumer → Iceberg table (REST catalog, S3 store)",
];

fn throughput(args: &Args) -> Result<()> {
    let topic = load(args, "bench-tput", args.records)?;
    let mut runs: Vec<Vec<Run>> = CONTENDERS.iter().map(|_| Vec::new()).collect();
    for i in 0..args.runs {
        runs[0].push(run_kcat(args, &topic, args.records, true)?);
        runs[1].push(run_kcat(args, &topic, args.records, false)?);
        runs[2].push(run_ndjson(args, &topic, args.records, &[])?);
        runs[3].push(run_parquet(args, &topic, args.records)?);
        runs[4].push(run_http(args, &topic, args.records)?);
        if !args.skip_iceberg {
            runs[5].push(run_iceberg(args, &topic, args.records, &[])?);
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
    let records = args.records as f64;
    let mb = |rate: f64| rate * args.size as f64 / 1e6;
    let whole: Vec<f64> = runs
        .iter()
        .map(|r| match r.is_empty() {
            true => f64::NAN,
            false => median(r.iter().map(|x| records / x.seconds).collect()),
        })
        .collect();
    let steady: Vec<Option<f64>> = runs
        .iter()
        .map(|r| {
            let v: Vec<f64> = r.iter().filter_map(|x| x.steady).collect();
            (!v.is_empty()).then(|| median(v))
        })
        .collect();
    println!(
        "### Throughput: {} records of {} B over {} partitions\n",
        args.records, args.size, args.partitions
    );
    println!("| contender | whole run, records/s (median) | steady state, records/s | steady MB/s | runs, whole (records/s) |\n|---|---:|---:|---:|---|");
    for (i, name) in CONTENDERS.iter().enumerate() {
        if runs[i].is_empty() {
            continue;
        }
        let each = runs[i]
            .iter()
            .map(|x| format!("{:.0}", records / x.seconds))
            .collect::<Vec<_>>()
            .join(", ");
        let (st, st_mb) = steady[i].map_or(("–".into(), "–".into()), |r| {
            (format!("{r:.0}"), format!("{:.0}", mb(r)))
        });
        println!("| {name} | {:.0} | {st} | {st_mb} | {each} |", whole[i]);
    }
    let ratio = |a: usize, b: usize| whole[a] / whole[b];
    println!(
        "\nRatios of whole runs (medians of {} rounds; each round runs every contender once, in the order above): NDJSON / kcat → file **{:.2}x**, NDJSON / kcat → /dev/null {:.2}x, Parquet / kcat → file **{:.2}x**, HTTP / kcat → file {:.2}x.",
        args.runs,
        ratio(2, 0),
        ratio(2, 1),
        ratio(3, 0),
        ratio(4, 0)
    );
    if !runs[5].is_empty() {
        println!(
            "Iceberg / Parquet file sink **{:.2}x**, Iceberg / kcat → file {:.2}x (one snapshot per flush, each commit a round trip to the catalog).",
            ratio(5, 3),
            ratio(5, 0)
        );
    }
    if let (Some(m), Some(k)) = (steady[2], steady[0]) {
        println!("Steady state, NDJSON / kcat → file: **{:.2}x**.", m / k);
    }
    println!("\nA millpond run starts the process, joins the group, and ends after its final flush, fsync and commit; kcat reads without a group and never fsyncs.\n");
    Ok(())
}

fn millpond_budget_mib(q: &str) -> f64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "Gi" => n * 1024.0,
        "Mi" => n,
        _ => n / (1 << 20) as f64,
    }
}

fn chrono_free_now() -> String {
    String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default()
    .trim()
    .to_string()
}
