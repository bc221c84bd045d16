//! Where the pods are limited, from their buffer fullness, their in-flight
//! writes and the lag, so that the policy pulls the right lever.
//!
//! A pod pulls records from Kafka into its buffer and flushes the buffer to
//! the sink with at most `maxInFlight` writes at once; when every permit is
//! taken it stops pulling, with a full buffer. So, per pod that ran the
//! whole interval (the others when none did):
//!
//! * **sink-bound**: the buffer sits full (mean fullness at least
//!   [`FULL_BUFFER`]) and the permits are busy (at least
//!   [`SATURATED_IN_FLIGHT`] of them on average, or waiting for one
//!   [`BACKPRESSURE_SHARE`] of the interval). The sink is the limit: more
//!   in-flight writes and larger flushes come before more pods;
//! * **consume-bound**: not sink-bound, and *busy*: more than
//!   [`BUSY_SECONDS`] of its own throughput waiting on its partitions that
//!   move, or waiting for permits [`BUSY_BACKPRESSURE`] of the interval. The
//!   pod cannot pull and process faster: more pods, not larger flushes;
//! * **idle**: no pod busy or waiting for permits, flushes triggered by the
//!   interval rather than by size (the buffer does not fill), the buffer
//!   under [`IDLE_FULLNESS`] and, when the capacity is known, the pod under
//!   [`IDLE_UTILIZATION`] of it: pods and in-flight permits can be given
//!   back;
//! * otherwise the pods **keep up**.
//!
//! Before all of these: when any pod reports its sink down (it takes no
//! writes; the pod retries them), the group is **sink down** ([`outage`]):
//! no lever the operator holds helps.
//!
//! The group is sink-bound when any pod is (tuning applies to every pod, and
//! a pod holding a hot partition may be the only one), else consume-bound
//! when any pod is busy, else idle when every pod is, else keeping up. The
//! figures in words (`buffer 1.0× full, 2/2 writes busy`) are the means over
//! the pods that decided.

use crate::model::{Observation, PodSample};
use crate::observed::Seen;
use crate::outage::{self, SinkOutage};
use crate::words::human;

/// Mean buffer fullness at or above which the buffer counts as full.
pub const FULL_BUFFER: f64 = 0.7;
/// Mean buffer fullness below which a pod may be idle.
pub const IDLE_FULLNESS: f64 = 0.5;
/// Share of in-flight permits in use that counts as every permit busy.
pub const SATURATED_IN_FLIGHT: f64 = 0.95;
/// Share of the interval spent waiting for a permit that counts as pressure.
pub const BACKPRESSURE_SHARE: f64 = 0.05;
/// A pod with more than this many seconds of its own throughput waiting on
/// its partitions is busy: it consumes as fast as it can.
pub const BUSY_SECONDS: f64 = 10.0;
/// A pod waiting for sink permits this share of the interval is busy.
pub const BUSY_BACKPRESSURE: f64 = 0.5;
/// Share of its capacity below which a pod may be idle.
pub const IDLE_UTILIZATION: f64 = 0.5;
/// Share of size-triggered flushes below which the buffer does not fill.
const SIZE_TRIGGERED_SHARE: f64 = 0.5;

/// Where the pods are limited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bottleneck {
    /// No pod reported.
    #[default]
    Unknown,
    /// No backlog, the buffer does not fill: capacity to give back.
    Idle,
    /// No backlog to speak of, the buffer fills but the sink keeps up.
    KeepingUp,
    /// Busy pods whose buffer does not sit full: pods are the lever.
    ConsumeBound,
    /// Full buffers and busy permits: the sink's limits are the lever.
    SinkBound,
    /// A pod's sink takes no writes: neither pods nor limits are a lever.
    SinkDown,
}

impl Bottleneck {
    /// The name shown in the status (`SinkBound`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Bottleneck::Unknown => "Unknown",
            Bottleneck::Idle => "Idle",
            Bottleneck::KeepingUp => "KeepingUp",
            Bottleneck::ConsumeBound => "ConsumeBound",
            Bottleneck::SinkBound => "SinkBound",
            Bottleneck::SinkDown => "SinkDown",
        }
    }

    /// The name in a reason (`sink-bound`, ...).
    pub fn words(self) -> &'static str {
        match self {
            Bottleneck::Unknown => "no pod reported",
            Bottleneck::Idle => "idle",
            Bottleneck::KeepingUp => "keeping up",
            Bottleneck::ConsumeBound => "consume-bound",
            Bottleneck::SinkBound => "sink-bound",
            Bottleneck::SinkDown => "sink down",
        }
    }
}

/// Where the pods are limited, and the figures that say so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The verdict.
    pub bottleneck: Bottleneck,
    /// Mean buffer fullness (buffered bytes / flushBytes) of the pods that decided.
    pub fullness: f64,
    /// Mean in-flight writes of those pods.
    pub busy_permits: f64,
    /// In-flight permits they run with.
    pub permits: u32,
    /// Mean share of the interval they waited for a permit.
    pub backpressure: f64,
    /// Mean records/s their sinks acknowledged.
    pub rate: f64,
    /// Pods busy (see the module docs), of `pods` sampled.
    pub busy_pods: usize,
    /// Pods sampled.
    pub pods: usize,
    /// Change of the healthy partitions' lag, records/s (unknown on the first decision).
    pub lag_rate: Option<f64>,
    /// The pods whose sink is down, when the verdict is [`Bottleneck::SinkDown`].
    pub outage: Option<SinkOutage>,
}

impl Signals {
    /// The verdict with its figures, for a reason:
    /// `sink-bound: buffer 1.0× full, 2/2 writes busy`.
    pub fn describe(&self) -> String {
        let buffer = format!("buffer {:.1}× full", self.fullness);
        let writes = format!("{}/{} writes busy", trim(self.busy_permits), self.permits);
        let lag = match self.lag_rate {
            Some(r) if r > 0.5 => format!(", lag growing {}/s", human(r)),
            Some(r) if r < -0.5 => format!(", lag falling {}/s", human(-r)),
            _ => String::new(),
        };
        let figures = match self.bottleneck {
            Bottleneck::Unknown => return self.bottleneck.words().to_string(),
            Bottleneck::SinkDown => match &self.outage {
                Some(outage) => outage.to_string(),
                None => String::new(),
            },
            Bottleneck::SinkBound => format!("{buffer}, {writes}{lag}"),
            Bottleneck::ConsumeBound => {
                format!("{buffer}{lag}, {}/{} pods busy", self.busy_pods, self.pods)
            }
            Bottleneck::Idle => format!("{buffer}, no backlog, {writes}"),
            Bottleneck::KeepingUp => format!("{buffer}, {writes}{lag}"),
        };
        format!("{}: {figures}", self.bottleneck.words())
    }
}

/// `3`, `2.5`: a mean count of permits.
fn trim(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 {
        format!("{:.0}", x.round())
    } else {
        format!("{x:.1}")
    }
}

/// A share in [0, 1]; nonsense reads as 0.
fn share(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A gauge as reported, with nonsense (negative, NaN, infinite) read as 0.
fn gauge(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Share of the interval `pod` waited for a permit.
fn waited(pod: &PodSample, dt: Option<f64>) -> f64 {
    dt.map_or(0.0, |dt| share(pod.backpressure_seconds / dt.max(1e-3)))
}

/// The pod's buffer sits full and its permits are busy.
fn sink_bound(pod: &PodSample, dt: Option<f64>) -> bool {
    gauge(pod.buffer_fullness) >= FULL_BUFFER
        && (share(pod.in_flight_saturation) >= SATURATED_IN_FLIGHT
            || waited(pod, dt) >= BACKPRESSURE_SHARE)
}

/// Which pods are [`busy`], in the order of `obs.pods`.
pub fn busy_pods(obs: &Observation, seen: &Seen, dt: Option<f64>) -> Vec<bool> {
    obs.pods
        .iter()
        .map(|p| busy(p, seen.moving_lag(&p.partitions), dt))
        .collect()
}

/// Whether `pod` is busy: `waiting` records lag on its partitions that
/// move, more than [`BUSY_SECONDS`] of its throughput, or it waited for
/// permits [`BUSY_BACKPRESSURE`] of the interval.
pub fn busy(pod: &PodSample, waiting: i64, dt: Option<f64>) -> bool {
    let rate = gauge(pod.delivered_rate);
    let queued = rate > 0.0 && waiting as f64 >= rate * BUSY_SECONDS;
    queued || waited(pod, dt) >= BUSY_BACKPRESSURE
}

/// The pod's buffer does not fill, nothing waits, and it works well below
/// `capacity`.
fn idle(pod: &PodSample, busy: bool, dt: Option<f64>, capacity: Option<f64>) -> bool {
    let size_share = if pod.flushes == 0 {
        0.0
    } else {
        pod.size_flushes as f64 / pod.flushes as f64
    };
    !busy
        && waited(pod, dt) < BACKPRESSURE_SHARE
        && size_share < SIZE_TRIGGERED_SHARE
        && gauge(pod.buffer_fullness) < IDLE_FULLNESS
        && capacity.is_none_or(|c| gauge(pod.delivered_rate) < c * IDLE_UTILIZATION)
}

/// Where the pods of `obs` are limited; `busy[i]` says whether pod `i` is
/// busy, `lag_rate` how the healthy lag moved, `capacity` what one pod can
/// do (when known).
pub fn classify(
    obs: &Observation,
    busy: &[bool],
    dt: Option<f64>,
    lag_rate: Option<f64>,
    capacity: Option<f64>,
) -> Signals {
    let steady = obs.pods.iter().any(|p| p.full_interval);
    let pods: Vec<(&PodSample, bool)> = obs
        .pods
        .iter()
        .zip(busy.iter().copied().chain(std::iter::repeat(false)))
        .filter(|(p, _)| p.full_interval || !steady)
        .collect();
    let busy_pods = pods.iter().filter(|(_, b)| *b).count();
    let sinking: Vec<_> = pods.iter().filter(|(p, _)| sink_bound(p, dt)).collect();
    let outage = outage::of(obs);
    let (limit, deciding): (Bottleneck, Vec<&(&PodSample, bool)>) = if outage.is_some() {
        let down = pods.iter().filter(|(p, _)| p.sink_down.is_some()).collect();
        (Bottleneck::SinkDown, down)
    } else if pods.is_empty() {
        (Bottleneck::Unknown, vec![])
    } else if !sinking.is_empty() {
        (Bottleneck::SinkBound, sinking)
    } else if busy_pods > 0 {
        (
            Bottleneck::ConsumeBound,
            pods.iter().filter(|(_, b)| *b).collect(),
        )
    } else if pods.iter().all(|(p, b)| idle(p, *b, dt, capacity)) {
        (Bottleneck::Idle, pods.iter().collect())
    } else {
        (Bottleneck::KeepingUp, pods.iter().collect())
    };
    let n = deciding.len().max(1) as f64;
    let mean = |f: &dyn Fn(&PodSample) -> f64| deciding.iter().map(|(p, _)| f(p)).sum::<f64>() / n;
    let permits = obs.limits.max_in_flight;
    Signals {
        bottleneck: limit,
        fullness: mean(&|p| gauge(p.buffer_fullness)),
        busy_permits: mean(&|p| share(p.in_flight_saturation)) * permits as f64,
        permits,
        backpressure: mean(&|p| waited(p, dt)),
        rate: mean(&|p| gauge(p.delivered_rate)),
        busy_pods,
        pods: pods.len(),
        lag_rate,
        outage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TunedLimits;

    fn pod(fullness: f64, saturation: f64, backpressure: f64, size_share: f64) -> PodSample {
        PodSample {
            partitions: vec![0],
            full_interval: true,
            delivered_rate: 1_000.0,
            buffer_fullness: fullness,
            flushes: 10,
            size_flushes: (10.0 * size_share) as u64,
            flush_seconds: Some(0.2),
            in_flight_saturation: saturation,
            errors: 0,
            backpressure_seconds: backpressure * 15.0,
            ..PodSample::default()
        }
    }

    fn classified(pods: Vec<PodSample>, busy: &[bool], lag_rate: f64) -> Signals {
        let obs = Observation {
            pods,
            limits: TunedLimits {
                flush_bytes: 1 << 20,
                max_in_flight: 3,
            },
            ..Observation::default()
        };
        classify(&obs, busy, Some(15.0), Some(lag_rate), None)
    }

    #[test]
    fn a_full_buffer_with_busy_permits_is_sink_bound() {
        let s = classified(vec![pod(1.4, 1.0, 0.6, 1.0)], &[true], 0.0);
        assert_eq!(s.bottleneck, Bottleneck::SinkBound);
        assert_eq!(
            s.describe(),
            "sink-bound: buffer 1.4× full, 3/3 writes busy"
        );
        // One sink-bound pod among idle ones decides: tuning helps it.
        let s = classified(
            vec![pod(0.1, 0.1, 0.0, 0.0), pod(1.0, 1.0, 0.3, 1.0)],
            &[false, true],
            0.0,
        );
        assert_eq!(s.bottleneck, Bottleneck::SinkBound);
    }

    #[test]
    fn a_busy_pod_whose_buffer_does_not_sit_full_is_consume_bound() {
        let s = classified(vec![pod(0.1, 0.3, 0.0, 1.0)], &[true], 12_000.0);
        assert_eq!(s.bottleneck, Bottleneck::ConsumeBound);
        assert_eq!(
            s.describe(),
            "consume-bound: buffer 0.1× full, lag growing 12k/s, 1/1 pods busy"
        );
        // Busy permits without a full buffer are not the sink's limit.
        let s = classified(vec![pod(0.4, 1.0, 0.2, 1.0)], &[true], 0.0);
        assert_eq!(s.bottleneck, Bottleneck::ConsumeBound);
    }

    #[test]
    fn an_empty_buffer_without_backlog_is_idle() {
        let s = classified(vec![pod(0.1, 0.2, 0.0, 0.0); 2], &[false, false], 0.0);
        assert_eq!(s.bottleneck, Bottleneck::Idle);
        assert_eq!(
            s.describe(),
            "idle: buffer 0.1× full, no backlog, 0.6/3 writes busy"
        );
        // A buffer that fills up to a size-triggered flush keeps up.
        let s = classified(vec![pod(0.45, 0.2, 0.0, 1.0)], &[false], 0.0);
        assert_eq!(s.bottleneck, Bottleneck::KeepingUp);
        let s = classified(vec![], &[], 0.0);
        assert_eq!(s.bottleneck, Bottleneck::Unknown);
        // A pod at most of its capacity is not idle, however empty its buffer.
        let obs = Observation {
            pods: vec![pod(0.1, 0.2, 0.0, 0.0)],
            ..Observation::default()
        };
        let s = classify(&obs, &[false], Some(15.0), Some(0.0), Some(1_500.0));
        assert_eq!(s.bottleneck, Bottleneck::KeepingUp);
        let s = classify(&obs, &[false], Some(15.0), Some(0.0), Some(4_000.0));
        assert_eq!(s.bottleneck, Bottleneck::Idle);
    }
}
