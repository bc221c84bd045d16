//! The simulated world, one second at a time: a topic whose partitions fill
//! at the produce rate, consumer pods that drain them as fast as their CPU
//! and their sink writes allow, commits that trail consumption by a flush,
//! and rebalances that pause the partitions they move.
//!
//! Pods are fluid: in a second a pod consumes `min(cpu, sink)` records spread
//! over its partitions with a backlog (max-min fair: a partition with little
//! waiting is emptied, the others share the rest), where the sink allows
//! `maxInFlight × flushBytes / latency(flushBytes)` bytes per second and
//! `latency = base + flushBytes / bandwidth`. Records arrive on the
//! partitions by weight (even, or one hot partition). Assignment is sticky
//! and balanced by count like Kafka's cooperative-sticky assignor: a change
//! of replicas moves as few partitions as it can, and only moved partitions
//! pause.
//!
//! The buffer fullness a pod reports is what the consumer's gauge shows on
//! average: while the sink is the limit the loop waits for a permit with a
//! full buffer (fullness 1) for the share of the time the sink is slower
//! than the pod could pull; the rest of the time the buffer fills from empty
//! (half a flush on average when flushes are size-triggered, half of what
//! arrives within the flush interval when they are time-triggered).

use std::collections::VecDeque;

use millpond_policy::{Observation, PartitionObservation, PodSample, TunedLimits};

/// The physics of the simulated consumers and their sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Physics {
    /// Partitions of the topic.
    pub partitions: u32,
    /// Bytes of one record.
    pub record_bytes: f64,
    /// Records per second one pod can process when the sink is not the limit.
    pub cpu_records_per_second: f64,
    /// Fixed cost of one sink write, seconds.
    pub sink_base_latency: f64,
    /// Bytes per second of one sink write.
    pub sink_write_bandwidth: f64,
    /// Flush interval of the pods, seconds.
    pub flush_interval: f64,
    /// Seconds a moved partition is not consumed (revoke, flush, commit,
    /// pod start and join).
    pub rebalance_pause: u64,
}

impl Physics {
    /// Latency of one sink write of `flush_bytes`.
    pub fn latency(&self, flush_bytes: u64) -> f64 {
        self.sink_base_latency + flush_bytes as f64 / self.sink_write_bandwidth
    }

    /// Records per second one pod sustains with `limits`.
    pub fn capacity(&self, limits: TunedLimits) -> f64 {
        self.cpu_records_per_second.min(self.sink_limit(limits))
    }

    fn sink_limit(&self, limits: TunedLimits) -> f64 {
        limits.max_in_flight as f64 * limits.flush_bytes as f64
            / self.record_bytes
            / self.latency(limits.flush_bytes)
    }
}

/// What a pod did since the previous observation.
#[derive(Debug, Clone, Default)]
struct PodCounters {
    consumed: f64,
    backpressure: f64,
    flushes: f64,
    size_flushes: f64,
    latency: f64,
    fullness: f64,
    saturation: f64,
    seconds: f64,
}

impl PodCounters {
    /// One second in which the pod took `take` of `wanted` records with
    /// `limits`. Returns its buffer fullness and how long a flush took to
    /// fill, seconds.
    fn record(&mut self, ph: &Physics, limits: TunedLimits, take: f64, wanted: f64) -> (f64, f64) {
        let latency = ph.latency(limits.flush_bytes);
        let flush_records = limits.flush_bytes as f64 / ph.record_bytes;
        let sink = ph.sink_limit(limits);
        self.seconds += 1.0;
        self.consumed += take;
        // Share of the second spent waiting for a permit, buffer full.
        let waiting = if sink < ph.cpu_records_per_second && wanted > sink {
            1.0 - sink / ph.cpu_records_per_second.min(wanted)
        } else {
            0.0
        };
        self.backpressure += waiting;
        let size_triggered = take * ph.flush_interval >= flush_records;
        let filling = if size_triggered {
            0.5
        } else {
            take * ph.flush_interval / flush_records / 2.0
        };
        let fullness = waiting + (1.0 - waiting) * filling;
        self.fullness += fullness;
        if take <= 0.0 {
            return (fullness, ph.flush_interval);
        }
        let flushes = if size_triggered {
            take / flush_records
        } else {
            1.0 / ph.flush_interval
        };
        self.flushes += flushes;
        if size_triggered {
            self.size_flushes += flushes;
        }
        self.latency += flushes * latency;
        self.saturation += (take / flush_records * latency / limits.max_in_flight as f64).min(1.0);
        (fullness, (flush_records / take).min(ph.flush_interval))
    }
}

#[derive(Debug, Clone)]
struct Pod {
    partitions: Vec<usize>,
    changed_at: u64,
    counters: PodCounters,
}

/// Longest commit delay kept, seconds.
const HISTORY: usize = 64;

/// The topic, the group and its pods.
#[derive(Debug, Clone)]
pub struct Cluster {
    physics: Physics,
    high_watermark: Vec<f64>,
    consumed: Vec<f64>,
    committed: Vec<f64>,
    history: Vec<VecDeque<f64>>,
    owner: Vec<Option<usize>>,
    paused_until: Vec<u64>,
    pods: Vec<Pod>,
    limits: TunedLimits,
    last_observed: u64,
    /// A partition that is never consumed from this second on.
    stuck: Option<(usize, u64)>,
    /// Share of the records each partition gets.
    weights: Vec<f64>,
    /// Highest buffer fullness among the pods in the last second.
    fullness_now: f64,
}

impl Cluster {
    /// A caught-up group of `replicas` pods.
    pub fn new(
        physics: Physics,
        replicas: u32,
        limits: TunedLimits,
        stuck: Option<(u32, u64)>,
    ) -> Self {
        let n = physics.partitions.max(1) as usize;
        let mut cluster = Self {
            high_watermark: vec![0.0; n],
            consumed: vec![0.0; n],
            committed: vec![0.0; n],
            history: vec![VecDeque::from([0.0]); n],
            owner: vec![None; n],
            paused_until: vec![0; n],
            pods: Vec::new(),
            limits,
            last_observed: 0,
            stuck: stuck.map(|(p, t)| (p as usize % n, t)),
            weights: vec![1.0 / n as f64; n],
            fullness_now: 0.0,
            physics,
        };
        cluster.rescale(replicas.max(1), 0, false);
        cluster
    }

    /// Sends `share` of the records to `partition`, the rest evenly to the
    /// others.
    pub fn with_hot_partition(mut self, partition: u32, share: f64) -> Self {
        let n = self.weights.len();
        let hot = partition as usize % n;
        let share = share.clamp(0.0, 1.0);
        for (p, w) in self.weights.iter_mut().enumerate() {
            *w = if p == hot {
                share
            } else if n > 1 {
                (1.0 - share) / (n - 1) as f64
            } else {
                1.0
            };
        }
        self
    }

    /// Highest buffer fullness among the pods in the last second (what
    /// `status.bufferFullness` shows).
    pub fn fullness(&self) -> f64 {
        self.fullness_now
    }

    /// Pods running.
    pub fn replicas(&self) -> u32 {
        self.pods.len() as u32
    }

    /// Limits in force.
    pub fn limits(&self) -> TunedLimits {
        self.limits
    }

    /// Sets new limits on every pod (live limits, no restart).
    pub fn set_limits(&mut self, limits: TunedLimits) {
        self.limits = limits;
    }

    fn is_stuck(&self, p: usize, t: u64) -> bool {
        self.stuck.is_some_and(|(s, from)| s == p && t >= from)
    }

    /// Lag per partition: high watermark − committed.
    fn lag(&self, p: usize) -> f64 {
        (self.high_watermark[p] - self.committed[p]).max(0.0)
    }

    /// Total lag, and the lag of the partitions that are not stuck.
    pub fn lags(&self, t: u64) -> (f64, f64) {
        let total = (0..self.high_watermark.len()).map(|p| self.lag(p)).sum();
        let healthy = (0..self.high_watermark.len())
            .filter(|&p| !self.is_stuck(p, t))
            .map(|p| self.lag(p))
            .sum();
        (total, healthy)
    }

    /// Changes the number of pods at second `t`, moving as few partitions as
    /// a balanced assignment allows; moved partitions commit what was
    /// consumed and pause.
    pub fn rescale(&mut self, replicas: u32, t: u64, pause: bool) {
        let r = replicas.max(1) as usize;
        let n = self.owner.len();
        while self.pods.len() < r {
            self.pods.push(Pod {
                partitions: Vec::new(),
                changed_at: t,
                counters: PodCounters::default(),
            });
        }
        self.pods.truncate(r);
        let (base, extra) = (n / r, n % r);
        // Pods holding the most keep the larger shares.
        let mut order: Vec<usize> = (0..r).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.pods[i].partitions.len()));
        let mut quota = vec![base; r];
        for &i in order.iter().take(extra) {
            quota[i] += 1;
        }
        let mut kept: Vec<Vec<usize>> = vec![Vec::new(); r];
        let mut free = Vec::new();
        for p in 0..n {
            match self.owner[p] {
                Some(o) if o < r && kept[o].len() < quota[o] => kept[o].push(p),
                _ => free.push(p),
            }
        }
        for p in free {
            let Some(o) = (0..r).find(|&o| kept[o].len() < quota[o]) else {
                break;
            };
            kept[o].push(p);
            if self.owner[p].is_some() {
                // Revoked: the old owner flushes and commits what it consumed.
                self.committed[p] = self.consumed[p];
                self.history[p] = VecDeque::from([self.consumed[p]]);
            }
            self.owner[p] = Some(o);
            if pause {
                self.paused_until[p] = t + self.physics.rebalance_pause;
            }
        }
        for (i, parts) in kept.into_iter().enumerate() {
            if parts != self.pods[i].partitions {
                self.pods[i].changed_at = t;
                self.pods[i].partitions = parts;
            }
        }
    }

    /// Runs second `t`: `rate` records arrive, spread by weight; pods
    /// consume, write and commit.
    pub fn step(&mut self, t: u64, rate: f64) {
        let n = self.high_watermark.len();
        for (hw, w) in self.high_watermark.iter_mut().zip(&self.weights) {
            *hw += rate * w;
        }
        let latency = self.physics.latency(self.limits.flush_bytes);
        let capacity = self.physics.capacity(self.limits);
        let mut delay = vec![0usize; n];
        self.fullness_now = 0.0;
        for i in 0..self.pods.len() {
            let (take, wanted) = self.consume(i, t, capacity);
            let (fullness, fill) =
                self.pods[i]
                    .counters
                    .record(&self.physics, self.limits, take, wanted);
            self.fullness_now = self.fullness_now.max(fullness);
            let d = (latency + fill / 2.0).round() as usize;
            for &p in &self.pods[i].partitions {
                delay[p] = d.min(HISTORY - 1);
            }
        }
        for (p, back) in delay.into_iter().enumerate() {
            let h = &mut self.history[p];
            h.push_back(self.consumed[p]);
            while h.len() > HISTORY {
                h.pop_front();
            }
            let at = h[h.len() - 1 - back.min(h.len() - 1)];
            self.committed[p] = self.committed[p].max(at);
        }
    }

    /// Pod `i` consumes up to `capacity` records in second `t` from its
    /// partitions that move, max-min fair (partitions with little waiting
    /// are emptied, the rest share what is left evenly). Returns what it
    /// took and what was waiting.
    fn consume(&mut self, i: usize, t: u64, capacity: f64) -> (f64, f64) {
        let mut waiting: Vec<(usize, f64)> = self.pods[i]
            .partitions
            .iter()
            .copied()
            .filter(|&p| self.paused_until[p] <= t && !self.is_stuck(p, t))
            .map(|p| (p, (self.high_watermark[p] - self.consumed[p]).max(0.0)))
            .collect();
        let wanted: f64 = waiting.iter().map(|(_, w)| w).sum();
        let take = capacity.min(wanted);
        waiting.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut left = take;
        let count = waiting.len();
        for (k, (p, w)) in waiting.into_iter().enumerate() {
            let got = w.min(left / (count - k) as f64);
            self.consumed[p] += got;
            left -= got;
        }
        (take, wanted)
    }

    /// What the operator would observe at second `t`, over the seconds since
    /// the previous observation; starts a new interval.
    pub fn observe(&mut self, t: u64) -> Observation {
        let since = self.last_observed;
        self.last_observed = t;
        let partitions = (0..self.owner.len())
            .map(|p| PartitionObservation {
                partition: p as i32,
                committed: Some(self.committed[p].floor() as i64),
                high_watermark: self.high_watermark[p].floor() as i64,
                log_start: 0,
                uncommitted_start: None,
                assigned: self.owner[p].is_some() && self.paused_until[p] <= t,
            })
            .collect();
        let pods = self
            .pods
            .iter_mut()
            .map(|pod| {
                let c = std::mem::take(&mut pod.counters);
                let secs = c.seconds.max(1.0);
                PodSample {
                    partitions: pod.partitions.iter().map(|&p| p as i32).collect(),
                    full_interval: pod.changed_at < since,
                    delivered_rate: c.consumed / secs,
                    buffer_fullness: c.fullness / secs,
                    flushes: c.flushes.round() as u64,
                    size_flushes: c.size_flushes.round() as u64,
                    flush_seconds: (c.flushes > 0.0).then(|| c.latency / c.flushes),
                    in_flight_saturation: c.saturation / secs,
                    errors: 0,
                    backpressure_seconds: c.backpressure,
                    ..PodSample::default()
                }
            })
            .collect();
        Observation {
            partitions,
            pods,
            replicas: self.replicas(),
            limits: self.limits,
            failing: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn physics() -> Physics {
        Physics {
            partitions: 12,
            record_bytes: 1024.0,
            cpu_records_per_second: 10_000.0,
            sink_base_latency: 0.2,
            sink_write_bandwidth: 40.0 * 1024.0 * 1024.0,
            flush_interval: 5.0,
            rebalance_pause: 10,
        }
    }

    const LIMITS: TunedLimits = TunedLimits {
        flush_bytes: 512 << 10,
        max_in_flight: 2,
    };

    /// The value of an unlabelled series in Prometheus text.
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in the fixture"))
    }

    #[test]
    fn a_sink_bound_pod_is_modelled_as_the_real_consumer_reports_it() {
        // Two scrapes, 15 s apart, of a real millpond-consumer whose HTTP sink
        // holds every batch 1 s (e2e/record-pod-metrics: 256Ki flushes, 2
        // writes in flight, records of 500 B, a backlog).
        let (a, b) = (
            include_str!("../../operator/src/observe/fixtures/sink-bound.1.prom"),
            include_str!("../../operator/src/observe/fixtures/sink-bound.2.prom"),
        );
        let seconds = 15.0;
        let mean = |name: &str| (sample(b, name) - sample(a, name)) / seconds;
        let real_rate = mean("millpond_records_delivered_total");
        let real_fullness = mean("millpond_buffer_fullness_seconds_total");
        let real_waiting = mean("millpond_backpressure_wait_seconds_total");

        let ph = Physics {
            partitions: 4,
            record_bytes: 500.0,
            // What one consumer takes on this machine when the sink is not
            // the limit (docs/benchmarks.md: 2M records in about 9 s).
            cpu_records_per_second: 200_000.0,
            sink_base_latency: 1.0,
            sink_write_bandwidth: 1e12,
            flush_interval: 5.0,
            rebalance_pause: 10,
        };
        let limits = TunedLimits {
            flush_bytes: 256 << 10,
            max_in_flight: 2,
        };
        let rate = ph.capacity(limits);
        let mut pod = PodCounters::default();
        let (fullness, _) = pod.record(&ph, limits, rate, 1e9);
        assert!(
            (rate / real_rate - 1.0).abs() < 0.05,
            "modelled {rate:.0} records/s, the real pod {real_rate:.0}"
        );
        assert!(
            (fullness - real_fullness).abs() < 0.1,
            "modelled fullness {fullness:.2}, the real pod's mean {real_fullness:.2}"
        );
        assert!(
            (pod.backpressure - real_waiting).abs() < 0.1,
            "modelled {:.2} of the time waiting for a permit, the real pod {real_waiting:.2}",
            pod.backpressure
        );
    }

    #[test]
    fn rescaling_moves_few_partitions_and_keeps_the_spread_even() {
        let mut c = Cluster::new(physics(), 4, LIMITS, None);
        let before = c.owner.clone();
        c.rescale(6, 100, true);
        let moved = (0..12).filter(|&p| c.owner[p] != before[p]).count();
        assert_eq!(moved, 4, "two new pods take two partitions each");
        let mut counts = [0; 6];
        for o in c.owner.iter().flatten() {
            counts[*o] += 1;
        }
        assert_eq!(counts, [2; 6]);
        assert_eq!(c.paused_until.iter().filter(|&&u| u == 110).count(), 4);
    }

    #[test]
    fn a_pod_drains_at_its_capacity_and_commits_behind_consumption() {
        let ph = physics();
        let cap = ph.capacity(LIMITS);
        let mut c = Cluster::new(ph, 1, LIMITS, None);
        for t in 0..60 {
            c.step(t, 2.0 * cap);
        }
        let (lag, _) = c.lags(60);
        // Half of what arrives is consumed; the commit trails by a little more.
        assert!(
            lag >= 60.0 * cap && lag < 63.0 * cap,
            "lag {lag}, capacity {cap}"
        );
        let obs = c.observe(60);
        assert!((obs.pods[0].delivered_rate - cap).abs() < 1.0);
        assert!(obs.pods[0].backpressure_seconds > 0.0);
    }

    #[test]
    fn a_stuck_partition_is_never_consumed() {
        let mut c = Cluster::new(physics(), 2, LIMITS, Some((3, 10)));
        for t in 0..100 {
            c.step(t, 1_200.0);
        }
        let (total, healthy) = c.lags(100);
        assert!(total - healthy >= 9_000.0, "{total} {healthy}");
        assert!(healthy < 2_000.0, "{healthy}");
    }
}
