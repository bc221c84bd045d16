use millpond_core::budget::{plan, BudgetPlan, BudgetRequest};
use millpond_crds::{AutoscalingSpec, AutotuneSpec, Direction, LimitsSpec};

use super::*;

mod levers;
mod outage;
mod skew;
mod tune;

const INTERVAL_MS: u64 = 15_000;

/// Fails with the whole reason unless it says `text`.
#[track_caller]
fn assert_reason(d: &Decision, text: &str) {
    assert!(d.reason.contains(text), "{}", d.reason);
}

fn budget(partitions: u32) -> BudgetPlan {
    plan(&BudgetRequest {
        budget: 256 << 20,
        partitions,
        max_in_flight: 2,
        flush_bytes: Some(512 << 10),
        queued_max_messages_kbytes: None,
        fetch_max_bytes: None,
        max_partition_fetch_bytes: None,
        sink_factor: 2.0,
    })
    .expect("256Mi fits 12 partitions")
}

fn spec_with(autoscaling: AutoscalingSpec, autotune: AutotuneSpec) -> PolicySpec {
    let limits = LimitsSpec {
        max_in_flight: 2,
        ..LimitsSpec::default()
    };
    PolicySpec::new(&autoscaling, &autotune, &limits, &budget(12)).expect("valid spec")
}

fn spec() -> PolicySpec {
    spec_with(AutoscalingSpec::default(), AutotuneSpec::default())
}

/// A hand-driven topic of 12 partitions: each interval the test says what
/// arrives and what the pods commit.
struct Bench {
    spec: PolicySpec,
    state: PolicyState,
    now: u64,
    hw: Vec<i64>,
    committed: Vec<i64>,
    assigned: Vec<bool>,
    replicas: u32,
    limits: TunedLimits,
    /// What every pod reports of its sink (`None`: it takes writes).
    sink_down: Option<SinkDown>,
    /// Pods failing on their own, by index (their partitions are not consumed).
    failing: Vec<usize>,
    /// Share of the permits every pod keeps busy.
    saturation: f64,
}

impl Bench {
    fn new(spec: PolicySpec) -> Self {
        let limits = spec.start_limits;
        Self {
            spec,
            state: PolicyState::default(),
            now: 0,
            hw: vec![0; 12],
            committed: vec![0; 12],
            assigned: vec![true; 12],
            replicas: 1,
            limits,
            sink_down: None,
            failing: vec![],
            saturation: 0.0,
        }
    }

    /// One interval: `produce` records/s arrive on every partition, each pod
    /// consumes up to `pod_rate` records/s spread over its partitions (those
    /// in `frozen` are never consumed), then the policy decides.
    fn tick(&mut self, produce: f64, pod_rate: f64, frozen: &[usize]) -> Decision {
        let secs = INTERVAL_MS as f64 / 1e3;
        self.now += INTERVAL_MS;
        for hw in &mut self.hw {
            *hw += (produce * secs) as i64;
        }
        let r = self.replicas as usize;
        let mut pods = Vec::new();
        for i in 0..r {
            let mine: Vec<usize> = (0..12).filter(|p| p % r == i).collect();
            let mut budget = pod_rate * secs;
            let mut consumed = 0.0;
            let live: Vec<usize> = mine
                .iter()
                .copied()
                .filter(|p| !frozen.contains(p) && !self.failing.contains(&i))
                .filter(|_| self.sink_down.is_none())
                .collect();
            for (k, &p) in live.iter().enumerate() {
                let share = budget / (live.len() - k) as f64;
                let got = ((self.hw[p] - self.committed[p]) as f64).min(share);
                self.committed[p] += got as i64;
                budget -= got;
                consumed += got;
            }
            if self.failing.contains(&i) {
                continue;
            }
            pods.push(PodSample {
                pod: format!("pod-{i}"),
                partitions: mine.iter().map(|&p| p as i32).collect(),
                full_interval: true,
                delivered_rate: consumed / secs,
                sink_down: self.sink_down.clone(),
                in_flight_saturation: self.saturation,
                ..PodSample::default()
            });
        }
        let obs = Observation {
            partitions: (0..12)
                .map(|p| PartitionObservation {
                    partition: p as i32,
                    committed: Some(self.committed[p]),
                    high_watermark: self.hw[p],
                    log_start: 0,
                    uncommitted_start: None,
                    assigned: self.assigned[p],
                })
                .collect(),
            pods,
            replicas: self.replicas,
            limits: self.limits,
            failing: (self.failing.iter())
                .map(|i| FailingPod {
                    pod: format!("pod-{i}"),
                    why: "CrashLoopBackOff".into(),
                })
                .collect(),
        };
        let (d, state) = decide(&self.spec, &obs, &self.state, self.now);
        self.state = state;
        self.replicas = d.replicas;
        self.limits = d.limits;
        d
    }
}

/// The decision for a per-partition produce rate with a known capacity, from
/// `replicas` pods, no lag.
fn decision_for(spec: &PolicySpec, replicas: u32, produce: f64, capacity: f64) -> Decision {
    let state = PolicyState {
        at_ms: Some(0),
        partitions: (0..12)
            .map(|p| PartitionTrack {
                partition: p,
                high_watermark: 0,
                committed: Some(0),
                ..PartitionTrack::default()
            })
            .collect(),
        capacity_per_pod: Some(capacity),
        capacity_measured: true,
        ..PolicyState::default()
    };
    let hw = (produce * 15.0) as i64;
    let obs = Observation {
        partitions: (0..12)
            .map(|p| PartitionObservation {
                partition: p,
                committed: Some(hw),
                high_watermark: hw,
                log_start: 0,
                uncommitted_start: None,
                assigned: true,
            })
            .collect(),
        pods: vec![],
        replicas,
        limits: spec.start_limits,
        failing: vec![],
    };
    decide(spec, &obs, &state, INTERVAL_MS).0
}

/// The state of a decision at time 0 that saw partition `i` lag
/// `prev_lag[i]` at a high watermark of 1M, with a measured capacity of
/// `capacity` records/s per pod.
fn quiet(prev_lag: &[i64], capacity: f64) -> PolicyState {
    PolicyState {
        at_ms: Some(0),
        partitions: (0..prev_lag.len())
            .map(|p| PartitionTrack {
                partition: p as i32,
                high_watermark: 1_000_000,
                committed: Some(1_000_000 - prev_lag[p]),
                ..PartitionTrack::default()
            })
            .collect(),
        capacity_per_pod: Some(capacity),
        capacity_measured: true,
        total_lag: Some(prev_lag.iter().sum()),
        healthy_lag: Some(prev_lag.iter().sum()),
        ..PolicyState::default()
    }
}

/// One interval after [`quiet`]`(prev_lag, capacity)`: partition `i` got
/// `produce[i]` records/s and now lags `lag[i]`; `replicas` pods ran with
/// `limits` and each reported like `pod` (partitions assigned round-robin).
#[allow(clippy::too_many_arguments)]
fn interval(
    spec: &PolicySpec,
    replicas: u32,
    limits: TunedLimits,
    produce: &[f64],
    prev_lag: &[i64],
    lag: &[i64],
    pod: &PodSample,
    capacity: f64,
) -> (Decision, PolicyState) {
    let state = quiet(prev_lag, capacity);
    let obs = observation(replicas, limits, produce, lag, pod);
    decide(spec, &obs, &state, INTERVAL_MS)
}

/// What [`interval`] observes.
fn observation(
    replicas: u32,
    limits: TunedLimits,
    produce: &[f64],
    lag: &[i64],
    pod: &PodSample,
) -> Observation {
    let partitions = (0..produce.len())
        .map(|p| {
            let hw = 1_000_000 + (produce[p] * 15.0) as i64;
            PartitionObservation {
                partition: p as i32,
                committed: Some(hw - lag[p]),
                high_watermark: hw,
                log_start: 0,
                uncommitted_start: None,
                assigned: true,
            }
        })
        .collect();
    let r = replicas as usize;
    let pods = (0..r)
        .map(|i| PodSample {
            partitions: (0..produce.len())
                .filter(|p| p % r == i)
                .map(|p| p as i32)
                .collect(),
            ..pod.clone()
        })
        .collect();
    Observation {
        partitions,
        pods,
        replicas,
        limits,
        failing: vec![],
    }
}

#[test]
fn partitions_waiting_their_turn_on_pods_at_their_limit_are_not_stuck() {
    let mut b = Bench::new(spec());
    b.saturation = 1.0;
    b.tick(100.0, 1_200.0, &[]);
    // Every permit busy; 9, 10 and 11 wait behind the other partitions of
    // their pods (up to 6 pods, each holds one that moves).
    for _ in 0..6 {
        if b.replicas > 6 {
            break;
        }
        let d = b.tick(2_000.0, 1_000.0, &[9, 10, 11]);
        assert!(d.stuck_partitions.is_empty(), "{}", d.reason);
    }
    assert!(b.replicas > 1, "their lag drives scale-up");
}

#[test]
fn scale_up_is_immediate_and_rate_limited() {
    let mut b = Bench::new(spec());
    b.tick(100.0, 1_200.0, &[]);
    let mut seen = vec![];
    for _ in 0..5 {
        let before = b.replicas;
        let d = b.tick(2_000.0, 1_000.0, &[]);
        assert!(d.replicas <= before + 8, "{}", d.reason);
        seen.push(d.replicas);
    }
    // Immediate: the first interval with the load scales; +4 at most, and 5
    // would be no faster than 4 on 12 partitions, 8 no faster than 6. From
    // 6 (2 partitions each) every count up to 11 still leaves a pod with 2:
    // the step goes on to 12, within a second step.
    assert_eq!(seen, vec![4, 6, 12, 12, 12]);
}

#[test]
fn a_step_lands_on_a_count_that_spreads_better_than_every_smaller_one() {
    use super::sizing::step_up;
    // A skewed burst on 10 partitions wants 10 pods: from 5 (2 each), 9
    // would still leave a pod with 2, so the step goes to 10.
    assert_eq!(step_up(10, 5, 10, 4), 10);
    // With a step of 1 the next better spread (100 from 50) is far beyond
    // a second step: it climbs one by one.
    assert_eq!(step_up(100, 50, 100, 1), 51);
    // Within the step: the fewest pods of the spread the step reaches.
    assert_eq!(step_up(12, 4, 12, 4), 6);
    // Never past the target.
    assert_eq!(step_up(10, 5, 7, 4), 7);
}

#[test]
fn scale_up_waits_for_its_stabilization_window_when_one_is_set() {
    let mut b = Bench::new(spec_with(
        AutoscalingSpec {
            scale_up_stabilization_seconds: 30,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    ));
    b.tick(100.0, 1_200.0, &[]);
    // The quiet interval of 15 s ago still counts: only what it wanted too.
    let first = b.tick(2_000.0, 1_000.0, &[]);
    assert_eq!(first.replicas, 2, "{}", first.reason);
    // Wanted for the whole 30 s: the full step.
    let second = b.tick(2_000.0, 1_000.0, &[]);
    assert_eq!(second.replicas, 6, "{}", second.reason);
}

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    let mut b = Bench::new(spec());
    b.tick(100.0, 1_200.0, &[]);
    let mut last_up = 0;
    for _ in 0..6 {
        if b.tick(2_000.0, 1_000.0, &[]).direction == Direction::Up {
            last_up = b.now;
        }
    }
    assert_eq!(b.replicas, 12);
    let mut first_down = None;
    for _ in 0..60 {
        let before = b.replicas;
        let d = b.tick(50.0, 1_000.0, &[]);
        assert_ne!(d.direction, Direction::Up, "{}", d.reason);
        if d.direction == Direction::Down {
            first_down.get_or_insert(b.now);
            assert_eq!(d.replicas, before - 1, "one pod per decision: {}", d.reason);
        }
    }
    let first_down = first_down.expect("scales down eventually");
    assert!(
        first_down - last_up >= 300_000,
        "down {first_down}ms after up at {last_up}ms"
    );
    assert_eq!(b.replicas, 1);
}

#[test]
fn twelve_partitions_never_run_five_pods() {
    let spec = spec_with(
        AutoscalingSpec {
            max_scale_up_step: 12,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    );
    // 1k/s per partition at 3.5k/s per pod: a pod carries 3 partitions, so 4
    // pods; 5 would put 3 on the busiest pod too.
    let d = decision_for(&spec, 1, 1_000.0, 3_500.0);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert_reason(&d, "3 partitions per pod");
    for demand in (50..5_000).step_by(50) {
        let d = decision_for(&spec, 1, demand as f64, 3_500.0);
        assert!(
            [1, 2, 3, 4, 6, 12].contains(&d.replicas),
            "{demand}/s: {}",
            d.reason
        );
    }
    // Capped at 5 by maxReplicas, 4 give the same spread.
    let capped = spec_with(
        AutoscalingSpec {
            max_replicas: 5,
            max_scale_up_step: 12,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    );
    let d = decision_for(&capped, 1, 3_000.0, 3_500.0);
    assert_eq!(d.replicas, 4, "{}", d.reason);
    assert!(d.at_max);
}

#[test]
fn replicas_stay_within_min_max_and_partitions() {
    for (min, max) in [(1, 12), (2, 5), (3, 30), (20, 40), (1, 1)] {
        let spec = spec_with(
            AutoscalingSpec {
                min_replicas: min,
                max_replicas: max,
                max_scale_up_step: 40,
                ..AutoscalingSpec::default()
            },
            AutotuneSpec::default(),
        );
        let upper = (max as u32).min(12);
        let lower = (min as u32).min(upper);
        for from in [1u32, 4, 12, 25] {
            for demand in [0.0, 10.0, 700.0, 3_000.0, 50_000.0] {
                let d = decision_for(&spec, from, demand, 2_000.0);
                assert!(
                    (lower..=upper).contains(&d.replicas),
                    "min {min} max {max} from {from} demand {demand}: {} ({})",
                    d.replicas,
                    d.reason
                );
            }
        }
    }
}

#[test]
fn a_stuck_partition_is_reported_and_its_lag_left_out() {
    let mut b = Bench::new(spec());
    b.tick(100.0, 2_000.0, &[]);
    let mut d = b.tick(100.0, 2_000.0, &[3]);
    for _ in 0..2 {
        assert!(d.stuck_partitions.is_empty());
        d = b.tick(100.0, 2_000.0, &[3]);
    }
    assert_eq!(d.stuck_partitions, vec![3], "{}", d.reason);
    assert_reason(&d, "stuck partitions [3]");
    // A burst that lands only on the stuck partition does not scale.
    b.hw[3] += 10_000_000;
    let d = b.tick(100.0, 2_000.0, &[3]);
    assert_eq!(d.stuck_partitions, vec![3]);
    assert_eq!(d.replicas, 1, "{}", d.reason);
    assert!(
        d.lag.total >= 10_000_000 && d.lag.healthy < 10_000,
        "{:?}",
        d.lag
    );
    // The same burst on a partition that moves scales at once.
    let mut fresh = Bench::new(spec());
    fresh.tick(100.0, 2_000.0, &[]);
    fresh.tick(100.0, 2_000.0, &[]);
    fresh.hw[3] += 10_000_000;
    assert_eq!(fresh.tick(100.0, 2_000.0, &[]).direction, Direction::Up);
}

#[test]
fn no_scale_down_for_a_scale_down_window_after_a_partition_is_first_stuck() {
    // A partition a busy pod serves only now and then (beside a hot one)
    // looks stuck for a while; the replicas must not come down on its
    // backlog leaving the demand, only to go back up when it moves again.
    let spec = spec_with(
        AutoscalingSpec {
            scale_down_stabilization_seconds: 60,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    );
    let run = |freeze: bool| {
        let mut b = Bench::new(spec.clone());
        b.state = quiet(&[0; 12], 2_000.0);
        b.hw = vec![1_000_000; 12];
        b.committed = vec![1_000_000; 12];
        b.replicas = 4;
        b.hw[3] += 5_000;
        let frozen: &[usize] = if freeze { &[3] } else { &[] };
        (0..12)
            .map(|_| {
                let d = b.tick(100.0, 2_000.0, frozen);
                b.replicas = d.replicas;
                d
            })
            .collect::<Vec<_>>()
    };
    let frozen = run(true);
    let stuck_at = frozen
        .iter()
        .position(|d| d.stuck_partitions == vec![3])
        .expect("partition 3 is reported stuck");
    assert_reason(&frozen[stuck_at], "partitions [3] stuck less than 60s");
    // Without the stuck partition the idle pods go on coming down there.
    let free = run(false);
    assert!(free[stuck_at].replicas < frozen[stuck_at].replicas);
    // With it nothing comes down for the next 60 s (four decisions), then
    // the pods do.
    let down = (stuck_at + 1..frozen.len())
        .find(|&k| frozen[k].replicas < frozen[k - 1].replicas)
        .expect("the pods come down after the window");
    assert_eq!(down, stuck_at + 4, "{}", frozen[down].reason);
}

#[test]
fn a_partition_back_from_stuck_does_not_look_like_the_lag_growing() {
    // Nothing is produced; partition 3 was stuck with a backlog and moves
    // again. The healthy lag total jumps by its backlog, yet the lag only
    // drains.
    let mut b = Bench::new(spec());
    b.hw[3] = 300_000;
    b.tick(0.0, 2_000.0, &[]);
    for _ in 0..3 {
        b.tick(0.0, 2_000.0, &[3]);
    }
    // The decision that counts it again.
    let d = b.tick(0.0, 2_000.0, &[]);
    assert!(d.stuck_partitions.is_empty(), "{}", d.reason);
    let rate = d
        .limited
        .lag_rate
        .expect("a second decision knows the rate");
    assert!(rate < 0.0, "lag rate {rate}: {}", d.reason);
    assert!(!d.reason.contains("lag growing"), "{}", d.reason);
}

#[test]
fn an_unassigned_partition_is_not_stuck() {
    let mut b = Bench::new(spec());
    b.assigned[3] = false;
    b.tick(100.0, 2_000.0, &[]);
    for _ in 0..6 {
        let d = b.tick(100.0, 2_000.0, &[3]);
        assert!(d.stuck_partitions.is_empty(), "{}", d.reason);
    }
}

#[test]
fn without_a_committed_offset_lag_counts_from_the_log_start() {
    let obs = Observation {
        partitions: vec![
            PartitionObservation {
                partition: 0,
                committed: None,
                high_watermark: 1_500,
                log_start: 1_000,
                uncommitted_start: None,
                assigned: true,
            },
            // Committed below the log start (retention removed it): the group
            // restarts at the log start too.
            PartitionObservation {
                partition: 1,
                committed: Some(10),
                high_watermark: 2_000,
                log_start: 1_900,
                uncommitted_start: None,
                assigned: true,
            },
        ],
        pods: vec![],
        replicas: 1,
        limits: spec().start_limits,
        failing: vec![],
    };
    let (d, _) = decide(&spec(), &obs, &PolicyState::default(), 0);
    assert_eq!(d.lag.total, 600);
    assert_eq!(d.lag.max_partition, 500);
}

#[test]
fn with_latest_lag_counts_from_where_the_group_started_not_the_log_start() {
    let obs = Observation {
        partitions: vec![
            // 1M records before the consumer existed are never read: not lag.
            PartitionObservation {
                partition: 0,
                committed: None,
                high_watermark: 1_000_300,
                log_start: 0,
                uncommitted_start: Some(1_000_000),
                assigned: true,
            },
            // Once committed, the committed offset counts.
            PartitionObservation {
                partition: 1,
                committed: Some(1_000_050),
                high_watermark: 1_000_100,
                log_start: 0,
                uncommitted_start: Some(1_000_000),
                assigned: true,
            },
        ],
        pods: vec![],
        replicas: 1,
        limits: spec().start_limits,
        failing: vec![],
    };
    let (d, _) = decide(&spec(), &obs, &PolicyState::default(), 0);
    assert_eq!(d.lag.total, 350);
    assert_eq!(d.lag.max_partition, 300);
}

#[test]
fn paused_keeps_the_replicas() {
    let paused = spec_with(
        AutoscalingSpec {
            paused: true,
            ..AutoscalingSpec::default()
        },
        AutotuneSpec::default(),
    );
    for from in [1, 3, 12] {
        let d = decision_for(&paused, from, 50_000.0, 1_000.0);
        assert_eq!((d.replicas, d.direction), (from, Direction::Hold));
        assert!(d.paused && d.reason.contains("paused"), "{}", d.reason);
    }
}

#[test]
fn identical_inputs_give_identical_decisions_even_after_a_failover() {
    let drive = |b: &mut Bench| {
        b.tick(100.0, 1_200.0, &[]);
        b.tick(2_000.0, 1_000.0, &[]);
        b.tick(2_000.0, 1_000.0, &[5]);
    };
    let mut a = Bench::new(spec());
    let mut b = Bench::new(spec());
    drive(&mut a);
    drive(&mut b);
    // b's state goes through JSON, as a new leader reads it back.
    let json = serde_json::to_string(&b.state).unwrap();
    b.state = serde_json::from_str(&json).unwrap();
    assert_eq!(a.state, b.state);
    for _ in 0..30 {
        assert_eq!(a.tick(1_500.0, 900.0, &[5]), b.tick(1_500.0, 900.0, &[5]));
    }
    // And one call twice on the same inputs.
    let s = spec();
    assert_eq!(
        decision_for(&s, 3, 800.0, 2_000.0),
        decision_for(&s, 3, 800.0, 2_000.0)
    );
}
