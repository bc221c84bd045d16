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
//!    lag ([`bottleneck`]): sink-bound, consume-bound, idle or keeping up;
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
//!
//! The crate depends on the API types (`millpond-crds`) and the memory
//! budget (`millpond-core`) only: no clock, no cluster, no Kafka.

pub mod bottleneck;
mod capacity;
mod demand;
mod model;
pub mod observed;
pub mod outage;
pub mod replicas;
pub mod sizing;
pub mod tune;
mod words;

pub use bottleneck::{Bottleneck, Signals};
pub use model::{
    Decision, FailingPod, HotPartition, LagSummary, Observation, PartitionObservation,
    PartitionTrack, PodSample, PolicySpec, PolicyState, Recommendation, SinkDown, TuneBounds,
    TunedLimits, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TOLERANCE, PROBE_HEADROOM,
};
pub use outage::SinkOutage;
pub use sizing::Demand;
pub use tune::TuneState;
pub use words::human;

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
    let seen = observed::partitions(spec, obs, prev, dt, now_ms);
    let busy = bottleneck::busy_pods(obs, &seen, dt);
    // An outage, and the interval it ends in, show nothing of capacity.
    let (capacity, measured) = if outage::of(obs).is_some() || prev.sink_was_down {
        (prev.capacity_per_pod, prev.capacity_measured)
    } else {
        capacity::learn(obs, prev, &busy)
    };
    let signals = bottleneck::classify(obs, &busy, dt, seen.healthy_lag_rate, capacity);
    let d = demand::of(spec, obs, prev, &seen, capacity, measured);
    let tuned = if prev.sink_was_down {
        tune::held(spec, obs, &prev.tune)
    } else {
        tune::tune(spec, obs, dt, &prev.tune, &signals)
    };
    let mut state = PolicyState {
        at_ms: Some(now_ms),
        partitions: seen.tracks.clone(),
        recommendations: demand::window(spec, prev, now_ms, &d.demand, d.produce, seen.healthy()),
        capacity_per_pod: capacity,
        capacity_measured: measured,
        total_lag: Some(seen.lag.total),
        healthy_lag: Some(seen.lag.healthy),
        hot: d.still_hot.clone(),
        last_scale_up_ms: prev.last_scale_up_ms,
        last_scale_ms: prev.last_scale_ms,
        tune: TuneState::default(),
        sink_was_down: signals.bottleneck == Bottleneck::SinkDown,
    };
    let input = replicas::Input::of(obs, &seen, &d, &signals, &tuned);
    let choice = replicas::choose(spec, &state, now_ms, &input);
    let reason = words::reason(&seen, obs, prev, &state, &signals, &d, &choice);
    let direction = replicas::record(&mut state, obs.replicas, choice.replicas, now_ms);
    capacity::after_tuning(&mut state, obs.limits, tuned.limits);
    state.tune = tuned.state;
    let decision = Decision {
        from: obs.replicas,
        replicas: choice.replicas,
        direction,
        reason,
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

#[cfg(test)]
mod tests;
