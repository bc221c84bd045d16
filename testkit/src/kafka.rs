//! Topics, producing JSON records with unique ids, and reading a group's offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// The broker of the local stack, from `KAFKA_BOOTSTRAP_SERVERS`.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| {
        panic!("KAFKA_BOOTSTRAP_SERVERS is not set: start the local stack with `e2e/stack up kafka` and `eval \"$(e2e/stack env)\"`")
    })
}

/// A topic name nobody else uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// An admin client of `servers`.
fn admin(servers: &str) -> Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .context("creating admin client")
}

/// Fails with `what` and the broker's answer for the first topic refused.
fn check_topics(results: Vec<rdkafka::admin::TopicResult>, what: &str) -> Result<()> {
    for r in results {
        if let Err((name, code)) = r {
            bail!("{what} {name}: {code}");
        }
    }
    Ok(())
}

/// Creates a topic and waits until its partitions have leaders.
pub async fn create_topic(servers: &str, topic: &str, partitions: i32) -> Result<()> {
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let timeout = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin(servers)?
        .create_topics([&new], &timeout)
        .await
        .context("creating topic")?;
    check_topics(results, "creating topic")?;
    wait_for_leaders(servers, topic, partitions).await
}

/// Grows a topic to `total` partitions and waits until they have leaders.
pub async fn add_partitions(servers: &str, topic: &str, total: i32) -> Result<()> {
    let grown = NewPartitions::new(topic, total as usize);
    let timeout = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin(servers)?
        .create_partitions([&grown], &timeout)
        .await
        .context("adding partitions")?;
    check_topics(results, "adding partitions to")?;
    wait_for_leaders(servers, topic, total).await
}

async fn wait_for_leaders(servers: &str, topic: &str, partitions: i32) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()?;
    for _ in 0..100 {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        if let Some(t) = md.topics().first() {
            if t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions().iter().all(|p| p.leader() >= 0)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("topic {topic} did not get leaders")
}

/// Deletes topics (a benchmark's, when it is done).
pub async fn delete_topics(servers: &str, topics: &[String]) -> Result<()> {
    let admin = admin(servers)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    for chunk in names.chunks(100) {
        let results = admin
            .delete_topics(chunk, &AdminOptions::new())
            .await
            .context("deleting topics")?;
        check_topics(results, "deleting topic")?;
    }
    Ok(())
}

/// A JSON record `{"id": N, "pad": "..."}` of about `size` bytes. The padding
/// is pseudo-random letters, so it compresses like text, not like a run of one byte.
pub fn json_record(id: u64, size: usize) -> Vec<u8> {
    let head = format!("{{\"id\":{id},\"pad\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(head.as_bytes());
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    v.extend((0..pad).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b'a' + (x % 26) as u8
    }));
    v.extend_from_slice(b"\"}");
    v
}

/// A producer tuned for loading test data fast.
pub fn producer(servers: &str) -> Result<ThreadedProducer<DefaultProducerContext>> {
    // Uncompressed, so fetch sizes are the sizes that land in memory.
    producer_with_codec(servers, "none")
}

/// A producer that compresses its batches with `codec` (`none`, `gzip`,
/// `snappy`, `lz4`, `zstd`).
pub fn producer_with_codec(
    servers: &str,
    codec: &str,
) -> Result<ThreadedProducer<DefaultProducerContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", codec)
        .set("queue.buffering.max.kbytes", "262144")
        .set("acks", "1")
        .create()
        .with_context(|| format!("creating a producer with compression.type={codec}"))
}

/// Produces records with ids `ids` spread round-robin over `partitions`,
/// payloads from `payload`, then flushes.
pub fn produce_with(
    servers: &str,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    payload: impl FnMut(u64) -> Vec<u8>,
) -> Result<()> {
    send_all(
        &producer(servers)?,
        topic,
        round_robin(partitions),
        ids,
        payload,
    )
}

/// Partition `id % partitions`: every partition gets the same share.
pub fn round_robin(partitions: i32) -> impl FnMut(u64) -> i32 {
    move |id| (id % partitions as u64) as i32
}

/// `hot_percent` % of the ids go to partition 0, the others round-robin
/// over partitions 1 and up: one hot partition on a topic.
pub fn one_hot(partitions: i32, hot_percent: u64) -> impl FnMut(u64) -> i32 {
    let mut cold = 0u64;
    let others = (partitions - 1).max(1) as u64;
    move |id| {
        if partitions == 1 || id % 100 < hot_percent {
            return 0;
        }
        cold += 1;
        1 + (cold % others) as i32
    }
}

/// JSON records of about `size` bytes with ids `ids`, each to the
/// partition `partition` picks for its id.
pub fn produce_json_to(
    servers: &str,
    topic: &str,
    ids: std::ops::Range<u64>,
    size: usize,
    partition: impl FnMut(u64) -> i32,
) -> Result<()> {
    send_all(&producer(servers)?, topic, partition, ids, |id| {
        json_record(id, size)
    })
}

/// Like [`produce_json`], with batches compressed by `codec`.
pub fn produce_json_compressed(
    servers: &str,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    size: usize,
    codec: &str,
) -> Result<()> {
    let producer = producer_with_codec(servers, codec)?;
    send_all(&producer, topic, round_robin(partitions), ids, |id| {
        json_record(id, size)
    })
}

/// A record to produce: its value (`None`: a tombstone) and headers.
pub struct Outgoing {
    pub value: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl From<Vec<u8>> for Outgoing {
    fn from(value: Vec<u8>) -> Self {
        Outgoing {
            value: Some(value),
            headers: None,
        }
    }
}

/// Produces records with ids `ids` (the key), round-robin over
/// `partitions`, as `make` builds them, then flushes.
pub fn produce_records(
    servers: &str,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    make: impl FnMut(u64) -> Outgoing,
) -> Result<()> {
    send_all(
        &producer(servers)?,
        topic,
        round_robin(partitions),
        ids,
        make,
    )
}

fn send_all<R: Into<Outgoing>>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    mut partition: impl FnMut(u64) -> i32,
    ids: std::ops::Range<u64>,
    mut make: impl FnMut(u64) -> R,
) -> Result<()> {
    for id in ids {
        let outgoing = make(id).into();
        let key = id.to_string();
        let mut record: BaseRecord<'_, String, Vec<u8>> =
            BaseRecord::to(topic).key(&key).partition(partition(id));
        if let Some(value) = &outgoing.value {
            record = record.payload(value);
        }
        if let Some(headers) = outgoing.headers {
            record = record.headers(headers);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    if !matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        bail!("producing: {e}");
                    }
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing producer")?;
    Ok(())
}

/// Produces JSON records of about `size` bytes with ids `ids`.
pub fn produce_json(
    servers: &str,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<u64>,
    size: usize,
) -> Result<()> {
    produce_with(servers, topic, partitions, ids, |id| json_record(id, size))
}

/// Committed offsets of `group` for `topic`, per partition (absent = none).
pub fn committed(
    servers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Commits `offsets` (partition → offset) of `topic` for `group`, as a
/// consumer of that group would.
pub fn commit(servers: &str, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .with_context(|| format!("committing offsets of {group}"))
}

/// High watermarks per partition.
pub fn high_watermarks(servers: &str, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()?;
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            Ok((p, high))
        })
        .collect()
}

/// A record's payload and headers.
pub type RawRecord = (Vec<u8>, BTreeMap<String, String>);

/// Every record of a topic (from the beginning).
pub fn read_all(servers: &str, topic: &str, partitions: i32) -> Result<Vec<RawRecord>> {
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", "millpond-e2e-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let highs = high_watermarks(servers, topic, partitions)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let total: i64 = highs.values().sum();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < total {
        if std::time::Instant::now() > deadline {
            bail!("read {} of {total} records of {topic}", out.len());
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg?;
            let mut headers = BTreeMap::new();
            if let Some(h) = msg.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    headers.insert(header.key.to_string(), value);
                }
            }
            out.push((msg.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(mut partition: impl FnMut(u64) -> i32, ids: u64) -> Vec<u32> {
        let mut counts = vec![0u32; 12];
        for id in 0..ids {
            counts[partition(id) as usize] += 1;
        }
        counts
    }

    #[test]
    fn one_hot_sends_its_share_to_partition_0_and_spreads_the_rest_evenly() {
        let c = counts(one_hot(12, 40), 12_000);
        assert_eq!(c[0], 4_800);
        // 7,200 over 11 partitions: 654 or 655 each.
        assert!(c[1..].iter().all(|&n| n == 654 || n == 655), "{c:?}");
        assert_eq!(c.iter().sum::<u32>(), 12_000);
    }

    #[test]
    fn round_robin_gives_every_partition_the_same_share() {
        assert_eq!(counts(round_robin(12), 1_200), vec![100; 12]);
    }
}
