//! What the leader decided last, kept in an annotation of the Deployment.
//!
//! Reconciliations come from the interval's requeue and from watch events
//! (a pod became ready, an owned object changed). Only the first kind
//! decides: the policy's rates and stuck-partition counts are per interval,
//! and its step limits are per decision. A reconciliation between two
//! intervals puts the owned objects back as last decided instead. Kept on
//! the Deployment, read with a GET (not from the watch cache), so that a new
//! leader, or a reconciliation racing a stale cache, acts on the latest
//! decision.

use millpond_crds::CurrentLimits;
use serde::{Deserialize, Serialize};

use millpond_policy::PolicyState;

/// Annotation on the Deployment holding the [`LastDecision`] record.
pub const STATE_ANNOTATION: &str = "millpond.io/policy-state";

/// A reconciliation within this share of the interval after a decision is
/// between two intervals (the requeue may fire a little early).
const EARLY_SHARE: f64 = 0.9;

/// The last decision and the policy's memory.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastDecision {
    /// The policy's state after the decision.
    #[serde(flatten)]
    pub policy: PolicyState,
    /// Replicas decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Limits decided, with their generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CurrentLimits>,
    /// `metadata.generation` of the spec decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_generation: Option<i64>,
}

impl LastDecision {
    /// Reads the annotation; a missing or unreadable one is no decision yet.
    pub fn parse(annotation: Option<&String>) -> Self {
        annotation
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    /// Whether a reconciliation at `now_ms` decides: the first one, one a
    /// whole interval after the last decision, and one for a changed spec.
    /// Otherwise it keeps the last decision.
    pub fn due(&self, now_ms: u64, interval_ms: u64, spec_generation: Option<i64>) -> bool {
        let (Some(at), Some(_), Some(_)) = (self.policy.at_ms, self.replicas, &self.limits) else {
            return true;
        };
        spec_generation != self.spec_generation
            || now_ms.saturating_sub(at) as f64 >= interval_ms as f64 * EARLY_SHARE
            || now_ms < at
    }

    /// The record without its times: two decisions that differ only in
    /// when they were taken are the same to a leader resuming from them.
    /// A window of recommendations that are all alike is one of them: every
    /// window the policy takes over it (with the new recommendation, which
    /// it always holds) gives the same demand however many it keeps, so a
    /// steady consumer's record does not change as its window fills.
    pub fn timeless(&self) -> LastDecision {
        let mut d = self.clone();
        d.policy.at_ms = None;
        for r in &mut d.policy.recommendations {
            r.at_ms = 0;
        }
        let recs = &mut d.policy.recommendations;
        if recs.windows(2).all(|pair| pair[0] == pair[1]) {
            recs.truncate(1);
        }
        d
    }

    /// Milliseconds until the next decision is due.
    pub fn due_in(&self, now_ms: u64, interval_ms: u64) -> u64 {
        self.policy
            .at_ms
            .map_or(0, |at| (at + interval_ms).saturating_sub(now_ms))
    }
}

/// The generation of `next` limits: the last one when nothing changed and
/// no pod runs a later one; otherwise one above both, so every pod accepts
/// them (a pod refuses a generation older than the one it runs).
pub fn limits_generation(
    last: Option<&CurrentLimits>,
    next: &CurrentLimits,
    newest_on_pods: i64,
) -> i64 {
    match last {
        Some(l) if same_limits(l, next) && newest_on_pods <= l.generation => l.generation,
        _ => last.map_or(0, |l| l.generation).max(newest_on_pods) + 1,
    }
}

fn same_limits(a: &CurrentLimits, b: &CurrentLimits) -> bool {
    CurrentLimits {
        generation: 0,
        ..a.clone()
    } == CurrentLimits {
        generation: 0,
        ..b.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(flush_bytes: i64, generation: i64) -> CurrentLimits {
        CurrentLimits {
            flush_bytes,
            flush_interval_ms: 1_000,
            max_in_flight: 2,
            consume_batch_size: 1_000,
            generation,
        }
    }

    fn decided_at(at_ms: u64) -> LastDecision {
        LastDecision {
            policy: PolicyState {
                at_ms: Some(at_ms),
                ..PolicyState::default()
            },
            replicas: Some(3),
            limits: Some(limits(1 << 20, 4)),
            spec_generation: Some(2),
        }
    }

    #[test]
    fn watch_events_between_intervals_do_not_decide() {
        let d = decided_at(100_000);
        assert!(!d.due(100_400, 5_000, Some(2)), "0.4 s after a decision");
        assert!(!d.due(104_000, 5_000, Some(2)));
        assert!(
            d.due(104_600, 5_000, Some(2)),
            "a requeue firing a bit early"
        );
        assert!(d.due(130_000, 5_000, Some(2)));
        assert_eq!(d.due_in(101_000, 5_000), 4_000);
        assert_eq!(d.due_in(107_000, 5_000), 0);
    }

    #[test]
    fn a_spec_change_or_no_decision_yet_decides_at_once() {
        assert!(decided_at(100_000).due(100_400, 5_000, Some(3)));
        assert!(LastDecision::default().due(0, 5_000, Some(1)));
        let no_limits = LastDecision {
            limits: None,
            ..decided_at(100_000)
        };
        assert!(no_limits.due(100_400, 5_000, Some(2)));
        // A clock that went back does not freeze decisions.
        assert!(decided_at(100_000).due(90_000, 5_000, Some(2)));
    }

    #[test]
    fn the_annotation_round_trips_and_reads_the_older_policy_only_form() {
        let d = decided_at(7);
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(LastDecision::parse(Some(&text)), d);
        let older = r#"{"atMs":5,"partitions":[],"recommendations":[]}"#.to_string();
        let read = LastDecision::parse(Some(&older));
        assert_eq!((read.policy.at_ms, read.replicas), (Some(5), None));
        assert_eq!(
            LastDecision::parse(Some(&"{not json".to_string())),
            LastDecision::default()
        );
    }

    #[test]
    fn a_steady_window_filling_up_is_the_same_record() {
        use millpond_policy::Recommendation;
        let rec = |at_ms: u64, demand: f64| Recommendation {
            at_ms,
            demand,
            ..Recommendation::default()
        };
        let with = |recs: Vec<Recommendation>| {
            let mut d = decided_at(recs.last().map_or(0, |r| r.at_ms));
            d.policy.recommendations = recs;
            d
        };
        let steady = with(vec![rec(15_000, 0.0), rec(30_000, 0.0)]);
        let longer = with(vec![rec(15_000, 0.0), rec(30_000, 0.0), rec(45_000, 0.0)]);
        assert_eq!(steady.timeless(), longer.timeless());
        let moved = with(vec![rec(15_000, 0.0), rec(30_000, 0.0), rec(45_000, 9.0)]);
        assert_ne!(steady.timeless(), moved.timeless());
        let back = with(vec![rec(15_000, 9.0), rec(30_000, 0.0), rec(45_000, 0.0)]);
        assert_ne!(
            with(vec![rec(15_000, 9.0), rec(30_000, 0.0)]).timeless(),
            back.timeless(),
            "how long a different demand stays in the window matters"
        );
    }

    #[test]
    fn limits_get_a_generation_every_pod_accepts() {
        let last = limits(1 << 20, 4);
        // Unchanged: the same generation, nothing to push.
        assert_eq!(limits_generation(Some(&last), &limits(1 << 20, 0), 4), 4);
        // Changed: one more.
        assert_eq!(limits_generation(Some(&last), &limits(2 << 20, 0), 4), 5);
        // A pod runs a later generation than the record (a leader died
        // between pushing and recording): above the pod's.
        assert_eq!(limits_generation(Some(&last), &limits(1 << 20, 0), 6), 7);
        assert_eq!(limits_generation(None, &limits(1 << 20, 0), 0), 1);
    }
}
