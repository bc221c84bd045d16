//! The pods' volumes, where a file sink writes (their root file system is
//! read-only).

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

/// A consumer into `file:///data` with the one volume `volume`.
fn with_volume(volume: Value) -> Value {
    json!({
        "kafka": kafka_orders(),
        "sink": {"url": "file:///data"},
        "template": {"volumes": [volume]},
    })
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_volume_with_two_sources_is_refused() {
    let s = Scenario::without_operator("volume-two-sources").await;
    refused(
        &s,
        with_volume(json!({
            "name": "data",
            "mountPath": "/data",
            "emptyDir": {},
            "persistentVolumeClaim": {"claimName": "data"},
        })),
        &["spec.template.volumes[0]: Invalid value: \"object\": a volume needs exactly one source, emptyDir or persistentVolumeClaim"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_relative_mount_path_is_refused() {
    let s = Scenario::without_operator("mount-path").await;
    refused(
        &s,
        with_volume(json!({"name": "data", "mountPath": "data", "emptyDir": {}})),
        &["spec.template.volumes[0].mountPath: Invalid value: \"string\": mountPath must be an absolute path other than /, such as /data"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_empty_dir_in_memory_is_refused() {
    let s = Scenario::without_operator("empty-dir-memory").await;
    refused(
        &s,
        with_volume(json!({"name": "data", "mountPath": "/data", "emptyDir": {"medium": "Memory"}})),
        &["spec.template.volumes[0].emptyDir.medium: Invalid value: \"object\": emptyDir.medium Memory is refused"],
    )
    .await;
}
