//! Desired objects of a `MillpondConsumer`, as pure functions of the spec.
//!
//! Every builder takes the `MillpondConsumer` and a [`BuildContext`] (what
//! the operator knows beside the spec: the consumer image it was released
//! with, the admin token it keeps), plus the few values the operator decides
//! (replicas, current limits). Builders never talk to the API server, never
//! read the clock and never generate randomness, so the same input always
//! gives the same object and they are unit-tested from inline YAML.
//!
//! Objects of a consumer named `orders` in its namespace, all owned by it
//! (controller owner reference, so garbage collection removes them with it)
//! and labelled with [`labels`]:
//!
//! | object | name | builder |
//! |---|---|---|
//! | Secret (admin bearer token) | `orders-admin` | [`admin_secret`] |
//! | ConfigMap (current limits, read by new pods) | `orders-limits` | [`limits_config_map`] |
//! | Service (headless, metrics port) | `orders-metrics` | [`metrics_service`] |
//! | Deployment (the consumer pods) | `orders` | [`deployment`] |
//! | PodDisruptionBudget (maxUnavailable 1) | `orders` | [`pod_disruption_budget`] |
//! | NetworkPolicy (admin port: the operator only) | `orders-admin` | [`admin_network_policy`] |
//!
//! [`objects`] builds all of them, in the order they are to be applied: the
//! Secret and the ConfigMap first, since pods cannot start without them.
//!
//! # How Kafka credentials reach librdkafka
//!
//! The consumer reads extra librdkafka properties only from `KAFKA_CONFIG`
//! (and `KAFKA_CONFIG_FILE`). Credentials never appear in the Deployment, the
//! ConfigMap or the spec:
//!
//! * SASL: `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD` are env vars with
//!   `valueFrom.secretKeyRef` to the spec's Secret keys, listed before
//!   `KAFKA_CONFIG`, which holds `sasl.username=$(KAFKA_SASL_USERNAME)` and
//!   `sasl.password=$(KAFKA_SASL_PASSWORD)`. The kubelet expands `$(VAR)`
//!   references to variables defined earlier in the list when it starts the
//!   container, so the values exist only in the container's environment.
//!   Literal values the operator writes have `$` escaped as `$$`, so no spec
//!   value can refer to a credential.
//! * TLS: PEM material spans several lines, and `KAFKA_CONFIG` separates
//!   properties by commas *and newlines*, so it cannot travel through an env
//!   var. The referenced Secret keys are mounted read-only (a projected volume
//!   at [`TLS_DIR`]) and `KAFKA_CONFIG` names the files with
//!   `ssl.ca.location`, `ssl.certificate.location` and `ssl.key.location`.
//!
//! `security.protocol` and `sasl.mechanism` follow from `kafka.sasl` and
//! `kafka.tls`. Because of the separators, a SASL username or password that
//! contains a comma or a newline cannot be passed this way.

mod config_map;
mod deployment;
mod env;
mod network_policy;
mod pdb;
mod ports;
mod secret;
mod service;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use millpond_crds::{CurrentLimits, MillpondConsumer};

use crate::controller::validate::Validated;

pub use config_map::{limits_config_map, limits_env, LIMIT_KEYS};
pub use deployment::{config_hash, deployment, CONFIG_HASH_ANNOTATION, CONTAINER_NAME};
pub(crate) use env::security_settings;
pub use env::{overridden_env, TLS_DIR};
pub use network_policy::{admin_network_policy, OperatorPods};
pub use pdb::pod_disruption_budget;
pub use ports::{ADMIN_PORT, ADMIN_PORT_NAME, METRICS_PORT, METRICS_PORT_NAME};
pub use secret::{admin_secret, admin_token_of, ADMIN_TOKEN_KEY};
pub use service::metrics_service;

/// `app.kubernetes.io/name` of everything the operator creates for a consumer.
pub const APP_NAME: &str = "millpond-consumer";
/// `app.kubernetes.io/managed-by` of everything the operator creates.
pub const MANAGED_BY: &str = "millpond-operator";
/// Label naming the `MillpondConsumer` an object belongs to.
pub const CONSUMER_LABEL: &str = "millpond.io/consumer";
/// Repository of the consumer image the operator defaults to.
pub const CONSUMER_IMAGE_REPOSITORY: &str = "docker.io/millpond/consumer";

/// Longest `MillpondConsumer` name: `<name>-metrics` must stay a DNS label
/// (63 characters), and the name is also a label value.
pub const MAX_NAME_LEN: usize = 63 - "-metrics".len();

/// The consumer image of this operator release, `docker.io/millpond/consumer:<version>`.
pub fn default_consumer_image() -> String {
    format!("{CONSUMER_IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// What the builders need besides the spec.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// Image of the consumer container unless `spec.template.image` is set
    /// (the operator's `--consumer-image`; default [`default_consumer_image`]).
    pub consumer_image: String,
    /// Bearer token of the consumer's admin endpoint, written into the
    /// `<name>-admin` Secret. The operator keeps the token of an existing
    /// Secret ([`admin_token_of`]) and generates one only when there is none.
    pub admin_token: String,
    /// Where the operator's pods run: the consumer pods' admin port admits
    /// only them. `None`: no NetworkPolicy.
    pub operator_pods: Option<OperatorPods>,
}

impl BuildContext {
    /// A context with the given consumer image and admin token, and no
    /// NetworkPolicy.
    pub fn new(consumer_image: impl Into<String>, admin_token: impl Into<String>) -> Self {
        Self {
            consumer_image: consumer_image.into(),
            admin_token: admin_token.into(),
            operator_pods: None,
        }
    }
}

/// Never prints the token.
impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("consumer_image", &self.consumer_image)
            .field("admin_token", &"<redacted>")
            .field("operator_pods", &self.operator_pods)
            .finish()
    }
}

/// Why the objects of a `MillpondConsumer` cannot be built. Every message
/// names the field at fault and what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The spec breaks a rule of the API (sizes, bounds, refused properties).
    #[error(transparent)]
    Spec(#[from] millpond_crds::Error),

    /// The spec is valid for the API but cannot be rendered into a pod.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `kafka.config.debug`.
        field: String,
        /// What is wrong and what to do instead.
        message: String,
    },

    /// The name cannot name the objects derived from it.
    #[error("metadata.name `{name}`: {why}")]
    Name {
        /// The `MillpondConsumer`'s name.
        name: String,
        /// What is wrong with it.
        why: String,
    },

    /// Metadata that only the API server fills in is missing.
    #[error("metadata.{field} is missing: objects are built from a MillpondConsumer read from the API server")]
    MissingMetadata {
        /// `name`, `namespace` or `uid`.
        field: &'static str,
    },
}

impl Error {
    /// A bounded label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Spec(e) => e.metric_label(),
            Error::Invalid { .. } => "invalid",
            Error::Name { .. } => "name",
            Error::MissingMetadata { .. } => "metadata",
        }
    }
}

/// Result of the builders.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Labels of every object built for `mpc` and of its pods.
pub fn labels(mpc: &MillpondConsumer) -> BTreeMap<String, String> {
    let name = mpc.name_any();
    let mut labels = selector_labels(mpc);
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        MANAGED_BY.to_string(),
    );
    labels.insert(CONSUMER_LABEL.to_string(), name);
    labels
}

/// The labels the consumer pods are selected by (Deployment, Service,
/// PodDisruptionBudget, scale subresource).
pub fn selector_labels(mpc: &MillpondConsumer) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        ("app.kubernetes.io/instance".to_string(), mpc.name_any()),
    ])
}

/// [`selector_labels`] in the string form of `status.selector`:
/// `app.kubernetes.io/instance=orders,app.kubernetes.io/name=millpond-consumer`.
pub fn selector_string(mpc: &MillpondConsumer) -> String {
    selector_labels(mpc)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Name of the Deployment (the consumer's own name).
pub fn deployment_name(mpc: &MillpondConsumer) -> String {
    mpc.name_any()
}

/// Name of the PodDisruptionBudget (the consumer's own name).
pub fn pdb_name(mpc: &MillpondConsumer) -> String {
    mpc.name_any()
}

/// Name of the limits ConfigMap, `<name>-limits`.
pub fn limits_config_map_name(mpc: &MillpondConsumer) -> String {
    format!("{}-limits", mpc.name_any())
}

/// Name of the metrics Service, `<name>-metrics`.
pub fn metrics_service_name(mpc: &MillpondConsumer) -> String {
    format!("{}-metrics", mpc.name_any())
}

/// Name of the NetworkPolicy of the admin port, `<name>-admin`.
pub fn admin_network_policy_name(mpc: &MillpondConsumer) -> String {
    format!("{}-admin", mpc.name_any())
}

/// Name of the admin-token Secret, `<name>-admin`.
pub fn admin_secret_name(mpc: &MillpondConsumer) -> String {
    format!("{}-admin", mpc.name_any())
}

/// Every object of a consumer, in the order to apply them.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// `<name>-admin`: the bearer token of the pods' admin endpoint.
    pub admin_secret: Secret,
    /// `<name>-limits`: the limits new pods start with.
    pub limits: ConfigMap,
    /// `<name>-metrics`: the pods' metrics endpoints.
    pub metrics_service: Service,
    /// `<name>`: the consumer pods.
    pub deployment: Deployment,
    /// `<name>`: at most one pod disrupted at a time.
    pub pdb: PodDisruptionBudget,
    /// `<name>-admin`: only the operator reaches the admin port (when the
    /// operator knows where its pods run).
    pub admin_network_policy: Option<NetworkPolicy>,
}

/// Builds every object of `mpc` with `replicas` pods and the current
/// `limits`.
pub fn objects(
    valid: &Validated,
    ctx: &BuildContext,
    replicas: i32,
    limits: &CurrentLimits,
) -> Result<Desired> {
    let mpc = valid.mpc();
    Ok(Desired {
        admin_secret: admin_secret(mpc, ctx)?,
        limits: limits_config_map(mpc, ctx, limits)?,
        metrics_service: metrics_service(mpc, ctx)?,
        deployment: deployment(valid, ctx, replicas)?,
        pdb: pod_disruption_budget(mpc, ctx)?,
        admin_network_policy: admin_network_policy(mpc, ctx)?,
    })
}

/// Checks that the name can name every derived object: a DNS-1035 label
/// (the Service) short enough for the `-metrics` suffix, which also makes it
/// a valid label value.
fn check_name(name: &str) -> Result<()> {
    let err = |why: String| Error::Name {
        name: name.to_string(),
        why,
    };
    if name.len() > MAX_NAME_LEN {
        return Err(err(format!(
            "is {} characters long; the metrics Service `{name}-metrics` must be a DNS label of at most 63, \
             so name the MillpondConsumer with at most {MAX_NAME_LEN} characters",
            name.len()
        )));
    }
    let bytes = name.as_bytes();
    let allowed = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let starts = bytes.first().is_some_and(u8::is_ascii_lowercase);
    let ends = bytes
        .last()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(allowed && starts && ends) {
        return Err(err(format!(
            "the metrics Service `{name}-metrics` must be a DNS label: use lowercase letters, digits \
             and '-', starting with a letter"
        )));
    }
    Ok(())
}

/// Metadata of an object named `name` owned by `mpc`: its namespace, the
/// labels and a controller owner reference.
fn object_meta(mpc: &MillpondConsumer, name: String) -> Result<ObjectMeta> {
    let consumer = mpc
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata { field: "name" })?;
    check_name(consumer)?;
    let namespace = mpc
        .namespace()
        .ok_or(Error::MissingMetadata { field: "namespace" })?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        labels: Some(labels(mpc)),
        owner_references: Some(vec![owner_reference(mpc)?]),
        ..ObjectMeta::default()
    })
}

/// The controller owner reference to `mpc`; deleting the consumer deletes
/// its objects, and foreground deletion waits for them.
pub fn owner_reference(mpc: &MillpondConsumer) -> Result<OwnerReference> {
    let mut owner = mpc
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata {
            field: if mpc.metadata.name.is_none() {
                "name"
            } else {
                "uid"
            },
        })?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn labels_name_the_app_the_instance_and_the_manager() {
        let mpc = mpc(MINIMAL);
        let labels = labels(&mpc);
        assert_eq!(labels["app.kubernetes.io/name"], "millpond-consumer");
        assert_eq!(labels["app.kubernetes.io/instance"], "orders");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "millpond-operator");
        assert_eq!(labels["millpond.io/consumer"], "orders");
    }

    #[test]
    fn the_selector_string_is_what_status_selector_carries() {
        assert_eq!(
            selector_string(&mpc(MINIMAL)),
            "app.kubernetes.io/instance=orders,app.kubernetes.io/name=millpond-consumer"
        );
    }

    #[test]
    fn the_default_image_is_the_consumer_of_this_release() {
        assert_eq!(
            default_consumer_image(),
            format!("docker.io/millpond/consumer:{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn every_object_is_owned_by_the_consumer_and_lives_in_its_namespace() {
        let mpc = mpc(MINIMAL);
        let d = objects(&valid(&mpc), &ctx(), 2, &limits()).unwrap();
        let metas = [
            &d.admin_secret.metadata,
            &d.limits.metadata,
            &d.metrics_service.metadata,
            &d.deployment.metadata,
            &d.pdb.metadata,
        ];
        for meta in metas {
            assert_eq!(meta.namespace.as_deref(), Some("pond"));
            assert_eq!(meta.labels.as_ref(), Some(&labels(&mpc)));
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1, "{:?}", meta.name);
            let owner = &owners[0];
            assert_eq!(owner.api_version, "millpond.io/v1alpha1");
            assert_eq!(owner.kind, "MillpondConsumer");
            assert_eq!(owner.name, "orders");
            assert_eq!(owner.uid, UID);
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
        let names: Vec<_> = metas.iter().map(|m| m.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            [
                "orders-admin",
                "orders-limits",
                "orders-metrics",
                "orders",
                "orders"
            ]
        );
    }

    #[test]
    fn a_consumer_not_read_from_the_api_server_is_refused() {
        let mut mpc = mpc(MINIMAL);
        mpc.metadata.uid = None;
        let err = deployment(&valid(&mpc), &ctx(), 1).unwrap_err();
        assert_eq!(err, Error::MissingMetadata { field: "uid" });
        assert_eq!(err.metric_label(), "metadata");
        mpc.metadata.namespace = None;
        assert_eq!(
            metrics_service(&mpc, &ctx()).unwrap_err(),
            Error::MissingMetadata { field: "namespace" }
        );
    }

    #[test]
    fn names_that_cannot_name_a_service_are_refused_with_the_limit() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for (name, words) in [
            (long.as_str(), "at most 55 characters"),
            ("1orders", "starting with a letter"),
            ("orders.eu", "lowercase letters, digits"),
        ] {
            let mut mpc = mpc(MINIMAL);
            mpc.metadata.name = Some(name.to_string());
            let err = admin_secret(&mpc, &ctx()).unwrap_err();
            assert_eq!(err.metric_label(), "name");
            assert!(err.to_string().contains(words), "{name}: {err}");
        }
        let mut mpc = mpc(MINIMAL);
        mpc.metadata.name = Some("a".repeat(MAX_NAME_LEN));
        admin_secret(&mpc, &ctx()).unwrap();
    }

    #[test]
    fn the_context_never_prints_the_token() {
        let printed = format!("{:?}", ctx());
        assert!(!printed.contains(TOKEN), "{printed}");
        assert!(printed.contains("millpond/consumer"));
    }

    #[test]
    fn the_chart_installs_the_current_crd() {
        let chart = include_str!("../../../charts/millpond-operator/crds/millpondconsumer.yaml");
        let generated = include_str!("../../../crds/millpondconsumer.yaml");
        assert!(
            chart == generated,
            "charts/millpond-operator/crds/millpondconsumer.yaml differs from crds/millpondconsumer.yaml; \
             copy it: cp crds/millpondconsumer.yaml charts/millpond-operator/crds/"
        );
    }

    #[test]
    fn the_charts_dashboard_charts_every_consumer_and_operator_metric() {
        let text = include_str!("../../../charts/millpond-operator/dashboards/millpond.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        let exprs: Vec<&str> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .filter_map(|t| t["expr"].as_str())
            .collect();
        for metric in [
            "millpond_records_total",
            "millpond_records_delivered_total",
            "millpond_partition_lag",
            "millpond_buffer_fullness",
            "millpond_in_flight_batches",
            "millpond_flush_duration_seconds_bucket",
            "millpond_flushes_total",
            "millpond_limits_generation",
            "millpond_limit_flush_bytes",
            "millpond_limit_flush_interval_ms",
            "millpond_limit_max_in_flight",
            "millpond_limit_consume_batch_size",
            "millpond_errors_total",
            "millpond_operator_reconcile_duration_seconds_bucket",
            "millpond_operator_reconcile_errors_total",
            "millpond_operator_decisions_total",
            "millpond_operator_desired_replicas",
        ] {
            assert!(
                exprs.iter().any(|e| e.contains(metric)),
                "no panel shows {metric}"
            );
        }
        assert!(exprs
            .iter()
            .any(|e| e.contains("sum by (direction)") && e.contains("decisions_total")));
    }
}
