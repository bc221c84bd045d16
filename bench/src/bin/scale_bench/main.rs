//! `millpond-scale-bench`: one autoscaler against a burst on the real stack,
//! and the side-by-side report of several (bench/keda.sh drives it).
//!
//! ```text
//! millpond-scale-bench run --workload step --contender keda --namespace NS \
//!     --deployment NAME --group GROUP --topic TOPIC --sink http://ADDR --out DIR
//! millpond-scale-bench report --dir DIR --svg-dir docs
//! ```
//!
//! `run` produces the workload into the topic on its schedule and, every
//! two seconds until the burst is delivered and the Deployment is back at
//! its minimum (or `--max-seconds`), samples what a user would look at: the
//! Deployment's replicas (what the autoscaler decided) and ready pods, the
//! group's lag read from Kafka (high watermarks − committed offsets), and
//! what the test sink acknowledged. Nothing is read from the autoscaler's
//! own status. Samples go to `DIR/<workload>-<contender>.jsonl`.
//!
//! `report` judges each run by the simulator's definitions (time to drain,
//! replica-seconds, scale events, flaps: [`millpond_simulator::summarize`]),
//! over the same horizon for both contenders of a workload (the shorter run
//! is held at its last replica count), and prints Markdown tables; with
//! `--svg-dir` it also draws one plot per workload.
//!
//! `measure` holds `run` (the workload and the samples); `render` holds
//! `report` (the judging, the tables and the plots).

mod measure;
mod render;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "millpond-scale-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce a workload and sample one contender until it settles.
    Run(RunArgs),
    /// Compare the runs in a directory.
    Report(ReportArgs),
}

/// The bursts, all of `--records` records of `--size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Every record at once, spread evenly over the partitions.
    Step,
    /// Every record at once, 40 % of them on partition 0.
    Skewed,
    /// Half at once, the other half `--pause-seconds` later.
    Waves,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Step, Workload::Skewed, Workload::Waves];

    fn name(self) -> &'static str {
        match self {
            Workload::Step => "step",
            Workload::Skewed => "skewed",
            Workload::Waves => "waves",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Contender {
    /// A Deployment scaled by KEDA's ScaledObject (the HPA).
    Keda,
    /// A MillpondConsumer.
    Millpond,
}

impl Contender {
    const ALL: [Contender; 2] = [Contender::Keda, Contender::Millpond];

    fn name(self) -> &'static str {
        match self {
            Contender::Keda => "keda",
            Contender::Millpond => "millpond",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Contender::Keda => "#ff7f0e",
            Contender::Millpond => "#1f77b4",
        }
    }
}

/// Where the samples of one run go, under `dir`.
fn samples_path(dir: &std::path::Path, workload: Workload, contender: Contender) -> PathBuf {
    dir.join(format!("{}-{}.jsonl", workload.name(), contender.name()))
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    #[arg(long, value_enum)]
    workload: Workload,
    #[arg(long, value_enum)]
    contender: Contender,
    /// Namespace of the Deployment.
    #[arg(long)]
    namespace: String,
    /// The Deployment the contender scales.
    #[arg(long)]
    deployment: String,
    /// The consumers' group.
    #[arg(long)]
    group: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Record size in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// The test sink's base URL (its `/stats` is read).
    #[arg(long)]
    sink: String,
    /// The contender's minimum replicas: the run ends once it is back there.
    #[arg(long, default_value_t = 1)]
    min_replicas: i32,
    /// Seconds between the two waves of `waves`.
    #[arg(long, default_value_t = 240)]
    pause_seconds: u64,
    /// The run ends after this long whatever happened.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// Where the samples go.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Where `run` wrote its samples.
    #[arg(long)]
    dir: PathBuf,
    /// Records of each workload.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Draw `keda-<workload>.svg` here.
    #[arg(long)]
    svg_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => measure::run(args).await,
        Command::Report(args) => render::report(&args),
    }
}
