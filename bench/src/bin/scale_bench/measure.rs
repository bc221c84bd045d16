//! `run`: the workload produced on its schedule, and a sample every two
//! seconds of the Deployment (through the Kubernetes API), the group's lag
//! (from Kafka) and the test sink's ledger, until the contender settles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use millpond_testkit::kafka;
use serde::{Deserialize, Serialize};

use crate::{samples_path, RunArgs, Workload};

/// One look at the contender, the topic and the sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first record was produced.
    pub t: f64,
    /// The Deployment's `spec.replicas`: what the autoscaler decided.
    pub replicas: i32,
    /// Its ready pods.
    pub ready: i32,
    /// Records in the topic (the sum of the high watermarks).
    pub produced: i64,
    /// Records not committed by the group.
    pub lag: i64,
    /// Distinct records the sink acknowledged.
    pub delivered: u64,
    /// Records it acknowledged more than once.
    pub duplicates: u64,
}

#[derive(Deserialize)]
struct SinkStats {
    unique: u64,
    duplicates: u64,
}

/// Produces the workload and samples the contender until it settles (or
/// `--max-seconds`), writing every sample as it comes; prints the file's path.
pub async fn run(args: RunArgs) -> Result<()> {
    let out = samples_path(&args.out, args.workload, args.contender);
    let sampler = Sampler::new(args).await?;
    let args = &sampler.args;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
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
        append(&mut samples, &s, &out)?;
        let settled = produced && settled(args, &s);
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

/// Adds `sample` to the JSON lines in `samples` and writes them all to `out`.
fn append(samples: &mut String, sample: &Sample, out: &Path) -> Result<()> {
    let _ = writeln!(samples, "{}", serde_json::to_string(sample)?);
    std::fs::write(out, &*samples).with_context(|| format!("writing {}", out.display()))
}

/// Every record delivered and committed, and the contender back at its minimum.
fn settled(args: &RunArgs, s: &Sample) -> bool {
    s.delivered >= args.records
        && s.lag == 0
        && s.replicas <= args.min_replicas
        && s.ready <= args.min_replicas
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

/// What a sample is read from: the Deployment, Kafka and the sink.
struct Sampler {
    deployments: Api<Deployment>,
    http: reqwest::Client,
    args: RunArgs,
}

impl Sampler {
    async fn new(args: RunArgs) -> Result<Self> {
        let client = Client::try_default().await.context("kubeconfig")?;
        Ok(Sampler {
            deployments: Api::namespaced(client, &args.namespace),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            args,
        })
    }

    async fn sample(&self, t: f64) -> Result<Sample> {
        let d = self.deployments.get(&self.args.deployment).await?;
        let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let (high, committed) = self.offsets().await?;
        let stats = self.sink_stats().await?;
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

    /// The topic's high watermarks and the group's committed offsets.
    async fn offsets(&self) -> Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
        let (servers, group, topic, partitions) = (
            self.args.bootstrap_servers.clone(),
            self.args.group.clone(),
            self.args.topic.clone(),
            self.args.partitions,
        );
        tokio::task::spawn_blocking(move || {
            Ok((
                kafka::high_watermarks(&servers, &topic, partitions)?,
                kafka::committed(&servers, &group, &topic, partitions)?,
            ))
        })
        .await?
    }

    async fn sink_stats(&self) -> Result<SinkStats> {
        let body = self
            .http
            .get(format!("{}/stats", self.args.sink))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        serde_json::from_slice(&body).context("the sink's /stats")
    }
}

/// Records behind over all partitions; a partition without a commit is
/// behind by all its records.
fn lag(high: &BTreeMap<i32, i64>, committed: &BTreeMap<i32, i64>) -> i64 {
    high.iter()
        .map(|(p, h)| (h - committed.get(p).copied().unwrap_or(0)).max(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn lag_counts_partitions_without_a_commit_whole() {
        let high = BTreeMap::from([(0, 100), (1, 50)]);
        let committed = BTreeMap::from([(0, 80)]);
        assert_eq!(lag(&high, &committed), 20 + 50);
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
