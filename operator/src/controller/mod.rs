//! The reconciler: for each `MillpondConsumer`, a pipeline of named steps
//! whose boundaries are data types.
//!
//! 1. [`validate`] the spec (no client) → [`validate::Validated`];
//! 2. [`seen`]: observe the Secrets, Kafka and the pods (all I/O, each
//!    with a deadline) → [`seen::Seen`];
//! 3. [`plan`]: the memory budget and the pure [`millpond_policy::decide`],
//!    resuming from the last decision ([`last_decision`]) → [`plan::Plan`];
//! 4. [`crate::desired`]: the desired objects (pure);
//! 5. [`apply`]: server-side apply of what differs from the watch
//!    [`cache`], limit pushes, status, Events;
//! 6. [`status`]: the new status and Events (pure).
//!
//! A step that cannot go on returns a [`Degraded`] reason with `?`: the
//! status then says why, the last decision stays, and the controller waits
//! for a new spec or the next interval. Only the first reconciliation of an
//! interval decides; one between two intervals (a watch event) puts the
//! owned objects back as last decided ([`keep`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;
use serde_json::Value;
use tokio::sync::{watch, Mutex};

use crate::metrics::Metrics;
use crate::observe::kafka::{KafkaObserveError, KafkaTarget, Observers, PartitionOffsets};
use crate::observe::pods::PodMetrics;

pub mod apply;
pub mod cache;
pub mod degraded;
pub mod last_decision;
pub mod plan;
#[cfg(test)]
mod scripted;
pub mod seen;
pub mod status;
pub mod validate;

pub use degraded::Degraded;
pub use last_decision::STATE_ANNOTATION;

use cache::Cache;
use last_decision::LastDecision;
use validate::Validated;

/// The one field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "millpond-operator";
/// Port of the consumers' metrics endpoint.
const CONSUMER_PORT: u16 = crate::desired::METRICS_PORT as u16;
/// The port of the consumer pods' admin endpoint.
const ADMIN_PORT: u16 = crate::desired::ADMIN_PORT as u16;

/// Errors of one reconciliation; transient ones are retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("building objects: {0}")]
    Build(#[from] crate::desired::Error),
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

/// Why the pipeline stopped before its end.
#[derive(Debug)]
pub enum Stop {
    /// A `Degraded` reason: reported in the status, not retried at once.
    Degraded(Degraded),
    /// A failure of the API server or of the operator: retried.
    Failed(Error),
}

impl From<Degraded> for Stop {
    fn from(d: Degraded) -> Self {
        Stop::Degraded(d)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct Settings {
    pub consumer_image: String,
    /// Where the operator's pods run (the consumers' NetworkPolicy admits
    /// them to the admin port); `None`: no NetworkPolicy.
    pub operator_pods: Option<crate::desired::OperatorPods>,
    pub interval: Duration,
    pub kafka_timeout: Duration,
    pub scrape_timeout: Duration,
}

/// Reads a topic's partitions and a group's offsets (the real one is
/// [`Observers`]; tests script it).
pub trait KafkaOffsets: Send + Sync {
    fn offsets(
        &self,
        target: KafkaTarget,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<Vec<PartitionOffsets>, KafkaObserveError>>;
}

impl KafkaOffsets for Arc<Observers> {
    fn offsets(
        &self,
        target: KafkaTarget,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<Vec<PartitionOffsets>, KafkaObserveError>> {
        Box::pin(self.observe(target, timeout))
    }
}

/// What is remembered of one consumer between reconciliations of one leadership term
/// (dropped when the operator stops leading: a new leader reads the
/// decision back from the Deployment).
#[derive(Default)]
struct Remembered {
    /// The consumer's uid: a consumer deleted and created again under the
    /// same name starts afresh.
    uid: Option<String>,
    scrapes: BTreeMap<String, PodMetrics>,
    scraped_at: Option<Instant>,
    /// With `auto.offset.reset=latest`: where the group starts on each
    /// partition it has not committed yet.
    uncommitted_starts: BTreeMap<i32, i64>,
    /// The last decision, as recorded on the Deployment or since.
    decided: Option<LastDecision>,
    /// The decision as last written on the Deployment, and the text written.
    checkpoint: Option<(LastDecision, String)>,
    /// The pods' admin token.
    admin_token: Option<String>,
    /// The admin Secret as last applied or read.
    applied_secret: Option<Value>,
    /// Applies of owned objects the watch cache may not show yet, by
    /// `Kind/name`.
    pending: BTreeMap<String, apply::Pending>,
}

/// Shared by every reconciliation.
pub struct Context {
    pub client: kube::Client,
    pub http: reqwest::Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub settings: Settings,
    pub leading: watch::Receiver<bool>,
    /// Partitions and offsets from Kafka: one long-lived client per cluster
    /// and credentials.
    pub kafka: Box<dyn KafkaOffsets>,
    /// The MillpondConsumers the controller knows, to forget deleted ones.
    consumers: Store<MillpondConsumer>,
    /// The owned objects and pods as the watches last saw them.
    pub cache: Cache,
    remembered: Mutex<BTreeMap<String, Remembered>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        recorder: Recorder,
        metrics: Metrics,
        settings: Settings,
        leading: watch::Receiver<bool>,
        consumers: Store<MillpondConsumer>,
        cache: Cache,
    ) -> Self {
        Context {
            client,
            http: reqwest::Client::new(),
            recorder,
            metrics,
            // A client unused for ten intervals (its consumers are gone or
            // their credentials changed) is closed.
            kafka: Box::new(Arc::new(Observers::new(settings.interval * 10))),
            settings,
            leading,
            consumers,
            cache,
            remembered: Mutex::default(),
        }
    }

    /// The same context reading Kafka through `kafka` instead.
    pub fn with_kafka(self, kafka: Box<dyn KafkaOffsets>) -> Self {
        Context { kafka, ..self }
    }
}

/// What is remembered of `mpc`, fresh for a consumer seen for the first time or
/// created again under the same name.
fn remembered_of<'a>(
    remembered: &'a mut BTreeMap<String, Remembered>,
    mpc: &MillpondConsumer,
) -> &'a mut Remembered {
    let mem = remembered.entry(key(mpc)).or_default();
    if mem.uid != mpc.uid() {
        *mem = Remembered {
            uid: mpc.uid(),
            ..Remembered::default()
        };
    }
    mem
}

fn key(mpc: &MillpondConsumer) -> String {
    format!("{}/{}", mpc.namespace().unwrap_or_default(), mpc.name_any())
}

/// Reconciles one `MillpondConsumer`.
#[tracing::instrument(skip_all, fields(consumer = %mpc.name_any(), namespace = mpc.namespace().unwrap_or_default()))]
pub async fn reconcile(mpc: Arc<MillpondConsumer>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !*ctx.leading.borrow() {
        // Whoever leads now may decide meanwhile: forget what this term knew.
        ctx.remembered.lock().await.clear();
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let result = match steps(&mpc, &ctx).await {
        Ok(action) => Ok(action),
        Err(Stop::Degraded(why)) => report(&mpc, &ctx, why).await,
        Err(Stop::Failed(e)) => Err(e),
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// The pipeline: validate → observe → decide → apply → status.
async fn steps(mpc: &MillpondConsumer, ctx: &Context) -> Result<Action, Stop> {
    let valid = validate::validate(mpc)?;
    let last = last_decided(ctx, mpc).await?;
    let interval_ms = ctx.settings.interval.as_millis() as u64;
    let begun = tokio::time::Instant::now();
    let now = Timestamp::now();
    let now_ms = now.as_millisecond() as u64;
    if !last.due(now_ms, interval_ms, mpc.metadata.generation) {
        keep(ctx, &valid, &last).await?;
        let due_in = last.due_in(now_ms, interval_ms).max(100);
        return Ok(Action::requeue(Duration::from_millis(due_in)));
    }
    let from = current_replicas(ctx, mpc, &last);
    let seen = seen::observe(ctx, mpc, &format!("keeping {from} replicas")).await?;
    let spec = plan::policy_spec(mpc, &valid, seen.partitions())?;
    let plan = plan::plan(mpc, &spec, &seen, &last, from, now_ms);
    let token = apply::owned(ctx, &valid, plan.replicas, &plan.limits, &plan.decided).await?;
    let pods_behind = push_limits(ctx, &seen, &plan, &token).await;
    let old = mpc.status.clone().unwrap_or_default();
    let ready = ready_replicas(ctx, mpc);
    let now = Time(now);
    let status = status::after_decision(&old, mpc, &seen, &plan, ready, pods_behind.1, &now);
    apply::status(ctx, mpc, &old, &status).await?;
    apply::publish(ctx, mpc, status::events(&plan, &pods_behind.0)).await;
    remember(ctx, mpc, plan.decided.clone()).await;
    record(ctx, mpc, &plan);
    // The next decision an interval after this one began, not after it
    // ended: observations stay an interval apart however long this took.
    Ok(Action::requeue(
        ctx.settings.interval.saturating_sub(begun.elapsed()),
    ))
}

/// A `Degraded` reason: in the status, the last decision kept.
async fn report(mpc: &MillpondConsumer, ctx: &Context, why: Degraded) -> Result<Action, Error> {
    if why.is_kafka() {
        ctx.metrics
            .reconcile_errors
            .with_label_values(&["kafka"])
            .inc();
    }
    let old = mpc.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let status = status::degraded(&old, &why, mpc.metadata.generation, &now);
    apply::status(ctx, mpc, &old, &status).await?;
    // Only reasons that leave the spec valid keep the objects.
    if let (true, Ok(valid)) = (why.keeps_objects(), validate::validate(mpc)) {
        let last = last_decided(ctx, mpc).await?;
        keep(ctx, &valid, &last).await?;
    }
    Ok(why.action(ctx.settings.interval))
}

/// The last decision: this term's, else the one recorded on the Deployment
/// (read with a GET, not from the cache, so a new leader acts on the
/// latest one).
async fn last_decided(ctx: &Context, mpc: &MillpondConsumer) -> Result<LastDecision, Error> {
    if let Some(d) = remembered_of(&mut *ctx.remembered.lock().await, mpc)
        .decided
        .clone()
    {
        return Ok(d);
    }
    let deployments: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &mpc.namespace().unwrap_or_default());
    let recorded = deployments
        .get_opt(&mpc.name_any())
        .await?
        .and_then(|d| d.annotations().get(STATE_ANNOTATION).cloned());
    let decided = LastDecision::parse(recorded.as_ref());
    let mut remembered = ctx.remembered.lock().await;
    let mem = remembered_of(&mut remembered, mpc);
    mem.decided = Some(decided.clone());
    mem.checkpoint = recorded.map(|text| (decided.clone(), text));
    Ok(decided)
}

async fn remember(ctx: &Context, mpc: &MillpondConsumer, decided: LastDecision) {
    remembered_of(&mut *ctx.remembered.lock().await, mpc).decided = Some(decided);
}

/// The count the operator decided last, not the Deployment's: a Deployment
/// scaled by hand is put back, never adopted.
fn current_replicas(ctx: &Context, mpc: &MillpondConsumer, last: &LastDecision) -> u32 {
    let deployment = cache::get(&ctx.cache.deployments, mpc, &mpc.name_any());
    last.replicas
        .map(|r| r as i32)
        .or_else(|| deployment?.spec?.replicas)
        .unwrap_or(mpc.spec.autoscaling.min_replicas.max(1)) as u32
}

/// Ready pods of the Deployment, as the cache saw it.
fn ready_replicas(ctx: &Context, mpc: &MillpondConsumer) -> i32 {
    cache::get(&ctx.cache.deployments, mpc, &mpc.name_any())
        .and_then(|d| d.status?.ready_replicas)
        .unwrap_or(0)
}

/// Between two intervals: the owned objects as last decided, and the pod
/// counts in the status; no observation, no decision.
async fn keep(ctx: &Context, valid: &Validated<'_>, last: &LastDecision) -> Result<(), Error> {
    let mpc = valid.mpc();
    let (Some(decided_replicas), Some(limits)) = (last.replicas, &last.limits) else {
        return Ok(());
    };
    let replicas = paused_replicas(mpc, None).unwrap_or(decided_replicas);
    apply::owned(ctx, valid, replicas, limits, last).await?;
    let old = mpc.status.clone().unwrap_or_default();
    let counted = status::counted(&old, replicas, ready_replicas(ctx, mpc));
    apply::status(ctx, mpc, &old, &counted).await
}

/// New limits go to every pod; otherwise only to pods still behind.
/// Returns the pods' answers and the pods still behind (a refusal or no
/// answer leaves a pod behind).
async fn push_limits(
    ctx: &Context,
    seen: &seen::Seen,
    plan: &plan::Plan,
    token: &str,
) -> (apply::Pushed, Vec<String>) {
    let behind = behind_limits(&seen.pods.generations, plan.limits.generation);
    let targets = if plan.previous_limits.as_ref() != Some(&plan.limits) {
        &seen.pods.addresses
    } else {
        &behind
    };
    let pushed = apply::push_limits(ctx, targets, token, &plan.limits).await;
    let still_behind = behind
        .into_iter()
        .map(|(pod, _)| pod)
        .filter(|pod| !pushed.accepted.contains(pod))
        .collect();
    (pushed, still_behind)
}

/// The decision in the logs and the operator's metrics.
fn record(ctx: &Context, mpc: &MillpondConsumer, plan: &plan::Plan) {
    use millpond_crds::Direction;
    let direction = match plan.direction {
        Direction::Up => "up",
        Direction::Down => "down",
        Direction::Hold => "hold",
    };
    ctx.metrics.decisions.with_label_values(&[direction]).inc();
    let ns = mpc.namespace().unwrap_or_default();
    ctx.metrics
        .desired_replicas
        .with_label_values(&[&ns, &mpc.name_any()])
        .set(plan.replicas as i64);
    let reason = &plan.decision.reason;
    if let Some(why) = &plan.decision.tuning {
        let l = &plan.limits;
        tracing::info!(flush_bytes = l.flush_bytes, max_in_flight = l.max_in_flight, generation = l.generation, reason = %why, "tuning");
    }
    if plan.direction == Direction::Hold {
        tracing::debug!(replicas = plan.replicas, %reason, "holding");
    } else {
        tracing::info!(from = plan.from, to = plan.replicas, %reason, "scaling");
    }
}

/// Drops what is remembered and the metric series of consumers that no longer
/// exist; the operator calls it once per interval.
pub async fn forget_deleted(ctx: &Context) {
    let live: BTreeSet<String> = ctx.consumers.state().iter().map(|m| key(m)).collect();
    let mut memory = ctx.remembered.lock().await;
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

/// While autoscaling is paused, the count `kubectl scale mpc` set
/// (`spec.replicas`), capped at `maxReplicas` and at the topic's
/// `partitions` when known (a pod beyond them would hold no partition);
/// `None` when the policy decides.
fn paused_replicas(mpc: &MillpondConsumer, partitions: Option<u32>) -> Option<u32> {
    let asked = mpc.spec.replicas.filter(|_| mpc.spec.autoscaling.paused)?;
    let cap = (mpc.spec.autoscaling.max_replicas.max(1) as u32).min(partitions.unwrap_or(u32::MAX));
    Some((asked.max(0) as u32).min(cap))
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
    use crate::desired::fixtures::{edit, MINIMAL};

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
