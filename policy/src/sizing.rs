//! Replica counts from the demand of each partition, the way Kafka spreads
//! partitions over a group.
//!
//! Kafka's assignor balances partitions by *count*, not by load: with `P`
//! partitions on `r` consumers every consumer holds `floor(P / r)` or
//! `ceil(P / r)` of them, and which ones share a consumer is not up to us.
//! So the policy sizes for the worst case: the `k = ceil(P / r)` busiest
//! partitions on one pod. That pod gives its partitions a max-min fair share
//! of its capacity (a partition with little waiting gets all it needs, the
//! others split the rest), so it keeps up when every partition it holds that
//! one pod could carry gets its full demand:
//!
//! ```text
//! sum(demand of its cold partitions) + hot partitions × largest cold demand <= capacity
//! ```
//!
//! A *hot* partition needs more than one pod. More pods cannot make one
//! partition go faster than one pod, so hot partitions do not push the count
//! to the partition count; they are reported instead. Two rules give the
//! replica count:
//!
//! 1. the busiest pod keeps up (above): the largest such `k` gives
//!    `ceil(P / k)` pods;
//! 2. the group can do the work its partitions can absorb, each at most one
//!    pod's worth: `ceil(sum(min(demand, capacity)) / capacity)` pods.
//!
//! The higher of the two is brought down to the fewest pods with the same
//! maximum partitions per pod (12 partitions: 4 and 5 pods both put 3 on the
//! busiest pod; 5 costs a pod more and, in the worst case, drains no
//! faster). With the same demand on every partition this is `ceil(P /
//! floor(capacity / demand))`.
//!
//! A [`Demand`] keeps the [`TOP`] highest demands exactly and bounds the
//! others by the next highest, so it stays small enough to remember for the
//! stabilization windows on topics with hundreds of partitions.

use serde::{Deserialize, Serialize};

/// Demands kept exactly; the others are bounded by the next one.
pub const TOP: usize = 16;

/// Floating point slack: an exact fit is a fit.
pub const EPSILON: f64 = 1e-9;

/// Records/s each partition of a topic needs, highest first.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Demand {
    /// The highest demands, in descending order (at most [`TOP`]).
    pub top: Vec<f64>,
    /// No other partition needs more than this.
    pub rest: f64,
    /// What the other partitions need together.
    pub rest_total: f64,
    /// Partitions of the topic.
    pub partitions: u32,
}

impl Demand {
    /// `demand` records/s on each of `partitions` partitions.
    pub fn uniform(demand: f64, partitions: u32) -> Self {
        let partitions = partitions.max(1);
        let demand = demand.max(0.0);
        Self {
            top: Vec::new(),
            rest: demand,
            rest_total: demand * partitions as f64,
            partitions,
        }
    }

    /// The demand of each partition (stuck ones at 0).
    pub fn from_partitions(demands: &[f64]) -> Self {
        let mut sorted: Vec<f64> = demands.iter().map(|d| d.max(0.0)).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let rest: Vec<f64> = sorted.split_off(sorted.len().min(TOP));
        Self {
            top: sorted,
            rest: rest.first().copied().unwrap_or(0.0),
            rest_total: rest.iter().sum(),
            partitions: (demands.len() as u32).max(1),
        }
    }

    /// Every demand times `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            top: self.top.iter().map(|d| d * factor).collect(),
            rest: self.rest * factor,
            rest_total: self.rest_total * factor,
            partitions: self.partitions,
        }
    }

    /// The `i`-th highest demand (from 0), or its bound beyond [`TOP`].
    fn nth(&self, i: usize) -> f64 {
        self.top.get(i).copied().unwrap_or(self.rest)
    }

    /// The highest demand of one partition.
    pub fn highest(&self) -> f64 {
        self.nth(0)
    }

    /// Demand of every partition together.
    pub fn total(&self) -> f64 {
        self.top.iter().sum::<f64>() + self.rest_total
    }

    /// Partitions that need more than `capacity`: their indices in `top`.
    pub fn hot(&self, capacity: f64) -> usize {
        self.top
            .iter()
            .take_while(|d| **d > capacity * (1.0 + EPSILON))
            .count()
    }

    /// A pod holding the `k` busiest partitions keeps up with every one of
    /// them that one pod can carry.
    pub fn fits(&self, k: u32, capacity: f64) -> bool {
        let k = k.min(self.partitions) as usize;
        let hot = (0..k)
            .take_while(|&i| self.nth(i) > capacity * (1.0 + EPSILON))
            .count();
        if hot == k {
            return true;
        }
        let cold: f64 = (hot..k).map(|i| self.nth(i)).sum();
        cold + hot as f64 * self.nth(hot) <= capacity * (1.0 + EPSILON)
    }

    /// Most partitions one pod may hold and keep up (rule 1); `None` when
    /// nothing is needed (any spread keeps up).
    pub fn partitions_per_pod(&self, capacity: f64) -> Option<u32> {
        if self.highest() <= 0.0 {
            return None;
        }
        if capacity <= 0.0 {
            return Some(1);
        }
        // `fits` holds for k = 1 and, as k grows, can only stop holding.
        let (mut lo, mut hi) = (1u32, self.partitions);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.fits(mid, capacity) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(lo)
    }

    /// Pods the work needs when no partition takes more than a pod (rule 2).
    fn pods_for_work(&self, capacity: f64) -> u32 {
        if capacity <= 0.0 {
            return self.partitions;
        }
        let beyond = self.partitions as usize - self.top.len().min(self.partitions as usize);
        let capped = self.top.iter().map(|d| d.min(capacity)).sum::<f64>()
            + self.rest_total.min(beyond as f64 * capacity);
        ((capped / capacity - EPSILON).ceil().max(1.0) as u32).min(self.partitions)
    }

    /// Fewest pods that keep up at `capacity` records/s per pod, before any
    /// bound: always one of the counts [`fewest_with_same_spread`] returns.
    pub fn replicas(&self, capacity: f64) -> u32 {
        let p = self.partitions;
        let spread = match self.partitions_per_pod(capacity) {
            None => 1,
            Some(k) => p.div_ceil(k.clamp(1, p)),
        };
        fewest_with_same_spread(p, spread.max(self.pods_for_work(capacity)))
    }
}

/// Maximum partitions per pod with `replicas` pods: `ceil(partitions / replicas)`.
pub fn max_per_pod(partitions: u32, replicas: u32) -> u32 {
    partitions.max(1).div_ceil(replicas.max(1))
}

/// Smallest replica count whose busiest pod holds the same number of
/// partitions as with `replicas` pods (12 partitions: 5 gives 4, 7 gives 6).
pub fn fewest_with_same_spread(partitions: u32, replicas: u32) -> u32 {
    let partitions = partitions.max(1);
    partitions.div_ceil(max_per_pod(partitions, replicas))
}

/// Fewest pods whose busiest pod holds fewer partitions than with
/// `replicas` pods (10 partitions: from 5 pods, 2 each, the next is 10);
/// `None` when every pod already holds one partition at most.
pub fn next_better_spread(partitions: u32, replicas: u32) -> Option<u32> {
    let partitions = partitions.max(1);
    let now = max_per_pod(partitions, replicas);
    (now > 1).then(|| partitions.div_ceil(now - 1))
}

/// Where a scale-up from `current` towards `target` lands with steps of at
/// most `max_step` pods: on the fewest pods of a spread (pods beyond it
/// hold no fewer partitions each). When no count within the step spreads
/// the partitions better than now, it goes on to the next count that does
/// if that lies within a second step; else it takes the step (a target
/// further away is reached step by step).
pub fn step_up(partitions: u32, current: u32, target: u32, max_step: u32) -> u32 {
    let stepped = target.min(current + max_step);
    let fewest = fewest_with_same_spread(partitions, stepped);
    match next_better_spread(partitions, current) {
        _ if fewest > current => fewest,
        Some(next) if next <= current + 2 * max_step => next.min(target).max(stepped),
        _ => stepped,
    }
}

/// Fewest pods that keep up with `demand` records/s on each of `partitions`
/// partitions at `capacity` records/s per pod, before any bound.
pub fn replicas_for(demand: f64, capacity: f64, partitions: u32) -> u32 {
    Demand::uniform(demand, partitions).replicas(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_pods_on_twelve_partitions_give_the_same_spread_as_four() {
        assert_eq!(max_per_pod(12, 5), 3);
        assert_eq!(max_per_pod(12, 4), 3);
        assert_eq!(fewest_with_same_spread(12, 5), 4);
        assert_eq!(fewest_with_same_spread(12, 7), 6);
        assert_eq!(fewest_with_same_spread(12, 12), 12);
        assert_eq!(fewest_with_same_spread(10, 4), 4);
        assert_eq!(fewest_with_same_spread(10, 3), 3);
        assert_eq!(next_better_spread(10, 5), Some(10));
        assert_eq!(next_better_spread(10, 4), Some(5));
        assert_eq!(next_better_spread(12, 5), Some(6));
        assert_eq!(next_better_spread(10, 10), None);
    }

    #[test]
    fn counts_are_finer_than_divisors_of_the_partition_count() {
        // 10 partitions: 3 and 4 pods are useful spreads though they do not divide 10.
        let counts: std::collections::BTreeSet<u32> =
            (1..=10).map(|r| fewest_with_same_spread(10, r)).collect();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 10]
        );
    }

    #[test]
    fn replicas_follow_the_busiest_pod() {
        // 12 partitions at 1k/s each, 3.5k/s per pod: 3 partitions per pod, so 4 pods.
        assert_eq!(replicas_for(1_000.0, 3_500.0, 12), 4);
        // An exact fit is a fit.
        assert_eq!(replicas_for(1_000.0, 3_000.0, 12), 4);
        // Just short of 3 per pod: 2 per pod, 6 pods (5 would not be faster than 4).
        assert_eq!(replicas_for(1_000.0, 2_999.0, 12), 6);
        // Every partition busier than a pod: every partition gets its own pod.
        assert_eq!(replicas_for(5_000.0, 4_000.0, 12), 12);
        assert_eq!(replicas_for(0.0, 4_000.0, 12), 1);
        for tenth in 1..400 {
            let d = tenth as f64 * 100.0;
            let r = replicas_for(d, 4_000.0, 12);
            assert_eq!(r, fewest_with_same_spread(12, r), "demand {d}");
            // The uniform case is ceil(P / floor(capacity / demand)).
            let k = (4_000.0 / d + 1e-9).floor() as u32;
            let expected = if k == 0 {
                12
            } else {
                12u32.div_ceil(k.min(12))
            };
            assert_eq!(r, expected, "demand {d}");
        }
    }

    /// 12 partitions: partition 0 gets `hot`, the others `cold` each.
    fn skewed(hot: f64, cold: f64) -> Demand {
        let mut d = vec![cold; 12];
        d[0] = hot;
        Demand::from_partitions(&d)
    }

    #[test]
    fn a_hot_partition_is_sized_for_the_worst_pod_not_the_average() {
        // 40% of 30k/s on partition 0 (12k/s), 1.6k/s on each other; 10k/s per pod.
        // On average 2.5k/s per partition, 4 per pod: 3 pods. The pod
        // holding partition 0 cannot keep up with it (12k > 10k, it is hot);
        // the others on that pod get their 1.6k/s as long as their demand
        // plus 1.6k for partition 0's share stays within 10k: up to 5 others
        // (6 per pod, 2 pods). The work the partitions can absorb is 10k +
        // 11 × 1.6k = 27.6k: 3 pods.
        let d = skewed(12_000.0, 1_600.0);
        assert_eq!(replicas_for(2_500.0, 10_000.0, 12), 3);
        assert_eq!(d.hot(10_000.0), 1);
        assert_eq!(d.replicas(10_000.0), 3);
        // Partition 0 at 8k/s: one pod carries it with 1 other (9.6k), not
        // with 2 (11.2k): 2 per pod, 6 pods; the average would say 3.
        let d = skewed(8_000.0, 1_600.0);
        assert_eq!(d.hot(10_000.0), 0);
        assert_eq!(d.partitions_per_pod(10_000.0), Some(2));
        assert_eq!(d.replicas(10_000.0), 6);
    }

    #[test]
    fn hot_partitions_do_not_push_replicas_to_the_partition_count() {
        // One partition needing 1.6 pods, the rest almost idle: 2 pods (the
        // work is 10k + 11 × 100 = 11.1k), not 12.
        let d = skewed(16_000.0, 100.0);
        assert_eq!(d.hot(10_000.0), 1);
        assert_eq!(d.replicas(10_000.0), 2);
        // Every partition hot: each gets a pod of its own.
        assert_eq!(Demand::uniform(16_000.0, 12).replicas(10_000.0), 12);
    }

    #[test]
    fn demands_beyond_the_top_are_bounded_by_the_next_one() {
        let demands: Vec<f64> = (0..100).map(|i| 1_000.0 - i as f64).collect();
        let d = Demand::from_partitions(&demands);
        assert_eq!(d.top.len(), TOP);
        assert_eq!(d.top[0], 1_000.0);
        assert_eq!(d.rest, 1_000.0 - TOP as f64);
        assert!((d.total() - demands.iter().sum::<f64>()).abs() < 1e-6);
        // Bounding from above never sizes below the exact answer: the 40
        // busiest need `exact`; the bound says a little more.
        let exact: f64 = demands.iter().take(40).sum();
        assert!(!d.fits(40, exact - 1.0));
        let bounded = d.top.iter().sum::<f64>() + 24.0 * d.rest;
        assert!(d.fits(40, bounded) && bounded >= exact);
    }
}
