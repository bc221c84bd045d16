//! Step 3, decide (pure): the memory budget with every partition on one pod,
//! then [`policy::decide`] on what was seen, giving the [`Plan`]: replicas,
//! limits (a new generation only when they change) and the [`LastDecision`]
//! record to keep.

use millpond_core::budget::{self, BudgetRequest};
use millpond_crds::{CurrentLimits, Direction, MillpondConsumer};

use super::degraded::Degraded;
use super::last_decision::{limits_generation, LastDecision};
use super::seen::Seen;
use super::validate::Validated;
use millpond_policy::{self as policy, Observation, PartitionObservation, PolicySpec, TunedLimits};

/// What the reconciliation is to act on.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Replicas before the decision (as last decided).
    pub from: u32,
    /// Replicas to run (spec.replicas while paused).
    pub replicas: u32,
    /// Up, down or hold.
    pub direction: Direction,
    /// Limits to run, with their generation.
    pub limits: CurrentLimits,
    /// The limits before, when any were decided.
    pub previous_limits: Option<CurrentLimits>,
    /// The policy's decision.
    pub decision: policy::Decision,
    /// The highest mean buffer fullness among the scraped pods.
    pub buffer_fullness: Option<f64>,
    /// What to keep for the next decision.
    pub decided: LastDecision,
}

/// The policy's knobs for `mpc` on a topic of `partitions`, or why its
/// memory limit cannot hold a pod with all of them.
pub fn policy_spec(
    mpc: &MillpondConsumer,
    valid: &Validated,
    partitions: u32,
) -> Result<PolicySpec, Degraded> {
    let limits = &mpc.spec.limits;
    let plan = budget::plan(&BudgetRequest {
        budget: valid.memory,
        partitions,
        max_in_flight: limits.max_in_flight.max(1) as u32,
        flush_bytes: limits.flush_bytes().ok().flatten(),
        queued_max_messages_kbytes: valid.queued_max_messages_kbytes,
        fetch_max_bytes: valid.fetch_max_bytes,
        max_partition_fetch_bytes: valid.max_partition_fetch_bytes,
        sink_factor: sink_factor(mpc),
    })
    .map_err(|e| {
        Degraded::MemoryBudget(format!(
            "resources.memory cannot hold the consumer with all {partitions} partitions assigned: {e}"
        ))
    })?;
    PolicySpec::new(&mpc.spec.autoscaling, &mpc.spec.autotune, limits, &plan)
        .map_err(|e| Degraded::InvalidSpec(e.to_string()))
}

/// Decides for `mpc` from `seen`, resuming from `last` (`from` replicas),
/// at `now_ms`.
pub fn plan(
    mpc: &MillpondConsumer,
    spec: &PolicySpec,
    seen: &Seen,
    last: &LastDecision,
    from: u32,
    now_ms: u64,
) -> Plan {
    let previous_limits = last
        .limits
        .clone()
        .or_else(|| mpc.status.as_ref()?.limits.clone());
    let observation = observation(spec, seen, from, previous_limits.as_ref());
    let (mut decision, state) = policy::decide(spec, &observation, &last.policy, now_ms);
    let paused = super::paused_replicas(mpc, Some(seen.partitions()));
    let replicas = paused.unwrap_or(decision.replicas);
    if spec.paused {
        decision.reason += &match paused {
            Some(n) => format!(": {n} replicas as spec.replicas asks"),
            None => format!(": keeping {replicas} replicas"),
        };
    }
    let limits_spec = &mpc.spec.limits;
    let mut limits = CurrentLimits {
        flush_bytes: decision.limits.flush_bytes as i64,
        flush_interval_ms: limits_spec.flush_interval_ms,
        max_in_flight: decision.limits.max_in_flight as i32,
        consume_batch_size: limits_spec.consume_batch_size,
        generation: 0,
    };
    limits.generation =
        limits_generation(previous_limits.as_ref(), &limits, seen.pods.newest_on_pods);
    let buffer_fullness = observation
        .pods
        .iter()
        .map(|p| p.buffer_fullness)
        .reduce(f64::max);
    Plan {
        from,
        replicas,
        direction: match replicas.cmp(&from) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        },
        decided: LastDecision {
            policy: state,
            replicas: Some(replicas),
            limits: Some(limits.clone()),
            spec_generation: mpc.metadata.generation,
        },
        limits,
        previous_limits,
        decision,
        buffer_fullness,
    }
}

/// The policy's input: the partitions as Kafka showed them, the pods'
/// samples, and what runs now.
fn observation(
    spec: &PolicySpec,
    seen: &Seen,
    replicas: u32,
    previous: Option<&CurrentLimits>,
) -> Observation {
    let pods = &seen.pods;
    Observation {
        partitions: seen
            .offsets
            .iter()
            .map(|o| PartitionObservation {
                partition: o.partition,
                committed: o.committed,
                high_watermark: o.high,
                log_start: o.low,
                uncommitted_start: pods.uncommitted_starts.get(&o.partition).copied(),
                assigned: pods.assigned.contains(&o.partition),
            })
            .collect(),
        pods: pods.samples.clone(),
        failing: pods.failing.clone(),
        replicas,
        limits: TunedLimits {
            flush_bytes: previous.map_or(spec.start_limits.flush_bytes, |l| l.flush_bytes as u64),
            max_in_flight: previous
                .map_or(spec.start_limits.max_in_flight, |l| l.max_in_flight as u32),
        },
    }
}

/// The pod's sink memory factor, as the consumer computes it.
fn sink_factor(mpc: &MillpondConsumer) -> f64 {
    mpc.spec.sink.kind().memory_factor()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::validate::validate;
    use crate::desired::fixtures::{edit, mpc, MINIMAL};
    use crate::observe::kafka::PartitionOffsets;

    fn seen(partitions: i32, lag: i64) -> Seen {
        Seen {
            offsets: (0..partitions)
                .map(|partition| PartitionOffsets {
                    partition,
                    low: 0,
                    high: lag,
                    committed: Some(0),
                })
                .collect(),
            ..Seen::default()
        }
    }

    #[test]
    fn a_memory_limit_too_small_for_every_partition_is_a_memory_budget_problem() {
        let small = edit(
            MINIMAL,
            "  sink:\n",
            "  resources: {memory: 16Mi}\n  sink:\n",
        );
        let err = policy_spec(&small, &validate(&small).unwrap(), 2000).unwrap_err();
        assert_eq!(err.reason(), "MemoryBudget");
        assert!(
            err.to_string()
                .starts_with("resources.memory cannot hold the consumer with all 2000 partitions"),
            "{err}"
        );
    }

    #[test]
    fn the_first_decision_starts_the_limits_at_generation_one_and_holds_from_min_replicas() {
        let m = mpc(MINIMAL);
        let spec = policy_spec(&m, &validate(&m).unwrap(), 4).unwrap();
        let plan = plan(
            &m,
            &spec,
            &seen(4, 0),
            &LastDecision::default(),
            1,
            1_000_000,
        );
        assert_eq!((plan.from, plan.replicas), (1, 1));
        assert_eq!(plan.direction, Direction::Hold);
        assert_eq!(plan.limits.generation, 1);
        assert_eq!(plan.decided.replicas, Some(1));
        assert_eq!(plan.decided.spec_generation, Some(1));
        assert_eq!(plan.buffer_fullness, None, "no pod scraped");
    }

    #[test]
    fn a_paused_consumer_runs_and_reports_the_count_spec_replicas_asks() {
        let decided = |replicas: &str, from: u32| {
            let m = edit(
                MINIMAL,
                "  sink:\n",
                &format!("  {replicas}autoscaling: {{paused: true}}\n  sink:\n"),
            );
            let spec = policy_spec(&m, &validate(&m).unwrap(), 4).unwrap();
            let plan = plan(
                &m,
                &spec,
                &seen(4, 8_000),
                &LastDecision::default(),
                from,
                1,
            );
            (plan.replicas, plan.decision.reason)
        };
        let (replicas, reason) = decided("replicas: 0\n  ", 1);
        assert_eq!(replicas, 0);
        assert!(
            reason.ends_with("paused: 0 replicas as spec.replicas asks"),
            "{reason}"
        );
        let (replicas, reason) = decided("", 3);
        assert_eq!(replicas, 3, "no spec.replicas: the count stays");
        assert!(reason.ends_with("paused: keeping 3 replicas"), "{reason}");
    }
}
