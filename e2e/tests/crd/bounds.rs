//! Bounds: of the replicas, of the pods' limits and of the ranges autotune
//! moves them in.

use serde_json::json;

use crate::support::*;
use crate::*;

/// The API server's refusal of autotune flush bounds in the wrong order.
const FLUSH_BOUNDS_REFUSED: &str = "spec.autotune.minFlushBytes: Invalid value: \"object\": \
    autotune.minFlushBytes must not exceed maxFlushBytes";

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_string_where_an_integer_belongs_is_refused() {
    let s = Scenario::without_operator("max-replicas-string").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "autoscaling": {"maxReplicas": "many"},
        }),
        &["spec.autoscaling.maxReplicas: Invalid value: \"string\": spec.autoscaling.maxReplicas in body must be of type integer"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn min_replicas_above_max_replicas_is_refused() {
    let s = Scenario::without_operator("min-above-max").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
        }),
        &["spec.autoscaling.minReplicas: Invalid value: \"object\": autoscaling.minReplicas must not exceed maxReplicas"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn negative_replicas_are_refused() {
    let s = Scenario::without_operator("replicas-negative").await;
    refused(
        &s,
        json!({"kafka": kafka_orders(), "sink": {"url": "file:///data"}, "replicas": -1}),
        &["spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn max_in_flight_0_is_refused() {
    let s = Scenario::without_operator("max-in-flight-0").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "limits": {"maxInFlight": 0},
        }),
        &["spec.limits.maxInFlight: Invalid value: 0: spec.limits.maxInFlight in body should be greater than or equal to 1"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_consume_batch_size_below_10_is_refused() {
    let s = Scenario::without_operator("consume-batch").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "limits": {"consumeBatchSize": 5},
        }),
        &["spec.limits.consumeBatchSize: Invalid value: 5: spec.limits.consumeBatchSize in body should be greater than or equal to 10"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn autotune_flush_bounds_in_the_wrong_order_are_refused() {
    let s = Scenario::without_operator("flush-bounds").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "autotune": {"minFlushBytes": "64Mi", "maxFlushBytes": "1Mi"},
        }),
        &[FLUSH_BOUNDS_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn autotune_flush_bounds_written_as_numbers_in_the_wrong_order_are_refused_by_kubectl_apply()
{
    let s = Scenario::without_operator("flush-bounds-numbers").await;
    refused_by_kubectl_apply(
        &s,
        r#"
        kafka: {bootstrapServers: "kafka:9092", topic: orders}
        sink: {url: "file:///data"}
        autotune: {minFlushBytes: 67108864, maxFlushBytes: 1Mi}
        "#,
        &[FLUSH_BOUNDS_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn autotune_in_flight_bounds_in_the_wrong_order_are_refused() {
    let s = Scenario::without_operator("in-flight-bounds").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "autotune": {"minInFlight": 9, "maxInFlight": 8},
            "limits": {"maxInFlight": 8},
        }),
        &["spec.autotune.minInFlight: Invalid value: \"object\": autotune.minInFlight must not exceed maxInFlight"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn limits_max_in_flight_outside_the_autotune_bounds_is_refused() {
    let s = Scenario::without_operator("max-in-flight-bounds").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "limits": {"maxInFlight": 16},
            "autotune": {"maxInFlight": 8},
        }),
        &["spec.limits.maxInFlight: Invalid value: \"object\": limits.maxInFlight must lie within autotune.minInFlight and autotune.maxInFlight"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn limits_flush_bytes_outside_the_autotune_bounds_is_refused() {
    let s = Scenario::without_operator("flush-bytes-bounds").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "limits": {"flushBytes": "128Mi"},
            "autotune": {"maxFlushBytes": "32Mi"},
        }),
        &["spec.limits.flushBytes: Invalid value: \"object\": limits.flushBytes must lie within autotune.minFlushBytes and autotune.maxFlushBytes"],
    )
    .await;
}
