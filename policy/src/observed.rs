//! Per partition, what one interval showed: lag, produce rate, whether it is
//! stuck.
//!
//! * lag = high watermark − where the group is: the committed offset, or
//!   where the group starts without one (the log start with
//!   `auto.offset.reset=earliest`, the high watermark when a pod took the
//!   partition with `latest`), never below the log start;
//! * produce rate = growth of the high watermark since the previous
//!   decision (unknown on the first one);
//! * a partition whose committed offset stands still for `stuckIntervals`
//!   intervals while it is assigned and lagging is *stuck* (since when is
//!   remembered: scale-down waits a window after it); one whose offset
//!   moved this interval is *moving* (its lag shows a pod busy). Only an
//!   interval a *settled* pod held it counts: a pod that ran the whole
//!   interval with the same partitions (not one starting, restarted or
//!   just handed partitions by a rebalance), whose sink takes writes, that
//!   does not fail on its own and that was not delivering at its limit (a
//!   pod with every permit busy or a full buffer serves its partitions in
//!   turn: one that waits its turn is not stuck, more pods would serve
//!   it). Another pod's trouble is not the partition's;
//! * while pods fail on their own ([`super::FailingPod`]: a crash loop, a
//!   poison record, not ready for long), a lagging partition that no other
//!   pod holds *waits* for them: its lag is left out of the demand like a
//!   stuck partition's (more pods would not serve it), but it is not stuck;
//! * the healthy lag's rate is summed per partition over the partitions
//!   healthy now (records produced less records committed), so a partition
//!   joining or leaving the stuck ones does not look like the lag growing
//!   or draining.

use std::collections::BTreeSet;

use crate::bottleneck::{FULL_BUFFER, SATURATED_IN_FLIGHT};
use crate::model::{
    LagSummary, Observation, PartitionObservation, PartitionTrack, PolicySpec, PolicyState,
};

/// One partition over the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionSeen {
    /// Partition id.
    pub partition: i32,
    /// Records waiting.
    pub lag: i64,
    /// Records/s produced; `None` on the first decision.
    pub rate: Option<f64>,
    /// Left out of the demand: its offset stood still too long.
    pub stuck: bool,
    /// Left out of the demand: it waits for pods that fail on their own.
    pub waiting: bool,
    /// Neither stuck nor waiting, and its committed offset did not stand
    /// still this interval.
    pub moving: bool,
}

impl PartitionSeen {
    /// Its lag drives the demand: neither stuck nor waiting.
    pub fn counted(&self) -> bool {
        !self.stuck && !self.waiting
    }
}

/// Every partition over the interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Per partition, in the observation's order.
    pub partitions: Vec<PartitionSeen>,
    /// Lag figures.
    pub lag: LagSummary,
    /// Stuck partitions.
    pub stuck: Vec<i32>,
    /// Their lag.
    pub stuck_lag: i64,
    /// Partitions that wait for failing pods.
    pub waiting: Vec<i32>,
    /// Their lag.
    pub waiting_lag: i64,
    /// Change of the healthy partitions' lag per second.
    pub healthy_lag_rate: Option<f64>,
    /// What to remember of each partition.
    pub tracks: Vec<PartitionTrack>,
}

impl Seen {
    /// Every partition's produce rate is known.
    pub fn produce_known(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.rate.is_some())
    }

    /// Records/s produced on the partitions whose lag drives the demand.
    pub fn produce_healthy(&self) -> f64 {
        self.partitions
            .iter()
            .filter(|p| p.counted())
            .filter_map(|p| p.rate)
            .sum()
    }

    /// Records/s produced on every partition.
    pub fn produce_total(&self) -> f64 {
        self.partitions.iter().filter_map(|p| p.rate).sum()
    }

    /// Partitions whose lag drives the demand.
    pub fn healthy(&self) -> usize {
        self.partitions.iter().filter(|p| p.counted()).count()
    }

    /// Lag on `partitions` that moved this interval.
    pub fn moving_lag(&self, partitions: &[i32]) -> i64 {
        self.partitions
            .iter()
            .filter(|p| p.moving && partitions.contains(&p.partition))
            .map(|p| p.lag)
            .sum()
    }
}

/// What `obs` shows of each partition, `dt` seconds after `prev`.
pub fn partitions(
    spec: &PolicySpec,
    obs: &Observation,
    prev: &PolicyState,
    dt: Option<f64>,
    now_ms: u64,
) -> Seen {
    let mut seen = Seen::default();
    let mut healthy_change = 0i64;
    let holders = Holders::of(obs);
    for p in &obs.partitions {
        let start = p
            .committed
            .unwrap_or_else(|| uncommitted_start(p))
            .max(p.log_start);
        let lag = (p.high_watermark - start).max(0);
        let before = prev.partitions.iter().find(|t| t.partition == p.partition);
        let waiting = lag > 0 && holders.waits(p.partition);
        let counts_still = p.assigned && lag > 0 && !waiting && holders.settled(p.partition);
        let still = match before {
            Some(b) if dt.is_some() && counts_still && b.committed == p.committed => b.still + 1,
            _ => 0,
        };
        let stuck = still >= spec.stuck_intervals;
        let stuck_since_ms = stuck.then(|| before.and_then(|b| b.stuck_since_ms).unwrap_or(now_ms));
        let rate = match (before, dt) {
            (Some(b), Some(dt)) => Some((p.high_watermark - b.high_watermark).max(0) as f64 / dt),
            _ => None,
        };
        seen.lag.total += lag;
        seen.lag.max_partition = seen.lag.max_partition.max(lag);
        if stuck {
            seen.stuck.push(p.partition);
            seen.stuck_lag += lag;
        } else if waiting {
            seen.waiting.push(p.partition);
            seen.waiting_lag += lag;
        } else {
            seen.lag.healthy += lag;
        }
        seen.partitions.push(PartitionSeen {
            partition: p.partition,
            lag,
            rate,
            stuck,
            waiting,
            moving: !stuck && !waiting && still == 0,
        });
        if let Some(b) = before.filter(|_| !stuck && !waiting) {
            healthy_change += lag_change(p, b);
        }
        seen.tracks.push(PartitionTrack {
            partition: p.partition,
            high_watermark: p.high_watermark,
            committed: p.committed,
            still,
            stuck_since_ms,
        });
    }
    if let Some(dt) = dt {
        if let Some(before) = prev.total_lag {
            seen.lag.rate_per_second = (seen.lag.total - before) as f64 / dt;
        }
        if prev.healthy_lag.is_some() {
            seen.healthy_lag_rate = Some(healthy_change as f64 / dt);
        }
    }
    seen
}

/// Who holds the partitions, as the pods report them.
struct Holders {
    /// Pods fail on their own.
    failing: bool,
    /// Partitions a pod that does not fail holds.
    served: BTreeSet<i32>,
    /// Partitions a pod holds that is not settled (see the module docs).
    unsettled: BTreeSet<i32>,
    /// Partitions a pod holds that delivered at its limit this interval
    /// (every permit busy, or its buffer full): one of them that did not
    /// move waits its turn behind the others, more pods would serve it.
    saturated: BTreeSet<i32>,
}

impl Holders {
    fn of(obs: &Observation) -> Self {
        let mut holders = Holders {
            failing: !obs.failing.is_empty(),
            served: BTreeSet::new(),
            unsettled: BTreeSet::new(),
            saturated: BTreeSet::new(),
        };
        for pod in &obs.pods {
            let failing = !pod.pod.is_empty() && obs.failing.iter().any(|f| f.pod == pod.pod);
            let settled = pod.full_interval && pod.sink_down.is_none() && !failing;
            let saturated = pod.delivered_rate > 0.0
                && (pod.in_flight_saturation >= SATURATED_IN_FLIGHT
                    || pod.buffer_fullness >= FULL_BUFFER);
            for &p in &pod.partitions {
                if saturated {
                    holders.saturated.insert(p);
                }
                if !failing {
                    holders.served.insert(p);
                }
                if !settled {
                    holders.unsettled.insert(p);
                }
            }
        }
        holders
    }

    /// No pod that works holds `partition` while some pods fail.
    fn waits(&self, partition: i32) -> bool {
        self.failing && !self.served.contains(&partition)
    }

    /// No unsettled pod holds `partition`, and the pod that does is not
    /// delivering at its limit.
    fn settled(&self, partition: i32) -> bool {
        !self.unsettled.contains(&partition) && !self.saturated.contains(&partition)
    }
}

/// How a partition's lag moved since `before`: records produced less
/// records committed. Summed over the partitions healthy now, it is how the
/// healthy lag moved on the same partitions; the difference of two healthy
/// totals is not when a partition joins or leaves the stuck ones between
/// them (its whole lag would count as growth or as draining).
fn lag_change(p: &PartitionObservation, before: &PartitionTrack) -> i64 {
    let produced = p.high_watermark - before.high_watermark;
    let committed = match (before.committed, p.committed) {
        (Some(b), Some(c)) => c - b,
        // The first commit: the lag was counted from where the group starts.
        (None, Some(c)) => c - uncommitted_start(p).min(c),
        _ => 0,
    };
    produced - committed
}

/// Where the group starts on a partition it has no commit for: where a pod
/// took it (`latest`), else the log start.
fn uncommitted_start(p: &PartitionObservation) -> i64 {
    p.uncommitted_start.unwrap_or(p.log_start).max(p.log_start)
}
