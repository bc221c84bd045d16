//! Why a consumer's pods do not run as they should, read from the pods'
//! own status: a crash loop (with the consumer's exit message, which the
//! pods write to their termination log), an `OOMKilled`, an image that
//! cannot be pulled. The `Ready` condition carries it, so `kubectl get mpc`
//! never shows a consumer as fine while its pods restart.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

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

/// The troubles of `pods`, in the order given.
pub fn troubles(pods: &[Pod]) -> Vec<PodTrouble> {
    pods.iter().filter_map(trouble).collect()
}

fn trouble(pod: &Pod) -> Option<PodTrouble> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let waiting = status.state.as_ref()?.waiting.as_ref();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
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
        });
    }
    // Running again after an OOM kill: worth saying, it will happen again.
    if last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        return Some(PodTrouble {
            pod: name,
            reason: "OOMKilled".into(),
            message: last_words(status).unwrap_or_default(),
            restarts: status.restart_count,
        });
    }
    None
}

/// The last terminated container's message (the pod's termination log, or
/// the tail of its log) and exit code.
fn last_words(status: &ContainerStatus) -> Option<String> {
    let t = status.last_state.as_ref()?.terminated.as_ref()?;
    let message = t.message.as_deref().map(str::trim).unwrap_or("");
    // The log tail may hold many JSON lines; the last one is the exit message.
    let last_line = message.lines().last().unwrap_or("");
    Some(if last_line.is_empty() {
        format!("exit code {}", t.exit_code)
    } else {
        format!("exit code {}: {last_line}", t.exit_code)
    })
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
        let t = troubles(&[p]);
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
        let t = troubles(&[looping, running]);
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
        assert!(troubles(&[running, creating]).is_empty());
        assert_eq!(summary(&[]), None);
    }
}
