//! The stack's node runs pods as a cluster does: the real kubelet,
//! containerd and runc of `e2e/stack`, with images built here (no
//! registry). Probes, Services, `kubectl logs` and `kubectl exec`, the
//! security settings the operator gives its pods (non-root, read-only root,
//! TLS material from a Secret), memory limits, SIGTERM on deletion, and the
//! project's own images.
//!
//! Starts nothing but Kubernetes objects: each test works in a namespace of
//! its own, deleted at its end, also when it fails.
//!
//! Needs the stack with its node and images (`e2e/stack up`, `eval
//! "$(e2e/stack env)"`); `e2e/test` runs these with
//! `cargo test --release -p millpond-e2e --test node -- --include-ignored --test-threads=2`.

mod images;
mod lifecycle;
mod security;
#[path = "../support/mod.rs"]
mod support;
mod web;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::Value;

use support::{wait_for, Scenario};

/// The busybox image the stack builds for tests.
pub const BUSYBOX: &str = "localhost/millpond-e2e/busybox:local";

/// What a command printed and whether it succeeded.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl -n <the scenario's namespace> <args>`, as a user runs it.
pub fn kubectl(s: &Scenario, args: &[&str]) -> Output {
    kubectl_in(&s.ns, args)
}

/// `kubectl -n <namespace> <args>` (kubectl is on PATH from `e2e/stack
/// env`).
pub fn kubectl_in(namespace: &str, args: &[&str]) -> Output {
    let out = Command::new("kubectl")
        .args(["-n", namespace])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kubectl (on PATH from `e2e/stack env`): {e}"));
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl logs <pod>`: what the pod's container printed.
pub fn logs(s: &Scenario, pod: &str) -> String {
    let out = kubectl(s, &["logs", pod]);
    assert!(out.ok, "kubectl logs {pod}: {}", out.stderr);
    out.stdout
}

/// Creates the pod of `manifest` (as a user writes it in YAML) in the
/// scenario's namespace.
pub async fn create_pod(s: &Scenario, manifest: Value) -> Pod {
    let pod: Pod = serde_json::from_value(manifest.clone())
        .unwrap_or_else(|e| panic!("a pod of {manifest}: {e}"));
    s.api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {manifest}: {e}"))
}

/// The phase of a pod, if it has one yet.
pub fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

/// Waits until pod `name` ended (Succeeded or Failed); returns it.
pub async fn ended(s: &Scenario, name: &str) -> Pod {
    wait_for(
        &s.api::<Pod>(),
        name,
        Duration::from_secs(60),
        &format!("pod {name} ends"),
        |p: Option<&Pod>| {
            p.and_then(phase)
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
        },
    )
    .await
    .unwrap_or_else(|| panic!("pod {name} was deleted"))
}

/// A stack variable from `e2e/stack env`.
pub fn stack_env(name: &str) -> String {
    millpond_testkit::tls::stack_env(name)
}

/// The chart's `appVersion`: the tag of the project's images.
pub fn app_version() -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Chart {
        app_version: String,
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/millpond-operator/Chart.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let chart: Chart =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    chart.app_version
}
