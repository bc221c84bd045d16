//! What the sinks need in memory beside a batch while writing it; the pod
//! checks its budget with it and the operator plans the pods' budgets with
//! the same numbers.

/// File formats of the file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Ndjson,
    Parquet,
}

impl FileFormat {
    /// The files' extension, also the `format=` value of the sink URL.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// Where a sink puts a batch, as far as its memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Files on a volume of the pod.
    File(FileFormat),
    /// One NDJSON POST per batch.
    Http,
    /// Objects in S3 or an S3-compatible store.
    Object(FileFormat),
    /// Parquet data files of an Iceberg table.
    Iceberg,
}

impl SinkKind {
    /// Memory the sink holds beside a batch while writing it, per batch
    /// byte: NDJSON files stream the lines out (1.0), HTTP builds one body
    /// (2.0), Parquet decodes into Arrow columns and encodes pages (3.0); an
    /// object also holds the whole encoded object while it uploads (+1.0),
    /// as does an Iceberg data file.
    pub fn memory_factor(self) -> f64 {
        match self {
            SinkKind::Http => 2.0,
            SinkKind::File(FileFormat::Parquet) => 3.0,
            SinkKind::File(FileFormat::Ndjson) => 1.0,
            SinkKind::Object(format) => SinkKind::File(format).memory_factor() + 1.0,
            SinkKind::Iceberg => SinkKind::Object(FileFormat::Parquet).memory_factor(),
        }
    }
}

/// Why a sink takes no writes, when the pod can tell more than "down": the
/// first word of the sink's last error (`TableNotFound: loading ...`), which
/// the operator reports as the `Degraded` reason.
pub mod trouble {
    /// The Iceberg catalog does not answer.
    pub const CATALOG_UNREACHABLE: &str = "CatalogUnreachable";
    /// The Iceberg table (or its namespace) does not exist.
    pub const TABLE_NOT_FOUND: &str = "TableNotFound";
    /// The object store refused the credentials (HTTP 403).
    pub const STORAGE_ACCESS_DENIED: &str = "StorageAccessDenied";
    /// A record does not fit the Iceberg table (a refusal, not an outage:
    /// the record goes to the dead-letter topic, or stops the pod).
    pub const SCHEMA_MISMATCH: &str = "SchemaMismatch";

    pub const ALL: [&str; 4] = [
        CATALOG_UNREACHABLE,
        TABLE_NOT_FOUND,
        STORAGE_ACCESS_DENIED,
        SCHEMA_MISMATCH,
    ];

    /// `trouble: error`.
    pub fn tag(trouble: &str, error: &str) -> String {
        format!("{trouble}: {error}")
    }

    /// The trouble an error starts with, if any.
    pub fn of(error: &str) -> Option<&'static str> {
        ALL.into_iter().find(|t| {
            error
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with(": "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trouble_is_read_back_from_the_start_of_an_error_only() {
        let error = trouble::tag(trouble::TABLE_NOT_FOUND, "loading table a.b");
        assert_eq!(trouble::of(&error), Some("TableNotFound"));
        assert_eq!(trouble::of("putting s3://x: TableNotFound: y"), None);
        assert_eq!(trouble::of("TableNotFoundish: y"), None);
    }

    #[test]
    fn an_object_costs_one_more_than_its_file() {
        for format in [FileFormat::Ndjson, FileFormat::Parquet] {
            assert_eq!(
                SinkKind::Object(format).memory_factor(),
                SinkKind::File(format).memory_factor() + 1.0
            );
        }
        assert!(
            SinkKind::Http.memory_factor() > SinkKind::File(FileFormat::Ndjson).memory_factor()
        );
    }
}
