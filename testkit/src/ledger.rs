//! What a test sink accepted: every record id, once or more.
//!
//! The journey test sends records with unique ids (`{"id": N, ...}`, as
//! `millpond-loadgen` writes them) through the consumer into
//! `millpond-test-sink`, which keeps this ledger; at the end the ledger says
//! whether every id arrived and how many arrived twice.

use serde::Serialize;

/// Ids seen, as a bitset, and how often any id was seen again.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: Vec<u64>,
    batches: u64,
    records: u64,
    unique: u64,
}

/// Counts of a ledger, for `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests accepted.
    pub batches: u64,
    /// Records accepted, duplicates included.
    pub records: u64,
    /// Distinct ids accepted.
    pub unique: u64,
    /// Records accepted more than once (`records - unique`).
    pub duplicates: u64,
    /// With an expected count: ids in `0..expected` never accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
    /// With an expected count: the first few missing ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_missing: Vec<u64>,
}

/// A line of a batch that is not a JSON object with an unsigned integer `id`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct BadLine {
    /// 1-based line number in the batch.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The ids of an NDJSON batch, in order; blank lines are skipped.
pub fn ids(body: &[u8]) -> Result<Vec<u64>, BadLine> {
    #[derive(serde::Deserialize)]
    struct Record {
        id: u64,
    }
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| {
            serde_json::from_slice::<Record>(l)
                .map(|r| r.id)
                .map_err(|e| BadLine {
                    line: i + 1,
                    reason: e.to_string(),
                })
        })
        .collect()
}

impl Ledger {
    /// Records one accepted batch.
    pub fn accept(&mut self, ids: &[u64]) {
        self.batches += 1;
        for &id in ids {
            let (word, bit) = ((id / 64) as usize, id % 64);
            if word >= self.seen.len() {
                self.seen.resize(word + 1, 0);
            }
            let mask = 1u64 << bit;
            if self.seen[word] & mask == 0 {
                self.seen[word] |= mask;
                self.unique += 1;
            }
            self.records += 1;
        }
    }

    fn has(&self, id: u64) -> bool {
        self.seen
            .get((id / 64) as usize)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// The counts; with `expected`, also which of `0..expected` are missing.
    pub fn stats(&self, expected: Option<u64>) -> Stats {
        let mut first_missing = Vec::new();
        let missing = expected.map(|n| {
            let mut count = 0;
            for id in (0..n).filter(|&id| !self.has(id)) {
                count += 1;
                if first_missing.len() < 10 {
                    first_missing.push(id);
                }
            }
            count
        });
        Stats {
            batches: self.batches,
            records: self.records,
            unique: self.unique,
            duplicates: self.records - self.unique,
            missing,
            first_missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_ndjson_with_or_without_metadata() {
        let body = b"{\"id\":3,\"pad\":\"x\"}\n\n{\"_topic\":\"t\",\"_partition\":1,\"_offset\":9,\"id\":70}\n";
        assert_eq!(ids(body), Ok(vec![3, 70]));
        assert_eq!(ids(b""), Ok(vec![]));
    }

    #[test]
    fn a_line_without_an_id_is_refused_with_its_number() {
        let err = ids(b"{\"id\":1}\n{\"name\":\"x\"}\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("missing field `id`"), "{err}");
        assert_eq!(ids(b"{\"id\":-1}").unwrap_err().line, 1);
    }

    #[test]
    fn duplicates_and_missing_ids_are_counted() {
        let mut ledger = Ledger::default();
        ledger.accept(&[0, 1, 2, 64, 200]);
        ledger.accept(&[2, 64]);
        let stats = ledger.stats(Some(66));
        assert_eq!(stats.batches, 2);
        assert_eq!(stats.records, 7);
        assert_eq!(stats.unique, 5);
        assert_eq!(stats.duplicates, 2);
        // 0..66 less {0, 1, 2, 64}: 62 missing, starting at 3.
        assert_eq!(stats.missing, Some(62));
        assert_eq!(stats.first_missing, vec![3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(ledger.stats(None).missing, None);
    }

    #[test]
    fn a_complete_ledger_misses_nothing() {
        let mut ledger = Ledger::default();
        ledger.accept(&(0..1_000).rev().collect::<Vec<_>>());
        let stats = ledger.stats(Some(1_000));
        assert_eq!(
            (stats.unique, stats.missing, stats.duplicates),
            (1_000, Some(0), 0)
        );
        assert!(stats.first_missing.is_empty());
    }
}
