//! `kubectl scale`, through the MillpondConsumer's scale subresource.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::columns::orders_with_a_full_status;
use crate::support::*;
use crate::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_scale_sets_the_replicas_and_the_scale_subresource_tells_spec_and_status_apart() {
    let s = Scenario::without_operator("scale").await;
    // 3 pods running (status) and 5 asked for (spec), so each is told apart.
    orders_with_a_full_status(&s).await;
    kubectl_ok(&["scale", "-n", &s.ns, "mpc/orders", "--replicas=5"]);
    assert_fields(
        "kubectl scale --replicas=5",
        &stored_spec(&s, "orders").await,
        &[("/replicas", json!(5))],
    );

    let scale = consumers(&s)
        .get_scale("orders")
        .await
        .unwrap_or_else(|e| panic!("the scale subresource of orders: {e}"));
    let spec = scale.spec.unwrap_or_default();
    let status = scale.status.unwrap_or_default();
    assert_eq!(
        (spec.replicas, status.replicas, status.selector.as_deref()),
        (Some(5), 3, Some("app.kubernetes.io/instance=orders")),
        "the scale subresource's spec replicas, status replicas and selector"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn negative_replicas_are_refused_by_kubectl_scale_and_by_the_scale_subresource() {
    let s = Scenario::without_operator("scale-negative").await;
    let spec = json!({"kafka": kafka_orders(), "sink": {"url": "file:///data"}, "replicas": 2});
    accepted(&s, "orders", spec).await;

    // kubectl refuses it before asking the API server.
    let run = kubectl(&["scale", "-n", &s.ns, "mpc/orders", "--replicas=-1"], "");
    assert!(
        !run.ok,
        "kubectl scale --replicas=-1 was accepted: {}",
        run.stdout
    );

    let refusal = consumers(&s)
        .patch_scale(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .map(|scale| format!("accepted: {scale:?}"));
    let message = match refusal {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("the scale subresource must refuse replicas -1: {other:?}"),
    };
    assert_contains(
        "the scale subresource's refusal",
        &message,
        &["spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"],
    );
    assert_fields(
        "replicas after both refusals",
        &stored_spec(&s, "orders").await,
        &[("/replicas", json!(2))],
    );
}
