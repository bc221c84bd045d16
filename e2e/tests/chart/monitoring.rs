//! What the chart adds on request for monitoring: Prometheus Operator
//! ServiceMonitors for the operator and the consumers, and a Grafana
//! dashboard as a ConfigMap.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};

use crate::helm::*;

/// The `--set`s that turn on the ServiceMonitors and the dashboard.
const MONITORING: [&str; 4] = [
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "grafanaDashboard.enabled=true",
];

/// The ServiceMonitor of the consumer pods, as rendered with `args`.
fn consumers_monitor(args: &[&str]) -> Value {
    render(args).one(
        "ServiceMonitor",
        &format!("{}-consumers", fullname(RELEASE)),
    )
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn service_monitors_and_the_dashboard_are_added_on_request() {
    assert_kinds(
        &render(&MONITORING),
        &[
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "ServiceMonitor",
        ],
        "with ServiceMonitors and the dashboard: two ServiceMonitors (operator, consumers) \
         and the dashboard ConfigMap added",
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_consumers_service_monitor_scrapes_their_metrics_services_in_the_namespaces_run() {
    let every = consumers_monitor(&MONITORING)["spec"].clone();
    assert_eq!(
        (
            &every["selector"]["matchLabels"]["app.kubernetes.io/name"],
            &every["namespaceSelector"],
            &every["endpoints"][0]["port"],
            &every["podTargetLabels"],
        ),
        (
            &json!("millpond-consumer"),
            &json!({"any": true}),
            &json!("metrics"),
            &json!(["millpond.io/consumer"]),
        ),
        "the consumers' ServiceMonitor selects their metrics Services in every namespace \
         (selector app.kubernetes.io/name, namespaceSelector, port, podTargetLabels)"
    );

    let scoped = consumers_monitor(&[
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "serviceMonitor.enabled=true",
    ]);
    assert_eq!(
        scoped["spec"]["namespaceSelector"],
        json!({"matchNames": ["team-a"]}),
        "with watchNamespaces the consumers' ServiceMonitor selects the watched namespaces only"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_dashboard_configmap_holds_the_dashboard_for_grafanas_sidecar() {
    let chart = render(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "-s",
        "templates/grafana-dashboard.yaml",
    ]);
    let map: ConfigMap = chart.one("ConfigMap", &format!("{}-dashboard", fullname(RELEASE)));
    let label = map.metadata.labels.unwrap_or_default();
    assert_eq!(
        label.get("grafana_dashboard").map(String::as_str),
        Some("1"),
        "the dashboard ConfigMap carries the label grafana_dashboard=1"
    );
    let file = repo().join(CHART).join("dashboards/millpond.json");
    let dashboard =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // The template's `|-` drops the file's final newline.
    let held = map.data.unwrap_or_default().remove("millpond.json");
    assert!(
        held.as_ref().map(|d| format!("{d}\n")) == Some(dashboard),
        "the dashboard ConfigMap holds dashboards/millpond.json; it holds: {}",
        held.as_deref()
            .map(|d| d.chars().take(300).collect::<String>())
            .unwrap_or("nothing".into())
    );
}

/// The PromQL expressions of every panel of `dashboard`, rows' panels too.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.extend(target["expr"].as_str().map(String::from));
        }
        out.extend(expressions(panel));
    }
    out
}

/// The metric names (and functions and labels: every identifier) an
/// expression uses.
fn identifiers(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_dashboard_charts_consumer_and_operator_metrics() {
    let file = repo().join(CHART).join("dashboards/millpond.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let exprs = expressions(&dashboard);
    let charted: BTreeSet<&str> = exprs.iter().flat_map(|e| identifiers(e)).collect();
    let missing: Vec<&str> = [
        "millpond_records_total",
        "millpond_partition_lag",
        "millpond_buffer_fullness",
        "millpond_in_flight_batches",
        "millpond_flush_duration_seconds_bucket",
        "millpond_limits_generation",
        "millpond_limit_flush_bytes",
        "millpond_limit_max_in_flight",
        "millpond_errors_total",
        "millpond_operator_reconcile_duration_seconds_bucket",
        "millpond_operator_reconcile_errors_total",
        "millpond_operator_decisions_total",
        "millpond_operator_desired_replicas",
    ]
    .into_iter()
    .filter(|m| !charted.contains(m))
    .collect();
    assert!(
        missing.is_empty(),
        "no panel charts {missing:?}; the panels' expressions: {exprs:#?}"
    );
    let decisions = "sum by (direction) (increase(millpond_operator_decisions_total";
    assert!(
        exprs.iter().any(|e| e.starts_with(decisions)),
        "a panel charts the scaling decisions by direction ({decisions}...); the panels' expressions: {exprs:#?}"
    );
}
