//! The chart installed with `watchNamespaces`: the operator runs the
//! consumers of the namespaces it watches and leaves the others alone.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::Api;
use millpond_crds::MillpondConsumer;
use serde_json::json;

use crate::support::*;

/// The namespace-scoped release.
const SCOPED: &str = "mp-e2e-scoped";

/// The shared release uninstalled, and `SCOPED` installed in its place,
/// until dropped: then `SCOPED` goes and the shared release comes back, also
/// when the scenario fails.
struct ScopedInstead {
    namespace: String,
}

impl ScopedInstead {
    async fn install(namespace: &str, watched: &[&str]) -> ScopedInstead {
        tokio::task::spawn_blocking(|| helm_uninstall(RELEASE, OPERATOR_NAMESPACE))
            .await
            .unwrap()
            .expect("uninstalling the shared release");
        let guard = ScopedInstead {
            namespace: namespace.to_string(),
        };
        let set = format!("watchNamespaces={{{}}}", watched.join(","));
        let ns = namespace.to_string();
        tokio::task::spawn_blocking(move || helm_install(SCOPED, &ns, &["--set", &set]))
            .await
            .unwrap()
            .expect("installing the chart with watchNamespaces");
        guard
    }
}

impl Drop for ScopedInstead {
    fn drop(&mut self) {
        if let Err(e) = helm_uninstall(SCOPED, &self.namespace) {
            eprintln!("clean-up: {e}");
        }
        if let Err(e) = helm_install(RELEASE, OPERATOR_NAMESPACE, &["--create-namespace"]) {
            eprintln!("clean-up: the shared release is not back: {e}");
        }
    }
}

/// The namespaces whose consumer `scoped` the scoped release's leader has a
/// desired-replicas series for.
async fn decided_for(s: &Scenario, ops: &str) -> Result<BTreeSet<String>, String> {
    let prefix = "millpond_operator_desired_replicas{name=\"scoped\",namespace=\"";
    let text = leader_metrics_of(&s.client, ops, SCOPED).await?;
    Ok(text
        .lines()
        .filter_map(|l| Some(l.strip_prefix(prefix)?.split_once('"')?.0.to_string()))
        .collect())
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn installed_with_watch_namespaces_the_operator_runs_those_namespaces_and_leaves_another_alone(
) {
    let s = Scenario::alone("scoped").await;
    let topic = s.topic("operator-scoped", 4, 10).await;
    let ops = s.namespace("ops").await;
    let (a, b, c) = (
        s.namespace("a").await,
        s.namespace("b").await,
        s.namespace("c").await,
    );
    // Two watched namespaces, so the merged watches of several run.
    let _scoped = ScopedInstead::install(&ops, &[&a, &c]).await;
    wait_for(
        &Api::<Deployment>::namespaced(s.client.clone(), &ops),
        &format!("{SCOPED}-millpond-operator"),
        Duration::from_secs(60),
        "the scoped operator runs",
        |d: Option<&Deployment>| d.is_some_and(rolled_out),
    )
    .await;

    for ns in [&a, &b, &c] {
        // Paused at 0 replicas: the objects and the decision, no pods.
        let spec = json!({
            "kafka": {"bootstrapServers": millpond_testkit::kafka::bootstrap(), "topic": topic},
            "sink": {"url": "http://127.0.0.1:9/in"},
            "autoscaling": {"paused": true},
            "replicas": 0,
        });
        let spec = serde_json::from_value(spec).expect("a spec");
        Api::<MillpondConsumer>::namespaced(s.client.clone(), ns)
            .create(&Default::default(), &MillpondConsumer::new("scoped", spec))
            .await
            .unwrap_or_else(|e| panic!("creating the consumer in {ns}: {e}"));
    }
    for ns in [&a, &c] {
        wait_for(
            &Api::<Deployment>::namespaced(s.client.clone(), ns),
            "scoped",
            Duration::from_secs(60),
            &format!("the scoped operator runs the consumer of the watched {ns}"),
            |d: Option<&Deployment>| d.is_some(),
        )
        .await;
    }
    let watched = BTreeSet::from([a.clone(), c.clone()]);
    eventually(
        Duration::from_secs(30),
        "the scoped operator decided for both watched namespaces",
        || async {
            let got = decided_for(&s, &ops).await?;
            if got == watched {
                Ok(())
            } else {
                Err(format!("decided for {got:?}"))
            }
        },
    )
    .await;

    // Three more intervals: still only the watched ones.
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL_SECONDS as u64)).await;
    assert_eq!(
        decided_for(&s, &ops).await.unwrap(),
        watched,
        "it decides for the watched namespaces only"
    );
    let other = Api::<Deployment>::namespaced(s.client.clone(), &b);
    assert!(
        other.get_opt("scoped").await.unwrap().is_none(),
        "no Deployment for the consumer of {b}"
    );
    let untouched = Api::<MillpondConsumer>::namespaced(s.client.clone(), &b)
        .get("scoped")
        .await
        .unwrap();
    assert_eq!(untouched.status, None, "no status for the consumer of {b}");

    // Its Roles cover what it watches: no refusal, no error, no warning.
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ops);
    let selector = format!("app.kubernetes.io/instance={SCOPED}");
    let mut complaints = Vec::new();
    for pod in pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
    {
        let name = pod.metadata.name.unwrap_or_default();
        let log = pods.logs(&name, &LogParams::default()).await.unwrap();
        complaints.extend(
            log.lines()
                .filter(|l| {
                    let l = l.to_lowercase();
                    l.contains("forbidden")
                        || l.contains(r#""level":"error""#)
                        || l.contains(r#""level":"warn""#)
                })
                .map(|l| format!("{name}: {l}")),
        );
    }
    assert!(
        complaints.is_empty(),
        "the namespace-scoped operator logs no refusal:\n{}",
        complaints.join("\n")
    );
}
