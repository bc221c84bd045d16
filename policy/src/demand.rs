//! What the replicas are sized from: each partition's produce rate plus its
//! backlog over `targetDrainSeconds`, the partitions that need more than a
//! pod, and the window of recent demand the stabilization reads.

use crate::model::{
    HotPartition, Observation, PolicySpec, PolicyState, Recommendation, PROBE_HEADROOM,
};
use crate::observed;
use crate::replicas;
use crate::sizing::{self, Demand};

/// A partition that stays hot counts as needing this much more than a pod.
const HOT_MARGIN: f64 = 1e-6;

/// What the replicas are sized from.
pub(crate) struct Demands {
    /// Records/s produced on the healthy partitions (guessed on a first look).
    pub produce: f64,
    /// Records/s per pod to size with: the learnt capacity, with the probe
    /// headroom while it is only a lower bound.
    pub capacity: Option<f64>,
    /// Demand per partition.
    pub demand: Demand,
    /// The same with the drain target stretched by the tolerance.
    pub relaxed: Demand,
    /// Partitions that need more than a pod.
    pub hot: Vec<HotPartition>,
    /// Partitions sized as hot ([`stay_hot`]).
    pub still_hot: Vec<i32>,
}

pub(crate) fn of(
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

/// Records/s the pods' sinks acknowledged, together.
pub(crate) fn consumed(obs: &Observation) -> f64 {
    obs.pods.iter().map(|p| rate(p.delivered_rate)).sum()
}

/// Records/s each partition needs to keep up and drain its backlog within
/// `drain_seconds`; stuck and waiting partitions need nothing. Without produce rates
/// (first look) what the pods consume is spread evenly.
pub(crate) fn demands(obs: &Observation, seen: &observed::Seen, drain_seconds: f64) -> Vec<f64> {
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
pub(crate) fn window(
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
pub(crate) fn hot_partitions(
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
pub(crate) fn stay_hot(
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

/// A rate as reported, with nonsense (negative, NaN, infinite) read as 0.
pub(crate) fn rate(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}
