//! Demand per partition: a hot partition is not an average one.

use super::*;

/// A pod flat out at 10k/s whose buffer does not sit full.
fn busy_pod() -> PodSample {
    PodSample {
        full_interval: true,
        delivered_rate: 10_000.0,
        buffer_fullness: 0.4,
        flushes: 100,
        size_flushes: 100,
        flush_seconds: Some(0.2),
        in_flight_saturation: 0.4,
        ..PodSample::default()
    }
}

fn spec_up_to_12() -> PolicySpec {
    spec_with(
        AutoscalingSpec {
            max_scale_up_step: 12,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    )
}

/// Partition 0 gets `hot` records/s, the other 11 `cold` each, no backlog.
fn skewed(spec: &PolicySpec, replicas: u32, hot: f64, cold: f64) -> Decision {
    let mut produce = vec![cold; 12];
    produce[0] = hot;
    interval(
        spec,
        replicas,
        spec.start_limits,
        &produce,
        &[0; 12],
        &[0; 12],
        &busy_pod(),
        10_000.0,
    )
    .0
}

#[test]
fn replicas_are_sized_for_the_busiest_pod_not_the_average() {
    // 8k/s on partition 0, 1.6k/s on each other: 2.8k/s on average, 3 per
    // pod and 4 pods at 10k/s per pod. But Kafka may put partition 0 with
    // two others on one pod (11.2k/s): 2 per pod, 6 pods.
    let d = skewed(&spec_up_to_12(), 1, 8_000.0, 1_600.0);
    assert_eq!(d.replicas, 6, "{}", d.reason);
    assert_reason(
        &d,
        "2 partitions per pod to keep up and drain within 300s: 6 pods; up 1 → 6",
    );
    assert!(d.hot_partitions.is_empty());
    assert_eq!(sizing::replicas_for(2_800.0, 10_000.0, 12), 4);
}

#[test]
fn a_partition_that_needs_more_than_a_pod_is_named_and_does_not_push_to_the_maximum() {
    // 40% of 40k/s on partition 0: 16k/s, 1.6 pods; 2.2k/s on each other.
    let d = skewed(&spec_up_to_12(), 1, 16_000.0, 24_000.0 / 11.0);
    assert_eq!(
        d.hot_partitions,
        vec![HotPartition {
            partition: 0,
            pods: 1.6
        }]
    );
    assert_reason(
        &d,
        "partition 0 needs 1.6 pods: more pods cannot drain it faster",
    );
    // The work the partitions can take is 10k + 24k: 4 pods (3 partitions
    // each; the two others on partition 0's pod get their 2.2k/s), not 12.
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert!(!d.at_max, "{}", d.reason);
    // With the same total spread evenly, 3.3k/s each: 3 per pod, 4 pods too;
    // the old average rule said the same here, the hot partition is what is new.
    let even = skewed(&spec_up_to_12(), 1, 40_000.0 / 12.0, 40_000.0 / 12.0);
    assert_eq!(even.replicas, 4, "{}", even.reason);
    assert!(even.hot_partitions.is_empty());
}

#[test]
fn a_hot_partition_draining_its_backlog_stays_hot_until_well_under_a_pod() {
    // Partition 0 needed 1.6 pods at the previous decision; now it needs
    // 0.95 of one, the others 2.2k/s. Cold, it would need a pod of its own
    // (9.5k + 2.2k > 10k: 12 pods); still hot, the others are sized: 4 pods.
    let mut produce = vec![2_200.0; 12];
    produce[0] = 9_500.0;
    let obs = observation(4, spec().start_limits, &produce, &[0; 12], &busy_pod());
    let s = spec_up_to_12();
    let before = PolicyState {
        hot: vec![0],
        ..quiet(&[0; 12], 10_000.0)
    };
    let (d, state) = decide(&s, &obs, &before, INTERVAL_MS);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert!(
        d.hot_partitions.is_empty(),
        "0.95 pods is not reported as more than one"
    );
    assert_eq!(state.hot, vec![0]);
    // Without the previous decision's verdict it is cold and served in full.
    let (d, state) = decide(&s, &obs, &quiet(&[0; 12], 10_000.0), INTERVAL_MS);
    assert_eq!(d.replicas, 12, "{}", d.reason);
    assert!(state.hot.is_empty());
    // Under 90% of a pod it is cold again.
    produce[0] = 8_000.0;
    let obs = observation(4, spec().start_limits, &produce, &[0; 12], &busy_pod());
    let (_, state) = decide(&s, &obs, &before, INTERVAL_MS);
    assert!(state.hot.is_empty());
}

#[test]
fn every_partition_hot_gets_a_pod_each() {
    let d = skewed(&spec_up_to_12(), 1, 12_000.0, 12_000.0);
    assert_eq!(d.replicas, 12, "{}", d.reason);
    assert_eq!(d.hot_partitions.len(), 12);
    assert!(!d.at_max, "12 is what the bounds allow: {}", d.reason);
}

#[test]
fn a_state_written_before_demand_was_kept_per_partition_still_holds_its_window() {
    // What an older operator wrote: one average demand per recommendation.
    let old = r#"{"atMs":0,"recommendations":[{"atMs":0,"demand":2500.0,"produce":30000.0}],
        "capacityPerPod":10000.0,"capacityMeasured":true,"lastScaleUpMs":0}"#;
    let state: PolicyState = serde_json::from_str(old).unwrap();
    assert_eq!(state.recommendations[0].profile, None);
    assert_eq!(
        state.recommendations[0].profile(12),
        Demand::uniform(2_500.0, 12)
    );
    // 15 s later nothing arrives: the window still wants what 2.5k/s on
    // every partition needs with the tolerance (2.75k/s: 3 per pod, 4 pods);
    // 400 s later it has left the window.
    let obs = Observation {
        partitions: (0..12)
            .map(|p| PartitionObservation {
                partition: p,
                committed: Some(0),
                high_watermark: 0,
                ..PartitionObservation::default()
            })
            .collect(),
        replicas: 4,
        limits: spec().start_limits,
        ..Observation::default()
    };
    let spec = spec_with(
        AutoscalingSpec {
            scale_down_stabilization_seconds: 300,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    );
    let state = PolicyState {
        last_scale_up_ms: None,
        ..state
    };
    let (d, next) = decide(&spec, &obs, &state, 400_000);
    assert_eq!(d.replicas, 3, "{}", d.reason);
    let (d, _) = decide(&spec, &obs, &state, 15_000);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert_reason(&d, "4 wanted within the last 300s");
    // What is written now keeps each partition's demand.
    assert!(next.recommendations.iter().all(|r| r.profile.is_some()));
}
