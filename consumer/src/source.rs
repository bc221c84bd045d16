//! The consume loop: librdkafka → buffer → sink → commit.
//!
//! The loop runs on its own thread with a [`BaseConsumer`]; sink writes run on
//! the tokio runtime, each holding an in-flight permit. When every permit is
//! taken the loop waits instead of polling (backpressure) while librdkafka's
//! prefetch stays inside its budgeted bounds. Acknowledgements come back over a
//! channel and move the commit position ([`OffsetTracker`]).
//!
//! On revocation (inside librdkafka's rebalance callback) and on shutdown the
//! loop flushes, waits for the writes in flight, commits, and only then lets
//! the partitions go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::budget::{self, BudgetRequest};
use crate::buffer::{adaptive_batch_size, Buffer, FlushTrigger};
use crate::config::Settings;
use crate::limits::{InFlight, Limits, LiveLimits};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::quantity::format_bytes;
use crate::sink::Sink;
use crate::{Error, Result};
use millpond_kafka::connect_failure::{self as kafka_failure, FailureCapture};

/// Health of the loop, read by `/healthz` and `/readyz`.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    last_turn_ms: AtomicU64,
    pub assigned: AtomicUsize,
    pub broker_up: AtomicBool,
    pub stall_limit: Duration,
}

impl Health {
    pub fn new(stall_limit: Duration) -> Self {
        Health {
            started: Instant::now(),
            last_turn_ms: AtomicU64::new(0),
            assigned: AtomicUsize::new(0),
            broker_up: AtomicBool::new(false),
            stall_limit,
        }
    }

    fn turn(&self) {
        self.last_turn_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the loop last turned.
    pub fn stalled_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_turn_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// What the loop shares with the HTTP endpoints.
#[derive(Clone)]
pub struct Shared {
    pub metrics: Metrics,
    pub limits: LiveLimits,
    pub health: Arc<Health>,
    pub shutdown: Arc<AtomicBool>,
}

type Ack = (u64, Result<()>);

/// State touched by both the loop and the rebalance callback.
struct Pipeline {
    topic: String,
    buffer: Buffer,
    tracker: OffsetTracker,
    acks_tx: mpsc::Sender<Ack>,
    acks_rx: mpsc::Receiver<Ack>,
    sink: Arc<Sink>,
    inflight: InFlight,
    runtime: Handle,
    shared: Shared,
    limits: Limits,
    assigned: BTreeSet<i32>,
    /// First permanent sink error; nothing is dispatched after it.
    failed: Option<Error>,
    /// Batches handed to the sink whose result has not come back.
    outstanding: usize,
}

impl Pipeline {
    /// Hands everything buffered to the sink, waiting for a permit if all are taken.
    fn flush(&mut self, trigger: FlushTrigger) {
        if self.failed.is_some() {
            return;
        }
        let Some(batch) = self.buffer.take(trigger) else {
            return;
        };
        let m = &self.shared.metrics;
        m.buffer_bytes.set(0);
        m.buffer_fullness.set(0.0);
        let sem = self.inflight.semaphore();
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                m.backpressure_events_total.inc();
                let waited = Instant::now();
                let permit = loop {
                    self.shared.health.turn();
                    let attempt = self.runtime.block_on(async {
                        tokio::time::timeout(Duration::from_secs(1), sem.clone().acquire_owned())
                            .await
                    });
                    if let Ok(p) = attempt {
                        break p.expect("semaphore is never closed");
                    }
                };
                m.backpressure_wait_seconds_total
                    .inc_by(waited.elapsed().as_secs_f64());
                permit
            }
        };
        m.flushes_total.with_label_values(&[trigger.as_str()]).inc();
        m.bytes_total.inc_by(batch.bytes());
        self.tracker.dispatched(&batch);
        self.outstanding += 1;
        let id = batch.id;
        let records = batch.records();
        let batch = Arc::new(batch);
        let sink = self.sink.clone();
        let tx = self.acks_tx.clone();
        let metrics = self.shared.metrics.clone();
        metrics.in_flight.inc();
        self.runtime.spawn(async move {
            let started = Instant::now();
            let result = sink.write(batch).await;
            metrics
                .flush_duration_seconds
                .observe(started.elapsed().as_secs_f64());
            metrics.in_flight.dec();
            match &result {
                Ok(()) => metrics.records_delivered_total.inc_by(records),
                Err(e) => metrics.error(e.metric_label()),
            }
            drop(permit);
            let _ = tx.send((id, result));
        });
    }

    fn handle_ack(&mut self, (id, result): Ack) {
        self.outstanding -= 1;
        match result {
            Ok(()) => self.tracker.acked(id),
            Err(e) => {
                tracing::error!(batch = id, error = %e, "sink write failed permanently; nothing past it will be committed");
                self.failed.get_or_insert(e);
            }
        }
    }

    /// Takes the acknowledgements that already arrived.
    fn drain_acks(&mut self) {
        while let Ok(ack) = self.acks_rx.try_recv() {
            self.handle_ack(ack);
        }
    }

    /// Blocks until no batch holding records of `partitions` is in flight, or,
    /// after a permanent sink error, until every other write came back.
    fn wait_for(&mut self, partitions: Option<&[i32]>) {
        self.drain_acks();
        while self.tracker.unacked(partitions) > 0 {
            // A failed batch never acks.
            if self.failed.is_some() && self.outstanding == 0 {
                break;
            }
            self.shared.health.turn();
            match self.acks_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(ack) => self.handle_ack(ack),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Commits every partition whose acknowledged position moved.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let offsets = self.tracker.to_commit();
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            if let Err(e) = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o)) {
                tracing::error!(partition = p, error = %e, "bad offset");
            }
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.tracker.committed(&offsets);
                for (p, o) in self.tracker.committed_offsets() {
                    self.shared
                        .metrics
                        .committed_offset
                        .with_label_values(&[&p.to_string()])
                        .set(o);
                }
                tracing::debug!(?offsets, "committed");
            }
            Err(e) => {
                self.shared.metrics.error("commit");
                tracing::warn!(error = %e, ?offsets, "commit failed; will retry with the next acknowledgement");
            }
        }
    }

    fn set_assigned(&mut self) {
        self.shared
            .health
            .assigned
            .store(self.assigned.len(), Ordering::Relaxed);
        self.shared
            .metrics
            .assigned_partitions
            .set(self.assigned.len() as i64);
    }
}

/// librdkafka callbacks: rebalance hand-off, statistics, errors.
struct LoopContext {
    pipeline: Arc<Mutex<Pipeline>>,
    shared: Shared,
    topic: String,
}

/// Locks `m`; a lock poisoned by a panic still gives its data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for LoopContext {
    fn stats(&self, stats: Statistics) {
        let m = &self.shared.metrics;
        let up = stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.shared.health.broker_up.store(up, Ordering::Relaxed);
        let mut prefetch = 0u64;
        if let Some(topic) = stats.topics.get(&self.topic) {
            let assigned = lock(&self.pipeline).assigned.clone();
            for (id, p) in &topic.partitions {
                if *id < 0 {
                    continue;
                }
                prefetch += p.fetchq_size;
                // The position: past the last record handed to the loop, or
                // the next fetch (known once the offset reset resolved).
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.next_offset
                };
                let lag = crate::metrics::reported_lag(p.consumer_lag, p.hi_offset, position);
                if let (true, Some(lag)) = (assigned.contains(id), lag) {
                    m.partition_lag
                        .with_label_values(&[&id.to_string()])
                        .set(lag);
                }
            }
        }
        m.prefetch_bytes.set(prefetch as i64);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.shared.health.broker_up.store(false, Ordering::Relaxed);
        }
        self.shared.metrics.error("kafka");
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked: Vec<i32> = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                let started = Instant::now();
                let mut p = lock(&self.pipeline);
                p.flush(FlushTrigger::Revoke);
                p.wait_for(Some(&revoked));
                p.commit(consumer);
                for part in &revoked {
                    p.tracker.forget(*part);
                    p.assigned.remove(part);
                    self.shared.metrics.forget_partition(*part);
                }
                p.set_assigned();
                tracing::info!(
                    ?revoked,
                    took_ms = started.elapsed().as_millis() as u64,
                    "partitions revoked: flushed, committed, handed over"
                );
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let added: Vec<i32> = tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            let mut p = lock(&self.pipeline);
            p.assigned.extend(added.iter().copied());
            p.set_assigned();
            tracing::info!(?added, assigned = ?p.assigned, "partitions assigned");
        }
    }
}

/// Connects, checks the topic, and runs the loop until shutdown or a
/// permanent error. Returns after the final commit.
pub fn run(settings: Settings, shared: Shared, runtime: Handle) -> Result<()> {
    // The worst case has every partition assigned here: plan for all of them.
    let partitions = {
        let mut config = ClientConfig::new();
        for (k, v) in settings.metadata_properties() {
            config.set(k, v);
        }
        let probe: BaseConsumer<FailureCapture> = config
            .create_with_context(FailureCapture::default())
            .map_err(|e| Error::kafka("creating the metadata client", e))?;
        check_topic(
            &probe,
            &settings.kafka_properties,
            &settings.bootstrap_servers,
            &settings.topic,
            settings.startup_timeout,
        )?
    };
    let plan = budget::plan(&BudgetRequest {
        partitions,
        ..settings.budget.clone()
    })?;
    tracing::info!(
        partitions,
        budget = %format_bytes(plan.budget),
        prefetch = %format_bytes(plan.prefetch_bytes),
        queued_max_messages_kbytes = plan.queued_max_messages_kbytes,
        max_partition_fetch_bytes = plan.max_partition_fetch_bytes,
        fetch_max_bytes = plan.fetch_max_bytes,
        flush_bytes = %format_bytes(plan.flush_bytes),
        "memory budget planned for every partition assigned"
    );
    let mut config = ClientConfig::new();
    for (k, v) in settings.consumer_properties(&plan) {
        config.set(k, v);
    }
    shared
        .limits
        .rebase(plan, settings.budget.flush_bytes.is_none());
    shared.health.broker_up.store(true, Ordering::Relaxed);

    let dead_letter = match &settings.dead_letter_topic {
        Some(topic) => Some(DeadLetter::new(&settings, topic.clone())?),
        None => None,
    };
    let limits = shared.limits.current();
    let (acks_tx, acks_rx) = mpsc::channel();
    let pipeline = Arc::new(Mutex::new(Pipeline {
        topic: settings.topic.clone(),
        buffer: Buffer::new(&settings.topic, settings.sink_metadata),
        tracker: OffsetTracker::default(),
        acks_tx,
        acks_rx,
        sink: Arc::new(settings.sink),
        inflight: InFlight::new(limits.max_in_flight),
        runtime: runtime.clone(),
        shared: shared.clone(),
        limits: limits.clone(),
        assigned: BTreeSet::new(),
        failed: None,
        outstanding: 0,
    }));
    let context = LoopContext {
        pipeline: pipeline.clone(),
        shared: shared.clone(),
        topic: settings.topic.clone(),
    };
    let consumer: BaseConsumer<LoopContext> = config
        .create_with_context(context)
        .map_err(|e| Error::kafka("creating the consumer", e))?;

    consumer
        .subscribe(&[&settings.topic])
        .map_err(|e| Error::kafka(format!("subscribing to {}", settings.topic), e))?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, "subscribed");

    let outcome = consume(
        &consumer,
        &pipeline,
        &shared,
        dead_letter.as_ref(),
        &runtime,
    );

    // Final hand-off: flush, wait, commit; then close (which revokes with an empty buffer).
    {
        let mut p = lock(&pipeline);
        if outcome.is_ok() || matches!(outcome, Err(Error::Poison { .. })) {
            p.flush(FlushTrigger::Shutdown);
        }
        p.wait_for(None);
        p.commit(&consumer);
    }
    // Closing revokes what is still assigned; the failure stays recorded until
    // then so the revocation does not wait for a batch that will never ack.
    drop(consumer);
    tracing::info!("consumer closed");
    let failed = lock(&pipeline).failed.take();
    match failed {
        Some(e) => Err(e),
        None => outcome,
    }
}

/// The loop proper. Returns on shutdown or after a permanent sink error (kept
/// in the pipeline), or with the error that stopped it.
fn consume(
    consumer: &BaseConsumer<LoopContext>,
    pipeline: &Mutex<Pipeline>,
    shared: &Shared,
    dead_letter: Option<&DeadLetter>,
    runtime: &Handle,
) -> Result<()> {
    let mut limits_rx = shared.limits.subscribe();
    let m = &shared.metrics;
    m.set_limits(&limits_rx.borrow_and_update().clone());
    let mut limits = shared.limits.current();
    loop {
        shared.health.turn();
        if shared.shutdown.load(Ordering::Relaxed) {
            tracing::info!("shutdown requested: flushing and committing");
            return Ok(());
        }
        if limits_rx.has_changed().unwrap_or(false) {
            limits = limits_rx.borrow_and_update().clone();
            let mut p = lock(pipeline);
            p.inflight.resize(runtime, limits.max_in_flight);
            p.limits = limits.clone();
            m.set_limits(&limits);
            tracing::info!(?limits, "limits changed");
        }

        let (batch_size, poll_timeout) = {
            let mut p = lock(pipeline);
            p.drain_acks();
            if p.failed.is_some() {
                // `run` waits for the other writes, commits what is safe and reports it.
                return Ok(());
            }
            p.commit(consumer);
            let fullness = p.buffer.fullness(limits.flush_bytes);
            m.buffer_fullness.set(fullness);
            let size = adaptive_batch_size(limits.consume_batch_size, fullness);
            m.consume_batch_size_current.set(size as i64);
            let timeout = p
                .buffer
                .time_left(Instant::now(), limits.flush_interval())
                .map_or(Duration::from_millis(100), |t| {
                    t.min(Duration::from_millis(100))
                });
            (size, timeout)
        };

        // One clock reading per turn, taken when the first record arrives:
        // it only dates the buffer's first record for the flush interval.
        let mut turn_started = None;
        for n in 0..batch_size {
            let timeout = if n == 0 { poll_timeout } else { Duration::ZERO };
            let Some(polled) = consumer.poll(timeout) else {
                break;
            };
            let msg = match polled {
                Ok(msg) => msg,
                Err(e) => {
                    let code = e.rdkafka_error_code();
                    if let Some(why) = code.and_then(crate::error::unreadable_batch) {
                        return Err(Error::Unreadable {
                            topic: lock(pipeline).topic.clone(),
                            code: code.expect("matched above"),
                            why,
                        });
                    }
                    m.error("kafka");
                    tracing::warn!(error = %e, "poll error");
                    break;
                }
            };
            m.records_total.inc();
            let now = *turn_started.get_or_insert_with(Instant::now);
            let mut p = lock(pipeline);
            if msg.payload().is_none() {
                // A tombstone (null value) deletes its key in a compacted
                // topic: there is nothing to write. Committed past, counted.
                p.buffer.skip(msg.partition(), msg.offset(), now);
                m.records_skipped_total
                    .with_label_values(&["tombstone"])
                    .inc();
                continue;
            }
            let pushed = p.buffer.push(
                msg.partition(),
                msg.offset(),
                msg.timestamp().to_millis(),
                msg.payload(),
                now,
            );
            if let Err(rejected) = pushed {
                m.error("poison");
                match dead_letter {
                    Some(dlq) => {
                        dlq.send(runtime, &msg, &rejected.0)?;
                        p.buffer.skip(msg.partition(), msg.offset(), now);
                        m.dead_letter_total.inc();
                    }
                    None => {
                        return Err(Error::Poison {
                            topic: msg.topic().to_string(),
                            partition: msg.partition(),
                            offset: msg.offset(),
                            reason: format!(
                                "{} (set DEAD_LETTER_TOPIC to divert such records)",
                                rejected.0
                            ),
                        });
                    }
                }
            }
            if p.buffer.bytes() >= limits.flush_bytes {
                break;
            }
        }

        let mut p = lock(pipeline);
        m.buffer_bytes.set(p.buffer.bytes() as i64);
        m.buffer_fullness.set(p.buffer.fullness(limits.flush_bytes));
        if let Some(trigger) =
            p.buffer
                .due(Instant::now(), limits.flush_bytes, limits.flush_interval())
        {
            p.flush(trigger);
        }
    }
}

/// Fails fast, with a message a person can act on, when Kafka cannot be
/// reached, refuses the TLS handshake or the credentials, or the topic is
/// missing; returns the topic's partition count.
fn check_topic(
    consumer: &BaseConsumer<FailureCapture>,
    properties: &BTreeMap<String, String>,
    servers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<u32> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| {
        // The failures librdkafka logged wait on the main queue: serve them.
        kafka_failure::serve_events(consumer, Duration::from_millis(200));
        let last = consumer.context().last_reason();
        let (_, message) =
            kafka_failure::diagnose(servers, last.as_deref(), properties, Duration::from_secs(5));
        Error::kafka(
            format!("{message}; no metadata within {}s", timeout.as_secs()),
            e,
        )
    })?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            tracing::info!(topic, partitions = t.partitions().len(), "topic found");
            Ok(t.partitions().len() as u32)
        }
        _ => Err(Error::Config(format!(
            "topic `{topic}` does not exist on {servers} (create it first)"
        ))),
    }
}

/// Producer for records the sink cannot take.
struct DeadLetter {
    topic: String,
    producer: FutureProducer,
}

impl DeadLetter {
    fn new(settings: &Settings, topic: String) -> Result<Self> {
        let mut config = ClientConfig::new();
        for (k, v) in &settings.kafka_properties {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", &settings.bootstrap_servers)
            .set("acks", "all")
            .set("message.timeout.ms", "30000");
        let producer = config
            .create()
            .map_err(|e| Error::kafka("creating the dead-letter producer", e))?;
        Ok(DeadLetter { topic, producer })
    }

    /// Sends one record and waits for Kafka to acknowledge it.
    fn send<M: Message>(&self, runtime: &Handle, msg: &M, reason: &str) -> Result<()> {
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "millpond.error",
                value: Some(reason),
            })
            .insert(Header {
                key: "millpond.source.topic",
                value: Some(msg.topic()),
            })
            .insert(Header {
                key: "millpond.source.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "millpond.source.offset",
                value: Some(&offset),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = msg.key() {
            record = record.key(k);
        }
        if let Some(v) = msg.payload() {
            record = record.payload(v);
        }
        let delivery = runtime.block_on(self.producer.send(record, Duration::from_secs(30)));
        match delivery {
            Ok(_) => {
                tracing::warn!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), reason, dead_letter = %self.topic, "record sent to the dead-letter topic");
                Ok(())
            }
            Err((e, _)) => Err(Error::kafka(
                format!(
                    "sending {}/{}@{} to dead-letter topic {}",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    self.topic
                ),
                e,
            )),
        }
    }
}
