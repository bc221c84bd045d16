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
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use millpond_crds::MillpondConsumer;
use millpond_operator::metrics;
use millpond_testkit::prom::{self, Sample};
use serde_json::json;

#[derive(Parser, Clone)]
struct Args {
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
const RESOURCES: [&str; 10] = [
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
const READ_VERBS: [&str; 3] = ["GET", "LIST", "WATCH"];
const RECONCILE: &str = "millpond_operator_reconcile_duration_seconds";
const KAFKA_REQUESTS: &str = "millpond_operator_kafka_requests_total";
const MIB: f64 = 1024.0 * 1024.0;

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

/// What the watch saw of the consumers.
#[derive(Default)]
struct Fleet {
    consumers: HashMap<String, Seen>,
    /// Status changes seen since last taken.
    status_updates: u64,
    /// Seconds between two successive `lastObservedTime`s of one consumer,
    /// since last taken.
    gaps: Vec<f64>,
}

#[derive(Default)]
struct Seen {
    /// When the watch first saw an observation in its status.
    first_observed: Option<Instant>,
    last_observed_time: Option<Timestamp>,
    status: Option<serde_json::Value>,
}

impl Fleet {
    fn apply(&mut self, object: &DynamicObject) {
        let Some(name) = object.metadata.name.clone() else {
            return;
        };
        let status = object.data.get("status").cloned();
        let seen = self.consumers.entry(name).or_default();
        if status == seen.status {
            return;
        }
        if status.is_some() {
            self.status_updates += 1;
        }
        let observed_time = status.as_ref().and_then(|s| {
            s.get("lastObservedTime")?
                .as_str()?
                .parse::<Timestamp>()
                .ok()
        });
        let observed = observed_time.is_some()
            || status
                .as_ref()
                .is_some_and(|s| s.get("partitions").is_some());
        if observed && seen.first_observed.is_none() {
            seen.first_observed = Some(Instant::now());
        }
        if let (Some(new), Some(old)) = (observed_time, seen.last_observed_time) {
            if new > old {
                self.gaps.push(seconds_between(new, old));
            }
        }
        if observed_time.is_some() {
            seen.last_observed_time = observed_time;
        }
        seen.status = status;
    }

    /// Consumers of `created` observed at least once.
    fn observed(&self, created: &HashMap<String, Instant>) -> usize {
        created
            .keys()
            .filter(|n| {
                self.consumers
                    .get(*n)
                    .is_some_and(|s| s.first_observed.is_some())
            })
            .count()
    }

    fn first_observations(
        &self,
        created: &HashMap<String, Instant>,
        create_start: Instant,
    ) -> FirstObservations {
        let mut latencies = Vec::new();
        let mut last = None::<Instant>;
        let mut with_time = 0;
        for (name, at) in created {
            let Some(seen) = self.consumers.get(name) else {
                continue;
            };
            with_time += usize::from(seen.last_observed_time.is_some());
            if let Some(first) = seen.first_observed {
                latencies.push(first.saturating_duration_since(*at).as_secs_f64());
                last = Some(last.map_or(first, |l| l.max(first)));
            }
        }
        FirstObservations {
            observed: latencies.len(),
            with_observed_time: with_time,
            all_after: (latencies.len() == created.len())
                .then(|| last.map(|l| l.duration_since(create_start).as_secs_f64()))
                .flatten(),
            latency: Quantiles::of(&mut latencies),
        }
    }

    /// The consumers of `created` never observed, each with its status'
    /// conditions that are not as expected.
    fn unobserved(&self, created: &HashMap<String, Instant>) -> Vec<String> {
        let mut names: Vec<&String> = created
            .keys()
            .filter(|n| {
                self.consumers
                    .get(*n)
                    .is_none_or(|s| s.first_observed.is_none())
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let conditions = self
                    .consumers
                    .get(name)
                    .and_then(|s| s.status.as_ref()?.get("conditions")?.as_array().cloned())
                    .unwrap_or_default();
                let said: Vec<String> = conditions
                    .iter()
                    .map(|c| {
                        let field = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
                        format!(
                            "{}={} {}: {}",
                            field("type"),
                            field("status"),
                            field("reason"),
                            field("message")
                        )
                    })
                    .collect();
                if said.is_empty() {
                    format!("{name}: no status")
                } else {
                    format!("{name}: {}", said.join("; "))
                }
            })
            .collect()
    }

    /// The age of every consumer's status now.
    fn ages(&self, created: &HashMap<String, Instant>) -> Ages {
        let now = Timestamp::now();
        let mut ages = Vec::new();
        let mut missing = 0;
        for name in created.keys() {
            match self.consumers.get(name).and_then(|s| s.last_observed_time) {
                Some(t) => ages.push(seconds_between(now, t)),
                None => missing += 1,
            }
        }
        Ages {
            missing,
            age: Quantiles::of(&mut ages),
        }
    }
}

fn seconds_between(later: Timestamp, earlier: Timestamp) -> f64 {
    (later.as_millisecond() - earlier.as_millisecond()) as f64 / 1e3
}

/// Keeps `fleet` up to date with the consumers of `namespace`.
async fn watch(client: kube::Client, namespace: String, fleet: Arc<Mutex<Fleet>>) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        &namespace,
        &ApiResource::erase::<MillpondConsumer>(&()),
    );
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                fleet.lock().unwrap().apply(&o)
            }
            Ok(_) => {}
            Err(e) => eprintln!("watch of the consumers: {e}"),
        }
    }
}

/// Changes of the objects the operator owns, seen by watches, by kind:
/// (new resourceVersions, new generations).
#[derive(Default)]
struct Changes {
    by_kind: BTreeMap<String, (u64, u64)>,
}

/// Counts the changes of every `K` in `namespace` (the initial listing and
/// creations left out: only modifications of objects seen before).
fn watch_changes<K>(
    client: &kube::Client,
    namespace: &str,
    changes: &Arc<Mutex<Changes>>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let changes = changes.clone();
    tokio::spawn(async move {
        let kind = K::kind(&()).to_string();
        let mut seen: HashMap<String, (String, i64)> = HashMap::new();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let (object, init) = match event {
                Ok(watcher::Event::Apply(o)) => (o, false),
                Ok(watcher::Event::InitApply(o)) => (o, true),
                _ => continue,
            };
            let version = (
                object.resource_version().unwrap_or_default(),
                object.meta().generation.unwrap_or(0),
            );
            let before = seen.insert(object.name_any(), version.clone());
            if let (Some(before), false) = (before, init) {
                if before != version {
                    let mut c = changes.lock().unwrap();
                    let entry = c.by_kind.entry(kind.clone()).or_insert((0, 0));
                    entry.0 += 1;
                    entry.1 += u64::from(before.1 != version.1);
                }
            }
        }
    })
}

/// p50, p99 and max of some values.
#[derive(Debug, Clone, Copy, Default)]
struct Quantiles {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Quantiles {
    fn of(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            values
                .get(((values.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Quantiles {
            n: values.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct FirstObservations {
    observed: usize,
    with_observed_time: usize,
    /// From the first create until the last consumer's first observation.
    all_after: Option<f64>,
    /// From each consumer's creation to its first observation.
    latency: Quantiles,
}

#[derive(Debug, Clone, Default)]
struct Ages {
    /// Consumers without `status.lastObservedTime`.
    missing: usize,
    age: Quantiles,
}

/// One operator pod as the benchmark finds it.
#[derive(Debug, Clone, Default)]
struct OperatorPod {
    name: String,
    ip: String,
    container_id: String,
    restarts: i32,
    /// How its container last ended, when it restarted.
    last_end: Option<String>,
    /// The image its container runs, by digest.
    image_id: String,
}

/// Memory of one operator pod over the run.
#[derive(Debug, Clone, Default)]
struct Memory {
    /// `process_resident_memory_bytes`: highest and latest.
    rss_peak: f64,
    rss_last: f64,
    /// The process' own peak (`VmHWM`), when its pid was found.
    hwm: f64,
    /// Its threads, most seen.
    threads: u64,
    /// The container's memory cgroup: usage now and its peak.
    cgroup_last: f64,
    cgroup_peak: f64,
}

/// What one moment shows: the API server's and the operator pods' metrics.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    /// `apiserver_request_total` by (resource[/subresource], verb).
    api: BTreeMap<(String, String), f64>,
    /// Of those, answered with a code outside 2xx.
    api_failed: f64,
    /// Those by (resource, verb, code).
    api_failures: BTreeMap<(String, String, String), f64>,
    /// CPU seconds used so far, by process group ([`cpu_by_process`]), and
    /// by the whole machine under `"all"`.
    cpu: BTreeMap<String, f64>,
    /// The metrics of every operator pod that answered, by pod.
    pods: BTreeMap<String, Vec<Sample>>,
    /// The pod holding the lease.
    leader: Option<String>,
    /// How long taking the snapshot took.
    took: f64,
}

impl Snapshot {
    fn leader_metrics(&self) -> &[Sample] {
        self.leader
            .as_ref()
            .and_then(|l| self.pods.get(l))
            .map_or(&[], Vec::as_slice)
    }
}

/// The increase of counter `f` from `a` to `b`, summed over the operator
/// pods (a pod that restarted counts from zero; only the leader's grow, a
/// standby neither reconciles nor observes).
fn increase(a: &Snapshot, b: &Snapshot, f: impl Fn(&[Sample]) -> f64) -> f64 {
    b.pods
        .iter()
        .map(|(pod, after)| {
            let after = f(after);
            match a.pods.get(pod).map(|before| f(before)) {
                Some(before) if before <= after => after - before,
                _ => after,
            }
        })
        .sum()
}

/// The reconcile histogram's bucket increases from `a` to `b`, over every pod.
fn reconcile_buckets(a: &Snapshot, b: &Snapshot) -> BTreeMap<prom::Bound, f64> {
    let mut total = BTreeMap::new();
    for (pod, after) in &b.pods {
        let after = prom::buckets(after, RECONCILE);
        let before = a
            .pods
            .get(pod)
            .map(|s| prom::buckets(s, RECONCILE))
            .unwrap_or_default();
        let restarted = after
            .iter()
            .any(|(le, v)| before.get(le).is_some_and(|b| b > v));
        let delta = if restarted {
            after
        } else {
            prom::bucket_delta(&after, &before)
        };
        for (le, v) in delta {
            *total.entry(le).or_insert(0.0) += v;
        }
    }
    total
}

/// What happened between two snapshots.
#[derive(Default)]
struct Delta {
    seconds: f64,
    api: BTreeMap<(String, String), f64>,
    api_failed: f64,
    reconciles: f64,
    reconcile: Option<((f64, bool), (f64, bool))>,
    /// Kafka requests by type; `None` when the operator does not count them.
    kafka: Option<BTreeMap<String, f64>>,
    kafka_clients: Option<f64>,
    leader_rss: Option<f64>,
    ages: Option<Ages>,
    gaps: Vec<f64>,
    status_updates: u64,
    /// Changes of owned objects (watch): kind → (resourceVersions, generations).
    changes: BTreeMap<String, (u64, u64)>,
    /// The lease changed hands between the two snapshots.
    leader_changed: bool,
    api_failures: BTreeMap<(String, String, String), f64>,
    /// Cores used on average, by process group.
    cores: BTreeMap<String, f64>,
}

impl Delta {
    fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let api = b
            .api
            .iter()
            .map(|(k, v)| (k.clone(), v - a.api.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let histogram = reconcile_buckets(a, b);
        let count = format!("{RECONCILE}_count");
        let kafka = b
            .pods
            .values()
            .flatten()
            .any(|s| s.name == KAFKA_REQUESTS)
            .then(|| {
                metrics::KAFKA_REQUEST_TYPES
                    .iter()
                    .map(|request| {
                        let n = increase(a, b, |s| {
                            prom::sum(s, KAFKA_REQUESTS, |s| s.label("request") == *request)
                        });
                        (request.to_string(), n)
                    })
                    .collect()
            });
        let leader = b.leader_metrics();
        let gauge = |name: &str| leader.iter().find(|s| s.name == name).map(|s| s.value);
        Delta {
            seconds: b.at.duration_since(a.at).as_secs_f64(),
            api,
            api_failed: b.api_failed - a.api_failed,
            reconciles: increase(a, b, |s| prom::sum(s, &count, |_| true)),
            reconcile: prom::quantile(&histogram, 0.5).zip(prom::quantile(&histogram, 0.99)),
            kafka,
            kafka_clients: gauge("millpond_operator_kafka_clients"),
            leader_rss: gauge("process_resident_memory_bytes"),
            leader_changed: a.leader != b.leader,
            api_failures: b
                .api_failures
                .iter()
                .map(|(k, v)| (k.clone(), v - a.api_failures.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
            cores: b
                .cpu
                .iter()
                .map(|(k, v)| {
                    let used = v - a.cpu.get(k).copied().unwrap_or(0.0);
                    (
                        k.clone(),
                        used / b.at.duration_since(a.at).as_secs_f64().max(1e-9),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Reads and writes over every counted resource.
    fn reads_writes(&self) -> (f64, f64) {
        let mut rw = (0.0, 0.0);
        for ((_, verb), v) in &self.api {
            if READ_VERBS.contains(&verb.as_str()) {
                rw.0 += v;
            } else {
                rw.1 += v;
            }
        }
        rw
    }

    fn short(&self) -> String {
        let (r, w) = self.reads_writes();
        let age = self
            .ages
            .as_ref()
            .map_or("n/a".into(), |a| format!("{:.1} s", a.age.max));
        format!(
            "{:.0} reconciles, API {r:.0} reads / {w:.0} writes, status age max {age}, {} status changes",
            self.reconciles, self.status_updates
        )
    }
}

/// The operator's pods, their metrics and memory.
struct Bench {
    client: kube::Client,
    http: reqwest::Client,
    pods: Api<Pod>,
    selector: String,
    lease: String,
    leases: Api<Lease>,
    port: u16,
    sample_every: Duration,
    memory: Mutex<BTreeMap<String, Memory>>,
    /// Every pod that held the lease at a snapshot, in order.
    leaders: Mutex<Vec<String>>,
    /// Other operators (their pods) and consumers outside the benchmark's
    /// namespace seen at a snapshot: another operator on the stack would
    /// reconcile these consumers too, and this one theirs.
    others: Mutex<std::collections::BTreeSet<String>>,
    all_pods: Api<Pod>,
    all_consumers: Api<MillpondConsumer>,
    namespace: String,
    operator_namespace: String,
}

impl Bench {
    async fn new(client: kube::Client, args: &Args) -> Result<Self> {
        // The chart's full name, as its helpers compute it.
        let fullname = if args.release.contains("millpond-operator") {
            args.release.clone()
        } else {
            format!("{}-millpond-operator", args.release)
        };
        let bench = Bench {
            pods: Api::namespaced(client.clone(), &args.operator_namespace),
            leases: Api::namespaced(client.clone(), &args.operator_namespace),
            selector: format!(
                "app.kubernetes.io/instance={},app.kubernetes.io/component=operator",
                args.release
            ),
            lease: fullname,
            client: client.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            port: args.metrics_port,
            sample_every: Duration::from_secs(args.sample_seconds.max(1)),
            memory: Mutex::default(),
            leaders: Mutex::default(),
            others: Mutex::default(),
            all_pods: Api::all(client.clone()),
            all_consumers: Api::all(client.clone()),
            namespace: args.namespace.clone(),
            operator_namespace: args.operator_namespace.clone(),
        };
        let pods = bench.operator_pods().await?;
        anyhow::ensure!(
            !pods.is_empty(),
            "no operator pod matches {} in namespace {}",
            bench.selector,
            args.operator_namespace
        );
        Ok(bench)
    }

    async fn operator_pods(&self) -> Result<Vec<OperatorPod>> {
        let list = self
            .pods
            .list(&ListParams::default().labels(&self.selector))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| {
                let status = p.status?;
                let container = status.container_statuses?.into_iter().next()?;
                let last_end = container.last_state.and_then(|s| s.terminated).map(|t| {
                    format!(
                        "{} (exit {}) at {}",
                        t.reason.unwrap_or_default(),
                        t.exit_code,
                        t.finished_at.map(|f| f.0.to_string()).unwrap_or_default()
                    )
                });
                Some(OperatorPod {
                    name: p.metadata.name?,
                    ip: status.pod_ip?,
                    container_id: container.container_id.unwrap_or_default(),
                    restarts: container.restart_count,
                    image_id: container.image_id.clone(),
                    last_end,
                })
            })
            .collect())
    }

    async fn scrape(&self, pod: &OperatorPod) -> Result<Vec<Sample>> {
        let text = self
            .http
            .get(format!("http://{}:{}/metrics", pod.ip, self.port))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(prom::parse(&text))
    }

    /// The API server's request counts and the leader's metrics.
    /// [`Self::snapshot`], tried three times.
    async fn snapshot_retrying(&self) -> Result<Snapshot> {
        let mut failure = None;
        for _ in 0..3 {
            match self.snapshot().await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    eprintln!("snapshot failed, trying again: {e:#}");
                    failure = Some(e);
                }
            }
        }
        Err(failure.expect("three tries"))
    }

    /// The size of the JSON list of each kind the operator watches, in the
    /// consumers' namespace.
    async fn list_bytes(&self) -> Vec<(&'static str, usize)> {
        let ns = &self.namespace;
        let mut out = Vec::new();
        for (kind, path) in [
            (
                "MillpondConsumers",
                format!("/apis/millpond.io/v1alpha1/namespaces/{ns}/millpondconsumers"),
            ),
            (
                "Deployments",
                format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            ),
            ("ConfigMaps", format!("/api/v1/namespaces/{ns}/configmaps")),
            ("Services", format!("/api/v1/namespaces/{ns}/services")),
            (
                "PodDisruptionBudgets",
                format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
            ),
            ("Secrets", format!("/api/v1/namespaces/{ns}/secrets")),
        ] {
            let Ok(request) = http::Request::get(path).body(Vec::new()) else {
                continue;
            };
            if let Ok(text) = self.client.request_text(request).await {
                out.push((kind, text.len()));
            }
        }
        out
    }

    /// ReplicaSets and Deployments in the consumers' namespace.
    async fn replica_sets(&self) -> Result<(usize, usize)> {
        let rs: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default();
        Ok((
            rs.list_metadata(&lp).await?.items.len(),
            deployments.list_metadata(&lp).await?.items.len(),
        ))
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        tokio::time::timeout(Duration::from_secs(30), self.snapshot_now())
            .await
            .context("a snapshot took over 30 s")?
    }

    async fn snapshot_now(&self) -> Result<Snapshot> {
        let started = Instant::now();
        let text = self
            .client
            .request_text(http::Request::get("/metrics").body(Vec::new())?)
            .await
            .context("reading the API server's /metrics")?;
        let mut api = BTreeMap::new();
        let mut api_failed = 0.0;
        let mut api_failures = BTreeMap::new();
        for s in prom::parse(&text)
            .into_iter()
            .filter(|s| s.name == "apiserver_request_total")
            .filter(|s| RESOURCES.contains(&s.label("resource")))
        {
            let resource = match s.label("subresource") {
                "" => s.label("resource").to_string(),
                sub => format!("{}/{sub}", s.label("resource")),
            };
            if !s.label("code").starts_with('2') {
                api_failed += s.value;
                *api_failures
                    .entry((
                        resource.clone(),
                        s.label("verb").to_string(),
                        s.label("code").to_string(),
                    ))
                    .or_insert(0.0) += s.value;
            }
            *api.entry((resource, s.label("verb").to_string()))
                .or_insert(0.0) += s.value;
        }
        let holder = self
            .leases
            .get_opt(&self.lease)
            .await?
            .and_then(|l| l.spec?.holder_identity);
        let pods = self.operator_pods().await?;
        let scraped = futures::future::join_all(pods.iter().map(|p| self.scrape(p))).await;
        let pods_metrics: BTreeMap<String, Vec<Sample>> = pods
            .iter()
            .zip(scraped)
            .filter_map(|(p, m)| Some((p.name.clone(), m.ok()?)))
            .collect();
        if let Some(h) = &holder {
            self.note_leader(h);
        }
        self.sample_memory(&pods).await;
        self.look_for_others().await?;
        Ok(Snapshot {
            at: Instant::now(),
            api,
            api_failed,
            api_failures,
            cpu: cpu_by_process(),
            pods: pods_metrics,
            leader: holder,
            took: started.elapsed().as_secs_f64(),
        })
    }

    fn note_leader(&self, pod: &str) {
        let mut leaders = self.leaders.lock().unwrap();
        if leaders.last().map(String::as_str) != Some(pod) {
            leaders.push(pod.to_string());
        }
    }

    /// Records operator pods of other releases and consumers of other
    /// namespaces.
    async fn look_for_others(&self) -> Result<()> {
        let operators = self
            .all_pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=millpond-operator"))
            .await?;
        let consumers = self
            .all_consumers
            .list(
                &ListParams::default()
                    .fields(&format!("metadata.namespace!={}", self.namespace))
                    .limit(1),
            )
            .await?;
        let mut others = self.others.lock().unwrap();
        for p in operators.items {
            if p.namespace().as_deref() != Some(self.operator_namespace.as_str()) {
                others.insert(format!(
                    "operator pod {}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                ));
            }
        }
        for c in consumers.items {
            others.insert(format!(
                "consumer {}/{}",
                c.namespace().unwrap_or_default(),
                c.name_any()
            ));
        }
        Ok(())
    }

    /// Samples every operator pod's memory until `until`.
    async fn sample_until(&self, until: Instant) {
        loop {
            if let Ok(pods) = self.operator_pods().await {
                self.sample_memory(&pods).await;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(self.sample_every)).await;
        }
    }

    async fn sample_memory(&self, pods: &[OperatorPod]) {
        for pod in pods {
            let rss = self
                .scrape(pod)
                .await
                .ok()
                .map(|s| prom::sum(&s, "process_resident_memory_bytes", |_| true));
            let host = container_memory(&pod.container_id);
            let mut memory = self.memory.lock().unwrap();
            let m = memory.entry(pod.name.clone()).or_default();
            if let Some(rss) = rss {
                m.rss_peak = m.rss_peak.max(rss);
                m.rss_last = rss;
            }
            if let Some((hwm, threads, usage, peak)) = host {
                m.hwm = m.hwm.max(hwm);
                m.threads = m.threads.max(threads);
                m.cgroup_last = usage;
                m.cgroup_peak = m.cgroup_peak.max(peak);
            }
        }
    }
}

/// The process groups whose CPU is reported, by the start of their command
/// name (`/proc/<pid>/comm`, at most 15 characters).
const CPU_GROUPS: [(&str, &str); 9] = [
    ("millpond-operat", "operator"),
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "etcd"),
    ("kube-controller", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("kubelet", "kubelet"),
    ("java", "Kafka (java)"),
    ("rustc", "builds (rustc, cargo)"),
    ("cargo", "builds (rustc, cargo)"),
];

/// CPU seconds used by the processes of each group in [`CPU_GROUPS`]
/// (threads included, children not), and by the whole machine (`all`),
/// from /proc.
fn cpu_by_process() -> BTreeMap<String, f64> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = BTreeMap::new();
    for (_, group) in CPU_GROUPS {
        out.insert(group.to_string(), 0.0);
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces; fields follow `) `.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after comm.
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let seconds = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / tick;
        if let Some((_, group)) = CPU_GROUPS.iter().find(|(c, _)| comm.starts_with(c)) {
            *out.entry(group.to_string()).or_insert(0.0) += seconds;
        }
    }
    if let Some(all) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let cpu = s.lines().next()?.strip_prefix("cpu ")?.to_string();
        let v: Vec<f64> = cpu
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system (idle iowait) irq softirq steal
        Some(
            [0, 1, 2, 5, 6, 7]
                .iter()
                .filter_map(|i| v.get(*i))
                .sum::<f64>()
                / tick,
        )
    }) {
        out.insert("all".into(), all);
    }
    out
}

/// The process of a container (`containerd://<id>`) on this host, found by
/// its cgroup: its peak RSS (`VmHWM`), its threads, the cgroup's memory
/// usage and peak, in bytes.
fn container_memory(container_id: &str) -> Option<(f64, u64, f64, f64)> {
    let id = container_id
        .rsplit("://")
        .next()
        .filter(|id| id.len() > 8)?;
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let (pid, cgroups) = pids.into_iter().find_map(|pid| {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        cgroups.contains(id).then_some((pid, cgroups))
    })?;
    let hwm = millpond_testkit::process::status_kib(&pid.to_string(), "VmHWM") as f64 * 1024.0;
    let read =
        |path: String| -> Option<f64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // cgroup v1 (a `memory` hierarchy) or v2 (the unified one).
    let (usage, peak) = if let Some(path) = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
    {
        let dir = format!("/sys/fs/cgroup/memory{path}");
        (
            read(format!("{dir}/memory.usage_in_bytes"))?,
            read(format!("{dir}/memory.max_usage_in_bytes"))?,
        )
    } else {
        let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = format!("/sys/fs/cgroup{path}");
        let usage = read(format!("{dir}/memory.current"))?;
        (usage, read(format!("{dir}/memory.peak")).unwrap_or(usage))
    };
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .unwrap_or(0);
    Some((hwm, threads, usage, peak))
}

#[derive(Default)]
struct Report {
    create_seconds: f64,
    whole_seconds: f64,
    first_observations: FirstObservations,
    baseline: Option<Delta>,
    warmup: Option<Delta>,
    settling: Option<Delta>,
    steady: Option<Delta>,
    intervals: Vec<Delta>,
    memory: BTreeMap<String, Memory>,
    operator_pods: Vec<OperatorPod>,
    leaders: Vec<String>,
    others: Vec<String>,
    /// Consumers never observed, with what their status says.
    unobserved: Vec<String>,
    /// (ReplicaSets, Deployments) in the consumers' namespace at the end.
    replica_sets: Option<(usize, usize)>,
    /// The JSON size of each kind's list in the consumers' namespace.
    list_bytes: Vec<(&'static str, usize)>,
    notes: Vec<String>,
}

impl Report {
    /// The phases of the run, in order (settling only when there was one).
    fn phases(&self) -> Vec<(&'static str, &Option<Delta>)> {
        let mut phases = vec![
            ("no consumers", &self.baseline),
            ("creation and warm-up", &self.warmup),
        ];
        if self.settling.is_some() {
            phases.push(("settling", &self.settling));
        }
        phases.push(("steady", &self.steady));
        phases
    }

    fn render(&self, args: &Args) -> String {
        let mut out = String::new();
        let n = args.count;
        let interval = args.interval_seconds as f64;
        let _ = writeln!(out, "## {n} MillpondConsumers on one operator\n");
        let _ = writeln!(
            out,
            "Paused at 0 replicas (no pods), one topic, a group each; interval {} s; {} steady intervals, after {} s of settling (a scale-down window) from the end of the warm-up. Created in {:.1} s ({} server-side applies at once); whole run {:.0} s.\n",
            args.interval_seconds, args.steady_intervals, args.settle_seconds, self.create_seconds, args.concurrency, self.whole_seconds
        );

        let mut images: Vec<&str> = self
            .operator_pods
            .iter()
            .map(|p| p.image_id.as_str())
            .collect();
        images.sort_unstable();
        images.dedup();
        let _ = writeln!(out, "Operator image: {}.\n", images.join(", "));

        if !self.others.is_empty() {
            let _ = writeln!(
                out,
                "**Not alone on the stack, so these numbers are not the operator's own**: {}.\n",
                self.others.join(", ")
            );
        }

        // Freshness.
        let f = &self.first_observations;
        let _ = writeln!(out, "### Until every consumer was observed\n");
        let _ = writeln!(out, "| consumers observed | all observed after (from the first create) | per consumer, creation → first observation: p50 / p99 / max | with status.lastObservedTime |");
        let _ = writeln!(out, "|---:|---:|---|---:|");
        let _ = writeln!(
            out,
            "| {} of {n} | {} | {} | {} |\n",
            f.observed,
            f.all_after
                .map_or("not within the warm-up".into(), |s| format!("{s:.1} s")),
            seconds3(&f.latency),
            f.with_observed_time
        );
        if !self.unobserved.is_empty() {
            let _ = writeln!(
                out,
                "Never observed within the warm-up ({}): {}{}.\n",
                self.unobserved.len(),
                self.unobserved[..self.unobserved.len().min(5)].join(" | "),
                if self.unobserved.len() > 5 {
                    " | ..."
                } else {
                    ""
                }
            );
        }

        // Memory.
        let _ = writeln!(out, "### Operator memory\n");
        let _ = writeln!(out, "| pod | role | restarts | RSS peak (sampled) | RSS at the end | process peak (VmHWM) | threads (most) | cgroup at the end | cgroup peak |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, m) in &self.memory {
            let role = if self.leaders.last() == Some(name) {
                "leader"
            } else if self.leaders.contains(name) {
                "leader earlier"
            } else {
                "standby"
            };
            let restarts = self
                .operator_pods
                .iter()
                .find(|p| &p.name == name)
                .map_or("gone".into(), |p| p.restarts.to_string());
            let _ = writeln!(
                out,
                "| {name} | {role} | {restarts} | {} | {} | {} | {} | {} | {} |",
                mib(m.rss_peak),
                mib(m.rss_last),
                mib(m.hwm),
                m.threads,
                mib(m.cgroup_last),
                mib(m.cgroup_peak)
            );
        }
        for pod in &self.operator_pods {
            if let Some(end) = &pod.last_end {
                let _ = writeln!(out, "\n{} last ended: {end}.", pod.name);
            }
        }
        if self.leaders.len() > 1 {
            let _ = writeln!(
                out,
                "\nLeadership changed hands: {}.",
                self.leaders.join(" → ")
            );
        }

        // Reconciles and Kafka, per phase.
        let _ = writeln!(out, "\n### Reconciles, Kafka and API requests by phase\n");
        let _ = writeln!(out, "Per interval ({} s): totals of the phase divided by its length in intervals. Reconcile quantiles from the histogram's bucket deltas (linear inside a bucket; `>` when in the +Inf bucket).\n", args.interval_seconds);
        let _ = writeln!(out, "| phase | length | reconciles / interval | reconcile p50 | reconcile p99 | Kafka requests / interval | Kafka clients | API reads / interval | API writes / interval | API non-2xx |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        for (phase, d) in self.phases() {
            let Some(d) = d else { continue };
            let phase = if d.leader_changed {
                format!("{phase} (the lease changed hands)")
            } else {
                phase.to_string()
            };
            let per = interval / d.seconds.max(1e-9);
            let (r, w) = d.reads_writes();
            let _ = writeln!(
                out,
                "| {phase} | {:.0} s | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
                d.seconds,
                d.reconciles * per,
                quantile(d.reconcile.map(|q| q.0)),
                quantile(d.reconcile.map(|q| q.1)),
                kafka(&d.kafka, per),
                d.kafka_clients.map_or("n/a".into(), |c| format!("{c:.0}")),
                r * per,
                w * per,
                d.api_failed
            );
        }

        let mut failures = Vec::new();
        for (phase, d) in self.phases() {
            let Some(d) = d else { continue };
            let per = interval / d.seconds.max(1e-9);
            let mut top: Vec<_> = d.api_failures.iter().collect();
            top.sort_by(|a, b| b.1.total_cmp(a.1));
            if !top.is_empty() {
                failures.push(format!(
                    "{phase}: {}",
                    top.iter()
                        .take(6)
                        .map(|((res, verb, code), n)| format!(
                            "{verb} {res} {code} {:.1}",
                            *n * per
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if !failures.is_empty() {
            let _ = writeln!(
                out,
                "\nAPI answers outside 2xx per interval, by verb, resource and code (most first): {}.",
                failures.join("; ")
            );
        }

        // CPU.
        let _ = writeln!(
            out,
            "\n### CPU, cores used on average
"
        );
        let _ = writeln!(out, "From /proc (user and system time of each process group, threads included), beside the whole machine's busy time; `rest` is everything else on the machine (the node's containerd and shims, this benchmark, other sessions' work).\n");
        let phases = self.phases();
        let _ = writeln!(
            out,
            "| process | {} |",
            phases
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---:|".repeat(phases.len()));
        let mut groups: Vec<&str> = CPU_GROUPS.iter().map(|(_, g)| *g).collect();
        groups.dedup();
        let cell = |d: &Option<Delta>, g: &str| {
            d.as_ref()
                .and_then(|d| d.cores.get(g))
                .map_or("n/a".into(), |c| format!("{c:.2}"))
        };
        let row = |f: &dyn Fn(&Option<Delta>) -> String| {
            phases
                .iter()
                .map(|(_, d)| f(d))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        for g in &groups {
            let _ = writeln!(out, "| {g} | {} |", row(&|d| cell(d, g)));
        }
        let rest = |d: &Option<Delta>| {
            d.as_ref().map_or("n/a".into(), |d| {
                let all = d.cores.get("all").copied().unwrap_or(0.0);
                let named: f64 = groups.iter().filter_map(|g| d.cores.get(*g)).sum();
                format!("{:.2}", (all - named).max(0.0))
            })
        };
        let _ = writeln!(out, "| rest | {} |", row(&rest));
        let _ = writeln!(
            out,
            "| **whole machine** ({} cores) | {} |",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            row(&|d| cell(d, "all"))
        );

        // Each steady interval.
        let _ = writeln!(out, "\n### Each steady interval\n");
        let _ = writeln!(out, "Status age: now − status.lastObservedTime over all {n} consumers at the interval's end. Gap: time between two successive observations of one consumer, over every refresh seen in the interval (the goal: at most {} s). The intervals end when a snapshot is taken, so their lengths vary; the counts are per {} s.\n", args.interval_seconds, args.interval_seconds);
        let _ = writeln!(out, "| # | length | status age p50 / p99 / max | without lastObservedTime | refreshes seen | gap p50 / p99 / max | status changes (watch) | owned objects changed (watch) | reconciles | reconcile p50 / p99 | API reads | API writes | Kafka requests | leader RSS |");
        let _ = writeln!(
            out,
            "|---:|---:|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|---:|"
        );
        for (i, d) in self.intervals.iter().enumerate() {
            let (r, w) = d.reads_writes();
            let ages = d.ages.clone().unwrap_or_default();
            let mut gaps = d.gaps.clone();
            let gaps = Quantiles::of(&mut gaps);
            let number = format!("{}{}", i + 1, if d.leader_changed { " *" } else { "" });
            let per = interval / d.seconds.max(1e-9);
            let (r, w) = (r * per, w * per);
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {} / {} | {r:.0} | {w:.0} | {} | {} |",
                number,
                d.seconds,
                seconds3(&ages.age),
                ages.missing,
                gaps.n as f64 * per,
                seconds3(&gaps),
                d.status_updates as f64 * per,
                d.changes.values().map(|c| c.0).sum::<u64>() as f64 * per,
                d.reconciles * per,
                quantile(d.reconcile.map(|q| q.0)),
                quantile(d.reconcile.map(|q| q.1)),
                kafka(&d.kafka, per),
                d.leader_rss.map_or("n/a".into(), mib)
            );
        }

        if self.intervals.iter().any(|d| d.leader_changed) {
            let _ = writeln!(out, "\n\\* the lease changed hands in this interval.");
        }

        // API requests by resource.
        let _ = writeln!(out, "\n### API requests per interval, by resource\n");
        let _ = writeln!(out, "From the API server's `apiserver_request_total`: every client (the operator, the controller manager, the scheduler, the kubelet, this benchmark's watch), so the phase without consumers is the background. Reads: GET, LIST, WATCH; writes: everything else (APPLY is a server-side apply). Changed: modifications of the consumers' objects seen by this benchmark's watches (new resourceVersions; in brackets new generations, i.e. spec or annotation changes of a Deployment); a write that changed nothing is not seen.\n");
        let _ = writeln!(out, "| resource | no consumers: reads / writes | steady: reads | steady: writes | steady: objects changed | steady, by verb |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
        let per_steady = self
            .steady
            .as_ref()
            .map_or(0.0, |d| interval / d.seconds.max(1e-9));
        let changed: BTreeMap<String, (f64, f64)> = self
            .steady
            .iter()
            .flat_map(|d| &d.changes)
            .map(|(kind, (versions, generations))| {
                (
                    format!("{}s", kind.to_lowercase()),
                    (
                        *versions as f64 * per_steady,
                        *generations as f64 * per_steady,
                    ),
                )
            })
            .collect();
        let by_resource = |d: &Option<Delta>| -> BTreeMap<String, BTreeMap<String, f64>> {
            let mut m: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            if let Some(d) = d {
                let per = interval / d.seconds.max(1e-9);
                for ((res, verb), v) in &d.api {
                    *m.entry(res.clone())
                        .or_default()
                        .entry(verb.clone())
                        .or_insert(0.0) += v * per;
                }
            }
            m
        };
        let (base, steady) = (by_resource(&self.baseline), by_resource(&self.steady));
        let split = |verbs: Option<&BTreeMap<String, f64>>| {
            let mut rw = (0.0, 0.0);
            for (verb, v) in verbs.into_iter().flatten() {
                if READ_VERBS.contains(&verb.as_str()) {
                    rw.0 += v;
                } else {
                    rw.1 += v;
                }
            }
            rw
        };
        let mut resources: Vec<&String> = base.keys().chain(steady.keys()).collect();
        resources.sort();
        resources.dedup();
        for res in resources {
            let (br, bw) = split(base.get(res));
            let (sr, sw) = split(steady.get(res));
            let verbs = steady
                .get(res)
                .map(|v| {
                    v.iter()
                        .map(|(verb, n)| format!("{verb} {n:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let changed = match (changed.get(res.as_str()), res.as_str()) {
                (Some((v, g)), "deployments") => format!("{v:.1} ({g:.1})"),
                (Some((v, _)), _) => format!("{v:.1}"),
                (None, "configmaps" | "services" | "poddisruptionbudgets" | "secrets") => {
                    "0.0".into()
                }
                (None, "deployments") => "0.0 (0.0)".into(),
                (None, _) => String::new(),
            };
            let _ = writeln!(
                out,
                "| {res} | {br:.1} / {bw:.1} | {sr:.1} | {sw:.1} | {changed} | {verbs} |"
            );
        }
        if !self.list_bytes.is_empty() {
            let _ = writeln!(
                out,
                "\nWhat the operator's watches hold for these consumers, as the API server's JSON lists: {} (total {}).",
                self.list_bytes
                    .iter()
                    .map(|(k, b)| format!("{k} {}", mib(*b as f64)))
                    .collect::<Vec<_>>()
                    .join(", "),
                mib(self.list_bytes.iter().map(|(_, b)| *b as f64).sum())
            );
        }
        if let Some((rs, deployments)) = self.replica_sets {
            let _ = writeln!(
                out,
                "\nAt the end the consumers' namespace held {deployments} Deployments and {rs} ReplicaSets."
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

fn mib(bytes: f64) -> String {
    if bytes > 0.0 {
        format!("{:.1} MiB", bytes / MIB)
    } else {
        "n/a".into()
    }
}

fn seconds3(q: &Quantiles) -> String {
    if q.n == 0 {
        "n/a".into()
    } else {
        format!("{:.1} / {:.1} / {:.1} s", q.p50, q.p99, q.max)
    }
}

fn quantile(q: Option<(f64, bool)>) -> String {
    match q {
        None => "n/a".into(),
        Some((v, true)) => format!("> {}", duration(v)),
        Some((v, false)) => duration(v),
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

fn kafka(by_type: &Option<BTreeMap<String, f64>>, per: f64) -> String {
    match by_type {
        None => "n/a (not counted by this operator)".into(),
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k} {:.0}", v * per))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
