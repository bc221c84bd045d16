//! The node: registration, status and heartbeat.
//!
//! The node object carries the usual labels (`kubernetes.io/hostname`,
//! `kubernetes.io/os`, `kubernetes.io/arch`), an `InternalIP` of 127.0.0.1,
//! the machine's CPU and memory as capacity, and a `Ready` condition. The
//! heartbeat renews the node's Lease in `kube-node-lease` every 10 s and
//! refreshes the status every 30 s, so the node lifecycle controller keeps
//! the node Ready (and never taints or evicts it) while the kubelet runs.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Resource;
use tokio::sync::watch;

use crate::{Result, MANAGER};

/// Lease renewal period.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Lease duration declared in the Lease.
pub const LEASE_SECONDS: i32 = 40;
/// How often the node status (heartbeat times) is refreshed.
pub const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// Facts about the machine the node describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub max_pods: u32,
    pub kernel_version: String,
    pub boot_id: String,
    pub machine_id: String,
    pub os_image: String,
    pub arch: String,
    pub kubelet_version: String,
}

impl Machine {
    /// Reads the machine's facts from /proc and /etc.
    pub fn detect(state_dir: &std::path::Path, kubelet_version: String) -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            ephemeral_storage_bytes: disk_bytes(state_dir),
            max_pods: 110,
            kernel_version: read("/proc/sys/kernel/osrelease"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
            os_image,
            arch: match std::env::consts::ARCH {
                "x86_64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                other => other.into(),
            },
            kubelet_version,
        }
    }
}

fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized,
    // zero-initialised out-parameter for statvfs(3).
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) == 0 {
            (st.f_blocks as u64).saturating_mul(st.f_frsize as u64)
        } else {
            0
        }
    }
}

/// Labels of the node.
pub fn labels(node_name: &str, machine: &Machine) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node_name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), machine.arch.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), machine.arch.clone()),
        (
            "millpond.io/process-kubelet".to_string(),
            "true".to_string(),
        ),
    ])
}

/// The node object as registered (metadata only; status is separate).
pub fn build_node(node_name: &str, machine: &Machine) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            labels: Some(labels(node_name, machine)),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// The node's status at `now`.
pub fn build_status(
    node_ip: &str,
    node_name: &str,
    machine: &Machine,
    ready: bool,
    now: Timestamp,
) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(machine.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", machine.memory_bytes / 1024)),
        ),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", machine.ephemeral_storage_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(machine.max_pods.to_string())),
    ]);
    let cond = |type_: &str, ok: bool, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: node_name.to_string(),
            },
        ]),
        allocatable: Some(resources.clone()),
        capacity: Some(resources),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            if ready {
                cond(
                    "Ready",
                    true,
                    "KubeletReady",
                    "millpond process kubelet is posting ready status",
                )
            } else {
                cond(
                    "Ready",
                    false,
                    "KubeletNotReady",
                    "millpond process kubelet stopped",
                )
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: machine.arch.clone(),
            boot_id: machine.boot_id.clone(),
            container_runtime_version: format!("millpond-process://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: machine.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: machine.kubelet_version.clone(),
            machine_id: machine.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: machine.os_image.clone(),
            system_uuid: machine.machine_id.clone(),
            swap: None,
        }),
        ..NodeStatus::default()
    }
}

/// Keeps conditions' `lastTransitionTime` from the current status where the
/// condition's status did not change.
pub fn keep_transition_times(mut status: NodeStatus, current: Option<&NodeStatus>) -> NodeStatus {
    let old = current.and_then(|s| s.conditions.as_ref());
    for c in status.conditions.iter_mut().flatten() {
        if let Some(prev) = old
            .into_iter()
            .flatten()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            if prev.last_transition_time.is_some() {
                c.last_transition_time = prev.last_transition_time.clone();
            }
        }
    }
    status
}

/// Registers (or adopts) the node and posts a Ready status.
pub async fn register(
    client: &kube::Client,
    node_ip: &str,
    node_name: &str,
    machine: &Machine,
) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let node = match api.get_opt(node_name).await? {
        Some(n) => n,
        None => {
            tracing::info!(node = node_name, "registering node");
            match api
                .create(&PostParams::default(), &build_node(node_name, machine))
                .await
            {
                Ok(n) => n,
                Err(kube::Error::Api(s)) if s.code == 409 => api.get(node_name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    // Labels are (re)applied on every start, status right after.
    let labels = serde_json::json!({"metadata": {"labels": labels(node_name, machine)}});
    api.patch(node_name, &PatchParams::default(), &Patch::Merge(&labels))
        .await?;
    post_status(
        &api,
        node_ip,
        node_name,
        machine,
        true,
        node.status.as_ref(),
    )
    .await?;
    Ok(node)
}

async fn post_status(
    api: &Api<Node>,
    node_ip: &str,
    node_name: &str,
    machine: &Machine,
    ready: bool,
    current: Option<&NodeStatus>,
) -> Result<Node> {
    let status = keep_transition_times(
        build_status(node_ip, node_name, machine, ready, Timestamp::now()),
        current,
    );
    let patch = serde_json::json!({ "status": status });
    Ok(api
        .patch_status(node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Renews the node's Lease.
pub async fn renew_lease(client: &kube::Client, node: &Node) -> Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("kube-node-lease".into()),
            owner_references: node.controller_owner_ref(&()).map(|o| {
                vec![OwnerReference {
                    controller: None,
                    ..o
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    let mut value = serde_json::to_value(&lease).map_err(|e| crate::Error::Serde(e.to_string()))?;
    value["apiVersion"] = "coordination.k8s.io/v1".into();
    value["kind"] = "Lease".into();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

/// Heartbeat until `shutdown` turns true: renews the Lease every
/// [`LEASE_RENEW`] and refreshes the status every [`STATUS_REFRESH`]; on
/// shutdown posts `Ready=False`.
pub async fn heartbeat(
    client: kube::Client,
    node_ip: String,
    node_name: String,
    machine: Machine,
    mut node: Node,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Node> = Api::all(client.clone());
    let mut lease_tick = tokio::time::interval(LEASE_RENEW);
    let mut status_tick = tokio::time::interval(STATUS_REFRESH);
    status_tick.tick().await; // registration just posted it
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &node).await {
                    tracing::warn!(error = %e, "renewing the node lease failed");
                }
            }
            _ = status_tick.tick() => {
                match post_status(&api, &node_ip, &node_name, &machine, true, node.status.as_ref()).await {
                    Ok(n) => node = n,
                    Err(crate::Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
                        tracing::warn!("node object was deleted; registering again");
                        match register(&client, &node_ip, &node_name, &machine).await {
                            Ok(n) => node = n,
                            Err(e) => tracing::warn!(error = %e, "re-registering the node failed"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "updating the node status failed"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    if let Err(e) = post_status(
        &api,
        &node_ip,
        &node_name,
        &machine,
        false,
        node.status.as_ref(),
    )
    .await
    {
        tracing::warn!(error = %e, "marking the node not ready failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            max_pods: 110,
            kernel_version: "6.1".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
            os_image: "Debian".into(),
            arch: "amd64".into(),
            kubelet_version: "v1.34.4".into(),
        }
    }

    #[test]
    fn status_reports_ready_loopback_address_and_capacity() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let s = build_status("127.0.0.1", "n", &machine(), true, now);
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(s.addresses.as_ref().unwrap()[0].address, "127.0.0.1");
        let cap = s.capacity.as_ref().unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "8388608Ki");
        assert_eq!(cap["pods"].0, "110");
        let not_ready = build_status("127.0.0.1", "n", &machine(), false, now);
        let c = not_ready
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(c.status, "False");
    }

    #[test]
    fn heartbeats_keep_transition_times_of_unchanged_conditions() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let t1 = Timestamp::from_second(1_700_000_030).unwrap();
        let old = build_status("127.0.0.1", "n", &machine(), true, t0);
        let new = keep_transition_times(
            build_status("127.0.0.1", "n", &machine(), true, t1),
            Some(&old),
        );
        let ready = new
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.last_transition_time, Some(Time(t0)));
        assert_eq!(ready.last_heartbeat_time, Some(Time(t1)));
    }

    #[test]
    fn node_is_labelled_like_a_kubelet_node() {
        let n = build_node("millpond-node", &machine());
        let l = n.metadata.labels.unwrap();
        assert_eq!(l["kubernetes.io/hostname"], "millpond-node");
        assert_eq!(l["kubernetes.io/os"], "linux");
    }
}
