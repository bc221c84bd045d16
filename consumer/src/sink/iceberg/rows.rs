//! Records (JSON objects) to Arrow rows of the table's schema: columns by
//! name, a missing optional column is null, other fields are ignored. What
//! the Arrow JSON reader cannot convert (a missing required column, a value
//! of the wrong type) refuses the rows with its words.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::json::ReaderBuilder;

use crate::buffer::PartitionChunk;

/// The lines of `chunk` whose offset is `from` or later.
pub fn lines_from(chunk: &PartitionChunk, from: i64) -> impl Iterator<Item = &[u8]> {
    chunk
        .lines()
        .zip(&chunk.offsets)
        .filter(move |(_, offset)| **offset >= from)
        .map(|(line, _)| line)
}

/// Decodes NDJSON lines into one batch of `schema`.
pub fn decode<'a>(
    schema: Arc<Schema>,
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<RecordBatch>, String> {
    let lines: Vec<&[u8]> = lines.collect();
    let mut decoder = ReaderBuilder::new(schema)
        .with_batch_size(lines.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for line in lines {
        let mut rest = line;
        while !rest.is_empty() {
            let read = decoder.decode(rest).map_err(|e| e.to_string())?;
            rest = &rest[read..];
        }
        decoder.decode(b"\n").map_err(|e| e.to_string())?;
    }
    decoder.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn columns_are_matched_by_name_and_missing_optional_ones_are_null() {
        let lines: [&[u8]; 2] = [br#"{"name":"a","id":1,"extra":true}"#, br#"{"id":2}"#];
        let batch = decode(schema(), lines.into_iter()).unwrap().unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let names = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.values(), &[1, 2]);
        assert_eq!(names.value(0), "a");
        assert!(names.is_null(1));
    }

    #[test]
    fn a_missing_required_column_or_a_wrong_type_is_refused_with_the_columns_name() {
        let missing: [&[u8]; 1] = [br#"{"name":"a"}"#];
        let error = decode(schema(), missing.into_iter()).unwrap_err();
        assert!(error.contains("id"), "{error}");
        let wrong: [&[u8]; 1] = [br#"{"id":"seven"}"#];
        let error = decode(schema(), wrong.into_iter()).unwrap_err();
        assert!(error.contains("seven"), "{error}");
    }
}
