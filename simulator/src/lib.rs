//! `millpond-simulator`: replays the operator's policy
//! ([`millpond_operator::policy::decide`]), and a KEDA-style baseline
//! ([`keda`]), on workload traces; `millpond-simulate` is its command, and
//! the e2e tools draw their timelines with its [`svg`].
//!
//! A [`Workload`] is a produce rate over time on a topic, optionally with a
//! partition that stops being consumed. [`run`] steps a simulated group of
//! consumer pods ([`cluster`]) one second at a time, lets the chosen policy
//! decide every interval from what the operator would observe, applies its
//! replicas and limits, and records a [`Trace`] with a per-decision table and
//! a [`Summary`].
//!
//! Summary metrics, all over the whole run:
//!
//! * **time to drain**: the longest stretch during which the lag of the
//!   healthy (not stuck) partitions stayed above [`BEHIND_SECONDS`] of
//!   production at the current produce rate: how long it took to catch up
//!   with the worst backlog;
//! * **time behind**: the total of such stretches;
//! * **replica-seconds**: pods running, summed over every second;
//! * **scale events**: changes of the replica count;
//! * **flaps**: scale events that reverse the previous one's direction less
//!   than [`FLAP_WINDOW_SECONDS`] after it.

pub mod cluster;
pub mod keda;
pub mod report;
pub mod svg;

use millpond_core::budget::{self, BudgetRequest};
use millpond_crds::{AutoscalingSpec, AutotuneSpec, LimitsSpec};

use cluster::{Cluster, Physics};
use keda::{KedaSpec, KedaState};
use millpond_operator::policy::{self, PolicySpec, PolicyState, TunedLimits};

/// Lag above this many seconds of production counts as behind.
pub const BEHIND_SECONDS: f64 = 15.0;
/// A reversal of direction within this window is a flap.
pub const FLAP_WINDOW_SECONDS: u64 = 300;

/// How the produce rate moves, records/s.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `base`, then `peak` from `from` to `until` seconds, then `base`.
    Step {
        /// Rate outside the burst.
        base: f64,
        /// Rate during the burst.
        peak: f64,
        /// Start of the burst, seconds.
        from: u64,
        /// End of the burst, seconds.
        until: u64,
    },
    /// `mean − amplitude × cos(2πt / period)`: starts at the trough.
    Sine {
        /// Mean rate.
        mean: f64,
        /// Swing either side of the mean.
        amplitude: f64,
        /// Seconds per cycle.
        period: u64,
    },
    /// The same rate throughout.
    Constant(f64),
}

impl Shape {
    /// The produce rate at second `t`.
    pub fn rate(&self, t: u64) -> f64 {
        match *self {
            Shape::Step {
                base,
                peak,
                from,
                until,
            } => {
                if (from..until).contains(&t) {
                    peak
                } else {
                    base
                }
            }
            Shape::Sine {
                mean,
                amplitude,
                period,
            } => {
                let phase = 2.0 * std::f64::consts::PI * t as f64 / period.max(1) as f64;
                (mean - amplitude * phase.cos()).max(0.0)
            }
            Shape::Constant(rate) => rate,
        }
    }
}

/// A produce trace and what goes wrong in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Short name (`step`, `sine`, `stuck`).
    pub name: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// Seconds simulated.
    pub duration: u64,
    /// Produce rate over time.
    pub shape: Shape,
    /// `(partition, from second)`: that partition is never consumed again.
    pub stuck: Option<(u32, u64)>,
    /// Pods running at the start (the group starts caught up).
    pub start_replicas: u32,
}

/// The three workloads of `docs/autoscaling.md`.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "step",
            title: "step burst: 4k/s, 40k/s for 5 minutes, back to 4k/s",
            duration: 1_800,
            shape: Shape::Step {
                base: 4_000.0,
                peak: 40_000.0,
                from: 120,
                until: 420,
            },
            stuck: None,
            start_replicas: 1,
        },
        Workload {
            name: "sine",
            title: "sine wave: 4k/s to 36k/s and back every 20 minutes, for an hour",
            duration: 3_600,
            shape: Shape::Sine {
                mean: 20_000.0,
                amplitude: 16_000.0,
                period: 1_200,
            },
            stuck: None,
            start_replicas: 1,
        },
        Workload {
            name: "stuck",
            title:
                "stuck partition: 12k/s steady on 3 pods, partition 5 stops moving after 5 minutes",
            duration: 1_800,
            shape: Shape::Constant(12_000.0),
            stuck: Some((5, 300)),
            start_replicas: 3,
        },
    ]
}

/// The workload called `name`.
pub fn workload(name: &str) -> Option<Workload> {
    workloads().into_iter().find(|w| w.name == name)
}

/// Which policy drives the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// [`policy::decide`] with autotune.
    Millpond,
    /// [`policy::decide`] with autotune disabled: the pods keep their
    /// starting limits, as under the baseline.
    MillpondFixedLimits,
    /// [`keda::decide`]: lag threshold per replica and the HPA's defaults.
    Keda,
}

impl PolicyKind {
    /// Every policy, in report order.
    pub const ALL: [PolicyKind; 3] = [
        PolicyKind::Millpond,
        PolicyKind::MillpondFixedLimits,
        PolicyKind::Keda,
    ];

    /// Name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Millpond => "millpond",
            PolicyKind::MillpondFixedLimits => "millpond-fixed-limits",
            PolicyKind::Keda => "keda",
        }
    }
}

/// Everything a run depends on besides the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// The simulated pods and sink.
    pub physics: Physics,
    /// `spec.autoscaling` of the simulated `MillpondConsumer`.
    pub autoscaling: AutoscalingSpec,
    /// `spec.autotune`.
    pub autotune: AutotuneSpec,
    /// `spec.limits`: what the pods start with (and keep without autotune).
    pub limits: LimitsSpec,
    /// Memory budget of a pod, bytes.
    pub memory: u64,
    /// Memory the sink needs per batch byte (HTTP sink: 2).
    pub sink_factor: f64,
    /// Seconds between two decisions of the operator.
    pub interval: u64,
    /// The baseline's settings.
    pub keda: KedaSpec,
}

impl Default for Setup {
    fn default() -> Self {
        let autoscaling = AutoscalingSpec::default();
        Self {
            physics: Physics {
                partitions: 12,
                record_bytes: 1024.0,
                cpu_records_per_second: 10_000.0,
                sink_base_latency: 0.2,
                sink_write_bandwidth: 40.0 * 1024.0 * 1024.0,
                flush_interval: 5.0,
                rebalance_pause: 10,
            },
            keda: KedaSpec::defaults(
                10_000.0,
                autoscaling.min_replicas as u32,
                autoscaling.max_replicas as u32,
            ),
            autoscaling,
            autotune: AutotuneSpec::default(),
            limits: LimitsSpec {
                flush_bytes: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "512Ki".into(),
                )),
                max_in_flight: 2,
                ..LimitsSpec::default()
            },
            memory: 256 << 20,
            sink_factor: 2.0,
            interval: 15,
        }
    }
}

impl Setup {
    /// The policy spec the operator would build for this setup.
    pub fn policy_spec(&self, autotune: bool) -> PolicySpec {
        let plan = budget::plan(&BudgetRequest {
            budget: self.memory,
            partitions: self.physics.partitions,
            max_in_flight: self.limits.max_in_flight.max(1) as u32,
            flush_bytes: self.limits.flush_bytes().expect("flush bytes"),
            queued_max_messages_kbytes: None,
            fetch_max_bytes: None,
            max_partition_fetch_bytes: None,
            sink_factor: self.sink_factor,
        })
        .expect("the simulated spec fits its memory budget");
        let tune = AutotuneSpec {
            enabled: autotune,
            ..self.autotune.clone()
        };
        PolicySpec::new(&self.autoscaling, &tune, &self.limits, &plan).expect("valid spec")
    }
}

/// One decision of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct TickRow {
    /// Second of the run.
    pub t: u64,
    /// Produce rate now, records/s.
    pub produce: f64,
    /// Lag of every partition.
    pub lag: f64,
    /// Lag of the partitions that are not stuck.
    pub healthy_lag: f64,
    /// Replicas decided.
    pub replicas: u32,
    /// Flush size decided.
    pub flush_bytes: u64,
    /// In-flight writes decided.
    pub max_in_flight: u32,
    /// Why.
    pub reason: String,
}

/// One second of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Second of the run.
    pub t: u64,
    /// Produce rate, records/s.
    pub produce: f64,
    /// Lag of every partition.
    pub lag: f64,
    /// Lag of the partitions that are not stuck.
    pub healthy_lag: f64,
    /// Pods running.
    pub replicas: u32,
    /// Flush size in force.
    pub flush_bytes: u64,
    /// In-flight writes in force.
    pub max_in_flight: u32,
}

/// The figures a run is judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Longest stretch behind, seconds (see the module docs).
    pub time_to_drain: u64,
    /// Seconds behind in total.
    pub time_behind: u64,
    /// Pods × seconds.
    pub replica_seconds: u64,
    /// Changes of the replica count.
    pub scale_events: u32,
    /// Reversals within [`FLAP_WINDOW_SECONDS`].
    pub flaps: u32,
    /// Most pods at once.
    pub max_replicas: u32,
    /// Highest lag of the healthy partitions.
    pub peak_lag: f64,
    /// Stuck partitions the policy reported at the end (the baseline reports none).
    pub stuck_reported: Vec<i32>,
}

/// A run: what was decided and what happened.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The workload.
    pub workload: Workload,
    /// The policy.
    pub policy: PolicyKind,
    /// One row per decision.
    pub ticks: Vec<TickRow>,
    /// One sample per second.
    pub samples: Vec<Sample>,
    /// The figures.
    pub summary: Summary,
}

/// Runs `workload` under `kind`.
pub fn run(workload: &Workload, kind: PolicyKind, setup: &Setup) -> Trace {
    let spec = setup.policy_spec(kind == PolicyKind::Millpond);
    let (lower, upper) = spec.replica_bounds(setup.physics.partitions);
    let start_replicas = workload.start_replicas.clamp(lower, upper);
    let mut cluster = Cluster::new(
        setup.physics.clone(),
        start_replicas,
        spec.start_limits,
        workload.stuck,
    );
    // Both policies start as if they had just scaled to the starting count:
    // neither scales down within its first stabilization window.
    let mut state = PolicyState {
        last_scale_up_ms: Some(0),
        ..PolicyState::default()
    };
    let mut keda_state = KedaState {
        recommendations: vec![(0, start_replicas)],
        ..KedaState::default()
    };
    let mut ticks = Vec::new();
    let mut samples = Vec::with_capacity(workload.duration as usize);
    let mut stuck_reported = Vec::new();
    let interval = match kind {
        PolicyKind::Keda => setup.keda.sync_period_ms / 1000,
        _ => setup.interval,
    }
    .max(1);
    for t in 0..workload.duration {
        if t % interval == 0 {
            let obs = cluster.observe(t);
            let (replicas, limits, reason) = match kind {
                PolicyKind::Keda => {
                    let (d, next) = keda::decide(&setup.keda, &obs, &keda_state, t * 1000);
                    keda_state = next;
                    (d.replicas, cluster.limits(), d.reason)
                }
                _ => {
                    let (d, next) = policy::decide(&spec, &obs, &state, t * 1000);
                    state = next;
                    stuck_reported = d.stuck_partitions.clone();
                    let reason = match &d.tuning {
                        Some(tuning) => format!("{}; {tuning}", d.reason),
                        None => d.reason.clone(),
                    };
                    (d.replicas, d.limits, reason)
                }
            };
            if replicas != cluster.replicas() {
                cluster.rescale(replicas, t, true);
            }
            cluster.set_limits(limits);
            let (lag, healthy_lag) = cluster.lags(t);
            ticks.push(TickRow {
                t,
                produce: workload.shape.rate(t),
                lag,
                healthy_lag,
                replicas,
                flush_bytes: limits.flush_bytes,
                max_in_flight: limits.max_in_flight,
                reason,
            });
        }
        let rate = workload.shape.rate(t);
        cluster.step(t, rate);
        let (lag, healthy_lag) = cluster.lags(t);
        let limits: TunedLimits = cluster.limits();
        samples.push(Sample {
            t,
            produce: rate,
            lag,
            healthy_lag,
            replicas: cluster.replicas(),
            flush_bytes: limits.flush_bytes,
            max_in_flight: limits.max_in_flight,
        });
    }
    let summary = summarize(&samples, stuck_reported);
    Trace {
        workload: workload.clone(),
        policy: kind,
        ticks,
        samples,
        summary,
    }
}

/// The figures of a run from its samples.
pub fn summarize(samples: &[Sample], stuck_reported: Vec<i32>) -> Summary {
    let mut summary = Summary {
        time_to_drain: 0,
        time_behind: 0,
        replica_seconds: 0,
        scale_events: 0,
        flaps: 0,
        max_replicas: 0,
        peak_lag: 0.0,
        stuck_reported,
    };
    let mut stretch = 0u64;
    let mut last_event: Option<(u64, bool)> = None;
    let mut previous = samples.first().map(|s| s.replicas);
    for s in samples {
        summary.replica_seconds += s.replicas as u64;
        summary.max_replicas = summary.max_replicas.max(s.replicas);
        summary.peak_lag = summary.peak_lag.max(s.healthy_lag);
        if s.healthy_lag > s.produce * BEHIND_SECONDS && s.healthy_lag >= 1.0 {
            stretch += 1;
            summary.time_behind += 1;
            summary.time_to_drain = summary.time_to_drain.max(stretch);
        } else {
            stretch = 0;
        }
        if let Some(p) = previous.filter(|&p| p != s.replicas) {
            let up = s.replicas > p;
            summary.scale_events += 1;
            if let Some((at, was_up)) = last_event {
                if was_up != up && s.t - at < FLAP_WINDOW_SECONDS {
                    summary.flaps += 1;
                }
            }
            last_event = Some((s.t, up));
        }
        previous = Some(s.replicas);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millpond_drains_no_slower_than_the_baseline_with_fewer_pods_and_events() {
        let setup = Setup::default();
        for w in workloads() {
            let keda = run(&w, PolicyKind::Keda, &setup).summary;
            let ours = run(&w, PolicyKind::Millpond, &setup).summary;
            let name = format!("{}: {ours:?} vs keda {keda:?}", w.name);
            assert!(ours.time_to_drain <= keda.time_to_drain, "drain: {name}");
            assert!(ours.replica_seconds < keda.replica_seconds, "cost: {name}");
            assert!(ours.scale_events < keda.scale_events, "events: {name}");
            assert_eq!(ours.flaps, 0, "flaps: {name}");
        }
    }

    #[test]
    fn with_fixed_limits_millpond_still_drains_no_slower_and_never_flaps() {
        // Without autotune the pods are as slow as the baseline's; the policy
        // alone keeps up at least as well and without flapping (it may spend
        // more pods: see docs/autoscaling.md).
        let setup = Setup::default();
        for w in workloads() {
            let keda = run(&w, PolicyKind::Keda, &setup).summary;
            let ours = run(&w, PolicyKind::MillpondFixedLimits, &setup).summary;
            let name = format!("{}: {ours:?} vs keda {keda:?}", w.name);
            assert!(ours.time_to_drain <= keda.time_to_drain, "drain: {name}");
            assert!(ours.time_behind <= keda.time_behind, "behind: {name}");
            assert_eq!(ours.flaps, 0, "flaps: {name}");
        }
    }

    #[test]
    fn the_stuck_partition_is_reported_and_does_not_drive_scale_up() {
        let setup = Setup::default();
        let w = workload("stuck").unwrap();
        let trace = run(&w, PolicyKind::Millpond, &setup);
        assert_eq!(trace.summary.stuck_reported, vec![5]);
        assert!(trace.summary.max_replicas < 12, "{:?}", trace.summary);
    }

    #[test]
    fn a_run_is_reproducible() {
        let setup = Setup::default();
        let w = workload("sine").unwrap();
        let a = run(&w, PolicyKind::Millpond, &setup);
        let b = run(&w, PolicyKind::Millpond, &setup);
        assert_eq!(a.ticks, b.ticks);
        assert_eq!(a.summary, b.summary);
    }
}
