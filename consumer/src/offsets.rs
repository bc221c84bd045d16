//! Which offsets may be committed.
//!
//! Several batches of one partition can be in flight at once and finish in any
//! order. A partition's commit position only moves to the end of a batch when
//! that batch *and every earlier batch of the partition* has been acknowledged
//! by the sink. Pure bookkeeping: no Kafka calls.

use std::collections::{BTreeMap, VecDeque};

use crate::buffer::Batch;

#[derive(Debug, Default)]
struct PartitionTrack {
    /// `(batch id, offset to commit once acked, acked)` in dispatch order.
    pending: VecDeque<(u64, i64, bool)>,
    /// Highest offset (next to read) that may be committed.
    committable: Option<i64>,
    /// Last offset handed to Kafka's commit.
    committed: Option<i64>,
}

/// Acknowledgement bookkeeping for all assigned partitions.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionTrack>,
}

impl OffsetTracker {
    /// A batch was handed to the sink.
    pub fn dispatched(&mut self, batch: &Batch) {
        for chunk in &batch.chunks {
            self.partitions
                .entry(chunk.partition)
                .or_default()
                .pending
                .push_back((batch.id, chunk.last_offset + 1, false));
        }
    }

    /// Batch `old` was split into `parts` (in offset order): each partition's
    /// entry for `old` becomes one entry per part that holds that partition.
    pub fn split(&mut self, old: u64, parts: &[&Batch]) {
        for (partition, track) in self.partitions.iter_mut() {
            let Some(at) = track.pending.iter().position(|e| e.0 == old) else {
                continue;
            };
            track.pending.remove(at);
            let entries = parts.iter().flat_map(|b| {
                b.chunks
                    .iter()
                    .filter(|c| c.partition == *partition)
                    .map(|c| (b.id, c.last_offset + 1, false))
            });
            for (i, entry) in entries.enumerate() {
                track.pending.insert(at + i, entry);
            }
        }
    }

    /// The sink acknowledged a batch.
    pub fn acked(&mut self, batch_id: u64) {
        for track in self.partitions.values_mut() {
            for entry in track.pending.iter_mut() {
                if entry.0 == batch_id {
                    entry.2 = true;
                }
            }
            while let Some(&(_, next, true)) = track.pending.front() {
                track.committable = Some(next);
                track.pending.pop_front();
            }
        }
    }

    /// `(partition, offset)` pairs whose commit position moved since the last commit.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(p, t)| match (t.committable, t.committed) {
                (Some(c), Some(done)) if c <= done => None,
                (Some(c), _) => Some((*p, c)),
                _ => None,
            })
            .collect()
    }

    /// Kafka accepted these commits.
    pub fn committed(&mut self, offsets: &[(i32, i64)]) {
        for (p, o) in offsets {
            if let Some(t) = self.partitions.get_mut(p) {
                t.committed = Some(t.committed.map_or(*o, |c| c.max(*o)));
            }
        }
    }

    /// Batches not yet acknowledged that hold records of any of `partitions`
    /// (all partitions when `None`).
    pub fn unacked(&self, partitions: Option<&[i32]>) -> usize {
        self.partitions
            .iter()
            .filter(|(p, _)| partitions.is_none_or(|ps| ps.contains(p)))
            .map(|(_, t)| t.pending.iter().filter(|e| !e.2).count())
            .sum()
    }

    /// Forgets a partition after it was revoked and committed.
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Last committed offset per partition (for metrics).
    pub fn committed_offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.partitions
            .iter()
            .filter_map(|(p, t)| t.committed.map(|c| (*p, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{FlushTrigger, PartitionChunk};

    fn batch(id: u64, ranges: &[(i32, i64, i64)]) -> Batch {
        Batch {
            id,
            topic: "t".into(),
            trigger: FlushTrigger::Size,
            chunks: ranges
                .iter()
                .map(|&(partition, first_offset, last_offset)| PartitionChunk {
                    partition,
                    first_offset,
                    last_offset,
                    records: (last_offset - first_offset + 1) as u64,
                    follows: false,
                    offsets: (first_offset..=last_offset).collect(),
                    segments: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn nothing_is_committable_before_an_ack() {
        let mut t = OffsetTracker::default();
        t.dispatched(&batch(1, &[(0, 0, 9)]));
        assert!(t.to_commit().is_empty());
        assert_eq!(t.unacked(None), 1);
    }

    #[test]
    fn a_later_batch_acked_first_does_not_commit_past_an_earlier_one() {
        let mut t = OffsetTracker::default();
        t.dispatched(&batch(1, &[(0, 0, 9), (1, 0, 4)]));
        t.dispatched(&batch(2, &[(0, 10, 19)]));
        t.dispatched(&batch(3, &[(1, 5, 9)]));
        t.acked(2);
        t.acked(3);
        assert!(t.to_commit().is_empty(), "batch 1 is still in flight");
        t.acked(1);
        assert_eq!(t.to_commit(), vec![(0, 20), (1, 10)]);
        t.committed(&t.to_commit());
        assert!(t.to_commit().is_empty());
        assert_eq!(t.unacked(None), 0);
    }

    #[test]
    fn unacked_counts_only_the_asked_partitions() {
        let mut t = OffsetTracker::default();
        t.dispatched(&batch(1, &[(0, 0, 9)]));
        t.dispatched(&batch(2, &[(1, 0, 9)]));
        assert_eq!(t.unacked(Some(&[1])), 1);
        t.acked(2);
        assert_eq!(t.unacked(Some(&[1])), 0);
        t.forget(1);
        assert_eq!(t.to_commit(), vec![]);
    }
}
