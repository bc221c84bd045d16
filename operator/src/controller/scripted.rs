//! The reconciler against a scripted API server and a scripted Kafka: every
//! request it makes is recorded (method, path, body) and answered from a
//! script, and each test asserts the whole conversation.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher;
use millpond_crds::MillpondConsumer;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::cache::{Cache, Writers};
use super::*;
use crate::desired::fixtures::{edit, MINIMAL};
use crate::observe::kafka::KafkaObserveError;

/// One request the reconciler made.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

impl Call {
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the scripted API server holds.
#[derive(Default)]
struct Script {
    /// The Deployment a GET returns (404 without).
    deployment: Option<Value>,
    calls: Vec<Call>,
}

/// Kafka answering with fixed offsets, or a missing topic.
struct ScriptedKafka(Option<Vec<PartitionOffsets>>);

impl KafkaOffsets for ScriptedKafka {
    fn offsets(
        &self,
        target: KafkaTarget,
        _timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<Vec<PartitionOffsets>, KafkaObserveError>> {
        let answer = self.0.clone().ok_or(KafkaObserveError::TopicMissing {
            servers: target.bootstrap_servers,
            topic: target.topic,
        });
        Box::pin(async move { answer })
    }
}

/// Kafka answering as scripted after a while.
struct SlowKafka(ScriptedKafka, Duration);

impl KafkaOffsets for SlowKafka {
    fn offsets(
        &self,
        target: KafkaTarget,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<Vec<PartitionOffsets>, KafkaObserveError>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            self.0.offsets(target, timeout).await
        })
    }
}

fn not_found() -> (StatusCode, Value) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found"});
    (StatusCode::NOT_FOUND, status)
}

/// Answers one request from the script.
fn answer(script: &Script, mpc: &Value, call: &Call) -> (StatusCode, Value) {
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", p) if p.ends_with("/deployments/orders") => match &script.deployment {
            Some(d) => (StatusCode::OK, d.clone()),
            None => not_found(),
        },
        ("GET", _) => not_found(),
        ("PATCH", p) if p.contains("/millpondconsumers/") => (StatusCode::OK, mpc.clone()),
        ("PATCH", _) => (StatusCode::OK, call.body.clone()),
        (_, _) => (StatusCode::CREATED, call.body.clone()),
    }
}

struct Harness {
    ctx: Arc<Context>,
    script: Arc<Mutex<Script>>,
    writers: Writers,
}

impl Harness {
    fn new(mpc: &MillpondConsumer, kafka: impl KafkaOffsets + 'static) -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let mpc_json = serde_json::to_value(mpc).unwrap();
        let served = script.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let script = served.clone();
            let mpc_json = mpc_json.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = Call { method, path, body };
                let mut script = script.lock().unwrap();
                let (status, body) = answer(&script, &mpc_json, &call);
                script.calls.push(call);
                let response = Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        let client = kube::Client::new(service, "default");
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        };
        let settings = Settings {
            consumer_image: "millpond/consumer:0.1.0".into(),
            operator_pods: None,
            interval: Duration::from_secs(15),
            kafka_timeout: Duration::from_secs(1),
            scrape_timeout: Duration::from_secs(1),
        };
        let (_, leading) = watch::channel(true);
        let (consumers, _) = reflector::store();
        let (cache, writers) = Cache::empty();
        let ctx = Context::new(
            client.clone(),
            Recorder::new(client, reporter),
            crate::metrics::Metrics::new(),
            settings,
            leading,
            consumers,
            cache,
        )
        .with_kafka(Box::new(kafka));
        Harness {
            ctx: Arc::new(ctx),
            script,
            writers,
        }
    }

    async fn reconcile(&self, mpc: &MillpondConsumer) -> Action {
        self.script.lock().unwrap().calls.clear();
        reconcile(Arc::new(mpc.clone()), self.ctx.clone())
            .await
            .expect("reconciled")
    }

    fn calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().calls.clone()
    }

    fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    fn body_of(&self, line: &str) -> Value {
        let calls = self.calls();
        let matching: Vec<_> = calls.iter().filter(|c| c.line() == line).collect();
        assert_eq!(matching.len(), 1, "{line} in {:?}", self.lines());
        matching[0].body.clone()
    }

    /// Puts what the reconciler applied into the watch cache, as the
    /// watches would.
    fn cache_applied(&mut self) {
        for call in self.calls().iter().filter(|c| c.method == "PATCH") {
            let body = call.body.clone();
            match body["kind"].as_str() {
                Some("Deployment") => self.writers.deployments.apply_watcher_event(&event(body)),
                Some("ConfigMap") => self.writers.config_maps.apply_watcher_event(&event(body)),
                Some("Service") => self.writers.services.apply_watcher_event(&event(body)),
                Some("PodDisruptionBudget") => self.writers.pdbs.apply_watcher_event(&event(body)),
                Some("NetworkPolicy") => self
                    .writers
                    .network_policies
                    .apply_watcher_event(&event(body)),
                _ => {}
            }
        }
    }
}

fn event<K: serde::de::DeserializeOwned>(body: Value) -> watcher::Event<K> {
    watcher::Event::Apply(serde_json::from_value(body).unwrap())
}

fn offsets(partitions: i32, high: i64, committed: i64) -> Vec<PartitionOffsets> {
    (0..partitions)
        .map(|partition| PartitionOffsets {
            partition,
            low: 0,
            high,
            committed: Some(committed),
        })
        .collect()
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/pond/deployments/orders";
const SECRET: &str = "/api/v1/namespaces/pond/secrets/orders-admin";
const STATUS: &str = "/apis/millpond.io/v1alpha1/namespaces/pond/millpondconsumers/orders/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/pond/events";

fn applies() -> Vec<String> {
    [
        SECRET,
        "/api/v1/namespaces/pond/configmaps/orders-limits",
        "/api/v1/namespaces/pond/services/orders-metrics",
        DEPLOYMENT,
        "/apis/policy/v1/namespaces/pond/poddisruptionbudgets/orders",
    ]
    .iter()
    .map(|p| format!("PATCH {p}"))
    .collect()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test(start_paused = true)]
async fn a_first_reconcile_creates_every_object_and_reports_what_it_saw() {
    let mpc = edit(
        MINIMAL,
        "  sink:\n",
        "  autoscaling: {minReplicas: 2, maxReplicas: 4}\n  sink:\n",
    );
    let h = Harness::new(&mpc, ScriptedKafka(Some(offsets(4, 100, 100))));
    let action = h.reconcile(&mpc).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let mut expected = vec![format!("GET {DEPLOYMENT}"), format!("GET {SECRET}")];
    expected.extend(applies());
    expected.push(format!("PATCH {STATUS}"));
    assert_eq!(h.lines(), expected, "no Event: nothing scaled");

    let deployment = h.body_of(&format!("PATCH {DEPLOYMENT}"));
    assert_eq!(deployment["spec"]["replicas"], 2, "minReplicas");
    let record: LastDecision = serde_json::from_str(
        deployment["metadata"]["annotations"][STATE_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record.replicas, Some(2));
    let status = h.body_of(&format!("PATCH {STATUS}"));
    assert_eq!(status["status"]["partitions"], 4);
    assert_eq!(status["status"]["lag"]["total"], 0);
    assert_eq!(status["status"]["replicas"], 2);
    assert!(status["status"]["lastObservedTime"].is_string());
    assert_eq!(status["status"]["limitedBy"], "Unknown", "no pod reported");
    assert!(status["status"]["hotPartitions"].is_null());
    assert_eq!(condition(&status, "Degraded")["status"], "False");
}

#[tokio::test(start_paused = true)]
async fn the_next_decision_is_due_an_interval_after_this_one_began() {
    let mpc = crate::desired::fixtures::mpc(MINIMAL);
    let kafka = SlowKafka(
        ScriptedKafka(Some(offsets(4, 100, 100))),
        Duration::from_secs(2),
    );
    let h = Harness::new(&mpc, kafka);
    assert_eq!(
        h.reconcile(&mpc).await,
        Action::requeue(Duration::from_secs(13)),
        "Kafka took 2 s of the 15 s interval"
    );
}

#[tokio::test]
async fn a_missing_topic_is_degraded_with_its_reason_and_nothing_is_applied() {
    let mpc = crate::desired::fixtures::mpc(MINIMAL);
    let h = Harness::new(&mpc, ScriptedKafka(None));
    let action = h.reconcile(&mpc).await;
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(15)),
        "retried next interval"
    );
    assert_eq!(
        h.lines(),
        [format!("GET {DEPLOYMENT}"), format!("PATCH {STATUS}")]
    );
    let status = h.body_of(&format!("PATCH {STATUS}"));
    let degraded = condition(&status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "TopicNotFound");
    assert_eq!(
        degraded["message"],
        "topic `orders` does not exist on kafka-0.kafka:9092,kafka-1.kafka:9092; keeping 1 replicas"
    );
    assert!(
        status["status"]["lastObservedTime"].is_null(),
        "nothing observed"
    );
}

#[tokio::test]
async fn a_refused_spec_waits_for_a_change_without_asking_anyone() {
    let mpc = edit(
        MINIMAL,
        "  sink:\n",
        "  autoscaling: {minReplicas: 5, maxReplicas: 2}\n  sink:\n",
    );
    let h = Harness::new(&mpc, ScriptedKafka(Some(offsets(4, 0, 0))));
    assert_eq!(h.reconcile(&mpc).await, Action::await_change());
    assert_eq!(h.lines(), [format!("PATCH {STATUS}")]);
    let status = h.body_of(&format!("PATCH {STATUS}"));
    assert_eq!(condition(&status, "Degraded")["reason"], "InvalidSpec");
}

/// A Deployment whose record says one pod drains 1000 records/s, decided
/// an interval ago.
fn recorded_deployment(replicas: u32) -> Value {
    let at_ms = Timestamp::now().as_millisecond() as u64 - 15_000;
    let record = json!({"atMs": at_ms, "capacityPerPod": 1000.0, "capacityMeasured": true,
        "replicas": replicas, "specGeneration": 1,
        "limits": {"flushBytes": 4194304, "flushIntervalMs": 5000, "maxInFlight": 4,
                   "consumeBatchSize": 1000, "generation": 1}});
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": "pond",
            "annotations": {STATE_ANNOTATION: record.to_string()}},
        "spec": {"replicas": replicas, "selector": {}, "template": {}}})
}

#[tokio::test]
async fn a_backlog_scales_up_with_an_event_and_the_next_reconcile_writes_nothing() {
    let mpc = edit(
        MINIMAL,
        "  sink:\n",
        "  autoscaling: {minReplicas: 1, maxReplicas: 8}\n  sink:\n",
    );
    let mut h = Harness::new(&mpc, ScriptedKafka(Some(offsets(8, 2_000_000, 0))));
    h.script.lock().unwrap().deployment = Some(recorded_deployment(1));
    h.reconcile(&mpc).await;

    let deployment = h.body_of(&format!("PATCH {DEPLOYMENT}"));
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas > 1, "16M records at 1000/s per pod: {deployment}");
    let event = h.body_of(&format!("POST {EVENTS}"));
    assert_eq!(event["reason"], "ScaledUp");
    let note = event["note"].as_str().unwrap();
    assert!(note.starts_with(&format!("1 -> {replicas}: ")), "{note}");
    let status = h.body_of(&format!("PATCH {STATUS}"));
    assert_eq!(status["status"]["lastDecision"]["to"], replicas);
    assert_eq!(condition(&status, "Scaling")["reason"], "ScalingUp");

    // Between two intervals, with the cache holding what was applied and
    // the status as written: nothing to write at all.
    h.cache_applied();
    let mut now = mpc.clone();
    now.status = serde_json::from_value(status["status"].clone()).unwrap();
    h.reconcile(&now).await;
    assert!(h.lines().is_empty(), "wrote {:?}", h.lines());

    // Someone scales the Deployment by hand: put back, nothing else.
    let mut edited: Deployment = serde_json::from_value(deployment).unwrap();
    edited.spec.as_mut().unwrap().replicas = Some(1);
    h.writers
        .deployments
        .apply_watcher_event(&watcher::Event::Apply(edited));
    h.reconcile(&now).await;
    assert_eq!(h.lines(), [format!("PATCH {DEPLOYMENT}")]);
    assert_eq!(
        h.body_of(&format!("PATCH {DEPLOYMENT}"))["spec"]["replicas"],
        replicas
    );
}
