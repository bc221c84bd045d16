//! The table's Kafka offsets and what a batch may add to it. Pure: no I/O.
//!
//! Each snapshot the sink commits carries, in its summary under
//! [`summary_key`], the next offset to read of every partition of the topic
//! that was ever written (the whole map, merged with the previous one). A
//! record is in the table exactly when its offset is below its partition's
//! table offset.
//!
//! A chunk covers a contiguous range of its partition: every record of the
//! range that exists in Kafka is in it (see [`Span`]). Records of the range
//! at or past the table's offset may be appended, and only when the range
//! starts at or before that offset: anything else would leave a hole (an
//! earlier chunk is still on its way) or append twice. A writer that lost
//! its partition finds the offset moved by the new owner and appends only
//! what the table does not hold yet, or nothing.

use std::collections::BTreeMap;

use iceberg::spec::TableMetadata;

/// How many snapshots back the offsets are looked for when the newest ones
/// were made by another writer (a compaction, a manual append).
const ANCESTORS_SEARCHED: usize = 100;

/// The summary property holding a topic's offsets.
pub fn summary_key(topic: &str) -> String {
    format!("millpond.offsets.{topic}")
}

/// Next offset to read, per partition.
pub type Offsets = BTreeMap<i32, i64>;

/// The offsets of the newest snapshot (on `main`) that has them; empty for a
/// table no one wrote the topic to.
pub fn table_offsets(metadata: &TableMetadata, topic: &str) -> Result<Offsets, String> {
    let key = summary_key(topic);
    let mut snapshot = metadata.current_snapshot();
    for _ in 0..ANCESTORS_SEARCHED {
        let Some(current) = snapshot else { break };
        if let Some(raw) = current.summary().additional_properties.get(&key) {
            return parse(raw).map_err(|e| {
                format!(
                    "snapshot {} has an unreadable `{key}` ({e}): {raw}",
                    current.snapshot_id()
                )
            });
        }
        snapshot = current
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id));
    }
    Ok(Offsets::new())
}

/// `{"0":120,"3":7}`, as stored in the summary.
pub fn parse(raw: &str) -> Result<Offsets, serde_json::Error> {
    let map: BTreeMap<String, i64> = serde_json::from_str(raw)?;
    map.into_iter()
        .map(|(p, o)| {
            p.parse::<i32>()
                .map(|p| (p, o))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

pub fn render(offsets: &Offsets) -> String {
    let map: BTreeMap<String, i64> = offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
    serde_json::to_string(&map).expect("a map of numbers serializes")
}

/// The offsets a chunk covers: `first..=last`, and whether it continues
/// right after this writer's previous chunk of the partition (else it is the
/// first since the partition was assigned, starting where Kafka's commit
/// stood).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first: i64,
    pub last: i64,
    pub follows: bool,
}

/// What to do with one chunk, given its partition's table offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Append the chunk's records from this offset on; the partition's
    /// offset becomes `last + 1`.
    From(i64),
    /// The table holds the whole range already (another writer appended it).
    Held,
    /// A range before this one is not in the table yet.
    Wait,
}

/// The rule of the module's doc. `vouched` are ranges this writer handed
/// to the dead-letter topic: they count as held when they start at the
/// table's offset.
pub fn admit(span: Span, table: Option<i64>, vouched: &[(i64, i64)]) -> Admit {
    let Some(mut at) = table else {
        return if span.follows {
            Admit::Wait
        } else {
            Admit::From(span.first)
        };
    };
    while let Some((_, last)) = vouched
        .iter()
        .find(|(first, last)| *first <= at && at <= *last)
    {
        at = last + 1;
    }
    if span.last < at {
        Admit::Held
    } else if span.first <= at {
        Admit::From(at)
    } else if span.follows {
        Admit::Wait
    } else {
        // The group's commit is past the table's offset: the group was moved
        // on purpose, or the offsets between are gone from Kafka.
        Admit::From(span.first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: i64, last: i64, follows: bool) -> Span {
        Span {
            first,
            last,
            follows,
        }
    }

    #[test]
    fn a_chunk_starting_at_the_tables_offset_is_appended_whole() {
        assert_eq!(
            admit(span(100, 199, true), Some(100), &[]),
            Admit::From(100)
        );
    }

    #[test]
    fn records_the_table_holds_are_left_out() {
        // Kafka's commit lags the table's by one flush after a crash.
        assert_eq!(
            admit(span(100, 199, false), Some(150), &[]),
            Admit::From(150)
        );
        // A writer whose partition moved: the new owner appended past it.
        assert_eq!(
            admit(span(100, 199, true), Some(150), &[]),
            Admit::From(150)
        );
        assert_eq!(admit(span(100, 199, true), Some(200), &[]), Admit::Held);
        assert_eq!(admit(span(100, 199, true), Some(900), &[]), Admit::Held);
    }

    #[test]
    fn a_chunk_after_one_not_yet_in_the_table_waits() {
        assert_eq!(admit(span(200, 299, true), Some(100), &[]), Admit::Wait);
        assert_eq!(admit(span(200, 299, true), None, &[]), Admit::Wait);
    }

    #[test]
    fn a_first_chunk_starts_where_the_group_stood() {
        assert_eq!(admit(span(0, 99, false), None, &[]), Admit::From(0));
        assert_eq!(
            admit(span(500, 599, false), Some(100), &[]),
            Admit::From(500)
        );
    }

    #[test]
    fn dead_lettered_records_at_the_tables_offset_count_as_held() {
        let vouched = [(100, 100), (101, 104)];
        assert_eq!(
            admit(span(105, 199, true), Some(100), &vouched),
            Admit::From(105)
        );
        assert_eq!(
            admit(span(105, 199, true), Some(100), &[(100, 100)]),
            Admit::Wait
        );
    }

    #[test]
    fn offsets_round_trip_through_the_summary() {
        let offsets = Offsets::from([(0, 120), (3, 7), (11, 0)]);
        assert_eq!(render(&offsets), r#"{"0":120,"11":0,"3":7}"#);
        assert_eq!(parse(&render(&offsets)).unwrap(), offsets);
        assert!(parse(r#"{"x":1}"#).is_err());
    }
}
