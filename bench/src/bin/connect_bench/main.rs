//! Millpond's Iceberg sink beside Kafka Connect with Apache Iceberg's sink
//! connector, on the same topic, catalog and store (`bench/connect-iceberg.sh`).
//!
//! Loads one topic with records spread evenly over its partitions and one
//! with a hot partition, then runs each contender in turn into a fresh
//! table of each: Millpond's consumer under a memory limit like a pod's,
//! and a Kafka Connect worker (one, distributed mode) started for the run.
//! Then once more each, killed with SIGKILL part way and restarted, to see
//! whether every record still lands once. What landed is read by pyiceberg;
//! how fast it landed, from the table's snapshots in the catalog. Prints a
//! Markdown report and writes one plot. Stops by itself.

mod measure;
mod render;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use millpond_testkit::kafka;
use millpond_testkit::runtime::block_on;

use measure::{Contender, Outcome};

#[derive(Parser)]
pub struct Args {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// Records per topic.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Record size in bytes (JSON objects `{"id": N, "pad": "..."}`).
    #[arg(long, default_value_t = 200)]
    size: usize,
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Share of the skewed topic's records on partition 0, in percent.
    #[arg(long, default_value_t = 50)]
    hot_percent: u64,
    /// Both contenders' commit interval: Millpond's
    /// `ICEBERG_COMMIT_INTERVAL_SECONDS`, the connector's
    /// `iceberg.control.commit.interval-ms`.
    #[arg(long, default_value_t = 10)]
    commit_interval: u64,
    /// Millpond's memory: its `MEMORY_BUDGET` and its control group's hard
    /// limit, in MiB (a pod's `resources.limits.memory`).
    #[arg(long, default_value_t = 128)]
    memory_mib: u64,
    /// The connector's `tasks.max`. With more than one, a task with
    /// nothing to read answers the connector's commits only every
    /// `offset.flush.interval.ms` (60 s by default), past the connector's
    /// 30 s commit timeout: set `--connect-offset-flush-ms` too.
    #[arg(long, default_value_t = 1)]
    connect_tasks: u32,
    /// The worker's `offset.flush.interval.ms` (Connect's default if unset).
    #[arg(long)]
    connect_offset_flush_ms: Option<u64>,
    /// Kill each contender once this share of the records is in its table.
    #[arg(long, default_value_t = 0.4)]
    kill_at: f64,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    #[arg(long, default_value = "target/release/millpond-consumer")]
    consumer_bin: PathBuf,
    /// Runs a Kafka Connect worker in the foreground (`e2e/stack env`).
    #[arg(long, env = "CONNECT_WORKER")]
    connect_worker: PathBuf,
    /// Where the benchmark's own worker listens (it sets
    /// MILLPOND_CONNECT_PORT to this port).
    #[arg(long, default_value_t = 18093)]
    connect_port: u16,
    /// Worker logs and other scratch files.
    #[arg(long, default_value = "/tmp/millpond-connect-bench")]
    scratch: PathBuf,
    /// Where the plot goes (SVG).
    #[arg(long, default_value = "docs/connect-iceberg.svg")]
    plot: PathBuf,
}

/// A topic the contenders read, and how its records are spread.
pub struct Topic {
    name: String,
    spread: &'static str,
}

fn load(args: &Args, spread: &'static str) -> Result<Topic> {
    let name = kafka::unique_topic(&format!("connect-bench-{spread}"));
    block_on(kafka::create_topic(
        &args.bootstrap_servers,
        &name,
        args.partitions,
    ))?;
    let started = Instant::now();
    let partition: Box<dyn FnMut(u64) -> i32> = match spread {
        "even" => Box::new(kafka::round_robin(args.partitions)),
        _ => Box::new(kafka::one_hot(args.partitions, args.hot_percent)),
    };
    kafka::produce_json_to(
        &args.bootstrap_servers,
        &name,
        0..args.records,
        args.size,
        partition,
    )?;
    eprintln!(
        "loaded {} records of {} B ({spread}) into {name} in {:.0}s",
        args.records,
        args.size,
        started.elapsed().as_secs_f64()
    );
    Ok(Topic { name, spread })
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.scratch)?;
    let topics = [load(&args, "even")?, load(&args, "skewed")?];
    let mut outcomes: Vec<Outcome> = Vec::new();
    for topic in &topics {
        for contender in [Contender::Millpond, Contender::Connect] {
            outcomes.push(measure::run(&args, contender, topic, false)?);
        }
    }
    for contender in [Contender::Millpond, Contender::Connect] {
        outcomes.push(measure::run(&args, contender, &topics[0], true)?);
    }
    print!("{}", render::report(&args, &outcomes));
    std::fs::write(&args.plot, render::plot(&outcomes))?;
    eprintln!("plot written to {}", args.plot.display());
    Ok(())
}
