//! The examples in `examples/`, applied as their headers tell a user to.

use serde_json::json;

use crate::support::*;
use crate::*;

/// `kubectl apply -n <namespace> -f examples/<file>`, which must succeed.
fn apply_example(s: &Scenario, file: &str) {
    let run = kubectl(&["apply", "-n", &s.ns, "-f", file], "");
    assert!(run.ok, "kubectl apply -f {file}: {}", run.stderr);
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn every_example_is_accepted() {
    let s = Scenario::without_operator("examples").await;
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("an entry of examples/").file_name())
        .map(|name| format!("examples/{}", name.to_string_lossy()))
        .filter(|file| file.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in [
        "examples/millpondconsumer.yaml",
        "examples/s3-parquet.yaml",
        "examples/iceberg-rest.yaml",
        "examples/iceberg-sql.yaml",
    ] {
        assert!(files.iter().any(|f| f == file), "{file} in {files:?}");
    }
    for file in &files {
        apply_example(&s, file);
    }
    let stored = consumers(&s).list(&Default::default()).await.unwrap();
    assert_eq!(stored.items.len(), files.len(), "one consumer per example");
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_api_server_fills_in_the_defaults_the_example_leaves_out() {
    let s = Scenario::without_operator("example-defaults").await;
    apply_example(&s, "examples/millpondconsumer.yaml");
    assert_fields(
        "the defaults of examples/millpondconsumer.yaml",
        &stored_spec(&s, "orders").await,
        &[
            ("/autoscaling/maxScaleUpStep", json!(4)),
            ("/autoscaling/maxScaleDownStep", json!(1)),
            ("/autoscaling/scaleDownStabilizationSeconds", json!(300)),
            ("/limits/consumeBatchSize", json!(1000)),
            ("/autotune/enabled", json!(true)),
            ("/autoscaling/stuckIntervals", json!(3)),
        ],
    );
}
