//! Flush size and in-flight tuning: additive increase while the sink keeps
//! up, multiplicative decrease when it does not, always inside the autotune
//! bounds and the memory budget.
//!
//! * in-flight writes: one more permit per interval while the pods wait for
//!   permits (backpressure) and the sink's latency stays flat;
//! * flush size: ×1.5 per interval while flushes are triggered by size (the
//!   buffer fills before the flush interval) and the sink's latency is flat,
//!   either without backpressure or with every allowed permit in use;
//! * both halved when the sink's latency rises by half or it returns errors,
//!   then held for a few intervals.
//!
//! "Flat" compares the mean flush duration with a reference learnt at the
//! limits in force. A larger flush is expected to take at most
//! proportionally longer; a write that takes 1.5× that expectation means the
//! sink is struggling.

use millpond_core::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use millpond_core::quantity::format_bytes;
use serde::{Deserialize, Serialize};

use super::{Observation, TuneBounds, TunedLimits};

/// Flush size factor per growth step.
pub const GROW_FLUSH: f64 = 1.5;
/// Mean flush duration above this multiple of the expected one is a rise.
pub const LATENCY_RISE: f64 = 1.5;
/// Mean flush duration up to this multiple of the expected one is flat.
pub const LATENCY_FLAT: f64 = 1.2;
/// Share of the interval spent waiting for a permit that counts as backpressure.
pub const BACKPRESSURE_SHARE: f64 = 0.05;
/// In-flight saturation (busy permits / permits) that counts as backpressure.
pub const SATURATED_IN_FLIGHT: f64 = 0.95;
/// Share of size-triggered flushes above which flushes count as size-triggered.
pub const SIZE_TRIGGERED_SHARE: f64 = 0.5;
/// Intervals without growth after a cut.
pub const HOLD_AFTER_CUT: u32 = 3;
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

/// One tuning step. Returns the limits for the next interval, why they
/// changed (`None` when they did not), and the state to keep.
pub fn tune(
    bounds: Option<&TuneBounds>,
    budget: &BudgetPlan,
    obs: &Observation,
    interval_seconds: Option<f64>,
    prev: &TuneState,
) -> (TunedLimits, Option<String>, TuneState) {
    let current = obs.limits;
    let Some(bounds) = bounds else {
        return (current, None, TuneState::default());
    };
    let start = clamp(current, bounds, budget);
    let clamped = (start != current).then(|| {
        format!(
            "limits moved inside the autotune bounds and the memory budget: flushBytes {} → {}, maxInFlight {} → {}",
            format_bytes(current.flush_bytes),
            format_bytes(start.flush_bytes),
            current.max_in_flight,
            start.max_in_flight
        )
    });
    let mut next_state = prev.clone();
    let Some(s) = interval_seconds.and_then(|dt| signals(obs, dt)) else {
        return (start, clamped, next_state);
    };

    // Expected duration of a flush of the current size.
    let expected = prev.reference_seconds.map(|r| {
        let grown = prev.reference_flush_bytes.map_or(1.0, |b| {
            (current.flush_bytes as f64 / b.max(1) as f64).max(1.0)
        });
        r * grown
    });
    let rose = s.errors > 0 || expected.is_some_and(|e| s.mean_flush_seconds > e * LATENCY_RISE);
    let flat = expected.is_none_or(|e| s.mean_flush_seconds <= e * LATENCY_FLAT);
    let pressured =
        s.backpressure_share >= BACKPRESSURE_SHARE || s.saturation >= SATURATED_IN_FLIGHT;

    let mut next = start;
    let mut why = clamped;
    if rose {
        next = clamp(
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
        why = (next != start).then(|| {
            format!(
                "{cause}: flushBytes {} → {}, maxInFlight {} → {}",
                format_bytes(start.flush_bytes),
                format_bytes(next.flush_bytes),
                start.max_in_flight,
                next.max_in_flight
            )
        });
        next_state.hold = HOLD_AFTER_CUT;
        next_state.reference_seconds = None;
        next_state.reference_flush_bytes = None;
        return (next, why.or(Some(cause)), next_state);
    }

    if prev.hold > 0 {
        next_state.hold = prev.hold - 1;
    } else if pressured && flat && start.max_in_flight < bounds.max_in_flight {
        let in_flight = start.max_in_flight + 1;
        let flush_bytes = start
            .flush_bytes
            .min(flush_ceiling(bounds, budget, in_flight));
        if flush_bytes >= flush_floor(bounds) {
            next = TunedLimits {
                flush_bytes,
                max_in_flight: in_flight,
            };
            why = Some(format!(
                "backpressure {:.0}% with flat sink latency ({:.0}ms): maxInFlight {} → {}",
                s.backpressure_share * 100.0,
                s.mean_flush_seconds * 1e3,
                start.max_in_flight,
                in_flight
            ));
        }
    } else if flat
        && s.size_share >= SIZE_TRIGGERED_SHARE
        && (!pressured || start.max_in_flight >= bounds.max_in_flight)
    {
        // Larger batches: while the sink keeps up, or while it is the
        // bottleneck with every permit allowed in use and a write takes no
        // longer than its size explains (then a larger batch moves more per
        // write).
        let ceiling = flush_ceiling(bounds, budget, start.max_in_flight);
        let grown = ((start.flush_bytes as f64 * GROW_FLUSH) as u64).min(ceiling);
        if grown > start.flush_bytes {
            next = TunedLimits {
                flush_bytes: grown,
                max_in_flight: start.max_in_flight,
            };
            why = Some(format!(
                "{:.0}% of {} flushes size-triggered, {} ({:.0}ms): flushBytes {} → {}",
                s.size_share * 100.0,
                s.flushes,
                if pressured {
                    "every write permit busy, flat sink latency"
                } else {
                    "sink keeps up"
                },
                s.mean_flush_seconds * 1e3,
                format_bytes(start.flush_bytes),
                format_bytes(grown)
            ));
        }
    }

    // Learn the latency at the limits that were in force.
    next_state.reference_seconds =
        Some(match (prev.reference_seconds, prev.reference_flush_bytes) {
            (Some(r), Some(b)) if b == current.flush_bytes => {
                r * (1.0 - REFERENCE_WEIGHT) + s.mean_flush_seconds * REFERENCE_WEIGHT
            }
            _ => s.mean_flush_seconds,
        });
    next_state.reference_flush_bytes = Some(current.flush_bytes);
    (next, why, next_state)
}
