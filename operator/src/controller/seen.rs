//! Step 2, observe (all I/O): the Secrets the client needs, the group's
//! offsets in Kafka, and the consumer pods (from the watch cache) with their
//! metrics. Returns what was seen, or the `Degraded` reason that stops the
//! decision.
//!
//! A consumer's pods are scraped all at once, each within the scrape
//! deadline. The per-consumer memory is locked only to read and store,
//! never across an await, so one consumer's slow pods never delay another
//! consumer's reconciliation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;

use super::degraded::Degraded;
use super::{Context, Stop, CONSUMER_PORT};
use crate::observe::kafka::{self, KafkaTarget, OffsetReset, PartitionOffsets};
use crate::observe::pod_health::{self, PodTrouble};
use crate::observe::{credentials, pods};
use millpond_policy as policy;

/// What one interval showed of a consumer.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every partition of the topic, with the group's offsets.
    pub offsets: Vec<PartitionOffsets>,
    /// The consumer's pods.
    pub pods: PodsSeen,
}

impl Seen {
    /// Partitions of the topic.
    pub fn partitions(&self) -> u32 {
        self.offsets.len() as u32
    }
}

/// What the consumer's pods showed.
#[derive(Debug, Clone, Default)]
pub struct PodsSeen {
    /// One sample per scraped pod, over the interval since its last scrape.
    pub samples: Vec<policy::PodSample>,
    /// `(pod, address)` of the pods that have an address (limit pushes).
    pub addresses: Vec<(String, String)>,
    /// `(pod, address, limits generation it runs)` of every scraped pod.
    pub generations: Vec<(String, String, i64)>,
    /// The newest limits generation a pod runs.
    pub newest_on_pods: i64,
    /// Ready pods whose metrics could not be read, with why.
    pub unscraped: Vec<(String, String)>,
    /// Partitions the scraped pods hold.
    pub assigned: BTreeSet<i32>,
    /// See [`kafka::uncommitted_starts`].
    pub uncommitted_starts: BTreeMap<i32, i64>,
    /// Pods that crash-loop, were OOM-killed, stopped at a poison record
    /// or cannot pull their image.
    pub troubles: Vec<PodTrouble>,
    /// Pods that fail on their own (troubles that do not serve, pods not
    /// ready for long), for the policy.
    pub failing: Vec<policy::FailingPod>,
}

/// Observes `mpc`; `keeping` says, in a `Degraded` message, what stays as
/// it is meanwhile (e.g. `keeping 3 replicas`).
pub async fn observe(ctx: &Context, mpc: &MillpondConsumer, keeping: &str) -> Result<Seen, Stop> {
    let properties = client_properties(ctx, mpc, keeping).await?;
    let offset_reset = OffsetReset::of(&properties);
    let target = KafkaTarget {
        bootstrap_servers: mpc.spec.kafka.bootstrap_servers.clone(),
        topic: mpc.spec.kafka.topic.clone(),
        group: mpc.spec.kafka.group_id(),
        properties,
    };
    let offsets = ctx
        .kafka
        .offsets(target, ctx.settings.kafka_timeout)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot observe Kafka; keeping the last decision");
            Degraded::kafka(&e, keeping)
        })?;
    let pods = observe_pods(ctx, mpc, &ctx.cache.pods_of(mpc), offset_reset, &offsets).await;
    if !pods.unscraped.is_empty() && pods.samples.is_empty() {
        let message = pods::unscraped_message(&pods.unscraped, 0);
        tracing::warn!(%message, "pod metrics unavailable");
        return Err(Degraded::MetricsUnavailable(message).into());
    }
    Ok(Seen { offsets, pods })
}

/// The librdkafka properties of the operator's client for `mpc`, with the
/// credentials read from the Secrets the spec names.
async fn client_properties(
    ctx: &Context,
    mpc: &MillpondConsumer,
    keeping: &str,
) -> Result<BTreeMap<String, String>, Stop> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &mpc.namespace().unwrap_or_default());
    let mut values = BTreeMap::new();
    for (_, _, r) in credentials::secret_refs(&mpc.spec) {
        let text = secrets
            .get_opt(&r.name)
            .await?
            .and_then(|s| s.data?.remove(&r.key))
            .and_then(|b| String::from_utf8(b.0).ok());
        if let Some(text) = text {
            values.insert((r.name.clone(), r.key.clone()), text);
        }
    }
    credentials::client_properties(&mpc.spec, |r| {
        values.get(&(r.name.clone(), r.key.clone())).cloned()
    })
    .map_err(|e| Degraded::SecretNotFound(format!("{e}; {keeping}")).into())
}

/// Scrapes every pod at once and turns the scrapes into interval samples
/// against the previous ones.
async fn observe_pods(
    ctx: &Context,
    mpc: &MillpondConsumer,
    pods: &[Pod],
    offset_reset: OffsetReset,
    offsets: &[PartitionOffsets],
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

    let now = Timestamp::now();
    let troubles = pod_health::troubles(pods, now);
    let mut seen = PodsSeen {
        addresses: with_ip
            .iter()
            .map(|(p, ip)| (p.name_any(), ip.clone()))
            .collect(),
        failing: pod_health::failing(pods, &troubles, now),
        troubles,
        ..PodsSeen::default()
    };
    let mut remembered = ctx.remembered.lock().await;
    let mem = super::remembered_of(&mut remembered, mpc);
    let seconds = mem
        .scraped_at
        .map_or(ctx.settings.interval.as_secs_f64(), |t| {
            t.elapsed().as_secs_f64()
        });
    let mut now_scraped = BTreeMap::new();
    for ((pod, ip), scraped) in with_ip.iter().zip(scrapes) {
        match scraped {
            Ok(m) => {
                let generation = m.limits_generation as i64;
                seen.newest_on_pods = seen.newest_on_pods.max(generation);
                seen.generations
                    .push((pod.name_any(), ip.clone(), generation));
                let previous = mem.scrapes.get(&pod.name_any());
                seen.samples.push(policy::PodSample {
                    pod: pod.name_any(),
                    ..pods::interval(previous, &m, seconds)
                });
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

/// The pod's `Ready` condition is true.
fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
