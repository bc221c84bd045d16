//! The memory budget: every bound on memory is derived from one number.
//!
//! A pod's worst case, with every partition of the topic assigned to it, is
//!
//! ```text
//! base + prefetch + (max_in_flight + 1) * flush_bytes * sink_factor
//! ```
//!
//! * `base`: the process itself (runtime, librdkafka threads, allocator slack);
//! * `prefetch`: librdkafka's fetch queues. Measured on a real broker,
//!   `queued.max.messages.kbytes` bounds each partition's queue (librdkafka
//!   decides per partition whether to fetch), and every partition may overshoot
//!   it by one `max.partition.fetch.bytes`; one response of up to
//!   `fetch.max.bytes` may be in flight on top. So
//!   `prefetch = PREFETCH_OVERHEAD * partitions * (queue + max.partition.fetch.bytes) + fetch.max.bytes`,
//!   where `PREFETCH_OVERHEAD` covers librdkafka's per-message bookkeeping.
//!   These sizes count bytes as they come over the wire: with a compressed
//!   topic, memory holds the decompressed records, so budget for the ratio.
//! * one buffer being filled plus `max_in_flight` batches being written, each at
//!   most `flush_bytes`, times what the sink needs beside the batch while
//!   writing it (`sink_factor`).
//!
//! This module is pure: the same function checks the start-up settings and every
//! live limit change.

use crate::quantity::format_bytes;
use crate::{Error, Result};

/// Memory the process needs before it holds any record.
pub const BASE_BYTES: u64 = 48 << 20;
/// Smallest flush size worth running with.
pub const MIN_FLUSH_BYTES: u64 = 64 << 10;
/// Default flush size when the budget allows it.
pub const DEFAULT_FLUSH_BYTES: u64 = 16 << 20;
/// Share of the budget above `BASE_BYTES` given to librdkafka's prefetch.
const PREFETCH_SHARE: f64 = 0.25;
/// librdkafka's bookkeeping per queued byte (message headers, ops), measured.
pub const PREFETCH_OVERHEAD: f64 = 1.5;
/// Smallest per-partition queue librdkafka is given (KiB).
const MIN_QUEUE_KBYTES: u64 = 256;
/// Bounds of the per-partition fetch size.
const MIN_PARTITION_FETCH: u64 = 64 << 10;
const MAX_PARTITION_FETCH: u64 = 1 << 20;
/// librdkafka raises `fetch.max.bytes` to at least `message.max.bytes` (1000000).
const MIN_FETCH_MAX_BYTES: u64 = 1 << 20;
const MAX_FETCH_MAX_BYTES: u64 = 50 << 20;

/// What the budget is asked to hold.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRequest {
    /// Total bytes the process may use (the pod's memory limit).
    pub budget: u64,
    /// Partitions of the topic: the worst case is all of them assigned here.
    pub partitions: u32,
    /// Permits for concurrent sink writes.
    pub max_in_flight: u32,
    /// Flush size asked for explicitly, if any.
    pub flush_bytes: Option<u64>,
    /// Explicit `queued.max.messages.kbytes`, if the user set it.
    pub queued_max_messages_kbytes: Option<u64>,
    /// Explicit `fetch.max.bytes`, if the user set it.
    pub fetch_max_bytes: Option<u64>,
    /// Explicit `max.partition.fetch.bytes`, if the user set it.
    pub max_partition_fetch_bytes: Option<u64>,
    /// Bytes the sink holds beside each batch it writes, per batch byte.
    pub sink_factor: f64,
}

/// The bounds derived from a [`BudgetRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPlan {
    pub budget: u64,
    pub partitions: u32,
    pub queued_max_messages_kbytes: u64,
    pub fetch_max_bytes: u64,
    pub max_partition_fetch_bytes: u64,
    /// Worst case of librdkafka's queues plus one fetch response in flight.
    pub prefetch_bytes: u64,
    /// What is left for the buffer and the batches in flight.
    pub data_bytes: u64,
    pub sink_factor: f64,
    /// The flush size to start with.
    pub flush_bytes: u64,
}

impl BudgetPlan {
    /// The largest flush size that fits with `max_in_flight` permits.
    pub fn max_flush_bytes(&self, max_in_flight: u32) -> u64 {
        let batches = (max_in_flight as f64 + 1.0) * self.sink_factor;
        (self.data_bytes as f64 / batches).floor() as u64
    }

    /// The worst case for the given limits.
    pub fn worst_case(&self, flush_bytes: u64, max_in_flight: u32) -> u64 {
        BASE_BYTES
            + self.prefetch_bytes
            + ((max_in_flight as f64 + 1.0) * flush_bytes as f64 * self.sink_factor) as u64
    }

    /// Checks limits against the budget; the error shows the numbers.
    pub fn check(&self, flush_bytes: u64, max_in_flight: u32) -> Result<()> {
        let worst = self.worst_case(flush_bytes, max_in_flight);
        if worst > self.budget {
            return Err(Error::Budget(format!(
                "flush_bytes={} with max_in_flight={} needs {} (base {} + prefetch {} + {} batches x {} x sink factor {:.1}) but the budget is {}; \
                 largest flush_bytes for max_in_flight={} is {}",
                format_bytes(flush_bytes),
                max_in_flight,
                format_bytes(worst),
                format_bytes(BASE_BYTES),
                format_bytes(self.prefetch_bytes),
                max_in_flight + 1,
                format_bytes(flush_bytes),
                self.sink_factor,
                format_bytes(self.budget),
                max_in_flight,
                format_bytes(self.max_flush_bytes(max_in_flight)),
            )));
        }
        if flush_bytes < MIN_FLUSH_BYTES {
            return Err(Error::Budget(format!(
                "flush_bytes={} is below the minimum of {}",
                format_bytes(flush_bytes),
                format_bytes(MIN_FLUSH_BYTES)
            )));
        }
        Ok(())
    }
}

/// Derives librdkafka's prefetch bounds and the flush size from the budget,
/// keeping whatever the user set explicitly, or explains what does not fit.
pub fn plan(req: &BudgetRequest) -> Result<BudgetPlan> {
    if req.max_in_flight == 0 {
        return Err(Error::Config("max_in_flight must be at least 1".into()));
    }
    let partitions = req.partitions.max(1) as u64;
    let prefetch_of = |queue_kbytes: u64, partition_fetch: u64, fetch_max: u64| {
        (PREFETCH_OVERHEAD * (partitions * ((queue_kbytes << 10) + partition_fetch)) as f64) as u64
            + fetch_max
    };
    let min_prefetch = prefetch_of(MIN_QUEUE_KBYTES, MIN_PARTITION_FETCH, MIN_FETCH_MAX_BYTES);
    let min_needed = BASE_BYTES + min_prefetch + 2 * MIN_FLUSH_BYTES;
    if req.budget < min_needed {
        return Err(Error::Budget(format!(
            "budget {} is below the {} the process needs with {} partition(s) assigned (base {} + a minimal prefetch of {} + two minimal batches)",
            format_bytes(req.budget),
            format_bytes(min_needed),
            partitions,
            format_bytes(BASE_BYTES),
            format_bytes(min_prefetch),
        )));
    }
    let above_base = req.budget - BASE_BYTES;
    let share = (above_base as f64 * PREFETCH_SHARE) as u64;
    // Split the share between every partition's queue and one response in flight.
    let per_partition = (share as f64 / (PREFETCH_OVERHEAD * partitions as f64 + 1.0)) as u64;
    let max_partition_fetch_bytes = req
        .max_partition_fetch_bytes
        .unwrap_or((per_partition / 4).clamp(MIN_PARTITION_FETCH, MAX_PARTITION_FETCH));
    let queued_max_messages_kbytes = req.queued_max_messages_kbytes.unwrap_or(
        (per_partition.saturating_sub(max_partition_fetch_bytes) >> 10).max(MIN_QUEUE_KBYTES),
    );
    let fetch_max_bytes = req
        .fetch_max_bytes
        .unwrap_or(per_partition.clamp(MIN_FETCH_MAX_BYTES, MAX_FETCH_MAX_BYTES));
    let prefetch_bytes = prefetch_of(
        queued_max_messages_kbytes,
        max_partition_fetch_bytes,
        fetch_max_bytes,
    );
    if BASE_BYTES + prefetch_bytes >= req.budget {
        return Err(Error::Budget(format!(
            "budget {} cannot hold base {} + prefetch {} for {} partition(s) (queued.max.messages.kbytes={} and max.partition.fetch.bytes={} per partition, fetch.max.bytes={})",
            format_bytes(req.budget),
            format_bytes(BASE_BYTES),
            format_bytes(prefetch_bytes),
            partitions,
            queued_max_messages_kbytes,
            max_partition_fetch_bytes,
            fetch_max_bytes
        )));
    }
    let mut plan = BudgetPlan {
        budget: req.budget,
        partitions: partitions as u32,
        queued_max_messages_kbytes,
        fetch_max_bytes,
        max_partition_fetch_bytes,
        prefetch_bytes,
        data_bytes: req.budget - BASE_BYTES - prefetch_bytes,
        sink_factor: req.sink_factor,
        flush_bytes: 0,
    };
    plan.flush_bytes = req
        .flush_bytes
        .unwrap_or_else(|| DEFAULT_FLUSH_BYTES.min(plan.max_flush_bytes(req.max_in_flight)));
    plan.check(plan.flush_bytes, req.max_in_flight)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(budget: u64) -> BudgetRequest {
        BudgetRequest {
            budget,
            partitions: 8,
            max_in_flight: 4,
            flush_bytes: None,
            queued_max_messages_kbytes: None,
            fetch_max_bytes: None,
            max_partition_fetch_bytes: None,
            sink_factor: 1.0,
        }
    }

    #[test]
    fn derived_plan_fits_its_budget() {
        for mib in [128u64, 256, 1024, 8192] {
            let plan = plan(&request(mib << 20)).unwrap();
            assert!(
                plan.worst_case(plan.flush_bytes, 4) <= mib << 20,
                "{mib}Mi: {plan:?}"
            );
            assert!(plan.fetch_max_bytes >= plan.max_partition_fetch_bytes);
        }
    }

    #[test]
    fn a_256mi_budget_bounds_prefetch_far_below_librdkafka_defaults() {
        let plan = plan(&request(256 << 20)).unwrap();
        // librdkafka's defaults: 64 MiB per partition queue, 1 MiB partition fetch, 50 MiB fetch.
        assert!(plan.prefetch_bytes < 64 << 20, "{plan:?}");
        assert!(plan.queued_max_messages_kbytes < 65536 / 8);
        assert_eq!(plan.flush_bytes, DEFAULT_FLUSH_BYTES);
    }

    #[test]
    fn more_partitions_get_smaller_queues_within_the_same_budget() {
        let mut few = request(512 << 20);
        few.partitions = 2;
        let mut many = request(512 << 20);
        many.partitions = 64;
        let (few, many) = (plan(&few).unwrap(), plan(&many).unwrap());
        assert!(many.queued_max_messages_kbytes < few.queued_max_messages_kbytes);
        assert!(many.worst_case(many.flush_bytes, 4) <= 512 << 20);
    }

    #[test]
    fn explicit_settings_are_kept_and_checked() {
        let mut req = request(256 << 20);
        req.queued_max_messages_kbytes = Some(8192);
        req.flush_bytes = Some(1 << 20);
        let plan = plan(&req).unwrap();
        assert_eq!(plan.queued_max_messages_kbytes, 8192);
        assert_eq!(plan.flush_bytes, 1 << 20);

        req.flush_bytes = Some(100 << 20);
        let err = super::plan(&req).unwrap_err().to_string();
        assert!(
            err.contains("flush_bytes=100.0Mi") && err.contains("budget is 256.0Mi"),
            "{err}"
        );
    }

    #[test]
    fn a_budget_below_the_base_is_refused_with_numbers() {
        let err = plan(&request(32 << 20)).unwrap_err().to_string();
        assert!(
            err.contains("budget 32.0Mi is below") && err.contains("8 partition(s)"),
            "{err}"
        );
    }

    #[test]
    fn explicit_prefetch_larger_than_budget_is_refused() {
        let mut req = request(256 << 20);
        req.queued_max_messages_kbytes = Some(65536);
        let err = plan(&req).unwrap_err().to_string();
        assert!(err.contains("queued.max.messages.kbytes=65536"), "{err}");
    }

    #[test]
    fn more_in_flight_permits_mean_smaller_batches() {
        let plan = plan(&request(256 << 20)).unwrap();
        assert!(plan.max_flush_bytes(8) < plan.max_flush_bytes(2));
        assert!(plan.check(plan.max_flush_bytes(8), 8).is_ok());
        assert!(plan.check(plan.max_flush_bytes(8) + (1 << 20), 8).is_err());
    }
}
