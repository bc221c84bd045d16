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
//!
//! `measure` runs the contenders against the stack; `render` turns what
//! they did into the report.

mod measure;
mod render;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

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

fn main() -> Result<()> {
    let args = Args::parse();
    print!("{}", render::header(&args, &measure::machine()));
    if !args.skip_throughput {
        throughput(&args)?;
    }
    if !args.skip_memory {
        memory(&args)?;
    }
    Ok(())
}

/// Every contender on one topic, `--runs` rounds.
fn throughput(args: &Args) -> Result<()> {
    let topic = measure::load(args, "bench-tput", args.records)?;
    let runs = measure::rounds(args, &topic)?;
    print!("{}", render::throughput(args, &runs));
    Ok(())
}

/// The consumer catching up on a backlog: within its budget, with
/// librdkafka's default prefetch, and into Iceberg. Each row is printed as
/// soon as it is measured.
fn memory(args: &Args) -> Result<()> {
    let topic = measure::load(args, "bench-mem", args.backlog_records)?;
    let bounded = measure::bounded(args, &topic)?;
    let defaults = measure::default_prefetch(args, &topic)?;
    print!("{}", render::memory_table(args, &bounded, &defaults));
    if !args.skip_iceberg {
        let iceberg = measure::iceberg_under_budget(args, &topic)?;
        print!("{}", render::memory_iceberg_row(&iceberg));
    }
    print!("{}", render::memory_summary(args, &bounded, &defaults));
    Ok(())
}
