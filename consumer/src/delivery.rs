//! The delivery protocol: records in, batches out, acknowledgements back,
//! offsets to commit. No I/O: the Kafka adapter ([`crate::source`]) feeds it
//! events and carries out the [`Action`]s it asks for.
//!
//! ```text
//! push/skip ──> buffer ──(size | time | revoke | shutdown)──> waiting ──(permit)──> writing
//!                                                                  ^                  │
//!                              refused, several records: split ────┘                  │
//!                              refused, one record: dead letter ─────────> acked <────┘ written
//! ```
//!
//! * A batch cut from the buffer waits for one of `max_in_flight` permits.
//!   While any batch waits the protocol does not accept records
//!   ([`Delivery::accepting`]): the adapter waits for an acknowledgement,
//!   and pauses its partitions and polls when the wait grows long, so it
//!   keeps its group membership. Fullness counts the waiting bytes: a pod
//!   waiting on its sink is full, not empty.
//! * A batch the sink refuses ([`Written::Refused`]) is split in two, again
//!   and again, until the refused records are alone; each goes to the
//!   dead-letter topic with the sink's answer and the rest is delivered.
//! * Offsets: a partition's commit moves to the end of a batch once that batch
//!   and every earlier one holding the partition were written or
//!   dead-lettered ([`OffsetTracker`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buffer::{Batch, Buffer, FlushTrigger};
use crate::offsets::OffsetTracker;
use crate::record::Rejected;

/// The limits the protocol runs with (they change while it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knobs {
    pub flush_bytes: u64,
    pub flush_interval: Duration,
    pub max_in_flight: u32,
}

/// What the adapter must do next.
#[derive(Debug)]
pub enum Action {
    /// Write this batch to the sink (it holds a permit), then report
    /// [`Delivery::written`].
    Write(Arc<Batch>),
    /// The sink refused this batch's one record: send it to the dead-letter
    /// topic with the sink's answer, then report [`Delivery::dead_lettered`].
    DeadLetter {
        batch: Batch,
        status: Option<u16>,
        reason: String,
    },
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The sink acknowledged the whole batch.
    Done,
    /// The sink refused what the batch holds.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// The sink stayed unavailable past the give-up time.
    GaveUp(String),
}

/// The protocol's state.
#[derive(Debug)]
pub struct Delivery {
    buffer: Buffer,
    tracker: OffsetTracker,
    knobs: Knobs,
    /// Batches cut from the buffer waiting for a permit, oldest first.
    waiting: VecDeque<Batch>,
    /// Batches being written, by id.
    writing: BTreeMap<u64, Arc<Batch>>,
    actions: VecDeque<Action>,
    /// Why nothing more is written (the sink gave up, or a record could not
    /// be delivered at all).
    halted: Option<String>,
}

impl Delivery {
    pub fn new(topic: &str, with_metadata: bool, knobs: Knobs) -> Self {
        Delivery {
            buffer: Buffer::new(topic, with_metadata),
            tracker: OffsetTracker::default(),
            knobs,
            waiting: VecDeque::new(),
            writing: BTreeMap::new(),
            actions: VecDeque::new(),
            halted: None,
        }
    }

    /// Largest record value taken: one batch's worth, the flush size.
    pub fn max_record_bytes(&self) -> u64 {
        self.knobs.flush_bytes
    }

    /// Adds a record, or says why it cannot be delivered (nothing is added;
    /// the adapter dead-letters it and calls [`Delivery::skip`], or stops).
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), Rejected> {
        let len = value.map_or(0, <[u8]>::len) as u64;
        if len > self.max_record_bytes() {
            return Err(Rejected(format!(
                "record too large: {len} bytes, a record may be at most the flush size ({} bytes)",
                self.max_record_bytes()
            )));
        }
        self.buffer
            .push(partition, offset, timestamp_ms, value, now)?;
        if self.buffer.bytes() >= self.knobs.flush_bytes {
            self.cut(FlushTrigger::Size);
        }
        Ok(())
    }

    /// An offset that needs no write (a tombstone, a dead-lettered record):
    /// the next batch covers it so the commit moves past it.
    pub fn skip(&mut self, partition: i32, offset: i64, now: Instant) {
        self.buffer.skip(partition, offset, now);
    }

    /// Cuts a batch when the flush interval has passed since the buffer's
    /// first record.
    pub fn tick(&mut self, now: Instant) {
        if let Some(trigger) =
            self.buffer
                .due(now, self.knobs.flush_bytes, self.knobs.flush_interval)
        {
            self.cut(trigger);
        }
    }

    /// Partitions are being revoked (or the process stops): cut what is
    /// buffered. The adapter then waits until [`Delivery::unacked`] of those
    /// partitions is 0 before it commits and lets them go.
    pub fn hand_off(&mut self, trigger: FlushTrigger) {
        self.cut(trigger);
    }

    /// New limits; more permits may start waiting batches at once.
    pub fn set_knobs(&mut self, knobs: Knobs) {
        self.knobs = knobs;
        self.pump();
    }

    /// A write ended.
    pub fn written(&mut self, id: u64, outcome: Written) {
        let Some(batch) = self.writing.remove(&id) else {
            return;
        };
        match outcome {
            Written::Done => self.tracker.acked(id),
            Written::Refused { status, message } => self.refused(batch, status, message),
            Written::GaveUp(why) => {
                self.halted.get_or_insert(why);
            }
        }
        self.pump();
    }

    /// The record of a [`Action::DeadLetter`] is in the dead-letter topic.
    pub fn dead_lettered(&mut self, id: u64) {
        self.tracker.acked(id);
    }

    /// Gives up on `partitions` after a hand-off that could not finish (the
    /// sink is down): their batches are dropped from the queue and their
    /// offsets forgotten. The next owner reads them again from the last
    /// commit (at least once); writes already running may still land.
    pub fn abandon(&mut self, partitions: &[i32]) {
        for batch in &mut self.waiting {
            batch.chunks.retain(|c| !partitions.contains(&c.partition));
        }
        self.waiting.retain(|b| !b.chunks.is_empty());
        self.forget(partitions);
    }

    /// Forgets `partitions` once they were handed off.
    pub fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.tracker.forget(*p);
            self.buffer.forget(*p);
        }
    }

    /// The next action to carry out.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether records may be pulled: no batch waits for a permit and the
    /// protocol was not halted.
    pub fn accepting(&self) -> bool {
        self.waiting.is_empty() && self.halted.is_none()
    }

    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// `(bytes buffered + bytes waiting for a permit) / flush size`.
    pub fn fullness(&self) -> f64 {
        self.pending_bytes() as f64 / self.knobs.flush_bytes.max(1) as f64
    }

    pub fn pending_bytes(&self) -> u64 {
        self.buffer.bytes() + self.waiting.iter().map(Batch::bytes).sum::<u64>()
    }

    /// Batches waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Batches being written now.
    pub fn writing(&self) -> usize {
        self.writing.len()
    }

    /// Batches not yet written holding records of `partitions` (all when `None`).
    pub fn unacked(&self, partitions: Option<&[i32]>) -> usize {
        self.tracker.unacked(partitions)
    }

    /// Time until the buffer's flush interval runs out, if anything is buffered.
    pub fn time_left(&self, now: Instant) -> Option<Duration> {
        self.buffer.time_left(now, self.knobs.flush_interval)
    }

    /// `(partition, offset)` whose commit may move.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        self.tracker.to_commit()
    }

    /// Kafka accepted these commits.
    pub fn committed(&mut self, offsets: &[(i32, i64)]) {
        self.tracker.committed(offsets);
    }

    pub fn committed_offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.tracker.committed_offsets()
    }

    fn cut(&mut self, trigger: FlushTrigger) {
        if let Some(batch) = self.buffer.take(trigger) {
            self.tracker.dispatched(&batch);
            self.waiting.push_back(batch);
            self.pump();
        }
    }

    /// Starts waiting batches while permits are free.
    fn pump(&mut self) {
        while self.halted.is_none() && self.writing.len() < self.knobs.max_in_flight as usize {
            let Some(batch) = self.waiting.pop_front() else {
                return;
            };
            let batch = Arc::new(batch);
            self.writing.insert(batch.id, batch.clone());
            self.actions.push_back(Action::Write(batch));
        }
    }

    /// Splits a refused batch in two, ahead of the newer batches, or sends
    /// its one record to the dead-letter topic.
    fn refused(&mut self, batch: Arc<Batch>, status: Option<u16>, reason: String) {
        let batch = Arc::unwrap_or_clone(batch);
        match batch.records() {
            0 => self.tracker.acked(batch.id),
            1 => self.actions.push_back(Action::DeadLetter {
                batch,
                status,
                reason,
            }),
            _ => {
                let old = batch.id;
                let (head, tail) = self.halves(batch);
                self.tracker.split(old, &[&head, &tail]);
                self.waiting.push_front(tail);
                self.waiting.push_front(head);
            }
        }
    }

    /// Two batches of about half the records each, in offset order: whole
    /// chunks when there are several, else the one chunk split at its middle.
    fn halves(&mut self, batch: Batch) -> (Batch, Batch) {
        let Batch {
            topic,
            trigger,
            mut chunks,
            ..
        } = batch;
        let (head, tail) = if chunks.len() > 1 {
            let tail = chunks.split_off(chunks.len() / 2);
            (chunks, tail)
        } else {
            let (h, t) = chunks[0].split(chunks[0].offsets.len() / 2);
            (vec![h], vec![t])
        };
        let mut part = |chunks| Batch {
            id: self.buffer.new_id(),
            topic: topic.clone(),
            trigger,
            chunks,
        };
        (part(head), part(tail))
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
