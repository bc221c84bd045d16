//! Benchmarks of the consumer against the local broker, run side by side:
//!
//! * throughput: `millpond-consumer` → NDJSON file sink vs `kcat -C -e` → file,
//!   on the same topic, alternating runs;
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
use millpond_e2e::kafka;

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
}

struct Run {
    seconds: f64,
    peak_rss_kib: u64,
}

fn fresh_dir(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Peak resident set size of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs the consumer until it has delivered `total` records; returns time and peak RSS.
fn run_consumer(args: &Args, topic: &str, total: u64, extra: &[(&str, &str)]) -> Result<Run> {
    fresh_dir(&args.scratch)?;
    let port = free_port();
    let group = format!("bench-{}", kafka::unique_topic("g"));
    let started = Instant::now();
    let mut child: Child = Command::new(&args.consumer_bin)
        .env("KAFKA_BOOTSTRAP_SERVERS", &args.bootstrap_servers)
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_GROUP_ID", &group)
        .env("SINK_URL", format!("file://{}", args.scratch.display()))
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.consumer_bin.display()))?;
    let pid = child.id();
    let mut peak = 0;
    // Like `kcat -e`: once every record is consumed, stop; the consumer then
    // flushes, waits for its writes and commits before it exits.
    loop {
        peak = peak.max(peak_rss_kib(pid));
        if let Some(status) = child.try_wait()? {
            bail!("consumer exited early: {status}");
        }
        if metric(port, "millpond_records_total").unwrap_or(0.0) as u64 >= total {
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
    let seconds = started.elapsed().as_secs_f64();
    let delivered = count_lines(&args.scratch)?;
    if delivered != total {
        bail!("consumer delivered {delivered} records, expected {total}");
    }
    Ok(Run {
        seconds,
        peak_rss_kib: peak,
    })
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

/// `kcat -C -e` from the beginning of every partition into one file, as a
/// user runs it (buffered output; `-u` would write once per record).
fn run_kcat(args: &Args, topic: &str, total: u64) -> Result<Run> {
    fresh_dir(&args.scratch)?;
    let out = std::fs::File::create(args.scratch.join("kcat.ndjson"))?;
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
    let status = loop {
        peak = peak.max(peak_rss_kib(pid));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("kcat failed: {status}");
    }
    let lines = count_lines(&args.scratch)?;
    if lines != total {
        bail!("kcat wrote {lines} records, expected {total}");
    }
    Ok(Run {
        seconds,
        peak_rss_kib: peak,
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
        let topic = load(&args, "bench-tput", args.records)?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..args.runs {
            let k = run_kcat(&args, &topic, args.records)?;
            let m = run_consumer(&args, &topic, args.records, &[])?;
            eprintln!(
                "run {}: kcat {:.1}s, millpond {:.1}s",
                i + 1,
                k.seconds,
                m.seconds
            );
            theirs.push(args.records as f64 / k.seconds);
            ours.push(args.records as f64 / m.seconds);
        }
        let (m, k) = (median(ours.clone()), median(theirs.clone()));
        println!(
            "### Throughput: {} records of {} B over {} partitions\n",
            args.records, args.size, args.partitions
        );
        println!("| contender | median records/s | runs (records/s) |\n|---|---:|---|");
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("| `kcat -C -e` → file | {k:.0} | {} |", fmt(&theirs));
        println!(
            "| millpond-consumer → NDJSON file sink (default limits) | {m:.0} | {} |",
            fmt(&ours)
        );
        println!("\nRatio millpond / kcat: **{:.2}x** (median of {} alternating runs; each millpond run starts the process, joins the group, and ends after its final flush and commit; kcat reads without a group).\n", m / k, args.runs);
    }

    if !args.skip_memory {
        let topic = load(&args, "bench-mem", args.backlog_records)?;
        let gb = args.backlog_records as f64 * args.size as f64 / 1e9;
        let bounded = run_consumer(
            &args,
            &topic,
            args.backlog_records,
            &[("MEMORY_BUDGET", &args.budget)],
        )?;
        // Same consumer, same flush size, librdkafka's default prefetch bounds.
        let defaults = run_consumer(
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
