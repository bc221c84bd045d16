//! The consumer container's environment, rendered from the spec.
//!
//! See the module documentation of [`crate::desired`] for how credentials
//! reach librdkafka.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, ProjectedVolumeSource, SecretKeySelector,
    SecretProjection, Volume, VolumeMount, VolumeProjection,
};
use millpond_core::pod::env;
use millpond_core::sink::SinkKind;
use millpond_crds::{
    IcebergSpec, KafkaSpec, MillpondConsumer, MillpondConsumerSpec, S3Spec, SaslMechanism,
    SinkFormat,
};

use super::config_map::LIMIT_KEYS;
use super::ports::{ADMIN_PORT, METRICS_PORT};
use super::secret::ADMIN_TOKEN_KEY;
use super::{admin_secret_name, Error, Result};

/// Where the Secret keys of `kafka.tls` are mounted (the schema keeps
/// `spec.template.volumes` away from it).
pub const TLS_DIR: &str = millpond_crds::TLS_MOUNT_PATH;
/// Name of the TLS volume (refused as a `spec.template.volumes` name).
pub(super) const TLS_VOLUME: &str = millpond_crds::TLS_VOLUME_NAME;

const SASL_USERNAME_VAR: &str = "KAFKA_SASL_USERNAME";
const SASL_PASSWORD_VAR: &str = "KAFKA_SASL_PASSWORD";

/// A literal env value: the kubelet expands `$(VAR)` in `value`, and `$$`
/// stands for `$`, so every `$` is doubled. Values the operator copies from
/// the spec can then never refer to another variable (a credential).
fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

fn plain(name: &str, value: impl AsRef<str>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(literal(value.as_ref())),
        value_from: None,
    }
}

fn secret_ref(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn field_ref(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The environment the operator derives from the spec, in order: a `$(VAR)`
/// reference only expands to a variable defined before it.
/// `spec.template.env` is appended by [`consumer_env`].
fn derived_env(mpc: &MillpondConsumer, spec: &MillpondConsumerSpec) -> Result<Vec<EnvVar>> {
    let kafka = &spec.kafka;
    let sink = &spec.sink;
    let mut env = vec![
        field_ref("POD_IP", "status.podIP"),
        EnvVar {
            name: env::METRICS_ADDR.to_string(),
            // Every address: the operator scrapes the pod IP, and
            // `kubectl port-forward` connects to the pod's loopback.
            value: Some(format!("0.0.0.0:{METRICS_PORT}")),
            value_from: None,
        },
        plain(env::ADMIN_ADDR, format!("0.0.0.0:{ADMIN_PORT}")),
        plain(env::KAFKA_BOOTSTRAP_SERVERS, &kafka.bootstrap_servers),
        plain(env::KAFKA_TOPIC, &kafka.topic),
        plain(env::KAFKA_GROUP_ID, kafka.group_id()),
    ];
    if let Some(sasl) = &kafka.sasl {
        env.push(secret_ref(
            SASL_USERNAME_VAR,
            &sasl.username_secret_ref.name,
            &sasl.username_secret_ref.key,
        ));
        env.push(secret_ref(
            SASL_PASSWORD_VAR,
            &sasl.password_secret_ref.name,
            &sasl.password_secret_ref.key,
        ));
    }
    let config = kafka_config(spec)?;
    if !config.is_empty() {
        env.push(EnvVar {
            name: env::KAFKA_CONFIG.to_string(),
            value: Some(config),
            value_from: None,
        });
    }
    env.push(plain(env::SINK_URL, sink_url(spec)?));
    env.push(plain(env::SINK_METADATA, sink.metadata.to_string()));
    if let Some(topic) = &sink.dead_letter_topic {
        env.push(plain(env::DEAD_LETTER_TOPIC, topic));
    }
    if let Some(seconds) = sink.give_up_after_seconds.filter(|s| *s > 0) {
        let ms = seconds.saturating_mul(1000).to_string();
        env.push(plain(env::SINK_GIVE_UP_AFTER_MS, ms));
    }
    if !matches!(sink.kind(), SinkKind::File(_)) {
        // Requests: the HTTP sink's, the object store's, the catalog's.
        let http = sink.http.clone().unwrap_or_default();
        env.push(plain(env::HTTP_TIMEOUT_MS, http.timeout_ms.to_string()));
    }
    if let Some(s3) = &sink.s3 {
        env.extend(s3_env(s3));
    }
    if let Some(iceberg) = &sink.iceberg {
        env.extend(iceberg_env(iceberg));
    }
    env.push(plain(env::MEMORY_BUDGET, &spec.resources.memory.0));
    env.push(secret_ref(
        env::ADMIN_TOKEN,
        &admin_secret_name(mpc),
        ADMIN_TOKEN_KEY,
    ));
    Ok(env)
}

/// The consumer container's `env`: what the operator derives from the spec,
/// then `spec.template.env` without the variables the operator sets itself
/// (derived ones and the limits of the `<name>-limits` ConfigMap, which a
/// plain `env` entry would shadow).
pub(super) fn consumer_env(mpc: &MillpondConsumer) -> Result<Vec<EnvVar>> {
    let spec = &mpc.spec;
    let mut env = derived_env(mpc, spec)?;
    let reserved = reserved_names(&env);
    env.extend(
        spec.template
            .env
            .iter()
            .filter(|e| !reserved.contains(&e.name))
            .cloned(),
    );
    Ok(env)
}

fn reserved_names(derived: &[EnvVar]) -> BTreeSet<String> {
    derived
        .iter()
        .map(|e| e.name.clone())
        .chain(LIMIT_KEYS.iter().map(|k| k.to_string()))
        .collect()
}

/// Names in `spec.template.env` that the operator ignores because it sets
/// them itself; the reconciler may report them in an Event.
pub fn overridden_env(mpc: &MillpondConsumer) -> Result<Vec<String>> {
    let derived = derived_env(mpc, &mpc.spec)?;
    let reserved = reserved_names(&derived);
    Ok(mpc
        .spec
        .template
        .env
        .iter()
        .filter(|e| reserved.contains(&e.name))
        .map(|e| e.name.clone())
        .collect())
}

/// The standard `AWS_*` variables the object storage client reads, from
/// `sink.s3`; credentials as references to their Secrets.
fn s3_env(s3: &S3Spec) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(region) = &s3.region {
        env.push(plain("AWS_REGION", region));
    }
    if let Some(endpoint) = &s3.endpoint {
        env.push(plain("AWS_ENDPOINT", endpoint));
        env.push(plain(
            "AWS_ALLOW_HTTP",
            endpoint.starts_with("http://").to_string(),
        ));
    }
    env.push(plain(
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
        s3.virtual_hosted_style.to_string(),
    ));
    let secrets = [
        ("AWS_ACCESS_KEY_ID", &s3.access_key_id_secret_ref),
        ("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key_secret_ref),
        ("AWS_SESSION_TOKEN", &s3.session_token_secret_ref),
    ];
    for (name, reference) in secrets {
        if let Some(r) = reference {
            env.push(secret_ref(name, &r.name, &r.key));
        }
    }
    env
}

/// The catalog of an iceberg:// sink; its token or client credentials as
/// references to their Secrets.
fn iceberg_env(iceberg: &IcebergSpec) -> Vec<EnvVar> {
    let mut env = vec![
        plain(env::ICEBERG_AUTO_CREATE, iceberg.auto_create.to_string()),
        plain(
            env::ICEBERG_EVOLVE_SCHEMA,
            iceberg.evolve_schema.to_string(),
        ),
        plain(
            env::ICEBERG_COMMIT_INTERVAL_SECONDS,
            iceberg.commit_interval_seconds.unwrap_or(0).to_string(),
        ),
    ];
    let optional = [
        (env::ICEBERG_CATALOG_URI, &iceberg.catalog_uri),
        (env::ICEBERG_WAREHOUSE, &iceberg.warehouse),
        (env::ICEBERG_CATALOG_SCOPE, &iceberg.scope),
        (env::ICEBERG_OAUTH2_SERVER_URI, &iceberg.oauth2_server_uri),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            env.push(plain(name, value));
        }
    }
    let secrets = [
        (env::ICEBERG_CATALOG_URI, &iceberg.sql_uri_secret_ref),
        (env::ICEBERG_CATALOG_TOKEN, &iceberg.token_secret_ref),
        (
            env::ICEBERG_CATALOG_CREDENTIAL,
            &iceberg.credential_secret_ref,
        ),
    ];
    for (name, reference) in secrets {
        if let Some(r) = reference {
            env.push(secret_ref(name, &r.name, &r.key));
        }
    }
    env
}

/// `SINK_URL`: the spec's URL; a file or object storage sink gets its
/// format as `?format=`.
fn sink_url(spec: &MillpondConsumerSpec) -> Result<String> {
    let url = &spec.sink.url;
    if !spec.sink.writes_files() {
        return Ok(url.clone());
    }
    if url.contains('?') || url.contains('#') {
        return Err(Error::Invalid {
            field: "sink.url".to_string(),
            message: format!(
                "`{url}`: a file or s3 sink takes no query or fragment; set the file format with sink.format"
            ),
        });
    }
    let format = match spec.sink.format {
        SinkFormat::Ndjson => "ndjson",
        SinkFormat::Parquet => "parquet",
    };
    Ok(format!("{url}?format={format}"))
}

/// `KAFKA_CONFIG`: `kafka.config`, then the properties derived from
/// `kafka.sasl` and `kafka.tls`, as `key=value` joined by commas, sorted by
/// key. The spec's values are escaped ([`literal`]); the derived SASL
/// properties are `$(VAR)` references to the Secret-backed variables.
pub(super) fn kafka_config(spec: &MillpondConsumerSpec) -> Result<String> {
    let kafka = &spec.kafka;
    let mut props = BTreeMap::new();
    for (key, value) in &kafka.config {
        let field = || format!("kafka.config.{key}");
        if key.trim().is_empty() || key.contains(['=', ',', '\n', '\r', '#']) {
            return Err(Error::Invalid {
                field: field(),
                message: "a librdkafka property name cannot be empty or contain '=', ',', '#' or a line break".to_string(),
            });
        }
        if value.contains([',', '\n', '\r']) {
            return Err(Error::Invalid {
                field: field(),
                message: "the value contains a comma or a line break, which the consumer reads as the end \
                          of the property (KAFKA_CONFIG separates properties by commas and newlines); \
                          remove it"
                    .to_string(),
            });
        }
        props.insert(key.trim().to_string(), literal(value.trim()));
    }

    props.extend(
        security_settings(kafka)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    if kafka.sasl.is_some() {
        props.insert(
            "sasl.username".to_string(),
            format!("$({SASL_USERNAME_VAR})"),
        );
        props.insert(
            "sasl.password".to_string(),
            format!("$({SASL_PASSWORD_VAR})"),
        );
    }
    for (property, file, _) in tls_files(spec) {
        props.insert(property.to_string(), format!("{TLS_DIR}/{file}"));
    }
    Ok(props
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// librdkafka's `security.protocol` and `sasl.mechanism` for `kafka.sasl`
/// and `kafka.tls` (the credentials themselves are not among them).
pub(crate) fn security_settings(kafka: &KafkaSpec) -> Vec<(&'static str, &'static str)> {
    let protocol = match (&kafka.sasl, &kafka.tls) {
        (Some(_), Some(_)) => Some("SASL_SSL"),
        (Some(_), None) => Some("SASL_PLAINTEXT"),
        (None, Some(_)) => Some("SSL"),
        (None, None) => None,
    };
    let mechanism = kafka.sasl.as_ref().map(|sasl| match sasl.mechanism {
        SaslMechanism::Plain => "PLAIN",
        SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
        SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
    });
    [
        ("security.protocol", protocol),
        ("sasl.mechanism", mechanism),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// `(librdkafka property, file name under TLS_DIR, Secret key)` of each TLS
/// Secret reference in the spec.
fn tls_files(
    spec: &MillpondConsumerSpec,
) -> Vec<(&'static str, &'static str, &millpond_crds::SecretKeyRef)> {
    let Some(tls) = &spec.kafka.tls else {
        return Vec::new();
    };
    [
        ("ssl.ca.location", "ca.crt", &tls.ca_secret_ref),
        ("ssl.certificate.location", "tls.crt", &tls.cert_secret_ref),
        ("ssl.key.location", "tls.key", &tls.key_secret_ref),
    ]
    .into_iter()
    .filter_map(|(property, file, r)| r.as_ref().map(|r| (property, file, r)))
    .collect()
}

/// The read-only volume holding the TLS Secret keys, and its mount; `None`
/// without TLS material in the spec.
pub(super) fn tls_volume(spec: &MillpondConsumerSpec) -> Option<(Volume, VolumeMount)> {
    let files = tls_files(spec);
    if files.is_empty() {
        return None;
    }
    let sources = files
        .into_iter()
        .map(|(_, file, r)| VolumeProjection {
            secret: Some(SecretProjection {
                name: r.name.clone(),
                items: Some(vec![KeyToPath {
                    key: r.key.clone(),
                    path: file.to_string(),
                    mode: None,
                }]),
                optional: Some(false),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    let volume = Volume {
        name: TLS_VOLUME.to_string(),
        projected: Some(ProjectedVolumeSource {
            // Owner and group read: the pod's fsGroup owns the files.
            default_mode: Some(0o440),
            sources: Some(sources),
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: TLS_VOLUME.to_string(),
        mount_path: TLS_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    Some((volume, mount))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use super::super::{deployment, Error};
    use super::*;

    /// Kubernetes' `$(VAR)` expansion of `env` values, as the kubelet does it
    /// when it starts a container: each value sees the variables before it.
    fn expand_env(
        env: &[EnvVar],
        secrets: &BTreeMap<(&str, &str), &str>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for var in env {
            let value = match (&var.value, &var.value_from) {
                (Some(v), None) => expand(v, &out),
                (None, Some(from)) => match (&from.secret_key_ref, &from.field_ref) {
                    (Some(s), None) => secrets[&(s.name.as_str(), s.key.as_str())].to_string(),
                    (None, Some(_)) => "10.0.0.7".to_string(),
                    other => panic!("{}: unexpected reference {other:?}", var.name),
                },
                other => panic!("{}: unexpected {other:?}", var.name),
            };
            out.insert(var.name.clone(), value);
        }
        out
    }

    fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        let mut rest = input;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(after) = rest.strip_prefix("$$") {
                out.push('$');
                rest = after;
            } else if let Some((name, after)) = rest
                .strip_prefix("$(")
                .and_then(|r| r.split_once(')'))
                .filter(|(name, _)| vars.contains_key(*name))
            {
                out.push_str(&vars[name]);
                rest = after;
            } else {
                out.push('$');
                rest = &rest[1..];
            }
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn a_minimal_consumer_gets_its_kafka_sink_and_budget_settings() {
        let d = deployment(&valid(&mpc(MINIMAL)), &ctx(), 1).unwrap();
        let c = container(&d);
        assert_eq!(
            env_value(c, "KAFKA_BOOTSTRAP_SERVERS"),
            "kafka-0.kafka:9092,kafka-1.kafka:9092"
        );
        assert_eq!(env_value(c, "KAFKA_TOPIC"), "orders");
        assert_eq!(env_value(c, "KAFKA_GROUP_ID"), "millpond-orders");
        assert_eq!(
            env_value(c, "SINK_URL"),
            "file:///data/orders?format=ndjson"
        );
        assert_eq!(env_value(c, "SINK_METADATA"), "false");
        assert_eq!(env_value(c, "MEMORY_BUDGET"), "256Mi");
        assert_eq!(env_value(c, "METRICS_ADDR"), "0.0.0.0:9090");
        let pod_ip = env_var(c, "POD_IP").unwrap();
        assert_eq!(
            pod_ip
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "status.podIP"
        );
        for absent in [
            "KAFKA_CONFIG",
            "DEAD_LETTER_TOPIC",
            "HTTP_TIMEOUT_MS",
            "KAFKA_SASL_PASSWORD",
        ] {
            assert!(env_var(c, absent).is_none(), "{absent} is set");
        }
        // Limits come from the ConfigMap only.
        for key in LIMIT_KEYS {
            assert!(env_var(c, key).is_none(), "{key} is in env");
        }
    }

    #[test]
    fn a_full_consumer_renders_every_setting() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let c = container(&d);
        assert_eq!(env_value(c, "KAFKA_GROUP_ID"), "billing");
        assert_eq!(
            env_value(c, "SINK_URL"),
            "https://ingest.example.com/orders"
        );
        assert_eq!(env_value(c, "SINK_METADATA"), "true");
        assert_eq!(env_value(c, "DEAD_LETTER_TOPIC"), "orders-dlq");
        assert_eq!(env_value(c, "HTTP_TIMEOUT_MS"), "10000");
        assert_eq!(env_value(c, "SINK_GIVE_UP_AFTER_MS"), "600000");
        assert_eq!(env_value(c, "MEMORY_BUDGET"), "512Mi");
        assert_eq!(
            env_value(c, "KAFKA_CONFIG"),
            "auto.offset.reset=earliest,fetch.min.bytes=1,\
             sasl.mechanism=SCRAM-SHA-512,sasl.password=$(KAFKA_SASL_PASSWORD),\
             sasl.username=$(KAFKA_SASL_USERNAME),security.protocol=SASL_SSL,\
             ssl.ca.location=/etc/millpond/kafka-tls/ca.crt,\
             ssl.certificate.location=/etc/millpond/kafka-tls/tls.crt,\
             ssl.key.location=/etc/millpond/kafka-tls/tls.key"
        );
    }

    #[test]
    fn an_http_sink_without_settings_gets_the_documented_defaults() {
        let m = edit(MINIMAL, "file:///data/orders", "http://sink:8080/in");
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        let c = container(&d);
        assert_eq!(env_value(c, "SINK_URL"), "http://sink:8080/in");
        assert_eq!(env_value(c, "HTTP_TIMEOUT_MS"), "30000");
        // Without giveUpAfterSeconds the pod retries without end.
        assert!(env_var(c, "SINK_GIVE_UP_AFTER_MS").is_none());
    }

    #[test]
    fn a_parquet_file_sink_names_its_format_in_the_url() {
        let m = edit(
            MINIMAL,
            "url: file:///data/orders",
            "url: file:///data/orders\n    format: parquet",
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        assert_eq!(
            env_value(container(&d), "SINK_URL"),
            "file:///data/orders?format=parquet"
        );
    }

    #[test]
    fn an_s3_sink_gets_its_format_region_endpoint_and_secret_references() {
        let m = edit(
            MINIMAL,
            "url: file:///data/orders",
            "url: s3://lake/raw/orders\n    format: parquet\n    s3:\n      \
             region: eu-west-1\n      endpoint: http://store.storage:9000\n      \
             accessKeyIdSecretRef: {name: lake-creds, key: id}\n      \
             secretAccessKeySecretRef: {name: lake-creds, key: secret}",
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        let c = container(&d);
        assert_eq!(
            env_value(c, "SINK_URL"),
            "s3://lake/raw/orders?format=parquet"
        );
        assert_eq!(env_value(c, "AWS_REGION"), "eu-west-1");
        assert_eq!(env_value(c, "AWS_ENDPOINT"), "http://store.storage:9000");
        assert_eq!(env_value(c, "AWS_ALLOW_HTTP"), "true");
        assert_eq!(env_value(c, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST"), "false");
        assert_eq!(env_value(c, "HTTP_TIMEOUT_MS"), "30000");
        assert_eq!(secret_of(c, "AWS_ACCESS_KEY_ID"), ("lake-creds", "id"));
        assert_eq!(
            secret_of(c, "AWS_SECRET_ACCESS_KEY"),
            ("lake-creds", "secret")
        );
        assert!(env_var(c, "AWS_SESSION_TOKEN").is_none());
    }

    #[test]
    fn an_iceberg_sink_gets_its_catalog_and_secret_references() {
        let m = edit(
            MINIMAL,
            "url: file:///data/orders",
            "url: iceberg://analytics/orders\n    iceberg:\n      \
             catalogUri: http://catalog.lake:8181\n      warehouse: lake\n      \
             credentialSecretRef: {name: catalog, key: credential}\n      \
             scope: PRINCIPAL_ROLE:ALL\n      evolveSchema: true\n    s3:\n      region: eu-west-1",
        );
        let c = container(&deployment(&valid(&m), &ctx(), 1).unwrap()).clone();
        assert_eq!(env_value(&c, "SINK_URL"), "iceberg://analytics/orders");
        assert_eq!(
            env_value(&c, "ICEBERG_CATALOG_URI"),
            "http://catalog.lake:8181"
        );
        assert_eq!(env_value(&c, "ICEBERG_WAREHOUSE"), "lake");
        assert_eq!(env_value(&c, "ICEBERG_AUTO_CREATE"), "false");
        assert_eq!(env_value(&c, "ICEBERG_EVOLVE_SCHEMA"), "true");
        assert_eq!(env_value(&c, "ICEBERG_CATALOG_SCOPE"), "PRINCIPAL_ROLE:ALL");
        assert_eq!(
            secret_of(&c, "ICEBERG_CATALOG_CREDENTIAL"),
            ("catalog", "credential")
        );
        assert!(env_var(&c, "ICEBERG_CATALOG_TOKEN").is_none());
        assert_eq!(env_value(&c, "AWS_REGION"), "eu-west-1");
    }

    #[test]
    fn a_sql_catalog_reaches_the_pod_only_through_its_secret() {
        let m = edit(
            MINIMAL,
            "url: file:///data/orders",
            "url: iceberg://analytics/orders\n    iceberg:\n      \
             sqlUriSecretRef: {name: catalog-db, key: uri}\n      \
             warehouse: s3://lake/warehouse\n      commitIntervalSeconds: 30",
        );
        let c = container(&deployment(&valid(&m), &ctx(), 1).unwrap()).clone();
        assert_eq!(secret_of(&c, "ICEBERG_CATALOG_URI"), ("catalog-db", "uri"));
        assert_eq!(env_value(&c, "ICEBERG_WAREHOUSE"), "s3://lake/warehouse");
        assert_eq!(env_value(&c, "ICEBERG_COMMIT_INTERVAL_SECONDS"), "30");
    }

    #[test]
    fn an_s3_sink_without_settings_leaves_region_and_credentials_to_the_pod() {
        let m = edit(MINIMAL, "file:///data/orders", "s3://lake/orders");
        let c = container(&deployment(&valid(&m), &ctx(), 1).unwrap()).clone();
        assert_eq!(env_value(&c, "SINK_URL"), "s3://lake/orders?format=ndjson");
        for absent in ["AWS_REGION", "AWS_ENDPOINT", "AWS_ACCESS_KEY_ID"] {
            assert!(env_var(&c, absent).is_none(), "{absent} is set");
        }
    }

    #[test]
    fn credentials_reach_the_pod_only_through_secret_references() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let c = container(&d);
        assert_eq!(
            secret_of(c, "KAFKA_SASL_USERNAME"),
            ("kafka-user", "username")
        );
        assert_eq!(
            secret_of(c, "KAFKA_SASL_PASSWORD"),
            ("kafka-user", "password")
        );
        assert_eq!(secret_of(c, "ADMIN_TOKEN"), ("orders-admin", "token"));

        // The references are defined before KAFKA_CONFIG uses them.
        let position = |name: &str| {
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .position(|e| e.name == name)
                .unwrap()
        };
        assert!(position("KAFKA_SASL_USERNAME") < position("KAFKA_CONFIG"));
        assert!(position("KAFKA_SASL_PASSWORD") < position("KAFKA_CONFIG"));
        assert!(position("POD_IP") < position("METRICS_ADDR"));

        // TLS material is mounted from its Secrets, never copied.
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let volume = &pod.volumes.as_ref().unwrap()[0];
        let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
        let mounted: Vec<_> = sources
            .iter()
            .map(|s| {
                let s = s.secret.as_ref().unwrap();
                let item = &s.items.as_ref().unwrap()[0];
                (s.name.as_str(), item.key.as_str(), item.path.as_str())
            })
            .collect();
        assert_eq!(
            mounted,
            [
                ("kafka-ca", "ca.crt", "ca.crt"),
                ("kafka-client", "tls.crt", "tls.crt"),
                ("kafka-client", "tls.key", "tls.key"),
            ]
        );
        let mount = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, TLS_DIR);
        assert_eq!(mount.read_only, Some(true));
    }

    #[test]
    fn the_kubelet_expands_credentials_into_kafka_config_and_nothing_else() {
        // A spec value that tries to read the password through `$(...)`.
        let m = edit(
            FULL,
            "fetch.min.bytes: \"1\"",
            "fetch.min.bytes: \"1\"\n      client.id: $(KAFKA_SASL_PASSWORD)",
        );
        let d = deployment(&valid(&m), &ctx(), 1).unwrap();
        let secrets = BTreeMap::from([
            (("kafka-user", "username"), "svc-orders"),
            (("kafka-user", "password"), "pa$$w(o)rd"),
            (("orders-admin", "token"), TOKEN),
        ]);
        let env = expand_env(container(&d).env.as_ref().unwrap(), &secrets);
        let config = &env["KAFKA_CONFIG"];
        assert!(config.contains("sasl.username=svc-orders,"), "{config}");
        assert!(config.contains("sasl.password=pa$$w(o)rd,"), "{config}");
        assert!(
            config.contains("client.id=$(KAFKA_SASL_PASSWORD),"),
            "{config}"
        );
        assert_eq!(env["METRICS_ADDR"], "0.0.0.0:9090");
        assert_eq!(env["ADMIN_ADDR"], "0.0.0.0:9091");
        assert_eq!(env["ADMIN_TOKEN"], TOKEN);
    }

    #[test]
    fn tls_alone_speaks_ssl_and_sasl_alone_speaks_sasl_plaintext() {
        let tls_only = edit(
            MINIMAL,
            "topic: orders",
            "topic: orders\n    tls: {caSecretRef: {name: ca, key: ca.crt}}",
        );
        assert_eq!(
            kafka_config(&tls_only.spec).unwrap(),
            "security.protocol=SSL,ssl.ca.location=/etc/millpond/kafka-tls/ca.crt"
        );
        let empty_tls = edit(MINIMAL, "topic: orders", "topic: orders\n    tls: {}");
        assert_eq!(
            kafka_config(&empty_tls.spec).unwrap(),
            "security.protocol=SSL"
        );
        assert!(tls_volume(&empty_tls.spec).is_none());

        let sasl_only = edit(
            MINIMAL,
            "topic: orders",
            "topic: orders\n    sasl: {mechanism: PLAIN, usernameSecretRef: {name: u, key: user}, passwordSecretRef: {name: u, key: pass}}",
        );
        assert_eq!(
            kafka_config(&sasl_only.spec).unwrap(),
            "sasl.mechanism=PLAIN,sasl.password=$(KAFKA_SASL_PASSWORD),\
             sasl.username=$(KAFKA_SASL_USERNAME),security.protocol=SASL_PLAINTEXT"
        );
    }

    #[test]
    fn a_config_value_the_consumer_would_split_is_refused_with_the_reason() {
        let m = edit(
            MINIMAL,
            "topic: orders",
            "topic: orders\n    config: {debug: 'consumer,cgrp'}",
        );
        let err = deployment(&valid(&m), &ctx(), 1).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "kafka.config.debug"),
            "{err:?}"
        );
        assert!(err.to_string().contains("comma"), "{err}");
    }

    #[test]
    fn a_file_sink_url_with_a_query_is_refused() {
        let m = edit(
            MINIMAL,
            "file:///data/orders",
            "file:///data/orders?format=x",
        );
        let err = deployment(&valid(&m), &ctx(), 1).unwrap_err();
        assert!(err.to_string().starts_with("sink.url: "), "{err}");
        assert!(err.to_string().contains("sink.format"), "{err}");
    }

    #[test]
    fn template_env_is_appended_but_cannot_override_the_operators_variables() {
        let d = deployment(&valid(&mpc(FULL)), &ctx(), 1).unwrap();
        let c = container(&d);
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.last().unwrap().name, "RUST_LOG");
        assert_eq!(env_value(c, "RUST_LOG"), "debug");
        assert_eq!(env_value(c, "KAFKA_TOPIC"), "orders");
        assert!(env_var(c, "FLUSH_BYTES").is_none());
        assert_eq!(
            overridden_env(&mpc(FULL)).unwrap(),
            ["FLUSH_BYTES", "KAFKA_TOPIC"]
        );
        assert!(overridden_env(&mpc(MINIMAL)).unwrap().is_empty());
    }

    #[test]
    fn literal_values_escape_dollars() {
        assert_eq!(literal("a$b$(C)"), "a$$b$$(C)");
        let vars = BTreeMap::from([("C".to_string(), "secret".to_string())]);
        assert_eq!(expand(&literal("a$b$(C)"), &vars), "a$b$(C)");
    }
}
