//! Whole conversations with the delivery protocol, scripted: records in,
//! writes out, the sink's answers back, and what may be committed.

use super::*;

const RECORD: &[u8] = br#"{"id":1}"#;
/// Bytes one `RECORD` takes in the buffer (its NDJSON line).
const LINE: u64 = RECORD.len() as u64 + 1;

struct Script {
    d: Delivery,
    t0: Instant,
}

impl Script {
    /// A protocol flushing every `per_batch` records with `permits` permits.
    fn new(per_batch: u64, permits: u32) -> Self {
        let knobs = Knobs {
            flush_bytes: per_batch * LINE,
            flush_interval: Duration::from_secs(5),
            max_in_flight: permits,
        };
        Script {
            d: Delivery::new("t", false, knobs),
            t0: Instant::now(),
        }
    }

    fn records(&mut self, partition: i32, offsets: std::ops::Range<i64>) {
        for o in offsets {
            self.d
                .push(partition, o, None, Some(RECORD), self.t0)
                .unwrap();
        }
    }

    /// Ids of the writes asked for since the last call; other actions are
    /// returned too.
    fn actions(&mut self) -> (Vec<u64>, Vec<Action>) {
        let mut writes = Vec::new();
        let mut other = Vec::new();
        while let Some(a) = self.d.next_action() {
            match a {
                Action::Write(b) => writes.push(b.id),
                a => other.push(a),
            }
        }
        (writes, other)
    }

    fn writes(&mut self) -> Vec<u64> {
        let (writes, other) = self.actions();
        assert!(other.is_empty(), "unexpected {other:?}");
        writes
    }

    fn refuse(&mut self, id: u64) {
        self.d.written(
            id,
            Written::Refused {
                status: Some(422),
                message: "bad record".into(),
            },
        );
    }

    fn commit(&mut self) -> Vec<(i32, i64)> {
        let offsets = self.d.to_commit();
        self.d.committed(&offsets);
        offsets
    }
}

#[test]
fn acks_out_of_order_commit_only_below_the_oldest_unwritten_batch() {
    let mut s = Script::new(2, 4);
    s.records(0, 0..6);
    assert_eq!(s.writes(), vec![1, 2, 3]);
    s.d.written(3, Written::Done);
    s.d.written(2, Written::Done);
    assert_eq!(s.commit(), vec![], "batch 1 is not written yet");
    s.d.written(1, Written::Done);
    assert_eq!(s.commit(), vec![(0, 6)]);
}

#[test]
fn a_batch_waiting_for_a_permit_stops_intake_and_counts_as_full() {
    let mut s = Script::new(2, 1);
    s.records(0, 0..2);
    assert_eq!(s.writes(), vec![1]);
    assert!(s.d.accepting());
    s.records(0, 2..4);
    assert!(s.writes().is_empty(), "the only permit is taken");
    assert!(!s.d.accepting(), "the adapter pauses and keeps polling");
    assert!(
        (s.d.fullness() - 1.0).abs() < 1e-9,
        "the waiting batch is pending: {}",
        s.d.fullness()
    );
    s.d.written(1, Written::Done);
    assert_eq!(s.writes(), vec![2]);
    assert!(s.d.accepting());
    assert_eq!(s.d.fullness(), 0.0);
}

#[test]
fn more_permits_start_waiting_batches_at_once() {
    let mut s = Script::new(1, 1);
    s.records(0, 0..1);
    s.records(1, 0..1);
    assert_eq!(s.writes(), vec![1]);
    let mut knobs = s.d.knobs;
    knobs.max_in_flight = 2;
    s.d.set_knobs(knobs);
    assert_eq!(s.writes(), vec![2]);
}

#[test]
fn a_revoke_while_writes_are_in_flight_waits_for_them_before_committing() {
    let mut s = Script::new(4, 2);
    s.records(0, 0..4); // batch 1, writing
    s.records(1, 0..2); // buffered
    s.d.hand_off(FlushTrigger::Revoke);
    assert_eq!(s.writes(), vec![1, 2]);
    assert_eq!(s.d.unacked(Some(&[0])), 1);
    assert_eq!(s.d.unacked(Some(&[1])), 1);
    s.d.written(2, Written::Done);
    assert_eq!(s.d.unacked(Some(&[1])), 0, "partition 1 may go");
    assert_eq!(s.commit(), vec![(1, 2)]);
    s.d.forget(&[1]);
    s.d.written(1, Written::Done);
    assert_eq!(s.commit(), vec![(0, 4)]);
}

#[test]
fn a_sink_down_for_long_holds_everything_and_commits_nothing_unwritten() {
    let mut s = Script::new(2, 2);
    s.records(0, 0..6);
    assert_eq!(s.writes(), vec![1, 2]);
    // The writes retry inside the adapter for as long as the sink is down:
    // the protocol sees nothing come back.
    for _ in 0..1000 {
        s.d.tick(s.t0 + Duration::from_secs(3600));
        assert!(!s.d.accepting());
        assert_eq!(s.commit(), vec![]);
    }
    assert!(s.d.fullness() >= 1.0);
    s.d.written(1, Written::Done);
    assert_eq!(s.writes(), vec![3]);
    s.d.written(2, Written::Done);
    s.d.written(3, Written::Done);
    assert_eq!(s.commit(), vec![(0, 6)]);
}

#[test]
fn a_refused_record_is_isolated_and_dead_lettered_and_the_rest_delivered_in_order() {
    let mut s = Script::new(4, 4);
    s.records(0, 10..14);
    assert_eq!(s.writes(), vec![1]);
    s.refuse(1); // one of 10..13 is bad: split into 10..11 and 12..13
    assert_eq!(s.writes(), vec![2, 3]);
    s.d.written(2, Written::Done);
    s.refuse(3); // split into 12 and 13
    assert_eq!(s.writes(), vec![4, 5]);
    s.refuse(4);
    let (writes, other) = s.actions();
    assert!(writes.is_empty());
    let [Action::DeadLetter {
        batch,
        status,
        reason,
    }] = other.as_slice()
    else {
        panic!("one record to the dead-letter topic: {other:?}")
    };
    assert_eq!(batch.ranges(), vec![(0, 12, 12)]);
    assert_eq!((*status, reason.as_str()), (Some(422), "bad record"));
    assert_eq!(
        s.commit(),
        vec![(0, 12)],
        "up to the record being dead-lettered"
    );
    s.d.written(5, Written::Done);
    assert_eq!(s.commit(), vec![]);
    s.d.dead_lettered(batch.id);
    assert_eq!(s.commit(), vec![(0, 14)]);
}

#[test]
fn a_refused_batch_of_several_partitions_splits_by_partition() {
    let mut s = Script::new(4, 1);
    s.records(0, 0..2);
    s.records(1, 0..2);
    assert_eq!(s.writes(), vec![1]);
    s.refuse(1);
    assert_eq!(s.writes(), vec![2], "the halves wait for the one permit");
    s.d.written(2, Written::Done);
    assert_eq!(s.writes(), vec![3]);
    s.d.written(3, Written::Done);
    assert_eq!(s.commit(), vec![(0, 2), (1, 2)]);
}

#[test]
fn shutdown_while_the_sink_is_down_commits_only_what_was_written() {
    let mut s = Script::new(2, 1);
    s.records(0, 0..2);
    s.records(1, 0..2);
    assert_eq!(s.writes(), vec![1]);
    s.d.written(1, Written::Done);
    assert_eq!(s.writes(), vec![2]);
    assert_eq!(s.commit(), vec![(0, 2)]);
    s.records(0, 2..3);
    s.d.hand_off(FlushTrigger::Shutdown);
    assert_eq!(s.d.unacked(None), 2, "batch 2 writing, batch 3 waiting");
    // The hand-off time ran out while the sink is down: let the partitions go.
    s.d.abandon(&[0, 1]);
    assert_eq!(s.d.unacked(None), 0);
    assert_eq!(s.commit(), vec![], "nothing unwritten is committed");
    assert!(s.writes().is_empty());
}

#[test]
fn giving_up_halts_every_write_after_it() {
    let mut s = Script::new(1, 1);
    s.records(0, 0..3);
    assert_eq!(s.writes(), vec![1]);
    s.d.written(1, Written::GaveUp("sink down for 600 s".into()));
    assert!(s.writes().is_empty());
    assert_eq!(s.d.halted(), Some("sink down for 600 s"));
    assert!(!s.d.accepting());
    assert_eq!(s.commit(), vec![]);
}

#[test]
fn a_record_larger_than_the_flush_size_is_refused_before_it_is_buffered() {
    let mut s = Script::new(2, 1);
    let big = vec![b' '; 3 * LINE as usize];
    let err = s.d.push(0, 0, None, Some(&big), s.t0).unwrap_err();
    assert!(err.0.starts_with("record too large: 27 bytes"), "{}", err.0);
    assert_eq!(s.d.pending_bytes(), 0);
}

#[test]
fn the_flush_interval_cuts_a_batch_that_did_not_fill() {
    let mut s = Script::new(10, 1);
    s.records(0, 0..1);
    s.d.tick(s.t0 + Duration::from_secs(1));
    assert!(s.writes().is_empty());
    s.d.tick(s.t0 + Duration::from_secs(5));
    assert_eq!(s.writes(), vec![1]);
}
