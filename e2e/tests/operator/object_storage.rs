//! A MillpondConsumer writing into the stack's S3-compatible store
//! (versitygw) with credentials from a Secret: wrong credentials hold with
//! the store's answer in `Degraded`, nothing committed; the right ones
//! deliver every record. What landed is read from the store's own files.

use std::path::PathBuf;
use std::time::Duration;

use millpond_testkit::kafka;
use serde_json::json;

use crate::support::*;

fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `e2e/stack up all s3` and `eval \"$(e2e/stack env)\"`")
    })
}

#[tokio::test]
#[ignore = "needs the local stack with its S3 store: e2e/stack up all s3, then e2e/test"]
async fn wrong_s3_credentials_hold_with_the_stores_answer_and_the_right_ones_deliver_every_record()
{
    let s = Scenario::new("s3").await;
    let topic = s.topic("operator-s3", 4, RECORDS).await;
    let bucket = stack_var("S3_BUCKET");
    let prefix = format!("operator/{topic}");
    let objects = PathBuf::from(stack_var("S3_DATA_DIR"))
        .join(&bucket)
        .join(&prefix);
    let access_key = stack_var("AWS_ACCESS_KEY_ID");
    let secret_key = stack_var("AWS_SECRET_ACCESS_KEY");
    s.secret(
        "lake-wrong",
        &[("id", &access_key), ("secret", "not-the-secret")],
    )
    .await;
    s.secret("lake", &[("id", &access_key), ("secret", &secret_key)])
        .await;
    let credentials = |secret: &str| {
        json!({
            "endpoint": stack_var("S3_ENDPOINT"),
            "region": stack_var("AWS_REGION"),
            "accessKeyIdSecretRef": {"name": secret, "key": "id"},
            "secretAccessKeySecretRef": {"name": secret, "key": "secret"},
        })
    };
    let mpc = s
        .create_consumer(
            "lake",
            json!({
                "kafka": {"bootstrapServers": kafka::bootstrap(), "topic": topic},
                "sink": {
                    "url": format!("s3://{bucket}/{prefix}"),
                    "s3": credentials("lake-wrong"),
                },
                "resources": {"memory": "256Mi"},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            }),
        )
        .await;

    let degraded = s.degraded("lake", "StorageAccessDenied").await;
    assert!(
        degraded
            .message
            .contains(&format!("s3://{bucket}/{prefix}/{topic}-"))
            && degraded.message.contains("403"),
        "the condition names the object and the store's answer: {}",
        degraded.message
    );
    let group = mpc.spec.kafka.group_id();
    let committed = kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap();
    assert!(
        committed.values().all(|&o| o <= 0),
        "nothing committed while the store refuses: {committed:?}"
    );
    assert!(!objects.exists(), "no object in {}", objects.display());

    s.patch_consumer(
        "lake",
        json!({"spec": {"sink": {"s3": credentials("lake")}}}),
    )
    .await;
    let lines = all_delivered(&objects, RECORDS, Duration::from_secs(240)).await;
    assert_eq!(lines as u64, RECORDS, "no record written twice");
    committed_to_the_end(&group, &topic, 4, Duration::from_secs(60)).await;
    let fine = s
        .condition_reason("lake", "Degraded", "AsExpected", Duration::from_secs(60))
        .await;
    assert_eq!(fine.status, "False", "{fine:?}");
}
