//! The kubelet enforces what the operator's pod specs rely on: TLS
//! material from a Secret readable by the consumer's user on a read-only
//! root, and runAsNonRoot.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateWaiting, Pod};
use serde_json::json;

use crate::support::{wait_for, Scenario};
use crate::{create_pod, ended, logs, phase, stack_env, BUSYBOX};

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_tls_secret_mounted_as_the_operator_mounts_it_is_readable_by_the_consumers_user() {
    let s = Scenario::without_operator("node-tls").await;
    let ca = std::fs::read_to_string(stack_env("KAFKA_CA_FILE")).expect("the brokers' CA");
    s.secret("kafka-ca", &[("ca.crt", &ca)]).await;
    // As operator/src/desired/env.rs (tls_volume) mounts it: a projected
    // Secret volume, files 0440, read through the pod's fsGroup.
    let file = "/etc/millpond/kafka-tls/ca.crt";
    create_pod(
        &s,
        json!({
            "metadata": {"name": "tls-reader"},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
                "containers": [{
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", format!(r#"stat -L -c "%a %g" {file} && cat {file}"#)],
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "kafka-tls", "mountPath": "/etc/millpond/kafka-tls", "readOnly": true}],
                }],
                "volumes": [{
                    "name": "kafka-tls",
                    "projected": {
                        "defaultMode": 0o440,
                        "sources": [{"secret": {"name": "kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "optional": false}}],
                    },
                }],
            },
        }),
    )
    .await;
    let pod = ended(&s, "tls-reader").await;
    let printed = logs(&s, "tls-reader");
    assert_eq!(
        (phase(&pod), printed),
        (Some("Succeeded"), format!("440 65532\n{ca}")),
        "a TLS Secret mounted as the operator mounts it is readable by the consumer's user \
         (mode 440, group 65532): phase and what the pod printed"
    );
}

/// Why the pod's first container is waiting, if it is.
fn waiting(p: &Pod) -> Option<ContainerStateWaiting> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.first()?.state.as_ref()?.waiting.clone()
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn run_as_non_root_refuses_an_image_that_would_run_as_root() {
    let s = Scenario::without_operator("node-root").await;
    // The busybox image's user is root.
    create_pod(
        &s,
        json!({
            "metadata": {"name": "as-root"},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sleep", "60"]}],
            },
        }),
    )
    .await;
    let pod = wait_for(
        &s.api::<Pod>(),
        "as-root",
        Duration::from_secs(60),
        "the kubelet refuses to create the container (CreateContainerConfigError)",
        |p: Option<&Pod>| {
            p.and_then(waiting)
                .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        },
    )
    .await
    .expect("the pod exists");
    let message = waiting(&pod).and_then(|w| w.message).unwrap_or_default();
    assert!(
        message.contains("has runAsNonRoot and image will run as root"),
        "runAsNonRoot refuses an image that would run as root; the kubelet says: {message:?}"
    );
}
