//! The status the operator writes, and what `kubectl get` prints of it.

use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

use crate::support::*;
use crate::*;

/// A status as the operator writes it: 3 pods, 2 ready, lag 1234, limited
/// by the sink, not Ready.
pub fn full_status() -> Value {
    json!({
        "replicas": 3,
        "readyReplicas": 2,
        "selector": "app.kubernetes.io/instance=orders",
        "partitions": 12,
        "lag": {"total": 1234, "maxPartition": 400, "ratePerSecond": -12.5},
        "bufferFullness": 0.42,
        "limitedBy": "SinkBound",
        "limits": {
            "flushBytes": 8388608,
            "flushIntervalMs": 5000,
            "maxInFlight": 4,
            "consumeBatchSize": 1000,
            "generation": 2,
        },
        "stuckPartitions": [3],
        "lastDecision": {
            "time": "2026-01-01T00:00:00Z",
            "direction": "up",
            "from": 1,
            "to": 3,
            "reason": "lag 1234 drains in 300s with 3 pods",
        },
        "observedGeneration": 1,
        "conditions": [{
            "type": "Ready",
            "status": "False",
            "reason": "PodsNotReady",
            "message": "2 of 3 pods ready",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    })
}

/// Creates the consumer `orders` and writes [`full_status`] through the
/// status subresource, which must accept and store all of it.
pub async fn orders_with_a_full_status(s: &Scenario) {
    let spec = json!({"kafka": kafka_orders(), "sink": {"url": "file:///data"}});
    accepted(s, "orders", spec).await;
    let status = full_status();
    let stored = consumers(s)
        .patch_status(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap_or_else(|e| panic!("the status subresource refused a full status: {e}"));
    assert_eq!(
        stored.data["status"], status,
        "the status as stored (a field the CRD does not know is dropped)"
    );
}

/// The words of a line of `kubectl get` (columns are padded with spaces).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_get_prints_replicas_ready_lag_fullness_where_pods_are_limited_and_the_ready_reason(
) {
    let s = Scenario::without_operator("columns").await;
    orders_with_a_full_status(&s).await;

    let table = kubectl_ok(&["get", "mpc", "-n", &s.ns]);
    let header = table.lines().next().unwrap_or_default();
    assert_eq!(
        words(header),
        ["NAME", "REPLICAS", "READY", "LAG", "FULLNESS", "LIMITED", "STATUS", "AGE"],
        "kubectl get mpc's columns:\n{table}"
    );
    let row = kubectl_ok(&["get", "mpc", "orders", "-n", &s.ns, "--no-headers"]);
    assert_eq!(
        words(&row)[..7],
        [
            "orders",
            "3",
            "2",
            "1234",
            "0.42",
            "SinkBound",
            "PodsNotReady"
        ],
        "kubectl get mpc orders (all but its age):\n{row}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_get_millpond_lists_consumers_by_category() {
    let s = Scenario::without_operator("category").await;
    let spec = json!({"kafka": kafka_orders(), "sink": {"url": "file:///data"}});
    accepted(&s, "orders", spec).await;
    let by_category = kubectl_ok(&["get", "millpond", "-n", &s.ns, "-o", "name"]);
    let by_short_name = kubectl_ok(&["get", "mpc", "-n", &s.ns, "-o", "name"]);
    assert_eq!(
        by_category.trim(),
        "millpondconsumer.millpond.io/orders",
        "kubectl get millpond"
    );
    assert_eq!(by_category, by_short_name, "kubectl get millpond and mpc");
}
