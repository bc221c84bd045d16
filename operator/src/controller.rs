//! The reconciler: for each `MillpondConsumer`, observe → decide → act.
//!
//! 1. validate the spec (no client);
//! 2. observe Kafka (partitions, watermarks, committed offsets) and the pods'
//!    metrics, each with a deadline;
//! 3. decide with the pure [`policy::decide`], once per interval, resuming
//!    from the state kept in an annotation of the Deployment (a new leader
//!    continues where the old one stopped; see [`decided`]);
//! 4. apply the desired objects with server-side apply (one field manager),
//!    push changed limits to the running pods, patch the status, publish an
//!    Event when the replica count changes.
//!
//! A reconciliation between two intervals (a watch event) only puts the
//! owned objects back as last decided.
//!
//! With missing data (Kafka unreachable, topic missing, impossible budget) it
//! keeps the last decision, reports `Degraded` with a reason, and requeues.
//! A refused spec is `Degraded` too (`InvalidSpec`, or `SinkNotOnVolume` for
//! a file sink that would write onto the read-only root file system) and
//! waits for a change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use millpond_core::budget::{self, BudgetRequest};
use millpond_core::pod::{LimitsUpdate, ADMIN_LIMITS_PATH};
use millpond_core::properties as kafka_config;
use millpond_core::sink::{self, FileFormat};
use millpond_crds::condition::{self, reason};
use millpond_crds::{
    CurrentLimits, Direction, LagStatus, MillpondConsumer, MillpondConsumerStatus,
};
use serde_json::json;
use tokio::sync::{watch, Mutex};

use crate::build::{self, BuildContext};
use crate::metrics::Metrics;
use crate::observe::credentials;
use crate::observe::kafka::{self, KafkaTarget, Observers, OffsetReset};
use crate::observe::pod_health::{self, PodTrouble};
use crate::observe::pods::{self, PodMetrics};
use crate::policy::{self, Observation, PartitionObservation, PolicySpec, TunedLimits};

pub mod decided;

pub use decided::STATE_ANNOTATION;
use decided::{limits_generation, Decided};

/// The one field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "millpond-operator";
/// Port of the consumers' metrics and admin endpoint.
const CONSUMER_PORT: u16 = build::METRICS_PORT as u16;

/// Errors of one reconciliation; transient ones are retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("building objects: {0}")]
    Build(#[from] build::Error),
    #[error("serializing: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Bounded label for `millpond_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(_) => "build",
            Error::Json(_) => "json",
        }
    }
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct Settings {
    pub consumer_image: String,
    pub interval: Duration,
    pub kafka_timeout: Duration,
    pub scrape_timeout: Duration,
}

/// Per-consumer memory between reconciliations (lost on restart; the policy
/// state that matters is also in the Deployment's annotation).
#[derive(Default)]
struct Memory {
    scrapes: BTreeMap<String, PodMetrics>,
    scraped_at: Option<Instant>,
    /// With `auto.offset.reset=latest`: where the group starts on each
    /// partition it has not committed yet ([`kafka::uncommitted_starts`]).
    uncommitted_starts: BTreeMap<i32, i64>,
}

/// Shared by every reconciliation.
pub struct Context {
    pub client: kube::Client,
    pub http: reqwest::Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub settings: Settings,
    pub leading: watch::Receiver<bool>,
    /// The long-lived Kafka clients, one per cluster and credentials.
    pub kafka: Arc<Observers>,
    /// The MillpondConsumers the controller knows, to forget deleted ones.
    consumers: Store<MillpondConsumer>,
    memory: Mutex<BTreeMap<String, Memory>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        recorder: Recorder,
        metrics: Metrics,
        settings: Settings,
        leading: watch::Receiver<bool>,
        consumers: Store<MillpondConsumer>,
    ) -> Self {
        Context {
            client,
            http: reqwest::Client::new(),
            recorder,
            metrics,
            // A client unused for ten intervals (its consumers are gone or
            // their credentials changed) is closed.
            kafka: Arc::new(Observers::new(settings.interval * 10)),
            settings,
            leading,
            consumers,
            memory: Mutex::default(),
        }
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(Timestamp::now()),
        observed_generation: generation,
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn carry_transitions(new: &mut [Condition], old: &[Condition]) {
    for c in new.iter_mut() {
        if let Some(prev) = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
}

/// Reconciles one `MillpondConsumer`.
#[tracing::instrument(skip_all, fields(consumer = %mpc.name_any(), namespace = mpc.namespace().unwrap_or_default()))]
pub async fn reconcile(mpc: Arc<MillpondConsumer>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !*ctx.leading.borrow() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let result = reconcile_inner(&mpc, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Drops the memory and the metric series of consumers that no longer
/// exist; the operator calls it once per interval.
pub async fn forget_deleted(ctx: &Context) {
    let live: BTreeSet<String> = ctx
        .consumers
        .state()
        .iter()
        .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
        .collect();
    let mut memory = ctx.memory.lock().await;
    for key in deleted(memory.keys(), &live) {
        memory.remove(&key);
        if let Some((ns, name)) = key.split_once('/') {
            let _ = ctx
                .metrics
                .desired_replicas
                .remove_label_values(&[ns, name]);
        }
        tracing::debug!(consumer = %key, "forgot a deleted consumer");
    }
}

/// The keys of `remembered` that are not `live`.
fn deleted<'a>(
    remembered: impl Iterator<Item = &'a String>,
    live: &BTreeSet<String>,
) -> Vec<String> {
    remembered.filter(|k| !live.contains(*k)).cloned().collect()
}

async fn reconcile_inner(mpc: &MillpondConsumer, ctx: &Context) -> Result<Action, Error> {
    let ns = mpc.namespace().unwrap_or_default();
    let name = mpc.name_any();
    let generation = mpc.metadata.generation;
    let mpcs: Api<MillpondConsumer> = Api::namespaced(ctx.client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let old_status = mpc.status.clone().unwrap_or_default();
    let requeue = Action::requeue(ctx.settings.interval);

    // Validate (no client): the schema's rules, then librdkafka's own
    // judgement of the overrides and the numbers the memory budget reads.
    let overrides = &mpc.spec.kafka.config;
    let budget_overrides = || -> millpond_core::Result<[Option<u64>; 3]> {
        Ok([
            kafka_config::numeric(overrides, "queued.max.messages.kbytes")?,
            kafka_config::numeric(overrides, "fetch.max.bytes")?,
            kafka_config::numeric(overrides, "max.partition.fetch.bytes")?,
        ])
    };
    let invalid = |e: String| (reason::INVALID_SPEC, e);
    let checked = mpc
        .spec
        .validate()
        .map_err(|e| (e.degraded_reason(), e.to_string()))
        .and_then(|()| kafka::check_overrides(overrides).map_err(invalid))
        .and_then(|()| budget_overrides().map_err(|e| invalid(format!("kafka.config: {e}"))));
    let [queued_kbytes, fetch_max_bytes, partition_fetch_bytes] = match checked {
        Ok(values) => values,
        Err((why, e)) => {
            let status = degraded(&old_status, why, format!("fix the spec: {e}"), generation);
            patch_status(&mpcs, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };

    // The Deployment as it is: replicas, the policy state of the last leader.
    let existing = deployments.get_opt(&name).await?;
    let ready_replicas = existing
        .as_ref()
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let decided = Decided::parse(
        existing
            .as_ref()
            .and_then(|d| d.annotations().get(STATE_ANNOTATION)),
    );
    // The count the operator decided last, not the Deployment's: a
    // Deployment scaled by hand is put back, never adopted.
    let current_replicas = decided
        .replicas
        .map(|r| r as i32)
        .or_else(|| existing.as_ref().and_then(|d| d.spec.as_ref()?.replicas))
        .unwrap_or(mpc.spec.autoscaling.min_replicas.max(1)) as u32;
    let interval_ms = ctx.settings.interval.as_millis() as u64;
    let now_ms = Timestamp::now().as_millisecond() as u64;
    if !decided.due(now_ms, interval_ms, generation) {
        return keep(mpc, ctx, &decided, ready_replicas, &old_status)
            .await
            .map(|()| {
                Action::requeue(Duration::from_millis(
                    decided.due_in(now_ms, interval_ms).max(100),
                ))
            });
    }
    let prev_state = &decided.policy;

    // Observe Kafka, connecting the way the pods do.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut secret_values = BTreeMap::new();
    for (_, _, r) in credentials::secret_refs(&mpc.spec) {
        let text = secrets
            .get_opt(&r.name)
            .await?
            .and_then(|s| s.data?.remove(&r.key))
            .and_then(|b| String::from_utf8(b.0).ok());
        if let Some(text) = text {
            secret_values.insert((r.name.clone(), r.key.clone()), text);
        }
    }
    let properties = match credentials::client_properties(&mpc.spec, |r| {
        secret_values.get(&(r.name.clone(), r.key.clone())).cloned()
    }) {
        Ok(p) => p,
        Err(e) => {
            let status = degraded(
                &old_status,
                reason::SECRET_NOT_FOUND,
                format!("{e}; keeping {current_replicas} replicas"),
                generation,
            );
            patch_status(&mpcs, &name, &status).await?;
            return Ok(requeue);
        }
    };
    let offset_reset = OffsetReset::of(&properties);
    let target = KafkaTarget {
        bootstrap_servers: mpc.spec.kafka.bootstrap_servers.clone(),
        topic: mpc.spec.kafka.topic.clone(),
        group: mpc.spec.kafka.group_id(),
        properties,
    };
    let offsets = match ctx.kafka.observe(target, ctx.settings.kafka_timeout).await {
        Ok(o) => o,
        Err(e) => {
            let why = e.reason();
            ctx.metrics
                .reconcile_errors
                .with_label_values(&["kafka"])
                .inc();
            tracing::warn!(error = %e, "cannot observe Kafka; keeping the last decision");
            let status = degraded(
                &old_status,
                why,
                format!("{e}; keeping {current_replicas} replicas"),
                generation,
            );
            patch_status(&mpcs, &name, &status).await?;
            return Ok(requeue);
        }
    };
    let partitions = offsets.len() as u32;

    // The memory budget with every partition assigned to one pod.
    let memory = match mpc.spec.resources.memory_bytes() {
        Ok(m) => m,
        Err(e) => {
            let status = degraded(&old_status, reason::INVALID_SPEC, e.to_string(), generation);
            patch_status(&mpcs, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let limits_spec = &mpc.spec.limits;
    let plan = match budget::plan(&BudgetRequest {
        budget: memory,
        partitions,
        max_in_flight: limits_spec.max_in_flight.max(1) as u32,
        flush_bytes: limits_spec.flush_bytes().ok().flatten(),
        queued_max_messages_kbytes: queued_kbytes,
        fetch_max_bytes,
        max_partition_fetch_bytes: partition_fetch_bytes,
        sink_factor: sink_factor(mpc),
    }) {
        Ok(p) => p,
        Err(e) => {
            let status = degraded(
                &old_status,
                reason::MEMORY_BUDGET,
                format!("resources.memory cannot hold the consumer with all {partitions} partitions assigned: {e}"),
                generation,
            );
            patch_status(&mpcs, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let policy_spec = match PolicySpec::new(
        &mpc.spec.autoscaling,
        &mpc.spec.autotune,
        limits_spec,
        &plan,
    ) {
        Ok(p) => p,
        Err(e) => {
            let status = degraded(&old_status, reason::INVALID_SPEC, e.to_string(), generation);
            patch_status(&mpcs, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };

    // Observe the pods.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod_list = pods
        .list(&ListParams::default().labels(&build::selector_string(mpc)))
        .await?;
    let troubles = pod_health::troubles(&pod_list.items);
    let PodsSeen {
        samples,
        addresses,
        generations,
        newest_on_pods,
        unscraped,
        assigned,
        uncommitted_starts,
    } = observe_pods(
        ctx,
        &format!("{ns}/{name}"),
        &pod_list.items,
        offset_reset,
        &offsets,
    )
    .await;

    if !unscraped.is_empty() && samples.is_empty() {
        // Nothing measured this interval: keep the last decision.
        let message = pods::unscraped_message(&unscraped, 0);
        tracing::warn!(%message, "pod metrics unavailable");
        let status = degraded(
            &old_status,
            reason::METRICS_UNAVAILABLE,
            message,
            generation,
        );
        patch_status(&mpcs, &name, &status).await?;
        keep(mpc, ctx, &decided, ready_replicas, &status).await?;
        return Ok(requeue);
    }
    let previous_limits = decided.limits.clone().or(old_status.limits.clone());
    let running_limits = TunedLimits {
        flush_bytes: previous_limits
            .as_ref()
            .map_or(policy_spec.start_limits.flush_bytes, |l| {
                l.flush_bytes as u64
            }),
        max_in_flight: previous_limits
            .as_ref()
            .map_or(policy_spec.start_limits.max_in_flight, |l| {
                l.max_in_flight as u32
            }),
    };
    let observation = Observation {
        partitions: offsets
            .iter()
            .map(|o| PartitionObservation {
                partition: o.partition,
                committed: o.committed,
                high_watermark: o.high,
                log_start: o.low,
                uncommitted_start: uncommitted_starts.get(&o.partition).copied(),
                assigned: assigned.contains(&o.partition),
            })
            .collect(),
        pods: samples,
        replicas: current_replicas,
        limits: running_limits,
    };
    let (decision, state) = policy::decide(&policy_spec, &observation, prev_state, now_ms);

    // While paused, `kubectl scale mpc` (spec.replicas) sets the count.
    let replicas = paused_replicas(mpc, Some(partitions)).unwrap_or(decision.replicas);

    // Limits: a new generation only when they change.
    let mut limits = CurrentLimits {
        flush_bytes: decision.limits.flush_bytes as i64,
        flush_interval_ms: limits_spec.flush_interval_ms,
        max_in_flight: decision.limits.max_in_flight as i32,
        consume_batch_size: limits_spec.consume_batch_size,
        generation: 0,
    };
    limits.generation = limits_generation(previous_limits.as_ref(), &limits, newest_on_pods);

    // Act: every object by server-side apply, the decision recorded on the
    // Deployment before the pods hear of it.
    let now_decided = Decided {
        policy: state,
        replicas: Some(replicas),
        limits: Some(limits.clone()),
        spec_generation: generation,
    };
    let token = apply_owned(mpc, ctx, replicas, &limits, &now_decided).await?;
    // New limits go to every pod; otherwise only to pods still behind.
    let behind = behind_limits(&generations, limits.generation);
    let targets: Vec<(String, String)> = if previous_limits.as_ref() != Some(&limits) {
        addresses
    } else {
        behind.clone()
    };
    let pushed = push_limits(ctx, &targets, &token, &limits).await;
    for (pod, answer) in &pushed.refused {
        let note = format!(
            "pod {pod} refused limits generation {}: {answer}",
            limits.generation
        );
        publish(
            ctx,
            mpc,
            EventType::Warning,
            "LimitsRefused",
            "PushLimits",
            note,
        )
        .await;
    }
    // Behind until a pod accepts: a refusal or no answer leaves it behind.
    let pods_behind_limits: Vec<String> = behind
        .into_iter()
        .map(|(pod, _)| pod)
        .filter(|pod| !pushed.accepted.contains(pod))
        .collect();
    if let Some(why) = &decision.tuning {
        tracing::info!(
            flush_bytes = limits.flush_bytes,
            max_in_flight = limits.max_in_flight,
            generation = limits.generation,
            reason = %why,
            "tuning"
        );
        publish(ctx, mpc, EventType::Normal, "Tuned", "Tune", why.clone()).await;
    }

    // Record why.
    let direction = if replicas > current_replicas {
        Direction::Up
    } else if replicas < current_replicas {
        Direction::Down
    } else {
        Direction::Hold
    };
    ctx.metrics
        .decisions
        .with_label_values(&[match direction {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Hold => "hold",
        }])
        .inc();
    ctx.metrics
        .desired_replicas
        .with_label_values(&[&ns, &name])
        .set(replicas as i64);
    if direction != Direction::Hold {
        let reason = if direction == Direction::Up {
            "ScaledUp"
        } else {
            "ScaledDown"
        };
        let note = format!("{current_replicas} -> {replicas}: {}", decision.reason);
        publish(ctx, mpc, EventType::Normal, reason, "Scale", note).await;
        tracing::info!(from = current_replicas, to = replicas, reason = %decision.reason, "scaling");
    } else {
        tracing::debug!(replicas, reason = %decision.reason, "holding");
    }

    let mut conditions = vec![
        ready_condition(ready_replicas, replicas, &troubles, generation),
        condition(
            condition::SCALING,
            direction != Direction::Hold,
            match (mpc.spec.autoscaling.paused, direction) {
                (true, _) => reason::PAUSED,
                (_, Direction::Up) => reason::SCALING_UP,
                (_, Direction::Down) => reason::SCALING_DOWN,
                _ if decision.at_max => reason::AT_MAX_REPLICAS,
                _ => reason::STABLE,
            },
            decision.reason.clone(),
            generation,
        ),
        if !unscraped.is_empty() {
            condition(
                condition::DEGRADED,
                true,
                reason::METRICS_UNAVAILABLE,
                pods::unscraped_message(&unscraped, observation.pods.len()),
                generation,
            )
        } else if decision.stuck_partitions.is_empty() {
            condition(
                condition::DEGRADED,
                false,
                reason::AS_EXPECTED,
                "all observations available",
                generation,
            )
        } else {
            condition(
                condition::DEGRADED,
                true,
                reason::STUCK_PARTITIONS,
                format!(
                    "partitions {:?} do not advance although they lag; their lag does not drive scaling: check the sink and the consumer logs",
                    decision.stuck_partitions
                ),
                generation,
            )
        },
    ];
    carry_transitions(&mut conditions, &old_status.conditions);
    let fullness = observation
        .pods
        .iter()
        .map(|p| p.buffer_fullness)
        .fold(None, |acc: Option<f64>, f| {
            Some(acc.map_or(f, |a| a.max(f)))
        });
    let last_decision = if direction == Direction::Hold {
        old_status.last_decision.clone().or_else(|| {
            Some(status_decision(
                direction,
                current_replicas,
                replicas,
                &decision.reason,
            ))
        })
    } else {
        Some(status_decision(
            direction,
            current_replicas,
            replicas,
            &decision.reason,
        ))
    };
    let status = MillpondConsumerStatus {
        replicas: replicas as i32,
        ready_replicas,
        selector: Some(build::selector_string(mpc)),
        partitions: Some(partitions as i32),
        lag: Some(LagStatus {
            total: decision.lag.total,
            max_partition: decision.lag.max_partition,
            rate_per_second: decision.lag.rate_per_second,
        }),
        buffer_fullness: fullness,
        limits: Some(limits),
        pods_behind_limits,
        stuck_partitions: decision.stuck_partitions.clone(),
        last_decision,
        observed_generation: generation,
        conditions,
    };
    patch_status(&mpcs, &name, &status).await?;
    Ok(requeue)
}

/// Between two intervals: the owned objects as last decided, and the pod
/// counts in the status; no observation, no decision. Only the counts are
/// patched (a merge patch): the rest of the status in hand may be older than
/// the last decision's.
async fn keep(
    mpc: &MillpondConsumer,
    ctx: &Context,
    decided: &Decided,
    ready_replicas: i32,
    old: &MillpondConsumerStatus,
) -> Result<(), Error> {
    let (Some(mut replicas), Some(limits)) = (decided.replicas, &decided.limits) else {
        return Ok(());
    };
    if let Some(r) = paused_replicas(mpc, None) {
        replicas = r;
    }
    apply_owned(mpc, ctx, replicas, limits, decided).await?;
    if old.ready_replicas == ready_replicas && old.replicas == replicas as i32 {
        return Ok(());
    }
    let mpcs: Api<MillpondConsumer> =
        Api::namespaced(ctx.client.clone(), &mpc.namespace().unwrap_or_default());
    let body = json!({"status": {"replicas": replicas, "readyReplicas": ready_replicas}});
    mpcs.patch_status(
        &mpc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

/// Applies every owned object for `replicas` and `limits`, with `decided`
/// recorded on the Deployment; returns the admin token.
async fn apply_owned(
    mpc: &MillpondConsumer,
    ctx: &Context,
    replicas: u32,
    limits: &CurrentLimits,
    decided: &Decided,
) -> Result<String, Error> {
    let ns = mpc.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let token = match secrets.get_opt(&build::admin_secret_name(mpc)).await? {
        Some(s) => build::admin_token_of(&s).unwrap_or_else(new_token),
        None => new_token(),
    };
    let build_ctx = BuildContext::new(ctx.settings.consumer_image.clone(), token.clone());
    let mut desired = build::desired(mpc, &build_ctx, replicas as i32, limits)?;
    desired
        .deployment
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(STATE_ANNOTATION.into(), serde_json::to_string(decided)?);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    apply(&secrets, &desired.admin_secret, &pp).await?;
    apply(
        &Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns),
        &desired.limits,
        &pp,
    )
    .await?;
    apply(
        &Api::<Service>::namespaced(ctx.client.clone(), &ns),
        &desired.metrics_service,
        &pp,
    )
    .await?;
    apply(
        &Api::<Deployment>::namespaced(ctx.client.clone(), &ns),
        &desired.deployment,
        &pp,
    )
    .await?;
    apply(
        &Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns),
        &desired.pdb,
        &pp,
    )
    .await?;
    Ok(token)
}

/// What the consumer's pods showed this interval.
struct PodsSeen {
    /// One sample per scraped pod, over the interval since its last scrape.
    samples: Vec<policy::PodSample>,
    /// `(pod, address)` of the pods that have an address (limit pushes).
    addresses: Vec<(String, String)>,
    /// `(pod, address, limits generation it runs)` of every scraped pod.
    generations: Vec<(String, String, i64)>,
    /// The newest limits generation a pod runs.
    newest_on_pods: i64,
    /// Ready pods whose metrics could not be read, with why.
    unscraped: Vec<(String, String)>,
    /// Partitions the scraped pods hold.
    assigned: BTreeSet<i32>,
    /// See [`kafka::uncommitted_starts`].
    uncommitted_starts: BTreeMap<i32, i64>,
}

/// Scrapes every pod at once, each within the scrape deadline, and turns
/// the scrapes into interval samples against the previous ones. The shared
/// memory is locked only to read and store, never across a scrape, so one
/// consumer's slow pods never delay another consumer's reconcile.
async fn observe_pods(
    ctx: &Context,
    key: &str,
    pods: &[Pod],
    offset_reset: OffsetReset,
    offsets: &[kafka::PartitionOffsets],
) -> PodsSeen {
    let with_ip: Vec<(&Pod, String)> = pods
        .iter()
        .filter_map(|p| Some((p, p.status.as_ref()?.pod_ip.clone()?)))
        .collect();
    let scrapes =
        futures::future::join_all(with_ip.iter().map(|(_, ip)| {
            pods::scrape(&ctx.http, ip, CONSUMER_PORT, ctx.settings.scrape_timeout)
        }))
        .await;

    let mut memories = ctx.memory.lock().await;
    let mem = memories.entry(key.to_string()).or_default();
    let seconds = mem
        .scraped_at
        .map_or(ctx.settings.interval.as_secs_f64(), |t| {
            t.elapsed().as_secs_f64()
        });
    let mut seen = PodsSeen {
        samples: Vec::new(),
        addresses: with_ip
            .iter()
            .map(|(p, ip)| (p.name_any(), ip.clone()))
            .collect(),
        generations: Vec::new(),
        newest_on_pods: 0,
        unscraped: Vec::new(),
        assigned: BTreeSet::new(),
        uncommitted_starts: BTreeMap::new(),
    };
    let mut now_scraped = BTreeMap::new();
    for ((pod, ip), scraped) in with_ip.iter().zip(scrapes) {
        match scraped {
            Ok(m) => {
                seen.newest_on_pods = seen.newest_on_pods.max(m.limits_generation as i64);
                seen.generations
                    .push((pod.name_any(), ip.clone(), m.limits_generation as i64));
                seen.samples.push(pods::interval(
                    mem.scrapes.get(&pod.name_any()),
                    &m,
                    seconds,
                ));
                now_scraped.insert(pod.name_any(), m);
            }
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), error = %e, "pod not scraped");
                // A starting pod may not listen yet; a ready one should.
                if pod_ready(pod) {
                    seen.unscraped.push((pod.name_any(), e));
                }
            }
        }
    }
    mem.scrapes = now_scraped;
    mem.scraped_at = Some(Instant::now());
    seen.assigned = seen
        .samples
        .iter()
        .flat_map(|s| s.partitions.iter().copied())
        .collect();
    kafka::uncommitted_starts(
        offset_reset,
        offsets,
        &seen.assigned,
        &mut mem.uncommitted_starts,
    );
    seen.uncommitted_starts = mem.uncommitted_starts.clone();
    seen
}

/// While autoscaling is paused, the count `kubectl scale mpc` set
/// (`spec.replicas`), capped at `maxReplicas` and at the topic's
/// `partitions` when known (a pod beyond them would hold no partition);
/// `None` when the policy decides.
fn paused_replicas(mpc: &MillpondConsumer, partitions: Option<u32>) -> Option<u32> {
    let asked = mpc.spec.replicas.filter(|_| mpc.spec.autoscaling.paused)?;
    let cap = (mpc.spec.autoscaling.max_replicas.max(1) as u32).min(partitions.unwrap_or(u32::MAX));
    Some((asked.max(0) as u32).min(cap))
}

/// The pod's `Ready` condition is true.
fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `Ready`: every desired pod ready and none in trouble; otherwise the
/// pods' own reason (a crash loop with the consumer's exit message, an OOM
/// kill) or `PodsNotReady`.
fn ready_condition(
    ready: i32,
    replicas: u32,
    troubles: &[PodTrouble],
    generation: Option<i64>,
) -> Condition {
    let count = format!("{ready} of {replicas} pods ready");
    if let Some((why, message)) = pod_health::summary(troubles) {
        return condition(
            condition::READY,
            false,
            &why,
            format!("{message}; {count}"),
            generation,
        );
    }
    condition(
        condition::READY,
        ready as u32 >= replicas && replicas > 0,
        if ready as u32 >= replicas {
            reason::RUNNING
        } else {
            reason::PODS_NOT_READY
        },
        count,
        generation,
    )
}

fn status_decision(
    direction: Direction,
    from: u32,
    to: u32,
    reason: &str,
) -> millpond_crds::Decision {
    millpond_crds::Decision {
        time: Time(Timestamp::now()),
        direction,
        from: from as i32,
        to: to as i32,
        reason: reason.to_string(),
    }
}

/// The status with `Degraded` set and everything else as it was.
fn degraded(
    old: &MillpondConsumerStatus,
    why: &str,
    message: String,
    generation: Option<i64>,
) -> MillpondConsumerStatus {
    let mut status = old.clone();
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::DEGRADED)
        .cloned()
        .collect();
    conditions.push(condition(
        condition::DEGRADED,
        true,
        why,
        message,
        generation,
    ));
    carry_transitions(&mut conditions, &old.conditions);
    status.conditions = conditions;
    status.observed_generation = generation;
    status
}

/// The pod's sink memory factor, as the consumer computes it.
fn sink_factor(mpc: &MillpondConsumer) -> f64 {
    let format = match mpc.spec.sink.format {
        millpond_crds::SinkFormat::Parquet => FileFormat::Parquet,
        millpond_crds::SinkFormat::Ndjson => FileFormat::Ndjson,
    };
    sink::memory_factor(mpc.spec.sink.url.starts_with("http"), format)
}

fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

async fn apply<K>(api: &Api<K>, obj: &K, pp: &PatchParams) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, pp, &Patch::Apply(obj)).await?;
    Ok(())
}

async fn patch_status(
    api: &Api<MillpondConsumer>,
    name: &str,
    status: &MillpondConsumerStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": MillpondConsumer::api_version(&()),
        "kind": MillpondConsumer::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Publishes an Event on the MillpondConsumer; a failure is only logged.
async fn publish(
    ctx: &Context,
    mpc: &MillpondConsumer,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &mpc.object_ref(&())).await {
        tracing::warn!(error = %e, "event not published");
    }
}

/// `(pod, address)` of the scraped pods that run an older limits
/// generation than `generation`.
fn behind_limits(generations: &[(String, String, i64)], generation: i64) -> Vec<(String, String)> {
    generations
        .iter()
        .filter(|(_, _, g)| *g < generation)
        .map(|(pod, ip, _)| (pod.clone(), ip.clone()))
        .collect()
}

/// What the pods answered to a limits push.
struct Pushed {
    /// Pods that took the limits.
    accepted: BTreeSet<String>,
    /// Pods that refused them, with their answer.
    refused: Vec<(String, String)>,
}

/// Sends the limits to the admin endpoint of each `(pod, address)`. A pod
/// that cannot be reached is in neither list: it gets them at the next
/// interval (it stays behind), or at its next restart from the ConfigMap.
async fn push_limits(
    ctx: &Context,
    targets: &[(String, String)],
    token: &str,
    limits: &CurrentLimits,
) -> Pushed {
    let update = LimitsUpdate {
        generation: limits.generation.max(0) as u64,
        // Zero: the pod keeps the flush size it derived from its budget.
        flush_bytes: (limits.flush_bytes > 0).then_some(limits.flush_bytes as u64),
        flush_interval_ms: Some(limits.flush_interval_ms.max(0) as u64),
        max_in_flight: Some(limits.max_in_flight.max(0) as u32),
        consume_batch_size: Some(limits.consume_batch_size.max(0) as usize),
    };
    let body = serde_json::to_string(&update).expect("a LimitsUpdate serializes");
    let pushes = targets.iter().map(|(pod, ip)| {
        let url = format!("http://{ip}:{CONSUMER_PORT}{ADMIN_LIMITS_PATH}");
        let request = ctx
            .http
            .put(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(ctx.settings.scrape_timeout)
            .send();
        async move {
            let answer = match request.await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(%url, %status, answer = %text.trim(), "pod refused the limits");
                    Err(Some(format!("{status}: {}", text.trim())))
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "limits not pushed");
                    Err(None)
                }
            };
            (pod.clone(), answer)
        }
    });
    let mut pushed = Pushed {
        accepted: BTreeSet::new(),
        refused: Vec::new(),
    };
    for (pod, answer) in futures::future::join_all(pushes).await {
        match answer {
            Ok(()) => {
                pushed.accepted.insert(pod);
            }
            Err(Some(refusal)) => pushed.refused.push((pod, refusal)),
            Err(None) => {}
        }
    }
    pushed
}

/// Transient errors requeue with a short back-off.
pub fn error_policy(_mpc: Arc<MillpondConsumer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[error.metric_label()])
        .inc();
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{edit, MINIMAL};

    #[test]
    fn pods_on_an_older_limits_generation_are_behind() {
        let pods = [
            ("a".to_string(), "10.0.0.1".to_string(), 7),
            ("b".to_string(), "10.0.0.2".to_string(), 6),
            ("c".to_string(), "10.0.0.3".to_string(), 8),
        ];
        assert_eq!(
            behind_limits(&pods, 7),
            [("b".to_string(), "10.0.0.2".to_string())]
        );
        assert!(behind_limits(&pods, 6).is_empty());
    }

    #[test]
    fn only_consumers_that_are_gone_are_forgotten() {
        let remembered: Vec<String> = ["pond/orders", "pond/clicks", "lake/orders"]
            .map(String::from)
            .to_vec();
        let live: BTreeSet<String> = ["pond/orders", "lake/orders"].map(String::from).into();
        assert_eq!(deleted(remembered.iter(), &live), ["pond/clicks"]);
    }

    #[test]
    fn paused_replicas_follow_spec_replicas_within_max_replicas_and_partitions() {
        let spec = |replicas: &str, paused: bool| {
            edit(
                MINIMAL,
                "  sink:\n",
                &format!("  replicas: {replicas}\n  autoscaling: {{paused: {paused}, maxReplicas: 6}}\n  sink:\n"),
            )
        };
        let paused = |replicas: &str| spec(replicas, true);
        assert_eq!(paused_replicas(&paused("3"), Some(12)), Some(3));
        assert_eq!(
            paused_replicas(&paused("10"), Some(12)),
            Some(6),
            "maxReplicas"
        );
        assert_eq!(
            paused_replicas(&paused("10"), Some(4)),
            Some(4),
            "partitions"
        );
        assert_eq!(paused_replicas(&paused("10"), None), Some(6));
        assert_eq!(paused_replicas(&paused("0"), Some(4)), Some(0));
        assert_eq!(paused_replicas(&spec("3", false), Some(12)), None);
    }
}
