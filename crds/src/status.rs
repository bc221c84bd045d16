//! `MillpondConsumer.status`: what the operator observed and decided.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What the operator observed and decided, written through the status
/// subresource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MillpondConsumerStatus {
    /// Consumer pods the Deployment runs.
    #[serde(default)]
    pub replicas: i32,

    /// Consumer pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the consumer pods, in string form (read by the
    /// scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Partitions of the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Lag of the consumer group on the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagStatus>,

    /// Highest buffer fullness among the pods: buffered bytes divided by
    /// flushBytes (may exceed 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_fullness: Option<f64>,

    /// Where the pods were limited at the last decision: `SinkBound` (full
    /// buffers, busy writes: the operator tunes flush size and in-flight
    /// writes first), `ConsumeBound` (busy pods, buffers not full: it adds
    /// pods), `KeepingUp`, `Idle` (it gives pods and writes back),
    /// `SinkDown` (a pod's sink takes no writes: replicas and limits hold)
    /// or `Unknown` (no pod reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<String>,

    /// Partitions that alone need more than one pod at the last decision,
    /// busiest first: more pods cannot drain them faster (a partition is
    /// read by one pod), so they do not push replicas up by themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hot_partitions: Vec<HotPartition>,

    /// Limits the pods run with now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CurrentLimits>,

    /// Pods that do not run `limits.generation` yet (as of their last
    /// scrape, minus those that accepted the limits since); the operator
    /// pushes the limits to them every interval until they do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_behind_limits: Vec<String>,

    /// Partitions whose committed offset has stood still while assigned and
    /// lagging for autoscaling.stuckIntervals metrics intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stuck_partitions: Vec<i32>,

    /// The latest scaling decision and why it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<Decision>,

    /// When the operator last observed Kafka and the pods and decided
    /// (every metrics interval; older while `Degraded` keeps it from
    /// observing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed_time: Option<Time>,

    /// metadata.generation of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Scaling and Degraded, each with a reason a person can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lag of the consumer group on the topic, in records.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LagStatus {
    /// Sum of the lag of all partitions.
    pub total: i64,

    /// Lag of the partition that lags most.
    pub max_partition: i64,

    /// Change of the total lag per second over the last interval (negative
    /// while the backlog shrinks).
    pub rate_per_second: f64,
}

/// A partition whose own demand needs more than one pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HotPartition {
    /// Partition id.
    pub partition: i32,
    /// Pods its produce rate and backlog need (above 1).
    pub pods: f64,
}

/// Limits the pods run with now.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CurrentLimits {
    /// Flush size, in bytes.
    pub flush_bytes: i64,

    /// Flush interval, in milliseconds.
    pub flush_interval_ms: i64,

    /// Sink writes allowed at once.
    pub max_in_flight: i32,

    /// Records pulled per loop turn while the buffer is empty.
    pub consume_batch_size: i32,

    /// Generation of these limits; pods report the generation they run.
    pub generation: i64,
}

/// A scaling decision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When it was taken.
    pub time: Time,

    /// Whether the replica count went up, down or stayed.
    pub direction: Direction,

    /// Replicas before.
    pub from: i32,

    /// Replicas after.
    pub to: i32,

    /// Why, in words (for example the lag, the drain time and the clamp that
    /// applied).
    pub reason: String,
}

/// Direction of a scaling decision.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
    /// Same replicas.
    Hold,
}

/// Condition types and reasons of `status.conditions`.
pub mod condition {
    /// The consumer runs its desired pods and they are ready.
    pub const READY: &str = "Ready";
    /// The replica count is changing.
    pub const SCALING: &str = "Scaling";
    /// Something needs a person: see the reason and message.
    pub const DEGRADED: &str = "Degraded";

    /// Reasons, CamelCase as Kubernetes wants them.
    pub mod reason {
        /// Every desired pod is ready.
        pub const RUNNING: &str = "Running";
        /// Pods are starting or being replaced.
        pub const PODS_NOT_READY: &str = "PodsNotReady";
        /// Replicas go up to drain the backlog.
        pub const SCALING_UP: &str = "ScalingUp";
        /// Replicas go down after the stabilization window.
        pub const SCALING_DOWN: &str = "ScalingDown";
        /// The replica count is where the policy wants it.
        pub const STABLE: &str = "Stable";
        /// Autoscaling is paused; spec.replicas is followed.
        pub const PAUSED: &str = "Paused";
        /// The memory budget cannot hold the prefetch, buffer and in-flight
        /// batches of a pod with every partition assigned.
        pub const MEMORY_BUDGET: &str = "MemoryBudget";
        /// The spec is refused (see the message).
        pub const INVALID_SPEC: &str = "InvalidSpec";
        /// The file:// sink's directory is on no writable volume of
        /// spec.template.volumes (the pods' root file system is read-only).
        pub const SINK_NOT_ON_VOLUME: &str = "SinkNotOnVolume";
        /// The topic does not exist or cannot be described.
        pub const TOPIC_NOT_FOUND: &str = "TopicNotFound";
        /// The brokers cannot be reached (address, network, brokers down).
        pub const KAFKA_UNREACHABLE: &str = "KafkaUnreachable";
        /// The TLS handshake with the brokers failed: untrusted certificate,
        /// a name it does not carry, or a refused client certificate.
        pub const KAFKA_TLS_FAILED: &str = "KafkaTLSFailed";
        /// The brokers refused the SASL credentials.
        pub const KAFKA_AUTHENTICATION_FAILED: &str = "KafkaAuthenticationFailed";
        /// A Secret or key the spec refers to is missing.
        pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
        /// Ready pods whose metrics cannot be read (see the message).
        pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
        /// Some partitions do not advance (see status.stuckPartitions).
        pub const STUCK_PARTITIONS: &str = "StuckPartitions";
        /// The sink takes no writes: the pods retry them, and the operator
        /// holds the replicas and the limits until it does.
        pub const SINK_UNAVAILABLE: &str = "SinkUnavailable";
        /// The sink is down because its Iceberg catalog does not answer.
        pub const CATALOG_UNREACHABLE: &str = millpond_core::sink::trouble::CATALOG_UNREACHABLE;
        /// The sink is down because its Iceberg table does not exist.
        pub const TABLE_NOT_FOUND: &str = millpond_core::sink::trouble::TABLE_NOT_FOUND;
        /// The sink is down because its object store refuses the credentials.
        pub const STORAGE_ACCESS_DENIED: &str = millpond_core::sink::trouble::STORAGE_ACCESS_DENIED;
        /// A pod stopped at a record that does not fit its Iceberg table
        /// (a PoisonRecord the table's schema explains).
        pub const SCHEMA_MISMATCH: &str = millpond_core::sink::trouble::SCHEMA_MISMATCH;
        /// A pod stopped at a record its sink cannot take and there is no
        /// dead-letter topic (spec.sink.deadLetterTopic) to divert it to.
        pub const POISON_RECORD: &str = "PoisonRecord";
        /// The backlog is above what maxReplicas can drain in time.
        pub const AT_MAX_REPLICAS: &str = "AtMaxReplicas";
        /// Nothing is wrong.
        pub const AS_EXPECTED: &str = "AsExpected";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_written_by_the_operator_reads_back() {
        let status: MillpondConsumerStatus = serde_yaml::from_str(
            r#"
replicas: 3
readyReplicas: 2
selector: app.kubernetes.io/instance=orders
partitions: 12
lag: {total: 1234, maxPartition: 400, ratePerSecond: -12.5}
bufferFullness: 0.42
limits: {flushBytes: 8388608, flushIntervalMs: 5000, maxInFlight: 4, consumeBatchSize: 1000, generation: 2}
stuckPartitions: [3]
lastDecision:
  time: "2026-01-01T00:00:00Z"
  direction: up
  from: 1
  to: 3
  reason: lag 1234 drains in 300s with 3 pods
observedGeneration: 1
conditions:
- type: Ready
  status: "False"
  reason: PodsNotReady
  message: 2 of 3 pods ready
  lastTransitionTime: "2026-01-01T00:00:00Z"
"#,
        )
        .expect("status parses");
        assert_eq!(status.lag.as_ref().map(|l| l.total), Some(1234));
        assert_eq!(
            status.last_decision.as_ref().map(|d| d.direction),
            Some(Direction::Up)
        );
        assert_eq!(status.conditions[0].type_, condition::READY);
        assert_eq!(
            status.conditions[0].reason,
            condition::reason::PODS_NOT_READY
        );

        let again: MillpondConsumerStatus =
            serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }

    #[test]
    fn an_empty_status_is_an_empty_object() {
        let json = serde_json::to_value(MillpondConsumerStatus::default()).unwrap();
        assert_eq!(json, serde_json::json!({"replicas": 0, "readyReplicas": 0}));
    }
}
