//! A sink that takes no writes, and pods that fail on their own: neither is
//! answered with more pods.

use super::*;

fn down(seconds: f64) -> Option<SinkDown> {
    Some(SinkDown {
        seconds,
        error: "POST http://sink:8080/in: HTTP 503 Service Unavailable".into(),
    })
}

#[test]
fn a_sink_down_holds_replicas_and_limits_and_scaling_resumes_once_it_is_back() {
    let mut b = Bench::new(spec());
    b.tick(100.0, 1_200.0, &[]);
    let held = b.tick(100.0, 1_200.0, &[]);
    let (replicas, limits) = (held.replicas, held.limits);
    // A burst arrives while the sink takes nothing: the lag grows fast.
    for i in 1..=4 {
        b.sink_down = down(15.0 * i as f64);
        let d = b.tick(2_000.0, 1_000.0, &[]);
        assert_eq!(d.limited.bottleneck, Bottleneck::SinkDown, "{}", d.reason);
        assert_eq!(d.replicas, replicas, "{}", d.reason);
        assert_eq!(d.limits, limits, "{}", d.reason);
        assert_reason(&d, "more pods cannot help while the sink is down");
        let outage = d.limited.outage.as_ref().expect("the outage is named");
        assert_eq!(outage.pods, ["pod-0"]);
        assert!(outage.error.contains("HTTP 503"), "{}", outage.error);
        assert!(d.stuck_partitions.is_empty(), "{:?}", d.stuck_partitions);
    }
    // Back: the backlog is answered again.
    b.sink_down = None;
    let after: Vec<u32> = (0..3)
        .map(|_| b.tick(2_000.0, 1_000.0, &[]).replicas)
        .collect();
    assert!(
        after.iter().any(|r| *r > replicas),
        "no scale-up after the outage: {after:?}"
    );
}

#[test]
fn the_partitions_of_a_crash_looping_pod_wait_for_it_and_do_not_drive_scale_up() {
    let mut b = Bench::new(spec_with(
        AutoscalingSpec {
            min_replicas: 3,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    ));
    b.replicas = 3;
    for _ in 0..3 {
        b.tick(100.0, 1_200.0, &[]);
    }
    assert_eq!(b.replicas, 3);
    b.failing = vec![1];
    for _ in 0..6 {
        let d = b.tick(100.0, 1_200.0, &[]);
        assert_eq!(d.replicas, 3, "{}", d.reason);
        assert_eq!(d.waiting_partitions, [1, 4, 7, 10], "{}", d.reason);
        assert!(d.stuck_partitions.is_empty(), "not stuck: {}", d.reason);
        assert_reason(&d, "they wait for failing pods [pod-1 (CrashLoopBackOff)]");
    }
}
