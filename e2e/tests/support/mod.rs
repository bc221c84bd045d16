//! What the scenarios of every test target here share (each target uses a
//! part, hence `dead_code` allowed): the operator installed once with `helm upgrade
//! --install` (as a user installs it), or only its CRD applied
//! ([`Scenario::without_operator`]), a namespace of its own for each
//! scenario (deleted at the end, also when the scenario fails, after
//! printing what was in it), and the few ways a scenario looks at the
//! cluster, the sink and Kafka.
//!
//! Scenarios run two at a time. Those that disturb every other one (pausing
//! the broker, killing the operator leader) run [`Scenario::alone`]; the
//! others share the cluster.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions, Condition as WaitCondition};
use kube::{Api, Client, Resource, ResourceExt};
use millpond_crds::{MillpondConsumer, MillpondConsumerSpec};
use millpond_testkit::kafka;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{OnceCell, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Namespace of the operator release the scenarios share.
pub const OPERATOR_NAMESPACE: &str = "millpond-e2e-operator";
/// Its helm release (`e2e/test` uninstalls it after the scenarios).
pub const RELEASE: &str = "mp-e2e";
/// How often the operator observes and decides, in seconds.
pub const INTERVAL_SECONDS: u32 = 3;
/// Records the delivery scenarios produce.
pub const RECORDS: u64 = 100_000;
/// Size of one record, in bytes.
pub const RECORD_SIZE: usize = 300;

/// Field manager of what the scenarios apply.
const MANAGER: &str = "millpond-e2e";
/// How often a probe looks again.
const POLL: Duration = Duration::from_millis(500);

/// The repository's root (charts and CRD are read from there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Ends the scenario, saying what to start, unless the stack's variables
/// are set.
fn require_stack() {
    let missing: Vec<&str> = ["KUBECONFIG", "KAFKA_BOOTSTRAP_SERVERS"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "the local stack is not up ({} not set): run `e2e/stack up` and `eval \"$(e2e/stack env)\"`",
        missing.join(", ")
    );
}

async fn client() -> Client {
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("no Kubernetes client from KUBECONFIG: {e}"))
}

// ------------------------------------------------------------ the operator

static CRD_APPLIED: OnceCell<Result<(), String>> = OnceCell::const_new();
static INSTALLED: OnceCell<Result<(), String>> = OnceCell::const_new();

/// The CRD applied from `crds/` and Established, once for all scenarios of
/// this run; a failure fails every scenario with its message.
pub async fn crd_applied() {
    require_stack();
    if let Err(e) = CRD_APPLIED.get_or_init(apply_crd).await {
        panic!("applying the CRD failed: {e}");
    }
}

/// The CRD applied from `crds/` and the chart installed, once for all
/// scenarios of this run; a failure fails every scenario with its message.
async fn operator_installed() {
    let result = INSTALLED.get_or_init(install_operator).await;
    if let Err(e) = result {
        panic!("installing the operator failed: {e}");
    }
}

/// `kubectl apply -f crds/` (server-side); done when the API server has
/// Established the CRD.
async fn apply_crd() -> Result<(), String> {
    let client = client().await;
    let file = repo().join("crds/millpondconsumer.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(|e| format!("applying the CRD {name}: {e}"))?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| format!("the CRD {name} was not Established within 60 s"))?
    .map_err(|e| format!("watching the CRD {name}: {e}"))?;
    Ok(())
}

/// The CRD applied ([`crd_applied`]) and `helm upgrade --install` of the
/// chart, the operator deciding every [`INTERVAL_SECONDS`]; done when both
/// replicas are ready and one holds the leader lease.
async fn install_operator() -> Result<(), String> {
    CRD_APPLIED.get_or_init(apply_crd).await.clone()?;
    let client = client().await;

    // Another operator running every namespace would act on the scenarios'
    // consumers too.
    let deployments: Api<Deployment> = Api::all(client.clone());
    let others: Vec<String> = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/name=millpond-operator"))
        .await
        .map_err(|e| format!("listing operator Deployments: {e}"))?
        .into_iter()
        .filter(|d| d.namespace().as_deref() != Some(OPERATOR_NAMESPACE) && replicas_of(d) > 0)
        .map(|d| format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any()))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "another Millpond operator runs ({}); its decisions would mix with the scenarios'",
            others.join(", ")
        ));
    }

    tokio::task::spawn_blocking(|| {
        helm_install(RELEASE, OPERATOR_NAMESPACE, &["--create-namespace"])
    })
    .await
    .map_err(|e| format!("the helm thread: {e}"))??;
    let deadline = Instant::now() + Duration::from_secs(60);
    while leader(&client).await.is_none() {
        if Instant::now() > deadline {
            return Err("no operator replica took the leader lease within 60 s".into());
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// `helm upgrade --install` of the chart as `release` in `namespace`, with
/// `extra` arguments, the operator deciding every [`INTERVAL_SECONDS`];
/// done when its replicas are ready. Blocks.
pub fn helm_install(release: &str, namespace: &str, extra: &[&str]) -> Result<(), String> {
    let env = json!([{"name": "INTERVAL_SECONDS", "value": INTERVAL_SECONDS.to_string()}]);
    let mut args = vec!["upgrade", "--install", release, "charts/millpond-operator"];
    args.extend(["-n", namespace]);
    args.extend(extra);
    let env = format!("extraEnv={env}");
    args.extend(["--set-json", &env, "--wait", "--timeout", "120s"]);
    helm(&args)
}

/// `helm uninstall` of `release` in `namespace`, waiting for its pods to go.
/// Blocks.
pub fn helm_uninstall(release: &str, namespace: &str) -> Result<(), String> {
    helm(&[
        "uninstall",
        release,
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "60s",
    ])
}

fn helm(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("helm")
        .current_dir(repo())
        .args(args)
        .output()
        .map_err(|e| format!("running helm (on PATH from `e2e/stack env`): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "helm {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The pod of the shared operator release holding the leader lease, if one
/// does.
pub async fn leader(client: &Client) -> Option<String> {
    leader_of(client, OPERATOR_NAMESPACE, RELEASE).await
}

/// The pod of `release` (in `namespace`) holding its leader lease.
pub async fn leader_of(client: &Client, namespace: &str, release: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(&format!("{release}-millpond-operator"))
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

/// The operator's pods.
pub async fn operator_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let selector =
        format!("app.kubernetes.io/name=millpond-operator,app.kubernetes.io/instance={RELEASE}");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .unwrap_or_else(|e| panic!("listing the operator pods: {e}"))
        .items
}

/// The restart count of every operator container, by pod.
pub async fn operator_restarts(client: &Client) -> Vec<(String, i32)> {
    operator_pods(client)
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .flat_map(|p| {
            let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone());
            statuses
                .unwrap_or_default()
                .into_iter()
                .map(|c| (p.name_any(), c.restart_count))
        })
        .collect()
}

/// What the shared release's leader exports on its `/metrics`.
pub async fn leader_metrics(client: &Client) -> Result<String, String> {
    leader_metrics_of(client, OPERATOR_NAMESPACE, RELEASE).await
}

/// What the leader of `release` (in `namespace`) exports on its `/metrics`.
pub async fn leader_metrics_of(
    client: &Client,
    namespace: &str,
    release: &str,
) -> Result<String, String> {
    let name = leader_of(client, namespace, release)
        .await
        .ok_or("no leader")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods
        .get(&name)
        .await
        .map_err(|e| format!("pod {name}: {e}"))?;
    let ip = pod
        .status
        .and_then(|s| s.pod_ip)
        .ok_or(format!("pod {name} has no IP"))?;
    let url = format!("http://{ip}:8080/metrics");
    let get = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    get.text().await.map_err(|e| format!("{url}: {e}"))
}

// ------------------------------------------------------------ scenarios

/// Scenarios that disturb all others take it for writing, the rest for
/// reading.
static CLUSTER: RwLock<()> = RwLock::const_new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

#[allow(dead_code)] // held for its drop only
enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// One scenario: a namespace of its own and what it made outside it
/// (topics, host directories, PersistentVolumes), all removed on drop.
pub struct Scenario {
    pub client: Client,
    pub ns: String,
    namespaces: Mutex<Vec<String>>,
    topics: Mutex<Vec<String>>,
    dirs: Mutex<Vec<PathBuf>>,
    volumes: Mutex<Vec<String>>,
    _turn: Turn,
}

impl Scenario {
    /// A scenario that shares the cluster with others; `slug` names its
    /// namespace.
    pub async fn new(slug: &str) -> Scenario {
        require_stack();
        operator_installed().await;
        let turn = Turn::Shared(CLUSTER.read().await);
        Scenario::start(slug, turn).await
    }

    /// A scenario that runs while no other does (it pauses the broker or
    /// kills the operator leader).
    pub async fn alone(slug: &str) -> Scenario {
        require_stack();
        operator_installed().await;
        let turn = Turn::Alone(CLUSTER.write().await);
        Scenario::start(slug, turn).await
    }

    /// A scenario of the API alone: the CRD applied and a namespace; the
    /// operator is not installed.
    pub async fn without_operator(slug: &str) -> Scenario {
        crd_applied().await;
        let turn = Turn::Shared(CLUSTER.read().await);
        Scenario::start(slug, turn).await
    }

    async fn start(slug: &str, turn: Turn) -> Scenario {
        let client = client().await;
        let ns = format!(
            "mp-{slug}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        create_namespace(&client, &ns).await;
        Scenario {
            client,
            ns,
            namespaces: Mutex::default(),
            topics: Mutex::default(),
            dirs: Mutex::default(),
            volumes: Mutex::default(),
            _turn: turn,
        }
    }

    /// One more namespace, `<namespace>-<suffix>`, deleted with this one.
    pub async fn namespace(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        create_namespace(&self.client, &name).await;
        self.namespaces.lock().unwrap().push(name.clone());
        name
    }

    /// An API of this scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A topic of `partitions` with `records` JSON records `{"id": 0..}` of
    /// [`RECORD_SIZE`] bytes, spread round-robin; deleted at the end.
    pub async fn topic(&self, prefix: &str, partitions: i32, records: u64) -> String {
        let servers = kafka::bootstrap();
        let topic = kafka::unique_topic(prefix);
        kafka::create_topic(&servers, &topic, partitions)
            .await
            .unwrap_or_else(|e| panic!("creating topic {topic}: {e:#}"));
        self.topics.lock().unwrap().push(topic.clone());
        produce(&topic, partitions, 0..records).await;
        topic
    }

    /// A PersistentVolumeClaim `claim` bound to a hostPath PersistentVolume
    /// on a fresh host directory writable by the pods (65532), so the
    /// scenario reads back what the pods wrote; returns the directory.
    pub async fn host_volume(&self, claim: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{}-{claim}", self.ns));
        std::fs::create_dir_all(&dir).expect("creating the volume's directory");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        self.dirs.lock().unwrap().push(dir.clone());
        let pv_name = format!("{}-{claim}", self.ns);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name, "labels": {"millpond.io/e2e": "operator"}},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": self.ns, "name": claim},
                "hostPath": {"path": dir, "type": "Directory"},
            }
        }))
        .expect("a PersistentVolume");
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .unwrap_or_else(|e| panic!("creating PersistentVolume {pv_name}: {e}"));
        self.volumes.lock().unwrap().push(pv_name.clone());
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": "10Gi"}},
            }
        }))
        .expect("a PersistentVolumeClaim");
        self.api::<PersistentVolumeClaim>()
            .create(&PostParams::default(), &pvc)
            .await
            .unwrap_or_else(|e| panic!("creating PersistentVolumeClaim {claim}: {e}"));
        dir
    }

    /// A Secret of `data` (key → text).
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("a Secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
    }

    /// Creates the MillpondConsumer `name` with `spec` (as a user writes it
    /// in YAML, read through the API's Rust types).
    pub async fn create_consumer(&self, name: &str, spec: Value) -> MillpondConsumer {
        let spec: MillpondConsumerSpec = serde_json::from_value(spec.clone())
            .unwrap_or_else(|e| panic!("spec of {name} {spec}: {e}"));
        self.api::<MillpondConsumer>()
            .create(&PostParams::default(), &MillpondConsumer::new(name, spec))
            .await
            .unwrap_or_else(|e| panic!("creating MillpondConsumer {name}: {e}"))
    }

    /// The MillpondConsumer `name` as stored now.
    pub async fn consumer(&self, name: &str) -> MillpondConsumer {
        self.api::<MillpondConsumer>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading MillpondConsumer {name}: {e}"))
    }

    /// Merge-patches the MillpondConsumer `name`.
    pub async fn patch_consumer(&self, name: &str, patch: Value) -> MillpondConsumer {
        self.api::<MillpondConsumer>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patching MillpondConsumer {name} with {patch}: {e}"))
    }

    /// The Deployment `name`, once it exists and every replica of its
    /// newest template is ready and no older pod is left (what `kubectl
    /// rollout status` waits for).
    pub async fn rolled_out(&self, name: &str, within: Duration) -> Deployment {
        wait_for(
            &self.api::<Deployment>(),
            name,
            within,
            "the Deployment rolled out with every pod ready",
            |d: Option<&Deployment>| d.is_some_and(rolled_out),
        )
        .await
        .expect("a rolled-out Deployment exists")
    }

    /// The pods of the consumer `name` (not those being deleted).
    pub async fn consumer_pods(&self, name: &str) -> Vec<Pod> {
        let selector =
            format!("app.kubernetes.io/name=millpond-consumer,app.kubernetes.io/instance={name}");
        self.api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap_or_else(|e| panic!("listing the pods of {name}: {e}"))
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Waits until condition `type_` of the consumer `name` has `reason`;
    /// returns it.
    pub async fn condition_reason(
        &self,
        name: &str,
        type_: &str,
        reason: &str,
        within: Duration,
    ) -> Condition {
        let mpc = wait_for(
            &self.api::<MillpondConsumer>(),
            name,
            within,
            &format!("{type_} reason {reason}"),
            |m: Option<&MillpondConsumer>| {
                m.and_then(|m| condition(m, type_))
                    .is_some_and(|c| c.reason == reason)
            },
        )
        .await
        .expect("the MillpondConsumer exists");
        condition(&mpc, type_).expect("the condition matched")
    }

    /// Waits until the consumer `name` is Degraded with `reason`; returns
    /// the condition, whose status is checked to be True.
    pub async fn degraded(&self, name: &str, reason: &str) -> Condition {
        let c = self
            .condition_reason(name, "Degraded", reason, Duration::from_secs(60))
            .await;
        assert_eq!(c.status, "True", "Degraded {reason} of {name}: {c:?}");
        c
    }

    /// The Events of this namespace about object `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        let fields = format!("involvedObject.name={name},reason={reason}");
        self.api::<Event>()
            .list(&ListParams::default().fields(&fields))
            .await
            .unwrap_or_else(|e| panic!("listing Events of {name}: {e}"))
            .items
    }
}

/// Creates namespace `name`, labelled as a scenario's.
async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"millpond.io/e2e": "operator"}}
    }))
    .expect("a Namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

/// What namespace `ns` holds, for a failed scenario's report.
async fn describe(client: &Client, ns: &str) -> String {
    let mut out = format!("namespace {ns}:\n");
    if let Ok(list) = Api::<MillpondConsumer>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
    {
        for m in list {
            let status = serde_json::to_string(&m.status).unwrap_or_default();
            out += &format!(
                "  mpc {} generation {:?}: {status}\n",
                m.name_any(),
                m.metadata.generation
            );
        }
    }
    if let Ok(list) = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
    {
        for p in list {
            let status = p.status.unwrap_or_default();
            let containers = serde_json::to_string(&status.container_statuses).unwrap_or_default();
            out += &format!(
                "  pod {} {:?}: {containers}\n",
                p.metadata.name.unwrap_or_default(),
                status.phase
            );
        }
    }
    if let Ok(list) = Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
    {
        for e in list.items.iter().rev().take(20) {
            out += &format!(
                "  event {}/{} {:?} {:?}: {}\n",
                e.involved_object.kind.as_deref().unwrap_or(""),
                e.involved_object.name.as_deref().unwrap_or(""),
                e.type_,
                e.reason,
                e.message.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(leader) = leader(client).await {
        let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
        let params = LogParams {
            tail_lines: Some(400),
            ..LogParams::default()
        };
        if let Ok(log) = pods.logs(&leader, &params).await {
            out += &format!("  operator leader {leader}, its last lines on this namespace:\n");
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(ns)).collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                out += &format!("    {l}\n");
            }
        }
    }
    out
}

impl Drop for Scenario {
    /// Deletes the namespaces, the PersistentVolumes, the host directories
    /// and the topics, on a thread of its own (the scenario's runtime is the
    /// one being dropped). A failed scenario first prints what its
    /// namespaces held.
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        let mut namespaces = vec![self.ns.clone()];
        namespaces.append(&mut self.namespaces.lock().unwrap());
        let topics = std::mem::take(&mut *self.topics.lock().unwrap());
        let dirs = std::mem::take(&mut *self.dirs.lock().unwrap());
        let volumes = std::mem::take(&mut *self.volumes.lock().unwrap());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            rt.block_on(async move {
                let Ok(client) = Client::try_default().await else {
                    eprintln!("clean-up: no Kubernetes client; namespaces {namespaces:?} are left");
                    return;
                };
                if failed {
                    for ns in &namespaces {
                        eprintln!("{}", describe(&client, ns).await);
                    }
                }
                // Not waited for: the pods' shutdown and the namespace
                // controller's sweep take 5 to 15 s, which would double the
                // run; the next scenarios do not need them gone.
                let api: Api<Namespace> = Api::all(client.clone());
                for ns in &namespaces {
                    if let Err(e) = api.delete(ns, &DeleteParams::default()).await {
                        eprintln!("clean-up: deleting namespace {ns}: {e}");
                    }
                }
                let pvs: Api<PersistentVolume> = Api::all(client);
                for pv in &volumes {
                    let _ = pvs.delete(pv, &DeleteParams::default()).await;
                }
                if !topics.is_empty() {
                    let servers = kafka::bootstrap();
                    if let Err(e) = kafka::delete_topics(&servers, &topics).await {
                        eprintln!("clean-up: deleting topics {topics:?}: {e:#}");
                    }
                }
            });
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        });
        let _ = cleanup.join();
    }
}

// ------------------------------------------------------------ looking

/// Produces JSON records with ids `ids` into `topic` (round-robin over
/// `partitions`), off the async threads.
pub async fn produce(topic: &str, partitions: i32, ids: std::ops::Range<u64>) {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        kafka::produce_json(&kafka::bootstrap(), &topic, partitions, ids, RECORD_SIZE)
            .unwrap_or_else(|e| panic!("producing into {topic}: {e:#}"))
    })
    .await
    .expect("the producer thread");
}

/// Polls `probe` until it returns `Ok`; after `within`, fails the scenario
/// with `what` and the state the probe last described in its `Err`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let state = match tokio::time::timeout(left.max(POLL), probe()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(state)) => state,
            Err(_) => "the probe itself did not answer".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("{what}: not within {within:?}\n  last seen: {state}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Watches object `name` until `cond` holds (`None`: it is gone); after
/// `within`, fails the scenario with `what` and the object's status.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    within: Duration,
    what: &str,
    cond: impl WaitCondition<K>,
) -> Option<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    match tokio::time::timeout(within, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => panic!("{what}: watching {name}: {e}"),
        Err(_) => {
            let now = match api.get_opt(name).await {
                Ok(Some(k)) => {
                    let v = serde_json::to_value(&k).unwrap_or_default();
                    format!("status {}", v.get("status").unwrap_or(&Value::Null))
                }
                Ok(None) => "it does not exist".into(),
                Err(e) => format!("reading it: {e}"),
            };
            panic!("{what}: not within {within:?} ({name})\n  last seen: {now}")
        }
    }
}

/// Waits until object `name` of `api` is deleted.
pub async fn gone<K>(api: &Api<K>, name: &str, uid: &str, within: Duration)
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
    K::DynamicType: Default,
{
    let what = format!("{} {name} is deleted", K::kind(&Default::default()));
    wait_for(api, name, within, &what, conditions::is_deleted(uid)).await;
}

/// What `kubectl rollout status` waits for: the controller saw the newest
/// template, every replica runs it and is available, no older pod is left.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = &d.status else { return false };
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

/// Condition `type_` of a MillpondConsumer.
pub fn condition(mpc: &MillpondConsumer, type_: &str) -> Option<Condition> {
    mpc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// The value of environment variable `name` of a Deployment's container.
pub fn env_of(d: &Deployment, name: &str) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// The Deployment's `spec.replicas`.
pub fn replicas_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// What the sink wrote into `dir`: the records' ids (each once) and the
/// number of lines, over the finished `*.ndjson` files.
pub fn sink_records(dir: &Path) -> (BTreeSet<u64>, usize) {
    let mut ids = BTreeSet::new();
    let mut lines = 0;
    for (_, record) in sink_lines(dir) {
        lines += 1;
        if let Some(id) = record.get("id").and_then(Value::as_u64) {
            ids.insert(id);
        }
    }
    (ids, lines)
}

/// Every line of the finished `*.ndjson` files in `dir`, with its file.
pub fn sink_lines(dir: &Path) -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let record = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: a line that is not JSON ({e}): {line}"));
            out.push((name.clone(), record));
        }
    }
    out
}

/// Waits until the sink in `dir` holds every id of `0..records`; returns
/// the number of lines.
pub async fn all_delivered(dir: &Path, records: u64, within: Duration) -> usize {
    eventually(
        within,
        &format!("every record in {}", dir.display()),
        || async {
            let (ids, lines) = sink_records(dir);
            let want: BTreeSet<u64> = (0..records).collect();
            if ids == want {
                Ok(lines)
            } else {
                let missing = want.difference(&ids).count();
                let extra = ids.difference(&want).take(5).collect::<Vec<_>>();
                Err(format!(
                    "{} ids in {lines} lines, {missing} missing, unexpected {extra:?}",
                    ids.len()
                ))
            }
        },
    )
    .await
}

/// Waits until `group`'s commits of `topic` are at the end of every
/// partition (the pods committed everything they delivered).
pub async fn committed_to_the_end(group: &str, topic: &str, partitions: i32, within: Duration) {
    let servers = kafka::bootstrap();
    let highs = kafka::high_watermarks(&servers, topic, partitions)
        .unwrap_or_else(|e| panic!("high watermarks of {topic}: {e:#}"));
    eventually(
        within,
        &format!("group {group} committed {topic} to {highs:?}"),
        || async {
            let got = kafka::committed(&servers, group, topic, partitions)
                .map_err(|e| format!("{e:#}"))?;
            if got == highs {
                Ok(())
            } else {
                Err(format!("committed {got:?}"))
            }
        },
    )
    .await
}

/// The MillpondConsumer API's printer columns and the row of `name`, as
/// `kubectl get mpc` asks the API server for them (a Table).
pub async fn table_row(s: &Scenario, name: &str) -> (Vec<String>, Vec<Value>) {
    let url = format!(
        "/apis/millpond.io/v1alpha1/namespaces/{}/millpondconsumers/{name}",
        s.ns
    );
    let request = http::Request::get(&url)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("a request");
    let table: Value = s
        .client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("GET {url} as a Table: {e}"));
    let columns = table["columnDefinitions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let cells = table["rows"][0]["cells"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (columns, cells)
}

/// The owner reference a MillpondConsumer's owned objects carry.
pub fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.owner_references
        .iter()
        .flatten()
        .map(|o| {
            format!(
                "{}/{} uid {} controller {:?}",
                o.kind, o.name, o.uid, o.controller
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ------------------------------------------------------------ processes

/// Sends `signal` (`STOP`, `CONT`) to a host process.
fn signal(pid: u32, signal: &str) {
    let out = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .expect("running kill");
    assert!(
        out.status.success(),
        "kill -{signal} {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host process stopped with SIGSTOP until this is dropped (SIGCONT),
/// also when the scenario fails.
pub struct Paused(u32);

impl Paused {
    pub fn new(pid: u32) -> Paused {
        signal(pid, "STOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("MILLPOND_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".local/state/millpond")
        })
}

/// The pid of the stack's Kafka broker (its pid file, checked against the
/// command line, so a recycled pid is not taken for the broker).
pub fn kafka_pid() -> u32 {
    let file = state_dir().join("kafka/kafka.pid");
    let pid: u32 = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("kafka.Kafka"),
        "pid {pid} of {} is not the Kafka broker",
        file.display()
    );
    pid
}

/// The host pid of a container's main process on the stack's node
/// (`container_id` as in a pod's status, `containerd://<id>`).
pub fn container_pid(container_id: &str) -> u32 {
    let id = container_id.trim_start_matches("containerd://");
    let socket = state_dir().join("node/containerd/containerd.sock");
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "tasks", "ls"])
        .output()
        .expect("running ctr");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no task {id} in `ctr tasks ls`: {text}"))
}
