//! Produces JSON records with unique ids into a topic (creating it if asked):
//! the demo burst of the README and the load of the benchmarks.

use anyhow::Result;
use clap::Parser;
use millpond_testkit::kafka;

/// Produce `{"id": N, "pad": "..."}` records of a given size.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    #[arg(long)]
    topic: String,
    /// Create the topic with this many partitions first.
    #[arg(long)]
    create_partitions: Option<i32>,
    /// Partitions to spread records over (defaults to --create-partitions, else 1).
    #[arg(long)]
    partitions: Option<i32>,
    /// Number of records.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// First id.
    #[arg(long, default_value_t = 0)]
    first_id: u64,
    /// Approximate record size in bytes.
    #[arg(long, default_value_t = 500)]
    size: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(p) = args.create_partitions {
        kafka::create_topic(&args.bootstrap_servers, &args.topic, p).await?;
    }
    let partitions = args.partitions.or(args.create_partitions).unwrap_or(1);
    let started = std::time::Instant::now();
    let ids = args.first_id..args.first_id + args.records;
    let (servers, topic, size) = (
        args.bootstrap_servers.clone(),
        args.topic.clone(),
        args.size,
    );
    tokio::task::spawn_blocking(move || {
        kafka::produce_json(&servers, &topic, partitions, ids, size)
    })
    .await??;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "produced {} records of ~{} B to {} ({} partitions) in {:.1}s ({:.0} records/s)",
        args.records,
        args.size,
        args.topic,
        partitions,
        secs,
        args.records as f64 / secs
    );
    Ok(())
}
