//! Deleting a MillpondConsumer removes everything it owned, and the operator
//! forgets it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;

use crate::edits::{decided, scratch_consumer};
use crate::support::*;

/// The values of the leader's `millpond_operator_desired_replicas` series
/// of consumer `name` in `ns`.
async fn desired_replicas_series(s: &Scenario, name: &str) -> Result<Vec<f64>, String> {
    let prefix = format!(
        "millpond_operator_desired_replicas{{name=\"{name}\",namespace=\"{}\"}} ",
        s.ns
    );
    let text = leader_metrics(&s.client).await?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .collect())
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn deleting_the_consumer_removes_what_it_owned_stops_its_pods_and_drops_its_metric_series() {
    let s = Scenario::new("gc").await;
    let topic = s.topic("operator-gc", 4, 100).await;
    let mpc = s.create_consumer("orders", scratch_consumer(&topic)).await;
    let decided = decided(&s, "orders").await;
    let series = eventually(
        Duration::from_secs(30),
        "the leader exports the consumer's desired replicas",
        || async {
            let series = desired_replicas_series(&s, "orders").await?;
            if series.is_empty() {
                Err("no series".into())
            } else {
                Ok(series)
            }
        },
    )
    .await;
    assert_eq!(series, [decided as f64], "one series, at the decision");

    let uid = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.uid.clone().expect("a uid")
    };
    let deployment = uid(&s.api::<Deployment>().get("orders").await.unwrap().metadata);
    let config_map = uid(&s
        .api::<ConfigMap>()
        .get("orders-limits")
        .await
        .unwrap()
        .metadata);
    let service = uid(&s
        .api::<Service>()
        .get("orders-metrics")
        .await
        .unwrap()
        .metadata);
    let pdb = uid(&s
        .api::<PodDisruptionBudget>()
        .get("orders")
        .await
        .unwrap()
        .metadata);
    let secret = uid(&s
        .api::<Secret>()
        .get("orders-admin")
        .await
        .unwrap()
        .metadata);

    s.api::<MillpondConsumer>()
        .delete("orders", &Default::default())
        .await
        .expect("deleting the MillpondConsumer");
    gone(
        &s.api::<MillpondConsumer>(),
        "orders",
        &mpc.uid().unwrap(),
        Duration::from_secs(30),
    )
    .await;
    gone(
        &s.api::<Deployment>(),
        "orders",
        &deployment,
        Duration::from_secs(90),
    )
    .await;
    gone(
        &s.api::<ConfigMap>(),
        "orders-limits",
        &config_map,
        Duration::from_secs(30),
    )
    .await;
    gone(
        &s.api::<Service>(),
        "orders-metrics",
        &service,
        Duration::from_secs(30),
    )
    .await;
    gone(
        &s.api::<PodDisruptionBudget>(),
        "orders",
        &pdb,
        Duration::from_secs(30),
    )
    .await;
    gone(
        &s.api::<Secret>(),
        "orders-admin",
        &secret,
        Duration::from_secs(30),
    )
    .await;
    eventually(Duration::from_secs(90), "and its pods stop", || async {
        let pods = s
            .api::<k8s_openapi::api::core::v1::Pod>()
            .list(&Default::default())
            .await;
        let names: Vec<String> = pods
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(format!("pods {names:?}"))
        }
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "and the operator drops its metric series",
        || async {
            let series = desired_replicas_series(&s, "orders").await?;
            if series.is_empty() {
                Ok(())
            } else {
                Err(format!("series {series:?}"))
            }
        },
    )
    .await;
}
