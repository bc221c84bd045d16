//! The scaling and tuning policy: a pure function of the spec, what was
//! observed, the previous state and the time.
//!
//! [`decide`] is called once per metrics interval. It never reads a clock or
//! the cluster: the operator passes what it observed ([`Observation`]), the
//! [`PolicyState`] returned by the previous call and the time, and applies
//! the [`Decision`] it gets back. The simulator (`millpond-simulator`) calls
//! the same function on workload traces.
//!
//! 1. per partition: lag, produce rate, stuck or not ([`observed`]); a
//!    stuck partition is reported and left out of the demand (more pods
//!    would not move it), and so is one that waits for pods failing on
//!    their own (a crash loop, a poison record: [`FailingPod`]);
//! 2. per partition, demand = its own produce rate + its backlog /
//!    `targetDrainSeconds` (a hot partition is not an average one);
//! 3. capacity per pod is learnt from the rates the pods' sinks
//!    acknowledged: the rate of a busy pod *is* its capacity (moving
//!    average); an idle pod only shows a lower bound, and the pods may then
//!    run [`PROBE_HEADROOM`] above it before more are added;
//! 4. where the pods are limited, from buffer fullness, in-flight writes and
//!    lag ([`limited`]): sink-bound, consume-bound, idle or keeping up;
//! 5. the limits are tuned for that ([`tune`]): sink-bound pods get more
//!    in-flight writes and larger flushes, consume-bound pods no larger
//!    flushes, idle pods give permits back;
//! 6. replicas: the fewest pods whose busiest pod keeps up under Kafka's
//!    count-balanced assignment ([`sizing`]); a partition that needs more
//!    than one pod is named and does not push the count to the maximum;
//!    sink-bound pods get more pods only once tuning cannot make them
//!    faster; rate-limited, stabilized scale-up and scale-down
//!    ([`replicas`]).
//!
//! While a pod reports its sink down ([`outage`]) the pods are limited by
//! nothing the operator moves: the replicas and the limits hold, and the
//! capacity is not learnt from the outage (nor from the interval it ends in).

pub mod limited;
pub mod observed;
pub mod outage;
pub mod replicas;
pub mod sizing;
pub mod tune;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use millpond_core::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use millpond_crds::{AutoscalingSpec, AutotuneSpec, Direction, LagStatus, LimitsSpec};
use serde::{Deserialize, Serialize};

pub use limited::{Limit, Signals};
pub use outage::SinkOutage;
pub use sizing::Demand;
pub use tune::TuneState;

/// Relative change of demand too small to act on.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Most in-flight writes the operator chooses when `autotune.maxInFlight` is unset.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// Weight of a new sample in the capacity estimate.
const CAPACITY_WEIGHT: f64 = 0.5;
/// While the capacity is only known from below (no pod ever ran flat out),
/// pods may run this much above the best rate seen before more are added:
/// either they manage, and the bound rises, or a backlog shows within an
/// interval and the capacity is measured.
pub const PROBE_HEADROOM: f64 = 1.25;
/// A partition that stays hot counts as needing this much more than a pod.
const HOT_MARGIN: f64 = 1e-6;

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
    fn size(&self, demand: &Demand, capacity: f64, partitions: u32) -> u32 {
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
    /// Where the pods are limited, with the figures that say so.
    pub limited: Signals,
    /// Partitions that alone need more than one pod (more pods cannot drain
    /// them faster), busiest first.
    pub hot_partitions: Vec<HotPartition>,
}

impl Decision {
    /// The decision as `status.lastDecision`.
    pub fn status(&self, time: Time) -> millpond_crds::Decision {
        millpond_crds::Decision {
            time,
            direction: self.direction,
            from: self.from as i32,
            to: self.replicas as i32,
            reason: self.reason.clone(),
        }
    }

    /// The lag as `status.lag`.
    pub fn lag_status(&self) -> LagStatus {
        LagStatus {
            total: self.lag.total,
            max_partition: self.lag.max_partition,
            rate_per_second: self.lag.rate_per_second,
        }
    }
}

/// A count for people: `950`, `12.5k`, `1.2M`.
pub fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// One decision: replicas and limits for the next interval, and the state to
/// pass to the next call. `now_ms` is any millisecond clock that moves
/// forward (the operator uses Unix time).
pub fn decide(
    spec: &PolicySpec,
    obs: &Observation,
    prev: &PolicyState,
    now_ms: u64,
) -> (Decision, PolicyState) {
    let dt = prev
        .at_ms
        .filter(|&t| now_ms > t)
        .map(|t| (now_ms - t) as f64 / 1e3);
    let partitions = (obs.partitions.len() as u32).max(1);
    let seen = observed::partitions(spec, obs, prev, dt, now_ms);
    let busy: Vec<bool> = obs
        .pods
        .iter()
        .map(|p| limited::busy(p, seen.moving_lag(&p.partitions), dt))
        .collect();
    // An outage, and the interval it ends in, show nothing of capacity.
    let outage = outage::of(obs).is_some() || prev.sink_was_down;
    let (capacity, measured) = if outage {
        (prev.capacity_per_pod, prev.capacity_measured)
    } else {
        learn_capacity(obs, prev, &busy)
    };
    let signals = limited::classify(obs, &busy, dt, seen.healthy_lag_rate, capacity);
    let d = demand_of(spec, obs, prev, &seen, capacity, measured);
    let mut state = PolicyState {
        at_ms: Some(now_ms),
        partitions: seen.tracks.clone(),
        recommendations: window(spec, prev, now_ms, &d.demand, d.produce, seen.healthy()),
        last_scale_up_ms: prev.last_scale_up_ms,
        last_scale_ms: prev.last_scale_ms,
        capacity_per_pod: capacity,
        capacity_measured: measured,
        total_lag: Some(seen.lag.total),
        healthy_lag: Some(seen.lag.healthy),
        hot: d.still_hot,
        tune: TuneState::default(),
        sink_was_down: signals.limit == Limit::SinkDown,
    };
    let tuned = if prev.sink_was_down {
        tune::held(spec, obs, &prev.tune)
    } else {
        tune::tune(spec, obs, dt, &prev.tune, &signals)
    };
    let choice = replicas::choose(
        spec,
        &state,
        now_ms,
        &replicas::Input {
            partitions,
            current: obs.replicas,
            capacity: d.capacity,
            demand: &d.demand,
            relaxed: &d.relaxed,
            limited: &signals,
            tuned: &tuned,
            stuck_since: &stuck_since(&seen.tracks),
            waiting: &seen.waiting,
        },
    );
    let direction = record_scale(&mut state, obs.replicas, choice.replicas, now_ms);
    after_tuning(&mut state, obs.limits, tuned.limits);
    state.tune = tuned.state;
    let decision = Decision {
        from: obs.replicas,
        replicas: choice.replicas,
        direction,
        reason: format!(
            "{}{}; {}: {}{}{}",
            context(&seen, d.produce, capacity, measured),
            waiting_words(&seen, &obs.failing),
            signals.describe(),
            hot_words(&d.hot),
            choice.why,
            outage_words(&signals, prev),
        ),
        limits: tuned.limits,
        tuning: tuned.why,
        stuck_partitions: seen.stuck.clone(),
        waiting_partitions: seen.waiting.clone(),
        lag: seen.lag.clone(),
        produce_rate: seen.produce_known().then(|| seen.produce_total()),
        capacity_per_pod: capacity,
        at_max: choice.at_max,
        paused: spec.paused,
        limited: signals,
        hot_partitions: d.hot,
    };
    (decision, state)
}

/// What the replicas are sized from.
struct Demands {
    /// Records/s produced on the healthy partitions (guessed on a first look).
    produce: f64,
    /// Records/s per pod to size with: the learnt capacity, with the probe
    /// headroom while it is only a lower bound.
    capacity: Option<f64>,
    /// Demand per partition.
    demand: Demand,
    /// The same with the drain target stretched by the tolerance.
    relaxed: Demand,
    /// Partitions that need more than a pod.
    hot: Vec<HotPartition>,
    /// Partitions sized as hot ([`stay_hot`]).
    still_hot: Vec<i32>,
}

fn demand_of(
    spec: &PolicySpec,
    obs: &Observation,
    prev: &PolicyState,
    seen: &observed::Seen,
    capacity: Option<f64>,
    measured: bool,
) -> Demands {
    let partitions = seen.partitions.len().max(1) as f64;
    let produce = if seen.produce_known() {
        seen.produce_healthy()
    } else {
        // First look: what the pods consume is the best guess of what arrives.
        consumed(obs) * seen.healthy() as f64 / partitions
    };
    let capacity = capacity
        .filter(|c| *c > 0.0)
        .map(|c| if measured { c } else { c * PROBE_HEADROOM });
    let per_partition = demands(obs, seen, spec.target_drain_seconds);
    let hot = hot_partitions(seen, &per_partition, capacity);
    let (sized, still_hot) = stay_hot(spec, seen, per_partition, &prev.hot, capacity);
    let relaxed = demands(
        obs,
        seen,
        spec.target_drain_seconds * (1.0 + spec.tolerance),
    );
    let relaxed = stay_hot(spec, seen, relaxed, &prev.hot, capacity).0;
    Demands {
        produce,
        capacity,
        demand: Demand::from_partitions(&sized),
        relaxed: Demand::from_partitions(&relaxed),
        hot,
        still_hot,
    }
}

/// Each stuck partition with the time it was first reported stuck.
fn stuck_since(tracks: &[PartitionTrack]) -> Vec<(i32, u64)> {
    tracks
        .iter()
        .filter_map(|t| t.stuck_since_ms.map(|since| (t.partition, since)))
        .collect()
}

/// `partition 0 needs 1.6 pods: more pods cannot drain it faster; `, or nothing.
fn hot_words(hot: &[HotPartition]) -> String {
    if hot.is_empty() {
        return String::new();
    }
    let names: Vec<String> = hot.iter().map(|h| h.to_string()).collect();
    format!(
        "{}: more pods cannot drain {} faster; ",
        names.join(", "),
        if hot.len() == 1 { "it" } else { "them" }
    )
}

/// `, partitions [3] left out (lag 5k): they wait for failing pods
/// [orders-x (CrashLoopBackOff)], not for more pods`, or nothing.
fn waiting_words(seen: &observed::Seen, failing: &[FailingPod]) -> String {
    if seen.waiting.is_empty() {
        return String::new();
    }
    let pods: Vec<String> = failing.iter().map(|f| f.to_string()).collect();
    format!(
        ", partitions {:?} left out (lag {}): they wait for failing pods [{}], not for more pods",
        seen.waiting,
        human(seen.waiting_lag as f64),
        pods.join(", ")
    )
}

/// Why the limits stayed, when the sink's outage kept them.
fn outage_words(signals: &Signals, prev: &PolicyState) -> &'static str {
    if signals.limit == Limit::SinkDown {
        "; limits held: the sink's errors and latency say nothing of what it can take while it is down"
    } else if prev.sink_was_down {
        "; limits held this interval: the sink came back during it"
    } else {
        ""
    }
}

/// The direction from `from` to `to` replicas, remembered in `state`.
fn record_scale(state: &mut PolicyState, from: u32, to: u32, now_ms: u64) -> Direction {
    let direction = match to.cmp(&from) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::Hold,
    };
    if direction != Direction::Hold {
        state.last_scale_ms = Some(now_ms);
    }
    if direction == Direction::Up {
        state.last_scale_up_ms = Some(now_ms);
    }
    direction
}

/// A rate as reported, with nonsense (negative, NaN, infinite) read as 0.
fn rate(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Records/s the pods' sinks acknowledged, together.
fn consumed(obs: &Observation) -> f64 {
    obs.pods.iter().map(|p| rate(p.delivered_rate)).sum()
}

/// Records/s each partition needs to keep up and drain its backlog within
/// `drain_seconds`; stuck and waiting partitions need nothing. Without produce rates
/// (first look) what the pods consume is spread evenly.
fn demands(obs: &Observation, seen: &observed::Seen, drain_seconds: f64) -> Vec<f64> {
    let guess = consumed(obs) / seen.partitions.len().max(1) as f64;
    let known = seen.produce_known();
    seen.partitions
        .iter()
        .map(|p| {
            if !p.counted() {
                0.0
            } else {
                let produce = if known { p.rate.unwrap_or(0.0) } else { guess };
                produce + p.lag as f64 / drain_seconds
            }
        })
        .collect()
}

/// The recommendations of the stabilization windows, with this one.
fn window(
    spec: &PolicySpec,
    prev: &PolicyState,
    now_ms: u64,
    demand: &Demand,
    produce: f64,
    healthy: usize,
) -> Vec<Recommendation> {
    let keep_ms = spec
        .scale_down_stabilization_ms
        .max(spec.scale_up_stabilization_ms)
        .max(replicas::RISING_WINDOW_MS);
    prev.recommendations
        .iter()
        .filter(|r| r.at_ms < now_ms && now_ms - r.at_ms < keep_ms)
        .cloned()
        .chain(std::iter::once(Recommendation {
            at_ms: now_ms,
            demand: if healthy == 0 {
                0.0
            } else {
                demand.total() / healthy as f64
            },
            produce,
            profile: Some(demand.clone()),
        }))
        .collect()
}

/// Partitions whose demand alone is more than a pod's `capacity`, busiest first.
fn hot_partitions(
    seen: &observed::Seen,
    demands: &[f64],
    capacity: Option<f64>,
) -> Vec<HotPartition> {
    let Some(cap) = capacity else {
        return Vec::new();
    };
    let mut hot: Vec<HotPartition> = seen
        .partitions
        .iter()
        .zip(demands)
        .filter(|(_, d)| **d > cap * (1.0 + sizing::EPSILON))
        .map(|(p, d)| HotPartition {
            partition: p.partition,
            pods: d / cap,
        })
        .collect();
    hot.sort_by(|a, b| {
        b.pods
            .total_cmp(&a.pods)
            .then(a.partition.cmp(&b.partition))
    });
    hot
}

/// Demands to size with: a partition that needed more than a pod at the
/// previous decision still counts as such while it needs more than
/// `1 − tolerance` of one, so that a hot partition draining its backlog does
/// not, just under one pod, ask for a pod of its own. Returns the demands and
/// the partitions sized as hot.
fn stay_hot(
    spec: &PolicySpec,
    seen: &observed::Seen,
    mut demands: Vec<f64>,
    before: &[i32],
    capacity: Option<f64>,
) -> (Vec<f64>, Vec<i32>) {
    let Some(cap) = capacity else {
        return (demands, Vec::new());
    };
    let mut hot = Vec::new();
    for (p, d) in seen.partitions.iter().zip(demands.iter_mut()) {
        if before.contains(&p.partition) && *d > cap * (1.0 - spec.tolerance) {
            *d = d.max(cap * (1.0 + HOT_MARGIN));
        }
        if *d > cap * (1.0 + sizing::EPSILON) {
            hot.push(p.partition);
        }
    }
    (demands, hot)
}

/// What the capacity estimate knows after tuning moved the limits from
/// `before` to `after`: larger limits make the measured capacity a lower
/// bound; a permit given back scales it down with the permits.
fn after_tuning(state: &mut PolicyState, before: TunedLimits, after: TunedLimits) {
    if after.flush_bytes > before.flush_bytes || after.max_in_flight > before.max_in_flight {
        state.capacity_measured = false;
    } else if after.max_in_flight < before.max_in_flight && before.max_in_flight > 0 {
        let share = after.max_in_flight as f64 / before.max_in_flight as f64;
        state.capacity_per_pod = state.capacity_per_pod.map(|c| c * share);
    }
}

/// The figures a reason starts with: lag, produce rate, capacity, stuck partitions.
fn context(seen: &observed::Seen, produce: f64, capacity: Option<f64>, measured: bool) -> String {
    let mut context = format!("lag {}", human(seen.lag.healthy as f64));
    if seen.produce_known() {
        context += &format!(", produce {}/s", human(produce));
    }
    if let Some(c) = capacity {
        context += &if measured {
            format!(", capacity {}/s per pod", human(c))
        } else {
            format!(
                ", capacity {}/s per pod (at least; sized for {}/s)",
                human(c),
                human(c * PROBE_HEADROOM)
            )
        };
    }
    if !seen.stuck.is_empty() {
        context += &format!(
            ", stuck partitions {:?} left out (lag {})",
            seen.stuck,
            human(seen.stuck_lag as f64)
        );
    }
    context
}

/// Capacity per pod: busy pods show it, idle pods bound it from below.
fn learn_capacity(obs: &Observation, prev: &PolicyState, busy: &[bool]) -> (Option<f64>, bool) {
    let mut capacity = prev.capacity_per_pod;
    let mut measured = prev.capacity_measured;
    let steady: Vec<(&PodSample, bool)> = obs
        .pods
        .iter()
        .zip(busy.iter().copied())
        .filter(|(p, _)| p.full_interval)
        .collect();
    let busy_rates: Vec<f64> = steady
        .iter()
        .filter(|(_, b)| *b)
        .map(|(p, _)| rate(p.delivered_rate))
        .collect();
    if !busy_rates.is_empty() {
        let sample = busy_rates.iter().sum::<f64>() / busy_rates.len() as f64;
        capacity = Some(match capacity {
            Some(c) if measured => c * (1.0 - CAPACITY_WEIGHT) + sample * CAPACITY_WEIGHT,
            _ => sample,
        });
        measured = true;
    }
    let rates: Vec<f64> = steady
        .iter()
        .map(|(p, _)| rate(p.delivered_rate))
        .filter(|r| *r > 0.0)
        .collect();
    if !rates.is_empty() {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        capacity = Some(capacity.map_or(mean, |c| c.max(mean)));
    }
    (capacity, measured)
}

#[cfg(test)]
mod tests;
