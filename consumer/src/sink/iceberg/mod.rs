//! The Iceberg table sink: batches become Parquet data files of the table,
//! appended in one snapshot together with the topic's offsets, so a record
//! is in the table exactly once across crashes, rebalances and writers that
//! lost their partitions ([`offsets`] has the rule, [`pinned`] the fencing).
//!
//! `iceberg://<namespace>/<table>` (a nested namespace as `a.b`). The
//! catalog ([`CatalogSettings`]: `ICEBERG_CATALOG_URI`, optional
//! `ICEBERG_WAREHOUSE`) is a REST catalog, with a bearer token or OAuth2
//! client credentials, or a SQL catalog in PostgreSQL. Object storage is
//! reached as by the `s3://` sink (`AWS_*`), or with what the catalog hands
//! out.
//!
//! One write: read the table's offsets, keep the records the table does not
//! hold, write them into the open data files ([`files`]) and wait for the
//! commit ([`commit`]), which appends the files with the new offsets of
//! every write it holds on exactly the snapshot whose offsets it checked.
//! If another writer committed in between, the catalog refuses; the commit
//! checks the offsets again and appends the same files if every write still
//! fits, else deletes them and the writes start over. After the append the
//! writes are acknowledged and the Kafka commit follows.

mod commit;
mod files;
mod offsets;
mod pinned;
mod rows;
mod schema;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use iceberg::spec::{PrimitiveType, Type};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;
use millpond_core::sink::trouble;
use tokio::sync::{Notify, OnceCell};
use url::Url;

use super::WriteError;
use crate::buffer::Batch;
use crate::metrics::TableMetrics;
use crate::{Error, Result};
use commit::Pending;
use offsets::{admit, table_offsets, Admit, Offsets, Span};

/// The catalog's name: a SQL catalog keeps it in every row (`catalog_name`),
/// so every reader of the same tables names it the same.
pub const CATALOG_NAME: &str = "millpond";

/// How long a write waits for an earlier batch of its partitions to be
/// staged before it reports the sink unavailable (and is tried again).
const WAIT_FOR_EARLIER: Duration = Duration::from_secs(30);

/// How to reach the catalog: the catalog client's properties (`uri`,
/// `warehouse`; a REST catalog's `token`, `credential`, `scope`,
/// `oauth2-server-uri`). A `postgresql://` URI is a SQL catalog, an
/// `http(s)://` one a REST catalog.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// The catalog's URI as logs and errors show it (no password).
    pub uri: String,
    pub props: HashMap<String, String>,
    /// Create a missing table (and namespace) from the first batch.
    pub auto_create: bool,
    /// Add optional columns for fields the table does not have.
    pub evolve_schema: bool,
    /// How long written files wait for more before they are committed
    /// (zero: every flush is a commit).
    pub commit_interval: Duration,
}

impl CatalogSettings {
    /// Settings for the catalog at `uri`, with the other properties.
    pub fn new(uri: &str, mut props: HashMap<String, String>) -> Self {
        props.insert("uri".into(), uri.into());
        let shown = match Url::parse(uri) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => uri.to_string(),
        };
        let mut settings = CatalogSettings {
            uri: shown,
            props,
            auto_create: false,
            evolve_schema: false,
            commit_interval: Duration::ZERO,
        };
        if settings.is_sql() {
            // A pod commits one group at a time: two connections are plenty.
            let pool = ("pool.max-connections".to_string(), "2".to_string());
            settings.props.extend([pool]);
        }
        settings
    }

    /// Whether the catalog is a SQL catalog (else REST).
    pub fn is_sql(&self) -> bool {
        self.uri.starts_with("postgres://") || self.uri.starts_with("postgresql://")
    }
}

/// Appends batches to one Iceberg table.
pub struct IcebergSink {
    table: TableIdent,
    settings: CatalogSettings,
    catalog: OnceCell<Arc<dyn Catalog>>,
    /// Names this process's data files apart from every other writer's.
    writer_id: String,
    /// The writes staged for the next commit (one commit at a time).
    pending: tokio::sync::Mutex<Pending>,
    /// The writes the pod may run at once (its in-flight permits): once
    /// that many are staged, nothing more comes until a commit.
    permits: AtomicUsize,
    /// The pod hands partitions off: commit what is staged at once.
    hurry: AtomicBool,
    /// Woken when `permits` or `hurry` change.
    changed: Notify,
    /// Woken after each stage and each append.
    appended: Notify,
    /// Ranges of single records this sink refused that went to the
    /// dead-letter topic: the table's offset may step over them.
    vouched: Mutex<BTreeMap<i32, Vec<(i64, i64)>>>,
    metrics: OnceLock<TableMetrics>,
}

/// What one write appends: per chunk, where its records start.
#[derive(Debug, Default, PartialEq)]
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
            pending: tokio::sync::Mutex::default(),
            permits: AtomicUsize::new(1),
            hurry: AtomicBool::new(false),
            changed: Notify::new(),
            appended: Notify::new(),
            vouched: Mutex::default(),
            metrics: OnceLock::new(),
        })
    }

    /// The pod's in-flight permits (see [`IcebergSink::permits`]).
    pub fn set_max_in_flight(&self, permits: u32) {
        self.permits
            .store(permits.max(1) as usize, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// While the pod hands partitions off, staged writes are committed at
    /// once instead of after the commit interval.
    pub fn hurry(&self, on: bool) {
        self.hurry.store(on, Ordering::SeqCst);
        self.changed.notify_waiters();
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
                let storage = Arc::new(storage::ObjectStorageFactory);
                let props = self.settings.props.clone();
                let catalog: iceberg::Result<Arc<dyn Catalog>> = if self.settings.is_sql() {
                    SqlCatalogBuilder::default()
                        .with_storage_factory(storage)
                        .load(CATALOG_NAME, props)
                        .await
                        .map(|c| Arc::new(c) as Arc<dyn Catalog>)
                } else {
                    RestCatalogBuilder::default()
                        .with_storage_factory(storage)
                        .load(CATALOG_NAME, props)
                        .await
                        .map(|c| Arc::new(c) as Arc<dyn Catalog>)
                };
                catalog.map_err(|e| {
                    let error = format!(
                        "Iceberg catalog {} unreachable: {}",
                        self.settings.uri,
                        said(&e)
                    );
                    WriteError::unavailable(trouble::tag(trouble::CATALOG_UNREACHABLE, &error))
                })
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

    /// One attempt; waits for earlier batches of the same partitions, then
    /// for the commit that appends it.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
        let catalog = self.catalog().await?;
        let started = Instant::now();
        loop {
            let table = self.table_for(catalog.as_ref(), &batch).await?;
            let current = table_offsets(table.metadata(), &batch.topic)
                .map_err(|e| WriteError::unavailable(format!("table {}: {e}", self.table)))?;
            let planned = {
                let pending = self.pending.lock().await;
                self.plan(&batch, &pending.offsets_over(current.clone()))
            };
            let Some(plan) = planned else {
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
            let rows = self.rows(&table, &batch, &plan)?;
            let outcome = {
                let mut pending = self.pending.lock().await;
                if self.plan(&batch, &pending.offsets_over(current)).as_ref() != Some(&plan) {
                    continue; // a write staged meanwhile changed what fits
                }
                self.stage(&mut pending, &catalog, &table, rows, batch.clone(), plan)
                    .await?
            };
            if self.settle(&catalog, outcome).await? {
                return Ok(());
            }
        }
    }

    /// The table as it is now, created (`autoCreate`) or given columns for
    /// new fields (`evolveSchema`) first.
    async fn table_for(
        &self,
        catalog: &dyn Catalog,
        batch: &Batch,
    ) -> std::result::Result<Table, WriteError> {
        loop {
            let table = match self.load(catalog).await {
                Ok(table) => table,
                Err(e) if self.settings.auto_create && is_not_found(&e) => {
                    self.create(catalog, batch).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.settings.evolve_schema && self.evolve(catalog, &table, batch).await? {
                continue;
            }
            return Ok(table);
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

    /// Per chunk, where its records start on a table at `current`; `None`
    /// while a chunk waits for an earlier one.
    fn plan(&self, batch: &Batch, current: &Offsets) -> Option<Plan> {
        let vouched = self.vouched.lock().unwrap_or_else(|e| e.into_inner());
        let mut plan = Plan::default();
        for chunk in &batch.chunks {
            let span = Span {
                first: chunk.first_offset,
                last: chunk.last_offset,
                follows: chunk.follows,
            };
            let ranges = vouched.get(&chunk.partition).map_or(&[][..], Vec::as_slice);
            let admitted = admit(span, current.get(&chunk.partition).copied(), ranges);
            match admitted {
                Admit::Wait => return None,
                Admit::From(_) => {
                    plan.offsets.insert(chunk.partition, chunk.last_offset + 1);
                }
                Admit::Held => {}
            }
            plan.admitted.push((chunk.partition, admitted));
        }
        Some(plan)
    }

    /// The admitted records as rows of the table's schema; refused when one
    /// does not fit.
    fn rows(
        &self,
        table: &Table,
        batch: &Batch,
        plan: &Plan,
    ) -> std::result::Result<Option<RecordBatch>, WriteError> {
        let schema = table.metadata().current_schema();
        let arrow_schema =
            Arc::new(iceberg::arrow::schema_to_arrow_schema(schema).map_err(|e| {
                WriteError::unavailable(format!("table {}: {}", self.table, said(&e)))
            })?);
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
        let uuids: Vec<String> = schema
            .as_struct()
            .fields()
            .iter()
            .filter(|f| *f.field_type == Type::Primitive(PrimitiveType::Uuid))
            .map(|f| f.name.clone())
            .collect();
        rows::decode(arrow_schema, &uuids, lines).map_err(|e| {
            let error = format!("a record does not fit table {}: {e}", self.table);
            WriteError::refused(None, trouble::tag(trouble::SCHEMA_MISMATCH, &error))
        })
    }

    /// A failed upload of data files, tagged when the store denied access.
    fn upload_failed(&self, e: &iceberg::Error) -> WriteError {
        let said = said(e);
        let error = format!("writing data files of table {}: {said}", self.table);
        let denied = said.contains("403 Forbidden") || said.contains("AccessDenied");
        WriteError::unavailable(if denied {
            trouble::tag(trouble::STORAGE_ACCESS_DENIED, &error)
        } else {
            error
        })
    }

    /// A batch of one record this sink refused is in the dead-letter topic:
    /// the table's offset may step over it.
    pub fn dead_lettered(&self, batch: &Batch) {
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

/// Whether a failed load found no table (or no namespace).
fn is_not_found(e: &WriteError) -> bool {
    trouble::of(&e.to_string()) == Some(trouble::TABLE_NOT_FOUND)
}

/// Whether the catalog (or a SQL catalog's database) could not be reached
/// at all (refused connection, unknown host, timeout), rather than
/// answering.
fn unreachable(e: &iceberg::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<reqwest::Error>() {
            return http.is_connect() || http.is_timeout();
        }
        if let Some(sql) = cause.downcast_ref::<sqlx::Error>() {
            return matches!(
                sql,
                sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
            );
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
