//! Replica counts from a per-partition demand, the way Kafka spreads
//! partitions over a group.
//!
//! With `P` partitions spread evenly over `r` consumers, the busiest consumer
//! holds `ceil(P / r)` partitions and finishes last: it, not the average,
//! decides how fast the group drains. So a replica count is only as good as
//! its maximum partitions per pod, and among the counts with the same maximum
//! the smallest is the one to run (12 partitions: 4 and 5 pods both put 3
//! partitions on the busiest pod; 5 costs a pod more and drains no faster).

/// Largest number of partitions per pod that still keeps up when each
/// partition needs `demand` records/s and a pod handles `capacity` records/s.
/// `None` when there is no demand (any spread keeps up); `Some(0)` when a
/// single partition needs more than one pod can give.
pub fn partitions_per_pod(demand: f64, capacity: f64) -> Option<u32> {
    if demand <= 0.0 {
        return None;
    }
    // The epsilon keeps an exact fit (capacity == k * demand) from falling to k - 1.
    let k = (capacity / demand + 1e-9).floor();
    Some(k.clamp(0.0, u32::MAX as f64) as u32)
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

/// Fewest pods that keep up with `demand` records/s per partition over
/// `partitions` partitions at `capacity` records/s per pod, before any bound.
/// Always one of the counts [`fewest_with_same_spread`] returns.
pub fn replicas_for(demand: f64, capacity: f64, partitions: u32) -> u32 {
    let partitions = partitions.max(1);
    match partitions_per_pod(demand, capacity) {
        None => 1,
        Some(0) => partitions,
        Some(k) => partitions.div_ceil(k.min(partitions)),
    }
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
        // A partition busier than a pod: every partition gets its own pod.
        assert_eq!(replicas_for(5_000.0, 4_000.0, 12), 12);
        assert_eq!(replicas_for(0.0, 4_000.0, 12), 1);
        for tenth in 1..400 {
            let r = replicas_for(tenth as f64 * 100.0, 4_000.0, 12);
            assert_eq!(r, fewest_with_same_spread(12, r), "demand {}", tenth * 100);
        }
    }
}
