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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use millpond_simulator::report::duration;
use millpond_simulator::svg::{self, Line, Panel};
use millpond_testkit::kafka;
use serde::{Deserialize, Serialize};

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

/// One look at the contender, the topic and the sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sample {
    /// Seconds since the first record was produced.
    t: f64,
    /// The Deployment's `spec.replicas`: what the autoscaler decided.
    replicas: i32,
    /// Its ready pods.
    ready: i32,
    /// Records in the topic (the sum of the high watermarks).
    produced: i64,
    /// Records not committed by the group.
    lag: i64,
    /// Distinct records the sink acknowledged.
    delivered: u64,
    /// Records it acknowledged more than once.
    duplicates: u64,
}

#[derive(Deserialize)]
struct SinkStats {
    unique: u64,
    duplicates: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Report(args) => report(&args),
    }
}

/// The waves of a workload: `(seconds after the start, ids)`.
fn waves(args: &RunArgs) -> Vec<(u64, std::ops::Range<u64>)> {
    let n = args.records;
    match args.workload {
        Workload::Step | Workload::Skewed => vec![(0, 0..n)],
        Workload::Waves => vec![(0, 0..n / 2), (args.pause_seconds, n / 2..n)],
    }
}

/// Produces the workload on its schedule; returns when every wave is in.
async fn produce(args: &RunArgs, start: Instant) -> Result<()> {
    for (at, ids) in waves(args) {
        tokio::time::sleep_until((start + Duration::from_secs(at)).into()).await;
        let (servers, topic, size) = (
            args.bootstrap_servers.clone(),
            args.topic.clone(),
            args.size,
        );
        let (partitions, workload) = (args.partitions, args.workload);
        tokio::task::spawn_blocking(move || match workload {
            Workload::Skewed => {
                kafka::produce_json_to(&servers, &topic, ids, size, kafka::one_hot(partitions, 40))
            }
            _ => {
                kafka::produce_json_to(&servers, &topic, ids, size, kafka::round_robin(partitions))
            }
        })
        .await??;
    }
    Ok(())
}

struct Sampler {
    deployments: Api<Deployment>,
    http: reqwest::Client,
    args: RunArgs,
}

impl Sampler {
    async fn sample(&self, t: f64) -> Result<Sample> {
        let d = self.deployments.get(&self.args.deployment).await?;
        let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let (servers, group, topic, partitions) = (
            self.args.bootstrap_servers.clone(),
            self.args.group.clone(),
            self.args.topic.clone(),
            self.args.partitions,
        );
        let (high, committed) = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((
                kafka::high_watermarks(&servers, &topic, partitions)?,
                kafka::committed(&servers, &group, &topic, partitions)?,
            ))
        })
        .await??;
        let body = self
            .http
            .get(format!("{}/stats", self.args.sink))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let stats: SinkStats = serde_json::from_slice(&body).context("the sink's /stats")?;
        Ok(Sample {
            t,
            replicas,
            ready,
            produced: high.values().sum(),
            lag: lag(&high, &committed),
            delivered: stats.unique,
            duplicates: stats.duplicates,
        })
    }
}

/// Records behind over all partitions; a partition without a commit is
/// behind by all its records.
fn lag(high: &BTreeMap<i32, i64>, committed: &BTreeMap<i32, i64>) -> i64 {
    high.iter()
        .map(|(p, h)| (h - committed.get(p).copied().unwrap_or(0)).max(0))
        .sum()
}

async fn run(args: RunArgs) -> Result<()> {
    let client = Client::try_default().await.context("kubeconfig")?;
    let out = args.out.join(format!(
        "{}-{}.jsonl",
        args.workload.name(),
        args.contender.name()
    ));
    std::fs::create_dir_all(&args.out)?;
    let sampler = Sampler {
        deployments: Api::namespaced(client, &args.namespace),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        args,
    };
    let args = &sampler.args;
    let start = Instant::now();
    let producing = produce(args, start);
    tokio::pin!(producing);
    let mut produced = false;
    let mut samples = String::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            done = &mut producing, if !produced => { done?; produced = true; continue; }
            _ = tick.tick() => {}
        }
        let t = start.elapsed().as_secs_f64();
        let s = match sampler.sample(t).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{t:.0}s: no sample: {e:#}");
                continue;
            }
        };
        eprintln!(
            "{:>5.0}s replicas {:>2} ready {:>2} lag {:>8} delivered {:>8}",
            s.t, s.replicas, s.ready, s.lag, s.delivered
        );
        let _ = writeln!(samples, "{}", serde_json::to_string(&s)?);
        std::fs::write(&out, &samples).with_context(|| format!("writing {}", out.display()))?;
        let settled = produced
            && s.delivered >= args.records
            && s.lag == 0
            && s.replicas <= args.min_replicas
            && s.ready <= args.min_replicas;
        if settled || t > args.max_seconds as f64 {
            if !settled {
                eprintln!("stopped after {} s without settling", args.max_seconds);
            }
            break;
        }
    }
    println!("{}", out.display());
    Ok(())
}

/// A run as the simulator's per-second samples, held at its last values up
/// to `horizon` seconds.
fn per_second(samples: &[Sample], horizon: u64) -> Vec<millpond_simulator::Sample> {
    let mut out = Vec::with_capacity(horizon as usize + 1);
    let mut i = 0;
    let mut produced_before = 0i64;
    for t in 0..=horizon {
        while i + 1 < samples.len() && samples[i + 1].t <= t as f64 {
            i += 1;
        }
        let s = &samples[i];
        out.push(millpond_simulator::Sample {
            t,
            produce: (s.produced - produced_before).max(0) as f64,
            lag: s.lag as f64,
            healthy_lag: s.lag as f64,
            replicas: s.replicas.max(0) as u32,
            flush_bytes: 0,
            max_in_flight: 0,
            fullness: 0.0,
        });
        produced_before = s.produced;
    }
    out
}

fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let samples: Vec<Sample> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if samples.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(samples)
}

/// What a run is judged by.
struct Judged {
    contender: Contender,
    samples: Vec<Sample>,
    summary: millpond_simulator::Summary,
    missing: u64,
    duplicates: u64,
    settled_at: f64,
}

fn report(args: &ReportArgs) -> Result<()> {
    let mut out = String::new();
    for workload in Workload::ALL {
        let runs: Vec<(Contender, Vec<Sample>)> = Contender::ALL
            .iter()
            .filter_map(|&c| {
                let path = args
                    .dir
                    .join(format!("{}-{}.jsonl", workload.name(), c.name()));
                path.exists().then(|| read_samples(&path).map(|s| (c, s)))
            })
            .collect::<Result<_>>()?;
        if runs.is_empty() {
            continue;
        }
        let horizon = runs
            .iter()
            .map(|(_, s)| s.last().map_or(0.0, |s| s.t).ceil() as u64)
            .max()
            .unwrap_or(0);
        let judged: Vec<Judged> = runs
            .into_iter()
            .map(|(contender, samples)| {
                let last = samples.last().expect("non-empty").clone();
                Judged {
                    contender,
                    summary: millpond_simulator::summarize(&per_second(&samples, horizon), vec![]),
                    missing: args.records.saturating_sub(last.delivered),
                    duplicates: last.duplicates,
                    settled_at: last.t,
                    samples,
                }
            })
            .collect();
        out += &table(workload, &judged, horizon);
        if let Some(dir) = &args.svg_dir {
            let path = dir.join(format!("keda-{}.svg", workload.name()));
            std::fs::write(&path, plot(workload, &judged, horizon))
                .with_context(|| format!("writing {}", path.display()))?;
            // Linked from a document beside the plots.
            let _ = writeln!(
                out,
                "![{0} burst, KEDA and Millpond](keda-{0}.svg)\n",
                workload.name()
            );
        }
    }
    print!("{out}");
    Ok(())
}

fn table(workload: Workload, judged: &[Judged], horizon: u64) -> String {
    let mut out = format!(
        "### {}\n\n| contender | time to drain | replica-seconds (over {}) | scale events | flaps | peak replicas | missing | duplicated | back at its minimum after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        workload.name(),
        duration(horizon)
    );
    for j in judged {
        let s = &j.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            j.contender.name(),
            duration(s.time_to_drain),
            s.replica_seconds,
            s.scale_events,
            s.flaps,
            s.max_replicas,
            j.missing,
            j.duplicates,
            duration(j.settled_at.round() as u64),
        );
    }
    out.push('\n');
    out
}

fn plot(workload: Workload, judged: &[Judged], horizon: u64) -> String {
    let line = |j: &Judged, f: fn(&Sample) -> f64, steps: bool| Line {
        color: j.contender.color(),
        points: j
            .samples
            .iter()
            .map(|s| (s.t.round() as u64, f(s)))
            .collect(),
        steps,
    };
    let panel = |title: &str, f: fn(&Sample) -> f64, steps: bool| Panel {
        title: title.into(),
        lines: judged.iter().map(|j| line(j, f, steps)).collect(),
    };
    let panels = [
        panel("lag (records, read from Kafka)", |s| s.lag as f64, false),
        panel(
            "replicas (the Deployment's spec)",
            |s| s.replicas as f64,
            true,
        ),
        panel(
            "records delivered to the sink",
            |s| s.delivered as f64,
            false,
        ),
    ];
    let legend: Vec<(&str, &str)> = judged
        .iter()
        .map(|j| (j.contender.color(), j.contender.name()))
        .collect();
    svg::render(
        &format!(
            "{} burst on the real stack: KEDA and Millpond",
            workload.name()
        ),
        &legend,
        &panels,
        horizon,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, replicas: i32, produced: i64, lag: i64) -> Sample {
        Sample {
            t,
            replicas,
            ready: replicas,
            produced,
            lag,
            delivered: (produced - lag) as u64,
            duplicates: 0,
        }
    }

    #[test]
    fn lag_counts_partitions_without_a_commit_whole() {
        let high = BTreeMap::from([(0, 100), (1, 50)]);
        let committed = BTreeMap::from([(0, 80)]);
        assert_eq!(lag(&high, &committed), 20 + 50);
    }

    #[test]
    fn a_run_is_held_at_its_last_sample_up_to_the_horizon() {
        let samples = [
            sample(0.0, 1, 0, 0),
            sample(2.0, 4, 1000, 900),
            sample(4.0, 1, 1000, 0),
        ];
        let s = per_second(&samples, 6);
        assert_eq!(s.len(), 7);
        let replicas: Vec<u32> = s.iter().map(|s| s.replicas).collect();
        assert_eq!(replicas, [1, 1, 4, 4, 1, 1, 1]);
        // The records arrive once, in the second they were first seen.
        let produce: Vec<f64> = s.iter().map(|s| s.produce).collect();
        assert_eq!(produce, [0.0, 0.0, 1000.0, 0.0, 0.0, 0.0, 0.0]);
        let summary = millpond_simulator::summarize(&s, vec![]);
        assert_eq!(summary.replica_seconds, 1 + 1 + 4 + 4 + 1 + 1 + 1);
        assert_eq!(summary.scale_events, 2);
    }

    #[test]
    fn waves_split_the_records_and_wait_between_them() {
        let Command::Run(mut args) = Cli::parse_from([
            "millpond-scale-bench",
            "run",
            "--bootstrap-servers",
            "b",
            "--workload",
            "waves",
            "--contender",
            "keda",
            "--namespace",
            "n",
            "--deployment",
            "d",
            "--group",
            "g",
            "--topic",
            "t",
            "--sink",
            "http://s",
            "--out",
            "o",
            "--records",
            "10",
            "--pause-seconds",
            "30",
        ])
        .command
        else {
            panic!("run parses as run");
        };
        assert_eq!(waves(&args), vec![(0, 0..5), (30, 5..10)]);
        args.workload = Workload::Skewed;
        assert_eq!(waves(&args), vec![(0, 0..10)]);
    }
}
