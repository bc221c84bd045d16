//! Edits by hand: of the owned objects (put back), and of the replicas
//! through the MillpondConsumer's scale subresource (followed while
//! autoscaling is paused).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;
use serde_json::{json, Value};

use crate::support::*;

/// A consumer of `topic` whose pods never need to deliver anything.
pub fn scratch_consumer(topic: &str) -> Value {
    json!({
        "kafka": {"bootstrapServers": millpond_testkit::kafka::bootstrap(), "topic": topic},
        "sink": {"url": "file:///out/orders"},
        "template": {"volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}]},
        "resources": {"memory": "256Mi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
    })
}

/// Waits until the operator decided (status.replicas) and the Deployment
/// runs that many pods; returns the count.
pub async fn decided(s: &Scenario, name: &str) -> i32 {
    let d = s.rolled_out(name, Duration::from_secs(120)).await;
    eventually(
        Duration::from_secs(60),
        "the operator's decision (status.replicas) is the Deployment's replicas",
        || async {
            let mpc = s.consumer(name).await;
            let decided = mpc.status.map(|st| st.replicas).unwrap_or(0);
            let running = replicas_of(&s.api::<Deployment>().get(name).await.unwrap());
            if decided > 0 && decided == running {
                Ok(decided)
            } else {
                Err(format!(
                    "decided {decided}, Deployment {running} (at start {})",
                    replicas_of(&d)
                ))
            }
        },
    )
    .await
}

/// Scales the Deployment `name` by hand (`kubectl scale deployment`) and
/// waits until it is back at `decided` and the decision did not move.
pub async fn hand_scale_is_put_back(s: &Scenario, name: &str, decided: i32) {
    let hand = decided + 2;
    s.api::<Deployment>()
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": hand}})),
        )
        .await
        .unwrap_or_else(|e| panic!("scaling Deployment {name} to {hand}: {e}"));
    eventually(
        Duration::from_secs(60),
        &format!("a Deployment scaled by hand to {hand} is put back to the decided {decided}, not adopted"),
        || async {
            let running = replicas_of(&s.api::<Deployment>().get(name).await.unwrap());
            let now = s.consumer(name).await.status.map(|st| st.replicas).unwrap_or(0);
            if running == decided && now == decided {
                Ok(())
            } else {
                Err(format!("Deployment {running}, decided {now}"))
            }
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn hand_edits_of_the_owned_objects_are_put_back() {
    let s = Scenario::new("hand-edits").await;
    let topic = s.topic("operator-hand-edits", 4, 100).await;
    s.create_consumer("orders", scratch_consumer(&topic)).await;
    let decided = decided(&s, "orders").await;

    // `kubectl set env deployment/orders SINK_URL=...`
    let deployments = s.api::<Deployment>();
    let mut d = deployments.get("orders").await.unwrap();
    let want = env_of(&d, "SINK_URL").expect("SINK_URL");
    assert_eq!(want, "file:///out/orders?format=ndjson");
    let container = &mut d
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    for e in container.env.iter_mut().flatten() {
        if e.name == "SINK_URL" {
            e.value = Some("file:///out/elsewhere".into());
        }
    }
    deployments
        .replace("orders", &PostParams::default(), &d)
        .await
        .expect("editing the Deployment by hand");
    wait_for(
        &deployments,
        "orders",
        Duration::from_secs(60),
        &format!("a hand-edited SINK_URL is put back to {want}"),
        |d: Option<&Deployment>| d.and_then(|d| env_of(d, "SINK_URL")).as_deref() == Some(&want),
    )
    .await;

    // `kubectl delete service orders-metrics`
    let services = s.api::<Service>();
    let old = services.get("orders-metrics").await.unwrap().uid().unwrap();
    services
        .delete("orders-metrics", &Default::default())
        .await
        .expect("deleting the Service by hand");
    wait_for(
        &services,
        "orders-metrics",
        Duration::from_secs(60),
        "a Service deleted by hand is put back",
        |svc: Option<&Service>| svc.and_then(|svc| svc.uid()).is_some_and(|uid| uid != old),
    )
    .await;

    hand_scale_is_put_back(&s, "orders", decided).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn while_paused_kubectl_scale_sets_the_replicas_and_a_scaled_up_event_gives_the_counts() {
    let s = Scenario::new("scale").await;
    let topic = s.topic("operator-scale", 4, 100).await;
    let mpc = s.create_consumer("orders", scratch_consumer(&topic)).await;
    assert_eq!(decided(&s, "orders").await, 1, "the decision without lag");

    s.patch_consumer("orders", json!({"spec": {"autoscaling": {"paused": true}}}))
        .await;
    // `kubectl scale mpc/orders --replicas=2`: the scale subresource.
    let consumers = s.api::<MillpondConsumer>();
    consumers
        .patch_scale(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scaling the MillpondConsumer");
    let d = eventually(
        Duration::from_secs(90),
        "while paused, kubectl scale mpc --replicas=2 runs 2 ready pods",
        || async {
            let d = s.api::<Deployment>().get("orders").await.unwrap();
            let ready = d
                .status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0);
            if replicas_of(&d) == 2 && ready == 2 {
                Ok(d)
            } else {
                Err(format!(
                    "Deployment {} replicas, {ready} ready",
                    replicas_of(&d)
                ))
            }
        },
    )
    .await;
    assert_eq!(s.consumer_pods("orders").await.len(), 2, "{:?}", d.status);
    s.condition_reason("orders", "Scaling", "Paused", Duration::from_secs(30))
        .await;
    let scale = consumers
        .get_scale("orders")
        .await
        .expect("the scale subresource");
    assert_eq!(scale.spec.and_then(|sp| sp.replicas), Some(2), "scale spec");

    let events = eventually(
        Duration::from_secs(30),
        "scaling publishes a ScaledUp Event on the MillpondConsumer",
        || async {
            let events = s.events("orders", "ScaledUp").await;
            if events.is_empty() {
                Err("none".to_string())
            } else {
                Ok(events)
            }
        },
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        event.involved_object.kind.as_deref(),
        Some("MillpondConsumer")
    );
    assert_eq!(event.involved_object.uid, mpc.uid());
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    // `<from> -> <to>: <the decision's reason>`; the reason starts with
    // the lag it saw and ends with the paused rule.
    let message = event.message.as_deref().unwrap_or("");
    assert!(
        message.starts_with("1 -> 2: lag ") && message.contains(": paused: "),
        "the counts and the reason: {message}"
    );
}
