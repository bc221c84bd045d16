//! The scaling and tuning policy: a pure function of the spec, what was
//! observed, the previous state and the time.
//!
//! [`decide`] is called once per metrics interval. It never reads a clock or
//! the cluster: the operator passes what it observed ([`Observation`]), the
//! [`PolicyState`] returned by the previous call and the time, and applies
//! the [`Decision`] it gets back. The simulator (`crate::simulate`) calls the
//! same function on workload traces.
//!
//! Replicas:
//!
//! 1. lag per partition counts from the committed offset, or where the
//!    group starts when it has none: the log start with
//!    `auto.offset.reset=earliest`, the high watermark when a pod took the
//!    partition with `latest` (never from zero, never the whole log then);
//! 2. a partition whose committed offset stands still for `stuckIntervals`
//!    intervals while it is assigned and lagging is *stuck*: reported, and left
//!    out of the demand (more pods would not move it);
//! 3. demand per healthy partition = (produce rate + backlog /
//!    `targetDrainSeconds`) / partitions, the produce rate measured from the
//!    growth of the high watermarks;
//! 4. capacity per pod is learnt from the pods' consume rates: the rate of a
//!    busy pod (one with a backlog or waiting on the sink) *is* its capacity
//!    (moving average); an idle pod only shows a lower bound;
//! 5. replicas = the fewest pods whose busiest pod (`ceil(P / r)`
//!    partitions) keeps up with its partitions' demand ([`sizing`]), within
//!    `[minReplicas, min(maxReplicas, partitions)]`;
//! 6. scale-up is immediate (or after `scaleUpStabilizationSeconds`) and adds
//!    at most `maxScaleUpStep` pods per decision; scale-down goes to what the
//!    highest demand of the last `scaleDownStabilizationSeconds` needs, not
//!    sooner than that window after a scale-up, not while the produce rate
//!    climbs, at most `maxScaleDownStep` pods per decision; a change smaller
//!    than the tolerance (10 % of the demand) is not made.
//!
//! Limits: see [`tune`].

pub mod sizing;
pub mod tune;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use millpond_core::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use millpond_crds::{AutoscalingSpec, AutotuneSpec, Direction, LagStatus, LimitsSpec};
use serde::{Deserialize, Serialize};

pub use tune::TuneState;

/// Relative change of demand too small to act on.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Most in-flight writes the operator chooses when `autotune.maxInFlight` is unset.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// Weight of a new sample in the capacity estimate.
const CAPACITY_WEIGHT: f64 = 0.5;
/// A pod with more than this many seconds of its own throughput waiting on
/// its partitions is busy: it consumes as fast as it can.
const BUSY_SECONDS: f64 = 10.0;
/// A pod waiting for sink permits this share of the interval is busy.
const BUSY_BACKPRESSURE: f64 = 0.5;
/// Scale-down waits while the produce rate is above the lowest of this window
/// by more than the tolerance.
const RISING_WINDOW_MS: u64 = 60_000;
/// ... or above the previous interval's by more than this share.
const CLIMB_STEP: f64 = 0.02;
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

    /// The replica count for a per-partition demand, within the bounds, the
    /// fewest with its spread.
    fn size(&self, demand: f64, capacity: f64, partitions: u32) -> u32 {
        let (lower, upper) = self.replica_bounds(partitions);
        let raw = sizing::replicas_for(demand, capacity, partitions);
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
    /// Tuning's memory.
    #[serde(default)]
    pub tune: TuneState,
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
}

/// The demand behind one decision.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When (ms).
    pub at_ms: u64,
    /// Records/s needed per healthy partition.
    pub demand: f64,
    /// Produce rate of the healthy partitions, records/s.
    pub produce: f64,
}

/// Lag figures of one decision, in records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSummary {
    /// Every partition.
    pub total: i64,
    /// The partition that lags most.
    pub max_partition: i64,
    /// Partitions that are not stuck.
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
    let mut state = PolicyState {
        at_ms: Some(now_ms),
        last_scale_up_ms: prev.last_scale_up_ms,
        last_scale_ms: prev.last_scale_ms,
        ..PolicyState::default()
    };
    let partitions = (obs.partitions.len() as u32).max(1);

    // Lag, produce rate and stuck partitions.
    let mut lag = LagSummary::default();
    // Per partition: lag, and whether it counts for busy pods (not stuck,
    // and its offset moved this interval).
    let mut lags: BTreeMap<i32, (i64, bool)> = BTreeMap::new();
    let mut stuck = Vec::new();
    let mut stuck_lag = 0i64;
    let mut produce_healthy = 0.0;
    let mut produce_total = 0.0;
    let mut produce_known = dt.is_some() && !obs.partitions.is_empty();
    for p in &obs.partitions {
        let start = p
            .committed
            .or(p.uncommitted_start)
            .unwrap_or(p.log_start)
            .max(p.log_start);
        let plag = (p.high_watermark - start).max(0);
        let before = prev.partitions.iter().find(|t| t.partition == p.partition);
        let still = match before {
            Some(b) if dt.is_some() && p.assigned && plag > 0 && b.committed == p.committed => {
                b.still + 1
            }
            _ => 0,
        };
        let is_stuck = still >= spec.stuck_intervals;
        let rate = match (before, dt) {
            (Some(b), Some(dt)) => (p.high_watermark - b.high_watermark).max(0) as f64 / dt,
            _ => {
                produce_known = false;
                0.0
            }
        };
        produce_total += rate;
        lag.total += plag;
        lag.max_partition = lag.max_partition.max(plag);
        if is_stuck {
            stuck.push(p.partition);
            stuck_lag += plag;
        } else {
            lag.healthy += plag;
            produce_healthy += rate;
        }
        lags.insert(p.partition, (plag, !is_stuck && still == 0));
        state.partitions.push(PartitionTrack {
            partition: p.partition,
            high_watermark: p.high_watermark,
            committed: p.committed,
            still,
        });
    }
    if let (Some(before), Some(dt)) = (prev.total_lag, dt) {
        lag.rate_per_second = (lag.total - before) as f64 / dt;
    }
    state.total_lag = Some(lag.total);
    let healthy = partitions.saturating_sub(stuck.len() as u32);

    // Capacity per pod.
    let (capacity, measured) = learn_capacity(obs, prev, &lags, dt);
    state.capacity_per_pod = capacity;
    state.capacity_measured = measured;

    // Demand per healthy partition.
    let consumed: f64 = obs.pods.iter().map(|p| rate(p.delivered_rate)).sum();
    let produce = if produce_known {
        produce_healthy
    } else {
        // First look: what the pods consume is the best guess of what arrives.
        consumed * healthy as f64 / partitions as f64
    };
    let demand = if healthy == 0 {
        0.0
    } else {
        (produce + lag.healthy as f64 / spec.target_drain_seconds) / healthy as f64
    };
    let keep_ms = spec
        .scale_down_stabilization_ms
        .max(spec.scale_up_stabilization_ms)
        .max(RISING_WINDOW_MS);
    state.recommendations = prev
        .recommendations
        .iter()
        .filter(|r| r.at_ms < now_ms && now_ms - r.at_ms < keep_ms)
        .copied()
        .chain(std::iter::once(Recommendation {
            at_ms: now_ms,
            demand,
            produce,
        }))
        .collect();

    // Replicas.
    let current = obs.replicas;
    let (lower, upper) = spec.replica_bounds(partitions);
    let mut context = format!("lag {}", human(lag.healthy as f64));
    if produce_known {
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
    if !stuck.is_empty() {
        context += &format!(
            ", stuck partitions {:?} left out (lag {})",
            stuck,
            human(stuck_lag as f64)
        );
    }
    let mut at_max = false;
    let (replicas, why) = if spec.paused {
        (current, format!("paused: keeping {current} replicas"))
    } else if current > upper {
        let to = sizing::fewest_with_same_spread(partitions, upper).max(lower);
        (
            to,
            format!(
                "{current} is above the {upper} allowed (maxReplicas {}, {partitions} partitions): {to}",
                spec.max_replicas
            ),
        )
    } else if current < lower {
        (
            lower,
            format!(
                "{current} is below minReplicas {}: {lower}",
                spec.min_replicas
            ),
        )
    } else if let Some(cap) =
        capacity
            .filter(|c| *c > 0.0)
            .map(|c| if measured { c } else { c * PROBE_HEADROOM })
    {
        let want = spec.size(demand, cap, partitions);
        let raw = sizing::replicas_for(demand, cap, partitions);
        let per_pod = sizing::max_per_pod(partitions, want);
        let mut why = if sizing::partitions_per_pod(demand, cap) == Some(0) {
            at_max = true;
            format!("one partition needs more than a pod: {want} pods, one partition each")
        } else {
            format!(
                "{per_pod} partition{} per pod to keep up and drain within {}s: {want} pod{}",
                plural(per_pod),
                spec.target_drain_seconds,
                plural(want)
            )
        };
        if raw > upper {
            at_max = true;
            why = format!("{raw} pods wanted, {upper} allowed");
            if want < upper {
                why += &format!(": {want} give the same {per_pod} partitions per pod");
            }
        }
        // Tolerance: a backlog that drains within the target plus the
        // tolerance is no reason to add a pod.
        let relaxed = if healthy == 0 {
            0.0
        } else {
            (produce + lag.healthy as f64 / (spec.target_drain_seconds * (1.0 + spec.tolerance)))
                / healthy as f64
        };
        if want > current && spec.size(relaxed, cap, partitions) > current {
            scale_up(spec, &state, now_ms, partitions, cap, current, want, why)
        } else if want < current {
            scale_down(spec, &state, now_ms, partitions, cap, current, want, why)
        } else {
            (current, format!("{why}; hold at {current}"))
        }
    } else {
        (
            current,
            format!("no consumption measured yet; hold at {current}"),
        )
    };

    let direction = match replicas.cmp(&current) {
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

    let (limits, tuning, tune_state) =
        tune::tune(spec.autotune.as_ref(), &spec.budget, obs, dt, &prev.tune);
    state.tune = tune_state;
    if limits.flush_bytes > obs.limits.flush_bytes
        || limits.max_in_flight > obs.limits.max_in_flight
    {
        // Larger limits: what was measured is now only a lower bound.
        state.capacity_measured = false;
    }

    let decision = Decision {
        from: current,
        replicas,
        direction,
        reason: format!("{context}: {why}"),
        limits,
        tuning,
        stuck_partitions: stuck,
        lag,
        produce_rate: produce_known.then_some(produce_total),
        capacity_per_pod: capacity,
        at_max,
        paused: spec.paused,
    };
    (decision, state)
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

/// Capacity per pod: busy pods show it, idle pods bound it from below.
fn learn_capacity(
    obs: &Observation,
    prev: &PolicyState,
    lags: &BTreeMap<i32, (i64, bool)>,
    dt: Option<f64>,
) -> (Option<f64>, bool) {
    let mut capacity = prev.capacity_per_pod;
    let mut measured = prev.capacity_measured;
    let steady: Vec<&PodSample> = obs.pods.iter().filter(|p| p.full_interval).collect();
    if steady.is_empty() {
        return (capacity, measured);
    }
    let busy: Vec<f64> = steady
        .iter()
        .filter(|p| {
            let waiting: i64 = p
                .partitions
                .iter()
                .filter_map(|id| lags.get(id))
                .filter(|(_, moving)| *moving)
                .map(|(l, _)| *l)
                .sum();
            let queued =
                rate(p.delivered_rate) > 0.0 && waiting as f64 >= p.delivered_rate * BUSY_SECONDS;
            let pressed = dt.is_some_and(|dt| p.backpressure_seconds / dt >= BUSY_BACKPRESSURE);
            queued || pressed
        })
        .map(|p| rate(p.delivered_rate))
        .collect();
    if !busy.is_empty() {
        let sample = busy.iter().sum::<f64>() / busy.len() as f64;
        capacity = Some(match capacity {
            Some(c) if measured => c * (1.0 - CAPACITY_WEIGHT) + sample * CAPACITY_WEIGHT,
            _ => sample,
        });
        measured = true;
    }
    let rates: Vec<f64> = steady
        .iter()
        .map(|p| rate(p.delivered_rate))
        .filter(|r| *r > 0.0)
        .collect();
    if !rates.is_empty() {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        capacity = Some(capacity.map_or(mean, |c| c.max(mean)));
    }
    (capacity, measured)
}

#[allow(clippy::too_many_arguments)]
fn scale_up(
    spec: &PolicySpec,
    state: &PolicyState,
    now_ms: u64,
    partitions: u32,
    cap: f64,
    current: u32,
    want: u32,
    why: String,
) -> (u32, String) {
    let target = if spec.scale_up_stabilization_ms > 0 {
        let lowest = state
            .recommendations
            .iter()
            .filter(|r| now_ms - r.at_ms < spec.scale_up_stabilization_ms)
            .map(|r| r.demand)
            .fold(f64::INFINITY, f64::min);
        spec.size(lowest, cap, partitions)
    } else {
        want
    };
    if target <= current {
        return (
            current,
            format!(
                "{why}; hold at {current} until it is wanted for {}s",
                spec.scale_up_stabilization_ms / 1000
            ),
        );
    }
    let stepped = target.min(current + spec.max_scale_up_step);
    let fewest = sizing::fewest_with_same_spread(partitions, stepped);
    let to = if fewest > current { fewest } else { stepped };
    let mut why = format!("{why}; up {current} → {to}");
    if to < target {
        why += &format!(" (at most +{} per decision)", spec.max_scale_up_step);
    }
    (to, why)
}

#[allow(clippy::too_many_arguments)]
fn scale_down(
    spec: &PolicySpec,
    state: &PolicyState,
    now_ms: u64,
    partitions: u32,
    cap: f64,
    current: u32,
    want: u32,
    why: String,
) -> (u32, String) {
    let window = spec.scale_down_stabilization_ms;
    let secs = window / 1000;
    let highest = state
        .recommendations
        .iter()
        .filter(|r| now_ms - r.at_ms < window.max(1))
        .map(|r| r.demand)
        .fold(0.0, f64::max);
    // The lower count must carry the highest demand of the window with the
    // tolerance to spare.
    let target = spec
        .size(highest * (1.0 + spec.tolerance), cap, partitions)
        .max(want);
    if target >= current {
        return (
            current,
            format!("{why}; hold at {current}: {target} wanted within the last {secs}s"),
        );
    }
    if let Some(up) = state.last_scale_up_ms.filter(|&t| now_ms - t < window) {
        return (
            current,
            format!(
                "{why}; hold at {current}: scaled up {}s ago (window {secs}s)",
                (now_ms - up) / 1000
            ),
        );
    }
    let recs = &state.recommendations;
    let produce = recs.last().map_or(0.0, |r| r.produce);
    let previous = recs
        .len()
        .checked_sub(2)
        .map_or(produce, |i| recs[i].produce);
    let lowest = recs
        .iter()
        .filter(|r| now_ms - r.at_ms <= RISING_WINDOW_MS)
        .map(|r| r.produce)
        .fold(f64::INFINITY, f64::min);
    if produce > previous * (1.0 + CLIMB_STEP) || produce > lowest * (1.0 + spec.tolerance) {
        return (
            current,
            format!(
                "{why}; hold at {current}: produce rate climbing ({} → {}/s within {}s)",
                human(lowest),
                human(produce),
                RISING_WINDOW_MS / 1000
            ),
        );
    }
    let to = target.max(current.saturating_sub(spec.max_scale_down_step));
    let mut why = format!("{why}; down {current} → {to}");
    if to > target {
        why += &format!(" (at most -{} per decision)", spec.max_scale_down_step);
    }
    (to, why)
}

#[cfg(test)]
mod tests;
