//! Flush size and in-flight tuning: additive increase while the sink keeps
//! up, multiplicative decrease when it does not, always inside the autotune
//! bounds and the memory budget. What grows depends on where the pods are
//! limited ([`super::limited`]):
//!
//! * **sink-bound** (full buffers, busy permits) with the sink's latency
//!   flat: one in-flight permit more *and* flushes ×1.5 (when flushes are
//!   size-triggered) per interval, the sink's own levers, tried before more
//!   pods. When both are at their bounds, or the last step did not raise the
//!   pods' rate by [`TUNE_HELPS`], tuning says why it cannot help
//!   ([`Tuned::spent`]) and the pods are the lever;
//! * **consume-bound** (busy pods, buffers not full): flushes do not grow
//!   (the sink is not what holds the pods back); a permit is added only
//!   while the pods wait for one ([`BACKPRESSURE_SHARE`] of the interval),
//!   not because every permit is in use;
//! * **keeping up**: flushes ×1.5 while they are size-triggered, nothing
//!   waits for a permit and at least [`KEEP_UP_SATURATION`] of the permits
//!   are in use (fewer, larger writes cost a busy sink less; for an idle
//!   sink a larger flush only delays commits); a permit more while the pods
//!   wait for one;
//! * **idle** (no backlog, the buffer does not fill): one permit given back
//!   per interval, down to the permits the spec starts with, while at least
//!   one stands unused;
//! * whatever the verdict, both limits are halved when the sink's latency
//!   rises by half or it returns errors, then held for a few intervals;
//! * except while the sink is down, and for the interval it comes back in
//!   ([`held`]): its errors and latency then say nothing of what it can
//!   take, so nothing grows, nothing is cut and nothing is learnt.
//!
//! "Flat" compares the mean flush duration with a reference learnt at the
//! limits in force. A larger flush is expected to take at most
//! proportionally longer; a write that takes 1.5× that expectation means the
//! sink is struggling.

use millpond_core::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use millpond_core::quantity::format_bytes;
use serde::{Deserialize, Serialize};

use crate::bottleneck::{Bottleneck, Signals, BACKPRESSURE_SHARE, SATURATED_IN_FLIGHT};
use crate::model::{Observation, PolicySpec, TuneBounds, TunedLimits};
use crate::words::human;

/// Flush size factor per growth step.
pub const GROW_FLUSH: f64 = 1.5;
/// Mean flush duration above this multiple of the expected one is a rise.
pub const LATENCY_RISE: f64 = 1.5;
/// Mean flush duration up to this multiple of the expected one is flat.
pub const LATENCY_FLAT: f64 = 1.2;
/// Share of size-triggered flushes above which flushes count as size-triggered.
pub const SIZE_TRIGGERED_SHARE: f64 = 0.5;
/// Intervals without growth after a cut, or after a step that did not help.
pub const HOLD_AFTER_CUT: u32 = 3;
/// A growth step for sink-bound pods helps when their rate rises by this share.
pub const TUNE_HELPS: f64 = 0.1;
/// Flushes grow for pods that keep up only while at least this share of
/// their permits is in use: a sink that idles gains nothing from fewer,
/// larger writes, and a larger flush delays every commit.
pub const KEEP_UP_SATURATION: f64 = 0.5;
/// Weight of a new sample in the latency reference.
const REFERENCE_WEIGHT: f64 = 0.2;

/// What tuning remembers between intervals.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TuneState {
    /// Mean flush duration (seconds) learnt at `reference_flush_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_seconds: Option<f64>,
    /// Flush size the reference was learnt at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_flush_bytes: Option<u64>,
    /// Intervals left before limits may grow again after a cut.
    #[serde(default)]
    pub hold: u32,
    /// Records/s of the sink-bound pods when tuning last grew their limits,
    /// to tell next interval whether it helped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grown_at_rate: Option<f64>,
}

/// One tuning step.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned {
    /// Limits for the next interval.
    pub limits: TunedLimits,
    /// Why they changed; `None` when they did not.
    pub why: Option<String>,
    /// What to keep.
    pub state: TuneState,
    /// The limits grew for sink-bound pods: they will be faster next interval.
    pub growing: bool,
    /// Why tuning cannot make sink-bound pods faster now (at its bounds,
    /// latency not flat, held, the last step did not help); `None` when it
    /// can, or when the pods are not sink-bound.
    pub spent: Option<String>,
}

/// The sink's behaviour over the interval, summed over the pods.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SinkSignals {
    flushes: u64,
    size_share: f64,
    mean_flush_seconds: f64,
    errors: u64,
    backpressure_share: f64,
    saturation: f64,
}

/// A share in [0, 1]; nonsense reads as 0.
fn share(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn signals(obs: &Observation, interval_seconds: f64) -> Option<SinkSignals> {
    let flushes: u64 = obs.pods.iter().map(|p| p.flushes).sum();
    let timed: Vec<_> = obs
        .pods
        .iter()
        .filter_map(|p| {
            p.flush_seconds
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(|s| (s, p.flushes.max(1) as f64))
        })
        .collect();
    if flushes == 0 || timed.is_empty() || obs.pods.is_empty() {
        return None;
    }
    let weight: f64 = timed.iter().map(|(_, w)| w).sum();
    let pods = obs.pods.len() as f64;
    Some(SinkSignals {
        flushes,
        size_share: obs.pods.iter().map(|p| p.size_flushes).sum::<u64>() as f64 / flushes as f64,
        mean_flush_seconds: timed.iter().map(|(s, w)| s * w).sum::<f64>() / weight,
        errors: obs.pods.iter().map(|p| p.errors).sum(),
        backpressure_share: obs
            .pods
            .iter()
            .map(|p| share(p.backpressure_seconds / interval_seconds.max(1e-3)))
            .sum::<f64>()
            / pods,
        saturation: obs
            .pods
            .iter()
            .map(|p| share(p.in_flight_saturation))
            .sum::<f64>()
            / pods,
    })
}

/// Largest flush size allowed with `in_flight` permits.
fn flush_ceiling(bounds: &TuneBounds, budget: &BudgetPlan, in_flight: u32) -> u64 {
    let budget_max = budget.max_flush_bytes(in_flight);
    bounds
        .max_flush_bytes
        .map_or(budget_max, |b| b.min(budget_max))
}

/// Smallest flush size allowed.
fn flush_floor(bounds: &TuneBounds) -> u64 {
    bounds.min_flush_bytes.max(MIN_FLUSH_BYTES)
}

/// Puts `limits` inside the bounds and the budget. The budget wins over the
/// lower bounds: permits go first, then the flush size.
pub fn clamp(limits: TunedLimits, bounds: &TuneBounds, budget: &BudgetPlan) -> TunedLimits {
    let mut in_flight = limits.max_in_flight.clamp(
        bounds.min_in_flight,
        bounds.max_in_flight.max(bounds.min_in_flight),
    );
    while in_flight > 1 && flush_ceiling(bounds, budget, in_flight) < flush_floor(bounds) {
        in_flight -= 1;
    }
    let ceiling = flush_ceiling(bounds, budget, in_flight);
    let flush_bytes = limits
        .flush_bytes
        .max(flush_floor(bounds))
        .min(ceiling)
        .max(MIN_FLUSH_BYTES.min(ceiling));
    TunedLimits {
        flush_bytes,
        max_in_flight: in_flight,
    }
}

/// `flushBytes 512Ki → 768Ki, maxInFlight 2 → 3`: what moved from `a` to `b`.
fn changes(a: TunedLimits, b: TunedLimits) -> String {
    let mut parts = Vec::new();
    if a.max_in_flight != b.max_in_flight {
        parts.push(format!(
            "maxInFlight {} → {}",
            a.max_in_flight, b.max_in_flight
        ));
    }
    if a.flush_bytes != b.flush_bytes {
        parts.push(format!(
            "flushBytes {} → {}",
            format_bytes(a.flush_bytes),
            format_bytes(b.flush_bytes)
        ));
    }
    parts.join(", ")
}

/// A step: the limits after it, why, and (when nothing grew) why not.
struct Step {
    limits: TunedLimits,
    why: Option<String>,
    blocked: Option<String>,
}

impl Step {
    fn none(limits: TunedLimits, blocked: Option<String>) -> Self {
        Self {
            limits,
            why: None,
            blocked,
        }
    }
}

impl Tuned {
    /// The limits as they are (`why` when they had to move inside the
    /// bounds), with `state` to keep.
    fn kept(limits: TunedLimits, why: Option<String>, state: TuneState) -> Self {
        Tuned {
            limits,
            why,
            state,
            growing: false,
            spent: None,
        }
    }
}

/// `current` inside the bounds and the budget, and why it moved, if it did.
fn inside(
    current: TunedLimits,
    bounds: &TuneBounds,
    budget: &BudgetPlan,
) -> (TunedLimits, Option<String>) {
    let start = clamp(current, bounds, budget);
    let why = (start != current).then(|| {
        format!(
            "limits moved inside the autotune bounds and the memory budget: {}",
            changes(current, start)
        )
    });
    (start, why)
}

/// No step while the sink is down, nor for the interval it comes back in:
/// the limits stay (inside the bounds and the budget), and the latency
/// reference and the memory of the last growth are not fed the outage.
pub fn held(spec: &PolicySpec, obs: &Observation, prev: &TuneState) -> Tuned {
    let Some(bounds) = spec.autotune.as_ref() else {
        return Tuned::kept(obs.limits, None, TuneState::default());
    };
    let (limits, why) = inside(obs.limits, bounds, &spec.budget);
    let state = TuneState {
        grown_at_rate: None,
        ..prev.clone()
    };
    Tuned::kept(limits, why, state)
}

/// One tuning step for the pods of `obs`, limited as `limited` says.
pub fn tune(
    spec: &PolicySpec,
    obs: &Observation,
    interval_seconds: Option<f64>,
    prev: &TuneState,
    limited: &Signals,
) -> Tuned {
    if limited.bottleneck == Bottleneck::SinkDown {
        return held(spec, obs, prev);
    }
    let current = obs.limits;
    let Some(bounds) = spec.autotune.as_ref() else {
        return Tuned::kept(current, None, TuneState::default());
    };
    let budget = &spec.budget;
    let (start, clamped) = inside(current, bounds, budget);
    let Some(s) = interval_seconds.and_then(|dt| signals(obs, dt)) else {
        return Tuned::kept(start, clamped, prev.clone());
    };

    // Expected duration of a flush of the current size.
    let expected = prev.reference_seconds.map(|r| {
        let grown = prev.reference_flush_bytes.map_or(1.0, |b| {
            (current.flush_bytes as f64 / b.max(1) as f64).max(1.0)
        });
        r * grown
    });
    if s.errors > 0 || expected.is_some_and(|e| s.mean_flush_seconds > e * LATENCY_RISE) {
        return cut(start, bounds, budget, &s, expected, limited);
    }
    let flat = expected.is_none_or(|e| s.mean_flush_seconds <= e * LATENCY_FLAT);
    let mut state = prev.clone();
    state.grown_at_rate = None;
    let step = if prev.hold > 0 {
        state.hold = prev.hold - 1;
        let why = format!(
            "tuning paused for {} more interval{} (after a cut, or a step that did not help)",
            prev.hold,
            if prev.hold == 1 { "" } else { "s" }
        );
        Step::none(start, Some(why))
    } else if let Some(why) = stalled(prev, limited) {
        state.hold = HOLD_AFTER_CUT;
        Step::none(start, Some(why))
    } else {
        grow(start, bounds, budget, &s, flat, limited, spec.start_limits)
    };
    let grew = step.limits.flush_bytes > start.flush_bytes
        || step.limits.max_in_flight > start.max_in_flight;
    let sink_bound = limited.bottleneck == Bottleneck::SinkBound;
    if grew && sink_bound {
        state.grown_at_rate = Some(limited.rate);
    }

    learn_reference(&mut state, prev, current.flush_bytes, s.mean_flush_seconds);
    Tuned {
        limits: step.limits,
        why: step.why.or(clamped),
        state,
        growing: grew && sink_bound,
        spent: (sink_bound && !grew).then(|| step.blocked.unwrap_or_default()),
    }
}

/// Learns the mean flush duration at `flush_bytes`, the size in force.
fn learn_reference(state: &mut TuneState, prev: &TuneState, flush_bytes: u64, seconds: f64) {
    state.reference_seconds = Some(match (prev.reference_seconds, prev.reference_flush_bytes) {
        (Some(r), Some(b)) if b == flush_bytes => {
            r * (1.0 - REFERENCE_WEIGHT) + seconds * REFERENCE_WEIGHT
        }
        _ => seconds,
    });
    state.reference_flush_bytes = Some(flush_bytes);
}

/// Why the last growth for sink-bound pods did not help, if it did not.
fn stalled(prev: &TuneState, limited: &Signals) -> Option<String> {
    let before = prev.grown_at_rate?;
    (limited.bottleneck == Bottleneck::SinkBound && limited.rate < before * (1.0 + TUNE_HELPS))
        .then(|| {
            format!(
                "the last tuning step did not raise the pods' rate ({}/s → {}/s)",
                human(before),
                human(limited.rate)
            )
        })
}

/// Both limits halved: the sink struggles.
fn cut(
    start: TunedLimits,
    bounds: &TuneBounds,
    budget: &BudgetPlan,
    s: &SinkSignals,
    expected: Option<f64>,
    limited: &Signals,
) -> Tuned {
    let next = clamp(
        TunedLimits {
            flush_bytes: start.flush_bytes / 2,
            max_in_flight: (start.max_in_flight / 2).max(1),
        },
        bounds,
        budget,
    );
    let cause = if s.errors > 0 {
        format!("{} sink errors", s.errors)
    } else {
        format!(
            "sink latency rose to {:.0}ms (expected {:.0}ms)",
            s.mean_flush_seconds * 1e3,
            expected.unwrap_or_default() * 1e3
        )
    };
    let why = if next != start {
        format!("{cause}: {}", changes(start, next))
    } else {
        cause.clone()
    };
    Tuned {
        limits: next,
        why: Some(why),
        state: TuneState {
            hold: HOLD_AFTER_CUT,
            ..TuneState::default()
        },
        growing: false,
        spent: (limited.bottleneck == Bottleneck::SinkBound)
            .then(|| format!("{cause}: limits cut")),
    }
}

/// Growth, or a permit given back, by where the pods are limited.
fn grow(
    start: TunedLimits,
    bounds: &TuneBounds,
    budget: &BudgetPlan,
    s: &SinkSignals,
    flat: bool,
    limited: &Signals,
    resting: TunedLimits,
) -> Step {
    let latency = format!("sink latency flat ({:.0}ms)", s.mean_flush_seconds * 1e3);
    let waiting = s.backpressure_share >= BACKPRESSURE_SHARE;
    let pressured = waiting || s.saturation >= SATURATED_IN_FLIGHT;
    let size_triggered = s.size_share >= SIZE_TRIGGERED_SHARE;
    let changed = |next: TunedLimits, why: String| Step {
        limits: next,
        why: Some(format!("{why}: {}", changes(start, next))),
        blocked: None,
    };
    let next = match limited.bottleneck {
        Bottleneck::SinkBound if !flat => {
            let why = format!(
                "sink latency not flat ({:.0}ms)",
                s.mean_flush_seconds * 1e3
            );
            return Step::none(start, Some(why));
        }
        Bottleneck::SinkBound => {
            let next = sink_growth(start, bounds, budget, size_triggered);
            if next == start {
                return Step::none(start, Some(at_bounds(start, bounds, budget)));
            }
            return changed(next, format!("{}, {latency}", limited.describe()));
        }
        Bottleneck::Idle => return give_back(start, bounds, limited, resting),
        // Consume-bound pods get a permit only when they really wait for one.
        Bottleneck::ConsumeBound if !waiting => None,
        _ if pressured && flat => one_permit_more(start, bounds, budget),
        Bottleneck::KeepingUp | Bottleneck::Unknown
            if flat && size_triggered && !pressured && s.saturation >= KEEP_UP_SATURATION =>
        {
            let ceiling = flush_ceiling(bounds, budget, start.max_in_flight);
            let grown = ((start.flush_bytes as f64 * GROW_FLUSH) as u64).min(ceiling);
            (grown > start.flush_bytes).then_some(TunedLimits {
                flush_bytes: grown,
                ..start
            })
        }
        _ => None,
    };
    let Some(next) = next else {
        return Step::none(start, None);
    };
    let why = if next.max_in_flight > start.max_in_flight {
        let pressure = if waiting {
            format!(
                "waiting for a permit {:.0}% of the time",
                s.backpressure_share * 100.0
            )
        } else {
            format!("{:.0}% of the permits busy", s.saturation * 100.0)
        };
        format!("{}, {pressure} with {latency}", limited.describe())
    } else {
        format!(
            "{}: {:.0}% of {} flushes size-triggered, sink keeps up ({:.0}ms)",
            limited.describe(),
            s.size_share * 100.0,
            s.flushes,
            s.mean_flush_seconds * 1e3
        )
    };
    changed(next, why)
}

/// One in-flight permit more, the flush size within what the budget allows
/// with it; `None` at the bound.
fn one_permit_more(
    start: TunedLimits,
    bounds: &TuneBounds,
    budget: &BudgetPlan,
) -> Option<TunedLimits> {
    if start.max_in_flight >= bounds.max_in_flight {
        return None;
    }
    let in_flight = start.max_in_flight + 1;
    let flush_bytes = start
        .flush_bytes
        .min(flush_ceiling(bounds, budget, in_flight));
    (flush_bytes >= flush_floor(bounds)).then_some(TunedLimits {
        flush_bytes,
        max_in_flight: in_flight,
    })
}

/// One permit more and (size-triggered flushes) flushes ×1.5, inside the
/// bounds and the budget.
fn sink_growth(
    start: TunedLimits,
    bounds: &TuneBounds,
    budget: &BudgetPlan,
    size_triggered: bool,
) -> TunedLimits {
    let mut in_flight = start.max_in_flight;
    if in_flight < bounds.max_in_flight
        && flush_ceiling(bounds, budget, in_flight + 1) >= flush_floor(bounds)
    {
        in_flight += 1;
    }
    let wanted = if size_triggered {
        (start.flush_bytes as f64 * GROW_FLUSH) as u64
    } else {
        start.flush_bytes
    };
    TunedLimits {
        flush_bytes: wanted.min(flush_ceiling(bounds, budget, in_flight)),
        max_in_flight: in_flight,
    }
}

/// Why sink-bound pods cannot be tuned further.
fn at_bounds(start: TunedLimits, bounds: &TuneBounds, budget: &BudgetPlan) -> String {
    format!(
        "tuning is at its bounds (maxInFlight {} of {}, flushBytes {} of {} allowed)",
        start.max_in_flight,
        bounds.max_in_flight,
        format_bytes(start.flush_bytes),
        format_bytes(flush_ceiling(bounds, budget, start.max_in_flight))
    )
}

/// Idle pods give back one permit, down to what the spec starts with, while
/// one stands unused.
fn give_back(
    start: TunedLimits,
    bounds: &TuneBounds,
    limited: &Signals,
    resting: TunedLimits,
) -> Step {
    let floor = resting
        .max_in_flight
        .max(bounds.min_in_flight)
        .min(bounds.max_in_flight);
    let n = start.max_in_flight;
    if n <= floor || limited.busy_permits > (n - 1) as f64 {
        return Step::none(start, None);
    }
    let next = TunedLimits {
        max_in_flight: n - 1,
        ..start
    };
    Step {
        limits: next,
        why: Some(format!("{}: {}", limited.describe(), changes(start, next))),
        blocked: None,
    }
}
