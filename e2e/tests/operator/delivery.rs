//! A MillpondConsumer delivering a topic to a volume, and a spec edit
//! rolling out.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;
use serde_json::{json, Value};

use crate::support::*;

/// The consumer every delivery scenario starts from: `topic` into
/// `file:///sink/<name>` on the claim `sink`, 256Mi, 1 to 4 pods.
fn orders(topic: &str, name: &str) -> Value {
    json!({
        "kafka": {"bootstrapServers": millpond_testkit::kafka::bootstrap(), "topic": topic},
        "sink": {"url": format!("file:///sink/{name}")},
        "template": {"volumes": [
            {"name": "sink", "mountPath": "/sink", "persistentVolumeClaim": {"claimName": "sink"}}
        ]},
        "resources": {"memory": "256Mi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
    })
}

/// `Name` and the printer columns of the CRD in `crds/`.
fn printer_columns() -> Vec<String> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/millpondconsumer.yaml");
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(file).expect("the CRD")).expect("a CRD");
    let version = &crd.spec.versions[0];
    std::iter::once("Name".to_string())
        .chain(
            version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn every_record_reaches_the_sink_volume_and_the_group_commits_the_end_of_the_log() {
    let s = Scenario::new("delivery").await;
    let topic = s.topic("operator-delivery", 4, RECORDS).await;
    let sink = s.host_volume("sink").await;
    let mpc = s.create_consumer("orders", orders(&topic, "orders")).await;

    let deployment = s.rolled_out("orders", Duration::from_secs(120)).await;
    let lines = all_delivered(&sink.join("orders"), RECORDS, Duration::from_secs(180)).await;
    assert!(
        lines as u64 >= RECORDS,
        "{lines} lines for {RECORDS} records"
    );
    committed_to_the_end(
        &mpc.spec.kafka.group_id(),
        &topic,
        4,
        Duration::from_secs(60),
    )
    .await;

    // The operator reads the same: no lag left.
    wait_for(
        &s.api::<MillpondConsumer>(),
        "orders",
        Duration::from_secs(60),
        "status.lag.total drops to 0 once the backlog is delivered",
        |m: Option<&MillpondConsumer>| {
            m.and_then(|m| m.status.as_ref()?.lag.as_ref())
                .is_some_and(|l| l.total == 0)
        },
    )
    .await;

    // `kubectl get mpc`: the columns the CRD declares, and this consumer's
    // row as its status says (read again until both are of the same moment).
    let declared = printer_columns();
    let (columns, cells) = eventually(
        Duration::from_secs(30),
        "kubectl get mpc shows the consumer's replicas, ready pods, lag, fullness and Ready reason",
        || async {
            let (columns, cells) = table_row(&s, "orders").await;
            let mpc = s.consumer("orders").await;
            let status = mpc.status.clone().unwrap_or_default();
            let want = [
                ("Name", json!("orders")),
                ("Replicas", json!(status.replicas)),
                ("Ready", json!(status.ready_replicas)),
                ("Lag", json!(status.lag.as_ref().map(|l| l.total))),
                ("Fullness", json!(status.buffer_fullness)),
                ("Status", json!(condition(&mpc, "Ready").map(|c| c.reason))),
            ];
            let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => a == b,
            };
            let cell = |name: &str| {
                let i = columns.iter().position(|c| c == name)?;
                cells.get(i)
            };
            if want
                .iter()
                .all(|(name, want)| cell(name).is_some_and(|got| same(got, want)))
            {
                Ok((columns, cells))
            } else {
                Err(format!(
                    "columns {columns:?}, row {cells:?}, status says {want:?}"
                ))
            }
        },
    )
    .await;
    assert_eq!(columns, declared, "kubectl get mpc columns");
    assert_eq!(cells.len(), declared.len(), "{cells:?}");
    for name in [
        "Name", "Replicas", "Ready", "Lag", "Fullness", "Status", "Age",
    ] {
        assert!(
            columns.iter().any(|c| c == name),
            "a {name} column in {columns:?}"
        );
    }
    let lag = columns.iter().position(|c| c == "Lag").unwrap();
    assert_eq!(cells[lag], 0, "the Lag column of {cells:?}");

    // Every owned object names the consumer as its controlling owner.
    let want = format!(
        "MillpondConsumer/orders uid {} controller Some(true)",
        mpc.uid().unwrap()
    );
    assert_eq!(owned_by(&deployment.metadata), want, "Deployment orders");
    let config_map = s.api::<ConfigMap>().get("orders-limits").await.unwrap();
    assert_eq!(
        owned_by(&config_map.metadata),
        want,
        "ConfigMap orders-limits"
    );
    let service = s.api::<Service>().get("orders-metrics").await.unwrap();
    assert_eq!(owned_by(&service.metadata), want, "Service orders-metrics");
    let pdb = s.api::<PodDisruptionBudget>().get("orders").await.unwrap();
    assert_eq!(owned_by(&pdb.metadata), want, "PodDisruptionBudget orders");
    let secret = s.api::<Secret>().get("orders-admin").await.unwrap();
    assert_eq!(owned_by(&secret.metadata), want, "Secret orders-admin");

    // The admin port admits the operator's own pods, as the chart runs
    // them, and nothing else; the metrics port stays open.
    let policy = s.api::<NetworkPolicy>().get("orders-admin").await.unwrap();
    assert_eq!(
        owned_by(&policy.metadata),
        want,
        "NetworkPolicy orders-admin"
    );
    let rules = policy.spec.unwrap().ingress.unwrap();
    let admin = rules
        .iter()
        .find(|r| {
            r.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(IntOrString::String("admin".into())))
        })
        .expect("a rule for the admin port");
    let peer = &admin.from.as_ref().expect("admin: from the operator only")[0];
    let namespace = peer
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(namespace["kubernetes.io/metadata.name"], OPERATOR_NAMESPACE);
    let selected = peer
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone()
        .unwrap();
    let operators = operator_pods(&s.client).await;
    assert!(!operators.is_empty());
    for pod in &operators {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert!(
            selected.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "the policy's {selected:?} do not select operator pod {:?} ({labels:?})",
            pod.metadata.name
        );
    }
    let metrics = rules
        .iter()
        .find(|r| {
            r.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(IntOrString::String("metrics".into())))
        })
        .expect("a rule for the metrics port");
    assert_eq!(metrics.from, None, "metrics open to every scraper");
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn editing_the_spec_rolls_out_pods_that_write_with_the_new_settings() {
    let s = Scenario::new("rollout").await;
    let topic = s.topic("operator-rollout", 4, 1_000).await;
    let sink = s.host_volume("sink").await;
    s.create_consumer("orders", orders(&topic, "orders")).await;
    let before = s.rolled_out("orders", Duration::from_secs(120)).await;
    all_delivered(&sink.join("orders"), 1_000, Duration::from_secs(120)).await;
    let hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .and_then(|a| a.get("millpond.io/config-hash").cloned())
    };
    let old_hash = hash(&before).expect("a config hash on the pod template");
    assert_eq!(env_of(&before, "SINK_METADATA").as_deref(), Some("false"));

    let edited = s
        .patch_consumer("orders", json!({"spec": {"sink": {"metadata": true}}}))
        .await;
    let generation = edited.metadata.generation.expect("a generation");
    wait_for(
        &s.api::<Deployment>(),
        "orders",
        Duration::from_secs(60),
        "the edit changes the pod template's config hash",
        |d: Option<&Deployment>| d.and_then(hash).is_some_and(|h| h != old_hash),
    )
    .await;
    let after = s.rolled_out("orders", Duration::from_secs(120)).await;
    assert_eq!(
        env_of(&after, "SINK_METADATA").as_deref(),
        Some("true"),
        "SINK_METADATA of the rolled-out pods"
    );

    wait_for(
        &s.api::<MillpondConsumer>(),
        "orders",
        Duration::from_secs(30),
        &format!("status.observedGeneration follows the edited spec ({generation})"),
        |m: Option<&MillpondConsumer>| {
            m.and_then(|m| m.status.as_ref()?.observed_generation) == Some(generation)
        },
    )
    .await;

    // What the new pods write carries the metadata the edit asked for.
    produce(&topic, 4, 1_000..1_100).await;
    let new = eventually(
        Duration::from_secs(60),
        "the 100 records produced after the roll-out reach the sink",
        || async {
            let new: Vec<Value> = sink_lines(&sink.join("orders"))
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| r["id"].as_u64().is_some_and(|id| id >= 1_000))
                .collect();
            if new.len() >= 100 {
                Ok(new)
            } else {
                Err(format!("{} of them", new.len()))
            }
        },
    )
    .await;
    for record in new {
        assert_eq!(record["_topic"], topic, "{record}");
        let partition = record["_partition"].as_i64().expect("_partition");
        assert_eq!(
            partition as u64,
            record["id"].as_u64().unwrap() % 4,
            "records are produced round-robin by id: {record}"
        );
        assert!(record["_offset"].is_i64(), "{record}");
    }
}
