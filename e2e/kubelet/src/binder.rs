//! The scheduler part: binds unscheduled pods to this node through the
//! `pods/binding` subresource.
//!
//! A pod is bound when it has no `spec.nodeName`, asks for the default
//! scheduler, has no scheduling gates, is not being deleted, and its
//! `nodeSelector` matches the node's labels. Affinity, taints and resource
//! fit are not considered: there is one node and it takes every pod.
//! Pods whose selector does not match get `PodScheduled=False`
//! (`Unschedulable`) like from the real scheduler.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::watch;

/// Why a pod is not bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not ours to schedule (another scheduler, already bound, gated,
    /// deleted, finished): ignore silently.
    NotOurs,
    /// Ours, but it does not fit the node: report `Unschedulable`.
    Unschedulable(String),
}

/// Decides whether this node's binder binds `pod`.
pub fn should_bind(pod: &Pod, node_labels: &BTreeMap<String, String>) -> Result<(), Skip> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err(Skip::NotOurs);
    };
    let scheduler = spec
        .scheduler_name
        .as_deref()
        .unwrap_or("default-scheduler");
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        || scheduler != "default-scheduler"
        || spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty())
        || pod.metadata.deletion_timestamp.is_some()
        || matches!(phase, Some("Succeeded" | "Failed"))
    {
        return Err(Skip::NotOurs);
    }
    for (k, v) in spec.node_selector.iter().flatten() {
        if node_labels.get(k) != Some(v) {
            return Err(Skip::Unschedulable(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
                    .to_string(),
            ));
        }
    }
    Ok(())
}

/// The Binding object that assigns `pod` to `node_name`.
pub fn binding(pod: &Pod, node_name: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node_name.to_string()),
            ..ObjectReference::default()
        },
    }
}

async fn bind(client: &kube::Client, pod: &Pod, node_name: &str) -> kube::Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &pod.name_any(),
        &PostParams::default(),
        &binding(pod, node_name),
    )
    .await
    .map(|_| ())
}

async fn mark_unschedulable(client: &kube::Client, pod: &Pod, message: &str) -> kube::Result<()> {
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.message.as_deref() == Some(message)
        });
    if already {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
    }]}});
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}

/// Watches unscheduled pods and binds the ones this node takes, until
/// `shutdown` turns true. Binding is retried every 2 s while a pod stays
/// unscheduled (e.g. after a transient API error).
pub async fn run(
    client: kube::Client,
    node_name: String,
    node_labels: BTreeMap<String, String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().fields("spec.nodeName=")).default_backoff(),
    )
    .touched_objects();
    let mut stream = std::pin::pin!(stream);
    let mut retry = tokio::time::interval(Duration::from_secs(2));
    loop {
        let pods: Vec<std::sync::Arc<Pod>> = tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(pod)) => vec![std::sync::Arc::new(pod)],
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching unscheduled pods failed; retrying");
                    continue;
                }
                None => break,
            },
            _ = retry.tick() => store.state(),
            _ = shutdown.changed() => break,
        };
        for pod in pods {
            match should_bind(&pod, &node_labels) {
                Ok(()) => match bind(&client, &pod, &node_name).await {
                    Ok(()) => tracing::info!(
                        namespace = pod.namespace().unwrap_or_default(),
                        pod = pod.name_any(),
                        node = node_name,
                        "bound pod"
                    ),
                    // Already bound, or gone meanwhile.
                    Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
                    Err(e) => tracing::warn!(pod = pod.name_any(), error = %e, "binding failed"),
                },
                Err(Skip::Unschedulable(message)) => {
                    if let Err(e) = mark_unschedulable(&client, &pod, &message).await {
                        tracing::warn!(pod = pod.name_any(), error = %e, "reporting unschedulable failed");
                    }
                }
                Err(Skip::NotOurs) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())])
    }

    #[test]
    fn binds_plain_unscheduled_pods() {
        assert_eq!(
            should_bind(
                &pod("metadata: {name: p}\nspec: {containers: []}"),
                &labels()
            ),
            Ok(())
        );
        let p = pod("metadata: {name: p}\nspec: {schedulerName: default-scheduler, nodeSelector: {kubernetes.io/os: linux}, containers: []}");
        assert_eq!(should_bind(&p, &labels()), Ok(()));
    }

    #[test]
    fn leaves_other_schedulers_bound_gated_and_deleted_pods_alone() {
        for yaml in [
            "metadata: {name: p}\nspec: {schedulerName: other, containers: []}",
            "metadata: {name: p}\nspec: {nodeName: n, containers: []}",
            "metadata: {name: p}\nspec: {schedulingGates: [{name: g}], containers: []}",
            "metadata: {name: p, deletionTimestamp: '2024-01-01T00:00:00Z'}\nspec: {containers: []}",
            "metadata: {name: p}\nspec: {containers: []}\nstatus: {phase: Failed}",
        ] {
            assert_eq!(should_bind(&pod(yaml), &labels()), Err(Skip::NotOurs), "{yaml}");
        }
    }

    #[test]
    fn mismatching_node_selector_is_unschedulable() {
        let p = pod("metadata: {name: p}\nspec: {nodeSelector: {disk: ssd}, containers: []}");
        assert!(matches!(
            should_bind(&p, &labels()),
            Err(Skip::Unschedulable(_))
        ));
    }

    #[test]
    fn binding_targets_the_node() {
        let p = pod("metadata: {name: p, namespace: ns, uid: u}\nspec: {containers: []}");
        let b = binding(&p, "millpond-node");
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("millpond-node"));
        assert_eq!(b.metadata.uid.as_deref(), Some("u"));
    }
}
