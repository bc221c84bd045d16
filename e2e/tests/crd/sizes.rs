//! Sizes (memory, flush bytes): whole numbers of bytes, written as
//! Kubernetes quantities or, as Kubernetes' own may be, as plain numbers.

use serde_json::json;

use crate::support::*;
use crate::*;

/// The API server's refusal of a memory budget that is not a positive
/// whole number of bytes.
const MEMORY_REFUSED: &str = "spec.resources.memory: Invalid value: \"\": resources.memory must \
    be a positive whole number of bytes, such as 256Mi";

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn sizes_written_as_numbers_in_yaml_are_accepted_by_kubectl_apply_and_read_back_as_numbers() {
    let s = Scenario::without_operator("sizes-as-numbers").await;
    // 1e9 unquoted: kubectl sends the integer 1000000000.
    let run = kubectl_apply(
        &s,
        "sizes",
        r#"
        kafka: {bootstrapServers: "kafka:9092", topic: orders}
        sink: {url: "http://ingest.example.com/orders"}
        resources: {memory: 1e9, cpu: 2}
        limits: {flushBytes: 8388608}
        autotune: {minFlushBytes: 1048576, maxFlushBytes: 33554432}
        "#,
    );
    assert!(run.ok, "kubectl apply: {}", run.stderr);
    assert_fields(
        "sizes written as numbers",
        &stored_spec(&s, "sizes").await,
        &[
            ("/resources/memory", json!(1_000_000_000)),
            ("/resources/cpu", json!(2)),
            ("/limits/flushBytes", json!(8_388_608)),
            ("/autotune/minFlushBytes", json!(1_048_576)),
            ("/autotune/maxFlushBytes", json!(33_554_432)),
        ],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_negative_memory_budget_is_refused() {
    let s = Scenario::without_operator("memory-negative").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "resources": {"memory": "-1Gi"},
        }),
        &[MEMORY_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_memory_budget_in_thousandths_of_a_byte_is_refused() {
    let s = Scenario::without_operator("memory-milli").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "resources": {"memory": "256m"},
        }),
        &[MEMORY_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_memory_budget_of_0_written_as_a_number_is_refused_by_kubectl_apply() {
    let s = Scenario::without_operator("memory-zero").await;
    refused_by_kubectl_apply(
        &s,
        r#"
        kafka: {bootstrapServers: "kafka:9092", topic: orders}
        sink: {url: "file:///data"}
        resources: {memory: 0}
        "#,
        &[MEMORY_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_fraction_of_a_byte_written_as_a_number_is_refused_by_kubectl_apply() {
    let s = Scenario::without_operator("flush-bytes-fraction").await;
    refused_by_kubectl_apply(
        &s,
        r#"
        kafka: {bootstrapServers: "kafka:9092", topic: orders}
        sink: {url: "file:///data"}
        limits: {flushBytes: 1.5}
        "#,
        &["spec.limits.flushBytes: Invalid value: \"number\": spec.limits.flushBytes in body must be of type integer,string: \"number\""],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_negative_flush_bytes_is_refused() {
    let s = Scenario::without_operator("flush-bytes-negative").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "file:///data"},
            "limits": {"flushBytes": "-8Mi"},
        }),
        &["spec.limits.flushBytes: Invalid value: \"\": limits.flushBytes must be a positive whole number of bytes, such as 8Mi"],
    )
    .await;
}
