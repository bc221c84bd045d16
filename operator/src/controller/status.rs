//! Step 6, status (pure): the new status from the old one, what was seen
//! and the plan, and the Events that explain it. The clock is an argument,
//! so the same inputs give the same status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::{Event, EventType};
use millpond_crds::condition::{self, reason};
use millpond_crds::{Direction, LagStatus, MillpondConsumer, MillpondConsumerStatus};

use super::apply::Pushed;
use super::degraded::Degraded;
use super::plan::Plan;
use super::seen::Seen;
use crate::desired;
use crate::observe::pod_health::{self, PodTrouble};
use crate::observe::pods;
use millpond_policy::{Decision, LagSummary, SinkOutage};

/// The status after a decision: `ready` pods of the Deployment, and
/// `pods_behind_limits` still on an older limits generation.
pub fn after_decision(
    old: &MillpondConsumerStatus,
    mpc: &MillpondConsumer,
    seen: &Seen,
    plan: &Plan,
    ready: i32,
    pods_behind_limits: Vec<String>,
    now: &Time,
) -> MillpondConsumerStatus {
    let generation = mpc.metadata.generation;
    let decision = &plan.decision;
    let mut conditions = vec![
        ready_condition(ready, plan.replicas, &seen.pods.troubles, generation, now),
        scaling_condition(mpc, plan, now),
        degraded_condition(seen, plan, now, generation),
    ];
    carry_transitions(&mut conditions, &old.conditions);
    let last_decision = match (plan.direction, &old.last_decision) {
        (Direction::Hold, Some(last)) => last.clone(),
        _ => last_decision(decision, now),
    };
    MillpondConsumerStatus {
        replicas: plan.replicas as i32,
        ready_replicas: ready,
        selector: Some(desired::selector_string(mpc)),
        partitions: Some(seen.partitions() as i32),
        lag: Some(lag_status(&decision.lag)),
        buffer_fullness: plan.buffer_fullness,
        limited_by: Some(decision.limited.bottleneck.as_str().to_string()),
        hot_partitions: decision
            .hot_partitions
            .iter()
            .map(|h| millpond_crds::HotPartition {
                partition: h.partition,
                pods: (h.pods * 10.0).round() / 10.0,
            })
            .collect(),
        limits: Some(plan.limits.clone()),
        pods_behind_limits,
        stuck_partitions: decision.stuck_partitions.clone(),
        last_decision: Some(last_decision),
        last_observed_time: Some(now.clone()),
        observed_generation: generation,
        conditions,
    }
}

/// The policy's decision as `status.lastDecision`.
fn last_decision(decision: &Decision, now: &Time) -> millpond_crds::Decision {
    millpond_crds::Decision {
        time: now.clone(),
        direction: decision.direction,
        from: decision.from as i32,
        to: decision.replicas as i32,
        reason: decision.reason.clone(),
    }
}

/// The policy's lag figures as `status.lag`.
fn lag_status(lag: &LagSummary) -> LagStatus {
    LagStatus {
        total: lag.total,
        max_partition: lag.max_partition,
        rate_per_second: lag.rate_per_second,
    }
}

/// The status with `Degraded` set for `why` and everything else as it was.
pub fn degraded(
    old: &MillpondConsumerStatus,
    why: &Degraded,
    generation: Option<i64>,
    now: &Time,
) -> MillpondConsumerStatus {
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::DEGRADED)
        .cloned()
        .collect();
    let message = why.to_string();
    conditions.push(condition(
        condition::DEGRADED,
        true,
        why.reason(),
        message,
        generation,
        now,
    ));
    carry_transitions(&mut conditions, &old.conditions);
    MillpondConsumerStatus {
        conditions,
        observed_generation: generation,
        ..old.clone()
    }
}

/// Between two intervals: the status with the pod counts as they are.
pub fn counted(old: &MillpondConsumerStatus, replicas: u32, ready: i32) -> MillpondConsumerStatus {
    MillpondConsumerStatus {
        replicas: replicas as i32,
        ready_replicas: ready,
        ..old.clone()
    }
}

/// The Events of a decision: a scale, a tuning, each refused limits push.
pub fn events(plan: &Plan, pushed: &Pushed) -> Vec<Event> {
    let event = |type_, reason: &str, action: &str, note: String| Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    let mut events = Vec::new();
    let note = format!(
        "{} -> {}: {}",
        plan.from, plan.replicas, plan.decision.reason
    );
    match plan.direction {
        Direction::Up => events.push(event(EventType::Normal, "ScaledUp", "Scale", note)),
        Direction::Down => events.push(event(EventType::Normal, "ScaledDown", "Scale", note)),
        Direction::Hold => {}
    }
    if let Some(why) = &plan.decision.tuning {
        events.push(event(EventType::Normal, "Tuned", "Tune", why.clone()));
    }
    for (pod, answer) in &pushed.refused {
        let note = format!(
            "pod {pod} refused limits generation {}: {answer}",
            plan.limits.generation
        );
        events.push(event(
            EventType::Warning,
            "LimitsRefused",
            "PushLimits",
            note,
        ));
    }
    events
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.clone(),
        observed_generation: generation,
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn carry_transitions(new: &mut [Condition], old: &[Condition]) {
    for c in new.iter_mut() {
        if let Some(prev) = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
}

/// `Ready`: every desired pod ready and none in trouble; otherwise the
/// pods' own reason (a crash loop with the consumer's exit message, an OOM
/// kill) or `PodsNotReady`.
fn ready_condition(
    ready: i32,
    replicas: u32,
    troubles: &[PodTrouble],
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let count = format!("{ready} of {replicas} pods ready");
    if let Some((why, message)) = pod_health::summary(troubles) {
        let message = format!("{message}; {count}");
        return condition(condition::READY, false, &why, message, generation, now);
    }
    let all = ready as u32 >= replicas;
    let why = if all {
        reason::RUNNING
    } else {
        reason::PODS_NOT_READY
    };
    condition(
        condition::READY,
        all && replicas > 0,
        why,
        count,
        generation,
        now,
    )
}

fn scaling_condition(mpc: &MillpondConsumer, plan: &Plan, now: &Time) -> Condition {
    let why = match (mpc.spec.autoscaling.paused, plan.direction) {
        (true, _) => reason::PAUSED,
        (_, Direction::Up) => reason::SCALING_UP,
        (_, Direction::Down) => reason::SCALING_DOWN,
        _ if plan.decision.at_max => reason::AT_MAX_REPLICAS,
        _ => reason::STABLE,
    };
    let moving = plan.direction != Direction::Hold;
    let message = plan.decision.reason.clone();
    condition(
        condition::SCALING,
        moving,
        why,
        message,
        mpc.metadata.generation,
        now,
    )
}

/// `Degraded`, by what a person must act on first: a poison record (only
/// a new spec or a moved offset gets the pods past it), the sink down,
/// pods whose metrics cannot be read, stuck partitions.
fn degraded_condition(seen: &Seen, plan: &Plan, now: &Time, generation: Option<i64>) -> Condition {
    let (bad, why, message) = match degraded_reason(seen, plan) {
        Some((why, message)) => (true, why, message),
        None => (
            false,
            reason::AS_EXPECTED,
            "all observations available".to_string(),
        ),
    };
    condition(condition::DEGRADED, bad, why, message, generation, now)
}

fn degraded_reason(seen: &Seen, plan: &Plan) -> Option<(&'static str, String)> {
    let unscraped = &seen.pods.unscraped;
    let stuck = &plan.decision.stuck_partitions;
    if let Some((message, trouble)) = pod_health::poison_message(&seen.pods.troubles) {
        let why = match trouble {
            Some(millpond_core::sink::trouble::SCHEMA_MISMATCH) => reason::SCHEMA_MISMATCH,
            _ => reason::POISON_RECORD,
        };
        Some((why, message))
    } else if let Some(outage) = &plan.decision.limited.outage {
        // What the pod could tell about its sink, else only that it is down.
        let why =
            millpond_core::sink::trouble::of(&outage.error).unwrap_or(reason::SINK_UNAVAILABLE);
        Some((why, sink_message(outage, plan)))
    } else if !unscraped.is_empty() {
        let message = pods::unscraped_message(unscraped, seen.pods.samples.len());
        Some((reason::METRICS_UNAVAILABLE, message))
    } else if !stuck.is_empty() {
        let message = format!(
            "partitions {stuck:?} do not advance although they lag; their lag does not drive scaling: check the sink and the consumer logs"
        );
        Some((reason::STUCK_PARTITIONS, message))
    } else {
        None
    }
}

/// Longest sink error quoted in a condition.
const ERROR_CHARS: usize = 400;

/// `the sink is not taking writes: pods [a, b] failing for 95 s, last
/// error: ...; holding 3 replicas: more pods cannot help while the sink is
/// down`.
fn sink_message(outage: &SinkOutage, plan: &Plan) -> String {
    let mut error: String = outage.error.chars().take(ERROR_CHARS).collect();
    if error.len() < outage.error.len() {
        error.push('…');
    }
    let error = if error.is_empty() {
        "none reported".to_string()
    } else {
        error
    };
    let replicas = if plan.direction == Direction::Hold {
        format!("holding {} replicas", plan.replicas)
    } else {
        format!("{} replicas as the spec's bounds ask", plan.replicas)
    };
    format!(
        "the sink is not taking writes: {outage}, last error: {error}; {replicas}: more pods cannot help while the sink is down, and the pods retry their writes until it takes them"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn a_degraded_reason_keeps_the_rest_of_the_status_and_the_transition_time() {
        let old = MillpondConsumerStatus {
            replicas: 3,
            conditions: vec![condition(
                condition::DEGRADED,
                true,
                "KafkaUnreachable",
                "x",
                Some(1),
                &at(100),
            )],
            ..Default::default()
        };
        let why = Degraded::KafkaTlsFailed("handshake".into());
        let new = degraded(&old, &why, Some(2), &at(200));
        assert_eq!(new.replicas, 3);
        assert_eq!(new.observed_generation, Some(2));
        let c = &new.conditions[0];
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("KafkaTLSFailed", "handshake")
        );
        assert_eq!(c.last_transition_time, at(100), "still Degraded=True");
    }

    #[test]
    fn ready_needs_every_desired_pod_and_none_in_trouble() {
        let now = at(1);
        assert_eq!(ready_condition(3, 3, &[], None, &now).status, "True");
        let some = ready_condition(2, 3, &[], None, &now);
        assert_eq!(
            (some.status.as_str(), some.reason.as_str()),
            ("False", "PodsNotReady")
        );
        assert_eq!(some.message, "2 of 3 pods ready");
        assert_eq!(
            ready_condition(0, 0, &[], None, &now).status,
            "False",
            "no pods"
        );
    }
}
