//! The MillpondConsumer API on the real Kubernetes API server of the local
//! stack, as a user meets it: the CRD from `crds/` is accepted and
//! Established; `kubectl explain` shows the field docs; the examples are
//! accepted; the API server fills in the defaults; invalid consumers are
//! refused with a message naming the field, and nothing is stored; sizes may
//! be numbers as well as strings; `kubectl get` prints the columns;
//! `kubectl scale` works through the scale subresource.
//!
//! Starts: nothing but Kubernetes objects. Once per run, the CRD is applied
//! from `crds/` (and left installed, as a user would); the operator is not
//! installed. Each test works in a namespace of its own, deleted at its end.
//! Consumers are created as `kubectl create --validate=strict` creates them
//! (strict field validation) and read back as the API server stores them
//! (JSON, not the API's Rust types, whose own defaults would hide the
//! server's); where the test is about what a user sees from kubectl itself
//! (`explain`, the printer columns, `scale`, numbers unquoted in YAML), it
//! runs kubectl.
//!
//! Needs the stack's control plane (`e2e/stack up k8s`, `eval "$(e2e/stack env)"`);
//! `e2e/test` runs these with
//! `cargo test --release -p millpond-e2e --test crd -- --include-ignored --test-threads=2`.

mod bounds;
mod columns;
mod defaults;
mod definition;
mod examples;
mod explain;
mod kafka;
mod scale;
mod sink;
mod sizes;
#[path = "../support/mod.rs"]
mod support;
mod volumes;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::Api;
use millpond_crds::MillpondConsumer;
use serde_json::{json, Value};

use support::{repo, Scenario};

/// The name of the consumer a refusal test tries to create.
const REFUSED: &str = "refused";

/// The Kafka part most consumers here share: topic `orders` on
/// `kafka:9092` (never connected to: only the API server reads it).
pub fn kafka_orders() -> Value {
    json!({"bootstrapServers": "kafka:9092", "topic": "orders"})
}

/// The MillpondConsumers of the scenario's namespace, as the API server
/// stores them.
pub fn consumers(s: &Scenario) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<MillpondConsumer>(&());
    Api::namespaced_with(s.client.clone(), &s.ns, &resource)
}

/// Creates the consumer `name` with `spec` as `kubectl create
/// --validate=strict` does: a POST with strict field validation, so an
/// unknown field is refused rather than dropped.
async fn create(s: &Scenario, name: &str, spec: &Value) -> Result<Value, kube::Error> {
    let url = format!(
        "/apis/millpond.io/v1alpha1/namespaces/{}/millpondconsumers?fieldValidation=Strict",
        s.ns
    );
    let manifest = json!({
        "apiVersion": "millpond.io/v1alpha1",
        "kind": "MillpondConsumer",
        "metadata": {"name": name},
        "spec": spec,
    });
    let request = http::Request::post(&url)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&manifest).expect("a manifest"))
        .expect("a request");
    s.client.request(request).await
}

/// Creating the consumer `name` with `spec` is accepted; returns its spec
/// as stored (with the defaults the API server filled in).
pub async fn accepted(s: &Scenario, name: &str, spec: Value) -> Value {
    if let Err(e) = create(s, name, &spec).await {
        panic!("the API server refused consumer {name}: {e}\n  spec: {spec}");
    }
    stored_spec(s, name).await
}

/// Creating a consumer with `spec` is refused with a message containing
/// every fragment (each names the field it is about), and nothing is
/// stored.
pub async fn refused(s: &Scenario, spec: Value, fragments: &[&str]) {
    let message = match create(s, REFUSED, &spec).await {
        Ok(_) => panic!("the API server accepted what it must refuse: {spec}"),
        Err(kube::Error::Api(status)) => status.message,
        Err(e) => panic!("creating a consumer failed, but not as the API server's refusal: {e}"),
    };
    assert_contains("the API server's refusal", &message, fragments);
    not_stored(s, REFUSED).await;
}

/// The consumer `name` does not exist.
pub async fn not_stored(s: &Scenario, name: &str) {
    let stored = consumers(s)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading consumer {name}: {e}"));
    if let Some(stored) = stored {
        panic!("refused, yet consumer {name} is stored: {:?}", stored.data);
    }
}

/// The spec of the consumer `name` as stored.
pub async fn stored_spec(s: &Scenario, name: &str) -> Value {
    let stored = consumers(s)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading consumer {name}: {e}"));
    stored.data["spec"].clone()
}

/// Asserts that `object` holds each value of `want` at its JSON pointer,
/// naming every difference.
#[track_caller]
pub fn assert_fields(what: &str, object: &Value, want: &[(&str, Value)]) {
    let differences: Vec<String> = want
        .iter()
        .filter(|(pointer, value)| object.pointer(pointer) != Some(value))
        .map(|(pointer, value)| match object.pointer(pointer) {
            Some(got) => format!("{pointer} is {got}, not {value}"),
            None => format!("{pointer} is unset, not {value}"),
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{what}: {}\n  in: {object}",
        differences.join("; ")
    );
}

/// Asserts that `text` contains every fragment.
#[track_caller]
pub fn assert_contains(what: &str, text: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            text.contains(fragment),
            "{what} lacks: {fragment}\n  in: {text}"
        );
    }
}

/// What a kubectl command did.
pub struct Kubectl {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kubectl args` in the repository's root (KUBECONFIG from the
/// environment), with `stdin` as its input.
pub fn kubectl(args: &[&str], stdin: &str) -> Kubectl {
    let mut child = Command::new("kubectl")
        .current_dir(repo())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running kubectl (on PATH from `e2e/stack env`): {e}"));
    let mut input = child.stdin.take().expect("kubectl's stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("writing to kubectl");
    drop(input);
    let out = child.wait_with_output().expect("kubectl's output");
    Kubectl {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl args`, which must succeed; its output.
#[track_caller]
pub fn kubectl_ok(args: &[&str]) -> String {
    let run = kubectl(args, "");
    assert!(run.ok, "kubectl {}: {}", args.join(" "), run.stderr);
    run.stdout
}

/// `kubectl apply --validate=strict` of the consumer `name` whose spec is
/// the YAML `spec` (indented as it likes: it goes under `spec:`), as a user
/// writes it: numbers unquoted in YAML reach the API server as kubectl
/// reads them.
pub fn kubectl_apply(s: &Scenario, name: &str, spec: &str) -> Kubectl {
    let indent = spec
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut manifest = format!(
        "apiVersion: millpond.io/v1alpha1\nkind: MillpondConsumer\nmetadata:\n  name: {name}\nspec:\n"
    );
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        manifest += &format!("  {}\n", &line[indent..]);
    }
    kubectl(
        &["apply", "--validate=strict", "-n", &s.ns, "-f", "-"],
        &manifest,
    )
}

/// `kubectl apply` of the consumer whose YAML `spec` must be refused: kubectl
/// fails with the API server's message containing every fragment, and
/// nothing is stored.
pub async fn refused_by_kubectl_apply(s: &Scenario, spec: &str, fragments: &[&str]) {
    let run = kubectl_apply(s, REFUSED, spec);
    assert!(
        !run.ok,
        "kubectl apply was accepted where it must be refused: {}\n  spec:\n{spec}",
        run.stdout
    );
    assert_contains("kubectl apply's refusal", &run.stderr, fragments);
    not_stored(s, REFUSED).await;
}

/// `kubectl explain field`, once the API server publishes the CRD's OpenAPI
/// document (shortly after the CRD is Established); its output.
pub async fn explain(field: &str) -> String {
    let mut last = String::new();
    for _ in 0..30 {
        let run = kubectl(&["explain", field], "");
        if run.ok {
            return run.stdout;
        }
        last = run.stderr;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("kubectl explain {field} failed for 30 s: {last}")
}
