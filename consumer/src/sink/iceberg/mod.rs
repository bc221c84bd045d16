//! The Iceberg table sink: each batch becomes Parquet data files of the
//! table, appended in one snapshot together with the topic's offsets, so a
//! record is in the table exactly once across crashes, rebalances and
//! writers that lost their partitions ([`offsets`] has the rule,
//! [`pinned`] the fencing).
//!
//! `iceberg://<namespace>/<table>` (a nested namespace as `a.b`). The
//! catalog is a REST catalog ([`CatalogSettings`]: `ICEBERG_CATALOG_URI`,
//! optional `ICEBERG_WAREHOUSE`, and a bearer token or OAuth2 client
//! credentials).
//! Object storage is reached as by the `s3://` sink (`AWS_*`), or with what
//! the catalog hands out.
//!
//! One write: read the table's offsets, keep the records the table does not
//! hold, upload them as data files, then append the files with the new
//! offsets on exactly the snapshot whose offsets were read. If another
//! writer committed in between, the catalog refuses; the write reads the
//! offsets again and commits the same files if its records still fit, else
//! deletes them and starts over. After the append the write is
//! acknowledged and the Kafka commit follows.

mod offsets;
mod pinned;
mod rows;
mod schema;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::RestCatalogBuilder;
use millpond_core::sink::trouble;
use parquet::file::properties::WriterProperties;
use tokio::sync::{Notify, OnceCell};
use url::Url;

use super::WriteError;
use crate::buffer::Batch;
use crate::metrics::TableMetrics;
use crate::{Error, Result};
use offsets::{admit, render, summary_key, table_offsets, Admit, Offsets, Span};

/// Data files roll over at this size within one write.
const TARGET_FILE_BYTES: usize = 128 << 20;
/// How long a write waits for an earlier batch of its partitions to be
/// appended before it reports the sink unavailable (and is tried again).
const WAIT_FOR_EARLIER: Duration = Duration::from_secs(30);

/// How to reach the catalog: its URL and the REST catalog client's
/// properties (`uri`, `warehouse`, `token`, `credential`, `scope`,
/// `oauth2-server-uri`).
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    pub uri: String,
    pub props: HashMap<String, String>,
    /// Create a missing table (and namespace) from the first batch.
    pub auto_create: bool,
    /// Add optional columns for fields the table does not have.
    pub evolve_schema: bool,
}

/// Appends batches to one Iceberg table.
pub struct IcebergSink {
    table: TableIdent,
    settings: CatalogSettings,
    catalog: OnceCell<Arc<dyn Catalog>>,
    /// Names this process's data files apart from every other writer's.
    writer_id: String,
    /// One append at a time from this process.
    committing: tokio::sync::Mutex<()>,
    /// Woken after each append.
    appended: Notify,
    /// Ranges of single records this sink refused (they go to the
    /// dead-letter topic): the table's offset may step over them.
    vouched: Mutex<BTreeMap<i32, Vec<(i64, i64)>>>,
    metrics: OnceLock<TableMetrics>,
}

/// What one write appends: per chunk, where its records start.
#[derive(Debug, PartialEq)]
struct Plan {
    admitted: Vec<(i32, Admit)>,
    offsets: Offsets,
}

impl Plan {
    /// Records of `batch` the plan leaves out (the table holds them).
    fn held(&self, batch: &Batch) -> u64 {
        let held = |(chunk, (_, admitted)): (&crate::buffer::PartitionChunk, &(i32, Admit))| {
            match admitted {
                Admit::From(from) => chunk.offsets.iter().filter(|o| *o < from).count() as u64,
                Admit::Held | Admit::Wait => chunk.records,
            }
        };
        batch.chunks.iter().zip(&self.admitted).map(held).sum()
    }
}

impl IcebergSink {
    pub fn new(url: &Url, settings: CatalogSettings) -> Result<Self> {
        let table = table_of(url)?;
        Ok(IcebergSink {
            table,
            settings,
            catalog: OnceCell::new(),
            writer_id: format!("millpond-{}", uuid::Uuid::now_v7()),
            committing: tokio::sync::Mutex::new(()),
            appended: Notify::new(),
            vouched: Mutex::default(),
            metrics: OnceLock::new(),
        })
    }

    pub fn observe(&self, metrics: TableMetrics) {
        let _ = self.metrics.set(metrics);
    }

    fn count(&self, f: impl FnOnce(&TableMetrics)) {
        if let Some(m) = self.metrics.get() {
            f(m);
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "Iceberg table {} (catalog {})",
            self.table, self.settings.uri
        )
    }

    async fn catalog(&self) -> std::result::Result<Arc<dyn Catalog>, WriteError> {
        self.catalog
            .get_or_try_init(|| async {
                let catalog = RestCatalogBuilder::default()
                    .with_storage_factory(Arc::new(storage::ObjectStorageFactory))
                    .load("millpond", self.settings.props.clone())
                    .await
                    .map_err(|e| {
                        WriteError::unavailable(format!(
                            "Iceberg catalog {} unreachable: {}",
                            self.settings.uri,
                            said(&e)
                        ))
                    })?;
                Ok(Arc::new(catalog) as Arc<dyn Catalog>)
            })
            .await
            .cloned()
    }

    async fn load(&self, catalog: &dyn Catalog) -> std::result::Result<Table, WriteError> {
        catalog.load_table(&self.table).await.map_err(|e| {
            let error = format!(
                "loading Iceberg table {} from {}: {}",
                self.table,
                self.settings.uri,
                said(&e)
            );
            let error = match e.kind() {
                ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound => trouble::tag(
                    trouble::TABLE_NOT_FOUND,
                    &format!("{error}; create the table, or let the sink create it (autoCreate)"),
                ),
                _ if unreachable(&e) => trouble::tag(trouble::CATALOG_UNREACHABLE, &error),
                _ => error,
            };
            WriteError::unavailable(error)
        })
    }

    /// One attempt; waits for earlier batches of the same partitions.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
        let catalog = self.catalog().await?;
        let started = Instant::now();
        loop {
            let table = match self.load(catalog.as_ref()).await {
                Ok(table) => table,
                Err(e) if self.settings.auto_create && is_not_found(&e) => {
                    self.create(catalog.as_ref(), &batch).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.settings.evolve_schema && self.evolve(catalog.as_ref(), &table, &batch).await? {
                continue;
            }
            let Some(plan) = self.plan(&batch, &table)? else {
                if started.elapsed() > WAIT_FOR_EARLIER {
                    return Err(WriteError::unavailable(format!(
                        "an earlier batch of {} is not in table {} yet",
                        batch.topic, self.table
                    )));
                }
                let _ = tokio::time::timeout(Duration::from_millis(250), self.appended.notified())
                    .await;
                continue;
            };
            if plan.offsets.is_empty() {
                self.count(|m| m.records_held_total.inc_by(batch.records()));
                return Ok(()); // the table holds every record already
            }
            let files = self
                .write_files(&table, &batch, &plan)
                .await
                .inspect_err(|e| {
                    if matches!(e, WriteError::Refused { .. }) && batch.records() == 1 {
                        self.vouch(&batch);
                    }
                })?;
            if self
                .append(catalog.clone(), &batch, &plan, files.clone())
                .await?
            {
                self.appended.notify_waiters();
                self.count(|m| m.records_held_total.inc_by(plan.held(&batch)));
                return Ok(());
            }
            self.delete(&table, files).await;
        }
    }

    /// Creates the table (and its namespace) with the fields of `batch` as
    /// optional columns; another pod creating it at the same time is fine.
    async fn create(
        &self,
        catalog: &dyn Catalog,
        batch: &Batch,
    ) -> std::result::Result<(), WriteError> {
        let failed = |e: String| {
            WriteError::unavailable(format!("creating Iceberg table {}: {e}", self.table))
        };
        let lines = batch.chunks.iter().flat_map(|c| c.lines());
        let inferred = schema::infer(lines).map_err(failed)?;
        let columns = schema::for_new_table(&inferred).map_err(failed)?;
        let namespace = self.table.namespace();
        if let Err(e) = catalog.create_namespace(namespace, HashMap::new()).await {
            if e.kind() != ErrorKind::NamespaceAlreadyExists {
                return Err(failed(said(&e)));
            }
        }
        let creation = iceberg::TableCreation::builder()
            .name(self.table.name().to_string())
            .schema(columns)
            .build();
        match catalog.create_table(namespace, creation).await {
            Ok(_) => {
                tracing::info!(table = %self.table, "created the Iceberg table from the records' fields");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::TableAlreadyExists => Ok(()),
            Err(e) => Err(failed(said(&e))),
        }
    }

    /// Adds optional columns for the fields of `batch` the table lacks;
    /// `true` when it changed the schema (read the table again).
    async fn evolve(
        &self,
        catalog: &dyn Catalog,
        table: &Table,
        batch: &Batch,
    ) -> std::result::Result<bool, WriteError> {
        let failed = |e: String| {
            WriteError::unavailable(format!(
                "adding columns to Iceberg table {}: {e}",
                self.table
            ))
        };
        let lines = batch.chunks.iter().flat_map(|c| c.lines());
        let inferred = schema::infer(lines).map_err(failed)?;
        let current = table.metadata().current_schema();
        let columns = schema::new_columns(current, &inferred).map_err(failed)?;
        if columns.is_empty() {
            return Ok(false);
        }
        let names: Vec<String> = inferred
            .fields()
            .iter()
            .filter(|f| current.field_by_name(f.name()).is_none())
            .map(|f| f.name().clone())
            .collect();
        let tx = Transaction::new(table);
        let update = columns
            .into_iter()
            .fold(tx.update_schema(), |update, column| {
                update.add_column(column)
            });
        let tx = update.apply(tx).map_err(|e| failed(said(&e)))?;
        match tx.commit(catalog).await {
            Ok(_) => {
                tracing::info!(table = %self.table, columns = ?names, "added columns for new fields")
            }
            // Another pod added them first: the next read has them.
            Err(e) => tracing::info!(table = %self.table, error = %said(&e), "adding columns"),
        }
        Ok(true)
    }

    /// Per chunk, where its records start; `None` while a chunk waits for an
    /// earlier one.
    fn plan(&self, batch: &Batch, table: &Table) -> std::result::Result<Option<Plan>, WriteError> {
        let current = table_offsets(table.metadata(), &batch.topic)
            .map_err(|e| WriteError::unavailable(format!("table {}: {e}", self.table)))?;
        let vouched = self.vouched.lock().unwrap_or_else(|e| e.into_inner());
        let mut plan = Plan {
            admitted: Vec::new(),
            offsets: Offsets::new(),
        };
        for chunk in &batch.chunks {
            let span = Span {
                first: chunk.first_offset,
                last: chunk.last_offset,
                follows: chunk.follows,
            };
            let ranges = vouched.get(&chunk.partition).map_or(&[][..], Vec::as_slice);
            let admitted = admit(span, current.get(&chunk.partition).copied(), ranges);
            match admitted {
                Admit::Wait => return Ok(None),
                Admit::From(_) => {
                    plan.offsets.insert(chunk.partition, chunk.last_offset + 1);
                }
                Admit::Held => {}
            }
            plan.admitted.push((chunk.partition, admitted));
        }
        Ok(Some(plan))
    }

    /// Uploads the admitted records as data files (one per table partition).
    async fn write_files(
        &self,
        table: &Table,
        batch: &Batch,
        plan: &Plan,
    ) -> std::result::Result<Vec<iceberg::spec::DataFile>, WriteError> {
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let arrow_schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema).map_err(|e| {
                WriteError::unavailable(format!("table {}: {}", self.table, said(&e)))
            })?,
        );
        let lines = batch
            .chunks
            .iter()
            .zip(&plan.admitted)
            .flat_map(|(chunk, (_, admitted))| {
                let from = match admitted {
                    Admit::From(from) => *from,
                    _ => i64::MAX,
                };
                rows::lines_from(chunk, from)
            });
        let Some(rows) = rows::decode(arrow_schema, lines).map_err(|e| {
            WriteError::refused(
                None,
                format!("a record does not fit table {}: {e}", self.table),
            )
        })?
        else {
            return Ok(Vec::new());
        };
        if rows.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let failed = |e: iceberg::Error| {
            let said = said(&e);
            let error = format!("writing data files of table {}: {said}", self.table);
            let denied = said.contains("403 Forbidden") || said.contains("AccessDenied");
            WriteError::unavailable(if denied {
                trouble::tag(trouble::STORAGE_ACCESS_DENIED, &error)
            } else {
                error
            })
        };
        let location = DefaultLocationGenerator::new(metadata).map_err(failed)?;
        let names = DefaultFileNameGenerator::new(
            format!("{}-{}", self.writer_id, batch.id),
            None,
            DataFileFormat::Parquet,
        );
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(WriterProperties::builder().build(), schema.clone()),
            TARGET_FILE_BYTES,
            table.file_io().clone(),
            location,
            names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = metadata.default_partition_spec();
        if spec.is_unpartitioned() {
            let mut writer = builder.build(None).await.map_err(failed)?;
            writer.write(rows).await.map_err(failed)?;
            return writer.close().await.map_err(failed);
        }
        let splitter = iceberg::arrow::RecordBatchPartitionSplitter::try_new_with_computed_values(
            schema,
            spec.clone(),
        )
        .map_err(failed)?;
        let mut writer = FanoutWriter::new(builder);
        for (key, part) in splitter.split(&rows).map_err(failed)? {
            writer.write(key, part).await.map_err(failed)?;
        }
        writer.close().await.map_err(failed)
    }

    /// Appends `files` with the plan's offsets on the snapshot the plan
    /// still fits; `false` when it no longer fits (the files must go).
    async fn append(
        &self,
        catalog: Arc<dyn Catalog>,
        batch: &Batch,
        plan: &Plan,
        files: Vec<iceberg::spec::DataFile>,
    ) -> std::result::Result<bool, WriteError> {
        let _one_at_a_time = self.committing.lock().await;
        let mut conflicts = 0;
        loop {
            let table = self.load(catalog.as_ref()).await?;
            if self.plan(batch, &table)?.as_ref() != Some(plan) {
                return Ok(false);
            }
            let mut merged = table_offsets(table.metadata(), &batch.topic)
                .map_err(|e| WriteError::unavailable(format!("table {}: {e}", self.table)))?;
            merged.extend(plan.offsets.iter().map(|(p, o)| (*p, *o)));
            let properties = HashMap::from([(summary_key(&batch.topic), render(&merged))]);
            let tx = Transaction::new(&table);
            let tx = tx
                .fast_append()
                .add_data_files(files.clone())
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
                    self.committed(&files, &merged);
                    return Ok(true);
                }
                // Another writer appended first: check the plan on its
                // snapshot, after a pause that spreads the writers out.
                Err(e) if pinned::is_conflict(&e) => {
                    conflicts += 1;
                    tokio::time::sleep(conflict_pause(conflicts)).await;
                    continue;
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

    fn committed(&self, files: &[iceberg::spec::DataFile], offsets: &Offsets) {
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
    async fn delete(&self, table: &Table, files: Vec<iceberg::spec::DataFile>) {
        for file in files {
            if let Err(e) = table.file_io().delete(file.file_path()).await {
                tracing::warn!(file = file.file_path(), error = %e, "removing an unused data file");
            }
        }
    }

    /// A batch of one record is being refused: its range goes to the
    /// dead-letter topic, and the table's offset may step over it.
    fn vouch(&self, batch: &Batch) {
        let mut vouched = self.vouched.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in &batch.chunks {
            vouched
                .entry(chunk.partition)
                .or_default()
                .push((chunk.first_offset, chunk.last_offset));
        }
    }
}

/// `iceberg://namespace/table`.
fn table_of(url: &Url) -> Result<TableIdent> {
    let bad = |why: &str| {
        Error::Config(format!(
            "SINK_URL `{url}`: {why}; an Iceberg sink names its table as iceberg://<namespace>/<table>"
        ))
    };
    let namespace = url
        .host_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("no namespace"))?;
    let name = url.path().trim_matches('/');
    if name.is_empty() || name.contains('/') {
        return Err(bad("no table name"));
    }
    let namespace =
        NamespaceIdent::from_strs(namespace.split('.')).map_err(|e| bad(&e.to_string()))?;
    Ok(TableIdent::new(namespace, name.to_string()))
}

/// A random pause after the `n`th conflict in a row, growing to 2 s: the
/// writers that lost a race do not all come back at once.
fn conflict_pause(n: u32) -> Duration {
    let cap = Duration::from_millis(50 << n.min(5)).min(Duration::from_secs(2));
    cap.mul_f64(rand::random::<f64>())
}

/// Whether a failed load found no table (or no namespace).
fn is_not_found(e: &WriteError) -> bool {
    trouble::of(&e.to_string()) == Some(trouble::TABLE_NOT_FOUND)
}

/// Whether the catalog could not be reached at all (refused connection,
/// unknown host, timeout), rather than answering.
fn unreachable(e: &iceberg::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<reqwest::Error>() {
            return http.is_connect() || http.is_timeout();
        }
        source = cause.source();
    }
    false
}

/// An Iceberg error in one line: its message and its causes.
fn said(e: &iceberg::Error) -> String {
    let mut text = e.message().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
