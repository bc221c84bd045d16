//! `MillpondConsumer.spec`: what to consume, where to deliver it, the memory
//! budget, the flush limits and how far to scale.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::kafka_config;
use crate::quantity::parse_positive_bytes;
use crate::status::MillpondConsumerStatus;
use crate::volumes::{self, ConsumerVolume, MAX_VOLUMES};
use crate::{Error, Result};

/// Memory budget of a pod when `resources.memory` is not set.
pub const DEFAULT_MEMORY: &str = "256Mi";

/// CEL rule for a byte size: a Kubernetes quantity above zero and a whole
/// number of bytes (so `256m`, thousandths, is refused). The field is
/// int-or-string, so `self` is an int when the value was written as a number;
/// `string(self)` reads both (`string(1000000000)` is `'1000000000'`).
const POSITIVE_BYTES: &str = "isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0')) && quantity(string(self)).isInteger()";

/// CEL: `a <= b` for two optional quantity fields of `self` (true when
/// either is missing or malformed; malformed values fail their own rule).
/// Like [`POSITIVE_BYTES`], each value may be an int or a string.
fn quantities_ordered(a: &str, b: &str) -> String {
    let q = |f: &str| format!("quantity(string(self.{f}))");
    let ok = |f: &str| format!("has(self.{f}) && isQuantity(string(self.{f}))");
    format!(
        "!({}) || !({}) || {}.compareTo({}) <= 0",
        ok(a),
        ok(b),
        q(a),
        q(b)
    )
}

/// Consume one Kafka topic into a sink with pods that stay inside a memory
/// budget, scaled and tuned by the Millpond operator.
// Clippy reads the repeated `type_ = "integer"` of the printer columns below as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "millpond.io",
    version = "v1alpha1",
    kind = "MillpondConsumer",
    plural = "millpondconsumers",
    shortname = "mpc",
    category = "millpond",
    namespaced,
    status = "MillpondConsumerStatus",
    derive = "PartialEq",
    doc = "A MillpondConsumer consumes one Kafka topic into a sink (files or HTTP) with pods that never exceed their memory budget; the Millpond operator scales them on consumer lag and tunes their flush limits.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Consumer pods the operator runs"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Consumer pods that are ready"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.lag.total",
        description = "Records of the topic not yet committed by the group"
    ),
    printcolumn(
        name = "Fullness",
        type_ = "number",
        json_path = ".status.bufferFullness",
        description = "Highest buffer fullness of the pods (buffered bytes / flushBytes)"
    ),
    printcolumn(
        name = "Limited",
        type_ = "string",
        json_path = ".status.limitedBy",
        description = "Where the pods are limited: SinkBound, ConsumeBound, KeepingUp, Idle"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Reason of the Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.limits) || !has(self.autotune) || ((!has(self.autotune.minInFlight) || self.limits.maxInFlight >= self.autotune.minInFlight) && (!has(self.autotune.maxInFlight) || self.limits.maxInFlight <= self.autotune.maxInFlight))"
).message("limits.maxInFlight must lie within autotune.minInFlight and autotune.maxInFlight").field_path(".limits.maxInFlight"))]
#[x_kube(validation = Rule::new(format!(
    "!has(self.limits) || !has(self.autotune) || !has(self.limits.flushBytes) || (({}) && ({}))",
    quantities_ordered("autotune.minFlushBytes", "limits.flushBytes"),
    quantities_ordered("limits.flushBytes", "autotune.maxFlushBytes"),
)).message("limits.flushBytes must lie within autotune.minFlushBytes and autotune.maxFlushBytes").field_path(".limits.flushBytes"))]
#[x_kube(validation = Rule::new(
    "self.sink.url.startsWith('file://') || self.sink.url.startsWith('s3://') || !has(self.sink.format) || self.sink.format == 'ndjson'"
).message("sink.format parquet needs a file:// or s3:// sink (HTTP sinks receive NDJSON)").field_path(".sink.format"))]
#[serde(rename_all = "camelCase")]
pub struct MillpondConsumerSpec {
    /// The Kafka cluster, topic and consumer group to read from.
    pub kafka: KafkaSpec,

    /// Where the records go.
    pub sink: SinkSpec,

    /// Memory and CPU of each consumer pod. The memory is the budget every
    /// other size is derived from.
    #[serde(default)]
    pub resources: ResourcesSpec,

    /// Starting flush and in-flight limits of the pods. With autotune enabled
    /// the operator moves them within the autotune bounds; status.limits shows
    /// the values the pods run with.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// How the operator chooses the number of pods.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,

    /// Bounds within which the operator tunes flush size and in-flight writes.
    #[serde(default)]
    pub autotune: AutotuneSpec,

    /// Additions to the consumer pods (image, labels, scheduling, extra env,
    /// volumes).
    #[serde(default)]
    pub template: TemplateSpec,

    /// Desired number of pods, set by `kubectl scale` through the scale
    /// subresource. It is followed while autoscaling.paused is true, capped at
    /// autoscaling.maxReplicas and at the topic's partition count (a pod
    /// beyond them would hold no partition); otherwise the operator decides
    /// and this is only the count to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
}

/// The Kafka side of a consumer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kafka_config::sasl_tls_rule())]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Kafka brokers to bootstrap from, comma separated `host:port` pairs.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,

    /// Topic to consume: 1 to 249 letters, digits, `.`, `_` or `-`.
    #[schemars(
        length(min = 1, max = 249),
        regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$")
    )]
    #[x_kube(validation = Rule::new("self != '.' && self != '..'").message("kafka.topic cannot be '.' or '..'"))]
    pub topic: String,

    /// Consumer group that owns the committed offsets. Defaults to
    /// `millpond-<topic>`. Changing it starts from the new group's offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub group_id: Option<String>,

    /// Extra librdkafka properties (see librdkafka's CONFIGURATION.md), as
    /// strings. Properties that would break at-least-once delivery
    /// (enable.auto.commit=true, enable.auto.offset.store=true, another
    /// partition.assignment.strategy or group.protocol), that duplicate a spec
    /// field (group.id, bootstrap.servers) or that hold credentials
    /// (sasl.password, ssl.key.pem, ...) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128), transform = bounded_values)]
    #[x_kube(validation = kafka_config::guarded_rule())]
    pub config: BTreeMap<String, String>,

    /// SASL authentication (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); username
    /// and password are read from Secrets. With `tls` the connection is
    /// SASL_SSL, without it SASL_PLAINTEXT. A refused password sets
    /// `Degraded=KafkaAuthenticationFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSpec>,

    /// TLS to the brokers. Present (even empty, `tls: {}`) means TLS is on,
    /// trusting the system's CAs unless `caSecretRef` is given; certificates
    /// and keys are read from Secrets and mounted read-only into the pods.
    /// The brokers' certificates must name the addresses clients connect to
    /// (hostname verification is on). A failed handshake sets
    /// `Degraded=KafkaTLSFailed`, naming whether the CA or the name failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Caps the length of the string values of a map, so CEL rules over it have
/// a bounded cost.
fn bounded_values(schema: &mut schemars::Schema) {
    if let Some(values) = schema
        .get_mut("additionalProperties")
        .and_then(|v| v.as_object_mut())
    {
        values.insert("maxLength".into(), 4096.into());
    }
}

/// SASL authentication with credentials from Secrets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SaslSpec {
    /// SASL mechanism.
    pub mechanism: SaslMechanism,

    /// Secret key holding the SASL username.
    pub username_secret_ref: SecretKeyRef,

    /// Secret key holding the SASL password.
    pub password_secret_ref: SecretKeyRef,
}

/// SASL mechanisms Millpond can configure from a username and a password.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password in clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// TLS to the brokers, with material from Secrets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.certSecretRef) == has(self.keySecretRef)").message("kafka.tls.certSecretRef and kafka.tls.keySecretRef go together"))]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret key holding the PEM CA bundle that signs the brokers'
    /// certificates. Without it the system's CAs are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding the PEM client certificate (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding the PEM client private key (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the consumer's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How a pod reaches an S3 bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.accessKeyIdSecretRef) == has(self.secretAccessKeySecretRef)").message("s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef go together"))]
#[x_kube(validation = Rule::new("!has(self.sessionTokenSecretRef) || has(self.accessKeyIdSecretRef)").message("s3.sessionTokenSecretRef needs s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef"))]
pub struct S3Spec {
    /// Region of the bucket, e.g. eu-west-1. Unset: the pod's AWS_REGION
    /// (from spec.template.env or its identity), else us-east-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,

    /// Endpoint of an S3-compatible store, e.g. http://minio.storage:9000.
    /// Unset: AWS S3 of the region. A plain http:// endpoint is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("s3.endpoint must be an http:// or https:// URL"))]
    pub endpoint: Option<String>,

    /// Address the bucket as a host name (`bucket.endpoint`) rather than
    /// as the first part of the path (`endpoint/bucket`, the default, which
    /// AWS and S3-compatible stores accept).
    #[serde(default)]
    pub virtual_hosted_style: bool,

    /// Secret key holding the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding a session token (temporary credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret_ref: Option<SecretKeyRef>,
}

/// Where the records go, and how.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.s3) || self.url.startsWith('s3://') || self.url.startsWith('iceberg://')").message(S3_RULE_MESSAGE))]
#[x_kube(validation = Rule::new("has(self.iceberg) == self.url.startsWith('iceberg://')").message(ICEBERG_RULE_MESSAGE))]
pub struct SinkSpec {
    /// Sink address: `file:///dir` writes files into a directory of the pod,
    /// which must be the mountPath of a spec.template.volumes entry that is
    /// not readOnly, or lie below it (the pod's root file system is
    /// read-only; otherwise the operator reports Degraded with reason
    /// SinkNotOnVolume); `http://host/path` or `https://host/path` receives
    /// one NDJSON POST per batch; `s3://bucket/prefix` writes the same files
    /// as objects into an S3 bucket (AWS or an S3-compatible store, see
    /// `s3`); `iceberg://namespace/table` appends to an Apache Iceberg table
    /// (a nested namespace as `a.b`; see `iceberg`), exactly once.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(
        "self.startsWith('file://') || self.startsWith('http://') || self.startsWith('https://') || self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$') || self.matches('^iceberg://[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_-]*$')"
    ).message(SINK_URL_RULE_MESSAGE))]
    pub url: String,

    /// File format of a file:// or s3:// sink: ndjson (one JSON object per
    /// line) or parquet. HTTP sinks always receive NDJSON.
    #[serde(default)]
    pub format: SinkFormat,

    /// Where and how an s3:// sink reaches its bucket, or an iceberg:// sink
    /// its table's files: region, an endpoint for S3-compatible stores,
    /// credentials from Secrets. Without credentials the pod uses its own
    /// identity (for example IRSA on EKS: a spec.template.serviceAccountName
    /// annotated with a role), or for an Iceberg table what its catalog
    /// hands out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,

    /// The catalog of an iceberg:// sink (required with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iceberg: Option<IcebergSpec>,

    /// Add `_topic`, `_partition`, `_offset` and `_timestamp` to every record.
    #[serde(default)]
    pub metadata: bool,

    /// Topic for records the sink cannot take: a value that is not a JSON
    /// object, a record larger than the flush size, a record the sink
    /// refuses (HTTP 400, 413, 422 and other permanent answers; the consumer
    /// splits a refused batch until the refused records are isolated).
    /// Each goes there with its position, the reason and the sink's answer
    /// in `millpond.*` headers. Without it such a record stops the consumer
    /// with an error naming its position (Degraded, reason PoisonRecord).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 249),
        regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$")
    )]
    pub dead_letter_topic: Option<String>,

    /// A write the sink does not take (unreachable, HTTP 5xx or 429, a full
    /// or read-only volume) is retried with capped exponential backoff while
    /// the pod keeps its partitions and its place in the consumer group;
    /// nothing is committed that the sink has not taken. Unset or 0: retry
    /// without end (the operator reports Degraded, reason SinkUnavailable,
    /// and holds the replicas). A number of seconds: after that long
    /// without a successful write the pod exits non-zero and Kubernetes
    /// restarts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604800))]
    pub give_up_after_seconds: Option<i64>,

    /// Request timeout of an http(s):// sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSinkSpec>,
}

/// File format of a file sink.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// Apache Parquet files.
    Parquet,
}

/// Request settings of an HTTP sink.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpSinkSpec {
    /// Timeout of one request, in milliseconds.
    #[serde(default = "default_http_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: i64,

    /// Deprecated and ignored: a failing write is retried until it passes,
    /// or for spec.sink.giveUpAfterSeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
}

/// The catalog of an Iceberg table sink: an Iceberg REST catalog (AWS Glue
/// and S3 Tables through their REST endpoints, Polaris, Lakekeeper, Nessie,
/// Apache Iceberg's own server) at `catalogUri`, or a SQL catalog in
/// PostgreSQL (the JDBC catalog's tables) at `sqlUriSecretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.tokenSecretRef) && has(self.credentialSecretRef))").message(TOKEN_OR_CREDENTIAL_MESSAGE))]
#[x_kube(validation = Rule::new("has(self.catalogUri) != has(self.sqlUriSecretRef)").message(ONE_CATALOG_MESSAGE))]
#[x_kube(validation = Rule::new("!has(self.sqlUriSecretRef) || !(has(self.tokenSecretRef) || has(self.credentialSecretRef) || has(self.scope) || has(self.oauth2ServerUri))").message(REST_ONLY_MESSAGE))]
pub struct IcebergSpec {
    /// URL of the REST catalog, e.g. https://catalog.example.com/api/catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("iceberg.catalogUri must be an http:// or https:// URL"))]
    pub catalog_uri: Option<String>,

    /// Secret key holding the connection URL of a SQL catalog in PostgreSQL,
    /// `postgresql://user:password@host:5432/database` (the tables
    /// `iceberg_tables` and `iceberg_namespace_properties` of Iceberg's JDBC
    /// catalog, created when missing; the catalog name is `millpond`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_uri_secret_ref: Option<SecretKeyRef>,

    /// Warehouse to ask the catalog for (a name or a location such as
    /// s3://bucket/warehouse, as the catalog expects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub warehouse: Option<String>,

    /// Secret key holding a bearer token for the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding OAuth2 client credentials for the catalog, as
    /// `client_id:client_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_secret_ref: Option<SecretKeyRef>,

    /// OAuth2 scope asked for with credentialSecretRef (the catalog's
    /// default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub scope: Option<String>,

    /// OAuth2 token endpoint, when it is not the catalog's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub oauth2_server_uri: Option<String>,

    /// Create a missing table (and its namespace) from the first batch:
    /// every field becomes an optional column of the type its JSON value
    /// has (whole numbers long, other numbers double, strings string,
    /// objects structs, arrays lists). Unpartitioned; alter it afterwards
    /// with any Iceberg engine.
    #[serde(default)]
    pub auto_create: bool,

    /// Add an optional column for every top-level field the records carry
    /// and the table does not have yet (typed as with autoCreate). Without
    /// it such fields are left out.
    #[serde(default)]
    pub evolve_schema: bool,

    /// Seconds written data files wait for more records before they are
    /// committed: fewer, larger files and snapshots, and fewer commits for
    /// the pods to race on, at the cost of that much delay before records
    /// show in the table (and before the consumer group's commit). A commit
    /// comes sooner when a pod has nothing else to write. Unset or 0: every
    /// flush is a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub commit_interval_seconds: Option<u32>,
}

pub const TOKEN_OR_CREDENTIAL_MESSAGE: &str =
    "iceberg.tokenSecretRef and iceberg.credentialSecretRef are alternatives: set one";
pub const ONE_CATALOG_MESSAGE: &str =
    "sink.iceberg needs one catalog: catalogUri (REST) or sqlUriSecretRef (SQL)";
pub const REST_ONLY_MESSAGE: &str =
    "iceberg.tokenSecretRef, credentialSecretRef, scope and oauth2ServerUri apply to a REST catalog (catalogUri) only";

pub const S3_RULE_MESSAGE: &str = "sink.s3 applies to an s3:// or iceberg:// sink.url only";
pub const ICEBERG_RULE_MESSAGE: &str =
    "an iceberg:// sink.url needs sink.iceberg (its catalog), and sink.iceberg applies to it only";

/// The sink URL schemes, as the schema's rule on `sink.url` accepts them.
pub const SINK_URL_RULE_MESSAGE: &str = "sink.url must be file://dir, http(s)://host/path, s3://bucket/prefix (bucket names are 3-63 lower-case letters, digits, dots and hyphens) or iceberg://namespace/table";

impl SinkSpec {
    /// What the sink is, as far as its memory is concerned.
    pub fn kind(&self) -> millpond_core::sink::SinkKind {
        use millpond_core::sink::{FileFormat, SinkKind};
        let format = match self.format {
            SinkFormat::Parquet => FileFormat::Parquet,
            SinkFormat::Ndjson => FileFormat::Ndjson,
        };
        let url = &self.url;
        if url.starts_with("http://") || url.starts_with("https://") {
            SinkKind::Http
        } else if url.starts_with("s3://") {
            SinkKind::Object(format)
        } else if url.starts_with("iceberg://") {
            SinkKind::Iceberg
        } else {
            SinkKind::File(format)
        }
    }

    /// Whether the sink writes files of `format` (a volume or a bucket).
    pub fn writes_files(&self) -> bool {
        use millpond_core::sink::SinkKind;
        matches!(self.kind(), SinkKind::File(_) | SinkKind::Object(_))
    }

    /// The schema's rules on the sink, for objects that did not pass the
    /// API server.
    fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: &str| Error::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        };
        let url = &self.url;
        let known = url.starts_with("file://")
            || url.starts_with("http://")
            || url.starts_with("https://")
            || url
                .strip_prefix("s3://")
                .is_some_and(|rest| bucket_name_ok(rest.split('/').next().unwrap_or_default()))
            || url.strip_prefix("iceberg://").is_some_and(iceberg_table_ok);
        if !known {
            return Err(invalid("sink.url", SINK_URL_RULE_MESSAGE));
        }
        if self.format == SinkFormat::Parquet && !self.writes_files() {
            return Err(invalid(
                "sink.format",
                "sink.format parquet needs a file:// or s3:// sink (HTTP sinks receive NDJSON)",
            ));
        }
        if let Some(s3) = &self.s3 {
            if !(url.starts_with("s3://") || url.starts_with("iceberg://")) {
                return Err(invalid("sink.s3", S3_RULE_MESSAGE));
            }
            s3.validate()?;
        }
        if self.iceberg.is_some() != url.starts_with("iceberg://") {
            return Err(invalid("sink.iceberg", ICEBERG_RULE_MESSAGE));
        }
        if let Some(iceberg) = &self.iceberg {
            iceberg.validate()?;
        }
        Ok(())
    }
}

/// An S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens,
/// starting and ending with a letter or digit.
fn bucket_name_ok(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// `namespace/table` of an iceberg:// URL, as the schema's rule accepts it.
fn iceberg_table_ok(rest: &str) -> bool {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let starts_well = |s: &str| s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    match rest.split_once('/') {
        Some((namespace, table)) => {
            starts_well(namespace)
                && namespace.chars().all(|c| name_char(c) || c == '.')
                && starts_well(table)
                && table.chars().all(name_char)
        }
        None => false,
    }
}

impl IcebergSpec {
    fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: &str| Error::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        };
        if let Some(uri) = &self.catalog_uri {
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                return Err(invalid(
                    "sink.iceberg.catalogUri",
                    "iceberg.catalogUri must be an http:// or https:// URL",
                ));
            }
        }
        if self.token_secret_ref.is_some() && self.credential_secret_ref.is_some() {
            return Err(invalid("sink.iceberg", TOKEN_OR_CREDENTIAL_MESSAGE));
        }
        if self.catalog_uri.is_some() == self.sql_uri_secret_ref.is_some() {
            return Err(invalid("sink.iceberg", ONE_CATALOG_MESSAGE));
        }
        let rest_only = self.token_secret_ref.is_some()
            || self.credential_secret_ref.is_some()
            || self.scope.is_some()
            || self.oauth2_server_uri.is_some();
        if self.sql_uri_secret_ref.is_some() && rest_only {
            return Err(invalid("sink.iceberg", REST_ONLY_MESSAGE));
        }
        Ok(())
    }
}

impl S3Spec {
    fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: &str| Error::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        };
        if self.access_key_id_secret_ref.is_some() != self.secret_access_key_secret_ref.is_some() {
            return Err(invalid(
                "sink.s3",
                "s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef go together",
            ));
        }
        if self.session_token_secret_ref.is_some() && self.access_key_id_secret_ref.is_none() {
            return Err(invalid(
                "sink.s3",
                "s3.sessionTokenSecretRef needs s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    "sink.s3.endpoint",
                    "s3.endpoint must be an http:// or https:// URL",
                ));
            }
        }
        Ok(())
    }
}

impl Default for HttpSinkSpec {
    fn default() -> Self {
        Self {
            timeout_ms: default_http_timeout_ms(),
            max_retries: None,
        }
    }
}

fn default_http_timeout_ms() -> i64 {
    30_000
}

/// Memory and CPU of each consumer pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// Memory budget of one pod, a Kubernetes quantity of bytes such as
    /// 256Mi, 1Gi or 500M, written as a string or as a number of bytes
    /// (268435456, or 1e9 unquoted in YAML). It is the pod's memory limit;
    /// librdkafka's prefetch bounds and the largest flush size are derived
    /// from it so that a pod holding every partition still fits. A spec that
    /// cannot fit is reported as Degraded (MemoryBudget).
    // Not nullable (kube marks optional int-or-string fields nullable): a
    // null is pruned and defaulted like a missing value, never stored.
    #[serde(default = "default_memory")]
    #[schemars(extend("minLength" = 1, "maxLength" = 64, "nullable" = false))]
    #[x_kube(validation = Rule::new(POSITIVE_BYTES).message("resources.memory must be a positive whole number of bytes, such as 256Mi"))]
    pub memory: Quantity,

    /// CPU request of one pod, a Kubernetes quantity such as 500m, or a
    /// number of cores (2). No CPU limit is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    #[x_kube(validation = Rule::new(
        "isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))"
    ).message("resources.cpu must be a positive quantity, such as 500m or 2"))]
    pub cpu: Option<Quantity>,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            cpu: None,
        }
    }
}

fn default_memory() -> Quantity {
    Quantity(DEFAULT_MEMORY.to_string())
}

/// Flush and in-flight limits the pods start with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Flush the buffer when it holds this many bytes, a quantity such as
    /// 8Mi, or a number of bytes (8388608). Default: derived from
    /// resources.memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_BYTES).message("limits.flushBytes must be a positive whole number of bytes, such as 8Mi"))]
    pub flush_bytes: Option<Quantity>,

    /// Flush buffered records at least this often, in milliseconds.
    #[serde(default = "default_flush_interval_ms")]
    #[schemars(range(min = 1))]
    pub flush_interval_ms: i64,

    /// Sink writes allowed at once; when all are busy the pod stops pulling
    /// from Kafka (backpressure).
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1))]
    pub max_in_flight: i32,

    /// Records pulled from librdkafka per loop turn while the buffer is
    /// empty; shrinks as the buffer fills, never below 10.
    #[serde(default = "default_consume_batch_size")]
    #[schemars(range(min = 10))]
    pub consume_batch_size: i32,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            flush_bytes: None,
            flush_interval_ms: default_flush_interval_ms(),
            max_in_flight: default_max_in_flight(),
            consume_batch_size: default_consume_batch_size(),
        }
    }
}

fn default_flush_interval_ms() -> i64 {
    5_000
}

fn default_max_in_flight() -> i32 {
    4
}

fn default_consume_batch_size() -> i32 {
    1_000
}

/// How the operator chooses the number of pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas").field_path(".minReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest pods, kept even when there is no lag.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,

    /// Most pods. The operator never runs more pods than the topic has
    /// partitions.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1))]
    pub max_replicas: i32,

    /// Scale so that the current backlog is drained within this many seconds
    /// while keeping up with the produce rate.
    #[serde(default = "default_target_drain_seconds")]
    #[schemars(range(min = 1))]
    pub target_drain_seconds: i32,

    /// Seconds a higher replica count must be wanted before scaling up (0:
    /// at once).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub scale_up_stabilization_seconds: i32,

    /// Seconds a lower replica count must be wanted without interruption
    /// before scaling down; scale-down also waits this long after a
    /// scale-up, and after a partition is first reported stuck.
    #[serde(default = "default_scale_down_stabilization_seconds")]
    #[schemars(range(min = 0))]
    pub scale_down_stabilization_seconds: i32,

    /// Most pods added by one decision. One exception: when no count within
    /// the step spreads the partitions better than now (10 partitions, from
    /// 5 pods), the decision goes on to the next count that does (10) if it
    /// lies within a second step.
    #[serde(default = "default_max_scale_up_step")]
    #[schemars(range(min = 1))]
    pub max_scale_up_step: i32,

    /// Most pods removed by one decision.
    #[serde(default = "default_max_scale_down_step")]
    #[schemars(range(min = 1))]
    pub max_scale_down_step: i32,

    /// Stop autoscaling: the operator keeps spec.replicas (as set by `kubectl
    /// scale`) and still reports lag and status.
    #[serde(default)]
    pub paused: bool,

    /// Metrics intervals a partition's committed offset may stand still,
    /// while assigned and lagging, before it is reported as stuck. Lag of
    /// stuck partitions does not drive scale-up by itself.
    #[serde(default = "default_stuck_intervals")]
    #[schemars(range(min = 1))]
    pub stuck_intervals: i32,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_drain_seconds: default_target_drain_seconds(),
            scale_up_stabilization_seconds: 0,
            scale_down_stabilization_seconds: default_scale_down_stabilization_seconds(),
            max_scale_up_step: default_max_scale_up_step(),
            max_scale_down_step: default_max_scale_down_step(),
            paused: false,
            stuck_intervals: default_stuck_intervals(),
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}

fn default_max_replicas() -> i32 {
    12
}

fn default_target_drain_seconds() -> i32 {
    300
}

fn default_scale_down_stabilization_seconds() -> i32 {
    300
}

fn default_max_scale_up_step() -> i32 {
    4
}

fn default_max_scale_down_step() -> i32 {
    1
}

fn default_stuck_intervals() -> i32 {
    3
}

/// Bounds within which the operator tunes flush size and in-flight writes.
/// Unset bounds are derived from resources.memory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(quantities_ordered("minFlushBytes", "maxFlushBytes")).message("autotune.minFlushBytes must not exceed maxFlushBytes").field_path(".minFlushBytes"))]
#[x_kube(validation = Rule::new("!has(self.minInFlight) || !has(self.maxInFlight) || self.minInFlight <= self.maxInFlight").message("autotune.minInFlight must not exceed maxInFlight").field_path(".minInFlight"))]
#[serde(rename_all = "camelCase")]
pub struct AutotuneSpec {
    /// Let the operator change flush size and in-flight writes of running
    /// pods. When false the pods keep spec.limits.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Smallest flush size the operator may choose, a quantity such as 1Mi,
    /// or a number of bytes (1048576).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_BYTES).message("autotune.minFlushBytes must be a positive whole number of bytes, such as 1Mi"))]
    pub min_flush_bytes: Option<Quantity>,

    /// Largest flush size the operator may choose, a quantity such as 32Mi,
    /// or a number of bytes (33554432); it never exceeds what
    /// resources.memory allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 1, "maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_BYTES).message("autotune.maxFlushBytes must be a positive whole number of bytes, such as 32Mi"))]
    pub max_flush_bytes: Option<Quantity>,

    /// Fewest sink writes in flight the operator may choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_in_flight: Option<i32>,

    /// Most sink writes in flight the operator may choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_in_flight: Option<i32>,
}

impl Default for AutotuneSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            min_flush_bytes: None,
            max_flush_bytes: None,
            min_in_flight: None,
            max_in_flight: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Additions to the consumer pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Consumer image. Default: the image the operator was released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// When the kubelet pulls the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Extra labels of the pods. The labels the operator selects pods by
    /// take precedence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Node labels a pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Service account of the pods (for example to read Secrets through a
    /// cloud identity). Default: the namespace's default service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,

    /// Priority class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,

    /// Extra environment variables of the consumer container. Variables the
    /// operator derives from this spec take precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Volumes of the pods (emptyDir or persistentVolumeClaim), each mounted
    /// into the consumer container at its mountPath. The container's root
    /// file system is read-only, so a file:// sink must write into the
    /// mountPath of a volume that is not readOnly or below it: sink.url
    /// file:///data/orders needs a volume with mountPath /data/orders or a
    /// parent such as /data. Without one the operator reports Degraded with
    /// reason SinkNotOnVolume and starts no pods. Names and mountPaths are
    /// unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_VOLUMES))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(v, self.exists_one(w, w.mountPath == v.mountPath))").message("volume mountPaths must be unique"),
    )]
    pub volumes: Vec<ConsumerVolume>,
}

/// When the kubelet pulls the image.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the image is missing on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl KafkaSpec {
    /// The consumer group: `groupId`, or `millpond-<topic>` when unset.
    pub fn group_id(&self) -> String {
        match &self.group_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => format!("millpond-{}", self.topic),
        }
    }
}

impl ResourcesSpec {
    /// The memory budget of one pod, in bytes.
    pub fn memory_bytes(&self) -> Result<u64> {
        parse_positive_bytes("resources.memory", &self.memory)
    }
}

impl LimitsSpec {
    /// The explicit flush size in bytes, `None` when it is to be derived from
    /// the memory budget.
    pub fn flush_bytes(&self) -> Result<Option<u64>> {
        self.flush_bytes
            .as_ref()
            .map(|q| parse_positive_bytes("limits.flushBytes", q))
            .transpose()
    }
}

impl AutotuneSpec {
    /// The explicit flush-size bounds in bytes, `None` where unset.
    pub fn flush_bytes_bounds(&self) -> Result<(Option<u64>, Option<u64>)> {
        let min = self
            .min_flush_bytes
            .as_ref()
            .map(|q| parse_positive_bytes("autotune.minFlushBytes", q))
            .transpose()?;
        let max = self
            .max_flush_bytes
            .as_ref()
            .map(|q| parse_positive_bytes("autotune.maxFlushBytes", q))
            .transpose()?;
        Ok((min, max))
    }
}

impl MillpondConsumerSpec {
    /// Repeats the API server's checks that matter to the operator: sizes,
    /// bounds that must be ordered, refused Kafka properties and the rules of
    /// spec.template.volumes. Objects stored under an older schema, or built
    /// in tests, go through the same rules. It also checks what the schema
    /// does not: a file:// sink must write onto a volume that is not
    /// readOnly ([`Error::SinkNotOnVolume`]). The first problem found is
    /// returned.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: &str| Error::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        };
        self.resources.memory_bytes()?;
        kafka_config::check(
            &self.kafka.config,
            self.kafka.sasl.is_some() || self.kafka.tls.is_some(),
        )?;
        self.sink.validate()?;
        volumes::check_volumes(&self.template.volumes)?;
        volumes::check_sink_on_volume(&self.sink.url, &self.template.volumes)?;

        let a = &self.autoscaling;
        if a.min_replicas < 1 {
            return Err(invalid("autoscaling.minReplicas", "must be at least 1"));
        }
        if a.min_replicas > a.max_replicas {
            return Err(invalid(
                "autoscaling.minReplicas",
                "autoscaling.minReplicas must not exceed maxReplicas",
            ));
        }

        let l = &self.limits;
        if l.max_in_flight < 1 {
            return Err(invalid("limits.maxInFlight", "must be at least 1"));
        }
        if l.flush_interval_ms < 1 {
            return Err(invalid("limits.flushIntervalMs", "must be at least 1"));
        }
        if l.consume_batch_size < 10 {
            return Err(invalid("limits.consumeBatchSize", "must be at least 10"));
        }
        let flush = l.flush_bytes()?;

        let t = &self.autotune;
        let (min_flush, max_flush) = t.flush_bytes_bounds()?;
        if let (Some(min), Some(max)) = (min_flush, max_flush) {
            if min > max {
                return Err(invalid(
                    "autotune.minFlushBytes",
                    "autotune.minFlushBytes must not exceed maxFlushBytes",
                ));
            }
        }
        if let Some(flush) = flush {
            if min_flush.is_some_and(|m| flush < m) || max_flush.is_some_and(|m| flush > m) {
                return Err(invalid(
                    "limits.flushBytes",
                    "limits.flushBytes must lie within autotune.minFlushBytes and autotune.maxFlushBytes",
                ));
            }
        }
        if let (Some(min), Some(max)) = (t.min_in_flight, t.max_in_flight) {
            if min > max {
                return Err(invalid(
                    "autotune.minInFlight",
                    "autotune.minInFlight must not exceed maxInFlight",
                ));
            }
        }
        if t.min_in_flight.is_some_and(|m| l.max_in_flight < m)
            || t.max_in_flight.is_some_and(|m| l.max_in_flight > m)
        {
            return Err(invalid(
                "limits.maxInFlight",
                "limits.maxInFlight must lie within autotune.minInFlight and autotune.maxInFlight",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MillpondConsumerSpec {
        serde_yaml::from_str(yaml).expect("spec parses")
    }

    const MINIMAL: &str = r#"
kafka:
  bootstrapServers: kafka:9092
  topic: orders
sink:
  url: file:///data/orders
template:
  volumes:
  - {name: data, mountPath: /data, emptyDir: {}}
"#;

    #[test]
    fn a_minimal_spec_gets_the_documented_defaults() {
        let s = spec(MINIMAL);
        assert_eq!(s.kafka.group_id(), "millpond-orders");
        assert_eq!(s.resources.memory_bytes(), Ok(256 << 20));
        assert_eq!(s.sink.format, SinkFormat::Ndjson);
        assert!(!s.sink.metadata);
        assert_eq!(s.limits, LimitsSpec::default());
        assert_eq!(s.limits.flush_bytes(), Ok(None));
        assert_eq!(
            (
                s.limits.flush_interval_ms,
                s.limits.max_in_flight,
                s.limits.consume_batch_size
            ),
            (5000, 4, 1000)
        );
        let a = &s.autoscaling;
        assert_eq!((a.min_replicas, a.max_replicas), (1, 12));
        assert_eq!(a.target_drain_seconds, 300);
        assert_eq!(
            (
                a.scale_up_stabilization_seconds,
                a.scale_down_stabilization_seconds
            ),
            (0, 300)
        );
        assert_eq!((a.max_scale_up_step, a.max_scale_down_step), (4, 1));
        assert_eq!(a.stuck_intervals, 3);
        assert!(!a.paused);
        assert!(s.autotune.enabled);
        assert_eq!(s.autotune.flush_bytes_bounds(), Ok((None, None)));
        assert_eq!(s.replicas, None);
        s.validate().unwrap();
    }

    /// Sizes written as YAML numbers, as Kubernetes' own quantities allow
    /// (`memory: 1e9` unquoted); each reads through the one parser of
    /// millpond-core. `Err`: refused, with a message containing the text.
    #[test]
    fn sizes_may_be_numbers_as_well_as_strings() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("268435456", Ok(256 << 20)),
            ("'268435456'", Ok(256 << 20)),
            ("1e9", Ok(1_000_000_000)),
            ("1.5e9", Ok(1_500_000_000)),
            ("1000000000.0", Ok(1_000_000_000)),
            ("+4096", Ok(4096)),
            (
                "1.5",
                Err("`1.5` is not a byte size: not a whole number of bytes"),
            ),
            (
                "-1",
                Err("`-1` is not a byte size: sizes cannot be negative"),
            ),
            ("0", Err("`0` is not a byte size: must be larger than zero")),
            ("1e19", Err("too large")),
        ];
        for (value, want) in cases {
            let yaml = format!(
                "{MINIMAL}resources: {{memory: {value}}}\nlimits: {{flushBytes: {value}}}\n\
                 autotune: {{minFlushBytes: {value}, maxFlushBytes: {value}}}\n"
            );
            let s = spec(&yaml);
            let got = [
                s.resources.memory_bytes(),
                s.limits.flush_bytes().map(Option::unwrap),
                s.autotune.flush_bytes_bounds().map(|b| b.0.unwrap()),
                s.autotune.flush_bytes_bounds().map(|b| b.1.unwrap()),
            ];
            for got in got {
                match (got, want) {
                    (Ok(got), Ok(want)) => assert_eq!(got, *want, "{value}"),
                    (Err(err), Err(reason)) => {
                        assert!(err.to_string().contains(reason), "{value}: {err}")
                    }
                    (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
                }
            }
            if want.is_ok() {
                s.validate().unwrap();
            }
        }
        let cpu = spec(&format!("{MINIMAL}resources: {{cpu: 2}}\n"));
        assert_eq!(cpu.resources.cpu, Some(Quantity("2".into())));

        // The API server stores and sends them as JSON integers.
        let from_api: MillpondConsumerSpec = serde_json::from_value(serde_json::json!({
            "kafka": {"bootstrapServers": "kafka:9092", "topic": "orders"},
            "sink": {"url": "http://sink/in"},
            "resources": {"memory": 1_000_000_000, "cpu": 2},
            "limits": {"flushBytes": 8_388_608},
        }))
        .expect("numbers from the API server read");
        assert_eq!(from_api.resources.memory_bytes(), Ok(1_000_000_000));
        assert_eq!(from_api.limits.flush_bytes(), Ok(Some(8 << 20)));
    }

    #[test]
    fn an_explicit_group_id_wins() {
        let s = spec(&MINIMAL.replace("topic: orders", "topic: orders\n  groupId: billing"));
        assert_eq!(s.kafka.group_id(), "billing");
    }

    #[test]
    fn the_example_is_valid() {
        let obj: MillpondConsumer =
            serde_yaml::from_str(include_str!("../../examples/millpondconsumer.yaml"))
                .expect("example parses");
        obj.spec.validate().unwrap();
        assert_eq!(obj.spec.resources.memory_bytes(), Ok(512 << 20));
        assert_eq!(
            obj.spec.autotune.flush_bytes_bounds(),
            Ok((Some(1 << 20), Some(32 << 20)))
        );
    }

    #[test]
    fn credentials_come_as_secret_references() {
        let s = spec(
            r#"
kafka:
  bootstrapServers: kafka:9093
  topic: orders
  sasl:
    mechanism: SCRAM-SHA-512
    usernameSecretRef: {name: kafka-user, key: username}
    passwordSecretRef: {name: kafka-user, key: password}
  tls:
    caSecretRef: {name: kafka-ca, key: ca.crt}
sink:
  url: https://ingest.example.com/orders
  http: {}
"#,
        );
        let sasl = s.kafka.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.password_secret_ref.key, "password");
        assert_eq!(s.sink.http, Some(HttpSinkSpec::default()));
        s.validate().unwrap();
    }

    /// The minimal spec with the sections of `extra` merged in, as refused by
    /// `validate`.
    fn refused(extra: &str) -> Error {
        let mut s = spec(MINIMAL);
        let patch: serde_yaml::Value = serde_yaml::from_str(extra).unwrap();
        let mut v = serde_yaml::to_value(&s).unwrap();
        for (k, val) in patch.as_mapping().unwrap() {
            let section = v
                .as_mapping_mut()
                .unwrap()
                .entry(k.clone())
                .or_insert(serde_yaml::Value::Mapping(Default::default()));
            for (kk, vv) in val.as_mapping().unwrap() {
                section
                    .as_mapping_mut()
                    .unwrap()
                    .insert(kk.clone(), vv.clone());
            }
        }
        s = serde_yaml::from_value(v).unwrap();
        s.validate().unwrap_err()
    }

    fn field(err: &Error) -> &str {
        match err {
            Error::Invalid { field, .. } | Error::Quantity { field, .. } => field,
            Error::KafkaConfig { .. } => "kafka.config",
            Error::SinkNotOnVolume { .. } => "sink.url (volume)",
        }
    }

    #[test]
    fn validate_repeats_the_api_servers_cross_field_rules() {
        let cases = [
            (
                "autoscaling: {minReplicas: 5, maxReplicas: 2}",
                "autoscaling.minReplicas",
            ),
            ("resources: {memory: -1Gi}", "resources.memory"),
            ("resources: {memory: 256m}", "resources.memory"),
            ("resources: {memory: 0}", "resources.memory"),
            ("resources: {memory: 1.5}", "resources.memory"),
            ("resources: {memory: -1e9}", "resources.memory"),
            ("limits: {flushBytes: '0'}", "limits.flushBytes"),
            ("limits: {flushBytes: 0}", "limits.flushBytes"),
            (
                "autotune: {minFlushBytes: 67108864, maxFlushBytes: 1Mi}",
                "autotune.minFlushBytes",
            ),
            ("limits: {maxInFlight: 0}", "limits.maxInFlight"),
            ("limits: {consumeBatchSize: 5}", "limits.consumeBatchSize"),
            (
                "autotune: {minFlushBytes: 64Mi, maxFlushBytes: 1Mi}",
                "autotune.minFlushBytes",
            ),
            (
                "autotune: {minInFlight: 9, maxInFlight: 8}",
                "autotune.minInFlight",
            ),
            ("autotune: {maxInFlight: 2}", "limits.maxInFlight"),
            (
                "{limits: {flushBytes: 64Mi}, autotune: {maxFlushBytes: 32Mi}}",
                "limits.flushBytes",
            ),
            ("sink: {url: 's3://Bucket_1/orders'}", "sink.url"),
            ("sink: {url: 's3://ab/orders'}", "sink.url"),
            ("sink: {url: 'http://x', s3: {region: eu-west-1}}", "sink.s3"),
            (
                "sink: {url: 's3://lake/o', s3: {accessKeyIdSecretRef: {name: a, key: b}}}",
                "sink.s3",
            ),
            (
                "sink: {url: 's3://lake/o', s3: {sessionTokenSecretRef: {name: a, key: b}}}",
                "sink.s3",
            ),
            (
                "sink: {url: 's3://lake/o', s3: {endpoint: 'store:9000'}}",
                "sink.s3.endpoint",
            ),
            ("sink: {url: 'file://data/orders'}", "sink.url"),
            ("sink: {url: 'file:///tmp/orders'}", "sink.url (volume)"),
            ("template: {volumes: []}", "sink.url (volume)"),
            (
                "template: {volumes: [{name: data, mountPath: /data, readOnly: true, emptyDir: {}}]}",
                "sink.url (volume)",
            ),
            (
                "template: {volumes: [{name: kafka-tls, mountPath: /data, emptyDir: {}}]}",
                "template.volumes[0].name",
            ),
            (
                "template: {volumes: [{name: data, mountPath: data, emptyDir: {}}]}",
                "template.volumes[0].mountPath",
            ),
            ("sink: {url: 'http://x', format: parquet}", "sink.format"),
            ("sink: {url: 'iceberg://analytics/orders'}", "sink.iceberg"),
            (
                "sink: {url: 'file:///data/orders', iceberg: {catalogUri: 'http://c'}}",
                "sink.iceberg",
            ),
            (
                "sink: {url: 'iceberg://analytics', iceberg: {catalogUri: 'http://c'}}",
                "sink.url",
            ),
            (
                "sink: {url: 'iceberg://analytics/orders', iceberg: {catalogUri: 'c:8181'}}",
                "sink.iceberg.catalogUri",
            ),
            (
                "sink: {url: 'iceberg://a/o', iceberg: {catalogUri: 'http://c', \
                 tokenSecretRef: {name: a, key: t}, credentialSecretRef: {name: a, key: c}}}",
                "sink.iceberg",
            ),
            ("sink: {url: 'iceberg://a/o', iceberg: {warehouse: w}}", "sink.iceberg"),
            (
                "sink: {url: 'iceberg://a/o', iceberg: {catalogUri: 'http://c', \
                 sqlUriSecretRef: {name: a, key: u}}}",
                "sink.iceberg",
            ),
            (
                "sink: {url: 'iceberg://a/o', iceberg: {sqlUriSecretRef: {name: a, key: u}, \
                 tokenSecretRef: {name: a, key: t}}}",
                "sink.iceberg",
            ),
            (
                "kafka: {config: {enable.auto.commit: 'true'}}",
                "kafka.config",
            ),
        ];
        for (extra, want) in cases {
            let err = refused(extra);
            assert_eq!(field(&err), want, "{extra}: {err}");
        }
    }

    #[test]
    fn an_s3_sink_with_parquet_and_credentials_passes() {
        let mut s = spec(MINIMAL);
        s.sink = serde_yaml::from_str(
            "{url: 's3://lake-1.raw/orders', format: parquet, s3: {region: eu-west-1, \
             accessKeyIdSecretRef: {name: c, key: id}, secretAccessKeySecretRef: {name: c, key: s}}}",
        )
        .unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn an_iceberg_sink_with_its_catalog_and_store_passes() {
        let mut s = spec(MINIMAL);
        s.sink = serde_yaml::from_str(
            "{url: 'iceberg://lake.raw/orders_v2', iceberg: {catalogUri: 'https://c/api', \
             warehouse: lake, tokenSecretRef: {name: c, key: t}}, s3: {region: eu-west-1}}",
        )
        .unwrap();
        s.validate().unwrap();
        s.sink = serde_yaml::from_str(
            "{url: 'iceberg://lake/orders', iceberg: {sqlUriSecretRef: {name: c, key: uri}, \
             warehouse: 's3://lake/warehouse', commitIntervalSeconds: 30}}",
        )
        .unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn refusals_carry_the_same_words_as_the_api_server() {
        let err = refused("autoscaling: {minReplicas: 5, maxReplicas: 2}");
        assert_eq!(
            err.to_string(),
            "autoscaling.minReplicas: autoscaling.minReplicas must not exceed maxReplicas"
        );
        let err = refused("sink: {url: 'ftp://host/dir'}");
        assert_eq!(
            err.to_string(),
            format!("sink.url: {SINK_URL_RULE_MESSAGE}")
        );
    }

    #[test]
    fn a_file_sink_off_the_volumes_has_its_own_degraded_reason() {
        let err = refused("template: {volumes: []}");
        assert_eq!(err.degraded_reason(), "SinkNotOnVolume");
        assert_eq!(err.metric_label(), "sink_not_on_volume");
        assert_eq!(
            err.to_string(),
            "sink.url file:///data/orders is not on a mounted volume: the pod's root file system \
             is read-only; add spec.template.volumes with a mountPath of /data/orders or a parent \
             (emptyDir or persistentVolumeClaim)"
        );
        let err = refused("autoscaling: {minReplicas: 5, maxReplicas: 2}");
        assert_eq!(err.degraded_reason(), "InvalidSpec");
        let http = MINIMAL.split("template:").next().unwrap();
        spec(&http.replace("file:///data/orders", "http://sink/in"))
            .validate()
            .expect("an HTTP sink needs no volume");
    }
}
