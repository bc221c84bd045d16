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

/// Memory a sink holds beside a batch while writing it, per batch byte:
/// NDJSON files stream the lines out (1.0), HTTP builds one body (2.0),
/// Parquet decodes into Arrow columns and encodes pages (3.0).
pub fn memory_factor(http: bool, format: FileFormat) -> f64 {
    match (http, format) {
        (true, _) => 2.0,
        (false, FileFormat::Parquet) => 3.0,
        (false, FileFormat::Ndjson) => 1.0,
    }
}

/// What an object storage sink holds beside a batch, per batch byte: the
/// file sink's encoding plus the whole encoded object, kept in memory while
/// it uploads.
pub fn object_memory_factor(format: FileFormat) -> f64 {
    memory_factor(false, format) + 1.0
}
