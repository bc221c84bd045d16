//! Why a consumer's pods do not run as they should, read from the pods'
//! own status: a crash loop (with the consumer's exit message, which the
//! pods write to their termination log), an `OOMKilled`, an image that
//! cannot be pulled. The `Ready` condition carries it, so `kubectl get mpc`
//! never shows a consumer as fine while its pods restart.
//!
//! A consumer without a dead-letter topic that meets a record its sink
//! cannot take exits (code 3) with `poison record at
//! <topic>/<partition>@<offset>: <reason>`, and stops there again after
//! every restart: that is read from its exit message ([`PoisonRecord`]).
//! The pods that fail on their own, and those not ready for longer than
//! [`UNREADY_GRACE_SECONDS`], are what the policy must not answer with more
//! pods ([`failing`]).

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use millpond_core::pod::env;

use millpond_policy::FailingPod;

/// A pod not ready for longer than this (seconds) fails on its own: a
/// starting pod is ready once the group gave it partitions.
pub const UNREADY_GRACE_SECONDS: i64 = 120;
/// A pod running again after stopping at a poison record is still taken to
/// stop there again for this long (seconds) after it started: the crash
/// loop's back-off keeps it waiting at most 5 minutes between runs.
pub const POISON_RUN_SECONDS: i64 = 600;
/// What the consumer's exit message says before a poison record's position.
const POISON: &str = "poison record at ";

/// One pod's trouble, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTrouble {
    pub pod: String,
    /// The kubelet's reason, CamelCase: `CrashLoopBackOff`, `OOMKilled`,
    /// `ImagePullBackOff`, `CreateContainerConfigError`, ...
    pub reason: String,
    /// What the pod said last: its termination message (the consumer's exit
    /// message) or the kubelet's message.
    pub message: String,
    pub restarts: i32,
    /// The poison record it stopped at, when it did.
    pub poison: Option<PoisonRecord>,
    /// It runs and serves its partitions (running again after an OOM kill).
    pub serving: bool,
}

/// A record the consumer could not deliver and had no dead-letter topic for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The sink's or the consumer's reason.
    pub reason: String,
}

impl std::fmt::Display for PoisonRecord {
    /// `orders/0@10`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// The poison record the last line of `text` that names one names:
/// `... poison record at <topic>/<partition>@<offset>: <reason>`, found
/// anywhere in the line (after `error: ` or an error's context). The
/// consumer's own hint at its `DEAD_LETTER_TOPIC` variable is dropped: the
/// operator names the spec field instead.
pub fn poison_record(text: &str) -> Option<PoisonRecord> {
    let line = text.lines().rev().find(|l| l.contains(POISON))?;
    let (_, rest) = line.split_once(POISON)?;
    let (position, reason) = rest.split_once(": ").unwrap_or((rest, ""));
    let (topic, at) = position.trim().rsplit_once('/')?;
    let (partition, offset) = at.split_once('@')?;
    let reason = reason.trim();
    let reason = match reason.rfind(" (") {
        Some(i) if reason[i..].contains(env::DEAD_LETTER_TOPIC) => &reason[..i],
        _ => reason,
    };
    Some(PoisonRecord {
        topic: topic.to_string(),
        partition: partition.parse().ok()?,
        offset: offset.parse().ok()?,
        reason: reason.to_string(),
    })
}

/// Waiting reasons that mean the pod will not become ready by itself.
const STUCK_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The troubles of `pods` at `now`, in the order given.
pub fn troubles(pods: &[Pod], now: Timestamp) -> Vec<PodTrouble> {
    pods.iter().filter_map(|p| trouble(p, now)).collect()
}

fn trouble(pod: &Pod, now: Timestamp) -> Option<PodTrouble> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let state = status.state.as_ref()?;
    let waiting = state.waiting.as_ref();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let poison = state
        .terminated
        .as_ref()
        .or(last)
        .and_then(|t| poison_record(t.message.as_deref()?));
    let waiting_reason = waiting.and_then(|w| w.reason.clone()).unwrap_or_default();
    if STUCK_WAITING.contains(&waiting_reason.as_str()) {
        // A crash loop says why the container last ended: OOMKilled, or the
        // consumer's own exit message.
        let reason = match last.and_then(|t| t.reason.as_deref()) {
            Some("OOMKilled") => "OOMKilled".to_string(),
            _ => waiting_reason,
        };
        let message = last_words(status)
            .or_else(|| waiting.and_then(|w| w.message.clone()))
            .unwrap_or_default();
        return Some(PodTrouble {
            pod: name,
            reason,
            message,
            restarts: status.restart_count,
            poison,
            serving: false,
        });
    }
    // Running again after an OOM kill: worth saying, it will happen again.
    if last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        return Some(PodTrouble {
            pod: name,
            reason: "OOMKilled".into(),
            message: last_words(status).unwrap_or_default(),
            restarts: status.restart_count,
            poison: None,
            serving: true,
        });
    }
    // Ended at a poison record, or running again since shortly: it stops
    // at the same record again.
    let ended = state.terminated.as_ref().or(last);
    let stopping =
        state.terminated.is_some() || ran_for(status, now).is_some_and(|s| s < POISON_RUN_SECONDS);
    if poison.is_some() && stopping {
        return Some(PodTrouble {
            pod: name,
            reason: ended
                .and_then(|t| t.reason.clone())
                .unwrap_or_else(|| "Error".into()),
            message: ended.map(words).unwrap_or_default(),
            restarts: status.restart_count,
            poison,
            serving: false,
        });
    }
    None
}

/// Seconds the container has been running at `now`.
fn ran_for(status: &ContainerStatus, now: Timestamp) -> Option<i64> {
    let started = status
        .state
        .as_ref()?
        .running
        .as_ref()?
        .started_at
        .as_ref()?;
    Some(now.as_second() - started.0.as_second())
}

/// The last terminated container's message (the pod's termination log, or
/// the tail of its log) and exit code.
fn last_words(status: &ContainerStatus) -> Option<String> {
    Some(words(status.last_state.as_ref()?.terminated.as_ref()?))
}

/// A terminated container's exit code and message.
fn words(t: &ContainerStateTerminated) -> String {
    let message = t.message.as_deref().map(str::trim).unwrap_or("");
    // The log tail may hold many JSON lines; the last one is the exit message.
    let last_line = message.lines().last().unwrap_or("");
    if last_line.is_empty() {
        format!("exit code {}", t.exit_code)
    } else {
        format!("exit code {}: {last_line}", t.exit_code)
    }
}

/// The pods that fail on their own at `now`, for the policy: the
/// `troubles` that do not serve, and pods not ready for longer than
/// [`UNREADY_GRACE_SECONDS`].
pub fn failing(pods: &[Pod], troubles: &[PodTrouble], now: Timestamp) -> Vec<FailingPod> {
    let troubled = troubles.iter().filter(|t| !t.serving).map(|t| FailingPod {
        pod: t.pod.clone(),
        why: match &t.poison {
            Some(p) => format!("{}, poison record at {p}", t.reason),
            None => t.reason.clone(),
        },
    });
    let unready = pods.iter().filter_map(|p| {
        let name = p.metadata.name.clone().unwrap_or_default();
        let seconds = unready_for(p, now).filter(|s| *s > UNREADY_GRACE_SECONDS)?;
        let known = troubles.iter().any(|t| t.pod == name);
        (!known).then(|| FailingPod {
            pod: name,
            why: format!("not ready for {seconds} s"),
        })
    });
    troubled.chain(unready).collect()
}

/// Seconds `pod` has not been ready at `now`: since its `Ready` condition
/// became false, or since it was created without one. `None` while it is
/// ready or going away.
fn unready_for(pod: &Pod, now: Timestamp) -> Option<i64> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let conditions = pod.status.as_ref()?.conditions.as_deref().unwrap_or(&[]);
    let since = match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => return None,
        Some(c) => c.last_transition_time.as_ref(),
        None => pod.metadata.creation_timestamp.as_ref(),
    }?;
    Some(now.as_second() - since.0.as_second())
}

/// The `Degraded` message for pods stopped at poison records, when any is:
/// where, why, and what to do.
pub fn poison_message(troubles: &[PodTrouble]) -> Option<(String, Option<&'static str>)> {
    let mut poisoned = troubles.iter().filter(|t| t.poison.is_some());
    let first = poisoned.next()?;
    let p = first.poison.as_ref()?;
    let trouble = millpond_core::sink::trouble::of(&p.reason);
    let table = if trouble == Some(millpond_core::sink::trouble::SCHEMA_MISMATCH) {
        ", or change the table to take it (spec.sink.iceberg.evolveSchema adds columns for new fields)"
    } else {
        ""
    };
    let mut message = format!(
        "pod {} stopped at a record its sink cannot take, at {p}: {}; it stops there again after every restart (restarted {} times): set spec.sink.deadLetterTopic to divert such records{table}, or move the group's offset past {p}; the lag of its partitions does not drive scaling",
        first.pod, p.reason, first.restarts
    );
    let others = poisoned.count();
    if others > 0 {
        message.push_str(&format!(
            "; {others} other pod(s) stopped at a poison record too"
        ));
    }
    Some((message, trouble))
}

/// The `Ready` condition's reason and message for `troubles` (the first
/// pod's reason; every pod named).
pub fn summary(troubles: &[PodTrouble]) -> Option<(String, String)> {
    let first = troubles.first()?;
    let others = troubles.len() - 1;
    let mut message = format!(
        "pod {} {} (restarted {} times)",
        first.pod, first.reason, first.restarts
    );
    if !first.message.is_empty() {
        message.push_str(&format!(": {}", first.message));
    }
    if others > 0 {
        message.push_str(&format!("; {others} other pod(s) in trouble too"));
    }
    Some((first.reason.clone(), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:10:00Z.
    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn pod(name: &str, container_status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"containerStatuses": [container_status]}
        }))
        .unwrap()
    }

    #[test]
    fn a_crash_loop_carries_the_consumers_exit_message() {
        let p = pod(
            "orders-a",
            serde_json::json!({
                "name": "consumer", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error",
                    "message": "{\"level\":\"INFO\"}\nerror: invalid configuration: MEMORY_BUDGET: `1x` is not a byte quantity\n"}}
            }),
        );
        let t = troubles(&[p], now());
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].reason, "CrashLoopBackOff");
        assert_eq!(
            summary(&t).unwrap().1,
            "pod orders-a CrashLoopBackOff (restarted 4 times): exit code 2: error: invalid configuration: MEMORY_BUDGET: `1x` is not a byte quantity"
        );
    }

    #[test]
    fn an_oom_kill_is_named_while_looping_and_after_it_runs_again() {
        let looping = pod(
            "orders-a",
            serde_json::json!({
                "name": "consumer", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
            }),
        );
        let running = pod(
            "orders-b",
            serde_json::json!({
                "name": "consumer", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
            }),
        );
        let t = troubles(&[looping, running], now());
        assert_eq!(
            t.iter().map(|t| t.reason.as_str()).collect::<Vec<_>>(),
            ["OOMKilled", "OOMKilled"]
        );
        let (reason, message) = summary(&t).unwrap();
        assert_eq!(reason, "OOMKilled");
        assert_eq!(
            message,
            "pod orders-a OOMKilled (restarted 2 times): exit code 137; 1 other pod(s) in trouble too"
        );
    }

    #[test]
    fn healthy_and_starting_pods_are_no_trouble() {
        let running = pod(
            "a",
            serde_json::json!({"name": "consumer", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}),
        );
        let creating = pod(
            "b",
            serde_json::json!({"name": "consumer", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}),
        );
        assert!(troubles(&[running, creating], now()).is_empty());
        assert_eq!(summary(&[]), None);
    }

    /// The last line the consumer writes when its sink refuses a record and
    /// there is no dead-letter topic (exit code 3).
    const POISON_EXIT: &str = "{\"level\":\"INFO\",\"message\":\"starting\"}\nerror: poison record at orders/2@300: the sink refused it: POST http://sink:8080/in: HTTP 422 Unprocessable Entity: field id is missing (set DEAD_LETTER_TOPIC to divert such records)\n";

    /// The same, recorded from the consumer writing an Iceberg table whose
    /// `id` column is a long, at a record carrying `"id":"forty-two"`.
    const SCHEMA_MISMATCH_EXIT: &str = "error: poison record at ice-mismatch-19546-751000114/0@42: SchemaMismatch: the sink refused it: a record does not fit table millpond_tests.ice_mismatch_19546_751000114: Json error: whilst decoding field 'id': failed to parse \"forty-two\" as Int64 (set DEAD_LETTER_TOPIC to divert such records)\n";

    #[test]
    fn a_record_that_does_not_fit_the_table_is_named_a_schema_mismatch_with_what_to_change() {
        let looping = pod(
            "events-a",
            serde_json::json!({
                "name": "consumer", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": SCHEMA_MISMATCH_EXIT}}
            }),
        );
        let t = troubles(&[looping], now());
        let (message, trouble) = poison_message(&t).unwrap();
        assert_eq!(trouble, Some("SchemaMismatch"));
        assert!(
            message.contains("at ice-mismatch-19546-751000114/0@42: SchemaMismatch: the sink refused it: a record does not fit table millpond_tests.ice_mismatch_19546_751000114"),
            "{message}"
        );
        assert!(
            message.contains("evolveSchema"),
            "says the table may change: {message}"
        );
    }

    #[test]
    fn a_poison_record_is_read_from_the_exit_message_with_where_and_why() {
        let looping = pod(
            "orders-a",
            serde_json::json!({
                "name": "consumer", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": POISON_EXIT}}
            }),
        );
        let t = troubles(&[looping], now());
        let poison = t[0].poison.as_ref().expect("the poison record is read");
        assert_eq!(
            (poison.topic.as_str(), poison.partition, poison.offset),
            ("orders", 2, 300)
        );
        assert_eq!(
            poison.reason,
            "the sink refused it: POST http://sink:8080/in: HTTP 422 Unprocessable Entity: field id is missing"
        );
        let (message, trouble) = poison_message(&t).unwrap();
        assert_eq!(trouble, None, "no trouble the sink named");
        assert!(
            message.starts_with("pod orders-a stopped at a record its sink cannot take, at orders/2@300: the sink refused it: POST"),
            "{message}"
        );
        assert!(
            message.contains("set spec.sink.deadLetterTopic"),
            "{message}"
        );
        let failing = failing(&[], &t, now());
        assert_eq!(failing.len(), 1);
        assert_eq!(
            failing[0].why,
            "CrashLoopBackOff, poison record at orders/2@300"
        );
        // Any other exit is no poison record.
        assert_eq!(poison_record("error: sink unavailable: HTTP 503"), None);
    }

    #[test]
    fn a_pod_not_ready_past_the_grace_fails_on_its_own_and_a_younger_one_does_not() {
        let unready = |name: &str, since: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": since}],
                    "containerStatuses": [{"name": "consumer", "image": "i", "imageID": "", "ready": false,
                        "restartCount": 0, "state": {"running": {}}}]
                }
            }))
            .unwrap()
        };
        // now() is 00:10:00: 5 minutes unready, and 30 s.
        let pods = [
            unready("old", "2026-01-01T00:05:00Z"),
            unready("young", "2026-01-01T00:09:30Z"),
        ];
        let failing = failing(&pods, &troubles(&pods, now()), now());
        assert_eq!(
            failing,
            [FailingPod {
                pod: "old".into(),
                why: "not ready for 300 s".into()
            }]
        );
    }
}
