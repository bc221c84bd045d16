//! Tuning of flush size and in-flight writes, by where the pods are limited.

use super::*;
use crate::tune::{self, Tuned};

/// One pod's interval: flushes taking `flush_seconds`, waiting for a permit
/// `backpressure` of the interval, `size_share` of the flushes by size.
fn tune_obs(
    limits: TunedLimits,
    flush_seconds: f64,
    backpressure: f64,
    size_share: f64,
    errors: u64,
) -> Observation {
    Observation {
        partitions: vec![],
        pods: vec![PodSample {
            partitions: vec![],
            full_interval: true,
            delivered_rate: 1_000.0,
            buffer_fullness: 0.5,
            flushes: 100,
            size_flushes: (100.0 * size_share) as u64,
            flush_seconds: Some(flush_seconds),
            in_flight_saturation: 0.5,
            errors,
            backpressure_seconds: backpressure * 15.0,
            ..PodSample::default()
        }],
        replicas: 1,
        limits,
        failing: vec![],
    }
}

/// Pods limited as `limit` says, at `rate` records/s, with `busy_permits`
/// of `obs.limits.max_in_flight` in use.
fn signals(obs: &Observation, limit: Bottleneck, rate: f64, busy_permits: f64) -> Signals {
    Signals {
        bottleneck: limit,
        fullness: if limit == Bottleneck::SinkBound {
            1.0
        } else {
            0.3
        },
        busy_permits,
        permits: obs.limits.max_in_flight,
        rate,
        pods: 1,
        ..Signals::default()
    }
}

fn step(spec: &PolicySpec, obs: &Observation, prev: &TuneState, limit: Bottleneck) -> Tuned {
    let busy = obs.limits.max_in_flight as f64;
    tune::tune(
        spec,
        obs,
        Some(15.0),
        prev,
        &signals(obs, limit, 1_000.0, busy),
    )
}

#[test]
fn sink_bound_pods_get_more_permits_and_larger_flushes_while_latency_stays_flat() {
    let s = spec();
    let start = s.start_limits;
    let t = step(
        &s,
        &tune_obs(start, 0.2, 0.4, 0.9, 0),
        &TuneState::default(),
        Bottleneck::SinkBound,
    );
    assert_eq!(
        t.limits.max_in_flight,
        start.max_in_flight + 1,
        "{:?}",
        t.why
    );
    assert_eq!(
        t.limits.flush_bytes,
        start.flush_bytes * 3 / 2,
        "{:?}",
        t.why
    );
    assert!(t.growing && t.spent.is_none());
    let why = t.why.unwrap();
    assert!(
        why.starts_with("sink-bound: buffer 1.0× full, 2/2 writes busy, sink latency flat (200ms): maxInFlight 2 → 3, flushBytes"),
        "{why}"
    );
}

#[test]
fn consume_bound_pods_get_no_larger_flushes() {
    let s = spec();
    let start = s.start_limits;
    // Size-triggered flushes, flat latency, nothing waits: keeping up grows
    // flushes (fewer writes), consume-bound does not.
    let obs = tune_obs(start, 0.2, 0.0, 0.9, 0);
    let t = step(&s, &obs, &TuneState::default(), Bottleneck::KeepingUp);
    assert_eq!(
        t.limits.flush_bytes,
        start.flush_bytes * 3 / 2,
        "{:?}",
        t.why
    );
    let t = step(&s, &obs, &TuneState::default(), Bottleneck::ConsumeBound);
    assert_eq!(t.limits, start, "{:?}", t.why);
    assert!(!t.growing && t.spent.is_none());
}

#[test]
fn idle_pods_give_permits_back_down_to_the_starting_limits() {
    let s = spec();
    let start = s.start_limits;
    let mut limits = TunedLimits {
        max_in_flight: start.max_in_flight + 2,
        ..start
    };
    let mut seen = vec![];
    for _ in 0..4 {
        let obs = tune_obs(limits, 0.2, 0.0, 0.0, 0);
        let t = tune::tune(
            &s,
            &obs,
            Some(15.0),
            &TuneState::default(),
            &signals(&obs, Bottleneck::Idle, 100.0, 0.4),
        );
        limits = t.limits;
        seen.push(limits.max_in_flight);
        if let Some(why) = t.why {
            assert!(
                why.starts_with("idle: buffer 0.3× full, no backlog"),
                "{why}"
            );
        }
    }
    assert_eq!(seen, vec![3, 2, 2, 2]);
    assert_eq!(limits.flush_bytes, start.flush_bytes);
    // A permit that is in use is kept.
    let busy = TunedLimits {
        max_in_flight: 4,
        ..start
    };
    let obs = tune_obs(busy, 0.2, 0.0, 0.0, 0);
    let t = tune::tune(
        &s,
        &obs,
        Some(15.0),
        &TuneState::default(),
        &signals(&obs, Bottleneck::Idle, 100.0, 3.5),
    );
    assert_eq!(t.limits, busy, "{:?}", t.why);
}

#[test]
fn sink_bound_pods_at_the_bounds_say_tuning_cannot_help() {
    let tight = AutotuneSpec {
        max_flush_bytes: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "1Mi".into(),
        )),
        max_in_flight: Some(3),
        ..AutotuneSpec::default()
    };
    let s = spec_with(AutoscalingSpec::default(), tight);
    let at_bounds = TunedLimits {
        flush_bytes: 1 << 20,
        max_in_flight: 3,
    };
    let t = step(
        &s,
        &tune_obs(at_bounds, 0.2, 0.6, 0.9, 0),
        &TuneState::default(),
        Bottleneck::SinkBound,
    );
    assert_eq!(t.limits, at_bounds);
    assert!(!t.growing);
    let spent = t.spent.unwrap();
    assert!(
        spent.contains(
            "tuning is at its bounds (maxInFlight 3 of 3, flushBytes 1.0Mi of 1.0Mi allowed)"
        ),
        "{spent}"
    );
    // Latency above flat (not yet a rise): no growth either, and it says why.
    let prev = TuneState {
        reference_seconds: Some(0.2),
        reference_flush_bytes: Some(s.start_limits.flush_bytes),
        ..TuneState::default()
    };
    let t = step(
        &s,
        &tune_obs(s.start_limits, 0.27, 0.6, 0.9, 0),
        &prev,
        Bottleneck::SinkBound,
    );
    assert_eq!(t.limits, s.start_limits);
    assert!(t.spent.unwrap().contains("sink latency not flat"));
}

#[test]
fn a_step_that_did_not_raise_the_rate_pauses_tuning_and_says_so() {
    let s = spec();
    let obs = tune_obs(s.start_limits, 0.2, 0.6, 0.9, 0);
    let first = tune::tune(
        &s,
        &obs,
        Some(15.0),
        &TuneState::default(),
        &signals(&obs, Bottleneck::SinkBound, 1_000.0, 2.0),
    );
    assert!(first.growing);
    assert_eq!(first.state.grown_at_rate, Some(1_000.0));
    // Next interval, still sink-bound at the same rate: it did not help.
    let obs = tune_obs(first.limits, 0.2, 0.6, 0.9, 0);
    let second = tune::tune(
        &s,
        &obs,
        Some(15.0),
        &first.state,
        &signals(&obs, Bottleneck::SinkBound, 1_030.0, 3.0),
    );
    assert_eq!(second.limits, first.limits);
    assert!(!second.growing);
    assert!(second
        .spent
        .unwrap()
        .contains("the last tuning step did not raise the pods' rate (1.0k/s → 1.0k/s)"));
    assert_eq!(second.state.hold, tune::HOLD_AFTER_CUT);
    // A step that raised the rate by more than a tenth goes on.
    let helped = tune::tune(
        &s,
        &obs,
        Some(15.0),
        &first.state,
        &signals(&obs, Bottleneck::SinkBound, 1_500.0, 3.0),
    );
    assert!(helped.growing, "{:?}", helped.spent);
}

#[test]
fn rising_latency_or_errors_halve_both_limits() {
    let s = spec();
    let grown = TunedLimits {
        flush_bytes: 4 << 20,
        max_in_flight: 4,
    };
    let prev = TuneState {
        reference_seconds: Some(0.2),
        reference_flush_bytes: Some(grown.flush_bytes),
        ..TuneState::default()
    };
    for limit in [
        Bottleneck::SinkBound,
        Bottleneck::KeepingUp,
        Bottleneck::Idle,
    ] {
        let t = step(&s, &tune_obs(grown, 0.6, 0.0, 0.9, 0), &prev, limit);
        assert_eq!(t.limits.max_in_flight, 2, "{:?}", t.why);
        assert_eq!(t.limits.flush_bytes, 2 << 20, "{:?}", t.why);
        assert_eq!(t.state.hold, tune::HOLD_AFTER_CUT);
        assert!(t
            .why
            .unwrap()
            .starts_with("sink latency rose to 600ms (expected 200ms)"));
    }
    let t = step(
        &s,
        &tune_obs(grown, 0.2, 0.0, 0.9, 3),
        &prev,
        Bottleneck::SinkBound,
    );
    assert!(
        t.limits.max_in_flight < grown.max_in_flight && t.limits.flush_bytes < grown.flush_bytes
    );
    assert!(t.why.unwrap().contains("3 sink errors"));
    assert!(t.spent.unwrap().contains("limits cut"));
    // Held afterwards.
    let held = step(
        &s,
        &tune_obs(t.limits, 0.2, 0.6, 0.9, 0),
        &t.state,
        Bottleneck::SinkBound,
    );
    assert_eq!(held.limits, t.limits);
    assert!(held.spent.unwrap().contains("tuning paused"));
}

#[test]
fn without_autotune_the_limits_stay() {
    let s = spec_with(
        AutoscalingSpec::default(),
        AutotuneSpec {
            enabled: false,
            ..AutotuneSpec::default()
        },
    );
    let obs = tune_obs(s.start_limits, 0.2, 0.9, 0.9, 0);
    let t = step(&s, &obs, &TuneState::default(), Bottleneck::SinkBound);
    assert_eq!((t.limits, t.why), (s.start_limits, None));
}

#[test]
fn tuning_stays_within_bounds_and_the_memory_budget() {
    let tight = AutotuneSpec {
        min_flush_bytes: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "256Ki".into(),
        )),
        max_flush_bytes: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "6Mi".into(),
        )),
        min_in_flight: Some(1),
        max_in_flight: Some(6),
        ..AutotuneSpec::default()
    };
    let limits_by_draw = [
        Bottleneck::SinkBound,
        Bottleneck::ConsumeBound,
        Bottleneck::KeepingUp,
        Bottleneck::Idle,
    ];
    for autotune in [AutotuneSpec::default(), tight] {
        let s = spec_with(AutoscalingSpec::default(), autotune);
        let bounds = s.autotune.unwrap();
        let mut rng = Lcg(7);
        let mut limits = s.start_limits;
        let mut state = TuneState::default();
        let mut grew = 0;
        for _ in 0..2_000 {
            let latency = 0.1 + rng.next() * if rng.next() < 0.1 { 2.0 } else { 0.05 };
            let obs = tune_obs(
                limits,
                latency * (limits.flush_bytes as f64 / (512 << 10) as f64).sqrt(),
                if rng.next() < 0.5 { rng.next() } else { 0.0 },
                rng.next(),
                (rng.next() < 0.03) as u64,
            );
            let limit = limits_by_draw[(rng.next() * 4.0) as usize % 4];
            let sig = signals(&obs, limit, 1_000.0 * (1.0 + rng.next()), rng.next() * 4.0);
            let t = tune::tune(&s, &obs, Some(15.0), &state, &sig);
            state = t.state;
            grew += (t.limits.flush_bytes > limits.flush_bytes
                || t.limits.max_in_flight > limits.max_in_flight) as u32;
            limits = t.limits;
            assert!(
                (bounds.min_in_flight..=bounds.max_in_flight).contains(&limits.max_in_flight),
                "{limits:?}"
            );
            assert!(limits.flush_bytes >= bounds.min_flush_bytes, "{limits:?}");
            assert!(
                bounds
                    .max_flush_bytes
                    .is_none_or(|m| limits.flush_bytes <= m),
                "{limits:?}"
            );
            s.budget
                .check(limits.flush_bytes, limits.max_in_flight)
                .unwrap_or_else(|e| panic!("{limits:?}: {e}"));
        }
        assert!(grew > 10, "the limits did move");
    }
}

#[test]
fn limits_outside_the_budget_are_brought_back() {
    let s = spec();
    let huge = TunedLimits {
        flush_bytes: 200 << 20,
        max_in_flight: 64,
    };
    let t = step(
        &s,
        &tune_obs(huge, 0.2, 0.0, 0.0, 0),
        &TuneState::default(),
        Bottleneck::KeepingUp,
    );
    assert!(
        s.budget
            .check(t.limits.flush_bytes, t.limits.max_in_flight)
            .is_ok(),
        "{:?}",
        t.limits
    );
    assert!(t.why.unwrap().contains("inside the autotune bounds"));
}

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
