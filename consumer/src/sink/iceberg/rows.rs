//! Records (JSON objects) to Arrow rows of the table's schema: columns by
//! name, a missing optional column is null, other fields are ignored. What
//! the Arrow JSON reader cannot convert (a missing required column, a value
//! of the wrong type) refuses the rows with its words.

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
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

/// Decodes NDJSON lines into one batch of `schema`; the top-level columns
/// named in `uuids` (Iceberg `uuid`, 16 bytes in Arrow) take UUID strings.
pub fn decode<'a>(
    schema: Arc<Schema>,
    uuids: &[String],
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<RecordBatch>, String> {
    if uuids.is_empty() {
        return decode_as(schema, lines);
    }
    // The JSON reader has no 16-byte binary: read those columns as
    // strings, then parse them.
    let as_text: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match uuids.contains(f.name()) {
            true => f.as_ref().clone().with_data_type(DataType::Utf8),
            false => f.as_ref().clone(),
        })
        .collect();
    let Some(read) = decode_as(Arc::new(Schema::new(as_text)), lines)? else {
        return Ok(None);
    };
    let columns = read
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| match uuids.contains(field.name()) {
            true => uuid_column(field.name(), column),
            false => Ok(column.clone()),
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema, columns)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// UUID strings (`0190e0b2-...`) as 16-byte values; nulls stay null.
fn uuid_column(name: &str, column: &ArrayRef) -> Result<ArrayRef, String> {
    let text = column
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("read as strings");
    let values = text
        .iter()
        .map(|v| {
            v.map(|v| {
                uuid::Uuid::parse_str(v)
                    .map(|u| u.into_bytes())
                    .map_err(|e| format!("column {name}: `{v}` is not a UUID: {e}"))
            })
            .transpose()
        })
        .collect::<Result<Vec<_>, String>>()?;
    let array = FixedSizeBinaryArray::try_from_sparse_iter_with_size(values.into_iter(), 16)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(array))
}

fn decode_as<'a>(
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
    use arrow::array::{Array, Int64Array};

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
        let batch = decode(schema(), &[], lines.into_iter()).unwrap().unwrap();
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
        let error = decode(schema(), &[], missing.into_iter()).unwrap_err();
        assert!(error.contains("id"), "{error}");
        let wrong: [&[u8]; 1] = [br#"{"id":"seven"}"#];
        let error = decode(schema(), &[], wrong.into_iter()).unwrap_err();
        assert!(error.contains("seven"), "{error}");
    }

    #[test]
    fn uuid_columns_take_uuid_strings_and_refuse_anything_else() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("key", DataType::FixedSizeBinary(16), true),
        ]));
        let uuids = ["key".to_string()];
        let lines: [&[u8]; 2] = [
            br#"{"id":1,"key":"0190e0b2-7c1a-7000-8000-00000000002a"}"#,
            br#"{"id":2}"#,
        ];
        let batch = decode(schema.clone(), &uuids, lines.into_iter())
            .unwrap()
            .unwrap();
        let keys = batch
            .column(1)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        assert_eq!(keys.value(0)[15], 0x2a);
        assert_eq!(keys.value(0)[0], 0x01);
        assert!(keys.is_null(1));
        let bad: [&[u8]; 1] = [br#"{"id":3,"key":"not-a-uuid"}"#];
        let error = decode(schema, &uuids, bad.into_iter()).unwrap_err();
        assert!(error.contains("`not-a-uuid` is not a UUID"), "{error}");
    }
}
