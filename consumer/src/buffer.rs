//! The buffer between the Kafka source and the sink: NDJSON lines grouped by
//! partition, flushed by size, by time, on revocation or on shutdown.
//!
//! Pure data structure: no I/O, the clock is passed in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::{encode_line, RecordMeta, Rejected};

/// Smallest number of records pulled from librdkafka per loop turn.
pub const MIN_BATCH: usize = 10;

/// Records are appended to fixed-size segments rather than one growing vector,
/// so buffered memory stays within one segment per partition of what is counted
/// (a doubling vector could hold twice its length).
pub const SEGMENT_BYTES: usize = 128 << 10;

/// Upper bound of what the metadata fields add to a line.
const METADATA_ROOM: usize = 160;

/// Why a batch was flushed (`millpond_flushes_total{trigger}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushTrigger {
    Size,
    Time,
    Revoke,
    Shutdown,
}

impl FlushTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushTrigger::Size => "size",
            FlushTrigger::Time => "time",
            FlushTrigger::Revoke => "revoke",
            FlushTrigger::Shutdown => "shutdown",
        }
    }
}

/// The records of one partition inside a batch: a contiguous offset range.
/// Records that went to the dead-letter topic are inside the range but not in
/// `data`, so committing the range commits past them.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionChunk {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    /// Whether the range continues right after this consumer's previous
    /// chunk of the partition (`first_offset` is one past that chunk's last
    /// offset, so offsets Kafka skipped are covered too); else it is the
    /// first since the partition was assigned.
    pub follows: bool,
    /// The offset of each record in `segments`, in order (8 bytes a record:
    /// what lets a refused batch be split at any record).
    pub offsets: Vec<i64>,
    /// NDJSON lines, one per record, in segments of about [`SEGMENT_BYTES`].
    pub segments: Vec<Vec<u8>>,
}

impl PartitionChunk {
    /// Bytes of NDJSON in this chunk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len() as u64).sum()
    }

    /// The NDJSON lines as one contiguous buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        self.segments.concat()
    }

    /// The lines of this chunk, one per record (without their newline).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.segments
            .iter()
            .flat_map(|s| s.split(|b| *b == b'\n'))
            .filter(|l| !l.is_empty())
    }

    /// Splits before record `at` (0 < at < records): the first part covers
    /// the offsets up to that record, the second the rest of the range.
    pub fn split(&self, at: usize) -> (PartitionChunk, PartitionChunk) {
        let mut head = PartitionChunk::empty(self.partition, self.first_offset, self.follows);
        let mut tail = PartitionChunk::empty(self.partition, self.offsets[at], true);
        for (i, (line, offset)) in self.lines().zip(&self.offsets).enumerate() {
            let part = if i < at { &mut head } else { &mut tail };
            let segment = part.room_for(line.len() + 1);
            segment.extend_from_slice(line);
            segment.push(b'\n');
            part.offsets.push(*offset);
            part.records += 1;
        }
        head.last_offset = self.offsets[at] - 1;
        tail.last_offset = self.last_offset;
        (head, tail)
    }

    fn empty(partition: i32, offset: i64, follows: bool) -> Self {
        PartitionChunk {
            partition,
            first_offset: offset,
            last_offset: offset,
            records: 0,
            follows,
            offsets: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// A segment with room for `need` more bytes.
    fn room_for(&mut self, need: usize) -> &mut Vec<u8> {
        let full = self
            .segments
            .last()
            .is_none_or(|s| s.capacity() - s.len() < need);
        if full {
            self.segments
                .push(Vec::with_capacity(SEGMENT_BYTES.max(need)));
        }
        self.segments.last_mut().expect("a segment exists")
    }
}

/// One flush: what a single sink write delivers.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: u64,
    pub topic: Arc<str>,
    pub trigger: FlushTrigger,
    pub chunks: Vec<PartitionChunk>,
}

impl Batch {
    /// Offsets of the whole batch start to end: `(partition, first, last)`.
    pub fn ranges(&self) -> Vec<(i32, i64, i64)> {
        self.chunks
            .iter()
            .map(|c| (c.partition, c.first_offset, c.last_offset))
            .collect()
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes()).sum()
    }

    pub fn records(&self) -> u64 {
        self.chunks.iter().map(|c| c.records).sum()
    }
}

/// Records waiting for the next flush.
#[derive(Debug)]
pub struct Buffer {
    topic: Arc<str>,
    with_metadata: bool,
    chunks: BTreeMap<i32, PartitionChunk>,
    bytes: u64,
    first_at: Option<Instant>,
    next_id: u64,
    /// The last offset of each partition's latest batch.
    taken: BTreeMap<i32, i64>,
}

impl Buffer {
    pub fn new(topic: &str, with_metadata: bool) -> Self {
        Buffer {
            topic: topic.into(),
            with_metadata,
            chunks: BTreeMap::new(),
            bytes: 0,
            first_at: None,
            next_id: 1,
            taken: BTreeMap::new(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunk of `partition`, created if there is none: right after the
    /// partition's previous batch, or at `offset` (the first record since the
    /// partition was assigned, or one read again).
    fn chunk(&mut self, partition: i32, offset: i64) -> &mut PartitionChunk {
        let after = self.taken.get(&partition).copied();
        self.chunks.entry(partition).or_insert_with(|| match after {
            Some(last) if last < offset => PartitionChunk::empty(partition, last + 1, true),
            _ => PartitionChunk::empty(partition, offset, false),
        })
    }

    /// A revoked partition: its next chunk starts afresh.
    pub fn forget(&mut self, partition: i32) {
        self.taken.remove(&partition);
    }

    /// Adds a record, or returns why it cannot be delivered (nothing is added).
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), Rejected> {
        let topic = self.topic.clone();
        let meta = self.with_metadata.then_some(RecordMeta {
            topic: &topic,
            partition,
            offset,
            timestamp_ms,
        });
        let need = value.map_or(0, <[u8]>::len) + METADATA_ROOM + 1;
        let created = !self.chunks.contains_key(&partition);
        let chunk = self.chunk(partition, offset);
        let segment = chunk.room_for(need);
        let before = segment.len();
        if let Err(rejected) = encode_line(segment, value, meta.as_ref()) {
            // A rejected record leaves no trace: not in the data, not in the range.
            if created {
                self.chunks.remove(&partition);
            }
            return Err(rejected);
        }
        let len = (segment.len() - before) as u64;
        chunk.last_offset = offset;
        chunk.records += 1;
        chunk.offsets.push(offset);
        self.bytes += len;
        self.first_at.get_or_insert(now);
        Ok(())
    }

    /// Records that an offset was handled elsewhere (dead-letter topic): the
    /// next batch covers it so the commit moves past it.
    pub fn skip(&mut self, partition: i32, offset: i64, now: Instant) {
        self.chunk(partition, offset).last_offset = offset;
        self.first_at.get_or_insert(now);
    }

    /// `buffered_bytes / flush_bytes` (may exceed 1.0).
    pub fn fullness(&self, flush_bytes: u64) -> f64 {
        self.bytes as f64 / flush_bytes.max(1) as f64
    }

    /// Whether a flush is due by size or by time.
    pub fn due(&self, now: Instant, flush_bytes: u64, interval: Duration) -> Option<FlushTrigger> {
        if self.bytes >= flush_bytes {
            return Some(FlushTrigger::Size);
        }
        match self.first_at {
            Some(first) if now.duration_since(first) >= interval => Some(FlushTrigger::Time),
            _ => None,
        }
    }

    /// Time until a time-triggered flush is due, if anything is buffered.
    pub fn time_left(&self, now: Instant, interval: Duration) -> Option<Duration> {
        self.first_at
            .map(|first| interval.saturating_sub(now.duration_since(first)))
    }

    /// A batch id never given before.
    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Takes everything buffered as one batch.
    pub fn take(&mut self, trigger: FlushTrigger) -> Option<Batch> {
        if self.chunks.is_empty() {
            return None;
        }
        let id = self.new_id();
        self.bytes = 0;
        self.first_at = None;
        for chunk in self.chunks.values() {
            self.taken.insert(chunk.partition, chunk.last_offset);
        }
        Some(Batch {
            id,
            topic: self.topic.clone(),
            trigger,
            chunks: std::mem::take(&mut self.chunks).into_values().collect(),
        })
    }
}

/// Records to pull from librdkafka this turn:
/// `max(MIN_BATCH, floor(consume_batch_size * (1 - fullness)))`.
pub fn adaptive_batch_size(consume_batch_size: usize, fullness: f64) -> usize {
    let room = (1.0 - fullness).clamp(0.0, 1.0);
    ((consume_batch_size as f64 * room).floor() as usize).max(MIN_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buf: &mut Buffer, partition: i32, offset: i64, now: Instant) {
        buf.push(partition, offset, None, Some(br#"{"id":1}"#), now)
            .unwrap();
    }

    #[test]
    fn batch_size_shrinks_as_the_buffer_fills() {
        assert_eq!(adaptive_batch_size(1000, 0.0), 1000);
        assert_eq!(adaptive_batch_size(1000, 0.25), 750);
        assert_eq!(adaptive_batch_size(1000, 0.999), MIN_BATCH);
        assert_eq!(adaptive_batch_size(1000, 1.7), MIN_BATCH);
    }

    #[test]
    fn flushes_by_size_then_by_time() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", false);
        assert_eq!(buf.due(t0, 10, Duration::from_secs(1)), None);
        push(&mut buf, 0, 5, t0);
        assert_eq!(buf.due(t0, 100, Duration::from_secs(1)), None);
        assert_eq!(
            buf.due(t0 + Duration::from_secs(1), 100, Duration::from_secs(1)),
            Some(FlushTrigger::Time)
        );
        assert_eq!(
            buf.due(t0, 9, Duration::from_secs(1)),
            Some(FlushTrigger::Size)
        );
        assert!((buf.fullness(18) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_batch_holds_one_offset_range_per_partition() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", false);
        push(&mut buf, 1, 10, t0);
        push(&mut buf, 0, 3, t0);
        push(&mut buf, 1, 11, t0);
        buf.skip(1, 12, t0); // went to the dead-letter topic
        let batch = buf.take(FlushTrigger::Size).unwrap();
        assert_eq!(batch.records(), 3);
        let p1 = batch.chunks.iter().find(|c| c.partition == 1).unwrap();
        assert_eq!((p1.first_offset, p1.last_offset, p1.records), (10, 12, 2));
        assert!(buf.is_empty() && buf.bytes() == 0);
        assert!(buf.take(FlushTrigger::Time).is_none());
        push(&mut buf, 0, 4, t0);
        assert_eq!(buf.take(FlushTrigger::Time).unwrap().id, batch.id + 1);
    }

    #[test]
    fn a_partitions_next_chunk_starts_right_after_its_previous_one() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", false);
        push(&mut buf, 0, 10, t0);
        let first = buf.take(FlushTrigger::Size).unwrap();
        assert_eq!(
            (first.chunks[0].first_offset, first.chunks[0].follows),
            (10, false)
        );
        // Offsets 11 and 12 do not exist (a transaction marker, compaction).
        push(&mut buf, 0, 13, t0);
        push(&mut buf, 0, 14, t0);
        let next = buf.take(FlushTrigger::Size).unwrap();
        assert_eq!(
            (next.chunks[0].first_offset, next.chunks[0].follows),
            (11, true)
        );
        let (head, tail) = next.chunks[0].split(1);
        assert_eq!(
            (head.first_offset, head.last_offset, head.follows),
            (11, 13, true)
        );
        assert_eq!((tail.first_offset, tail.follows), (14, true));
        // Revoked and assigned again: read from where Kafka's commit stood.
        buf.forget(0);
        push(&mut buf, 0, 5, t0);
        let again = buf.take(FlushTrigger::Size).unwrap();
        assert_eq!(
            (again.chunks[0].first_offset, again.chunks[0].follows),
            (5, false)
        );
    }

    #[test]
    fn rejected_records_are_not_buffered_and_do_not_extend_the_range() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", false);
        assert!(buf.push(0, 1, None, Some(b"nope"), t0).is_err());
        assert!(buf.is_empty());
        push(&mut buf, 0, 2, t0);
        assert!(buf.push(0, 3, None, Some(b"nope"), t0).is_err());
        let batch = buf.take(FlushTrigger::Size).unwrap();
        assert_eq!(
            batch.chunks[0].last_offset, 2,
            "the poison offset is not committed"
        );
    }

    #[test]
    fn a_chunk_splits_at_a_record_and_each_part_keeps_its_offsets() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", false);
        push(&mut buf, 0, 10, t0);
        buf.skip(0, 11, t0); // a tombstone between two records
        push(&mut buf, 0, 12, t0);
        push(&mut buf, 0, 13, t0);
        let chunk = buf.take(FlushTrigger::Size).unwrap().chunks.remove(0);
        assert_eq!(chunk.offsets, vec![10, 12, 13]);
        let (head, tail) = chunk.split(1);
        assert_eq!(
            (head.first_offset, head.last_offset, head.records),
            (10, 11, 1)
        );
        assert_eq!(
            (tail.first_offset, tail.last_offset, tail.records),
            (12, 13, 2)
        );
        assert_eq!(head.to_vec(), b"{\"id\":1}\n");
        assert_eq!(tail.lines().count(), 2);
        assert_eq!(head.bytes() + tail.bytes(), chunk.bytes());
    }

    #[test]
    fn segments_never_grow_past_their_capacity() {
        let t0 = Instant::now();
        let mut buf = Buffer::new("t", true);
        let value = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000));
        for offset in 0..1000 {
            buf.push(0, offset, Some(1), Some(value.as_bytes()), t0)
                .unwrap();
        }
        let batch = buf.take(FlushTrigger::Size).unwrap();
        let chunk = &batch.chunks[0];
        assert!(chunk.segments.iter().all(|s| s.capacity() == SEGMENT_BYTES));
        assert_eq!(chunk.to_vec().len() as u64, chunk.bytes());
        assert_eq!(
            String::from_utf8(chunk.to_vec()).unwrap().lines().count(),
            1000
        );
    }
}
