//! The sink: its URL, its object store and Iceberg catalog settings, its
//! format.

use serde_json::json;

use crate::support::*;
use crate::*;

/// The API server's refusal of a sink.url no sink understands.
const SINK_URL_REFUSED: &str = "spec.sink.url: Invalid value: \"string\": sink.url must be \
    file://dir, http(s)://host/path, s3://bucket/prefix (bucket names are 3-63 lower-case \
    letters, digits, dots and hyphens) or iceberg://namespace/table";

/// The API server's refusal of an Iceberg sink without exactly one catalog.
const ONE_CATALOG: &str = "spec.sink.iceberg: Invalid value: \"object\": sink.iceberg needs one \
    catalog: catalogUri (REST) or sqlUriSecretRef (SQL)";

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_s3_parquet_sink_with_keys_from_secrets_is_accepted() {
    let s = Scenario::without_operator("s3-parquet").await;
    let secret = |key: &str| json!({"name": "lake", "key": key});
    accepted(
        &s,
        "s3-parquet",
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "s3://lake-1/raw/orders",
                "format": "parquet",
                "s3": {
                    "region": "eu-west-1",
                    "endpoint": "http://store.storage:9000",
                    "accessKeyIdSecretRef": secret("id"),
                    "secretAccessKeySecretRef": secret("secret"),
                    "sessionTokenSecretRef": secret("token"),
                },
            },
        }),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_sink_through_a_rest_catalog_is_accepted() {
    let s = Scenario::without_operator("iceberg-rest").await;
    accepted(
        &s,
        "iceberg-rest",
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics.raw/orders",
                "iceberg": {
                    "catalogUri": "https://catalog.example.com/api/catalog",
                    "warehouse": "lake",
                    "credentialSecretRef": {"name": "catalog", "key": "credential"},
                    "scope": "PRINCIPAL_ROLE:ALL",
                },
                "s3": {"region": "eu-west-1"},
            },
        }),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_negative_give_up_after_seconds_is_refused() {
    let s = Scenario::without_operator("give-up").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "http://ingest.example.com/orders", "giveUpAfterSeconds": -1},
        }),
        &["spec.sink.giveUpAfterSeconds: Invalid value: -1: spec.sink.giveUpAfterSeconds in body should be greater than or equal to 0"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_unknown_sink_scheme_is_refused() {
    let s = Scenario::without_operator("ftp").await;
    refused(
        &s,
        json!({"kafka": kafka_orders(), "sink": {"url": "ftp://host/orders"}}),
        &[SINK_URL_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_s3_bucket_name_s3_does_not_allow_is_refused() {
    let s = Scenario::without_operator("bucket").await;
    refused(
        &s,
        json!({"kafka": kafka_orders(), "sink": {"url": "s3://Orders_Lake/raw"}}),
        &[SINK_URL_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn s3_settings_on_an_http_sink_are_refused() {
    let s = Scenario::without_operator("s3-on-http").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "http://ingest:8080/orders", "s3": {"region": "eu-west-1"}},
        }),
        &["spec.sink: Invalid value: \"object\": sink.s3 applies to an s3:// or iceberg:// sink.url only"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_s3_access_key_without_its_secret_is_refused() {
    let s = Scenario::without_operator("s3-key").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "s3://lake/orders",
                "s3": {"accessKeyIdSecretRef": {"name": "lake", "key": "id"}},
            },
        }),
        &["spec.sink.s3: Invalid value: \"object\": s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef go together"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_s3_endpoint_without_a_scheme_is_refused() {
    let s = Scenario::without_operator("s3-endpoint").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "s3://lake/orders", "s3": {"endpoint": "store:9000"}},
        }),
        &["spec.sink.s3.endpoint: Invalid value: \"string\": s3.endpoint must be an http:// or https:// URL"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_sink_without_its_catalog_is_refused() {
    let s = Scenario::without_operator("iceberg-no-catalog").await;
    refused(
        &s,
        json!({"kafka": kafka_orders(), "sink": {"url": "iceberg://analytics/orders"}}),
        &["spec.sink: Invalid value: \"object\": an iceberg:// sink.url needs sink.iceberg (its catalog), and sink.iceberg applies to it only"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_url_without_a_table_is_refused() {
    let s = Scenario::without_operator("iceberg-no-table").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics",
                "iceberg": {"catalogUri": "http://catalog:8181"},
            },
        }),
        &[SINK_URL_REFUSED],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_catalog_with_both_a_token_and_client_credentials_is_refused() {
    let s = Scenario::without_operator("iceberg-two-credentials").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics/orders",
                "iceberg": {
                    "catalogUri": "http://catalog:8181",
                    "tokenSecretRef": {"name": "catalog", "key": "token"},
                    "credentialSecretRef": {"name": "catalog", "key": "credential"},
                },
            },
        }),
        &["spec.sink.iceberg: Invalid value: \"object\": iceberg.tokenSecretRef and iceberg.credentialSecretRef are alternatives: set one"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_sink_with_both_a_rest_and_a_sql_catalog_is_refused() {
    let s = Scenario::without_operator("iceberg-two-catalogs").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics/orders",
                "iceberg": {
                    "catalogUri": "http://catalog:8181",
                    "sqlUriSecretRef": {"name": "catalog-db", "key": "uri"},
                },
            },
        }),
        &[ONE_CATALOG],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_sink_with_neither_catalog_is_refused() {
    let s = Scenario::without_operator("iceberg-neither-catalog").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "iceberg://analytics/orders", "iceberg": {"warehouse": "lake"}},
        }),
        &[ONE_CATALOG],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_sql_catalog_with_rest_credentials_is_refused() {
    let s = Scenario::without_operator("sql-catalog-token").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics/orders",
                "iceberg": {
                    "sqlUriSecretRef": {"name": "catalog-db", "key": "uri"},
                    "tokenSecretRef": {"name": "catalog", "key": "token"},
                },
            },
        }),
        &["spec.sink.iceberg: Invalid value: \"object\": iceberg.tokenSecretRef, credentialSecretRef, scope and oauth2ServerUri apply to a REST catalog (catalogUri) only"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_iceberg_commit_interval_over_an_hour_is_refused() {
    let s = Scenario::without_operator("commit-interval").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {
                "url": "iceberg://analytics/orders",
                "iceberg": {"catalogUri": "http://catalog:8181", "commitIntervalSeconds": 3601},
            },
        }),
        &["spec.sink.iceberg.commitIntervalSeconds: Invalid value: 3601: spec.sink.iceberg.commitIntervalSeconds in body should be less than or equal to 3600"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_unknown_sink_format_is_refused() {
    let s = Scenario::without_operator("format").await;
    refused(
        &s,
        json!({"kafka": kafka_orders(), "sink": {"url": "file:///data", "format": "csv"}}),
        &["spec.sink.format: Unsupported value: \"csv\": supported values: \"ndjson\", \"parquet\""],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn parquet_to_an_http_sink_is_refused() {
    let s = Scenario::without_operator("parquet-http").await;
    refused(
        &s,
        json!({
            "kafka": kafka_orders(),
            "sink": {"url": "http://ingest:8080/orders", "format": "parquet"},
        }),
        &["spec.sink.format: Invalid value: \"object\": sink.format parquet needs a file:// or s3:// sink"],
    )
    .await;
}
