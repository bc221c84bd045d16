//! The replica count of one decision.
//!
//! 1. paused: keep the count; above `min(maxReplicas, partitions)` or below
//!    `minReplicas`: back inside at once; while a pod's sink is down: keep
//!    the count, both ways (more pods cannot help; fewer would gain nothing
//!    the outage shows, and the rebalance would move partitions whose
//!    writes are being retried, to pods that would be short when it ends);
//! 2. the count wanted is the fewest pods whose busiest pod keeps up with
//!    the per-partition demand under Kafka's count-balanced assignment
//!    ([`super::sizing`]), within the bounds;
//! 3. more pods are added only when the demand with the drain target
//!    stretched by the tolerance still needs them, and, when the pods are
//!    sink-bound, only once tuning cannot make them faster (at its bounds,
//!    latency not flat, or its last step did not help): while tuning grows
//!    the limits, the count holds ("tuning first");
//! 4. scale-up is immediate (or goes to the lowest count wanted during
//!    `scaleUpStabilizationSeconds`) and adds at most `maxScaleUpStep` pods,
//!    landing on the fewest pods with the same spread;
//! 5. scale-down goes to the highest count wanted (with the tolerance to
//!    spare) during `scaleDownStabilizationSeconds`, not within that window
//!    after a scale-up or after a partition was first reported stuck (its
//!    backlog left the demand, but it may be a partition a busy pod serves
//!    only now and then), not while partitions wait for failing pods (their
//!    backlog needs the pods once they run), not while the produce rate
//!    climbs, at most `maxScaleDownStep` pods per decision.

use millpond_crds::Direction;

use crate::bottleneck::{Bottleneck, Signals};
use crate::demand::Demands;
use crate::model::{Observation, PartitionTrack, PolicySpec, PolicyState};
use crate::observed::Seen;
use crate::sizing::{self, Demand};
use crate::tune::Tuned;
use crate::words::{human, plural};

/// Scale-down waits while the produce rate is above the lowest of this window
/// by more than the tolerance.
pub const RISING_WINDOW_MS: u64 = 60_000;
/// ... or above the previous interval's by more than this share.
const CLIMB_STEP: f64 = 0.02;

/// What the replica count is chosen from.
pub struct Input<'a> {
    /// Partitions of the topic.
    pub partitions: u32,
    /// Replicas now.
    pub current: u32,
    /// Records/s per pod to size with, when known.
    pub capacity: Option<f64>,
    /// Demand per partition.
    pub demand: &'a Demand,
    /// The same with the drain target stretched by the tolerance.
    pub relaxed: &'a Demand,
    /// Where the pods are limited.
    pub limited: &'a Signals,
    /// This interval's tuning.
    pub tuned: &'a Tuned,
    /// Stuck partitions, with when each was first reported stuck (ms).
    pub stuck_since: Vec<(i32, u64)>,
    /// Partitions that wait for failing pods.
    pub waiting: &'a [i32],
}

impl<'a> Input<'a> {
    /// The input of one decision.
    pub(crate) fn of(
        obs: &Observation,
        seen: &'a Seen,
        demands: &'a Demands,
        limited: &'a Signals,
        tuned: &'a Tuned,
    ) -> Self {
        Input {
            partitions: (obs.partitions.len() as u32).max(1),
            current: obs.replicas,
            capacity: demands.capacity,
            demand: &demands.demand,
            relaxed: &demands.relaxed,
            limited,
            tuned,
            stuck_since: stuck_since(&seen.tracks),
            waiting: &seen.waiting,
        }
    }
}

/// The count and why.
pub struct Choice {
    /// Replicas to run.
    pub replicas: u32,
    /// Why, in words.
    pub why: String,
    /// The demand needs more pods than the bounds allow.
    pub at_max: bool,
}

/// The replica count for `input`; `state` holds this decision's
/// recommendation already.
pub fn choose(spec: &PolicySpec, state: &PolicyState, now_ms: u64, input: &Input) -> Choice {
    let (p, current) = (input.partitions, input.current);
    let (lower, upper) = spec.replica_bounds(p);
    let choice = |replicas, why| Choice {
        replicas,
        why,
        at_max: false,
    };
    if spec.paused {
        // The count is the controller's: spec.replicas, or the last one.
        return choice(current, "paused".to_string());
    }
    if current > upper {
        let to = sizing::fewest_with_same_spread(p, upper).max(lower);
        let why = format!(
            "{current} is above the {upper} allowed (maxReplicas {}, {p} partitions): {to}",
            spec.max_replicas
        );
        return choice(to, why);
    }
    if current < lower {
        let why = format!(
            "{current} is below minReplicas {}: {lower}",
            spec.min_replicas
        );
        return choice(lower, why);
    }
    if input.limited.bottleneck == Bottleneck::SinkDown {
        return choice(current, format!("hold at {current}: more pods cannot help while the sink is down, and a rebalance would move partitions whose writes are being retried"));
    }
    let Some(cap) = input.capacity.filter(|c| *c > 0.0) else {
        return choice(
            current,
            format!("no consumption measured yet; hold at {current}"),
        );
    };
    let want = spec.size(input.demand, cap, p);
    let raw = input.demand.replicas(cap);
    let per_pod = sizing::max_per_pod(p, want);
    let mut why = format!(
        "{per_pod} partition{} per pod to keep up and drain within {}s: {want} pod{}",
        plural(per_pod),
        spec.target_drain_seconds,
        plural(want)
    );
    let at_max = raw > upper;
    if at_max {
        why = format!("{raw} pods wanted, {upper} allowed");
        if want < upper {
            why += &format!(": {want} give the same {per_pod} partitions per pod");
        }
    }
    let sink_bound = input.limited.bottleneck == Bottleneck::SinkBound;
    let step = Step {
        spec,
        state,
        now_ms,
        partitions: p,
        cap,
        current,
        stuck_since: &input.stuck_since,
        waiting: input.waiting,
    };
    let (replicas, why) = if want > current && spec.size(input.relaxed, cap, p) > current {
        match &input.tuned.spent {
            _ if sink_bound && input.tuned.growing => (
                current,
                format!("{why}; hold at {current}: tuning first, the limits grow"),
            ),
            Some(spent) if sink_bound && !spent.is_empty() => {
                scale_up(step, format!("{why}; {spent}, so more pods"))
            }
            _ => scale_up(step, why),
        }
    } else if want < current {
        scale_down(step, want, why)
    } else {
        (current, format!("{why}; hold at {current}"))
    };
    Choice {
        replicas,
        why,
        at_max,
    }
}

/// What a change of the count is weighed with: the policy, its memory,
/// now, the topic's partitions, a pod's capacity and the count now.
#[derive(Clone, Copy)]
struct Step<'a> {
    spec: &'a PolicySpec,
    state: &'a PolicyState,
    now_ms: u64,
    partitions: u32,
    cap: f64,
    current: u32,
    stuck_since: &'a [(i32, u64)],
    waiting: &'a [i32],
}

/// Up to what the scale-up window wanted, at most `maxScaleUpStep` pods.
fn scale_up(step: Step, why: String) -> (u32, String) {
    let (spec, state, now_ms) = (step.spec, step.state, step.now_ms);
    let (partitions, cap, current) = (step.partitions, step.cap, step.current);
    // Every recommendation of the window wanted at least this many.
    let target = state
        .recommendations
        .iter()
        .filter(|r| now_ms - r.at_ms < spec.scale_up_stabilization_ms.max(1))
        .map(|r| spec.size(&r.profile(partitions), cap, partitions))
        .min()
        .unwrap_or(current);
    if target <= current {
        return (
            current,
            format!(
                "{why}; hold at {current} until it is wanted for {}s",
                spec.scale_up_stabilization_ms / 1000
            ),
        );
    }
    let to = sizing::step_up(partitions, current, target, spec.max_scale_up_step);
    let mut why = format!("{why}; up {current} → {to}");
    if to > current + spec.max_scale_up_step {
        why += &format!(
            " (more than +{}: no count between spreads the {partitions} partitions better than {current})",
            spec.max_scale_up_step
        );
    } else if to < target {
        why += &format!(" (at most +{} per decision)", spec.max_scale_up_step);
    }
    (to, why)
}

/// Down to what the scale-down window needs, unless held.
fn scale_down(step: Step, want: u32, why: String) -> (u32, String) {
    let (spec, state, now_ms) = (step.spec, step.state, step.now_ms);
    let (partitions, cap, current) = (step.partitions, step.cap, step.current);
    let window = spec.scale_down_stabilization_ms;
    let secs = window / 1000;
    // The lower count must carry the highest demand of the window with the
    // tolerance to spare.
    let target = state
        .recommendations
        .iter()
        .filter(|r| now_ms - r.at_ms < window.max(1))
        .map(|r| {
            let demand = r.profile(partitions).scaled(1.0 + spec.tolerance);
            spec.size(&demand, cap, partitions)
        })
        .fold(want, u32::max);
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
    let stuck: Vec<i32> = step
        .stuck_since
        .iter()
        .filter(|&&(_, since)| now_ms.saturating_sub(since) < window.max(1))
        .map(|&(partition, _)| partition)
        .collect();
    if !stuck.is_empty() {
        return (
            current,
            format!("{why}; hold at {current}: partitions {stuck:?} stuck less than {secs}s, their backlog may still need the pods"),
        );
    }
    if !step.waiting.is_empty() {
        return (
            current,
            format!("{why}; hold at {current}: partitions {:?} wait for failing pods, their backlog will need the pods once they run", step.waiting),
        );
    }
    if let Some(climb) = climbing(spec, state, now_ms) {
        return (current, format!("{why}; hold at {current}: {climb}"));
    }
    let to = target.max(current.saturating_sub(spec.max_scale_down_step));
    let mut why = format!("{why}; down {current} → {to}");
    if to > target {
        why += &format!(" (at most -{} per decision)", spec.max_scale_down_step);
    }
    (to, why)
}

/// Why the produce rate counts as climbing, if it does.
fn climbing(spec: &PolicySpec, state: &PolicyState, now_ms: u64) -> Option<String> {
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
    (produce > previous * (1.0 + CLIMB_STEP) || produce > lowest * (1.0 + spec.tolerance)).then(
        || {
            format!(
                "produce rate climbing ({} → {}/s within {}s)",
                human(lowest),
                human(produce),
                RISING_WINDOW_MS / 1000
            )
        },
    )
}

/// The direction from `from` to `to` replicas, remembered in `state`.
pub(crate) fn record(state: &mut PolicyState, from: u32, to: u32, now_ms: u64) -> Direction {
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

/// Each stuck partition with the time it was first reported stuck.
fn stuck_since(tracks: &[PartitionTrack]) -> Vec<(i32, u64)> {
    tracks
        .iter()
        .filter_map(|t| t.stuck_since_ms.map(|since| (t.partition, since)))
        .collect()
}
