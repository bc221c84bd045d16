//! A sink that takes no writes holds: the pods retry without restarting,
//! the operator says `SinkUnavailable` with the sink's error and does not
//! add pods for the backlog that builds meanwhile; once the sink is back
//! everything is delivered and committed.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use crate::support::*;

/// Records delivered before the sink goes down, and produced while it is.
const BEFORE: u64 = 20_000;
const DURING: u64 = 100_000;

fn chmod(dir: &std::path::Path, mode: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", dir.display()));
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_dead_sink_sets_sink_unavailable_holds_the_replicas_and_everything_arrives_once_it_is_back(
) {
    let s = Scenario::new("dead-sink").await;
    let topic = s.topic("operator-dead-sink", 4, BEFORE).await;
    let volume = s.host_volume("sink").await;
    let dir = volume.join("dead");
    std::fs::create_dir_all(&dir).expect("the sink's directory");
    chmod(&dir, 0o777);
    let mpc = s.create_consumer(
        "dead",
        json!({
            "kafka": {"bootstrapServers": millpond_testkit::kafka::bootstrap(), "topic": topic},
            "sink": {"url": "file:///sink/dead"},
            "template": {"volumes": [
                {"name": "sink", "mountPath": "/sink", "persistentVolumeClaim": {"claimName": "sink"}}
            ]},
            "resources": {"memory": "256Mi"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
        }),
    )
    .await;
    all_delivered(&dir, BEFORE, Duration::from_secs(180)).await;
    let before = replicas_of(&s.rolled_out("dead", Duration::from_secs(60)).await);

    // The volume turns read-only for the pods (they run as 65532), and a
    // burst arrives that the pods could drain only with more writes.
    chmod(&dir, 0o555);
    produce(&topic, 4, BEFORE..BEFORE + DURING).await;
    let degraded = s.degraded("dead", "SinkUnavailable").await;
    assert!(
        degraded
            .message
            .starts_with("the sink is not taking writes: pod")
            && degraded.message.contains("Permission denied")
            && degraded.message.contains("more pods cannot help"),
        "{}",
        degraded.message
    );

    // Ten decisions with the backlog and the sink down: the replicas hold
    // and no pod restarts.
    let deployments = s.api::<Deployment>();
    let until = Instant::now() + Duration::from_secs(10 * INTERVAL_SECONDS as u64);
    while Instant::now() < until {
        let d = deployments.get("dead").await.expect("the Deployment");
        assert!(
            replicas_of(&d) <= before,
            "{} replicas while the sink is down, {before} before",
            replicas_of(&d)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for pod in s.consumer_pods("dead").await {
        let restarts = pod.status.as_ref().and_then(|st| {
            st.container_statuses
                .as_ref()?
                .first()
                .map(|c| c.restart_count)
        });
        assert_eq!(restarts, Some(0), "{:?} restarted", pod.metadata.name);
    }

    // Back: every record arrives and the group commits to the end.
    chmod(&dir, 0o777);
    let lines = all_delivered(&dir, BEFORE + DURING, Duration::from_secs(240)).await;
    assert_eq!(lines as u64, BEFORE + DURING, "no record written twice");
    committed_to_the_end(
        &mpc.spec.kafka.group_id(),
        &topic,
        4,
        Duration::from_secs(60),
    )
    .await;
    let fine = s
        .condition_reason("dead", "Degraded", "AsExpected", Duration::from_secs(60))
        .await;
    assert_eq!(fine.status, "False", "{fine:?}");
}
