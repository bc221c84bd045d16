//! The lag of a group without commits counts from where it will start: the
//! log start with `auto.offset.reset=earliest` (the default), the end of the
//! log with `latest`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use millpond_crds::MillpondConsumer;
use millpond_testkit::kafka;
use serde_json::{json, Value};

use crate::support::*;

const RECORDS: i64 = 20_000;

/// A consumer of its own group that runs no pod.
fn idle(topic: &str, group: &str, config: Value) -> Value {
    json!({
        "kafka": {
            "bootstrapServers": kafka::bootstrap(),
            "topic": topic,
            "groupId": format!("{group}-{topic}"),
            "config": config,
        },
        "sink": {"url": "file:///out/lag"},
        "template": {"volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}]},
        "autoscaling": {"paused": true},
        "replicas": 0,
    })
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_new_groups_lag_is_the_whole_topic_with_earliest_and_nothing_with_latest() {
    let s = Scenario::new("lag").await;
    let topic = s.topic("operator-lag", 4, RECORDS as u64).await;
    s.create_consumer("from-earliest", idle(&topic, "earliest", json!({})))
        .await;
    s.create_consumer(
        "from-latest",
        idle(&topic, "latest", json!({"auto.offset.reset": "latest"})),
    )
    .await;

    let mut lags = Vec::new();
    for name in ["from-earliest", "from-latest"] {
        let mpc = wait_for(
            &s.api::<MillpondConsumer>(),
            name,
            Duration::from_secs(60),
            &format!("the operator reads the lag of {name}"),
            |m: Option<&MillpondConsumer>| {
                m.and_then(|m| m.status.as_ref()?.lag.as_ref()).is_some()
            },
        )
        .await
        .expect("the consumer exists");
        lags.push(mpc.status.unwrap().lag.unwrap().total);
        // No pod ran, so no commit: the lag is the operator's reading of
        // where the group will start.
        let d = s.api::<Deployment>().get(name).await.unwrap();
        assert_eq!(replicas_of(&d), 0, "{name} runs no pod");
        let group = mpc.spec.kafka.group_id();
        let commits = kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap();
        assert!(
            commits.is_empty(),
            "group {group} has no commits: {commits:?}"
        );
    }
    assert_eq!(
        lags,
        [RECORDS, 0],
        "a new group's lag: the whole topic with earliest, nothing with latest"
    );
}
