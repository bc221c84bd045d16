//! One look at the stack: the API server's and the operator's metrics, the
//! operator pods and their memory, and the difference of two looks.

use std::collections::BTreeMap;
use std::time::Instant;

use millpond_operator::metrics;
use millpond_testkit::prom::{self, Sample};

use crate::fleet::Ages;
use crate::{KAFKA_REQUESTS, READ_VERBS, RECONCILE};

/// One operator pod as the benchmark finds it.
#[derive(Debug, Clone, Default)]
pub struct OperatorPod {
    pub name: String,
    pub ip: String,
    pub container_id: String,
    pub restarts: i32,
    /// How its container last ended, when it restarted.
    pub last_end: Option<String>,
    /// The image its container runs, by digest.
    pub image_id: String,
}

/// Memory of one operator pod over the run.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// `process_resident_memory_bytes`: highest and latest.
    pub rss_peak: f64,
    pub rss_last: f64,
    /// The process' own peak (`VmHWM`), when its pid was found.
    pub hwm: f64,
    /// Its threads, most seen.
    pub threads: u64,
    /// The container's memory cgroup: usage now and its peak.
    pub cgroup_last: f64,
    pub cgroup_peak: f64,
}

/// What one moment shows: the API server's and the operator pods' metrics.
#[derive(Clone)]
pub struct Snapshot {
    pub at: Instant,
    /// `apiserver_request_total` by (resource[/subresource], verb).
    pub api: BTreeMap<(String, String), f64>,
    /// Of those, answered with a code outside 2xx.
    pub api_failed: f64,
    /// Those by (resource, verb, code).
    pub api_failures: BTreeMap<(String, String, String), f64>,
    /// CPU seconds used so far, by process group ([`cpu_by_process`]), and
    /// by the whole machine under `"all"`.
    pub cpu: BTreeMap<String, f64>,
    /// The metrics of every operator pod that answered, by pod.
    pub pods: BTreeMap<String, Vec<Sample>>,
    /// The pod holding the lease.
    pub leader: Option<String>,
    /// How long taking the snapshot took.
    pub took: f64,
}

impl Snapshot {
    pub fn leader_metrics(&self) -> &[Sample] {
        self.leader
            .as_ref()
            .and_then(|l| self.pods.get(l))
            .map_or(&[], Vec::as_slice)
    }
}

/// The increase of counter `f` from `a` to `b`, summed over the operator
/// pods (a pod that restarted counts from zero; only the leader's grow, a
/// standby neither reconciles nor observes).
pub fn increase(a: &Snapshot, b: &Snapshot, f: impl Fn(&[Sample]) -> f64) -> f64 {
    b.pods
        .iter()
        .map(|(pod, after)| {
            let after = f(after);
            match a.pods.get(pod).map(|before| f(before)) {
                Some(before) if before <= after => after - before,
                _ => after,
            }
        })
        .sum()
}

/// The reconcile histogram's bucket increases from `a` to `b`, over every pod.
pub fn reconcile_buckets(a: &Snapshot, b: &Snapshot) -> BTreeMap<prom::Bound, f64> {
    let mut total = BTreeMap::new();
    for (pod, after) in &b.pods {
        let after = prom::buckets(after, RECONCILE);
        let before = a
            .pods
            .get(pod)
            .map(|s| prom::buckets(s, RECONCILE))
            .unwrap_or_default();
        let restarted = after
            .iter()
            .any(|(le, v)| before.get(le).is_some_and(|b| b > v));
        let delta = if restarted {
            after
        } else {
            prom::bucket_delta(&after, &before)
        };
        for (le, v) in delta {
            *total.entry(le).or_insert(0.0) += v;
        }
    }
    total
}

/// What happened between two snapshots.
#[derive(Default)]
pub struct Delta {
    pub seconds: f64,
    pub api: BTreeMap<(String, String), f64>,
    pub api_failed: f64,
    pub reconciles: f64,
    pub reconcile: Option<((f64, bool), (f64, bool))>,
    /// Kafka requests by type; `None` when the operator does not count them.
    pub kafka: Option<BTreeMap<String, f64>>,
    pub kafka_clients: Option<f64>,
    pub leader_rss: Option<f64>,
    pub ages: Option<Ages>,
    pub gaps: Vec<f64>,
    pub status_updates: u64,
    /// Changes of owned objects (watch): kind → (resourceVersions, generations).
    pub changes: BTreeMap<String, (u64, u64)>,
    /// The lease changed hands between the two snapshots.
    pub leader_changed: bool,
    pub api_failures: BTreeMap<(String, String, String), f64>,
    /// Cores used on average, by process group.
    pub cores: BTreeMap<String, f64>,
}

impl Delta {
    pub fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let api = b
            .api
            .iter()
            .map(|(k, v)| (k.clone(), v - a.api.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let histogram = reconcile_buckets(a, b);
        let count = format!("{RECONCILE}_count");
        let kafka = b
            .pods
            .values()
            .flatten()
            .any(|s| s.name == KAFKA_REQUESTS)
            .then(|| {
                metrics::KAFKA_REQUEST_TYPES
                    .iter()
                    .map(|request| {
                        let n = increase(a, b, |s| {
                            prom::sum(s, KAFKA_REQUESTS, |s| s.label("request") == *request)
                        });
                        (request.to_string(), n)
                    })
                    .collect()
            });
        let leader = b.leader_metrics();
        let gauge = |name: &str| leader.iter().find(|s| s.name == name).map(|s| s.value);
        Delta {
            seconds: b.at.duration_since(a.at).as_secs_f64(),
            api,
            api_failed: b.api_failed - a.api_failed,
            reconciles: increase(a, b, |s| prom::sum(s, &count, |_| true)),
            reconcile: prom::quantile(&histogram, 0.5).zip(prom::quantile(&histogram, 0.99)),
            kafka,
            kafka_clients: gauge("millpond_operator_kafka_clients"),
            leader_rss: gauge("process_resident_memory_bytes"),
            leader_changed: a.leader != b.leader,
            api_failures: b
                .api_failures
                .iter()
                .map(|(k, v)| (k.clone(), v - a.api_failures.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
            cores: b
                .cpu
                .iter()
                .map(|(k, v)| {
                    let used = v - a.cpu.get(k).copied().unwrap_or(0.0);
                    (
                        k.clone(),
                        used / b.at.duration_since(a.at).as_secs_f64().max(1e-9),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Reads and writes over every counted resource.
    pub fn reads_writes(&self) -> (f64, f64) {
        let mut rw = (0.0, 0.0);
        for ((_, verb), v) in &self.api {
            if READ_VERBS.contains(&verb.as_str()) {
                rw.0 += v;
            } else {
                rw.1 += v;
            }
        }
        rw
    }

    pub fn short(&self) -> String {
        let (r, w) = self.reads_writes();
        let age = self
            .ages
            .as_ref()
            .map_or("n/a".into(), |a| format!("{:.1} s", a.age.max));
        format!(
            "{:.0} reconciles, API {r:.0} reads / {w:.0} writes, status age max {age}, {} status changes",
            self.reconciles, self.status_updates
        )
    }
}

/// The process groups whose CPU is reported, by the start of their command
/// name (`/proc/<pid>/comm`, at most 15 characters).
pub const CPU_GROUPS: [(&str, &str); 9] = [
    ("millpond-operat", "operator"),
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "etcd"),
    ("kube-controller", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("kubelet", "kubelet"),
    ("java", "Kafka (java)"),
    ("rustc", "builds (rustc, cargo)"),
    ("cargo", "builds (rustc, cargo)"),
];

/// CPU seconds used by the processes of each group in [`CPU_GROUPS`]
/// (threads included, children not), and by the whole machine (`all`),
/// from /proc.
pub fn cpu_by_process() -> BTreeMap<String, f64> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = BTreeMap::new();
    for (_, group) in CPU_GROUPS {
        out.insert(group.to_string(), 0.0);
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces; fields follow `) `.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after comm.
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let seconds = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / tick;
        if let Some((_, group)) = CPU_GROUPS.iter().find(|(c, _)| comm.starts_with(c)) {
            *out.entry(group.to_string()).or_insert(0.0) += seconds;
        }
    }
    if let Some(all) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let cpu = s.lines().next()?.strip_prefix("cpu ")?.to_string();
        let v: Vec<f64> = cpu
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system (idle iowait) irq softirq steal
        Some(
            [0, 1, 2, 5, 6, 7]
                .iter()
                .filter_map(|i| v.get(*i))
                .sum::<f64>()
                / tick,
        )
    }) {
        out.insert("all".into(), all);
    }
    out
}

/// The process of a container (`containerd://<id>`) on this host, found by
/// its cgroup: its peak RSS (`VmHWM`), its threads, the cgroup's memory
/// usage and peak, in bytes.
pub fn container_memory(container_id: &str) -> Option<(f64, u64, f64, f64)> {
    let id = container_id
        .rsplit("://")
        .next()
        .filter(|id| id.len() > 8)?;
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let (pid, cgroups) = pids.into_iter().find_map(|pid| {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        cgroups.contains(id).then_some((pid, cgroups))
    })?;
    let hwm = millpond_testkit::process::peak_rss_kib(pid) as f64 * 1024.0;
    let read =
        |path: String| -> Option<f64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // cgroup v1 (a `memory` hierarchy) or v2 (the unified one).
    let (usage, peak) = if let Some(path) = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
    {
        let dir = format!("/sys/fs/cgroup/memory{path}");
        (
            read(format!("{dir}/memory.usage_in_bytes"))?,
            read(format!("{dir}/memory.max_usage_in_bytes"))?,
        )
    } else {
        let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = format!("/sys/fs/cgroup{path}");
        let usage = read(format!("{dir}/memory.current"))?;
        (usage, read(format!("{dir}/memory.peak")).unwrap_or(usage))
    };
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .unwrap_or(0);
    Some((hwm, threads, usage, peak))
}
