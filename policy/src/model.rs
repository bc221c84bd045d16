//! What the policy reads and returns: the spec's knobs ([`PolicySpec`]), what
//! the operator observed ([`Observation`]), the state kept between decisions
//! ([`PolicyState`]) and the [`Decision`].

use millpond_core::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use millpond_crds::{AutoscalingSpec, AutotuneSpec, Direction, LimitsSpec};
use serde::{Deserialize, Serialize};

use crate::bottleneck::Signals;
use crate::sizing::{self, Demand};
use crate::tune::{self, TuneState};

/// Relative change of demand too small to act on.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Most in-flight writes the operator chooses when `autotune.maxInFlight` is unset.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// While the capacity is only known from below (no pod ever ran flat out),
/// pods may run this much above the best rate seen before more are added:
/// either they manage, and the bound rises, or a backlog shows within an
/// interval and the capacity is measured.
pub const PROBE_HEADROOM: f64 = 1.25;

/// The knobs of one `MillpondConsumer`, read once from its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Fewest pods.
    pub min_replicas: u32,
    /// Most pods (the partition count caps it further).
    pub max_replicas: u32,
    /// Drain the backlog within this many seconds while keeping up.
    pub target_drain_seconds: f64,
    /// A higher count must be wanted this long before scaling up.
    pub scale_up_stabilization_ms: u64,
    /// Scale down only to what the whole window wanted, and not within this
    /// window after a scale-up.
    pub scale_down_stabilization_ms: u64,
    /// Most pods added by one decision.
    pub max_scale_up_step: u32,
    /// Most pods removed by one decision.
    pub max_scale_down_step: u32,
    /// Keep the current replicas; still observe, report and tune.
    pub paused: bool,
    /// Intervals a lagging, assigned partition's offset may stand still
    /// before it is stuck.
    pub stuck_intervals: u32,
    /// Relative change of demand too small to act on.
    pub tolerance: f64,
    /// Tuning bounds; `None` when autotune is disabled.
    pub autotune: Option<TuneBounds>,
    /// The pod's memory budget, derived by the consumer's own arithmetic.
    pub budget: BudgetPlan,
    /// Limits new pods start with (spec.limits, or derived from the budget).
    pub start_limits: TunedLimits,
}

/// Bounds of the tuned limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneBounds {
    /// Smallest flush size.
    pub min_flush_bytes: u64,
    /// Largest flush size; `None`: whatever the budget allows.
    pub max_flush_bytes: Option<u64>,
    /// Fewest in-flight writes.
    pub min_in_flight: u32,
    /// Most in-flight writes.
    pub max_in_flight: u32,
}

/// The limits the policy tunes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TunedLimits {
    /// Flush the buffer at this many bytes.
    pub flush_bytes: u64,
    /// Sink writes at once.
    pub max_in_flight: u32,
}

impl PolicySpec {
    /// Reads the knobs of a spec. `budget` is the plan the pods run with
    /// (`millpond_core::budget::plan` of the memory limit, the partition
    /// count and the sink); bytes fields that do not parse are refused.
    pub fn new(
        autoscaling: &AutoscalingSpec,
        autotune: &AutotuneSpec,
        limits: &LimitsSpec,
        budget: &BudgetPlan,
    ) -> millpond_crds::Result<Self> {
        let count = |v: i32| v.max(0) as u32;
        let ms = |s: i32| s.max(0) as u64 * 1_000;
        let (min_flush, max_flush) = autotune.flush_bytes_bounds()?;
        let start_in_flight = count(limits.max_in_flight).max(1);
        let bounds = TuneBounds {
            min_flush_bytes: min_flush.unwrap_or(MIN_FLUSH_BYTES),
            max_flush_bytes: max_flush,
            min_in_flight: autotune.min_in_flight.map_or(1, count).max(1),
            max_in_flight: autotune
                .max_in_flight
                .map_or(DEFAULT_MAX_IN_FLIGHT.max(start_in_flight), count)
                .max(1),
        };
        let start = TunedLimits {
            flush_bytes: limits.flush_bytes()?.unwrap_or(budget.flush_bytes),
            max_in_flight: start_in_flight,
        };
        Ok(Self {
            min_replicas: count(autoscaling.min_replicas).max(1),
            max_replicas: count(autoscaling.max_replicas).max(1),
            target_drain_seconds: autoscaling.target_drain_seconds.max(1) as f64,
            scale_up_stabilization_ms: ms(autoscaling.scale_up_stabilization_seconds),
            scale_down_stabilization_ms: ms(autoscaling.scale_down_stabilization_seconds),
            max_scale_up_step: count(autoscaling.max_scale_up_step).max(1),
            max_scale_down_step: count(autoscaling.max_scale_down_step).max(1),
            paused: autoscaling.paused,
            stuck_intervals: count(autoscaling.stuck_intervals).max(1),
            tolerance: DEFAULT_TOLERANCE,
            autotune: autotune.enabled.then_some(bounds),
            start_limits: if autotune.enabled {
                tune::clamp(start, &bounds, budget)
            } else {
                start
            },
            budget: budget.clone(),
        })
    }

    /// Replica bounds for `partitions` partitions: `(lower, upper)`.
    pub fn replica_bounds(&self, partitions: u32) -> (u32, u32) {
        let upper = self.max_replicas.min(partitions).max(1);
        (self.min_replicas.clamp(1, upper), upper)
    }

    /// The replica count for `demand`, within the bounds, the fewest with
    /// its spread.
    pub(crate) fn size(&self, demand: &Demand, capacity: f64, partitions: u32) -> u32 {
        let (lower, upper) = self.replica_bounds(partitions);
        let raw = demand.replicas(capacity);
        sizing::fewest_with_same_spread(partitions, raw.min(upper)).max(lower)
    }
}

/// What the operator saw during one metrics interval.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Every partition of the topic.
    pub partitions: Vec<PartitionObservation>,
    /// One sample per consumer pod that reported metrics.
    pub pods: Vec<PodSample>,
    /// Replicas the Deployment runs now.
    pub replicas: u32,
    /// Limits the pods run with now.
    pub limits: TunedLimits,
    /// Pods that fail on their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<FailingPod>,
}

/// One partition, from Kafka.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionObservation {
    /// Partition id.
    pub partition: i32,
    /// The group's committed offset; `None` when it has none yet.
    pub committed: Option<i64>,
    /// Offset the next record will get.
    pub high_watermark: i64,
    /// First offset still in the log.
    pub log_start: i64,
    /// Where the group starts while it has no committed offset, when that
    /// is not the log start (`auto.offset.reset=latest`); `None`: the log
    /// start.
    #[serde(default)]
    pub uncommitted_start: Option<i64>,
    /// A member of the group holds it (not in the middle of a hand-over).
    pub assigned: bool,
}

/// One pod's metrics over the interval (counter deltas, gauge averages).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSample {
    /// The pod's name, for reasons.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Partitions assigned to it (`millpond_partition_lag{partition}`).
    pub partitions: Vec<i32>,
    /// It ran with these partitions for the whole interval (no start, no
    /// rebalance): only then is its rate a fair capacity sample.
    pub full_interval: bool,
    /// Records per second the sink acknowledged: what the pod processed end
    /// to end. (Its consumption from Kafka overstates this while its buffer
    /// and prefetch fill at the start of a burst.)
    pub delivered_rate: f64,
    /// Mean buffer fullness (buffered bytes / flushBytes).
    pub buffer_fullness: f64,
    /// Flushes.
    pub flushes: u64,
    /// Flushes triggered by size.
    pub size_flushes: u64,
    /// Mean flush duration, seconds; `None` without flushes.
    pub flush_seconds: Option<f64>,
    /// Mean share of in-flight permits in use.
    pub in_flight_saturation: f64,
    /// Sink errors.
    pub errors: u64,
    /// Seconds the loop waited for an in-flight permit.
    pub backpressure_seconds: f64,
    /// Its sink takes no writes (`millpond_sink_up` 0); `None` while it
    /// does, or when the pod does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_down: Option<SinkDown>,
}

/// A pod's sink that takes no writes: the pod retries them without end.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkDown {
    /// Seconds since the first failed write of the outage.
    pub seconds: f64,
    /// The sink's last error.
    pub error: String,
}

/// A pod that fails on its own (a crash loop, a poison record, an image
/// that cannot be pulled, not ready for long): the partitions it would
/// hold wait for it, not for more pods.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailingPod {
    /// The pod's name.
    pub pod: String,
    /// Why, in a few words (`CrashLoopBackOff`, `not ready for 300 s`).
    pub why: String,
}

impl std::fmt::Display for FailingPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.pod, self.why)
    }
}

/// What survives between decisions. Small and serializable, so the operator
/// can keep it in an annotation and a new leader resumes where the old one
/// stopped.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyState {
    /// Time of the previous decision (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// Offsets seen at the previous decision and how long each stood still.
    #[serde(default)]
    pub partitions: Vec<PartitionTrack>,
    /// Demand of the recent decisions, for the stabilization windows.
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
    /// Time of the last scale-up (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_up_ms: Option<u64>,
    /// Time of the last change of replicas (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_ms: Option<u64>,
    /// Records per second one pod can consume, as learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_per_pod: Option<f64>,
    /// The capacity was measured on a busy pod, not only bounded below.
    #[serde(default)]
    pub capacity_measured: bool,
    /// Total lag at the previous decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_lag: Option<i64>,
    /// Lag of the partitions that drove the demand (neither stuck nor
    /// waiting for failing pods), at the previous decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_lag: Option<i64>,
    /// Partitions sized as needing more than a pod at the previous decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hot: Vec<i32>,
    /// Tuning's memory.
    #[serde(default)]
    pub tune: TuneState,
    /// A pod reported its sink down at the previous decision: this
    /// interval's errors, latency and rates still hold the outage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sink_was_down: bool,
}

/// A partition's offsets at the previous decision.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionTrack {
    /// Partition id.
    pub partition: i32,
    /// High watermark then.
    pub high_watermark: i64,
    /// Committed offset then.
    pub committed: Option<i64>,
    /// Consecutive intervals its committed offset stood still while it was
    /// assigned and lagging.
    pub still: u32,
    /// When it was first reported stuck, while it still is (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_since_ms: Option<u64>,
}

/// The demand behind one decision.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When (ms).
    pub at_ms: u64,
    /// Records/s needed per healthy partition, on average.
    pub demand: f64,
    /// Produce rate of the healthy partitions, records/s.
    pub produce: f64,
    /// Records/s each partition needed; `None` (a state written before
    /// demand was kept per partition): `demand` on every partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Demand>,
}

impl Recommendation {
    /// The demand of each of `partitions` partitions.
    pub fn profile(&self, partitions: u32) -> Demand {
        self.profile
            .clone()
            .unwrap_or_else(|| Demand::uniform(self.demand, partitions))
    }
}

/// A partition that needs more than one pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotPartition {
    /// Partition id.
    pub partition: i32,
    /// Pods its demand needs (above 1).
    pub pods: f64,
}

impl std::fmt::Display for HotPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {} needs {:.1} pods",
            self.partition, self.pods
        )
    }
}

/// Lag figures of one decision, in records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSummary {
    /// Every partition.
    pub total: i64,
    /// The partition that lags most.
    pub max_partition: i64,
    /// Partitions that drive the demand: neither stuck nor waiting for
    /// failing pods.
    pub healthy: i64,
    /// Change of the total per second since the previous decision.
    pub rate_per_second: f64,
}

/// What to do, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Replicas before.
    pub from: u32,
    /// Replicas to run.
    pub replicas: u32,
    /// Up, down or hold.
    pub direction: Direction,
    /// Why, in words.
    pub reason: String,
    /// Limits the pods should run with.
    pub limits: TunedLimits,
    /// Why the limits changed; `None` when they did not.
    pub tuning: Option<String>,
    /// Partitions reported stuck.
    pub stuck_partitions: Vec<i32>,
    /// Partitions with lag that no working pod holds while pods fail on
    /// their own: their lag waits for those pods, not for more.
    pub waiting_partitions: Vec<i32>,
    /// Lag figures.
    pub lag: LagSummary,
    /// Produce rate of the topic, records/s (unknown on the first decision).
    pub produce_rate: Option<f64>,
    /// Learnt capacity of one pod, records/s.
    pub capacity_per_pod: Option<f64>,
    /// The backlog needs more pods than the bounds allow.
    pub at_max: bool,
    /// Autoscaling is paused.
    pub paused: bool,
    /// The bottleneck of the pods, with the figures that say so.
    pub limited: Signals,
    /// Partitions that alone need more than one pod (more pods cannot drain
    /// them faster), busiest first.
    pub hot_partitions: Vec<HotPartition>,
}
