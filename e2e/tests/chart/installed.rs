//! The chart on the real API server: every rendered object accepted, and
//! installed (0 operator replicas, so the RBAC is real and no operator
//! runs) its ServiceAccount may do what the operator needs and nothing
//! more, in every namespace or in the watched ones only; users of the
//! built-in `edit` role may manage MillpondConsumers.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;

use crate::helm::*;
use crate::support::{eventually, Scenario};

/// `kubectl auth can-i <ask> --as <account>` for each of `asks` (the
/// arguments as a user types them, e.g. `patch
/// millpondconsumers.millpond.io -n pond --subresource=status`); the asks
/// whose answer is not `want` (`yes` or `no`), with the answer.
fn answered_otherwise(account: &str, asks: &[String], want: &str) -> Vec<String> {
    asks.iter()
        .filter_map(|ask| {
            let mut args = vec!["auth", "can-i"];
            args.extend(ask.split_whitespace());
            args.extend(["--as", account]);
            let out = run("kubectl", &args);
            let answer = out.stdout.trim();
            (answer != want).then(|| {
                format!(
                    "should be {want}: {ask} (answered {answer:?} {})",
                    out.stderr.trim()
                )
            })
        })
        .collect()
}

/// Fails the test unless `account` may do every one of `allowed` and none
/// of `denied`; `what` says what that means.
fn assert_can_exactly(account: &str, allowed: &[String], denied: &[String], what: &str) {
    let mut wrong = answered_otherwise(account, allowed, "yes");
    wrong.extend(answered_otherwise(account, denied, "no"));
    assert!(
        wrong.is_empty(),
        "{what} ({} allowed, {} denied asked):\n{}",
        allowed.len(),
        denied.len(),
        wrong.join("\n")
    );
}

/// The ServiceAccount the operator of `release` in `namespace` runs as.
fn service_account(namespace: &str, release: &str) -> String {
    format!("system:serviceaccount:{namespace}:{}", fullname(release))
}

/// A release name of this run: its cluster-scoped objects (ClusterRoles)
/// do not meet those of another run.
fn release(slug: &str) -> String {
    format!("mp-chart-{}-{slug}", std::process::id())
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_api_server_accepts_every_rendered_object_crd_included() {
    let s = Scenario::without_operator("chart-dry-run").await;
    let chart = render_as(
        &release("dry-run"),
        &s.ns,
        &["--include-crds", "--set", "grafanaDashboard.enabled=true"],
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("chart.yaml");
    std::fs::write(&file, &chart.text).expect("writing the rendered chart");
    let file = file.to_str().expect("a UTF-8 path");
    let out = run(
        "kubectl",
        &["apply", "--dry-run=server", "-n", &s.ns, "-f", file],
    );
    assert!(
        out.ok,
        "the API server accepts every rendered object (server-side dry-run): {}\nkubectl printed:\n{}",
        out.stderr.trim(),
        out.stdout
    );
    assert_eq!(
        out.stdout.lines().count(),
        chart.objects.len(),
        "one line of kubectl for each rendered object:\n{}",
        out.stdout
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn installed_the_operators_service_account_can_do_what_it_needs_and_nothing_more() {
    let s = Scenario::without_operator("chart-rbac").await;
    let name = release("rbac");
    let _release = Release::install(&name, &s.ns, &["--set", "replicaCount=0"]);
    let ns = &s.ns;
    let allowed = [
        "get millpondconsumers.millpond.io -n pond".to_string(),
        "list millpondconsumers.millpond.io -n pond".into(),
        "watch millpondconsumers.millpond.io -n pond".into(),
        "patch millpondconsumers.millpond.io -n pond".into(),
        "patch millpondconsumers.millpond.io -n pond --subresource=status".into(),
        "update millpondconsumers.millpond.io -n pond --subresource=scale".into(),
        "update millpondconsumers.millpond.io -n pond --subresource=finalizers".into(),
        "create deployments.apps -n pond".into(),
        "patch deployments.apps -n pond".into(),
        "delete deployments.apps -n pond".into(),
        "create configmaps -n pond".into(),
        "create services -n pond".into(),
        "create poddisruptionbudgets.policy -n pond".into(),
        "create networkpolicies.networking.k8s.io -n pond".into(),
        "watch networkpolicies.networking.k8s.io -n pond".into(),
        "create secrets -n pond".into(),
        "get secrets -n pond".into(),
        "list pods -n pond".into(),
        "watch pods -n pond".into(),
        "create events -n pond".into(),
        "create events.events.k8s.io -n pond".into(),
        format!("get leases.coordination.k8s.io -n {ns}"),
        format!("create leases.coordination.k8s.io -n {ns}"),
        format!("update leases.coordination.k8s.io -n {ns}"),
    ];
    let denied = [
        "list secrets -n pond".to_string(),
        "watch secrets -n pond".into(),
        "delete millpondconsumers.millpond.io -n pond".into(),
        "create millpondconsumers.millpond.io -n pond".into(),
        "create pods -n pond".into(),
        "delete pods -n pond".into(),
        "create leases.coordination.k8s.io -n pond".into(),
        format!("delete leases.coordination.k8s.io -n {ns}"),
        "get nodes".into(),
        "create clusterroles.rbac.authorization.k8s.io".into(),
        "create pods/exec -n pond".into(),
    ];
    assert_can_exactly(
        &service_account(ns, &name),
        &allowed,
        &denied,
        "the operator's ServiceAccount can do what it needs and nothing more",
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn installed_with_watch_namespaces_the_service_account_works_in_the_watched_namespace_only() {
    let s = Scenario::without_operator("chart-scoped").await;
    let (watched, other) = (s.namespace("watched").await, s.namespace("other").await);
    let name = release("scoped");
    let _release = Release::install(
        &name,
        &s.ns,
        &[
            "--set",
            "replicaCount=0",
            "--set",
            &format!("watchNamespaces={{{watched}}}"),
            "--set",
            "rbac.aggregateToDefaultRoles=false",
        ],
    );
    let allowed = [
        format!("get secrets -n {watched}"),
        format!("create secrets -n {watched}"),
        format!("list millpondconsumers.millpond.io -n {watched}"),
        format!("watch millpondconsumers.millpond.io -n {watched}"),
        format!("patch millpondconsumers.millpond.io -n {watched} --subresource=status"),
        format!("update millpondconsumers.millpond.io -n {watched} --subresource=finalizers"),
        format!("create deployments.apps -n {watched}"),
        format!("watch deployments.apps -n {watched}"),
        format!("create configmaps -n {watched}"),
        format!("create services -n {watched}"),
        format!("create poddisruptionbudgets.policy -n {watched}"),
        format!("create networkpolicies.networking.k8s.io -n {watched}"),
        format!("list pods -n {watched}"),
        format!("watch pods -n {watched}"),
        format!("create events -n {watched}"),
        format!("update leases.coordination.k8s.io -n {}", s.ns),
    ];
    let denied = [
        format!("get secrets -n {other}"),
        format!("list millpondconsumers.millpond.io -n {other}"),
        format!("create deployments.apps -n {other}"),
        format!("list pods -n {other}"),
        format!("create events -n {other}"),
        format!("list secrets -n {watched}"),
        format!("watch secrets -n {watched}"),
        format!("delete millpondconsumers.millpond.io -n {watched}"),
        "list millpondconsumers.millpond.io --all-namespaces".into(),
        "watch millpondconsumers.millpond.io --all-namespaces".into(),
        "list deployments.apps --all-namespaces".into(),
        "list pods --all-namespaces".into(),
        "get customresourcedefinitions.apiextensions.k8s.io --all-namespaces".into(),
    ];
    assert_can_exactly(
        &service_account(&s.ns, &name),
        &allowed,
        &denied,
        "with watchNamespaces the ServiceAccount reads Secrets and runs consumers in the \
         watched namespace only, and lists nothing cluster-wide",
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn users_of_the_built_in_edit_role_can_manage_millpond_consumers() {
    let s = Scenario::without_operator("chart-users").await;
    let name = release("users");
    let _release = Release::install(&name, &s.ns, &["--set", "replicaCount=0"]);
    let roles: Api<ClusterRole> = Api::all(s.client.clone());

    let edit_role = format!("{}-edit", fullname(&name));
    let labels = roles
        .get(&edit_role)
        .await
        .unwrap_or_else(|e| panic!("reading ClusterRole {edit_role}: {e}"))
        .metadata
        .labels
        .unwrap_or_default();
    let aggregated_to = ["edit", "admin"]
        .map(|role| labels.get(&format!("rbac.authorization.k8s.io/aggregate-to-{role}")));
    assert_eq!(
        aggregated_to,
        [Some(&"true".to_string()); 2],
        "the release's ClusterRole {edit_role} is aggregated to the built-in edit and admin roles"
    );

    // kube-controller-manager aggregates within a few seconds.
    let want = ["millpondconsumers", "millpondconsumers/scale"];
    eventually(
        Duration::from_secs(20),
        "the built-in edit role lets users manage MillpondConsumers",
        || async {
            let edit = roles.get("edit").await.map_err(|e| e.to_string())?;
            let resources: Vec<String> = edit
                .rules
                .iter()
                .flatten()
                .filter(|r| r.api_groups.iter().flatten().any(|g| g == "millpond.io"))
                .flat_map(|r| r.resources.clone().unwrap_or_default())
                .collect();
            if want.iter().all(|w| resources.iter().any(|r| r == w)) {
                Ok(())
            } else {
                Err(format!("its millpond.io resources: {resources:?}"))
            }
        },
    )
    .await;
}
