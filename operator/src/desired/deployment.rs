//! The consumer Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use millpond_crds::{ImagePullPolicy, MillpondConsumerSpec};

use super::env::{consumer_env, tls_volume};
use super::ports::{ADMIN_PORT, ADMIN_PORT_NAME, METRICS_PORT, METRICS_PORT_NAME};
use super::{
    deployment_name, labels, limits_config_map_name, object_meta, selector_labels, BuildContext,
    Error, Result,
};
use crate::controller::validate::Validated;

/// Name of the consumer container.
pub const CONTAINER_NAME: &str = "consumer";
/// Pod annotation holding [`config_hash`].
pub const CONFIG_HASH_ANNOTATION: &str = "millpond.io/config-hash";

/// User and group the consumer runs as (the distroless `nonroot` user).
const RUN_AS: i64 = 65532;
/// Time a pod gets to flush, wait for its writes and commit after SIGTERM.
const TERMINATION_GRACE_SECONDS: i64 = 60;

/// The consumer Deployment of `mpc` with `replicas` pods (the operator
/// decides them; they are not taken from the spec).
///
/// Rollouts replace one pod at a time without a surge pod
/// (`maxSurge: 0`, `maxUnavailable: 1`): a pod is ready only once Kafka
/// assigned it partitions, so a surge pod beyond the partition count would
/// never become ready and stall the rollout, and the replaced pod's
/// partitions go straight to its successor after its final commit.
pub fn deployment(valid: &Validated, ctx: &BuildContext, replicas: i32) -> Result<Deployment> {
    let mpc = valid.mpc();
    let metadata = object_meta(mpc, deployment_name(mpc))?;
    let spec = &mpc.spec;
    if replicas < 0 {
        return Err(Error::Invalid {
            field: "replicas".to_string(),
            message: format!("{replicas} replicas: must not be negative"),
        });
    }
    let template = &spec.template;

    let mut requests = BTreeMap::from([("memory".to_string(), spec.resources.memory.clone())]);
    if let Some(cpu) = &spec.resources.cpu {
        check_cpu(cpu)?;
        requests.insert("cpu".to_string(), cpu.clone());
    }
    let (volumes, mounts) = pod_volumes(spec);
    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(
            template
                .image
                .clone()
                .unwrap_or_else(|| ctx.consumer_image.clone()),
        ),
        image_pull_policy: template.image_pull_policy.map(|p| {
            match p {
                ImagePullPolicy::Always => "Always",
                ImagePullPolicy::IfNotPresent => "IfNotPresent",
                ImagePullPolicy::Never => "Never",
            }
            .to_string()
        }),
        ports: Some(vec![
            ContainerPort {
                name: Some(METRICS_PORT_NAME.to_string()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(ADMIN_PORT_NAME.to_string()),
                container_port: ADMIN_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: limits_config_map_name(mpc),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(consumer_env(mpc)?),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                spec.resources.memory.clone(),
            )])),
            requests: Some(requests),
            ..ResourceRequirements::default()
        }),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };
    let hash = config_hash(&container, &volumes);

    let mut pod_labels = template.labels.clone();
    pod_labels.extend(labels(mpc));
    let mut annotations = template.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), hash);

    let pod = PodSpec {
        containers: vec![container],
        volumes: (!volumes.is_empty()).then_some(volumes),
        service_account_name: template.service_account_name.clone(),
        // The consumer never calls the API server; a service account chosen
        // in the template may carry a cloud identity, so it keeps its token.
        automount_service_account_token: template.service_account_name.is_none().then_some(false),
        node_selector: (!template.node_selector.is_empty()).then(|| template.node_selector.clone()),
        tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
        priority_class_name: template.priority_class_name.clone(),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(mpc)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// The pod's volumes and the consumer container's mounts: the Kafka TLS
/// material when `kafka.tls` names Secrets, then `spec.template.volumes` in
/// their order (the schema keeps their names and paths off the TLS volume).
fn pod_volumes(spec: &MillpondConsumerSpec) -> (Vec<Volume>, Vec<VolumeMount>) {
    let declared = spec.template.volumes.iter().map(|v| {
        let volume = Volume {
            name: v.name.clone(),
            empty_dir: v.empty_dir.clone(),
            persistent_volume_claim: v.persistent_volume_claim.clone(),
            ..Volume::default()
        };
        let mount = VolumeMount {
            name: v.name.clone(),
            mount_path: v.mount_path.clone(),
            read_only: Some(v.read_only),
            ..VolumeMount::default()
        };
        (volume, mount)
    });
    tls_volume(spec).into_iter().chain(declared).unzip()
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

/// An HTTP probe of the metrics port.
fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(METRICS_PORT_NAME.to_string()),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        success_threshold: Some(1),
        ..Probe::default()
    }
}

/// Hash of the consumer's rendered configuration: the container (image,
/// env, resources, probes, mounts) and its volumes. It is written into the
/// pod template, so `kubectl describe` shows which configuration a pod runs
/// and the operator can tell whether a rollout is due by comparing one
/// annotation.
///
/// It changes exactly when a spec change alters what the pods run. The
/// limits are not part of it: they reach running pods through the admin
/// endpoint and new pods through the `<name>-limits` ConfigMap, without a
/// restart; autoscaling and autotune settings do not reach the pod at all.
///
/// FNV-1a (64 bit) over the JSON form: stable across Rust and operator
/// releases, so upgrading the operator restarts no pods by itself. A pod
/// with one volume or none hashes `[container, volume or null]`, the form
/// of the releases before `spec.template.volumes`; more volumes hash
/// `[container, [volumes]]`.
pub fn config_hash(container: &Container, volumes: &[Volume]) -> String {
    let json = match volumes {
        [] | [_] => serde_json::to_vec(&(container, volumes.first())),
        _ => serde_json::to_vec(&(container, volumes)),
    }
    .expect("k8s objects serialize to JSON");
    let hash = json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A CPU request must be a positive Kubernetes quantity (`500m`, `2`,
/// `1.5`). The API server checks this too; objects stored under an older
/// schema go through the same check.
fn check_cpu(cpu: &Quantity) -> Result<()> {
    let text = cpu.0.trim();
    let err = || Error::Invalid {
        field: "resources.cpu".to_string(),
        message: format!(
            "`{}` is not a positive CPU quantity, such as 500m or 2",
            cpu.0
        ),
    };
    let text = text.strip_prefix('+').unwrap_or(text);
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        e.strip_prefix(['+', '-'])
            .unwrap_or(e)
            .parse::<u32>()
            .is_ok()
    });
    let value: f64 = number.parse().map_err(|_| err())?;
    if !suffix_ok || number.matches('.').count() > 1 || value <= 0.0 {
        return Err(err());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use kube::ResourceExt;
    use millpond_crds::MillpondConsumer;

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn template_meta(d: &Deployment) -> &ObjectMeta {
        d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap()
    }

    fn hash(m: &MillpondConsumer) -> String {
        let d = deployment(&valid(m), &ctx(), 1).unwrap();
        template_meta(&d).annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION].clone()
    }

    #[test]
    fn replicas_come_from_the_operator_not_the_spec() {
        let m = edit(MINIMAL, "spec:\n", "spec:\n  replicas: 7\n");
        let d = deployment(&valid(&m), &ctx(), 3).unwrap();
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
        assert!(deployment(&valid(&m), &ctx(), -1).is_err());
    }

    #[test]
    fn the_deployment_selects_its_pods_by_the_instance_labels() {
        let m = mpc(MINIMAL);
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        assert_eq!(d.name_any(), "orders");
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref(),
            Some(&super::super::selector_labels(&m))
        );
        let pod_labels = template_meta(&d).labels.as_ref().unwrap();
        for (k, v) in super::super::labels(&m) {
            assert_eq!(pod_labels.get(&k), Some(&v), "{k}");
        }
        let rolling = spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(rolling.max_surge, Some(IntOrString::Int(0)));
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));
    }

    #[test]
    fn the_image_is_the_operators_unless_the_template_names_one() {
        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        assert_eq!(
            container(&d).image.as_deref(),
            Some("millpond/consumer:0.1.0")
        );
        assert_eq!(container(&d).image_pull_policy, None);
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        assert_eq!(
            container(&d).image.as_deref(),
            Some("registry.example.com/millpond/consumer:custom")
        );
        assert_eq!(container(&d).image_pull_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn new_pods_start_with_the_limits_of_the_config_map() {
        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        let from = container(&d).env_from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        let cm = from[0].config_map_ref.as_ref().unwrap();
        assert_eq!(cm.name, "orders-limits");
        assert_eq!(cm.optional, Some(false));
    }

    #[test]
    fn memory_is_the_request_and_the_limit_and_cpu_only_a_request() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let r = container(&d).resources.as_ref().unwrap();
        let limits = r.limits.as_ref().unwrap();
        let requests = r.requests.as_ref().unwrap();
        assert_eq!(limits.len(), 1);
        assert_eq!(limits["memory"], Quantity("512Mi".into()));
        assert_eq!(requests["memory"], Quantity("512Mi".into()));
        assert_eq!(requests["cpu"], Quantity("500m".into()));

        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        let r = container(&d).resources.as_ref().unwrap();
        assert_eq!(r.requests.as_ref().unwrap().len(), 1);
        assert_eq!(
            r.limits.as_ref().unwrap()["memory"],
            Quantity("256Mi".into())
        );
    }

    #[test]
    fn an_unusable_cpu_quantity_is_refused_naming_the_field() {
        for cpu in ["0", "abc", "1.2.3", "-1", "2x"] {
            let m = edit(
                MINIMAL,
                "spec:\n",
                &format!("spec:\n  resources: {{memory: 256Mi, cpu: '{cpu}'}}\n"),
            );
            let err = deployment(&valid(&m), &ctx(), 1).unwrap_err();
            assert!(
                err.to_string().starts_with("resources.cpu: "),
                "{cpu}: {err}"
            );
        }
        for cpu in ["500m", "2", "1.5", "100e-3"] {
            check_cpu(&Quantity(cpu.into())).unwrap_or_else(|e| panic!("{cpu}: {e}"));
        }
    }

    #[test]
    fn probes_check_health_and_readiness_on_the_metrics_port() {
        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        let c = container(&d);
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9090)
        );
        let get = |p: &Option<Probe>| {
            let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
            (g.path.clone().unwrap(), g.port.clone())
        };
        let metrics = IntOrString::String("metrics".into());
        assert_eq!(get(&c.liveness_probe), ("/healthz".into(), metrics.clone()));
        assert_eq!(get(&c.readiness_probe), ("/readyz".into(), metrics));
    }

    #[test]
    fn pods_run_unprivileged_with_a_read_only_root() {
        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        let sc = container(&d).security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let p = pod(&d);
        let psc = p.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(p.termination_grace_period_seconds, Some(60));
        assert_eq!(p.automount_service_account_token, Some(false));
    }

    #[test]
    fn template_overrides_reach_the_pods() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let meta = template_meta(&d);
        let pod_labels = meta.labels.as_ref().unwrap();
        assert_eq!(pod_labels["team"], "billing");
        // The selector labels win over the template's.
        assert_eq!(pod_labels["app.kubernetes.io/instance"], "orders");
        let annotations = meta.annotations.as_ref().unwrap();
        assert_eq!(annotations["example.com/owner"], "billing");
        assert!(annotations.contains_key(CONFIG_HASH_ANNOTATION));

        let p = pod(&d);
        assert_eq!(p.node_selector.as_ref().unwrap()["pool"], "consumers");
        let toleration = &p.tolerations.as_ref().unwrap()[0];
        assert_eq!(toleration.key.as_deref(), Some("dedicated"));
        assert_eq!(toleration.effect.as_deref(), Some("NoSchedule"));
        assert_eq!(p.service_account_name.as_deref(), Some("orders-reader"));
        assert_eq!(p.automount_service_account_token, None);
        assert_eq!(p.priority_class_name.as_deref(), Some("batch-high"));
        assert_eq!(env_value(container(&d), "RUST_LOG"), "debug");
    }

    #[test]
    fn the_config_hash_follows_what_the_pods_run_and_nothing_else() {
        let base = hash(&mpc(MINIMAL));
        assert_eq!(base.len(), 16);
        assert_eq!(hash(&mpc(MINIMAL)), base, "deterministic");

        let changes = [
            ("topic: orders", "topic: payments"),
            ("file:///data/orders", "file:///data/other"),
            ("bootstrapServers: kafka-0", "bootstrapServers: kafka-9"),
            ("spec:\n", "spec:\n  resources: {memory: 1Gi}\n"),
            (
                "  template:\n",
                "  template:\n    env: [{name: RUST_LOG, value: debug}]\n",
            ),
            (
                "  template:\n",
                "  template:\n    image: 'millpond/consumer:next'\n",
            ),
            (
                "name: data, mountPath: /data,",
                "name: out, mountPath: /data,",
            ),
            ("mountPath: /data,", "mountPath: /data/orders,"),
            ("emptyDir: {}", "emptyDir: {sizeLimit: 1Gi}"),
            ("emptyDir: {}", "persistentVolumeClaim: {claimName: orders}"),
            (
                "emptyDir: {}}",
                "emptyDir: {}}\n    - {name: ref, mountPath: /ref, readOnly: true, emptyDir: {}}",
            ),
        ];
        for (from, to) in changes {
            assert_ne!(hash(&edit(MINIMAL, from, to)), base, "{to}");
        }

        let unchanged = [
            ("spec:\n", "spec:\n  replicas: 5\n"),
            (
                "spec:\n",
                "spec:\n  autoscaling: {minReplicas: 2, maxReplicas: 3}\n",
            ),
            (
                "spec:\n",
                "spec:\n  limits: {flushBytes: 2Mi, maxInFlight: 2}\n",
            ),
            ("spec:\n", "spec:\n  autotune: {enabled: false}\n"),
            ("generation: 1", "generation: 9"),
        ];
        for (from, to) in unchanged {
            assert_eq!(hash(&edit(MINIMAL, from, to)), base, "{to}");
        }
    }

    fn volume_names(d: &Deployment) -> Vec<&str> {
        let volumes = pod(d).volumes.iter().flatten();
        volumes.map(|v| v.name.as_str()).collect()
    }

    fn mounts(d: &Deployment) -> Vec<(&str, &str, Option<bool>)> {
        let mounts = container(d).volume_mounts.iter().flatten();
        mounts
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect()
    }

    #[test]
    fn template_volumes_are_mounted_into_the_consumer() {
        let m = edit(
            MINIMAL,
            MINIMAL_VOLUME,
            &format!(
                "{MINIMAL_VOLUME}    - {{name: ref, mountPath: /ref, readOnly: true, \
                 persistentVolumeClaim: {{claimName: reference, readOnly: true}}}}\n"
            ),
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        assert_eq!(volume_names(&d), ["data", "ref"]);
        let volumes = pod(&d).volumes.as_ref().unwrap();
        assert!(volumes[0].empty_dir.is_some());
        assert!(volumes[0].persistent_volume_claim.is_none());
        let claim = volumes[1].persistent_volume_claim.as_ref().unwrap();
        assert_eq!(
            (claim.claim_name.as_str(), claim.read_only),
            ("reference", Some(true))
        );
        assert_eq!(
            mounts(&d),
            [("data", "/data", Some(false)), ("ref", "/ref", Some(true))]
        );
    }

    #[test]
    fn the_tls_volume_comes_first_beside_the_template_volumes() {
        let m = edit(
            MINIMAL,
            "topic: orders",
            "topic: orders\n    tls: {caSecretRef: {name: kafka-ca, key: ca.crt}}",
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        assert_eq!(volume_names(&d), ["kafka-tls", "data"]);
        assert_eq!(
            mounts(&d),
            [
                ("kafka-tls", "/etc/millpond/kafka-tls", Some(true)),
                ("data", "/data", Some(false))
            ]
        );
    }

    #[test]
    fn an_http_sink_without_volumes_mounts_nothing() {
        let http = MINIMAL.replace("file:///data/orders", "http://sink:8080/in");
        let m = edit(
            &http,
            &format!("  template:\n    volumes:\n{MINIMAL_VOLUME}"),
            "",
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        assert_eq!(pod(&d).volumes, None);
        assert_eq!(container(&d).volume_mounts, None);
    }

    #[test]
    fn without_template_volumes_the_hash_keeps_its_earlier_form() {
        // Pods of consumers without template volumes keep their hash across
        // the operator upgrade that brought them: `[container, volume|null]`.
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let c = container(&d);
        let volumes = pod(&d).volumes.clone().unwrap();
        assert_eq!(volumes.len(), 1);
        let earlier = {
            let json = serde_json::to_vec(&(c, Some(&volumes[0]))).unwrap();
            let h = json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            format!("{h:016x}")
        };
        assert_eq!(config_hash(c, &volumes), earlier);
        assert_ne!(config_hash(c, &[]), earlier);
    }

    #[test]
    fn the_deployment_holds_no_credentials() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains(TOKEN), "the admin token leaked");
        let c = container(&d);
        for var in c.env.iter().flatten() {
            if let Some(value) = &var.value {
                for (property, reference) in [
                    ("sasl.username=", "$(KAFKA_SASL_USERNAME)"),
                    ("sasl.password=", "$(KAFKA_SASL_PASSWORD)"),
                ] {
                    for (i, _) in value.match_indices(property) {
                        let rest = &value[i + property.len()..];
                        assert!(rest.starts_with(reference), "{}: {value}", var.name);
                    }
                }
            }
        }
    }
}
