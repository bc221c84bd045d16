//! The file sink: one file per partition per batch, NDJSON or Parquet.
//!
//! Files are written under a temporary name, fsynced, then renamed to
//! `<topic>-<partition>-<first offset>-<last offset>.<ext>`, so a reader never
//! sees a partial file and a batch delivered twice replaces its own file.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::json::reader::infer_json_schema_from_seekable;
use arrow::json::ReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use url::Url;

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
        let mut format = FileFormat::Ndjson;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("format", "ndjson") => format = FileFormat::Ndjson,
                ("format", "parquet") => format = FileFormat::Parquet,
                ("format", other) => {
                    return Err(Error::Config(format!(
                    "SINK_URL `{url}`: unknown file format `{other}` (supported: ndjson, parquet)"
                )))
                }
                (other, _) => {
                    return Err(Error::Config(format!(
                        "SINK_URL `{url}`: unknown option `{other}` (supported: format)"
                    )))
                }
            }
        }
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

    pub async fn write(&self, batch: Arc<Batch>) -> Result<()> {
        let dir = self.dir.clone();
        let format = self.format;
        tokio::task::spawn_blocking(move || {
            for chunk in batch.chunks.iter().filter(|c| c.records > 0) {
                write_chunk(&dir, &batch.topic, format, chunk)?;
            }
            sync_dir(&dir)
        })
        .await
        .map_err(|e| Error::Sink(format!("file writer task failed: {e}")))?
    }
}

fn write_chunk(dir: &Path, topic: &str, format: FileFormat, chunk: &PartitionChunk) -> Result<()> {
    let name = format!(
        "{topic}-{}-{}-{}.{}",
        chunk.partition,
        chunk.first_offset,
        chunk.last_offset,
        format.extension()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(&name);
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}", tmp.display()), e);
    let file = File::create(&tmp).map_err(|e| io("creating", e))?;
    let file = match format {
        FileFormat::Ndjson => {
            let mut w = BufWriter::with_capacity(1 << 20, file);
            for segment in &chunk.segments {
                w.write_all(segment).map_err(|e| io("writing", e))?;
            }
            w.into_inner().map_err(|e| io("writing", e.into_error()))?
        }
        FileFormat::Parquet => write_parquet(file, &chunk.to_vec())
            .map_err(|e| Error::Sink(format!("encoding {name} as Parquet: {e}")))?,
    };
    file.sync_all().map_err(|e| io("syncing", e))?;
    std::fs::rename(&tmp, &target).map_err(|e| io("renaming", e))?;
    Ok(())
}

/// Decodes NDJSON lines into Arrow record batches (schema inferred from the
/// lines themselves) and writes them as one Parquet file.
fn write_parquet(
    file: File,
    ndjson: &[u8],
) -> std::result::Result<File, Box<dyn std::error::Error + Send + Sync>> {
    let mut cursor = Cursor::new(ndjson);
    let (schema, _) = infer_json_schema_from_seekable(&mut cursor, None)?;
    let schema = Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(cursor)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    for batch in reader {
        writer.write(&batch?)?;
    }
    Ok(writer.into_inner()?)
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

    fn batch(lines: &str) -> Batch {
        Batch {
            id: 1,
            topic: "events".into(),
            trigger: FlushTrigger::Size,
            chunks: vec![PartitionChunk {
                partition: 2,
                first_offset: 10,
                last_offset: 11,
                records: 2,
                segments: vec![lines.as_bytes().to_vec()],
            }],
        }
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
        let dir = tempfile::tempdir().unwrap();
        let mut url = Url::from_directory_path(dir.path()).unwrap();
        url.set_query(Some("format=parquet"));
        let sink = FileSink::from_url(&url).unwrap();
        sink.write(Arc::new(batch(
            "{\"id\":1,\"s\":\"a\"}\n{\"id\":2,\"s\":\"b\"}\n",
        )))
        .await
        .unwrap();
        let file = File::open(dir.path().join("events-2-10-11.parquet")).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn unknown_formats_are_refused() {
        let url = Url::parse("file:///tmp/x?format=csv").unwrap();
        let err = FileSink::from_url(&url).err().unwrap().to_string();
        assert!(err.contains("unknown file format `csv`"), "{err}");
    }
}
