//! How much the operator's view of Kafka costs, on the local broker:
//!
//! * one topic of `--partitions` partitions: time and Kafka requests per
//!   observation with the operator's long-lived client and batched requests,
//!   beside the way it observed before (a new client per interval, two
//!   ListOffsets per partition), alternating runs;
//! * `--consumers` MillpondConsumers on one cluster (a topic and a group
//!   each): one interval's observations, all at once, through one shared
//!   client: wall time, requests, clients open, and this process's RSS.
//!
//! Prints a Markdown report. Not a test: timings on a shared machine are
//! noisy; the two ways are compared in runs made together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use millpond_operator::observe::kafka::{KafkaTarget, Observer, Observers, PartitionOffsets};
use millpond_testkit::kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser)]
struct Args {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// Partitions of the big topic.
    #[arg(long, default_value_t = 512)]
    partitions: i32,
    /// Observations of the big topic per way.
    #[arg(long, default_value_t = 20)]
    reads: usize,
    /// MillpondConsumers observed in one interval.
    #[arg(long, default_value_t = 200)]
    consumers: usize,
    /// Partitions of each of their topics.
    #[arg(long, default_value_t = 8)]
    consumer_partitions: i32,
    /// Deadline of each request.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Internal: observe the `topic group` pairs of this file, in a process
    /// of its own so its RSS is the observer's alone.
    #[arg(long, hide = true)]
    intervals_of: Option<std::path::PathBuf>,
}

/// Statistics every 100 ms: requests sent, by type, per observation.
const STATISTICS: [(&str, &str); 1] = [("statistics.interval.ms", "100")];

fn main() -> Result<()> {
    let args = Args::parse();
    let timeout = Duration::from_millis(args.timeout_ms);
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(file) = &args.intervals_of {
        return intervals(&args, file, &runtime, timeout);
    }
    let servers = &args.bootstrap_servers;

    // The big topic: records on every partition, a group that committed.
    let topic = kafka::unique_topic("observe-bench");
    runtime.block_on(kafka::create_topic(servers, &topic, args.partitions))?;
    kafka::produce_json(
        servers,
        &topic,
        args.partitions,
        0..args.partitions as u64 * 20,
        100,
    )?;
    let group = format!("{topic}-group");
    let commits: BTreeMap<i32, i64> = (0..args.partitions).map(|p| (p, 10)).collect();
    kafka::commit(servers, &group, &topic, &commits)?;

    let observer = Observer::connect(servers, &BTreeMap::new(), &STATISTICS)?;
    let (mut now_ms, mut before_ms) = (Vec::new(), Vec::new());
    let (mut now_requests, mut before_requests) = (BTreeMap::new(), BTreeMap::new());
    let mut expected = None;
    for run in 0..args.reads {
        let baseline = requests(&observer);
        let started = Instant::now();
        let offsets = observer.read(&topic, &group, timeout)?;
        now_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let sent = delta(&requests(&observer), &baseline);
        if run > 0 {
            add(&mut now_requests, &sent);
        }
        let started = Instant::now();
        let (before, sent) = read_as_before(servers, &topic, &group, timeout)?;
        before_ms.push(started.elapsed().as_secs_f64() * 1e3);
        add(&mut before_requests, &sent);
        // Both ways see the same offsets.
        anyhow::ensure!(before == offsets, "the two ways disagree");
        expected.get_or_insert(offsets);
    }
    let offsets = expected.context("no observation")?;
    anyhow::ensure!(
        offsets.len() == args.partitions as usize
            && offsets
                .iter()
                .all(|o| o.high == 20 && o.committed == Some(10)),
        "wrong offsets: {:?}",
        &offsets[..3.min(offsets.len())]
    );
    println!("## Observing one topic of {} partitions\n", args.partitions);
    println!("{} observations each, alternating. Requests as librdkafka's statistics count them, per observation (the long-lived client's first observation, which connects, left out).\n", args.reads);
    println!("| | median | p90 | requests per observation |");
    println!("|---|---|---|---|");
    let per = |m: &BTreeMap<String, i64>, n: usize| {
        m.iter()
            .map(|(k, v)| format!("{k} {:.0}", *v as f64 / n as f64))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| one long-lived client, batched | {:.1} ms | {:.1} ms | {} |",
        percentile(&mut now_ms, 0.5),
        percentile(&mut now_ms, 0.9),
        per(&now_requests, args.reads - 1)
    );
    println!(
        "| a new client per interval, per-partition watermarks (before) | {:.1} ms | {:.1} ms | {} |",
        percentile(&mut before_ms, 0.5),
        percentile(&mut before_ms, 0.9),
        per(&before_requests, args.reads)
    );

    let outcome = many_consumers(&args, &runtime);
    runtime.block_on(kafka::delete_topics(servers, &[topic]))?;
    outcome
}

/// `--consumers` MillpondConsumers (a topic and a group each), observed
/// by a process of its own.
fn many_consumers(args: &Args, runtime: &tokio::runtime::Runtime) -> Result<()> {
    let servers = &args.bootstrap_servers;
    let mut pairs = String::new();
    let mut topics = Vec::new();
    for i in 0..args.consumers {
        let topic = kafka::unique_topic(&format!("observe-bench-{i}"));
        runtime.block_on(kafka::create_topic(
            servers,
            &topic,
            args.consumer_partitions,
        ))?;
        let group = format!("{topic}-group");
        let commits: BTreeMap<i32, i64> = (0..args.consumer_partitions).map(|p| (p, 0)).collect();
        kafka::commit(servers, &group, &topic, &commits)?;
        pairs.push_str(&format!("{topic} {group}\n"));
        topics.push(topic);
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), pairs)?;
    println!(
        "\n## {} MillpondConsumers on one cluster ({} partitions each)\n",
        args.consumers, args.consumer_partitions
    );
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--bootstrap-servers")
        .arg(servers)
        .arg("--timeout-ms")
        .arg(args.timeout_ms.to_string())
        .arg("--intervals-of")
        .arg(file.path())
        .status()?;
    runtime.block_on(kafka::delete_topics(servers, &topics))?;
    anyhow::ensure!(status.success(), "the observing process failed");
    Ok(())
}

/// Three intervals of observations of every pair in `file`, each interval's
/// all started together through one shared client.
fn intervals(
    args: &Args,
    file: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
    timeout: Duration,
) -> Result<()> {
    let targets: Vec<KafkaTarget> = std::fs::read_to_string(file)?
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(topic, group)| KafkaTarget {
            bootstrap_servers: args.bootstrap_servers.clone(),
            topic: topic.into(),
            group: group.into(),
            properties: BTreeMap::new(),
        })
        .collect();
    let rss_before = rss_kib();
    let observers = Arc::new(Observers::new(Duration::from_secs(600)));
    let mut seconds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let results = runtime.block_on(futures::future::join_all(
            targets
                .iter()
                .map(|t| observers.observe(t.clone(), timeout)),
        ));
        seconds.push(format!("{:.2} s", started.elapsed().as_secs_f64()));
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        anyhow::ensure!(
            failed.is_empty(),
            "{} observations failed: {}",
            failed.len(),
            failed[0]
        );
    }
    println!(
        "Each interval observes all {} at once (the first opens the client): {}; {} client(s) open; RSS of the observing process {} MiB before the client, {} MiB after the three intervals.",
        targets.len(),
        seconds.join(", "),
        observers.open_clients(),
        rss_before / 1024,
        rss_kib() / 1024
    );
    Ok(())
}

/// The previous way: a new client, metadata, two ListOffsets per partition
/// (`fetch_watermarks`), the group's offsets; and the requests it sent.
fn read_as_before(
    servers: &str,
    topic: &str,
    group: &str,
    timeout: Duration,
) -> Result<(Vec<PartitionOffsets>, BTreeMap<String, i64>)> {
    let consumer: BaseConsumer<millpond_kafka::connect_failure::FailureCapture> =
        ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("statistics.interval.ms", "100")
            .create_with_context(Default::default())?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut out = Vec::new();
    for p in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
        tpl.add_partition(topic, p.id());
        out.push(PartitionOffsets {
            partition: p.id(),
            low,
            high,
            committed: None,
        });
    }
    for e in consumer.committed_offsets(tpl, timeout)?.elements() {
        if let (Offset::Offset(o), Some(p)) = (
            e.offset(),
            out.iter_mut().find(|p| p.partition == e.partition()),
        ) {
            p.committed = Some(o);
        }
    }
    out.sort_by_key(|p| p.partition);
    std::thread::sleep(Duration::from_millis(250));
    millpond_kafka::connect_failure::serve_events(&consumer, Duration::ZERO);
    let sent = consumer
        .context()
        .statistics()
        .map(|s| by_type(&s))
        .unwrap_or_default();
    Ok((out, sent))
}

/// Requests sent so far by the observer, by type (after its statistics
/// caught up).
fn requests(observer: &Observer) -> BTreeMap<String, i64> {
    std::thread::sleep(Duration::from_millis(250));
    observer.serve_events();
    observer
        .statistics()
        .map(|s| by_type(&s))
        .unwrap_or_default()
}

/// Requests by type over every broker, leaving out those sent without a
/// caller asking (version negotiation, heartbeats of the connection).
fn by_type(s: &rdkafka::Statistics) -> BTreeMap<String, i64> {
    let mut total = BTreeMap::new();
    for broker in s.brokers.values() {
        for (k, v) in &broker.req {
            if *v > 0 && k != "ApiVersion" {
                *total.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    total
}

fn delta(after: &BTreeMap<String, i64>, before: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn add(total: &mut BTreeMap<String, i64>, more: &BTreeMap<String, i64>) {
    for (k, v) in more {
        *total.entry(k.clone()).or_insert(0) += v;
    }
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// This process's resident memory (KiB).
fn rss_kib() -> u64 {
    millpond_testkit::process::status_kib("self", "VmRSS")
}
