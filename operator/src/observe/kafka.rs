//! Partitions, watermarks and the group's committed offsets, read from Kafka
//! in batched requests with a deadline on every call.
//!
//! One long-lived client per Kafka cluster and credentials ([`Observers`])
//! serves every `MillpondConsumer` on that cluster, interval after interval.
//! Per interval and topic it sends one Metadata request, two ListOffsets
//! requests per partition leader (earliest and latest, every partition at
//! once) and one OffsetFetch to the group's coordinator; each is counted in
//! `millpond_operator_kafka_requests_total` ([`metrics::KAFKA_REQUESTS`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::{self, KAFKA_CLIENTS, KAFKA_REQUESTS};
use millpond_crds::condition::reason;
use millpond_kafka::connect_failure::{self as kafka_failure, ConnectFailure, FailureCapture};
use rdkafka::bindings as rd;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

/// Why Kafka could not be observed; each says what a person can do.
#[derive(Debug, Error)]
pub enum KafkaObserveError {
    /// The brokers could not be reached, refused the TLS handshake, or
    /// refused the credentials; the message names which and what to check.
    #[error("{message}")]
    Connect {
        failure: ConnectFailure,
        message: String,
    },
    #[error("the client settings are refused: {0}")]
    Settings(#[source] KafkaError),
    #[error("topic `{topic}` does not exist on {servers}")]
    TopicMissing { servers: String, topic: String },
    #[error("reading offsets of group `{group}`: {detail}")]
    Offsets { group: String, detail: String },
    #[error("Kafka at {servers} did not answer within {deadline:?}")]
    Timeout { servers: String, deadline: Duration },
}

impl KafkaObserveError {
    /// The `Degraded` condition's reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            KafkaObserveError::Connect {
                failure: ConnectFailure::Tls,
                ..
            } => reason::KAFKA_TLS_FAILED,
            KafkaObserveError::Connect {
                failure: ConnectFailure::Authentication,
                ..
            } => reason::KAFKA_AUTHENTICATION_FAILED,
            KafkaObserveError::TopicMissing { .. } => reason::TOPIC_NOT_FOUND,
            _ => reason::KAFKA_UNREACHABLE,
        }
    }
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

/// Prefixes of the librdkafka properties that decide how a client connects
/// (address, security, credentials, sockets). The observer uses only these:
/// consumers that differ in fetch or offset settings share one client.
const CONNECTION_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.",
    "ssl.",
    "ssl_",
    "enable.ssl.",
    "socket.",
    "broker.",
    "client.dns.lookup",
    "client.rack",
    "reconnect.",
    "api.version",
    "connections.max.idle.ms",
];

/// The connection settings of `target`: what identifies its observer.
fn connection_properties(target: &KafkaTarget) -> BTreeMap<String, String> {
    target
        .properties
        .iter()
        .filter(|(k, _)| CONNECTION_PROPERTIES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A long-lived client that reads offsets; never joins a group.
pub struct Observer {
    consumer: BaseConsumer<FailureCapture>,
    servers: String,
    /// The connection settings, for diagnosing a failed TLS handshake.
    properties: BTreeMap<String, String>,
}

impl Observer {
    /// A client for `servers` with the connection `properties` (plus
    /// `extra`, e.g. statistics for a benchmark).
    pub fn connect(
        servers: &str,
        properties: &BTreeMap<String, String>,
        extra: &[(&str, &str)],
    ) -> Result<Self, KafkaObserveError> {
        let mut config = ClientConfig::new();
        for (k, v) in properties {
            config.set(k, v);
        }
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config
            .set("bootstrap.servers", servers)
            .set("client.id", "millpond-operator")
            .set("enable.auto.commit", "false");
        let consumer = config
            .create_with_context(FailureCapture::default())
            .map_err(KafkaObserveError::Settings)?;
        Ok(Observer {
            consumer,
            servers: servers.to_string(),
            properties: properties.clone(),
        })
    }

    /// librdkafka's latest statistics, when `extra` enabled them.
    pub fn statistics(&self) -> Option<rdkafka::Statistics> {
        self.consumer.context().statistics()
    }

    /// Every partition's watermarks and `group`'s committed offsets on
    /// `topic`, each request bounded by `timeout`. Blocking.
    pub fn read(
        &self,
        topic: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<Vec<PartitionOffsets>, KafkaObserveError> {
        let (partitions, leaders) = self.partitions(topic, timeout)?;
        let low = self.list_offsets(topic, &partitions, leaders, Offset::Beginning, timeout)?;
        let high = self.list_offsets(topic, &partitions, leaders, Offset::End, timeout)?;
        let committed = self.committed(group, topic, &partitions, timeout)?;
        self.serve_events();
        Ok(partitions
            .iter()
            .map(|&p| PartitionOffsets {
                partition: p,
                low: low.get(&p).copied().unwrap_or(0),
                high: high.get(&p).copied().unwrap_or(0),
                committed: committed.get(&p).copied(),
            })
            .collect())
    }

    /// Serves what the client queued (errors, statistics) so nothing piles
    /// up in a client that lives for days.
    pub fn serve_events(&self) {
        kafka_failure::serve_events(&self.consumer, Duration::ZERO);
    }

    /// The topic's partition ids, sorted, and how many brokers lead them.
    fn partitions(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<(Vec<i32>, usize), KafkaObserveError> {
        count_request("Metadata", 1);
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| self.failure(e))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| KafkaObserveError::TopicMissing {
                servers: self.servers.clone(),
                topic: topic.to_string(),
            })?;
        let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        let leaders: BTreeSet<i32> = found.partitions().iter().map(|p| p.leader()).collect();
        Ok((ids, leaders.len()))
    }

    /// One ListOffsets request per partition leader (`leaders` of them) for
    /// all `partitions`: `Offset::Beginning` gives the log start offsets,
    /// `Offset::End` the high watermarks.
    fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        leaders: usize,
        at: Offset,
        timeout: Duration,
    ) -> Result<BTreeMap<i32, i64>, KafkaObserveError> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition_offset(topic, p, at)
                .map_err(|e| self.failure(e))?;
        }
        count_request("ListOffsets", leaders);
        let found = self
            .consumer
            .offsets_for_times(tpl, timeout)
            .map_err(|e| self.failure(e))?;
        let mut offsets = BTreeMap::new();
        for e in found.elements() {
            match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(o)) => {
                    offsets.insert(e.partition(), o);
                }
                (Err(err), _) => return Err(self.failure(err)),
                (Ok(()), other) => {
                    return Err(KafkaObserveError::Offsets {
                        group: String::new(),
                        detail: format!(
                            "partition {} answered {other:?} for {at:?}",
                            e.partition()
                        ),
                    })
                }
            }
        }
        Ok(offsets)
    }

    /// `group`'s committed offsets on `topic` (one OffsetFetch request;
    /// partitions without one are absent).
    fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
    ) -> Result<BTreeMap<i32, i64>, KafkaObserveError> {
        let offsets_error = |detail: String| KafkaObserveError::Offsets {
            group: group.to_string(),
            detail,
        };
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition(topic, p);
        }
        count_request("OffsetFetch", 1);
        let listed = list_group_offsets(&self.consumer, group, &tpl, timeout);
        let listed = match listed {
            Ok(l) => l,
            Err(GroupOffsetsError::TimedOut) => {
                // No answer at all: tell why if the client knows.
                return Err(match self.connect_failure() {
                    Some(e) => e,
                    None => offsets_error(format!("no answer within {timeout:?}")),
                });
            }
            Err(GroupOffsetsError::Refused(detail)) => return Err(offsets_error(detail)),
        };
        let mut committed = BTreeMap::new();
        for e in listed {
            if let Some(err) = e.error {
                return Err(offsets_error(format!("partition {}: {err}", e.partition)));
            }
            if e.offset >= 0 {
                committed.insert(e.partition, e.offset);
            }
        }
        Ok(committed)
    }

    /// The error for a failed request: the connection failure librdkafka
    /// reported lately (TLS, credentials, network), else unreachable.
    fn failure(&self, source: KafkaError) -> KafkaObserveError {
        self.connect_failure()
            .unwrap_or_else(|| KafkaObserveError::Connect {
                failure: ConnectFailure::Unreachable,
                message: format!(
                    "{} ({source})",
                    kafka_failure::describe(&self.servers, None)
                ),
            })
    }

    /// The connection failure reported in the last minute, if any.
    fn connect_failure(&self) -> Option<KafkaObserveError> {
        kafka_failure::serve_events(&self.consumer, Duration::from_millis(100));
        let reason = self
            .consumer
            .context()
            .last_reason_within(Some(Duration::from_secs(60)))?;
        let (failure, message) = kafka_failure::diagnose(
            &self.servers,
            Some(&reason),
            &self.properties,
            Duration::from_secs(2),
        );
        Some(KafkaObserveError::Connect { failure, message })
    }
}

/// Counts `n` Kafka requests of type `request` (one of
/// [`metrics::KAFKA_REQUEST_TYPES`]) as sent.
fn count_request(request: &str, n: usize) {
    debug_assert!(metrics::KAFKA_REQUEST_TYPES.contains(&request));
    KAFKA_REQUESTS
        .with_label_values(&[request])
        .inc_by(n as u64);
}

/// Why [`list_group_offsets`] returned no offsets.
enum GroupOffsetsError {
    TimedOut,
    Refused(String),
}

/// librdkafka's ListConsumerGroupOffsets admin call for one group and the
/// partitions in `tpl` (the Rust binding has no wrapper for it): one
/// OffsetFetch request to the group's coordinator, from any client.
fn list_group_offsets(
    consumer: &BaseConsumer<FailureCapture>,
    group: &str,
    tpl: &TopicPartitionList,
    timeout: Duration,
) -> Result<Vec<GroupOffset>, GroupOffsetsError> {
    let group = CString::new(group)
        .map_err(|_| GroupOffsetsError::Refused("the group id contains a NUL byte".into()))?;
    let rk = consumer.client().native_ptr();
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: every pointer handed to librdkafka is valid for the call:
    // `rk` lives as long as `consumer`, `group` and `tpl` outlive the request
    // (librdkafka copies them), and everything created here is destroyed
    // here, once; the result is read before its event is destroyed.
    unsafe {
        let mut request = rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), tpl.ptr());
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        );
        let mut errstr = [0 as std::ffi::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            millis,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut request, 1, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, millis.saturating_add(1000));
        let result = if event.is_null() {
            Err(GroupOffsetsError::TimedOut)
        } else {
            group_offsets_of(event)
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_ListConsumerGroupOffsets_destroy(request);
        result
    }
}

/// The partitions of a ListConsumerGroupOffsets result event.
///
/// # Safety
/// `event` is a live, non-null result event of that call.
unsafe fn group_offsets_of(
    event: *mut rd::rd_kafka_event_t,
) -> Result<Vec<GroupOffset>, GroupOffsetsError> {
    let text = |s: *const std::ffi::c_char| {
        if s.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned()
        }
    };
    let code = rd::rd_kafka_event_error(event);
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__TIMED_OUT {
        return Err(GroupOffsetsError::TimedOut);
    }
    if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(GroupOffsetsError::Refused(text(
            rd::rd_kafka_event_error_string(event),
        )));
    }
    // NULL when the event is of another type.
    let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event);
    if result.is_null() {
        return Err(GroupOffsetsError::Refused(format!(
            "unexpected answer (event type {})",
            rd::rd_kafka_event_type(event)
        )));
    }
    let mut count = 0usize;
    let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
    if groups.is_null() || count == 0 {
        return Err(GroupOffsetsError::Refused("no group in the answer".into()));
    }
    let group = *groups;
    let error = rd::rd_kafka_group_result_error(group);
    if !error.is_null() {
        return Err(GroupOffsetsError::Refused(text(rd::rd_kafka_error_string(
            error,
        ))));
    }
    let partitions = rd::rd_kafka_group_result_partitions(group);
    if partitions.is_null() {
        return Ok(Vec::new());
    }
    let list = &*partitions;
    let elems = std::slice::from_raw_parts(list.elems, list.cnt.max(0) as usize);
    Ok(elems
        .iter()
        .map(|e| GroupOffset {
            partition: e.partition,
            offset: e.offset,
            error: (e.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                .then(|| text(rd::rd_kafka_err2str(e.err))),
        })
        .collect())
}

/// One partition of a ListConsumerGroupOffsets answer.
struct GroupOffset {
    partition: i32,
    /// Negative when the group has no committed offset.
    offset: i64,
    error: Option<String>,
}

/// One client per Kafka cluster and connection settings, shared by every
/// `MillpondConsumer` on it; a client unused for `idle` is closed.
pub struct Observers {
    clients: Mutex<HashMap<ClientKey, Cached>>,
    idle: Duration,
}

/// Bootstrap servers and connection properties.
type ClientKey = (String, BTreeMap<String, String>);

struct Cached {
    observer: Arc<Observer>,
    used: Instant,
}

impl Observers {
    pub fn new(idle: Duration) -> Self {
        Observers {
            clients: Mutex::default(),
            idle,
        }
    }

    /// Clients open now.
    pub fn open_clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The client for `target`'s cluster and settings, opened if needed.
    /// Clients idle too long are closed here (blocking: call it from a
    /// blocking task).
    fn client(&self, target: &KafkaTarget) -> Result<Arc<Observer>, KafkaObserveError> {
        let key = (
            target.bootstrap_servers.clone(),
            connection_properties(target),
        );
        let now = Instant::now();
        let (observer, idle) = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let idle: Vec<_> = clients
                .iter()
                .filter(|(k, c)| **k != key && now.duration_since(c.used) > self.idle)
                .map(|(k, _)| k.clone())
                .collect();
            let idle: Vec<Cached> = idle.iter().filter_map(|k| clients.remove(k)).collect();
            let observer = match clients.get_mut(&key) {
                Some(cached) => {
                    cached.used = now;
                    Ok(cached.observer.clone())
                }
                None => Observer::connect(&key.0, &key.1, &[]).map(|observer| {
                    let observer = Arc::new(observer);
                    tracing::info!(servers = %key.0, "opened a Kafka client for observing");
                    clients.insert(
                        key.clone(),
                        Cached {
                            observer: observer.clone(),
                            used: now,
                        },
                    );
                    observer
                }),
            };
            KAFKA_CLIENTS.set(clients.len() as i64);
            (observer, idle)
        };
        // Closing a client waits for its threads; not under the lock.
        drop(idle);
        observer
    }

    /// Closes the client of `target` after a read that found no broker: the next
    /// observation connects anew. A client whose broker stopped answering
    /// for a while (a paused or restarted broker) was seen to keep failing
    /// its metadata requests after the broker was back.
    fn forget(&self, target: &KafkaTarget) {
        let key = (
            target.bootstrap_servers.clone(),
            connection_properties(target),
        );
        let gone = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let gone = clients.remove(&key);
            KAFKA_CLIENTS.set(clients.len() as i64);
            gone
        };
        if gone.is_some() {
            tracing::info!(servers = %key.0, "closed the Kafka client after a failed observation");
        }
    }

    /// [`Observer::read`] for `target` on a blocking thread, abandoned after
    /// `timeout` four times over (one per request) so a hung broker never
    /// hangs the reconciler.
    pub async fn observe(
        self: &Arc<Self>,
        target: KafkaTarget,
        timeout: Duration,
    ) -> Result<Vec<PartitionOffsets>, KafkaObserveError> {
        let deadline = timeout * 4;
        let servers = target.bootstrap_servers.clone();
        let observers = self.clone();
        let read = tokio::task::spawn_blocking(move || {
            let result = observers
                .client(&target)?
                .read(&target.topic, &target.group, timeout);
            if let Err(KafkaObserveError::Connect { .. } | KafkaObserveError::Timeout { .. }) =
                &result
            {
                observers.forget(&target);
            }
            result
        });
        match tokio::time::timeout(deadline, read).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("offset reader panicked: {join}"),
            Err(_) => Err(KafkaObserveError::Timeout { servers, deadline }),
        }
    }
}

/// Where the group starts on a partition without a committed offset
/// (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// At the log start: the whole log is lag.
    Earliest,
    /// At the high watermark when a consumer takes the partition: only
    /// records produced after that are lag.
    Latest,
}

impl OffsetReset {
    /// From the client properties; librdkafka's synonyms included. The
    /// consumer's default is `earliest`.
    pub fn of(properties: &BTreeMap<String, String>) -> Self {
        match properties.get("auto.offset.reset").map(String::as_str) {
            Some("latest" | "largest" | "end") => OffsetReset::Latest,
            _ => OffsetReset::Earliest,
        }
    }
}

/// For `latest`: the offset each partition without a committed offset will
/// start from. While no pod holds the partition, every new record will be
/// skipped, so the start follows the high watermark; once a pod holds it,
/// the start stays where it was last seen. `starts` carries this between
/// intervals; partitions that have committed are dropped from it. With
/// `earliest` nothing is kept: lag counts from the log start.
pub fn uncommitted_starts(
    reset: OffsetReset,
    offsets: &[PartitionOffsets],
    assigned: &BTreeSet<i32>,
    starts: &mut BTreeMap<i32, i64>,
) {
    if reset == OffsetReset::Earliest {
        starts.clear();
        return;
    }
    let uncommitted: BTreeSet<i32> = offsets
        .iter()
        .filter(|o| o.committed.is_none())
        .map(|o| o.partition)
        .collect();
    starts.retain(|p, _| uncommitted.contains(p));
    for o in offsets.iter().filter(|o| o.committed.is_none()) {
        let start = starts.entry(o.partition).or_insert(o.high);
        if !assigned.contains(&o.partition) {
            *start = o.high;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, high: i64, committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            partition,
            low: 0,
            high,
            committed,
        }
    }

    #[test]
    fn with_latest_the_start_follows_the_log_until_a_pod_takes_the_partition() {
        let assigned = |ps: &[i32]| ps.iter().copied().collect::<BTreeSet<i32>>();
        let mut starts = BTreeMap::new();
        let latest = OffsetReset::Latest;
        // No pod yet: whatever is produced will be skipped.
        uncommitted_starts(
            latest,
            &[at(0, 1_000, None), at(1, 50, None)],
            &assigned(&[]),
            &mut starts,
        );
        assert_eq!(starts, BTreeMap::from([(0, 1_000), (1, 50)]));
        uncommitted_starts(
            latest,
            &[at(0, 1_200, None), at(1, 60, None)],
            &assigned(&[]),
            &mut starts,
        );
        assert_eq!(starts, BTreeMap::from([(0, 1_200), (1, 60)]));
        // A pod holds partition 0: its start stays; partition 1 still follows.
        uncommitted_starts(
            latest,
            &[at(0, 1_500, None), at(1, 70, None)],
            &assigned(&[0]),
            &mut starts,
        );
        assert_eq!(starts, BTreeMap::from([(0, 1_200), (1, 70)]));
        // Committed: the committed offset counts from now on.
        uncommitted_starts(
            latest,
            &[at(0, 1_600, Some(1_550)), at(1, 80, None)],
            &assigned(&[0]),
            &mut starts,
        );
        assert_eq!(starts, BTreeMap::from([(1, 80)]));
        uncommitted_starts(
            OffsetReset::Earliest,
            &[at(1, 90, None)],
            &assigned(&[]),
            &mut starts,
        );
        assert!(starts.is_empty());
    }

    #[test]
    fn auto_offset_reset_and_its_synonyms() {
        let props = |v: &str| BTreeMap::from([("auto.offset.reset".to_string(), v.to_string())]);
        for v in ["latest", "largest", "end"] {
            assert_eq!(OffsetReset::of(&props(v)), OffsetReset::Latest, "{v}");
        }
        for v in ["earliest", "smallest", "beginning"] {
            assert_eq!(OffsetReset::of(&props(v)), OffsetReset::Earliest, "{v}");
        }
        assert_eq!(OffsetReset::of(&BTreeMap::new()), OffsetReset::Earliest);
    }

    #[test]
    fn consumers_that_differ_only_in_fetch_settings_share_a_client() {
        let target = |pairs: &[(&str, &str)]| KafkaTarget {
            bootstrap_servers: "k:9092".into(),
            topic: "t".into(),
            group: "g".into(),
            properties: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let a = target(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "p"),
            ("ssl.ca.pem", "ca"),
            ("fetch.wait.max.ms", "100"),
            ("auto.offset.reset", "latest"),
        ]);
        let b = target(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "p"),
            ("ssl.ca.pem", "ca"),
        ]);
        let c = target(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "other"),
            ("ssl.ca.pem", "ca"),
        ]);
        assert_eq!(connection_properties(&a), connection_properties(&b));
        assert_ne!(connection_properties(&b), connection_properties(&c));
    }

    #[test]
    fn each_connection_failure_has_its_own_reason() {
        let connect = |failure| KafkaObserveError::Connect {
            failure,
            message: String::new(),
        };
        assert_eq!(
            connect(ConnectFailure::Tls).reason(),
            reason::KAFKA_TLS_FAILED
        );
        assert_eq!(
            connect(ConnectFailure::Authentication).reason(),
            reason::KAFKA_AUTHENTICATION_FAILED
        );
        assert_eq!(
            connect(ConnectFailure::Unreachable).reason(),
            reason::KAFKA_UNREACHABLE
        );
        let missing = KafkaObserveError::TopicMissing {
            servers: "k".into(),
            topic: "t".into(),
        };
        assert_eq!(missing.reason(), reason::TOPIC_NOT_FOUND);
    }
}
