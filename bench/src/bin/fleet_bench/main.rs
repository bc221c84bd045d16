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

mod fleet;
mod measure;
mod render;
mod snapshot;

use fleet::*;
use measure::*;
use render::*;
use snapshot::*;

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
    let args = Args::parse();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let interval = Duration::from_secs(args.interval_seconds);
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (eval \"$(e2e/stack env)\")")?;
    let bench = Bench::new(client.clone(), &args).await?;
    let mut report = Report::default();

    // The background: one interval with the operator running and no consumer.
    progress(started, "measuring one interval without consumers");
    let before = bench.snapshot_retrying().await?;
    bench.sample_until(Instant::now() + interval).await;
    let idle = bench.snapshot_retrying().await?;
    report.baseline = Some(Delta::between(&before, &idle));

    // Watch the consumers, then create them all at once.
    let fleet = Arc::new(Mutex::new(Fleet::default()));
    let watching = tokio::spawn(watch(client.clone(), args.namespace.clone(), fleet.clone()));
    let changes = Arc::new(Mutex::new(Changes::default()));
    let ns = &args.namespace;
    let watching_owned = [
        watch_changes::<Deployment>(&client, ns, &changes),
        watch_changes::<ConfigMap>(&client, ns, &changes),
        watch_changes::<Service>(&client, ns, &changes),
        watch_changes::<PodDisruptionBudget>(&client, ns, &changes),
        watch_changes::<Secret>(&client, ns, &changes),
    ];
    let mpcs: Api<MillpondConsumer> = Api::namespaced(client.clone(), &args.namespace);
    let create_start = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(0..args.count)
        .map(|i| {
            let (mpcs, args) = (mpcs.clone(), &args);
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
    progress(
        started,
        &format!(
            "created {} MillpondConsumers in {:.1} s",
            created.len(),
            report.create_seconds
        ),
    );
    let created: HashMap<String, Instant> = created.into_iter().collect();

    // Warm-up: until every consumer has been observed once, leaving time for
    // the steady intervals.
    let settle = Duration::from_secs(args.settle_seconds);
    let warmup_deadline = deadline
        .checked_sub(interval * args.steady_intervals + settle + Duration::from_secs(30))
        .unwrap_or(deadline)
        .max(Instant::now());
    let mut told = Instant::now();
    loop {
        let observed = fleet.lock().unwrap().observed(&created);
        if observed == args.count || Instant::now() >= warmup_deadline {
            break;
        }
        if told.elapsed() >= interval {
            progress(
                started,
                &format!("warm-up: {observed} of {} observed", args.count),
            );
            told = Instant::now();
        }
        bench
            .sample_until((Instant::now() + Duration::from_secs(1)).min(warmup_deadline))
            .await;
    }
    report.first_observations = fleet
        .lock()
        .unwrap()
        .first_observations(&created, create_start);
    report.unobserved = fleet.lock().unwrap().unobserved(&created);
    progress(
        started,
        &format!(
            "warm-up over: {} of {} observed",
            report.first_observations.observed, args.count
        ),
    );

    let warm = bench.snapshot_retrying().await?;
    report.warmup = Some(Delta::between(&idle, &warm));
    // Settling: until each consumer's window of recommendations is full.
    let warm = if settle.is_zero() {
        warm
    } else {
        progress(started, &format!("settling for {} s", settle.as_secs()));
        bench.sample_until(Instant::now() + settle).await;
        let settled = bench.snapshot_retrying().await?;
        report.settling = Some(Delta::between(&warm, &settled));
        settled
    };

    // Steady intervals.
    {
        let mut f = fleet.lock().unwrap();
        f.gaps.clear();
        f.status_updates = 0;
    }
    changes.lock().unwrap().by_kind.clear();
    let mut previous = warm.clone();
    let mut steady_changes = BTreeMap::new();
    let mut slowest = [&before, &idle, &warm]
        .iter()
        .map(|s| s.took)
        .fold(0.0, f64::max);
    for k in 1..=args.steady_intervals {
        let end = previous.at + interval;
        if end > deadline {
            report.notes.push(format!(
                "Stopped after {} of {} steady intervals: the time limit of {} s came first.",
                k - 1,
                args.steady_intervals,
                args.max_seconds
            ));
            break;
        }
        bench.sample_until(end).await;
        let now = match bench.snapshot_retrying().await {
            Ok(now) => now,
            Err(e) => {
                report
                    .notes
                    .push(format!("Steady interval {k} not measured: {e:#}."));
                break;
            }
        };
        slowest = slowest.max(now.took);
        let mut row = Delta::between(&previous, &now);
        let mut f = fleet.lock().unwrap();
        row.ages = Some(f.ages(&created));
        row.gaps = std::mem::take(&mut f.gaps);
        row.status_updates = std::mem::take(&mut f.status_updates);
        drop(f);
        row.changes = std::mem::take(&mut changes.lock().unwrap().by_kind);
        for (kind, n) in &row.changes {
            let total: &mut (u64, u64) = steady_changes.entry(kind.clone()).or_default();
            total.0 += n.0;
            total.1 += n.1;
        }
        progress(started, &format!("steady interval {k}: {}", row.short()));
        report.intervals.push(row);
        previous = now;
    }
    report.steady = Some(Delta {
        changes: steady_changes,
        ..Delta::between(&warm, &previous)
    });
    if slowest > 5.0 {
        report.notes.push(format!(
            "Taking one snapshot (API server metrics, lease, operator pods and their metrics) took up to {slowest:.1} s."
        ));
    }
    watching.abort();
    for w in watching_owned {
        w.abort();
    }
    report.memory = bench.memory.lock().unwrap().clone();
    report.operator_pods = bench.operator_pods().await.unwrap_or_default();
    report.leaders = bench.leaders.lock().unwrap().clone();
    report.others = bench.others.lock().unwrap().iter().cloned().collect();
    report.replica_sets = bench.replica_sets().await.ok();
    report.list_bytes = bench.list_bytes().await;
    report.whole_seconds = started.elapsed().as_secs_f64();
    print!("{}", report.render(&args));
    Ok(())
}

fn progress(started: Instant, what: &str) {
    eprintln!("[fleet {:>4.0} s] {what}", started.elapsed().as_secs_f64());
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
