//! The file sink: one file per partition per batch, NDJSON or Parquet.
//!
//! Files are written under a temporary name, fsynced, then renamed to
//! `<topic>-<partition>-<first offset>-<last offset>.<ext>`, so a reader never
//! sees a partial file and a batch delivered twice replaces its own file.
//!
//! # Parquet column types
//!
//! Each Parquet file's schema is inferred from the records it holds, and no
//! record's field type can fail the file as a whole:
//!
//! - a field whose values all agree keeps its type: integers are `Int64`,
//!   integers mixed with floats are `Float64`, booleans `Boolean`, strings
//!   `Utf8`, objects a struct of their fields (merged across records by name)
//!   and arrays a list of their elements' type;
//! - a field whose values disagree in type within the file (a number and a
//!   string, a boolean and a number, a scalar and an object or array, an
//!   object and an array) is a string (`Utf8`) column: values that are strings
//!   are kept as they are, any other value is written as its JSON text, as it
//!   stands in the record (`1` as `"1"`, `{"b":2}` as `"{\"b\":2}"`);
//! - nulls and absent fields never conflict; a field that is only ever null
//!   is a column of nulls;
//! - an object that never holds a field (only ever `{}`) is a string column
//!   too, since Parquet has no empty groups.
//!
//! The rule applies at every depth: a conflict inside an object only turns
//! that inner field into a string, a conflict between the elements of arrays
//! turns the element type into a string.
//!
//! A failure to write the file (a full or read-only volume) leaves the sink
//! unavailable until it passes; only a batch that cannot be encoded (a
//! record that is not a JSON object) is refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::json::reader::Decoder;
use arrow::json::ReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::WriteError;
use crate::buffer::{Batch, PartitionChunk};
use crate::{Error, Result};
pub use millpond_core::sink::FileFormat;

/// Writes batches as files into one directory.
pub struct FileSink {
    dir: PathBuf,
    format: FileFormat,
}

impl FileSink {
    pub fn from_url(url: &Url) -> Result<Self> {
        let dir = url.to_file_path().map_err(|_| {
            Error::Config(format!(
                "SINK_URL `{url}`: a file sink needs an absolute path, e.g. file:///data/out"
            ))
        })?;
        let format = super::object::format_of(url)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating sink directory {}", dir.display()), e))?;
        Ok(FileSink { dir, format })
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    pub fn describe(&self) -> String {
        format!("file {} ({})", self.dir.display(), self.format.extension())
    }

    /// Writes every chunk of the batch as its own file. I/O errors (a full
    /// or read-only volume, a missing directory) leave the sink unavailable
    /// until they pass; a Parquet batch that cannot be encoded is refused.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
        let dir = self.dir.clone();
        let format = self.format;
        tokio::task::spawn_blocking(move || {
            for chunk in batch.chunks.iter().filter(|c| c.records > 0) {
                write_chunk(&dir, &batch.topic, format, chunk)?;
            }
            sync_dir(&dir).map_err(|e| WriteError::unavailable(e.to_string()))
        })
        .await
        .map_err(|e| WriteError::unavailable(format!("file writer task failed: {e}")))?
    }
}

/// The name of a chunk's file (or object):
/// `<topic>-<partition>-<first offset>-<last offset>.<ext>`.
pub(super) fn chunk_name(topic: &str, format: FileFormat, chunk: &PartitionChunk) -> String {
    format!(
        "{topic}-{}-{}-{}.{}",
        chunk.partition,
        chunk.first_offset,
        chunk.last_offset,
        format.extension()
    )
}

/// A chunk encoded in memory, for sinks that upload whole objects; a
/// Parquet chunk that cannot be encoded is refused.
pub(super) fn encode(
    format: FileFormat,
    name: &str,
    chunk: &PartitionChunk,
) -> std::result::Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(chunk.bytes() as usize);
    let written = match format {
        FileFormat::Ndjson => write_ndjson(&mut out, chunk).map_err(ParquetFailure::Io),
        FileFormat::Parquet => write_parquet(&mut out, chunk),
    };
    match written {
        Ok(()) => Ok(out),
        Err(ParquetFailure::Encoding(message)) => Err(WriteError::refused(
            None,
            format!("encoding {name} as Parquet: {message}"),
        )),
        // Writing into memory does not fail.
        Err(ParquetFailure::Io(e)) => Err(WriteError::unavailable(format!("encoding {name}: {e}"))),
    }
}

fn write_chunk(
    dir: &Path,
    topic: &str,
    format: FileFormat,
    chunk: &PartitionChunk,
) -> std::result::Result<(), WriteError> {
    let name = chunk_name(topic, format, chunk);
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(&name);
    let io = |what: &str, e: io::Error| {
        WriteError::unavailable(Error::io(format!("{what} {}", tmp.display()), e).to_string())
    };
    let file = File::create(&tmp).map_err(|e| io("creating", e))?;
    let written = match format {
        FileFormat::Ndjson => write_ndjson(&file, chunk).map_err(|e| io("writing", e)),
        FileFormat::Parquet => write_parquet(&file, chunk).map_err(|e| match e {
            ParquetFailure::Io(e) => io("writing", e),
            ParquetFailure::Encoding(message) => {
                WriteError::refused(None, format!("encoding {name} as Parquet: {message}"))
            }
        }),
    };
    let result = written
        .and_then(|()| file.sync_all().map_err(|e| io("syncing", e)))
        .and_then(|()| std::fs::rename(&tmp, &target).map_err(|e| io("renaming", e)));
    if result.is_err() {
        // Nothing is left of a file that was not written whole.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_ndjson<W: Write>(out: W, chunk: &PartitionChunk) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, out);
    for segment in &chunk.segments {
        w.write_all(segment)?;
    }
    w.flush()
}

/// Rows decoded into one Arrow batch before it goes to the Parquet writer.
const DECODE_ROWS: usize = 8192;

/// Why a chunk could not be written as Parquet.
#[derive(Debug)]
enum ParquetFailure {
    /// Writing to the file failed: the sink is unavailable until it passes.
    Io(io::Error),
    /// The records cannot be encoded: the same records would fail again.
    Encoding(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Writes the chunk's NDJSON lines as one Parquet file, with the column
/// types the module documentation describes.
///
/// Two passes over the lines, which stay where they are: the first infers
/// the shape of the records, the second decodes them into Arrow batches of
/// [`DECODE_ROWS`] rows and encodes those. A record is copied (one at a
/// time, to be rewritten) only when the file has a string column that holds
/// objects or arrays.
fn write_parquet<W: Write + Send>(
    out: W,
    chunk: &PartitionChunk,
) -> std::result::Result<(), ParquetFailure> {
    let mut io_error = None;
    let encoded = encode_parquet(
        chunk,
        Watched {
            out,
            error: &mut io_error,
        },
    );
    match (encoded, io_error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(ParquetFailure::Io(e)),
        (Err(e), None) => Err(ParquetFailure::Encoding(e.to_string())),
    }
}

fn encode_parquet<W: Write + Send>(
    chunk: &PartitionChunk,
    out: Watched<'_, W>,
) -> std::result::Result<(), BoxError> {
    let mut root = Object::default();
    for (i, line) in chunk.lines().enumerate() {
        let mut de = serde_json::Deserializer::from_slice(line);
        de.deserialize_map(InferObject(&mut root))
            .and_then(|()| de.end())
            .map_err(|e| format!("record {} of the chunk: {e}", i + 1))?;
    }
    let rewrite = root.settle();
    let schema = Arc::new(Schema::new(root.arrow_fields()));
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(DECODE_ROWS)
        // Numbers and booleans in a string column are taken as their text.
        .with_coerce_primitive(true)
        .build_decoder()?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(out, schema, Some(props))?;
    let mut rewritten = Vec::new();
    for line in chunk.lines() {
        let mut rest = if rewrite {
            rewritten.clear();
            let record: &RawValue = serde_json::from_slice(line)?;
            root.rewrite(record.get(), &mut rewritten)?;
            &rewritten[..]
        } else {
            line
        };
        while !rest.is_empty() {
            let decoded = decoder.decode(rest)?;
            rest = &rest[decoded..];
            if !rest.is_empty() {
                // The decoder holds a full batch.
                write_decoded(&mut decoder, &mut writer)?;
            }
        }
    }
    write_decoded(&mut decoder, &mut writer)?;
    writer.close()?;
    Ok(())
}

fn write_decoded<W: Write + Send>(
    decoder: &mut Decoder,
    writer: &mut ArrowWriter<Watched<'_, W>>,
) -> std::result::Result<(), BoxError> {
    if let Some(batch) = decoder.flush()? {
        writer.write(&batch)?;
    }
    Ok(())
}

/// The file (or buffer) under the Parquet writer. It keeps the first error
/// writing to it, which tells a failed write apart from records that cannot
/// be encoded (the Parquet writer reports both as its own errors).
struct Watched<'a, W> {
    out: W,
    error: &'a mut Option<io::Error>,
}

impl<W> Watched<'_, W> {
    fn watch<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        result.map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted || self.error.is_some() {
                return e;
            }
            let copy = io::Error::new(e.kind(), e.to_string());
            *self.error = Some(e);
            copy
        })
    }
}

impl<W: Write> Write for Watched<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = match self.out.write(buf) {
            Ok(0) if !buf.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            result => result,
        };
        self.watch(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.out.flush();
        self.watch(result)
    }
}

/// What the values of one field agree on within a file, built up record by
/// record.
#[derive(Debug, Default)]
enum Shape {
    /// Only nulls so far.
    #[default]
    Null,
    Bool,
    Int,
    Float,
    Str,
    /// Arrays, with the shape of all their elements; the flag (set by
    /// [`Shape::settle`]) tells that the elements need rewriting.
    List(Box<Shape>, bool),
    Struct(Object),
    /// Values that disagree in type: a string column. `nested` tells that
    /// some values are objects or arrays, which the records must be
    /// rewritten to carry as strings.
    Text {
        nested: bool,
    },
}

impl Shape {
    /// Takes in a scalar value (`Bool`, `Int`, `Float` or `Str`).
    fn scalar(&mut self, value: Shape) {
        *self = match (std::mem::take(self), value) {
            (Shape::Null, value) => value,
            (old, value) if std::mem::discriminant(&old) == std::mem::discriminant(&value) => old,
            (Shape::Int | Shape::Float, Shape::Int | Shape::Float) => Shape::Float,
            (old, _) => Shape::Text {
                nested: old.is_nested(),
            },
        };
    }

    /// Takes in an object: its fields' shapes, unless the field now
    /// disagrees in type.
    fn object(&mut self) -> Option<&mut Object> {
        match self {
            Shape::Null => *self = Shape::Struct(Object::default()),
            Shape::Struct(_) => {}
            _ => *self = Shape::Text { nested: true },
        }
        match self {
            Shape::Struct(object) => Some(object),
            _ => None,
        }
    }

    /// Takes in an array: its elements' shape, unless the field now
    /// disagrees in type.
    fn list(&mut self) -> Option<&mut Shape> {
        match self {
            Shape::Null => *self = Shape::List(Box::default(), false),
            Shape::List(..) => {}
            _ => *self = Shape::Text { nested: true },
        }
        match self {
            Shape::List(item, _) => Some(item),
            _ => None,
        }
    }

    fn is_nested(&self) -> bool {
        matches!(
            self,
            Shape::List(..) | Shape::Struct(_) | Shape::Text { nested: true }
        )
    }

    /// Settles the shape once every record is in (objects without fields
    /// become strings); returns whether the records need rewriting for it.
    fn settle(&mut self) -> bool {
        match self {
            Shape::Struct(object) if object.fields.is_empty() => {
                *self = Shape::Text { nested: true };
                true
            }
            Shape::Struct(object) => object.settle(),
            Shape::List(item, rewrite) => {
                *rewrite = item.settle();
                *rewrite
            }
            Shape::Text { nested } => *nested,
            _ => false,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Shape::Null => DataType::Null,
            Shape::Bool => DataType::Boolean,
            Shape::Int => DataType::Int64,
            Shape::Float => DataType::Float64,
            Shape::Str | Shape::Text { .. } => DataType::Utf8,
            Shape::List(item, _) => {
                DataType::List(Arc::new(Field::new_list_field(item.data_type(), true)))
            }
            Shape::Struct(object) => DataType::Struct(object.arrow_fields()),
        }
    }

    /// Writes the JSON value `text` with the objects and arrays in string
    /// columns turned into JSON strings of their text.
    fn rewrite(&self, text: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Shape::Text { nested: true } if text.starts_with(['{', '[']) => {
                serde_json::to_writer(&mut *out, text)?;
            }
            Shape::Struct(object) if object.rewrite && text.starts_with('{') => {
                object.rewrite(text, out)?;
            }
            Shape::List(item, true) if text.starts_with('[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text)?;
                out.push(b'[');
                for (i, value) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.rewrite(value.get(), out)?;
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }
}

/// The fields of objects, in the order they were first seen.
#[derive(Debug, Default)]
struct Object {
    fields: Vec<(String, Shape)>,
    index: HashMap<String, usize>,
    /// Set by [`Object::settle`]: some field needs the records rewritten.
    rewrite: bool,
}

impl Object {
    fn field(&mut self, name: Cow<'_, str>) -> &mut Shape {
        let i = match self.index.get(name.as_ref()) {
            Some(&i) => i,
            None => {
                let name = name.into_owned();
                self.index.insert(name.clone(), self.fields.len());
                self.fields.push((name, Shape::Null));
                self.fields.len() - 1
            }
        };
        &mut self.fields[i].1
    }

    fn settle(&mut self) -> bool {
        self.rewrite = false;
        for (_, shape) in &mut self.fields {
            self.rewrite |= shape.settle();
        }
        self.rewrite
    }

    fn arrow_fields(&self) -> Fields {
        self.fields
            .iter()
            .map(|(name, shape)| Field::new(name, shape.data_type(), true))
            .collect()
    }

    fn rewrite(&self, text: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let Entries(entries) = serde_json::from_str(text)?;
        out.push(b'{');
        for (i, (Key(name), value)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name.as_ref())?;
            out.push(b':');
            match self.index.get(name.as_ref()) {
                Some(&field) => self.fields[field].1.rewrite(value.get(), out)?,
                None => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// Takes one JSON value into a field's [`Shape`].
struct Infer<'a>(&'a mut Shape);

impl<'de> DeserializeSeed<'de> for Infer<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> std::result::Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Infer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        self.0.scalar(Shape::Bool);
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        self.0.scalar(Shape::Int);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<(), E> {
        // Beyond Int64, as the JSON decoder reads it.
        let shape = if i64::try_from(v).is_ok() {
            Shape::Int
        } else {
            Shape::Float
        };
        self.0.scalar(shape);
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        self.0.scalar(Shape::Float);
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        self.0.scalar(Shape::Str);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        match self.0.object() {
            Some(object) => InferObject(object).visit_map(map),
            None => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        match self.0.list() {
            Some(item) => while seq.next_element_seed(Infer(&mut *item))?.is_some() {},
            None => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }
}

/// Takes one JSON object (a record, or an object inside one) into its
/// fields' shapes. Every field counts, duplicate names too.
struct InferObject<'a>(&'a mut Object);

impl<'de> Visitor<'de> for InferObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(Key(name)) = map.next_key()? {
            map.next_value_seed(Infer(self.0.field(name)))?;
        }
        Ok(())
    }
}

/// An object's field name, borrowed from the record unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

/// An object's fields with their values' JSON text, in order, duplicates too.
struct Entries<'de>(Vec<(Key<'de>, &'de RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        de.deserialize_map(EntriesVisitor)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::FlushTrigger;
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn batch(lines: &str) -> Batch {
        let records = lines.lines().count();
        Batch {
            id: 1,
            topic: "events".into(),
            trigger: FlushTrigger::Size,
            chunks: vec![PartitionChunk {
                partition: 2,
                first_offset: 10,
                last_offset: 10 + records as i64 - 1,
                records: records as u64,
                follows: false,
                offsets: (10..10 + records as i64).collect(),
                segments: vec![lines.as_bytes().to_vec()],
            }],
        }
    }

    fn parquet_sink() -> (tempfile::TempDir, FileSink) {
        let dir = tempfile::tempdir().unwrap();
        let mut url = Url::from_directory_path(dir.path()).unwrap();
        url.set_query(Some("format=parquet"));
        let sink = FileSink::from_url(&url).unwrap();
        (dir, sink)
    }

    /// Writes the lines as one Parquet file and reads it back whole.
    async fn round_trip(lines: &str) -> RecordBatch {
        let (dir, sink) = parquet_sink();
        let batch = batch(lines);
        let name = format!("events-2-10-{}.parquet", batch.chunks[0].last_offset);
        sink.write(Arc::new(batch)).await.unwrap();
        let file = File::open(dir.path().join(name)).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = builder.schema().clone();
        let reader = builder.build().unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        arrow::compute::concat_batches(&schema, &batches).unwrap()
    }

    fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
        let column = batch.column_by_name(column).unwrap();
        assert_eq!(column.data_type(), &DataType::Utf8, "{column:?}");
        column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn texts(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    #[tokio::test]
    async fn ndjson_files_are_named_by_topic_partition_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let sink = FileSink::from_url(&url).unwrap();
        sink.write(Arc::new(batch("{\"id\":1}\n{\"id\":2}\n")))
            .await
            .unwrap();
        let content = std::fs::read_to_string(dir.path().join("events-2-10-11.ndjson")).unwrap();
        assert_eq!(content.lines().count(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn parquet_files_hold_every_record() {
        let batch = round_trip("{\"id\":1,\"s\":\"a\"}\n{\"id\":2,\"s\":\"b\"}\n").await;
        assert_eq!(batch.num_rows(), 2);
    }

    #[tokio::test]
    async fn parquet_batches_without_conflicts_keep_their_types() {
        let batch = round_trip(concat!(
            "{\"i\":1,\"f\":1.5,\"b\":true,\"s\":\"x\",\"o\":{\"n\":1},\"l\":[1,2],\"z\":null}\n",
            "{\"i\":2,\"f\":2,\"b\":null,\"o\":{\"n\":null,\"m\":\"y\"},\"l\":[]}\n",
        ))
        .await;
        assert_eq!(batch.num_rows(), 2);
        let types: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
        let object = DataType::Struct(Fields::from(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("m", DataType::Utf8, true),
        ]));
        assert_eq!(
            types,
            vec![
                ("i".to_string(), DataType::Int64),
                ("f".to_string(), DataType::Float64),
                ("b".to_string(), DataType::Boolean),
                ("s".to_string(), DataType::Utf8),
                ("o".to_string(), object),
                ("l".to_string(), list),
                ("z".to_string(), DataType::Null),
            ]
        );
        let ints = batch
            .column_by_name("i")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(ints.values(), &[1, 2]);
        let floats = batch
            .column_by_name("f")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(floats.values(), &[1.5, 2.0]);
    }

    #[tokio::test]
    async fn a_number_and_a_string_make_a_string_column() {
        let batch = round_trip("{\"a\":1}\n{\"a\":\"x\"}\n").await;
        assert_eq!(strings(&batch, "a"), texts(&["1", "x"]));
    }

    #[tokio::test]
    async fn conflicting_scalars_keep_their_json_text() {
        let batch = round_trip(concat!(
            "{\"a\":0.1,\"b\":true}\n",
            "{\"a\":1e5,\"b\":7}\n",
            "{\"a\":\"x\",\"b\":null}\n",
            "{\"a\":18446744073709551616}\n",
        ))
        .await;
        assert_eq!(
            strings(&batch, "a"),
            texts(&["0.1", "1e5", "x", "18446744073709551616"])
        );
        assert_eq!(
            strings(&batch, "b"),
            vec![Some("true".into()), Some("7".into()), None, None]
        );
    }

    #[tokio::test]
    async fn a_number_and_an_object_make_a_string_column_of_json_text() {
        let batch = round_trip(concat!(
            "{\"id\":1,\"a\":1}\n",
            "{\"id\":2,\"a\":{\"b\": [1, \"é\\\"\"]}}\n",
            "{\"id\":3,\"a\":[{\"c\":null}]}\n",
            "{\"id\":4,\"a\":\"s\"}\n",
            "{\"id\":5}\n",
        ))
        .await;
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(
            strings(&batch, "a"),
            vec![
                Some("1".into()),
                Some("{\"b\": [1, \"é\\\"\"]}".into()),
                Some("[{\"c\":null}]".into()),
                Some("s".into()),
                None,
            ]
        );
        let ids = batch
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn conflicts_inside_objects_and_arrays_only_touch_their_own_field() {
        let batch = round_trip(concat!(
            "{\"o\":{\"x\":1,\"y\":2},\"l\":[1,\"a\"],\"e\":{}}\n",
            "{\"o\":{\"x\":[true],\"y\":3},\"l\":[{\"k\":1}],\"e\":{}}\n",
        ))
        .await;
        let o = batch.column_by_name("o").unwrap().as_struct();
        assert_eq!(o.column_by_name("y").unwrap().data_type(), &DataType::Int64);
        let x: Vec<_> = o
            .column_by_name("x")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .collect();
        assert_eq!(x, vec![Some("1"), Some("[true]")]);
        let l = batch.column_by_name("l").unwrap().as_list::<i32>();
        let items: Vec<_> = l.values().as_string::<i32>().iter().collect();
        assert_eq!(items, vec![Some("1"), Some("a"), Some("{\"k\":1}")]);
        // Parquet has no empty groups: an object that never has a field is text.
        assert_eq!(strings(&batch, "e"), texts(&["{}", "{}"]));
    }

    #[tokio::test]
    async fn an_object_and_an_array_make_a_string_column() {
        let batch = round_trip("{\"a\":{\"b\":1}}\n{\"a\":[1]}\n{\"a\":null}\n").await;
        assert_eq!(
            strings(&batch, "a"),
            vec![Some("{\"b\":1}".into()), Some("[1]".into()), None]
        );
    }

    #[tokio::test]
    async fn every_record_of_a_large_mixed_batch_is_written() {
        let records = 3 * DECODE_ROWS + 5;
        let mut lines = String::new();
        for i in 0..records {
            match i % 3 {
                0 => lines.push_str(&format!("{{\"i\":{i},\"a\":{i}}}\n")),
                1 => lines.push_str(&format!("{{\"i\":{i},\"a\":\"s{i}\"}}\n")),
                _ => lines.push_str(&format!("{{\"i\":{i},\"a\":{{\"n\":{i}}}}}\n")),
            }
        }
        let batch = round_trip(&lines).await;
        assert_eq!(batch.num_rows(), records);
        let ids = batch
            .column_by_name("i")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(ids.values().iter().copied().eq(0..records as i64));
        let a = strings(&batch, "a");
        assert_eq!(a[3 * DECODE_ROWS].as_deref(), Some("24576"));
        assert_eq!(a[3 * DECODE_ROWS + 1].as_deref(), Some("s24577"));
        assert_eq!(a[3 * DECODE_ROWS + 2].as_deref(), Some("{\"n\":24578}"));
    }

    #[tokio::test]
    async fn a_record_that_is_not_an_object_is_refused() {
        let (dir, sink) = parquet_sink();
        let err = sink
            .write(Arc::new(batch("{\"a\":1}\n[1]\n")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WriteError::Refused { message, .. } if message.contains("record 2")),
            "{err:?}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "no temporary file left behind");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_parquet_write_is_an_io_error_not_a_refusal() {
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            return;
        };
        let lines = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1 << 16)).repeat(64);
        let chunk = &batch(&lines).chunks[0];
        match write_parquet(&full, chunk) {
            Err(ParquetFailure::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
            other => panic!("expected an I/O failure, got {other:?}"),
        }
    }

    #[test]
    fn unknown_formats_are_refused() {
        let url = Url::parse("file:///tmp/x?format=csv").unwrap();
        let err = FileSink::from_url(&url).err().unwrap().to_string();
        assert!(err.contains("unknown file format `csv`"), "{err}");
    }
}
