//! The Markdown report: arithmetic on what was measured, and words.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::fleet::{FirstObservations, Quantiles};
use crate::snapshot::{Delta, Memory, OperatorPod, CPU_GROUPS};
use crate::{Args, MIB, READ_VERBS};

#[derive(Default)]
pub struct Report {
    pub create_seconds: f64,
    pub whole_seconds: f64,
    pub first_observations: FirstObservations,
    pub baseline: Option<Delta>,
    pub warmup: Option<Delta>,
    pub settling: Option<Delta>,
    pub steady: Option<Delta>,
    pub intervals: Vec<Delta>,
    pub memory: BTreeMap<String, Memory>,
    pub operator_pods: Vec<OperatorPod>,
    pub leaders: Vec<String>,
    pub others: Vec<String>,
    /// Consumers never observed, with what their status says.
    pub unobserved: Vec<String>,
    /// (ReplicaSets, Deployments) in the consumers' namespace at the end.
    pub replica_sets: Option<(usize, usize)>,
    /// The JSON size of each kind's list in the consumers' namespace.
    pub list_bytes: Vec<(&'static str, usize)>,
    pub notes: Vec<String>,
}

impl Report {
    /// The phases of the run, in order (settling only when there was one).
    pub fn phases(&self) -> Vec<(&'static str, &Option<Delta>)> {
        let mut phases = vec![
            ("no consumers", &self.baseline),
            ("creation and warm-up", &self.warmup),
        ];
        if self.settling.is_some() {
            phases.push(("settling", &self.settling));
        }
        phases.push(("steady", &self.steady));
        phases
    }

    /// The report in Markdown.
    pub fn render(&self, args: &Args) -> String {
        let mut out = String::new();
        self.header(args, &mut out);
        self.freshness(args, &mut out);
        self.memory(&mut out);
        self.reconciles(args, &mut out);
        self.cpu(&mut out);
        self.intervals(args, &mut out);
        self.api_requests(args, &mut out);
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// The title, the run's settings and the operator's image.
    pub fn header(&self, args: &Args, out: &mut String) {
        let n = args.count;
        let _ = writeln!(out, "## {n} MillpondConsumers on one operator\n");
        let _ = writeln!(
            out,
            "Paused at 0 replicas (no pods), one topic, a group each; interval {} s; {} steady intervals, after {} s of settling (a scale-down window) from the end of the warm-up. Created in {:.1} s ({} server-side applies at once); whole run {:.0} s.\n",
            args.interval_seconds, args.steady_intervals, args.settle_seconds, self.create_seconds, args.concurrency, self.whole_seconds
        );

        let mut images: Vec<&str> = self
            .operator_pods
            .iter()
            .map(|p| p.image_id.as_str())
            .collect();
        images.sort_unstable();
        images.dedup();
        let _ = writeln!(out, "Operator image: {}.\n", images.join(", "));

        if !self.others.is_empty() {
            let _ = writeln!(
                out,
                "**Not alone on the stack, so these numbers are not the operator's own**: {}.\n",
                self.others.join(", ")
            );
        }
    }

    /// How long until every consumer was observed.
    pub fn freshness(&self, args: &Args, out: &mut String) {
        let n = args.count;
        let f = &self.first_observations;
        let _ = writeln!(out, "### Until every consumer was observed\n");
        let _ = writeln!(out, "| consumers observed | all observed after (from the first create) | per consumer, creation → first observation: p50 / p99 / max | with status.lastObservedTime |");
        let _ = writeln!(out, "|---:|---:|---|---:|");
        let _ = writeln!(
            out,
            "| {} of {n} | {} | {} | {} |\n",
            f.observed,
            f.all_after
                .map_or("not within the warm-up".into(), |s| format!("{s:.1} s")),
            seconds3(&f.latency),
            f.with_observed_time
        );
        if !self.unobserved.is_empty() {
            let _ = writeln!(
                out,
                "Never observed within the warm-up ({}): {}{}.\n",
                self.unobserved.len(),
                self.unobserved[..self.unobserved.len().min(5)].join(" | "),
                if self.unobserved.len() > 5 {
                    " | ..."
                } else {
                    ""
                }
            );
        }
    }

    /// The operator's memory, per pod.
    pub fn memory(&self, out: &mut String) {
        let _ = writeln!(out, "### Operator memory\n");
        let _ = writeln!(out, "| pod | role | restarts | RSS peak (sampled) | RSS at the end | process peak (VmHWM) | threads (most) | cgroup at the end | cgroup peak |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, m) in &self.memory {
            let role = if self.leaders.last() == Some(name) {
                "leader"
            } else if self.leaders.contains(name) {
                "leader earlier"
            } else {
                "standby"
            };
            let restarts = self
                .operator_pods
                .iter()
                .find(|p| &p.name == name)
                .map_or("gone".into(), |p| p.restarts.to_string());
            let _ = writeln!(
                out,
                "| {name} | {role} | {restarts} | {} | {} | {} | {} | {} | {} |",
                mib(m.rss_peak),
                mib(m.rss_last),
                mib(m.hwm),
                m.threads,
                mib(m.cgroup_last),
                mib(m.cgroup_peak)
            );
        }
        for pod in &self.operator_pods {
            if let Some(end) = &pod.last_end {
                let _ = writeln!(out, "\n{} last ended: {end}.", pod.name);
            }
        }
        if self.leaders.len() > 1 {
            let _ = writeln!(
                out,
                "\nLeadership changed hands: {}.",
                self.leaders.join(" → ")
            );
        }
    }

    /// Reconcile durations and Kafka requests, per phase.
    pub fn reconciles(&self, args: &Args, out: &mut String) {
        let interval = args.interval_seconds as f64;
        let _ = writeln!(out, "\n### Reconciles, Kafka and API requests by phase\n");
        let _ = writeln!(out, "Per interval ({} s): totals of the phase divided by its length in intervals. Reconcile quantiles from the histogram's bucket deltas (linear inside a bucket; `>` when in the +Inf bucket).\n", args.interval_seconds);
        let _ = writeln!(out, "| phase | length | reconciles / interval | reconcile p50 | reconcile p99 | Kafka requests / interval | Kafka clients | API reads / interval | API writes / interval | API non-2xx |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        for (phase, d) in self.phases() {
            let Some(d) = d else { continue };
            let phase = if d.leader_changed {
                format!("{phase} (the lease changed hands)")
            } else {
                phase.to_string()
            };
            let per = interval / d.seconds.max(1e-9);
            let (r, w) = d.reads_writes();
            let _ = writeln!(
                out,
                "| {phase} | {:.0} s | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
                d.seconds,
                d.reconciles * per,
                quantile(d.reconcile.map(|q| q.0)),
                quantile(d.reconcile.map(|q| q.1)),
                kafka(&d.kafka, per),
                d.kafka_clients.map_or("n/a".into(), |c| format!("{c:.0}")),
                r * per,
                w * per,
                d.api_failed
            );
        }
        self.api_failures(interval, out);
    }

    /// The answers outside 2xx per interval, most first, per phase.
    fn api_failures(&self, interval: f64, out: &mut String) {
        let mut failures = Vec::new();
        for (phase, d) in self.phases() {
            let Some(d) = d else { continue };
            let per = interval / d.seconds.max(1e-9);
            let mut top: Vec<_> = d.api_failures.iter().collect();
            top.sort_by(|a, b| b.1.total_cmp(a.1));
            if !top.is_empty() {
                failures.push(format!(
                    "{phase}: {}",
                    top.iter()
                        .take(6)
                        .map(|((res, verb, code), n)| format!(
                            "{verb} {res} {code} {:.1}",
                            *n * per
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if !failures.is_empty() {
            let _ = writeln!(
                out,
                "\nAPI answers outside 2xx per interval, by verb, resource and code (most first): {}.",
                failures.join("; ")
            );
        }
    }

    /// CPU seconds per process group.
    pub fn cpu(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### CPU, cores used on average
"
        );
        let _ = writeln!(out, "From /proc (user and system time of each process group, threads included), beside the whole machine's busy time; `rest` is everything else on the machine (the node's containerd and shims, this benchmark, anything else running).\n");
        let phases = self.phases();
        let _ = writeln!(
            out,
            "| process | {} |",
            phases
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---:|".repeat(phases.len()));
        let mut groups: Vec<&str> = CPU_GROUPS.iter().map(|(_, g)| *g).collect();
        groups.dedup();
        let cell = |d: &Option<Delta>, g: &str| {
            d.as_ref()
                .and_then(|d| d.cores.get(g))
                .map_or("n/a".into(), |c| format!("{c:.2}"))
        };
        let row = |f: &dyn Fn(&Option<Delta>) -> String| {
            phases
                .iter()
                .map(|(_, d)| f(d))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        for g in &groups {
            let _ = writeln!(out, "| {g} | {} |", row(&|d| cell(d, g)));
        }
        let rest = |d: &Option<Delta>| {
            d.as_ref().map_or("n/a".into(), |d| {
                let all = d.cores.get("all").copied().unwrap_or(0.0);
                let named: f64 = groups.iter().filter_map(|g| d.cores.get(*g)).sum();
                format!("{:.2}", (all - named).max(0.0))
            })
        };
        let _ = writeln!(out, "| rest | {} |", row(&rest));
        let _ = writeln!(
            out,
            "| **whole machine** ({} cores) | {} |",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            row(&|d| cell(d, "all"))
        );
    }

    /// Each steady interval.
    pub fn intervals(&self, args: &Args, out: &mut String) {
        let n = args.count;
        let interval = args.interval_seconds as f64;
        let _ = writeln!(out, "\n### Each steady interval\n");
        let _ = writeln!(out, "Status age: now − status.lastObservedTime over all {n} consumers at the interval's end. Gap: time between two successive observations of one consumer, over every refresh seen in the interval (the goal: at most {} s). The intervals end when a snapshot is taken, so their lengths vary; the counts are per {} s.\n", args.interval_seconds, args.interval_seconds);
        let _ = writeln!(out, "| # | length | status age p50 / p99 / max | without lastObservedTime | refreshes seen | gap p50 / p99 / max | status changes (watch) | owned objects changed (watch) | reconciles | reconcile p50 / p99 | API reads | API writes | Kafka requests | leader RSS |");
        let _ = writeln!(
            out,
            "|---:|---:|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|---:|"
        );
        for (i, d) in self.intervals.iter().enumerate() {
            let (r, w) = d.reads_writes();
            let ages = d.ages.clone().unwrap_or_default();
            let mut gaps = d.gaps.clone();
            let gaps = Quantiles::of(&mut gaps);
            let number = format!("{}{}", i + 1, if d.leader_changed { " *" } else { "" });
            let per = interval / d.seconds.max(1e-9);
            let (r, w) = (r * per, w * per);
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {} / {} | {r:.0} | {w:.0} | {} | {} |",
                number,
                d.seconds,
                seconds3(&ages.age),
                ages.missing,
                gaps.n as f64 * per,
                seconds3(&gaps),
                d.status_updates as f64 * per,
                d.changes.values().map(|c| c.0).sum::<u64>() as f64 * per,
                d.reconciles * per,
                quantile(d.reconcile.map(|q| q.0)),
                quantile(d.reconcile.map(|q| q.1)),
                kafka(&d.kafka, per),
                d.leader_rss.map_or("n/a".into(), mib)
            );
        }

        if self.intervals.iter().any(|d| d.leader_changed) {
            let _ = writeln!(out, "\n\\* the lease changed hands in this interval.");
        }
    }

    /// API requests by resource, and what the namespace held at the end.
    pub fn api_requests(&self, args: &Args, out: &mut String) {
        let interval = args.interval_seconds as f64;
        let _ = writeln!(out, "\n### API requests per interval, by resource\n");
        let _ = writeln!(out, "From the API server's `apiserver_request_total`: every client (the operator, the controller manager, the scheduler, the kubelet, this benchmark's watch), so the phase without consumers is the background. Reads: GET, LIST, WATCH; writes: everything else (APPLY is a server-side apply). Changed: modifications of the consumers' objects seen by this benchmark's watches (new resourceVersions; in brackets new generations, i.e. spec or annotation changes of a Deployment); a write that changed nothing is not seen.\n");
        let _ = writeln!(out, "| resource | no consumers: reads / writes | steady: reads | steady: writes | steady: objects changed | steady, by verb |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
        let changed = self.steady_changes(interval);
        let base = by_resource(&self.baseline, interval);
        let steady = by_resource(&self.steady, interval);
        let mut resources: Vec<&String> = base.keys().chain(steady.keys()).collect();
        resources.sort();
        resources.dedup();
        for res in resources {
            let (br, bw) = reads_writes(base.get(res));
            let (sr, sw) = reads_writes(steady.get(res));
            let verbs = steady
                .get(res)
                .map(|v| {
                    v.iter()
                        .map(|(verb, n)| format!("{verb} {n:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let changed = changed_cell(res, changed.get(res.as_str()));
            let _ = writeln!(
                out,
                "| {res} | {br:.1} / {bw:.1} | {sr:.1} | {sw:.1} | {changed} | {verbs} |"
            );
        }
        self.namespace_at_the_end(out);
    }

    /// The owned objects changed per interval in the steady phase, by
    /// resource (`deployments`, ...): (resourceVersions, generations).
    fn steady_changes(&self, interval: f64) -> BTreeMap<String, (f64, f64)> {
        let per_steady = self
            .steady
            .as_ref()
            .map_or(0.0, |d| interval / d.seconds.max(1e-9));
        self.steady
            .iter()
            .flat_map(|d| &d.changes)
            .map(|(kind, (versions, generations))| {
                (
                    format!("{}s", kind.to_lowercase()),
                    (
                        *versions as f64 * per_steady,
                        *generations as f64 * per_steady,
                    ),
                )
            })
            .collect()
    }

    /// The size of the watched lists and the ReplicaSets left over.
    fn namespace_at_the_end(&self, out: &mut String) {
        if !self.list_bytes.is_empty() {
            let _ = writeln!(
                out,
                "\nWhat the operator's watches hold for these consumers, as the API server's JSON lists: {} (total {}).",
                self.list_bytes
                    .iter()
                    .map(|(k, b)| format!("{k} {}", mib(*b as f64)))
                    .collect::<Vec<_>>()
                    .join(", "),
                mib(self.list_bytes.iter().map(|(_, b)| *b as f64).sum())
            );
        }
        if let Some((rs, deployments)) = self.replica_sets {
            let _ = writeln!(
                out,
                "\nAt the end the consumers' namespace held {deployments} Deployments and {rs} ReplicaSets."
            );
        }
    }
}

/// A phase's API requests per interval, by resource and verb.
fn by_resource(d: &Option<Delta>, interval: f64) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut m: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    if let Some(d) = d {
        let per = interval / d.seconds.max(1e-9);
        for ((res, verb), v) in &d.api {
            *m.entry(res.clone())
                .or_default()
                .entry(verb.clone())
                .or_insert(0.0) += v * per;
        }
    }
    m
}

/// Reads and writes among some requests by verb.
fn reads_writes(verbs: Option<&BTreeMap<String, f64>>) -> (f64, f64) {
    let mut rw = (0.0, 0.0);
    for (verb, v) in verbs.into_iter().flatten() {
        if READ_VERBS.contains(&verb.as_str()) {
            rw.0 += v;
        } else {
            rw.1 += v;
        }
    }
    rw
}

/// The "objects changed" cell of a resource: blank for the kinds not watched.
fn changed_cell(resource: &str, changed: Option<&(f64, f64)>) -> String {
    match (changed, resource) {
        (Some((v, g)), "deployments") => format!("{v:.1} ({g:.1})"),
        (Some((v, _)), _) => format!("{v:.1}"),
        (None, "configmaps" | "services" | "poddisruptionbudgets" | "secrets") => "0.0".into(),
        (None, "deployments") => "0.0 (0.0)".into(),
        (None, _) => String::new(),
    }
}

pub fn mib(bytes: f64) -> String {
    if bytes > 0.0 {
        format!("{:.1} MiB", bytes / MIB)
    } else {
        "n/a".into()
    }
}

pub fn seconds3(q: &Quantiles) -> String {
    if q.n == 0 {
        "n/a".into()
    } else {
        format!("{:.1} / {:.1} / {:.1} s", q.p50, q.p99, q.max)
    }
}

pub fn quantile(q: Option<(f64, bool)>) -> String {
    match q {
        None => "n/a".into(),
        Some((v, true)) => format!("> {}", duration(v)),
        Some((v, false)) => duration(v),
    }
}

pub fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

pub fn kafka(by_type: &Option<BTreeMap<String, f64>>, per: f64) -> String {
    match by_type {
        None => "n/a (not counted by this operator)".into(),
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k} {:.0}", v * per))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
