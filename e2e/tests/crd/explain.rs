//! `kubectl explain`: the field docs a user reads before writing a
//! consumer.

use crate::support::*;
use crate::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_shows_the_spec_with_its_fields() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec",
        &explain("mpc.spec").await,
        &[
            "Consume one Kafka topic into a sink",
            "kafka\t<Object> -required-",
            "autoscaling\t<Object>",
            "replicas\t<integer>",
        ],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_tells_the_default_consumer_group() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec.kafka.groupId",
        &explain("mpc.spec.kafka.groupId").await,
        &["Defaults to", "millpond-<topic>"],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_tells_that_at_least_once_breakers_are_refused() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec.kafka.config",
        &explain("mpc.spec.kafka.config").await,
        &["enable.auto.commit=true", "are refused"],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_tells_the_memory_budget_as_a_string_or_a_number() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec.resources.memory",
        &explain("mpc.spec.resources.memory").await,
        &[
            "Memory budget of one pod",
            "memory limit",
            "1e9 unquoted in YAML",
        ],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_tells_that_a_file_sink_writes_onto_a_volume() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec.template.volumes",
        &explain("mpc.spec.template.volumes").await,
        &[
            "mountPath",
            "persistentVolumeClaim",
            "emptyDir",
            "read-only",
        ],
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_explain_tells_the_scaling_bounds() {
    crd_applied().await;
    assert_contains(
        "kubectl explain mpc.spec.autoscaling",
        &explain("mpc.spec.autoscaling").await,
        &[
            "How the operator chooses the number of pods",
            "minReplicas",
            "maxReplicas",
            "targetDrainSeconds",
        ],
    );
}
