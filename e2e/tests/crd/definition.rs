//! The CRD itself: what `kubectl apply -f crds/` installs.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use crate::support::*;
use crate::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_apply_of_crds_installs_a_namespaced_api_with_short_name_mpc_and_category_millpond()
{
    crd_applied().await;
    let run = kubectl(&["apply", "-f", "crds/"], "");
    assert!(run.ok, "kubectl apply -f crds/: {}", run.stderr);

    let client = kube::Client::try_default().await.expect("a client");
    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("millpondconsumers.millpond.io")
        .await
        .expect("the CRD millpondconsumers.millpond.io");
    let established = crd
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Established");
    assert_eq!(
        established.map(|c| c.status.as_str()),
        Some("True"),
        "the CRD is Established: {:?}",
        crd.status
    );
    assert_eq!(crd.spec.scope, "Namespaced", "the CRD's scope");
    let names = crd.spec.names;
    assert_eq!(names.short_names, Some(vec!["mpc".into()]), "short names");
    assert_eq!(
        names.categories,
        Some(vec!["millpond".into()]),
        "categories"
    );
}
