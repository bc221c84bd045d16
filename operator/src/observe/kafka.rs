//! Partitions, watermarks and the group's committed offsets, read straight
//! from Kafka with a deadline on every call.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

/// Why Kafka could not be observed; each says what a person can do.
#[derive(Debug, Error)]
pub enum KafkaObserveError {
    #[error("cannot reach Kafka at {servers}: {source}")]
    Unreachable {
        servers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("topic `{topic}` does not exist on {servers}")]
    TopicMissing { servers: String, topic: String },
    #[error("reading offsets of group `{group}`: {source}")]
    Offsets {
        group: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka at {servers} did not answer within {deadline:?}")]
    Timeout { servers: String, deadline: Duration },
}

/// One partition's positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// Log start offset (where `auto.offset.reset=earliest` starts).
    pub low: i64,
    /// High watermark (next offset to be written).
    pub high: i64,
    /// The group's committed offset, if it committed one.
    pub committed: Option<i64>,
}

/// Where to look.
#[derive(Clone)]
pub struct KafkaTarget {
    pub bootstrap_servers: String,
    pub topic: String,
    pub group: String,
    /// Client properties: the user's overrides, security settings and
    /// credentials (never printed: `Debug` shows the keys only).
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTarget")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Reads every partition's watermarks and the group's committed offsets.
/// Blocking; call it from a blocking task.
pub fn read_offsets(
    target: &KafkaTarget,
    timeout: Duration,
) -> Result<Vec<PartitionOffsets>, KafkaObserveError> {
    let mut config = ClientConfig::new();
    for (k, v) in &target.properties {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &target.bootstrap_servers)
        .set("group.id", &target.group)
        .set("enable.auto.commit", "false");
    let unreachable = |source| KafkaObserveError::Unreachable {
        servers: target.bootstrap_servers.clone(),
        source,
    };
    let consumer: BaseConsumer = config.create().map_err(unreachable)?;
    let metadata = consumer
        .fetch_metadata(Some(&target.topic), timeout)
        .map_err(unreachable)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == target.topic && t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| KafkaObserveError::TopicMissing {
            servers: target.bootstrap_servers.clone(),
            topic: target.topic.clone(),
        })?;
    let mut tpl = TopicPartitionList::new();
    let mut out = Vec::new();
    for p in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&target.topic, p.id(), timeout)
            .map_err(unreachable)?;
        tpl.add_partition(&target.topic, p.id());
        out.push(PartitionOffsets {
            partition: p.id(),
            low,
            high,
            committed: None,
        });
    }
    let committed =
        consumer
            .committed_offsets(tpl, timeout)
            .map_err(|source| KafkaObserveError::Offsets {
                group: target.group.clone(),
                source,
            })?;
    for e in committed.elements() {
        if let (Offset::Offset(o), Some(p)) = (
            e.offset(),
            out.iter_mut().find(|p| p.partition == e.partition()),
        ) {
            p.committed = Some(o);
        }
    }
    out.sort_by_key(|p| p.partition);
    Ok(out)
}

/// [`read_offsets`] on a blocking thread, abandoned after `timeout` twice over
/// (metadata, then offsets) so a hung broker never hangs the reconciler.
pub async fn observe(
    target: KafkaTarget,
    timeout: Duration,
) -> Result<Vec<PartitionOffsets>, KafkaObserveError> {
    let deadline = timeout * 3;
    let servers = target.bootstrap_servers.clone();
    match tokio::time::timeout(
        deadline,
        tokio::task::spawn_blocking(move || read_offsets(&target, timeout)),
    )
    .await
    {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => panic!("offset reader panicked: {join}"),
        Err(_) => Err(KafkaObserveError::Timeout { servers, deadline }),
    }
}

/// Checks the user's librdkafka properties (`spec.kafka.config`) the way
/// librdkafka will when a pod starts: an unknown property or a value it
/// refuses is reported now, as a spec error, instead of as pods that fail to
/// start. No client is created.
pub fn check_overrides(config: &BTreeMap<String, String>) -> Result<(), String> {
    let mut client = ClientConfig::new();
    for (key, value) in config {
        client.set(key, value);
    }
    client
        .create_native_config()
        .map(drop)
        .map_err(|e| format!("kafka.config: {e}"))
}

#[cfg(test)]
mod override_tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn librdkafka_judges_the_overrides() {
        assert_eq!(
            check_overrides(&props(&[
                ("fetch.wait.max.ms", "100"),
                ("auto.offset.reset", "earliest")
            ])),
            Ok(())
        );
        let unknown = check_overrides(&props(&[("fetch.wait.max.msec", "100")])).unwrap_err();
        assert!(unknown.contains("fetch.wait.max.msec"), "{unknown}");
        let bad = check_overrides(&props(&[("fetch.max.bytes", "lots")])).unwrap_err();
        assert!(
            bad.starts_with("kafka.config: ") && bad.contains("fetch.max.bytes"),
            "{bad}"
        );
    }
}
