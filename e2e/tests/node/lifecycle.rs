//! How pods end on the node: a memory limit is a cgroup limit, and
//! deleting a pod sends SIGTERM and waits for the process.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::runtime::wait::await_condition;
use kube::Api;
use serde_json::json;

use crate::support::{eventually, wait_for, Scenario};
use crate::{create_pod, kubectl_in, BUSYBOX};

/// How the pod's first container ended, once it has.
fn terminated(p: &Pod) -> Option<ContainerStateTerminated> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.first()?.state.as_ref()?.terminated.clone()
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_pod_over_its_memory_limit_is_oom_killed() {
    let s = Scenario::without_operator("node-oom").await;
    // 64 MiB in one buffer under a 32Mi limit.
    create_pod(
        &s,
        json!({
            "metadata": {"name": "hungry"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived"],
                    "resources": {"limits": {"memory": "32Mi"}},
                }],
            },
        }),
    )
    .await;
    let pod = wait_for(
        &s.api::<Pod>(),
        "hungry",
        Duration::from_secs(60),
        "the hungry pod's container ends",
        |p: Option<&Pod>| p.and_then(terminated).is_some(),
    )
    .await
    .expect("the pod exists");
    let reason = terminated(&pod).and_then(|t| t.reason);
    assert_eq!(
        reason.as_deref(),
        Some("OOMKilled"),
        "a pod that exceeds its 32Mi memory limit is OOMKilled"
    );
}

/// Whether the pod's Ready condition is True.
fn ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// What a watch of a pod saw until it was gone.
#[derive(Default)]
struct Seen {
    /// The watch has listed the pod (it sees every change from then on).
    listed: bool,
    /// How its container ended, as last reported.
    terminated: Option<ContainerStateTerminated>,
}

/// A watch of pod `name` until it is gone, noting how its container ended.
struct Ending {
    seen: Arc<Mutex<Seen>>,
    watch: tokio::task::JoinHandle<Result<Option<Pod>, kube::runtime::wait::Error>>,
}

impl Ending {
    /// Starts watching; returns once the watch has listed the pod.
    async fn watch(api: Api<Pod>, name: &str) -> Ending {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let noted = seen.clone();
        let name = name.to_string();
        let watch = tokio::spawn(async move {
            await_condition(api, &name, move |p: Option<&Pod>| {
                let mut seen = noted.lock().unwrap();
                seen.listed = true;
                if let Some(t) = p.and_then(terminated) {
                    seen.terminated = Some(t);
                }
                p.is_none()
            })
            .await
        });
        eventually(Duration::from_secs(10), "the pod is watched", || async {
            let listed = seen.lock().unwrap().listed;
            listed.then_some(()).ok_or("not listed yet".to_string())
        })
        .await;
        Ending { seen, watch }
    }

    /// How the container ended, once the pod is gone.
    async fn gone(self) -> Option<ContainerStateTerminated> {
        tokio::time::timeout(Duration::from_secs(30), self.watch)
            .await
            .expect("the watch sees the pod gone within 30 s")
            .expect("the watch task")
            .expect("watching the pod");
        let seen = self.seen.lock().unwrap();
        seen.terminated.clone()
    }
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn deleting_a_pod_sends_sigterm_and_waits_for_the_process_to_finish() {
    let s = Scenario::without_operator("node-sigterm").await;
    // The pod notes the signal on a host directory and takes 3 s to stop.
    let host = tempfile::Builder::new()
        .prefix("millpond-node-test")
        .tempdir()
        .expect("a host directory");
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let handler = r#"trap "echo TERM >/host/signal; sleep 3; echo done >>/host/signal; exit 0" TERM; echo started >/host/signal; while true; do sleep 1; done"#;
    create_pod(
        &s,
        json!({
            "metadata": {"name": "graceful"},
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", handler],
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                }],
                "volumes": [{"name": "host", "hostPath": {"path": host.path(), "type": "Directory"}}],
            },
        }),
    )
    .await;
    wait_for(
        &s.api::<Pod>(),
        "graceful",
        Duration::from_secs(60),
        "the graceful pod is Ready",
        |p: Option<&Pod>| p.is_some_and(ready),
    )
    .await;

    let ending = Ending::watch(s.api::<Pod>(), "graceful").await;

    // Off the test's thread, so the watch goes on meanwhile.
    let ns = s.ns.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        kubectl_in(&ns, &["delete", "pod", "graceful", "--timeout=60s"])
    })
    .await
    .expect("the kubectl thread");
    assert!(
        deleted.ok,
        "kubectl delete pod graceful: {}",
        deleted.stderr
    );
    let signal = std::fs::read_to_string(host.path().join("signal")).unwrap_or_default();
    assert_eq!(
        signal, "TERM\ndone\n",
        "deleting a pod sends SIGTERM and the pod is gone only after the process finished its handler"
    );

    let ended = ending.gone().await;
    assert_eq!(
        ended.as_ref().map(|t| (t.exit_code, t.reason.as_deref())),
        Some((0, Some("Completed"))),
        "the process stopped by itself within the grace period (exit 0), not killed at its end: {ended:?}"
    );
}
