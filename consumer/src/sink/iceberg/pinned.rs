//! A catalog that commits only on the snapshot the writer checked.
//!
//! iceberg-rust's `Transaction::commit` reloads the table through
//! `Catalog::load_table` and re-applies an append on whatever snapshot is
//! newest. The sink decides what to append from the offsets of one snapshot,
//! so that must be the snapshot the append lands on: [`Pinned`] answers
//! `load_table` with the table as the sink read it. The append then asserts
//! that `main` is still that snapshot (`assert-ref-snapshot-id`), the
//! catalog refuses the commit if another writer moved it, and the refusal
//! comes back at once ([`is_conflict`]) instead of being retried on the new
//! snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};

/// Marks the catalog's refusal of a commit on a moved snapshot.
const CONFLICT: &str = "the table moved since its offsets were checked";

#[derive(Debug)]
pub struct Pinned {
    pub catalog: Arc<dyn Catalog>,
    pub table: Table,
}

/// Whether a commit failed because another writer committed first.
pub fn is_conflict(e: &Error) -> bool {
    e.kind() == ErrorKind::CatalogCommitConflicts && e.message() == CONFLICT
}

#[async_trait]
impl Catalog for Pinned {
    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        if table == self.table.identifier() {
            return Ok(self.table.clone());
        }
        self.catalog.load_table(table).await
    }

    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.catalog.update_table(commit).await.map_err(|e| {
            if e.kind() == ErrorKind::CatalogCommitConflicts {
                // Not retryable: the caller checks the new snapshot first.
                Error::new(ErrorKind::CatalogCommitConflicts, CONFLICT).with_source(e)
            } else {
                e
            }
        })
    }

    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.catalog.list_namespaces(parent).await
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.catalog.create_namespace(namespace, properties).await
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.catalog.get_namespace(namespace).await
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.catalog.namespace_exists(namespace).await
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.catalog.update_namespace(namespace, properties).await
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.catalog.drop_namespace(namespace).await
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.catalog.list_tables(namespace).await
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.catalog.create_table(namespace, creation).await
    }

    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.catalog.drop_table(table).await
    }

    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.catalog.purge_table(table).await
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.catalog.table_exists(table).await
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.catalog.rename_table(src, dest).await
    }

    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.catalog.register_table(table, metadata_location).await
    }
}
