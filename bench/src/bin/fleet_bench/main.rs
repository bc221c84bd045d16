//! Many MillpondConsumers on one operator, against the real stack: the
//! operator installed by `helm install` (bench/fleet.sh does that and
//! the clean-up), `--count` consumers created at once, paused at 0 replicas
//! (no pods), all on one topic with a group each. Measured:
//!
//! * the operator's memory: `process_resident_memory_bytes` of every
//!   operator pod, the process' peak (`VmHWM`) and its container's cgroup;
//! * reconcile duration p50 / p99, from the bucket deltas of
//!   `millpond_operator_reconcile_duration_seconds` over each phase;
//! * how long until every consumer has been observed (`status.partitions`
//!   or `status.lastObservedTime` set), and then, each interval, the age of
//!   every status (now − `status.lastObservedTime`) and the gaps between two
//!   observations of one consumer;
//! * API requests per interval, from the API server's own
//!   `apiserver_request_total`, reads and writes per resource, beside the
//!   same counts with no consumer (the background of the control plane and
//!   the node);
//! * the writes that changed an owned object: a watch on the consumers'
//!   Deployments, ConfigMaps, Services, PodDisruptionBudgets and Secrets
//!   counts new resourceVersions (and, for Deployments, new generations:
//!   spec or annotation changes), beside the writes the API server counted;
//! * Kafka requests per interval (`millpond_operator_kafka_requests_total`)
//!   and the Kafka clients the operator holds.
//!
//! Prints a Markdown report on stdout, progress on stderr. Bounded by
//! `--max-seconds`: a warm-up that does not finish in time is reported as
//! such and the steady intervals are measured anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use millpond_crds::MillpondConsumer;
use serde_json::json;
use tokio::task::JoinHandle;

mod fleet;
mod measure;
mod render;
mod snapshot;

use fleet::{watch, watch_changes, Changes, Fleet};
use measure::Bench;
use render::Report;
use snapshot::{Delta, Snapshot};

#[derive(Parser, Clone)]
pub struct Args {
    /// MillpondConsumers to create.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Namespace of the consumers (exists; deleted by the caller).
    #[arg(long)]
    namespace: String,
    /// Namespace of the operator's helm release.
    #[arg(long)]
    operator_namespace: String,
    /// Name of the operator's helm release.
    #[arg(long, default_value = "mp")]
    release: String,
    /// Port of the operator's /metrics (the chart's metrics.port).
    #[arg(long, default_value_t = 8080)]
    metrics_port: u16,
    /// Topic every consumer reads (exists).
    #[arg(long)]
    topic: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// The operator's INTERVAL_SECONDS.
    #[arg(long, default_value_t = 15)]
    interval_seconds: u64,
    /// Intervals measured after the warm-up and the settling.
    #[arg(long, default_value_t = 5)]
    steady_intervals: u32,
    /// Seconds between the warm-up and the steady intervals: the consumers'
    /// scale-down window (default 300 s), in which each decision record
    /// still grows by one recommendation every interval.
    #[arg(long, default_value_t = 300)]
    settle_seconds: u64,
    /// The whole run stops after this long.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Server-side applies in flight while creating the consumers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds between two memory samples.
    #[arg(long, default_value_t = 5)]
    sample_seconds: u64,
}

/// The resources whose API requests are counted (any API group, every
/// subresource).
pub const RESOURCES: [&str; 10] = [
    "millpondconsumers",
    "deployments",
    "replicasets",
    "configmaps",
    "services",
    "poddisruptionbudgets",
    "secrets",
    "pods",
    "events",
    "leases",
];
pub const READ_VERBS: [&str; 3] = ["GET", "LIST", "WATCH"];
pub const RECONCILE: &str = "millpond_operator_reconcile_duration_seconds";
pub const KAFKA_REQUESTS: &str = "millpond_operator_kafka_requests_total";
pub const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> Result<()> {
    let run = Run::start(Args::parse()).await?;
    let mut report = Report::default();
    let (before, idle) = baseline(&run, &mut report).await?;
    let watches = Watches::start(&run.client, &run.args.namespace);
    let (created, create_start) = create_fleet(&run, &mut report).await?;
    warm_up(&run, &watches.fleet, &created, create_start, &mut report).await;
    let warm = settle(&run, &idle, &mut report).await?;
    let slowest = [&before, &idle, &warm]
        .iter()
        .map(|s| s.took)
        .fold(0.0, f64::max);
    steady(&run, &watches, &created, &warm, slowest, &mut report).await;
    watches.stop();
    gather(&run, &mut report).await;
    print!("{}", report.render(&run.args));
    Ok(())
}

/// What every phase of the run uses.
struct Run {
    args: Args,
    client: kube::Client,
    bench: Bench,
    started: Instant,
    /// When the whole run stops (`--max-seconds`).
    deadline: Instant,
    /// The operator's interval.
    interval: Duration,
}

impl Run {
    async fn start(args: Args) -> Result<Run> {
        let started = Instant::now();
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (eval \"$(e2e/stack env)\")")?;
        let bench = Bench::new(client.clone(), &args).await?;
        Ok(Run {
            deadline: started + Duration::from_secs(args.max_seconds),
            interval: Duration::from_secs(args.interval_seconds),
            args,
            client,
            bench,
            started,
        })
    }

    /// A line of progress on stderr.
    fn progress(&self, what: &str) {
        eprintln!(
            "[fleet {:>4.0} s] {what}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// The watches of the consumers and of the objects the operator owns.
struct Watches {
    fleet: Arc<Mutex<Fleet>>,
    changes: Arc<Mutex<Changes>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watches {
    fn start(client: &kube::Client, ns: &str) -> Watches {
        let fleet = Arc::new(Mutex::new(Fleet::default()));
        let changes = Arc::new(Mutex::new(Changes::default()));
        let tasks = vec![
            tokio::spawn(watch(client.clone(), ns.to_string(), fleet.clone())),
            watch_changes::<Deployment>(client, ns, &changes),
            watch_changes::<ConfigMap>(client, ns, &changes),
            watch_changes::<Service>(client, ns, &changes),
            watch_changes::<PodDisruptionBudget>(client, ns, &changes),
            watch_changes::<Secret>(client, ns, &changes),
        ];
        Watches {
            fleet,
            changes,
            tasks,
        }
    }

    /// Forgets the gaps, status updates and changes seen so far.
    fn reset(&self) {
        let mut f = self.fleet.lock().unwrap();
        f.gaps.clear();
        f.status_updates = 0;
        drop(f);
        self.changes.lock().unwrap().by_kind.clear();
    }

    /// The interval from `previous` to `now`, with what the watches saw in
    /// it (taken, so the next interval starts afresh).
    fn interval(&self, previous: &Snapshot, now: &Snapshot, created: &Created) -> Delta {
        let mut row = Delta::between(previous, now);
        let mut f = self.fleet.lock().unwrap();
        row.ages = Some(f.ages(created));
        row.gaps = std::mem::take(&mut f.gaps);
        row.status_updates = std::mem::take(&mut f.status_updates);
        drop(f);
        row.changes = std::mem::take(&mut self.changes.lock().unwrap().by_kind);
        row
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Each consumer created, and when.
type Created = HashMap<String, Instant>;

/// The background: one interval with the operator running and no consumer.
/// The snapshots at its start and end.
async fn baseline(run: &Run, report: &mut Report) -> Result<(Snapshot, Snapshot)> {
    run.progress("measuring one interval without consumers");
    let before = run.bench.snapshot_retrying().await?;
    run.bench.sample_until(Instant::now() + run.interval).await;
    let idle = run.bench.snapshot_retrying().await?;
    report.baseline = Some(Delta::between(&before, &idle));
    Ok((before, idle))
}

/// Creates every consumer at once (`--concurrency` applies in flight); the
/// consumers and when the first create started.
async fn create_fleet(run: &Run, report: &mut Report) -> Result<(Created, Instant)> {
    let args = &run.args;
    let mpcs: Api<MillpondConsumer> = Api::namespaced(run.client.clone(), &args.namespace);
    let create_start = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(0..args.count)
        .map(|i| {
            let mpcs = mpcs.clone();
            async move {
                let name = format!("fleet-{i:04}");
                mpcs.patch(
                    &name,
                    &PatchParams::apply("millpond-fleet-bench").force(),
                    &Patch::Apply(consumer(args, &name, i)),
                )
                .await
                .with_context(|| format!("creating {name}"))?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect()
        .await?;
    report.create_seconds = create_start.elapsed().as_secs_f64();
    run.progress(&format!(
        "created {} MillpondConsumers in {:.1} s",
        created.len(),
        report.create_seconds
    ));
    Ok((created.into_iter().collect(), create_start))
}

/// Warm-up: until every consumer has been observed once, leaving time for
/// the settling and the steady intervals.
async fn warm_up(
    run: &Run,
    fleet: &Mutex<Fleet>,
    created: &Created,
    create_start: Instant,
    report: &mut Report,
) {
    let args = &run.args;
    let settle = Duration::from_secs(args.settle_seconds);
    let warmup_deadline = run
        .deadline
        .checked_sub(run.interval * args.steady_intervals + settle + Duration::from_secs(30))
        .unwrap_or(run.deadline)
        .max(Instant::now());
    let mut told = Instant::now();
    loop {
        let observed = fleet.lock().unwrap().observed(created);
        if observed == args.count || Instant::now() >= warmup_deadline {
            break;
        }
        if told.elapsed() >= run.interval {
            run.progress(&format!("warm-up: {observed} of {} observed", args.count));
            told = Instant::now();
        }
        run.bench
            .sample_until((Instant::now() + Duration::from_secs(1)).min(warmup_deadline))
            .await;
    }
    let fleet = fleet.lock().unwrap();
    report.first_observations = fleet.first_observations(created, create_start);
    report.unobserved = fleet.unobserved(created);
    drop(fleet);
    run.progress(&format!(
        "warm-up over: {} of {} observed",
        report.first_observations.observed, args.count
    ));
}

/// The end of the warm-up, then the settling: until each consumer's window
/// of recommendations is full. The snapshot the steady intervals start from.
async fn settle(run: &Run, idle: &Snapshot, report: &mut Report) -> Result<Snapshot> {
    let warm = run.bench.snapshot_retrying().await?;
    report.warmup = Some(Delta::between(idle, &warm));
    let settle = Duration::from_secs(run.args.settle_seconds);
    if settle.is_zero() {
        return Ok(warm);
    }
    run.progress(&format!("settling for {} s", settle.as_secs()));
    run.bench.sample_until(Instant::now() + settle).await;
    let settled = run.bench.snapshot_retrying().await?;
    report.settling = Some(Delta::between(&warm, &settled));
    Ok(settled)
}

/// The steady intervals from `warm`, each a row of the report, until
/// `--steady-intervals` or the time limit. `slowest`: the longest a
/// snapshot took so far.
async fn steady(
    run: &Run,
    watches: &Watches,
    created: &Created,
    warm: &Snapshot,
    mut slowest: f64,
    report: &mut Report,
) {
    let args = &run.args;
    watches.reset();
    let mut previous = warm.clone();
    let mut changes = BTreeMap::new();
    for k in 1..=args.steady_intervals {
        let end = previous.at + run.interval;
        if end > run.deadline {
            report.notes.push(format!(
                "Stopped after {} of {} steady intervals: the time limit of {} s came first.",
                k - 1,
                args.steady_intervals,
                args.max_seconds
            ));
            break;
        }
        run.bench.sample_until(end).await;
        let now = match run.bench.snapshot_retrying().await {
            Ok(now) => now,
            Err(e) => {
                report
                    .notes
                    .push(format!("Steady interval {k} not measured: {e:#}."));
                break;
            }
        };
        slowest = slowest.max(now.took);
        let row = watches.interval(&previous, &now, created);
        for (kind, n) in &row.changes {
            let total: &mut (u64, u64) = changes.entry(kind.clone()).or_default();
            total.0 += n.0;
            total.1 += n.1;
        }
        run.progress(&format!("steady interval {k}: {}", row.short()));
        report.intervals.push(row);
        previous = now;
    }
    report.steady = Some(Delta {
        changes,
        ..Delta::between(warm, &previous)
    });
    if slowest > 5.0 {
        report.notes.push(format!(
            "Taking one snapshot (API server metrics, lease, operator pods and their metrics) took up to {slowest:.1} s."
        ));
    }
}

/// What the report needs from the end of the run: memory, pods, leaders,
/// what else runs on the stack and what the namespace holds.
async fn gather(run: &Run, report: &mut Report) {
    let bench = &run.bench;
    report.memory = bench.memory.lock().unwrap().clone();
    report.operator_pods = bench.operator_pods().await.unwrap_or_default();
    report.leaders = bench.leaders.lock().unwrap().clone();
    report.others = bench.others.lock().unwrap().iter().cloned().collect();
    report.replica_sets = bench.replica_sets().await.ok();
    report.list_bytes = bench.list_bytes().await;
    report.whole_seconds = run.started.elapsed().as_secs_f64();
}

/// Consumer `i`: its own group on the shared topic, paused at 0 replicas.
/// The sink is never written to (no pod runs).
fn consumer(args: &Args, name: &str, i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "millpond.io/v1alpha1",
        "kind": "MillpondConsumer",
        "metadata": {"name": name, "namespace": args.namespace},
        "spec": {
            "kafka": {
                "bootstrapServers": args.bootstrap_servers,
                "topic": args.topic,
                "groupId": format!("{}-{i:04}", args.topic),
            },
            "sink": {"url": "http://fleet-bench.invalid/records"},
            "autoscaling": {"paused": true},
            "replicas": 0,
        }
    })
}
