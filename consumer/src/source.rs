//! The consume loop: librdkafka → buffer → sink → commit.
//!
//! The loop runs on its own thread with a [`BaseConsumer`] and feeds the
//! delivery protocol ([`Delivery`], which does no I/O); sink writes run on
//! the tokio runtime, each holding an in-flight permit, retried while the
//! sink is down ([`retry`]). When a batch waits for a permit the loop waits
//! for an acknowledgement instead of polling (backpressure) while
//! librdkafka's prefetch stays inside its budgeted bounds; a long wait
//! pauses the partitions and polls, so the group membership holds.
//! Acknowledgements come back over a channel and move the commit position.
//!
//! On revocation (inside librdkafka's rebalance callback) and on shutdown the
//! loop flushes, waits for the writes in flight, commits, and only then lets
//! the partitions go.
//!
//! The memory plan covers the partitions the topic had at start, each with
//! its own prefetch queue. When partitions are added and more than that many
//! are assigned here, the new ones stay paused, the loop hands everything
//! off as on shutdown, closes the consumer and starts again with a plan for
//! the topic as it is now (librdkafka's queue sizes are fixed when the
//! client is created).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::budget::{self, BudgetRequest};
use crate::buffer::{adaptive_batch_size, Batch, FlushTrigger};
use crate::config::Settings;
use crate::delivery::{Action, Delivery, Knobs, Written};
use crate::limits::{Limits, LiveLimits};
use crate::metrics::Metrics;
use crate::quantity::format_bytes;
use crate::sink::retry::{self, RetryPolicy, SinkHealth};
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

type Ack = (u64, Written);

/// How long a paused loop waits in `poll` (it serves rebalances and keeps
/// the group membership meanwhile), and a blocked one for an acknowledgement
/// between two looks at the shutdown flag.
const PAUSED_POLL: Duration = Duration::from_millis(100);

/// Longest wait for a permit before the partitions are paused. Pausing
/// makes librdkafka drop what it prefetched for them (it fetches again on
/// resume), so a sink that is merely slow is waited for without polling;
/// only a long wait pauses, well within `max.poll.interval.ms`.
const PAUSE_AFTER_MAX: Duration = Duration::from_secs(10);

/// What the loop does in one turn.
enum Step {
    /// Pull up to this many records, waiting at most this long for the first.
    Pull(usize, Duration),
    /// A batch waits for a permit: wait for an acknowledgement.
    WaitForSink,
    /// The wait went on: the partitions are paused; poll for rebalances.
    PollPaused,
}

/// The delivery protocol and what carries out its actions: state touched by
/// both the loop and the rebalance callback.
struct Pipeline {
    topic: String,
    delivery: Delivery,
    acks_tx: mpsc::Sender<Ack>,
    acks_rx: mpsc::Receiver<Ack>,
    sink: Arc<Sink>,
    retry: RetryPolicy,
    sink_health: SinkHealth,
    dead_letter: Option<DeadLetter>,
    runtime: Handle,
    shared: Shared,
    consume_batch_size: usize,
    handoff_timeout: Duration,
    assigned: BTreeSet<i32>,
    /// Whether the assigned partitions are paused (a batch waited for a
    /// permit longer than `pause_after`).
    paused: bool,
    /// Since when a batch waits for a permit.
    blocked_since: Option<Instant>,
    /// See [`PAUSE_AFTER_MAX`].
    pause_after: Duration,
    /// What stopped delivery for good (a record nothing can take).
    stopped: Option<Error>,
    /// Partitions the memory plan holds prefetch queues for.
    planned_partitions: usize,
    /// More partitions were assigned (this many) than the plan holds:
    /// re-plan.
    outgrown: Option<usize>,
    /// When the fullness was last integrated.
    observed_at: Instant,
}

impl Pipeline {
    fn set_limits(&mut self, limits: &Limits) {
        self.delivery.set_knobs(knobs(limits));
        self.sink.set_max_in_flight(limits.max_in_flight);
        self.consume_batch_size = limits.consume_batch_size;
        self.shared.metrics.set_limits(limits);
        tracing::info!(?limits, "limits changed");
        self.carry_out();
    }

    /// Carries out what the delivery protocol asks for.
    fn carry_out(&mut self) {
        while let Some(action) = self.delivery.next_action() {
            match action {
                Action::Write(batch) => self.write(batch),
                Action::DeadLetter {
                    batch,
                    status,
                    reason,
                } => {
                    if let Err(e) = self.dead_letter_refused(&batch, status, &reason) {
                        self.stop(e);
                    }
                }
            }
        }
    }

    /// Starts writing a batch on the runtime; the outcome comes back as an ack.
    fn write(&self, batch: Arc<Batch>) {
        let m = self.shared.metrics.clone();
        m.flushes_total
            .with_label_values(&[batch.trigger.as_str()])
            .inc();
        m.bytes_total.inc_by(batch.bytes());
        m.in_flight.inc();
        let (sink, tx, policy) = (self.sink.clone(), self.acks_tx.clone(), self.retry);
        let health = self.sink_health.clone();
        self.runtime.spawn(async move {
            let started = Instant::now();
            let outcome = retry::write(&sink, batch.clone(), policy, &health).await;
            m.flush_duration_seconds
                .observe(started.elapsed().as_secs_f64());
            m.in_flight.dec();
            match &outcome {
                Written::Done => m.records_delivered_total.inc_by(batch.records()),
                Written::Refused { .. } => m.error("refused"),
                Written::GaveUp(_) => m.error("sink"),
            }
            let _ = tx.send((batch.id, outcome));
        });
    }

    /// Sends the one record of a batch the sink refused to the dead-letter
    /// topic, or says why the consumer must stop.
    fn dead_letter_refused(
        &mut self,
        batch: &Batch,
        status: Option<u16>,
        reason: &str,
    ) -> Result<()> {
        let chunk = batch
            .chunks
            .iter()
            .find(|c| c.records == 1)
            .expect("a refused batch of one record");
        let (partition, offset) = (chunk.partition, chunk.offsets[0]);
        let line = chunk.lines().next().unwrap_or_default();
        let Some(dlq) = &self.dead_letter else {
            // A refusal the sink could name keeps its name first, for the
            // operator's `Degraded` reason.
            let (named, said) = match millpond_core::sink::trouble::of(reason) {
                Some(t) => (format!("{t}: "), &reason[t.len() + 2..]),
                None => (String::new(), reason),
            };
            return Err(Error::Poison {
                topic: self.topic.clone(),
                partition,
                offset,
                reason: format!(
                    "{named}the sink refused it: {said} (set DEAD_LETTER_TOPIC to divert such records)"
                ),
            });
        };
        let record = Source {
            topic: &self.topic,
            partition,
            offset,
            key: None,
            value: Some(line),
        };
        dlq.send(
            &self.runtime,
            &record,
            &format!("the sink refused it: {reason}"),
            status,
        )?;
        self.shared.metrics.sink_refused_records_total.inc();
        self.shared.metrics.dead_letter_total.inc();
        self.sink.dead_lettered(batch);
        self.delivery.dead_lettered(batch.id);
        Ok(())
    }

    /// Stops the loop: what was cut before is still written, nothing past
    /// `e` is committed; the first error is the one reported.
    fn stop(&mut self, e: Error) {
        tracing::error!(error = %e, "stopping; nothing past it will be committed");
        self.stopped.get_or_insert(e);
    }

    fn acked(&mut self, (id, outcome): Ack) {
        if let Written::GaveUp(why) = &outcome {
            tracing::error!(batch = id, error = %why, "the sink stayed down past SINK_GIVE_UP_AFTER_MS; nothing past it will be committed");
        }
        self.delivery.written(id, outcome);
        self.carry_out();
    }

    /// Takes the acknowledgements that already arrived.
    fn drain_acks(&mut self) {
        while let Ok(ack) = self.acks_rx.try_recv() {
            self.acked(ack);
        }
    }

    /// Waits until no batch holding records of `partitions` (all when `None`)
    /// is unwritten, delivery stopped, or `timeout` passed. True when
    /// everything was written.
    fn wait_for(&mut self, partitions: Option<&[i32]>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_acks();
            if self.delivery.unacked(partitions) == 0 {
                return true;
            }
            let idle = self.delivery.writing() == 0
                && (self.delivery.waiting() == 0 || self.delivery.halted().is_some());
            let ended = self.delivery.halted().is_some() || self.stopped.is_some();
            if (ended && idle) || Instant::now() >= deadline {
                return false;
            }
            self.shared.health.turn();
            self.observe();
            match self.acks_rx.recv_timeout(PAUSED_POLL) {
                Ok(ack) => self.acked(ack),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Hands `partitions` off (revoked, or the process stops): cuts what is
    /// buffered, waits for the writes, commits, and forgets them. When the
    /// sink does not take them within the hand-off time they go uncommitted:
    /// the next owner reads them again.
    fn hand_off<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        partitions: &[i32],
        trigger: FlushTrigger,
    ) {
        self.sink.hurry(true);
        self.delivery.hand_off(trigger);
        self.carry_out();
        let done = self.wait_for(Some(partitions), self.handoff_timeout);
        self.sink.hurry(false);
        self.commit(consumer);
        if done {
            self.delivery.forget(partitions);
        } else {
            tracing::warn!(?partitions, timeout_s = self.handoff_timeout.as_secs(), "the sink did not take the partitions' records within the hand-off time (HANDOFF_TIMEOUT_MS); letting them go uncommitted, the next owner reads them again");
            self.delivery.abandon(partitions);
        }
    }

    /// Commits every partition whose written position moved.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let offsets = self.delivery.to_commit();
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
                self.delivery.committed(&offsets);
                for (p, o) in self.delivery.committed_offsets() {
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

    /// Publishes the buffer's state: pending bytes, fullness (and its
    /// integral over time), the sink's health.
    fn observe(&mut self) {
        let m = &self.shared.metrics;
        let fullness = self.delivery.fullness();
        let now = Instant::now();
        let elapsed = now.duration_since(self.observed_at).as_secs_f64();
        // The fullness moved somewhere between the two looks: the mean of both.
        let before = m.buffer_fullness.get();
        m.buffer_fullness_seconds_total
            .inc_by((before + fullness) / 2.0 * elapsed);
        if self.blocked_since.is_some() {
            m.backpressure_wait_seconds_total.inc_by(elapsed);
        }
        self.observed_at = now;
        m.buffer_fullness.set(fullness);
        m.buffer_bytes.set(self.delivery.pending_bytes() as i64);
        self.sink_health.refresh();
    }

    /// Pauses or resumes every assigned partition.
    fn pause<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, pause: bool) {
        if pause == self.paused {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in &self.assigned {
            tpl.add_partition(&self.topic, *p);
        }
        let result = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        match result {
            Ok(()) => self.paused = pause,
            Err(e) => tracing::warn!(error = %e, pause, "pausing or resuming partitions failed"),
        }
    }

    /// Adds one consumed record, or diverts it when it cannot be delivered.
    fn take<M: Message>(&mut self, msg: &M, now: Instant) -> Result<()> {
        let m = &self.shared.metrics;
        m.records_total.inc();
        if msg.payload().is_none() {
            // A tombstone (null value) deletes its key in a compacted
            // topic: there is nothing to write. Committed past, counted.
            self.delivery.skip(msg.partition(), msg.offset(), now);
            m.records_skipped_total
                .with_label_values(&["tombstone"])
                .inc();
            return Ok(());
        }
        let pushed = self.delivery.push(
            msg.partition(),
            msg.offset(),
            msg.timestamp().to_millis(),
            msg.payload(),
            now,
        );
        let Err(rejected) = pushed else {
            return Ok(());
        };
        m.error("poison");
        let Some(dlq) = &self.dead_letter else {
            return Err(Error::Poison {
                topic: msg.topic().to_string(),
                partition: msg.partition(),
                offset: msg.offset(),
                reason: format!(
                    "{} (set DEAD_LETTER_TOPIC to divert such records)",
                    rejected.0
                ),
            });
        };
        dlq.send(&self.runtime, &Source::of(msg), &rejected.0, None)?;
        self.delivery.skip(msg.partition(), msg.offset(), now);
        m.dead_letter_total.inc();
        Ok(())
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

/// The protocol's view of the limits.
fn knobs(limits: &Limits) -> Knobs {
    Knobs {
        flush_bytes: limits.flush_bytes,
        flush_interval: limits.flush_interval(),
        max_in_flight: limits.max_in_flight,
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
                let revoked = partitions_of(tpl, &self.topic);
                let started = Instant::now();
                let mut p = lock(&self.pipeline);
                p.hand_off(consumer, &revoked, FlushTrigger::Revoke);
                for part in &revoked {
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let added = partitions_of(tpl, &self.topic);
            let mut p = lock(&self.pipeline);
            p.assigned.extend(added.iter().copied());
            p.set_assigned();
            if p.assigned.len() > p.planned_partitions {
                tracing::warn!(
                    assigned = p.assigned.len(),
                    planned = p.planned_partitions,
                    "more partitions assigned than the memory plan holds (partitions were added to the topic): handing off and re-planning"
                );
                p.outgrown = Some(p.assigned.len());
            }
            // Partitions given while the loop is paused wait too, and so do
            // those beyond the plan until it is re-made. Others are resumed:
            // librdkafka keeps a partition paused across a revoke and a
            // later assignment, so one revoked while paused would come back
            // paused and never be read.
            let result = if p.paused || p.outgrown.is_some() {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, paused = p.paused, "pausing or resuming newly assigned partitions failed");
            }
            tracing::info!(?added, assigned = ?p.assigned, "partitions assigned");
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// How one consumer's run ended.
enum Ended {
    /// Shutdown, or delivery stopped: the process ends.
    Done,
    /// More partitions were assigned (this many) than the plan holds;
    /// everything was handed off and committed.
    Outgrown(u32),
}

/// Connects, checks the topic, and runs the loop until shutdown or a
/// permanent error, with a new consumer and memory plan whenever the topic
/// outgrows the plan. Returns after the final commit.
pub fn run(settings: Settings, shared: Shared, runtime: Handle) -> Result<()> {
    let mut at_least = 1;
    loop {
        let plan = plan_for_topic(&settings, at_least)?;
        match run_planned(&settings, &shared, &runtime, plan)? {
            Ended::Done => return Ok(()),
            Ended::Outgrown(assigned) => {
                shared.metrics.replans_total.inc();
                at_least = assigned;
            }
        }
    }
}

/// One consumer with one memory plan, from subscribe to close.
fn run_planned(
    settings: &Settings,
    shared: &Shared,
    runtime: &Handle,
    plan: budget::BudgetPlan,
) -> Result<Ended> {
    let mut config = ClientConfig::new();
    for (k, v) in settings.consumer_properties(&plan) {
        config.set(k, v);
    }
    let parts = settings_parts(settings, &config, &plan)?;
    let m = &shared.metrics;
    m.planned_partitions.set(plan.partitions as i64);
    m.prefetch_limit_bytes.set(plan.prefetch_bytes as i64);
    shared
        .limits
        .rebase(plan, settings.budget.flush_bytes.is_none());
    shared.health.broker_up.store(true, Ordering::Relaxed);

    let pipeline = Arc::new(Mutex::new(Pipeline::new(parts, shared, runtime)));
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

    let outcome = consume(&consumer, &pipeline, shared);
    lock(&pipeline).finish(&consumer, &outcome);
    // Closing revokes what is still assigned (with nothing left to wait for).
    drop(consumer);
    tracing::info!("consumer closed");
    let mut p = lock(&pipeline);
    if let Some(e) = p.stopped.take() {
        return Err(e);
    }
    match (p.delivery.halted(), outcome, p.outgrown) {
        (Some(why), Ok(()), _) => Err(Error::Sink(why.to_string())),
        (_, Err(e), _) => Err(e),
        (None, Ok(()), Some(assigned)) if !shared.shutdown.load(Ordering::Relaxed) => {
            Ok(Ended::Outgrown(assigned as u32))
        }
        _ => Ok(Ended::Done),
    }
}

/// The memory plan for every partition of the topic assigned here (the
/// worst case), once Kafka told how many there are; at least `at_least`
/// (what was assigned, should the metadata lag behind).
fn plan_for_topic(settings: &Settings, at_least: u32) -> Result<budget::BudgetPlan> {
    let mut config = ClientConfig::new();
    for (k, v) in settings.metadata_properties() {
        config.set(k, v);
    }
    let probe: BaseConsumer<FailureCapture> = config
        .create_with_context(FailureCapture::default())
        .map_err(|e| Error::kafka("creating the metadata client", e))?;
    let partitions = check_topic(
        &probe,
        &settings.kafka_properties,
        &settings.bootstrap_servers,
        &settings.topic,
        settings.startup_timeout,
    )?
    .max(at_least);
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
    Ok(plan)
}

/// What the pipeline takes from the settings.
struct Parts {
    topic: String,
    sink_metadata: bool,
    sink: Arc<Sink>,
    retry: RetryPolicy,
    dead_letter: Option<DeadLetter>,
    handoff_timeout: Duration,
    pause_after: Duration,
    planned_partitions: u32,
}

fn settings_parts(
    settings: &Settings,
    consumer: &ClientConfig,
    plan: &budget::BudgetPlan,
) -> Result<Parts> {
    let dead_letter = match &settings.dead_letter_topic {
        Some(topic) => Some(DeadLetter::new(settings, topic.clone())?),
        None => None,
    };
    Ok(Parts {
        topic: settings.topic.clone(),
        sink_metadata: settings.sink_metadata,
        sink: settings.sink.clone(),
        retry: settings.retry,
        dead_letter,
        handoff_timeout: settings.handoff_timeout,
        pause_after: pause_after(consumer),
        planned_partitions: plan.partitions,
    })
}

/// A quarter of the consumer's `max.poll.interval.ms` (librdkafka's default
/// 300 s when unset), at most [`PAUSE_AFTER_MAX`].
fn pause_after(consumer: &ClientConfig) -> Duration {
    let interval = consumer
        .get("max.poll.interval.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(300_000);
    Duration::from_millis(interval / 4).min(PAUSE_AFTER_MAX)
}

impl Pipeline {
    fn new(parts: Parts, shared: &Shared, runtime: &Handle) -> Self {
        let limits = shared.limits.current();
        let (acks_tx, acks_rx) = mpsc::channel();
        parts.sink.set_max_in_flight(limits.max_in_flight);
        Pipeline {
            delivery: Delivery::new(&parts.topic, parts.sink_metadata, knobs(&limits)),
            topic: parts.topic,
            acks_tx,
            acks_rx,
            sink: parts.sink,
            retry: parts.retry,
            sink_health: SinkHealth::new(shared.metrics.clone()),
            dead_letter: parts.dead_letter,
            runtime: runtime.clone(),
            shared: shared.clone(),
            consume_batch_size: limits.consume_batch_size,
            handoff_timeout: parts.handoff_timeout,
            assigned: BTreeSet::new(),
            paused: false,
            blocked_since: None,
            pause_after: parts.pause_after,
            stopped: None,
            planned_partitions: parts.planned_partitions as usize,
            outgrown: None,
            observed_at: Instant::now(),
        }
    }

    /// The final hand-off: everything assigned is flushed (unless a batch
    /// could not be read), written, committed; what the sink did not take
    /// within the hand-off time stays uncommitted.
    fn finish<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, outcome: &Result<()>) {
        let all: Vec<i32> = self.assigned.iter().copied().collect();
        if matches!(outcome, Err(Error::Unreadable { .. })) {
            self.wait_for(None, self.handoff_timeout);
            self.commit(consumer);
            self.delivery.abandon(&all);
        } else {
            self.hand_off(consumer, &all, FlushTrigger::Shutdown);
        }
    }
}

/// The loop proper: returns on shutdown, when delivery stopped (the pipeline
/// says why), or with the error that stopped it.
fn consume(
    consumer: &BaseConsumer<LoopContext>,
    pipeline: &Mutex<Pipeline>,
    shared: &Shared,
) -> Result<()> {
    let mut limits_rx = shared.limits.subscribe();
    shared
        .metrics
        .set_limits(&limits_rx.borrow_and_update().clone());
    loop {
        shared.health.turn();
        if shared.shutdown.load(Ordering::Relaxed) {
            tracing::info!("shutdown requested: flushing and committing");
            return Ok(());
        }
        if limits_rx.has_changed().unwrap_or(false) {
            let limits = limits_rx.borrow_and_update().clone();
            lock(pipeline).set_limits(&limits);
        }
        let Some(step) = lock(pipeline).turn(consumer) else {
            return Ok(());
        };
        match step {
            Step::Pull(batch_size, timeout) => {
                poll_records(consumer, pipeline, batch_size, timeout)?;
            }
            Step::WaitForSink => lock(pipeline).wait_for_ack(),
            Step::PollPaused => {
                if let Some(polled) = consumer.poll(PAUSED_POLL) {
                    // `poll` serves rebalances; a record fetched before
                    // the pause still counts.
                    take_polled(consumer, pipeline, polled, Instant::now())?;
                }
            }
        }
        let mut p = lock(pipeline);
        p.delivery.tick(Instant::now());
        p.carry_out();
    }
}

impl Pipeline {
    /// The start of a loop turn: acknowledgements, commits, metrics, pause
    /// or resume. Returns what the loop does next, or `None` once delivery
    /// stopped.
    fn turn<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Option<Step> {
        self.drain_acks();
        self.commit(consumer);
        self.observe();
        if self.delivery.halted().is_some() || self.stopped.is_some() || self.outgrown.is_some() {
            return None;
        }
        if !self.delivery.accepting() {
            let now = Instant::now();
            let since = *self.blocked_since.get_or_insert_with(|| {
                self.shared.metrics.backpressure_events_total.inc();
                now
            });
            if now.duration_since(since) < self.pause_after {
                return Some(Step::WaitForSink);
            }
            self.pause(consumer, true);
            return Some(Step::PollPaused);
        }
        self.blocked_since = None;
        self.pause(consumer, false);
        let size = adaptive_batch_size(self.consume_batch_size, self.delivery.fullness());
        self.shared
            .metrics
            .consume_batch_size_current
            .set(size as i64);
        let timeout = self
            .delivery
            .time_left(Instant::now())
            .map_or(PAUSED_POLL, |t| t.min(PAUSED_POLL));
        Some(Step::Pull(size, timeout))
    }

    /// Waits a little for one acknowledgement.
    fn wait_for_ack(&mut self) {
        if let Ok(ack) = self.acks_rx.recv_timeout(PAUSED_POLL) {
            self.acked(ack);
        }
    }
}

/// Pulls up to `batch_size` records, stopping early when a batch waits for a
/// permit.
fn poll_records(
    consumer: &BaseConsumer<LoopContext>,
    pipeline: &Mutex<Pipeline>,
    batch_size: usize,
    first_timeout: Duration,
) -> Result<()> {
    // One clock reading for the records of one pull (they arrive within
    // microseconds; a reading each cost a few per cent of throughput).
    let mut now = None;
    for n in 0..batch_size {
        let timeout = if n == 0 {
            first_timeout
        } else {
            Duration::ZERO
        };
        let Some(polled) = consumer.poll(timeout) else {
            break;
        };
        let now = *now.get_or_insert_with(Instant::now);
        if !take_polled(consumer, pipeline, polled, now)? {
            break;
        }
    }
    Ok(())
}

/// Hands one polled record to the pipeline. False when the loop should
/// stop pulling this turn (a poll error, or a batch waits for a permit).
fn take_polled(
    consumer: &BaseConsumer<LoopContext>,
    pipeline: &Mutex<Pipeline>,
    polled: KafkaResult<BorrowedMessage<'_>>,
    now: Instant,
) -> Result<bool> {
    let msg = match polled {
        Ok(msg) => msg,
        Err(e) => {
            let code = e.rdkafka_error_code();
            if let Some(why) = code.and_then(crate::error::unreadable_batch) {
                return Err(Error::Unreadable {
                    topic: consumer.context().topic.clone(),
                    code: code.expect("matched above"),
                    why,
                });
            }
            consumer.context().shared.metrics.error("kafka");
            tracing::warn!(error = %e, "poll error");
            return Ok(false);
        }
    };
    let mut p = lock(pipeline);
    p.take(&msg, now)?;
    Ok(p.delivery.accepting())
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

/// A record as the dead-letter topic gets it.
struct Source<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl<'a> Source<'a> {
    fn of<M: Message>(msg: &'a M) -> Self {
        Source {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            value: msg.payload(),
        }
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

    /// Sends one record and waits for Kafka to acknowledge it. Headers say
    /// why (`millpond.error`), where it came from (`millpond.source.*`) and,
    /// for a record the sink refused, the sink's status (`millpond.sink.status`).
    fn send(
        &self,
        runtime: &Handle,
        msg: &Source<'_>,
        reason: &str,
        status: Option<u16>,
    ) -> Result<()> {
        let partition = msg.partition.to_string();
        let offset = msg.offset.to_string();
        let status = status.map(|s| s.to_string());
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "millpond.error",
                value: Some(reason),
            })
            .insert(Header {
                key: "millpond.source.topic",
                value: Some(msg.topic),
            })
            .insert(Header {
                key: "millpond.source.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "millpond.source.offset",
                value: Some(&offset),
            });
        if let Some(status) = &status {
            headers = headers.insert(Header {
                key: "millpond.sink.status",
                value: Some(status),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = msg.key {
            record = record.key(k);
        }
        if let Some(v) = msg.value {
            record = record.payload(v);
        }
        let delivery = runtime.block_on(self.producer.send(record, Duration::from_secs(30)));
        match delivery {
            Ok(_) => {
                tracing::warn!(topic = msg.topic, partition = msg.partition, offset = msg.offset, reason, dead_letter = %self.topic, "record sent to the dead-letter topic");
                Ok(())
            }
            Err((e, _)) => Err(Error::kafka(
                format!(
                    "sending {}/{}@{} to dead-letter topic {}",
                    msg.topic, msg.partition, msg.offset, self.topic
                ),
                e,
            )),
        }
    }
}
