//! Limits that can change while the process runs.
//!
//! The operator pushes new limits to every pod through the authenticated admin
//! endpoint (see [`crate::server`]); a pod reports the generation it runs as
//! `millpond_limits_generation`. Every change is checked against the memory
//! budget before it takes effect.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::budget::{BudgetPlan, MIN_FLUSH_BYTES};
use crate::{Error, Result};

/// The four knobs of the data path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Operator-assigned version of these limits.
    pub generation: u64,
    pub flush_bytes: u64,
    pub flush_interval_ms: u64,
    pub max_in_flight: u32,
    pub consume_batch_size: usize,
}

impl Limits {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// A requested change (the operator sends it); absent fields stay as they are.
pub use millpond_core::pod::LimitsUpdate;

/// Checks the parts of limits that do not depend on the budget.
pub fn validate_shape(l: &Limits) -> Result<()> {
    if l.max_in_flight == 0 {
        return Err(Error::Config("maxInFlight must be at least 1".into()));
    }
    if l.consume_batch_size == 0 {
        return Err(Error::Config("consumeBatchSize must be at least 1".into()));
    }
    if l.flush_interval_ms == 0 {
        return Err(Error::Config("flushIntervalMs must be at least 1".into()));
    }
    Ok(())
}

/// Applies `update` to `current`: the result, or why it is refused.
pub fn apply(current: &Limits, update: &LimitsUpdate, plan: &BudgetPlan) -> Result<Limits> {
    let next = Limits {
        generation: update.generation,
        flush_bytes: update.flush_bytes.unwrap_or(current.flush_bytes),
        flush_interval_ms: update
            .flush_interval_ms
            .unwrap_or(current.flush_interval_ms),
        max_in_flight: update.max_in_flight.unwrap_or(current.max_in_flight),
        consume_batch_size: update
            .consume_batch_size
            .unwrap_or(current.consume_batch_size),
    };
    if update.generation < current.generation
        || (update.generation == current.generation && next != *current)
    {
        return Err(Error::Config(format!(
            "generation {} is older than the running generation {}",
            update.generation, current.generation
        )));
    }
    validate_shape(&next)?;
    plan.check(next.flush_bytes, next.max_in_flight)?;
    Ok(next)
}

/// `limits` lowered until they fit `plan`: first the flush size, then the
/// writes in flight. The plan always fits one minimal batch in flight.
pub fn fit(limits: &Limits, plan: &BudgetPlan) -> Limits {
    let mut fitted = limits.clone();
    while plan
        .check(fitted.flush_bytes, fitted.max_in_flight)
        .is_err()
    {
        let largest = plan.max_flush_bytes(fitted.max_in_flight);
        if largest >= MIN_FLUSH_BYTES && largest < fitted.flush_bytes {
            fitted.flush_bytes = largest;
        } else if fitted.max_in_flight > 1 {
            fitted.max_in_flight -= 1;
        } else {
            break;
        }
    }
    fitted
}

/// The limits in force, shared by the loop (reader) and the admin endpoint (writer).
#[derive(Clone)]
pub struct LiveLimits {
    tx: Arc<watch::Sender<Limits>>,
    plan: Arc<std::sync::RwLock<BudgetPlan>>,
}

impl LiveLimits {
    pub fn new(initial: Limits, plan: BudgetPlan) -> Self {
        LiveLimits {
            tx: Arc::new(watch::channel(initial).0),
            plan: Arc::new(std::sync::RwLock::new(plan)),
        }
    }

    /// Installs the final plan (once the partition count is known) and, unless
    /// the flush size was set explicitly, the flush size it derives.
    /// Limits that no longer fit (a plan re-made for more partitions) are
    /// lowered until they do.
    pub fn rebase(&self, plan: BudgetPlan, derived_flush_bytes: bool) {
        self.tx.send_modify(|current| {
            if derived_flush_bytes {
                current.flush_bytes = plan.flush_bytes;
            }
            let fitted = fit(current, &plan);
            if fitted != *current {
                tracing::warn!(from = ?current, to = ?fitted, "the limits did not fit the new memory plan: lowered");
                *current = fitted;
            }
        });
        *self.plan.write().expect("plan lock") = plan;
    }

    /// The limits in force now.
    pub fn current(&self) -> Limits {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Limits> {
        self.tx.subscribe()
    }

    pub fn plan(&self) -> BudgetPlan {
        self.plan.read().expect("plan lock").clone()
    }

    /// Validates and installs an update; returns the limits now in force.
    pub fn update(&self, update: &LimitsUpdate) -> Result<Limits> {
        let mut result = Err(Error::Config("not applied".into()));
        let plan = self.plan();
        self.tx
            .send_if_modified(|current| match apply(current, update, &plan) {
                Ok(next) => {
                    let changed = next != *current;
                    *current = next.clone();
                    result = Ok(next);
                    changed
                }
                Err(e) => {
                    result = Err(e);
                    false
                }
            });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{plan, BudgetRequest};

    fn setup() -> LiveLimits {
        let plan = plan(&BudgetRequest {
            budget: 256 << 20,
            partitions: 4,
            max_in_flight: 4,
            flush_bytes: None,
            queued_max_messages_kbytes: None,
            fetch_max_bytes: None,
            max_partition_fetch_bytes: None,
            sink_factor: 1.0,
        })
        .unwrap();
        LiveLimits::new(
            Limits {
                generation: 0,
                flush_bytes: plan.flush_bytes,
                flush_interval_ms: 1000,
                max_in_flight: 4,
                consume_batch_size: 500,
            },
            plan,
        )
    }

    #[test]
    fn an_update_changes_only_what_it_names_and_bumps_the_generation() {
        let live = setup();
        let mut rx = live.subscribe();
        let next = live
            .update(&LimitsUpdate {
                generation: 3,
                max_in_flight: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (next.generation, next.max_in_flight, next.consume_batch_size),
            (3, 2, 500)
        );
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().generation, 3);
    }

    #[test]
    fn updates_beyond_the_budget_or_older_are_refused_and_change_nothing() {
        let live = setup();
        let err = live
            .update(&LimitsUpdate {
                generation: 1,
                flush_bytes: Some(1 << 30),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("budget is 256.0Mi"), "{err}");
        live.update(&LimitsUpdate {
            generation: 5,
            ..Default::default()
        })
        .unwrap();
        let err = live
            .update(&LimitsUpdate {
                generation: 4,
                max_in_flight: Some(1),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("older"), "{err}");
        assert!(live
            .update(&LimitsUpdate {
                generation: 6,
                max_in_flight: Some(0),
                ..Default::default()
            })
            .is_err());
        assert_eq!(live.current().generation, 5);
    }

    #[test]
    fn a_plan_for_more_partitions_lowers_limits_that_no_longer_fit() {
        let live = setup();
        let raised = live
            .update(&LimitsUpdate {
                generation: 1,
                flush_bytes: Some(live.plan().max_flush_bytes(4)),
                ..Default::default()
            })
            .unwrap();
        let bigger = plan(&BudgetRequest {
            budget: 256 << 20,
            partitions: 64,
            max_in_flight: 4,
            flush_bytes: None,
            // Set by the user, so each new partition's queue costs as much.
            queued_max_messages_kbytes: Some(1024),
            fetch_max_bytes: None,
            max_partition_fetch_bytes: None,
            sink_factor: 1.0,
        })
        .unwrap();
        assert!(bigger.check(raised.flush_bytes, 4).is_err());
        live.rebase(bigger.clone(), false);
        let now = live.current();
        assert_eq!(now.max_in_flight, 4);
        assert_eq!(now.flush_bytes, bigger.max_flush_bytes(4));
        assert!(bigger.check(now.flush_bytes, now.max_in_flight).is_ok());
        assert_eq!(now.generation, 1);
    }
}
