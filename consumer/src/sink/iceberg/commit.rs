//! Writes staged for one commit, and the commit that appends them.
//!
//! A write uploads its rows into the open data files and waits. The group
//! is committed, in one append, when the commit interval has passed since
//! its first write, or at once when every write running in the process is
//! waiting for it (the pod cannot take more until a commit frees a
//! permit, so waiting longer only stalls it). Before appending, each staged
//! write's plan is checked again, in order, on the snapshot the append will
//! land on; if one no longer fits, the files hold rows the table must not
//! get: they are deleted and every write of the group starts over.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::Catalog;
use tokio::sync::oneshot;

use super::files::OpenFiles;
use super::offsets::{render, summary_key, table_offsets, Offsets};
use super::{pinned, said, IcebergSink, Plan};
use crate::buffer::Batch;
use crate::sink::WriteError;

/// `Ok(true)`: appended; `Ok(false)`: the plan no longer fits, start over.
pub type Outcome = Result<bool, WriteError>;

/// The writes waiting for the next commit and the files they wrote into.
#[derive(Default)]
pub struct Pending {
    files: Option<OpenFiles>,
    staged: Vec<Staged>,
    /// When the group's first write was staged.
    since: Option<Instant>,
    /// Files opened by this process so far (names them apart).
    opened: u64,
}

struct Staged {
    batch: Arc<Batch>,
    plan: Plan,
    done: oneshot::Sender<Outcome>,
}

impl Pending {
    /// The table's offsets once the staged writes are appended.
    pub fn offsets_over(&self, mut table: Offsets) -> Offsets {
        for staged in &self.staged {
            table.extend(staged.plan.offsets.iter().map(|(p, o)| (*p, *o)));
        }
        table
    }

    /// Whether the group should be committed now: its interval is over, or
    /// it holds every write the pod may run (`permits`: nothing more comes
    /// until a commit), or the pod is in a `hurry` (handing off).
    fn due(&self, interval: Duration, permits: usize, hurry: bool, now: Instant) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        hurry || now >= since + interval || self.staged.len() >= permits
    }

    fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.since.map(|since| since + interval)
    }

    /// Every staged write learns `outcome`; the files are dropped.
    fn settle_all(&mut self, outcome: &Outcome) {
        self.files = None;
        self.since = None;
        for staged in self.staged.drain(..) {
            let _ = staged.done.send(outcome.clone());
        }
    }
}

impl IcebergSink {
    /// Writes `rows` into the open files and stages `batch` with its plan;
    /// the receiver gets the outcome of the commit that appends it.
    pub(super) async fn stage(
        &self,
        pending: &mut Pending,
        catalog: &Arc<dyn Catalog>,
        table: &Table,
        rows: Option<RecordBatch>,
        batch: Arc<Batch>,
        plan: Plan,
    ) -> Result<oneshot::Receiver<Outcome>, WriteError> {
        if pending.files.as_ref().is_some_and(|f| !f.fit(table)) {
            // The schema changed: what is staged goes first, in its files.
            self.commit(pending, catalog).await;
        }
        if let Some(rows) = rows.filter(|r| r.num_rows() > 0) {
            if pending.files.is_none() {
                pending.opened += 1;
                let prefix = format!("{}-{}", self.writer_id, pending.opened);
                let files = OpenFiles::open(table, prefix)
                    .await
                    .map_err(|e| self.upload_failed(&e))?;
                pending.files = Some(files);
            }
            let files = pending.files.as_mut().expect("opened above");
            if let Err(e) = files.write(rows).await {
                let error = self.upload_failed(&e);
                pending.settle_all(&Err(error.clone()));
                return Err(error);
            }
        }
        let (done, outcome) = oneshot::channel();
        pending.since.get_or_insert_with(Instant::now);
        pending.staged.push(Staged { batch, plan, done });
        self.appended.notify_waiters();
        Ok(outcome)
    }

    /// Waits for the commit of a staged write, committing the group itself
    /// when it is due.
    pub(super) async fn settle(
        &self,
        catalog: &Arc<dyn Catalog>,
        mut outcome: oneshot::Receiver<Outcome>,
    ) -> Outcome {
        let dropped = || Err(WriteError::unavailable("a staged write was dropped"));
        loop {
            let deadline = {
                let mut pending = self.pending.lock().await;
                match outcome.try_recv() {
                    Ok(outcome) => return outcome,
                    Err(oneshot::error::TryRecvError::Closed) => return dropped(),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                let permits = self.permits.load(Ordering::SeqCst);
                let hurry = self.hurry.load(Ordering::SeqCst);
                let interval = self.settings.commit_interval;
                if pending.due(interval, permits, hurry, Instant::now()) {
                    self.commit(&mut pending, catalog).await;
                    continue;
                }
                pending.deadline(self.settings.commit_interval)
            };
            let deadline = deadline.unwrap_or_else(Instant::now);
            tokio::select! {
                outcome = &mut outcome => return outcome.unwrap_or_else(|_| dropped()),
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = self.changed.notified() => {}
            }
        }
    }

    /// Closes the open files and appends them with every staged write's
    /// offsets; each staged write learns the outcome.
    async fn commit(&self, pending: &mut Pending, catalog: &Arc<dyn Catalog>) {
        let staged = std::mem::take(&mut pending.staged);
        let files = pending.files.take();
        pending.since = None;
        let outcome = self.append_files(catalog, files, &staged).await;
        if outcome == Ok(true) {
            let held = staged.iter().map(|s| s.plan.held(&s.batch)).sum();
            self.count(|m| m.records_held_total.inc_by(held));
        }
        for staged in staged {
            let _ = staged.done.send(outcome.clone());
        }
        self.appended.notify_waiters();
    }

    async fn append_files(
        &self,
        catalog: &Arc<dyn Catalog>,
        files: Option<OpenFiles>,
        staged: &[Staged],
    ) -> Outcome {
        let files = match files {
            Some(files) => files.close().await.map_err(|e| self.upload_failed(&e))?,
            None => Vec::new(),
        };
        let appended = self.append(catalog, staged, &files).await;
        if appended == Ok(false) {
            self.delete(catalog, &files).await;
        }
        appended
    }

    /// Appends `files` with the staged writes' offsets on a snapshot every
    /// staged plan still fits; `false` when one no longer fits.
    async fn append(
        &self,
        catalog: &Arc<dyn Catalog>,
        staged: &[Staged],
        files: &[DataFile],
    ) -> Outcome {
        let Some(topic) = staged.first().map(|s| s.batch.topic.clone()) else {
            return Ok(true);
        };
        let mut conflicts = 0;
        loop {
            let table = self.load(catalog.as_ref()).await?;
            let Some(offsets) = self.still_fit(&table, &topic, staged)? else {
                return Ok(false);
            };
            let properties = HashMap::from([(summary_key(&topic), render(&offsets))]);
            let tx = Transaction::new(&table);
            let tx = tx
                .fast_append()
                .add_data_files(files.to_vec())
                .set_snapshot_properties(properties)
                .apply(tx)
                .map_err(|e| WriteError::unavailable(said(&e)))?;
            let pinned = pinned::Pinned {
                catalog: catalog.clone(),
                table,
            };
            let started = Instant::now();
            let result = tx.commit(&pinned).await;
            let outcome = match &result {
                Ok(_) => "committed",
                Err(e) if pinned::is_conflict(e) => "conflict",
                Err(_) => "failed",
            };
            self.count(|m| {
                m.commits_total.with_label_values(&[outcome]).inc();
                m.commit_duration_seconds
                    .observe(started.elapsed().as_secs_f64());
            });
            match result {
                Ok(_) => {
                    self.committed(files, &offsets);
                    return Ok(true);
                }
                // Another writer appended first: check the plans on its
                // snapshot, after a pause that spreads the writers out.
                Err(e) if pinned::is_conflict(&e) => {
                    conflicts += 1;
                    tokio::time::sleep(conflict_pause(conflicts)).await;
                }
                // The append may have landed all the same: the next attempt
                // reads the offsets and finds its records held if it did.
                Err(e) => {
                    return Err(WriteError::unavailable(format!(
                        "committing to Iceberg table {}: {}",
                        self.table,
                        said(&e)
                    )))
                }
            }
        }
    }

    /// The offsets the table gets if every staged plan, in order, still fits
    /// `table`.
    fn still_fit(
        &self,
        table: &Table,
        topic: &str,
        staged: &[Staged],
    ) -> Result<Option<Offsets>, WriteError> {
        let mut offsets = table_offsets(table.metadata(), topic)
            .map_err(|e| WriteError::unavailable(format!("table {}: {e}", self.table)))?;
        for s in staged {
            if self.plan(&s.batch, &offsets).as_ref() != Some(&s.plan) {
                return Ok(None);
            }
            offsets.extend(s.plan.offsets.iter().map(|(p, o)| (*p, *o)));
        }
        Ok(Some(offsets))
    }

    fn committed(&self, files: &[DataFile], offsets: &Offsets) {
        self.count(|m| {
            m.data_files_total.inc_by(files.len() as u64);
            let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
            m.data_bytes_total.inc_by(bytes);
            for (partition, offset) in offsets {
                m.offset
                    .with_label_values(&[&partition.to_string()])
                    .set(*offset);
            }
        });
    }

    /// Removes data files no snapshot will reference (best effort: a file
    /// left behind is found by listing the table's data files that no
    /// snapshot names; see the README).
    async fn delete(&self, catalog: &Arc<dyn Catalog>, files: &[DataFile]) {
        let Ok(table) = self.load(catalog.as_ref()).await else {
            return;
        };
        for file in files {
            if let Err(e) = table.file_io().delete(file.file_path()).await {
                tracing::warn!(file = file.file_path(), error = %e, "removing an unused data file");
            }
        }
    }
}

/// A random pause after the `n`th conflict in a row, growing to 2 s: the
/// writers that lost a race do not all come back at once.
fn conflict_pause(n: u32) -> Duration {
    let cap = Duration::from_millis(50 << n.min(5)).min(Duration::from_secs(2));
    cap.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(n: usize) -> Pending {
        let mut pending = Pending {
            since: Some(Instant::now()),
            ..Pending::default()
        };
        for id in 0..n {
            let (done, _) = oneshot::channel();
            pending.staged.push(Staged {
                batch: Arc::new(Batch {
                    id: id as u64,
                    topic: "t".into(),
                    trigger: crate::buffer::FlushTrigger::Size,
                    chunks: Vec::new(),
                }),
                plan: Plan::default(),
                done,
            });
        }
        pending
    }

    #[test]
    fn a_group_waits_for_its_interval_while_the_pod_may_write_more() {
        let interval = Duration::from_secs(10);
        let pending = staged(2);
        let now = pending.since.unwrap();
        assert!(!pending.due(interval, 3, false, now));
        assert!(pending.due(interval, 3, false, now + interval));
    }

    #[test]
    fn a_group_is_committed_at_once_when_it_holds_every_permit_or_the_pod_hands_off() {
        let pending = staged(3);
        let now = pending.since.unwrap();
        let interval = Duration::from_secs(10);
        assert!(pending.due(interval, 3, false, now));
        assert!(!pending.due(interval, 4, false, now));
        assert!(pending.due(interval, 4, true, now));
    }

    #[test]
    fn nothing_staged_is_never_due() {
        let pending = Pending::default();
        let later = Instant::now() + Duration::from_secs(1);
        assert!(!pending.due(Duration::ZERO, 0, true, later));
    }
}
