//! Data files that grow across writes until a commit closes them: the rows
//! of every write staged for one commit go into the same files (one per
//! table partition), so a commit interval makes files larger, not more
//! numerous. Row groups are written out as they fill and go up as parts of
//! a multipart upload, so memory holds at most the rows of one row group
//! per open file.

use arrow::array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::Result;
use parquet::file::properties::WriterProperties;

/// A data file rolls over at this size.
const TARGET_FILE_BYTES: usize = 128 << 20;
/// Rows per row group: a row group is written out (and uploaded) once it
/// holds this many rows, so an open file does not keep its rows in memory.
const ROW_GROUP_ROWS: usize = 64 * 1024;

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type Plain =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

enum Writer {
    Plain(Box<Plain>),
    Partitioned(Box<Partitioned>),
}

struct Partitioned {
    writer: FanoutWriter<Builder>,
    splitter: RecordBatchPartitionSplitter,
}

/// The open data files of one table's schema and partition spec.
pub struct OpenFiles {
    schema_id: i32,
    spec_id: i32,
    writer: Writer,
}

impl OpenFiles {
    /// Files named `<prefix>-...parquet` under the table's data location.
    pub async fn open(table: &Table, prefix: String) -> Result<Self> {
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(properties, schema.clone()),
            TARGET_FILE_BYTES,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            DefaultFileNameGenerator::new(prefix, None, DataFileFormat::Parquet),
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = metadata.default_partition_spec();
        let writer = if spec.is_unpartitioned() {
            Writer::Plain(Box::new(builder.build(None).await?))
        } else {
            Writer::Partitioned(Box::new(Partitioned {
                writer: FanoutWriter::new(builder),
                splitter: RecordBatchPartitionSplitter::try_new_with_computed_values(
                    schema,
                    spec.clone(),
                )?,
            }))
        };
        Ok(OpenFiles {
            schema_id: metadata.current_schema_id(),
            spec_id: metadata.default_partition_spec_id(),
            writer,
        })
    }

    /// Whether rows of `table` as it is now may go into these files.
    pub fn fit(&self, table: &Table) -> bool {
        let metadata = table.metadata();
        metadata.current_schema_id() == self.schema_id
            && metadata.default_partition_spec_id() == self.spec_id
    }

    pub async fn write(&mut self, rows: RecordBatch) -> Result<()> {
        match &mut self.writer {
            Writer::Plain(writer) => writer.write(rows).await,
            Writer::Partitioned(p) => {
                for (key, part) in p.splitter.split(&rows)? {
                    p.writer.write(key, part).await?;
                }
                Ok(())
            }
        }
    }

    /// Finishes the uploads; the files are ready to be appended.
    pub async fn close(self) -> Result<Vec<DataFile>> {
        match self.writer {
            Writer::Plain(mut writer) => writer.close().await,
            Writer::Partitioned(p) => p.writer.close().await,
        }
    }
}
