//! A pod that crash-loops is reported in `Ready` with the kubelet's reason
//! and the consumer's own exit message: a record that is not JSON and no
//! dead-letter topic, so the consumer stops at it (exit 3), and `Degraded`
//! names the record (`PoisonRecord`).

use std::time::Duration;

use millpond_testkit::kafka;
use serde_json::json;

use crate::support::*;

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_crash_looping_pod_sets_ready_false_with_the_kubelets_reason_and_the_consumers_exit_message(
) {
    let s = Scenario::new("crash-loop").await;
    let topic = s.topic("operator-poison", 1, 10).await;
    let poison = topic.clone();
    tokio::task::spawn_blocking(move || {
        kafka::produce_with(&kafka::bootstrap(), &poison, 1, 10..11, |_| {
            b"not json".to_vec()
        })
    })
    .await
    .unwrap()
    .expect("producing the poison record");
    let spec = json!({
        "kafka": {"bootstrapServers": kafka::bootstrap(), "topic": topic},
        "sink": {"url": "file:///out/poisoned"},
        "template": {"volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}]},
        "autoscaling": {"paused": true},
        "replicas": 1,
    });
    s.create_consumer("poisoned", spec).await;

    // What the kubelet says of the pod: waiting in CrashLoopBackOff after
    // the consumer ended with exit code 3 and its message.
    let (pod, words) = eventually(
        Duration::from_secs(150),
        "the kubelet reports the consumer pod in CrashLoopBackOff after exit code 3",
        || async {
            let pods = s.consumer_pods("poisoned").await;
            let [pod] = pods.as_slice() else {
                return Err(format!("{} pods", pods.len()));
            };
            let status = pod
                .status
                .as_ref()
                .and_then(|st| st.container_statuses.as_ref()?.first().cloned())
                .ok_or("no container status")?;
            let waiting = status.state.as_ref().and_then(|st| st.waiting.as_ref());
            let last = status
                .last_state
                .as_ref()
                .and_then(|st| st.terminated.as_ref());
            match (waiting.and_then(|w| w.reason.as_deref()), last) {
                (Some("CrashLoopBackOff"), Some(t)) => Ok((
                    pod.clone(),
                    (t.exit_code, t.message.clone().unwrap_or_default()),
                )),
                _ => Err(format!("state {:?}, last {last:?}", status.state)),
            }
        },
    )
    .await;
    let (exit_code, termination_log) = words;
    assert_eq!(exit_code, 3, "exit code of the consumer at a poison record");
    let last_line = termination_log
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        last_line,
        format!(
            "error: poison record at {topic}/0@10: value is not a JSON object \
             (set DEAD_LETTER_TOPIC to divert such records)"
        ),
        "the consumer's exit message, last in its termination log"
    );

    // What the operator makes of it.
    let ready = s
        .condition_reason(
            "poisoned",
            "Ready",
            "CrashLoopBackOff",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(ready.status, "False", "{ready:?}");
    let name = pod.metadata.name.clone().unwrap();
    let restarts = restarts_in(&ready.message, &name);
    assert_eq!(
        ready.message,
        format!(
            "pod {name} CrashLoopBackOff (restarted {restarts} times): exit code 3: {last_line}; \
             0 of 1 pods ready"
        )
    );
    assert!(restarts >= 1, "{}", ready.message);

    // And the record it stops at, with where and why, and what to do.
    let degraded = s.degraded("poisoned", "PoisonRecord").await;
    let at = format!("pod {name} stopped at a record its sink cannot take, at {topic}/0@10: value is not a JSON object; ");
    assert!(degraded.message.starts_with(&at), "{}", degraded.message);
    assert!(
        degraded.message.contains("set spec.sink.deadLetterTopic"),
        "{}",
        degraded.message
    );
}

/// The restart count a Ready message gives for `pod`.
fn restarts_in(message: &str, pod: &str) -> i32 {
    let prefix = format!("pod {pod} CrashLoopBackOff (restarted ");
    message
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no restart count in: {message}"))
}
