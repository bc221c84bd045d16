//! Kafka stopping to answer while a consumer runs (the broker paused).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;

use crate::edits::{decided, scratch_consumer};
use crate::support::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kafka_pausing_sets_degraded_kafka_unreachable_keeps_the_replicas_and_clears_when_it_answers(
) {
    let s = Scenario::alone("kafka-outage").await;
    let topic = s.topic("operator-outage", 4, 100).await;
    s.create_consumer("orders", scratch_consumer(&topic)).await;
    let before = decided(&s, "orders").await;

    let paused = Paused::new(kafka_pid());
    let c = s.degraded("orders", "KafkaUnreachable").await;
    let d = s.api::<Deployment>().get("orders").await.unwrap();
    assert_eq!(
        replicas_of(&d),
        before,
        "Kafka paused while running: the replicas kept ({})",
        c.message
    );
    drop(paused);

    let c = s
        .condition_reason("orders", "Degraded", "AsExpected", Duration::from_secs(90))
        .await;
    assert_eq!(c.status, "False", "Kafka back: Degraded clears: {c:?}");
    let d = s.api::<Deployment>().get("orders").await.unwrap();
    assert_eq!(replicas_of(&d), before, "and the replicas are still kept");
}
