//! Leader hand-over between the two operator replicas.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::edits::{decided, hand_scale_is_put_back, scratch_consumer};
use crate::support::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn killing_the_leader_hands_over_and_the_new_leader_puts_a_hand_scaled_deployment_back() {
    let s = Scenario::alone("leader").await;
    let topic = s.topic("operator-leader", 4, 100).await;
    s.create_consumer("orders", scratch_consumer(&topic)).await;
    let decided = decided(&s, "orders").await;

    let pods: Api<Pod> = Api::namespaced(s.client.clone(), OPERATOR_NAMESPACE);
    // The holder is one of the two running replicas (a release installed
    // again starts with the lease of pods that are gone).
    let old = eventually(
        Duration::from_secs(60),
        "one of the two operator replicas holds the lease",
        || async {
            let names: Vec<String> = operator_pods(&s.client)
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name)
                .collect();
            match leader(&s.client).await {
                Some(l) if names.contains(&l) && names.len() == 2 => Ok(l),
                l => Err(format!("holder {l:?}, operator pods {names:?}")),
            }
        },
    )
    .await;

    pods.delete(&old, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting the leader {old}: {e}"));
    let new = eventually(
        Duration::from_secs(90),
        &format!("killing the leader {old} hands over to the other replica"),
        || async {
            match leader(&s.client).await {
                Some(l) if l != old => Ok(l),
                l => Err(format!("lease holder {l:?}")),
            }
        },
    )
    .await;
    let now: Vec<String> = operator_pods(&s.client)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        now.contains(&new),
        "the new leader {new} is an operator pod of {now:?}"
    );

    // The new leader acts, from the decision the old one recorded.
    hand_scale_is_put_back(&s, "orders", decided).await;

    // Both replicas again before the other scenarios go on.
    let operator: Api<Deployment> = Api::namespaced(s.client.clone(), OPERATOR_NAMESPACE);
    wait_for(
        &operator,
        &format!("{RELEASE}-millpond-operator"),
        Duration::from_secs(120),
        "the operator Deployment is back at two ready replicas",
        |d: Option<&Deployment>| d.is_some_and(rolled_out),
    )
    .await;
}
