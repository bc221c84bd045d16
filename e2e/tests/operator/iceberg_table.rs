//! A MillpondConsumer writing into an Iceberg table through the stack's
//! REST catalog, with the store's credentials from a Secret: a missing
//! table holds with `Degraded` naming it, nothing committed; once the table
//! exists, three pods write it at once, then the consumer scales in to one
//! (a rebalance while writing), and pyiceberg finds every record once with
//! the table's offsets equal to the group's. The same through a SQL catalog
//! in the stack's PostgreSQL, its connection URL from a Secret.

use std::time::Duration;

use millpond_testkit::iceberg::{create_table, read, stack_var, Catalog};
use millpond_testkit::kafka;
use serde_json::json;

use crate::support::*;

/// The Secret `lake`: the store's keys (`id`, `secret`) and the SQL
/// catalog's URL (`catalog`).
async fn lake_secret(s: &Scenario) {
    s.secret(
        "lake",
        &[
            ("id", &stack_var("S3_ACCESS_KEY_ID")),
            ("secret", &stack_var("S3_SECRET_ACCESS_KEY")),
            ("catalog", &stack_var("ICEBERG_SQL_URL")),
        ],
    )
    .await;
}

/// A consumer of `topic` writing `table` through `iceberg` (the catalog),
/// with the store's keys from the Secret `lake`; one pod.
fn writing(topic: &str, table: &str, iceberg: serde_json::Value) -> serde_json::Value {
    let (namespace, name) = table.split_once('.').unwrap();
    json!({
        "kafka": {"bootstrapServers": kafka::bootstrap(), "topic": topic},
        "sink": {
            "url": format!("iceberg://{namespace}/{name}"),
            "iceberg": iceberg,
            "s3": {
                "endpoint": stack_var("S3_ENDPOINT"),
                "region": stack_var("S3_REGION"),
                "accessKeyIdSecretRef": {"name": "lake", "key": "id"},
                "secretAccessKeySecretRef": {"name": "lake", "key": "secret"},
            },
        },
        "resources": {"memory": "256Mi"},
        "limits": {"flushBytes": "1Mi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
    })
}

fn replicas(n: i32) -> serde_json::Value {
    json!({"spec": {"autoscaling": {"minReplicas": n, "maxReplicas": n}}})
}

#[tokio::test]
#[ignore = "needs the local stack with its S3 store and Iceberg catalog: e2e/stack up all s3 iceberg, then e2e/test"]
async fn a_missing_table_holds_then_writers_scaling_in_leave_every_record_once() {
    let s = Scenario::new("iceberg").await;
    let topic = s.topic("operator-iceberg", 4, RECORDS).await;
    let table = format!("millpond_operator.{}", topic.replace('-', "_"));
    lake_secret(&s).await;
    let iceberg = json!({"catalogUri": stack_var("ICEBERG_REST_URI")});
    let mpc = s
        .create_consumer("orders", writing(&topic, &table, iceberg))
        .await;

    let degraded = s.degraded("orders", "TableNotFound").await;
    assert!(
        degraded.message.contains(&format!("Iceberg table {table}"))
            && degraded.message.contains("create the table"),
        "the condition names the table and what to do: {}",
        degraded.message
    );
    let group = mpc.spec.kafka.group_id();
    let committed = kafka::committed(&kafka::bootstrap(), &group, &topic, 4).unwrap();
    assert!(
        committed.values().all(|&o| o <= 0),
        "nothing committed without a table: {committed:?}"
    );

    create_table(&table, None);
    s.patch_consumer("orders", replicas(3)).await;
    eventually(Duration::from_secs(120), "three pods writing", || async {
        let rows = read(&table, &topic).rows;
        let pods = s.consumer_pods("orders").await.len();
        (pods == 3 && rows > 0)
            .then_some(())
            .ok_or(format!("{pods} pods, {rows} rows"))
    })
    .await;
    s.patch_consumer("orders", replicas(1)).await;

    let all = eventually(
        Duration::from_secs(300),
        "every record in the table",
        || async {
            let read = read(&table, &topic);
            (read.rows >= RECORDS)
                .then_some(read)
                .ok_or_else(|| "still writing".to_string())
        },
    )
    .await;
    all.assert_every_id_once(RECORDS);
    committed_to_the_end(&group, &topic, 4, Duration::from_secs(60)).await;
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 4).unwrap();
    assert_eq!(
        read(&table, &topic).offsets,
        highs,
        "the table's offsets are the group's"
    );
    assert_eq!(s.consumer_pods("orders").await.len(), 1, "scaled in to one");
}

/// The catalog in PostgreSQL, its URL from a Secret: `autoCreate` makes the
/// table under the warehouse, `commitIntervalSeconds` gathers flushes, and
/// pyiceberg, through its own SQL catalog on the same database, reads every
/// record once.
#[tokio::test]
#[ignore = "needs the local stack with its S3 store and Iceberg catalogs: e2e/stack up all s3 iceberg, then e2e/test"]
async fn a_sql_catalog_from_a_secret_gets_every_record_once() {
    let s = Scenario::new("iceberg-sql").await;
    let topic = s.topic("operator-iceberg-sql", 2, RECORDS).await;
    let table = format!("millpond_operator_sql.{}", topic.replace('-', "_"));
    lake_secret(&s).await;
    let iceberg = json!({
        "sqlUriSecretRef": {"name": "lake", "key": "catalog"},
        "warehouse": stack_var("ICEBERG_WAREHOUSE"),
        "autoCreate": true,
        "commitIntervalSeconds": 5,
    });
    let mpc = s
        .create_consumer("orders", writing(&topic, &table, iceberg))
        .await;
    let all = eventually(
        Duration::from_secs(300),
        "every record in the table",
        || async {
            // Until the first commit the table may not exist yet.
            let read = Catalog::Sql.try_read(&table, &topic)?;
            let rows = read.rows;
            (rows >= RECORDS)
                .then_some(read)
                .ok_or_else(|| format!("{rows} rows so far"))
        },
    )
    .await;
    all.assert_every_id_once(RECORDS);
    let group = mpc.spec.kafka.group_id();
    committed_to_the_end(&group, &topic, 2, Duration::from_secs(60)).await;
    let highs = kafka::high_watermarks(&kafka::bootstrap(), &topic, 2).unwrap();
    assert_eq!(
        Catalog::Sql.read(&table, &topic).offsets,
        highs,
        "the table's offsets are the group's"
    );
}
