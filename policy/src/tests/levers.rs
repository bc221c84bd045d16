//! Buffer fullness, in-flight writes and lag pick the lever: tuning for
//! sink-bound pods, pods for consume-bound ones, giving back when idle.

use super::*;

/// A pod's interval: `fullness`, `saturation` of its permits, waiting for a
/// permit `backpressure` of the 15 s, `size_share` of its flushes by size.
fn pod(rate: f64, fullness: f64, saturation: f64, backpressure: f64, size_share: f64) -> PodSample {
    PodSample {
        partitions: vec![],
        full_interval: true,
        delivered_rate: rate,
        buffer_fullness: fullness,
        flushes: 100,
        size_flushes: (100.0 * size_share) as u64,
        flush_seconds: Some(0.2),
        in_flight_saturation: saturation,
        errors: 0,
        backpressure_seconds: backpressure * 15.0,
        ..PodSample::default()
    }
}

/// 1k/s on each of 12 partitions, lag from 30k to 60k each (growing 24k/s),
/// two pods delivering 4k/s each like `sample`.
fn behind(spec: &PolicySpec, limits: TunedLimits, sample: &PodSample) -> Decision {
    interval(
        spec,
        2,
        limits,
        &[1_000.0; 12],
        &[30_000; 12],
        &[60_000; 12],
        sample,
        4_000.0,
    )
    .0
}

#[test]
fn sink_bound_pods_are_tuned_before_more_pods_are_added() {
    let s = spec();
    // Buffers full, both permits busy: the sink holds the pods back.
    let d = behind(&s, s.start_limits, &pod(4_000.0, 1.0, 1.0, 0.4, 1.0));
    assert_eq!(d.limited.bottleneck, Bottleneck::SinkBound);
    assert_eq!(d.replicas, 2, "{}", d.reason);
    assert_reason(&d, "sink-bound: buffer 1.0× full, 2/2 writes busy, lag growing 24k/s: 3 partitions per pod to keep up and drain within 300s: 4 pods; hold at 2: tuning first, the limits grow");
    assert_eq!(d.limits.max_in_flight, 3);
    assert!(d.limits.flush_bytes > s.start_limits.flush_bytes);
    let tuning = d.tuning.unwrap();
    assert!(
        tuning.starts_with(
            "sink-bound: buffer 1.0× full, 2/2 writes busy, lag growing 24k/s, sink latency flat (200ms): maxInFlight 2 → 3"
        ),
        "{tuning}"
    );
}

#[test]
fn sink_bound_pods_get_more_pods_once_tuning_is_at_its_bounds() {
    let at_bounds = AutotuneSpec {
        max_flush_bytes: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "512Ki".into(),
        )),
        max_in_flight: Some(2),
        ..AutotuneSpec::default()
    };
    let s = spec_with(AutoscalingSpec::default(), at_bounds);
    let d = behind(&s, s.start_limits, &pod(4_000.0, 1.0, 1.0, 0.4, 1.0));
    assert_eq!(d.limited.bottleneck, Bottleneck::SinkBound);
    assert_eq!(d.limits, s.start_limits);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert_reason(&d, "tuning is at its bounds (maxInFlight 2 of 2, flushBytes 512.0Ki of 512.0Ki allowed), so more pods; up 2 → 4");
}

#[test]
fn consume_bound_pods_get_more_pods_not_larger_flushes() {
    let s = spec();
    // Size-triggered flushes but the buffer never sits full, nothing waits
    // for a permit, and the lag grows: the pods cannot pull faster.
    let d = behind(&s, s.start_limits, &pod(4_000.0, 0.3, 0.3, 0.0, 1.0));
    assert_eq!(d.limited.bottleneck, Bottleneck::ConsumeBound);
    assert_eq!(d.limits, s.start_limits, "{:?}", d.tuning);
    assert_eq!(d.tuning, None);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert_reason(&d, "consume-bound: buffer 0.3× full, lag growing 24k/s, 2/2 pods busy: 3 partitions per pod to keep up and drain within 300s: 4 pods; up 2 → 4");
}

#[test]
fn idle_pods_give_pods_and_permits_back() {
    let s = spec();
    let grown = TunedLimits {
        max_in_flight: 4,
        ..s.start_limits
    };
    // 50/s per partition, a few records waiting, time-triggered flushes,
    // buffers almost empty, one permit of four in use at most.
    let (d, state) = interval(
        &s,
        4,
        grown,
        &[50.0; 12],
        &[100; 12],
        &[100; 12],
        &pod(150.0, 0.1, 0.05, 0.0, 0.0),
        4_000.0,
    );
    assert_eq!(d.limited.bottleneck, Bottleneck::Idle);
    assert_eq!(d.replicas, 3, "{}", d.reason);
    assert_reason(&d, "idle: buffer 0.1× full, no backlog, 0.2/4 writes busy");
    assert_eq!(d.limits.max_in_flight, 3, "{:?}", d.tuning);
    assert!(d.tuning.unwrap().ends_with("maxInFlight 4 → 3"));
    // A permit fewer: the capacity learnt with four is scaled down with them.
    assert_eq!(state.capacity_per_pod, Some(3_000.0));
}

#[test]
fn pods_that_keep_up_hold() {
    let s = spec();
    let (d, _) = interval(
        &s,
        4,
        s.start_limits,
        &[1_000.0; 12],
        &[2_000; 12],
        &[2_000; 12],
        &pod(3_000.0, 0.5, 0.6, 0.0, 1.0),
        4_000.0,
    );
    assert_eq!(d.limited.bottleneck, Bottleneck::KeepingUp);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert_reason(&d, "keeping up: buffer 0.5× full");
}
