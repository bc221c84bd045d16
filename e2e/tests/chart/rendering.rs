//! What the chart installs with its default values and with one replica:
//! the CRD it ships, `helm lint`, the operator's Deployment and its metrics
//! Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Probe, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::helm::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_chart_ships_the_generated_crd() {
    let read = |path: &str| {
        let file = repo().join(path);
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    let generated = read("crds/millpondconsumer.yaml");
    let shipped = read(&format!("{CHART}/crds/millpondconsumer.yaml"));
    let differs = generated
        .lines()
        .zip(shipped.lines())
        .position(|(g, s)| g != s)
        .unwrap_or(generated.lines().count().min(shipped.lines().count()));
    assert!(
        generated == shipped,
        "the chart's CRD is not crds/millpondconsumer.yaml (first difference at line {}); \
         copy it: cp crds/millpondconsumer.yaml {CHART}/crds/",
        differs + 1
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn helm_lint_strict_is_clean_with_the_defaults_and_with_monitoring_on() {
    let monitoring = [
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
    ];
    for values in [&[][..], &monitoring[..]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(values);
        let out = run("helm", &args);
        let complaints: Vec<&str> = out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .filter(|l| l.starts_with("[WARNING]") || l.starts_with("[ERROR]"))
            .collect();
        assert!(
            out.ok && complaints.is_empty(),
            "helm {} is not clean: {complaints:?}\n{}",
            args.join(" "),
            out.both()
        );
    }
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_default_values_install_the_operator_its_metrics_service_and_its_rbac() {
    assert_kinds(
        &render(&[]),
        &[
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        "of the default values",
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn one_replica_without_leader_election_has_no_disruption_budget_and_no_lease_role() {
    let chart = render(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "rbac.aggregateToDefaultRoles=false",
    ]);
    assert_kinds(
        &chart,
        &[
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount",
        ],
        "of one replica without leader election and aggregated roles",
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_operator_runs_two_non_root_replicas_with_probes_resources_and_its_settings() {
    let deployment: Deployment = render(&[]).one("Deployment", &fullname(RELEASE));
    let spec = deployment.spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(2), "the operator runs 2 replicas");
    let pod = spec.template.spec.expect("a pod spec");
    let pod_security = pod.security_context.clone().unwrap_or_default();
    assert_eq!(
        (
            pod_security.run_as_non_root,
            pod_security.seccomp_profile.map(|p| p.type_)
        ),
        (Some(true), Some("RuntimeDefault".to_string())),
        "the pod runs as non-root with the runtime's seccomp profile"
    );
    let container = &pod.containers[0];
    probes_on_the_metrics_port(container);
    non_root_on_a_read_only_root(container);
    settings_from_the_downward_api_and_the_values(container);
    let resources = container.resources.clone().unwrap_or_default();
    let (requests, limits) = (
        resources.requests.unwrap_or_default(),
        resources.limits.unwrap_or_default(),
    );
    let quantity = |map: &BTreeMap<String, Quantity>, key: &str| map.get(key).map(|q| q.0.clone());
    assert_eq!(
        (
            quantity(&requests, "cpu"),
            quantity(&requests, "memory"),
            quantity(&limits, "memory"),
        ),
        (
            Some("50m".to_string()),
            Some("64Mi".to_string()),
            Some("256Mi".to_string())
        ),
        "the container requests 50m CPU and 64Mi memory, limited to 256Mi"
    );
}

/// `/healthz` and `/readyz` probed on the named port `metrics`, 8080.
fn probes_on_the_metrics_port(c: &Container) {
    let http = |p: &Option<Probe>| {
        let get = p.as_ref()?.http_get.as_ref()?;
        Some((get.path.clone()?, get.port.clone()))
    };
    let metrics = IntOrString::String("metrics".into());
    assert_eq!(
        (http(&c.liveness_probe), http(&c.readiness_probe)),
        (
            Some(("/healthz".to_string(), metrics.clone())),
            Some(("/readyz".to_string(), metrics))
        ),
        "liveness and readiness probes on the metrics port"
    );
    let port = c.ports.as_ref().and_then(|p| p.first());
    assert_eq!(
        port.map(|p| (p.name.as_deref(), p.container_port)),
        Some((Some("metrics"), 8080)),
        "the container's port metrics is 8080"
    );
}

/// The container's security context: non-root, read-only root, no
/// privilege escalation, no capabilities.
fn non_root_on_a_read_only_root(c: &Container) {
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(
        (
            sc.run_as_non_root,
            sc.run_as_user,
            sc.read_only_root_filesystem,
            sc.allow_privilege_escalation,
            sc.capabilities.and_then(|c| c.drop),
            sc.seccomp_profile.map(|p| p.type_),
        ),
        (
            Some(true),
            Some(65532),
            Some(true),
            Some(false),
            Some(vec!["ALL".to_string()]),
            Some("RuntimeDefault".to_string()),
        ),
        "the container runs as 65532 on a read-only root, without privilege escalation or capabilities"
    );
}

/// The operator's environment: its pod's name, namespace and IP from the
/// downward API, where it listens, the consumer image, leader election
/// and (by default) every namespace.
fn settings_from_the_downward_api_and_the_values(c: &Container) {
    let env = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("the container has no {name}"))
    };
    let field = |name: &str| {
        let from = env(name).value_from.as_ref();
        from.and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(
        [field("POD_NAME"), field("POD_NAMESPACE"), field("POD_IP")],
        [
            Some("metadata.name".to_string()),
            Some("metadata.namespace".to_string()),
            Some("status.podIP".to_string())
        ],
        "POD_NAME, POD_NAMESPACE and POD_IP come from the downward API"
    );
    let value = |name: &str| env(name).value.clone().unwrap_or_default();
    assert_eq!(
        value("METRICS_ADDR"),
        "$(POD_IP):8080",
        "METRICS_ADDR binds the pod IP"
    );
    assert_eq!(
        [
            value("CONSUMER_IMAGE"),
            value("LEADER_ELECTION"),
            value("LEADER_ELECTION_LEASE")
        ],
        [
            format!("docker.io/millpond/consumer:{}", app_version()),
            "true".to_string(),
            fullname(RELEASE)
        ],
        "the consumer image (the chart's appVersion) and leader election reach the operator"
    );
    assert_eq!(
        value("WATCH_NAMESPACES"),
        "",
        "without watchNamespaces WATCH_NAMESPACES is empty (every namespace)"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_metrics_service_selects_the_operator_pods_on_port_8080() {
    let chart = render(&[]);
    let service: Service = chart.one("Service", &format!("{}-metrics", fullname(RELEASE)));
    let spec = service.spec.expect("a Service spec");
    let port = spec.ports.as_ref().and_then(|p| p.first());
    assert_eq!(
        port.map(|p| (p.name.as_deref(), p.port, p.target_port.clone())),
        Some((
            Some("metrics"),
            8080,
            Some(IntOrString::String("metrics".into()))
        )),
        "the metrics Service's port metrics is 8080, to the pods' port metrics"
    );
    let deployment: Deployment = chart.one("Deployment", &fullname(RELEASE));
    let pod_labels = deployment
        .spec
        .and_then(|s| s.template.metadata?.labels)
        .unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    assert!(
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the metrics Service selects the operator pods: selector {selector:?}, pod labels {pod_labels:?}"
    );
}
