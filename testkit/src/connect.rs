//! Kafka Connect's REST API, as far as a benchmark drives it: a worker
//! (`e2e/stack up connect`, or `CONNECT_WORKER` run by the benchmark) and
//! Apache Iceberg's sink connector configured from its documentation for
//! the stack's REST catalog and S3 store.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::iceberg::stack_var;
use crate::runtime::block_on;

/// A worker's REST API. Its calls block on the test kit's runtime: make
/// them from synchronous code only.
pub struct Connect {
    uri: String,
    http: reqwest::Client,
}

impl Connect {
    pub fn new(uri: &str) -> Connect {
        Connect {
            uri: uri.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// `method` on `path` with an optional JSON body: the status and the
    /// answer's text.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String)> {
        let mut request = self.http.request(method, format!("{}{path}", self.uri));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        block_on(async {
            let answer = request.send().await?;
            let status = answer.status().as_u16();
            Ok((status, answer.text().await?))
        })
    }

    /// Waits until the worker's REST API answers, for at most `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if matches!(
                self.call(reqwest::Method::GET, "/connectors", None),
                Ok((200, _))
            ) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "the Connect worker at {} did not answer in {timeout:?}",
            self.uri
        )
    }

    /// Creates connector `name` with `config`.
    pub fn create(&self, name: &str, config: &Value) -> Result<()> {
        let body = json!({ "name": name, "config": config });
        let (status, text) = self
            .call(reqwest::Method::POST, "/connectors", Some(&body))
            .with_context(|| format!("creating connector {name}"))?;
        if !(200..300).contains(&status) {
            bail!("creating connector {name}: {status} {text}");
        }
        Ok(())
    }

    /// A failed connector's or task's trace, if any has failed.
    pub fn failure(&self, name: &str) -> Option<String> {
        let (_, text) = self
            .call(
                reqwest::Method::GET,
                &format!("/connectors/{name}/status"),
                None,
            )
            .ok()?;
        let status: Value = serde_json::from_str(&text).ok()?;
        let mut states = vec![&status["connector"]];
        states.extend(status["tasks"].as_array().into_iter().flatten());
        states
            .into_iter()
            .find(|s| s["state"] == "FAILED")
            .map(|s| s["trace"].as_str().unwrap_or("failed").to_string())
    }

    /// Deletes connector `name`.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/connectors/{name}"),
            None,
        )
        .with_context(|| format!("deleting connector {name}"))?;
        Ok(())
    }
}

/// Apache Iceberg's sink connector (`iceberg-kafka-connect`) writing `topic`
/// into the existing `table` of the stack's REST catalog, with files in the
/// stack's S3 store, committing every `commit_interval_s` through
/// `control_topic`, with `tasks` tasks. The worker's converters read JSON
/// without schemas.
pub fn iceberg_sink(
    topic: &str,
    table: &str,
    control_topic: &str,
    commit_interval_s: u64,
    tasks: u32,
) -> Value {
    json!({
        "connector.class": "org.apache.iceberg.connect.IcebergSinkConnector",
        "tasks.max": tasks.to_string(),
        "topics": topic,
        "iceberg.tables": table,
        "iceberg.tables.auto-create-enabled": "false",
        "iceberg.control.topic": control_topic,
        "iceberg.control.commit.interval-ms": (commit_interval_s * 1000).to_string(),
        "iceberg.catalog.type": "rest",
        "iceberg.catalog.uri": stack_var("ICEBERG_REST_URI"),
        "iceberg.catalog.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "iceberg.catalog.s3.endpoint": stack_var("S3_ENDPOINT"),
        "iceberg.catalog.s3.path-style-access": "true",
        "iceberg.catalog.s3.access-key-id": stack_var("S3_ACCESS_KEY_ID"),
        "iceberg.catalog.s3.secret-access-key": stack_var("S3_SECRET_ACCESS_KEY"),
        "iceberg.catalog.client.region": stack_var("S3_REGION"),
    })
}
