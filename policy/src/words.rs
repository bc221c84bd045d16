//! The policy's figures and reasons in words: `12.5k`, `partition 0 needs 1.6
//! pods`, `lag 5k, produce 1.2k/s, capacity 900/s per pod`.

use crate::bottleneck::{Bottleneck, Signals};
use crate::demand::Demands;
use crate::model::{FailingPod, HotPartition, Observation, PolicyState, PROBE_HEADROOM};
use crate::observed;
use crate::replicas::Choice;

/// A count for people: `950`, `12.5k`, `1.2M`.
pub fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

pub(crate) fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `partition 0 needs 1.6 pods: more pods cannot drain it faster; `, or nothing.
fn hot_words(hot: &[HotPartition]) -> String {
    if hot.is_empty() {
        return String::new();
    }
    let names: Vec<String> = hot.iter().map(|h| h.to_string()).collect();
    format!(
        "{}: more pods cannot drain {} faster; ",
        names.join(", "),
        if hot.len() == 1 { "it" } else { "them" }
    )
}

/// `, partitions [3] left out (lag 5k): they wait for failing pods
/// [orders-x (CrashLoopBackOff)], not for more pods`, or nothing.
fn waiting_words(seen: &observed::Seen, failing: &[FailingPod]) -> String {
    if seen.waiting.is_empty() {
        return String::new();
    }
    let pods: Vec<String> = failing.iter().map(|f| f.to_string()).collect();
    format!(
        ", partitions {:?} left out (lag {}): they wait for failing pods [{}], not for more pods",
        seen.waiting,
        human(seen.waiting_lag as f64),
        pods.join(", ")
    )
}

/// Why the limits stayed, when the sink's outage kept them.
fn outage_words(signals: &Signals, prev: &PolicyState) -> &'static str {
    if signals.bottleneck == Bottleneck::SinkDown {
        "; limits held: the sink's errors and latency say nothing of what it can take while it is down"
    } else if prev.sink_was_down {
        "; limits held this interval: the sink came back during it"
    } else {
        ""
    }
}

/// The figures a reason starts with: lag, produce rate, capacity, stuck partitions.
fn context(seen: &observed::Seen, produce: f64, capacity: Option<f64>, measured: bool) -> String {
    let mut context = format!("lag {}", human(seen.lag.healthy as f64));
    if seen.produce_known() {
        context += &format!(", produce {}/s", human(produce));
    }
    if let Some(c) = capacity {
        context += &if measured {
            format!(", capacity {}/s per pod", human(c))
        } else {
            format!(
                ", capacity {}/s per pod (at least; sized for {}/s)",
                human(c),
                human(c * PROBE_HEADROOM)
            )
        };
    }
    if !seen.stuck.is_empty() {
        context += &format!(
            ", stuck partitions {:?} left out (lag {})",
            seen.stuck,
            human(seen.stuck_lag as f64)
        );
    }
    context
}

/// Why a decision was taken: the figures (`state` holds what was learnt of
/// the capacity), the partitions left out, where the pods are limited, and
/// the choice of replicas.
pub(crate) fn reason(
    seen: &observed::Seen,
    obs: &Observation,
    prev: &PolicyState,
    state: &PolicyState,
    signals: &Signals,
    demands: &Demands,
    choice: &Choice,
) -> String {
    format!(
        "{}{}; {}: {}{}{}",
        context(
            seen,
            demands.produce,
            state.capacity_per_pod,
            state.capacity_measured
        ),
        waiting_words(seen, &obs.failing),
        signals.describe(),
        hot_words(&demands.hot),
        choice.why,
        outage_words(signals, prev),
    )
}
