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

#[cfg(test)]
mod tests {
    use super::*;

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
