//! A KEDA-style baseline, for comparison only: KEDA's Kafka scaler feeding a
//! Kubernetes HorizontalPodAutoscaler with its default behaviour, written
//! from their documented algorithms.
//!
//! * Scaler: lag of a partition = high watermark − committed offset (with no
//!   committed offset: 1 under `offsetResetPolicy: latest`, the high watermark
//!   under `earliest`); the metric is the total lag, capped at
//!   `partitions × lagThreshold` unless `allowIdleConsumers`; with
//!   `excludePersistentLag` a partition whose offset did not move since the
//!   previous poll counts 0. KEDA's default (`useCachedMetrics: false`)
//!   reads Kafka at every HPA sync; with `useCachedMetrics: true` the value
//!   is refreshed every `pollingInterval` (30 s) and served from that cache
//!   in between.
//! * HPA (external metric, `AverageValue` target = `lagThreshold`): every
//!   sync period (15 s) `desired = ceil(metric / lagThreshold)` unless
//!   `metric / (lagThreshold × current)` is within 10 % of 1; scale-down to
//!   the highest recommendation of the last 300 s; then
//!   `[minReplicas, maxReplicas]`. A ScaledObject without
//!   `advanced.horizontalPodAutoscalerConfig.behavior` (KEDA's default)
//!   makes an HPA without `behavior`, which the HPA controller limits the
//!   old way: up to `max(2 × current, 4)` per sync, down without a rate
//!   limit. With a behavior: scale-up at most `max(+4 pods, +100 %)` per
//!   15 s, scale-down at most 100 % per 15 s.
//!
//! Calibrated against KEDA 2.19 on the real stack (`bench/keda.sh`,
//! `docs/autoscaling.md`): the metric read at every sync and the old-way
//! scale-up limit are what it does (1 → 4 → 8 → 12 pods on a burst).

use serde::{Deserialize, Serialize};

use millpond_policy::{human, Observation};

/// Where the group starts on a partition without a committed offset.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OffsetResetPolicy {
    /// KEDA's default: such a partition counts a lag of 1.
    Latest,
    /// Such a partition counts its high watermark (from offset 0).
    Earliest,
}

/// The ScaledObject and HPA settings of the baseline.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaSpec {
    /// Target lag per replica.
    pub lag_threshold: f64,
    /// `minReplicaCount`.
    pub min_replicas: u32,
    /// `maxReplicaCount`.
    pub max_replicas: u32,
    /// Let replicas exceed the partition count.
    pub allow_idle_consumers: bool,
    /// Ignore partitions whose offset did not move since the previous poll.
    pub exclude_persistent_lag: bool,
    /// `offsetResetPolicy`.
    pub offset_reset: OffsetResetPolicy,
    /// `useCachedMetrics`: read Kafka every `pollingInterval` and serve
    /// that value in between (KEDA's default: `false`, read at every sync).
    pub use_cached_metrics: bool,
    /// KEDA's `pollingInterval`: how often a cached metric is refreshed.
    pub polling_interval_ms: u64,
    /// The HPA has no `behavior` (KEDA's default): scale-up limited to
    /// `max(2 × current, 4)` per sync, scale-down not rate-limited; the
    /// policy fields below apply only when this is `false`.
    pub no_behavior: bool,
    /// HPA `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period_ms: u64,
    /// HPA `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// Scale-up policy `Pods` value.
    pub scale_up_pods: u32,
    /// Scale-up policy `Percent` value.
    pub scale_up_percent: f64,
    /// Period of the scale-up policies.
    pub scale_up_period_ms: u64,
    /// Scale-up stabilization window.
    pub scale_up_window_ms: u64,
    /// Scale-down policy `Percent` value.
    pub scale_down_percent: f64,
    /// Period of the scale-down policy.
    pub scale_down_period_ms: u64,
    /// Scale-down stabilization window.
    pub scale_down_window_ms: u64,
}

impl KedaSpec {
    /// KEDA's and the HPA's defaults with the given threshold and bounds.
    pub fn defaults(lag_threshold: f64, min_replicas: u32, max_replicas: u32) -> Self {
        Self {
            lag_threshold,
            min_replicas,
            max_replicas,
            allow_idle_consumers: false,
            exclude_persistent_lag: false,
            offset_reset: OffsetResetPolicy::Latest,
            use_cached_metrics: false,
            polling_interval_ms: 30_000,
            no_behavior: true,
            sync_period_ms: 15_000,
            tolerance: 0.1,
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_up_period_ms: 15_000,
            scale_up_window_ms: 0,
            scale_down_percent: 100.0,
            scale_down_period_ms: 15_000,
            scale_down_window_ms: 300_000,
        }
    }
}

/// What the scaler and the HPA remember.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaState {
    /// When the metric was last read (ms).
    pub polled_ms: Option<u64>,
    /// The cached metric (total lag, capped).
    pub metric: Option<f64>,
    /// Uncapped lag of that poll.
    pub raw_lag: f64,
    /// Committed offsets of the previous poll (`excludePersistentLag`).
    pub offsets: Vec<(i32, Option<i64>)>,
    /// The HPA's recommendations: `(time ms, replicas)`.
    pub recommendations: Vec<(u64, u32)>,
    /// The HPA's scale events: `(time ms, replicas added or removed)`.
    pub events: Vec<(u64, i64)>,
}

/// The HPA's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct KedaDecision {
    /// Replicas before.
    pub from: u32,
    /// Replicas to run.
    pub replicas: u32,
    /// Why, in words.
    pub reason: String,
}

/// Reads the metric the way the Kafka scaler does.
fn poll(
    spec: &KedaSpec,
    obs: &Observation,
    prev: &KedaState,
) -> (f64, f64, Vec<(i32, Option<i64>)>) {
    let mut total = 0.0;
    for p in &obs.partitions {
        let lag = match p.committed {
            None => match spec.offset_reset {
                OffsetResetPolicy::Latest => 1.0,
                OffsetResetPolicy::Earliest => p.high_watermark as f64,
            },
            Some(c) => (p.high_watermark - c).max(0) as f64,
        };
        let persistent = spec.exclude_persistent_lag
            && prev
                .offsets
                .iter()
                .any(|(id, c)| *id == p.partition && *c == p.committed);
        if !persistent {
            total += lag;
        }
    }
    let partitions = obs.partitions.len() as f64;
    let metric = if !spec.allow_idle_consumers && total / spec.lag_threshold > partitions {
        partitions * spec.lag_threshold
    } else {
        total
    };
    let offsets = obs
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed))
        .collect();
    (metric, total, offsets)
}

/// One HPA sync. Call it every `sync_period_ms`.
pub fn decide(
    spec: &KedaSpec,
    obs: &Observation,
    prev: &KedaState,
    now_ms: u64,
) -> (KedaDecision, KedaState) {
    let mut state = prev.clone();
    let stale = !spec.use_cached_metrics
        || prev
            .polled_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= spec.polling_interval_ms);
    if stale {
        let (metric, raw, offsets) = poll(spec, obs, prev);
        state.polled_ms = Some(now_ms);
        state.metric = Some(metric);
        state.raw_lag = raw;
        state.offsets = offsets;
    }
    let metric = state.metric.unwrap_or(0.0);
    let current = obs.replicas.max(1);
    let ratio = metric / (spec.lag_threshold * current as f64);
    let recommended = if (1.0 - ratio).abs() <= spec.tolerance {
        current
    } else {
        (metric / spec.lag_threshold).ceil() as u32
    };
    let mut why = format!(
        "lag {} (read {}s ago){}, threshold {}: ",
        human(state.raw_lag),
        now_ms.saturating_sub(state.polled_ms.unwrap_or(now_ms)) / 1000,
        if metric < state.raw_lag {
            format!(", capped at {} partitions", obs.partitions.len())
        } else {
            String::new()
        },
        human(spec.lag_threshold)
    );
    why += &if recommended == current {
        format!("within tolerance of {current}")
    } else {
        format!("{recommended} wanted")
    };

    // Stabilization: scale up to the lowest, down to the highest recommendation of the windows.
    state
        .recommendations
        .retain(|(t, _)| now_ms - t < spec.scale_down_window_ms.max(spec.scale_up_window_ms));
    let mut up = recommended;
    let mut down = recommended;
    for &(t, r) in &state.recommendations {
        if now_ms - t < spec.scale_up_window_ms {
            up = up.min(r);
        }
        if now_ms - t < spec.scale_down_window_ms {
            down = down.max(r);
        }
    }
    state.recommendations.push((now_ms, recommended));
    let mut desired = current.max(up).min(down);
    if desired > recommended && desired < current {
        why += &format!(", stabilized at {desired}");
    } else if desired == current && recommended < current {
        why += &format!(
            ", held at {current} by the {}s window",
            spec.scale_down_window_ms / 1000
        );
    }

    // Rate limits: the HPA's old-way limit without a behavior, else the
    // behaviour policies (selectPolicy Max).
    let period = spec.scale_up_period_ms.max(spec.scale_down_period_ms);
    state.events.retain(|(t, _)| now_ms - t < period);
    if spec.no_behavior {
        let limit = (2 * current).max(4);
        if desired > limit {
            desired = limit;
            why += &format!(", at most max(2 × {current}, 4) per sync: {limit}");
        }
    } else if desired > current {
        let added: i64 = state
            .events
            .iter()
            .filter(|(t, d)| *d > 0 && now_ms - t < spec.scale_up_period_ms)
            .map(|(_, d)| d)
            .sum();
        let start = (current as i64 - added).max(0) as f64;
        let limit = (start + spec.scale_up_pods as f64)
            .max((start * (1.0 + spec.scale_up_percent / 100.0)).ceil()) as u32;
        if desired > limit {
            desired = limit;
            why += &format!(
                ", at most max(+{}, +{:.0}%) per {}s: {limit}",
                spec.scale_up_pods,
                spec.scale_up_percent,
                spec.scale_up_period_ms / 1000
            );
        }
    } else if desired < current {
        let removed: i64 = state
            .events
            .iter()
            .filter(|(t, d)| *d < 0 && now_ms - t < spec.scale_down_period_ms)
            .map(|(_, d)| -d)
            .sum();
        let start = (current as i64 + removed) as f64;
        let limit = (start * (1.0 - spec.scale_down_percent / 100.0))
            .floor()
            .max(0.0) as u32;
        desired = desired.max(limit);
    }
    let upper = if spec.allow_idle_consumers {
        spec.max_replicas
    } else {
        spec.max_replicas.min(obs.partitions.len().max(1) as u32)
    };
    let replicas = desired.clamp(spec.min_replicas.min(upper), upper);
    if replicas != current {
        state
            .events
            .push((now_ms, replicas as i64 - current as i64));
        why += &format!("; {current} → {replicas}");
    } else {
        why += &format!("; hold at {current}");
    }
    (
        KedaDecision {
            from: obs.replicas,
            replicas,
            reason: why,
        },
        state,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use millpond_policy::{PartitionObservation, TunedLimits};

    fn obs(lags: &[i64], replicas: u32) -> Observation {
        Observation {
            partitions: lags
                .iter()
                .enumerate()
                .map(|(i, lag)| PartitionObservation {
                    partition: i as i32,
                    committed: Some(1_000),
                    high_watermark: 1_000 + lag,
                    log_start: 0,
                    uncommitted_start: None,
                    assigned: true,
                })
                .collect(),
            pods: vec![],
            replicas,
            limits: TunedLimits {
                flush_bytes: 1 << 20,
                max_in_flight: 2,
            },
            failing: vec![],
        }
    }

    #[test]
    fn desired_is_total_lag_over_threshold_capped_at_partitions() {
        let spec = KedaSpec::defaults(1_000.0, 1, 100);
        let (d, _) = decide(&spec, &obs(&[2_500, 2_500], 1), &KedaState::default(), 0);
        assert_eq!(d.replicas, 2, "{}", d.reason);
        let (d, _) = decide(&spec, &obs(&[2_500; 12], 2), &KedaState::default(), 0);
        // 30 wanted, capped at 12 partitions; without a behavior at most
        // max(2 × 2, 4) per sync.
        assert_eq!(d.replicas, 4, "{}", d.reason);
        let (d, _) = decide(&spec, &obs(&[2_500; 12], 5), &KedaState::default(), 0);
        assert_eq!(d.replicas, 10, "{}", d.reason);
    }

    #[test]
    fn with_a_behavior_scale_up_is_max_four_pods_or_double_per_period() {
        let spec = KedaSpec {
            no_behavior: false,
            ..KedaSpec::defaults(1_000.0, 1, 100)
        };
        let (d, _) = decide(&spec, &obs(&[2_500; 12], 2), &KedaState::default(), 0);
        // +100% from 2 is 4, +4 pods is 6.
        assert_eq!(d.replicas, 6, "{}", d.reason);
    }

    #[test]
    fn scale_down_waits_for_the_five_minute_window() {
        let spec = KedaSpec::defaults(1_000.0, 1, 12);
        let (d, mut s) = decide(&spec, &obs(&[500; 12], 1), &KedaState::default(), 0);
        // 6 wanted; at most max(2 × 1, 4).
        assert_eq!(d.replicas, 4, "{}", d.reason);
        let mut replicas = d.replicas;
        let mut t = 0;
        let mut down_at = None;
        while t < 600_000 {
            t += 15_000;
            let (d, next) = decide(&spec, &obs(&[0; 12], replicas), &s, t);
            s = next;
            if d.replicas < replicas && down_at.is_none() {
                down_at = Some(t);
            }
            replicas = d.replicas;
        }
        // The high recommendation leaves the window 300 s later; then all
        // the way down at once.
        assert_eq!(replicas, 1);
        assert_eq!(down_at, Some(300_000));
    }

    #[test]
    fn the_metric_is_read_at_every_sync_unless_cached() {
        let spec = KedaSpec::defaults(1_000.0, 1, 12);
        let (_, s) = decide(&spec, &obs(&[0; 8], 1), &KedaState::default(), 0);
        let (d, _) = decide(&spec, &obs(&[625; 8], 1), &s, 15_000);
        assert_eq!(d.replicas, 4, "read fresh: {}", d.reason);

        let cached = KedaSpec {
            use_cached_metrics: true,
            ..spec
        };
        let (_, s) = decide(&cached, &obs(&[0; 8], 1), &KedaState::default(), 0);
        let (d, s) = decide(&cached, &obs(&[625; 8], 1), &s, 15_000);
        assert_eq!(
            d.replicas, 1,
            "the cached metric still says 0: {}",
            d.reason
        );
        let (d, _) = decide(&cached, &obs(&[625; 8], 1), &s, 30_000);
        assert_eq!(d.replicas, 4, "{}", d.reason);
    }

    #[test]
    fn no_committed_offset_counts_one_under_latest_and_everything_under_earliest() {
        let mut o = obs(&[0; 2], 1);
        o.partitions[0].committed = None;
        o.partitions[0].high_watermark = 50_000;
        let mut spec = KedaSpec::defaults(1_000.0, 1, 100);
        let (_, s) = decide(&spec, &o, &KedaState::default(), 0);
        assert_eq!(s.raw_lag, 1.0);
        spec.offset_reset = OffsetResetPolicy::Earliest;
        let (_, s) = decide(&spec, &o, &KedaState::default(), 0);
        assert_eq!(s.raw_lag, 50_000.0);
    }
}
