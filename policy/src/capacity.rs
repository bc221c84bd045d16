//! A pod's capacity, learnt from what the pods' sinks acknowledged: the rate
//! of a busy pod is its capacity (moving average); an idle pod only shows a
//! lower bound.

use crate::demand::rate;
use crate::model::{Observation, PodSample, PolicyState, TunedLimits};

/// Weight of a new sample in the capacity estimate.
const CAPACITY_WEIGHT: f64 = 0.5;

/// Capacity per pod: busy pods show it, idle pods bound it from below.
pub(crate) fn learn(obs: &Observation, prev: &PolicyState, busy: &[bool]) -> (Option<f64>, bool) {
    let mut capacity = prev.capacity_per_pod;
    let mut measured = prev.capacity_measured;
    let steady: Vec<(&PodSample, bool)> = obs
        .pods
        .iter()
        .zip(busy.iter().copied())
        .filter(|(p, _)| p.full_interval)
        .collect();
    let busy_rates: Vec<f64> = steady
        .iter()
        .filter(|(_, b)| *b)
        .map(|(p, _)| rate(p.delivered_rate))
        .collect();
    if !busy_rates.is_empty() {
        let sample = busy_rates.iter().sum::<f64>() / busy_rates.len() as f64;
        capacity = Some(match capacity {
            Some(c) if measured => c * (1.0 - CAPACITY_WEIGHT) + sample * CAPACITY_WEIGHT,
            _ => sample,
        });
        measured = true;
    }
    let rates: Vec<f64> = steady
        .iter()
        .map(|(p, _)| rate(p.delivered_rate))
        .filter(|r| *r > 0.0)
        .collect();
    if !rates.is_empty() {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        capacity = Some(capacity.map_or(mean, |c| c.max(mean)));
    }
    (capacity, measured)
}

/// What the capacity estimate knows after tuning moved the limits from
/// `before` to `after`: larger limits make the measured capacity a lower
/// bound; a permit given back scales it down with the permits.
pub(crate) fn after_tuning(state: &mut PolicyState, before: TunedLimits, after: TunedLimits) {
    if after.flush_bytes > before.flush_bytes || after.max_in_flight > before.max_in_flight {
        state.capacity_measured = false;
    } else if after.max_in_flight < before.max_in_flight && before.max_in_flight > 0 {
        let share = after.max_in_flight as f64 / before.max_in_flight as f64;
        state.capacity_per_pod = state.capacity_per_pod.map(|c| c * share);
    }
}
