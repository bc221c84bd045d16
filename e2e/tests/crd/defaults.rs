//! Defaults: a consumer needs only its topic and its sink.

use serde_json::json;

use crate::support::*;
use crate::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_minimal_consumer_gets_every_default_and_leaves_the_group_to_the_operator() {
    let s = Scenario::without_operator("minimal").await;
    let spec = accepted(
        &s,
        "minimal",
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "http://ingest.example.com/orders"},
        }),
    )
    .await;
    assert_fields(
        "the defaults of a minimal consumer",
        &spec,
        &[
            ("/resources/memory", json!("256Mi")),
            ("/sink/format", json!("ndjson")),
            ("/sink/metadata", json!(false)),
            ("/limits/flushIntervalMs", json!(5000)),
            ("/limits/maxInFlight", json!(4)),
            ("/limits/consumeBatchSize", json!(1000)),
            ("/autoscaling/minReplicas", json!(1)),
            ("/autoscaling/maxReplicas", json!(12)),
            ("/autoscaling/targetDrainSeconds", json!(300)),
            ("/autoscaling/scaleUpStabilizationSeconds", json!(0)),
            ("/autoscaling/paused", json!(false)),
            ("/autotune/enabled", json!(true)),
        ],
    );
    // Left unset, the operator uses millpond-<topic>.
    assert_eq!(
        spec.pointer("/kafka/groupId"),
        None,
        "groupId stays unset: {spec}"
    );
}
