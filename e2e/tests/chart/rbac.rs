//! The RBAC the chart renders: least privilege, no wildcard, leases in the
//! release namespace only, and with `watchNamespaces` the same rules as
//! Roles in the watched namespaces instead of a ClusterRole.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

use crate::helm::*;

/// Two namespaces the operator is told to watch when rendering.
const WATCHED: [&str; 2] = ["team-a", "team-b"];

/// What the operator may do with Secrets: read and write the ones it
/// makes, never list or watch them all.
const SECRET_VERBS: [&str; 4] = ["get", "create", "patch", "update"];

/// The rules of `chart` that use a wildcard (a `*` in an API group,
/// resource or verb) or name no resource or no verb.
fn too_wide(chart: &Rendered) -> Vec<String> {
    chart
        .rules()
        .into_iter()
        .filter(|(_, r)| {
            let resources = r.resources.clone().unwrap_or_default();
            let words = r
                .api_groups
                .iter()
                .flatten()
                .chain(&resources)
                .chain(&r.verbs);
            resources.is_empty() || r.verbs.is_empty() || words.into_iter().any(|w| w.contains('*'))
        })
        .map(|(role, r)| format!("{role}: {r:?}"))
        .collect()
}

/// The verbs of every rule of `chart` that names Secrets, with its role.
fn secret_rules(chart: &Rendered) -> Vec<(String, Vec<String>)> {
    chart
        .rules()
        .into_iter()
        .filter(|(_, r)| r.resources.iter().flatten().any(|res| res == "secrets"))
        .map(|(role, r)| (role, r.verbs))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn every_rbac_rule_names_its_resources_and_verbs_without_a_wildcard() {
    let chart = render(&[]);
    assert!(
        !chart.rules().is_empty(),
        "the default values render RBAC rules"
    );
    let wide = too_wide(&chart);
    assert!(
        wide.is_empty(),
        "no RBAC rule uses a wildcard:\n{}",
        wide.join("\n")
    );
    let stars: Vec<&str> = chart
        .text
        .lines()
        .filter(|l| l.contains("\"*\"") || l.contains("'*'"))
        .collect();
    assert!(
        stars.is_empty(),
        "no quoted * anywhere in the rendered chart: {stars:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_operator_may_get_secrets_but_not_list_or_watch_them() {
    assert_eq!(
        secret_rules(&render(&[])),
        [(
            format!("ClusterRole {}", fullname(RELEASE)),
            SECRET_VERBS.map(String::from).to_vec()
        )],
        "the one rule on Secrets, in the operator's ClusterRole"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn leases_are_granted_in_a_role_in_the_release_namespace_not_cluster_wide() {
    let leases: Vec<String> = render(&[])
        .rules()
        .into_iter()
        .filter(|(_, r)| r.resources.iter().flatten().any(|res| res == "leases"))
        .map(|(role, _)| role)
        .collect();
    assert_eq!(
        leases,
        [format!(
            "Role {NAMESPACE}/{}-leader-election",
            fullname(RELEASE)
        )],
        "the roles granting leases"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn with_watch_namespaces_the_operator_gets_its_rules_as_roles_in_those_namespaces() {
    let chart = render(&[
        "--set",
        &format!("watchNamespaces={{{}}}", WATCHED.join(",")),
    ]);
    assert_kinds(
        &chart,
        &[
            "ClusterRole",
            "ClusterRole",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        "with watchNamespaces: a Role and RoleBinding per watched namespace instead of the \
         ClusterRole (the two ClusterRoles left are the users' aggregated ones)",
    );
    let operator_roles: Vec<Role> = chart
        .of_kind("Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == fullname(RELEASE).as_str())
        .map(|r| serde_json::from_value(r.clone()).expect("a Role"))
        .collect();
    let namespaces: Vec<&str> = operator_roles
        .iter()
        .filter_map(|r| r.metadata.namespace.as_deref())
        .collect();
    assert_eq!(
        namespaces, WATCHED,
        "the operator's Roles are in the watched namespaces"
    );

    let cluster_role: ClusterRole = render(&[]).one("ClusterRole", &fullname(RELEASE));
    let rules = |r: &Option<Vec<PolicyRule>>| r.clone().unwrap_or_default();
    assert_eq!(
        rules(&operator_roles[0].rules),
        rules(&cluster_role.rules),
        "a watched namespace's Role has the ClusterRole's rules"
    );
    let wide = too_wide(&chart);
    assert!(
        wide.is_empty(),
        "no rule of the namespaced Roles uses a wildcard:\n{}",
        wide.join("\n")
    );
    let secrets: Vec<(String, Vec<String>)> = WATCHED
        .iter()
        .map(|ns| {
            let role = format!("Role {ns}/{}", fullname(RELEASE));
            (role, SECRET_VERBS.map(String::from).to_vec())
        })
        .collect();
    assert_eq!(
        secret_rules(&chart),
        secrets,
        "a watched namespace's Role may get Secrets, not list or watch them"
    );

    let deployment: Deployment = chart.one("Deployment", &fullname(RELEASE));
    let container = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].clone())
        .expect("a container");
    let told = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "WATCH_NAMESPACES")
        .and_then(|e| e.value.clone());
    assert_eq!(
        told,
        Some(WATCHED.join(",")),
        "the operator is told the namespaces (WATCH_NAMESPACES)"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn with_watch_namespaces_and_no_aggregated_roles_nothing_is_cluster_scoped() {
    let chart = render(&[
        "--set",
        &format!("watchNamespaces={{{}}}", WATCHED[0]),
        "--set",
        "rbac.aggregateToDefaultRoles=false",
    ]);
    assert_kinds(
        &chart,
        &[
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        "with watchNamespaces and no aggregated roles",
    );
}
