//! Partitions added to a topic while its pods run: each pod re-plans its
//! memory for the grown topic without a restart, stays under its memory
//! limit, and every record arrives once.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use millpond_testkit::{kafka, prom};
use serde_json::json;

use crate::support::*;

const BEFORE: u64 = 20_000;
const AFTER: u64 = 120_000;

/// A metric a pod exports on its metrics port.
async fn pod_metric(pod: &Pod, name: &str) -> Option<f64> {
    let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
    let text = reqwest::Client::new()
        .get(format!("http://{ip}:9090/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let samples = prom::parse(&text);
    samples
        .iter()
        .any(|s| s.name == name)
        .then(|| prom::sum(&samples, name, |_| true))
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn partitions_added_while_pods_run_are_planned_for_without_a_restart_and_delivered_once() {
    let s = Scenario::new("grow").await;
    let topic = s.topic("operator-grow", 2, BEFORE).await;
    let dir = s.host_volume("sink").await;
    let mpc = s
        .create_consumer(
            "grow",
            json!({
                "kafka": {
                    "bootstrapServers": kafka::bootstrap(),
                    "topic": topic,
                    // The group notices new partitions on a metadata refresh
                    // (5 minutes by default).
                    "config": {"topic.metadata.refresh.interval.ms": "2000"},
                },
                "sink": {"url": "file:///sink"},
                "template": {"volumes": [
                    {"name": "sink", "mountPath": "/sink", "persistentVolumeClaim": {"claimName": "sink"}}
                ]},
                "resources": {"memory": "128Mi"},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
            }),
        )
        .await;
    all_delivered(&dir, BEFORE, Duration::from_secs(180)).await;

    kafka::add_partitions(&kafka::bootstrap(), &topic, 12)
        .await
        .expect("adding partitions");
    produce(&topic, 12, BEFORE..BEFORE + AFTER).await;
    let lines = all_delivered(&dir, BEFORE + AFTER, Duration::from_secs(300)).await;
    assert_eq!(lines as u64, BEFORE + AFTER, "no record written twice");
    committed_to_the_end(
        &mpc.spec.kafka.group_id(),
        &topic,
        12,
        Duration::from_secs(60),
    )
    .await;

    let pods = s.consumer_pods("grow").await;
    assert!(!pods.is_empty());
    let mut replans = 0.0;
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let restarts = pod.status.as_ref().and_then(|st| {
            st.container_statuses
                .as_ref()?
                .first()
                .map(|c| c.restart_count)
        });
        assert_eq!(restarts, Some(0), "{name} restarted (OOM-killed?)");
        assert_eq!(
            pod_metric(pod, "millpond_planned_partitions").await,
            Some(12.0),
            "{name} plans its memory for the grown topic"
        );
        replans += pod_metric(pod, "millpond_replans_total")
            .await
            .unwrap_or(0.0);
    }
    // The pod that ran before the topic grew re-planned in place (pods
    // added later planned for 12 partitions from the start).
    assert!(replans >= 1.0, "no pod re-planned");
}
