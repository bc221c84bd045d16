//! Where batches go. A sink takes a whole [`Batch`] and returns only once it is
//! durably written (file: fsynced and renamed; HTTP: a 2xx answer).
//!
//! One call is one attempt. Its error says which of two things happened
//! ([`WriteError`]): the sink cannot take writes now (retried by
//! [`retry::write`] without end, or until the configured give-up time), or it
//! refused what the batch holds (the delivery protocol splits the batch to
//! find the records it refuses).

mod file;
mod http;
mod iceberg;
mod object;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::buffer::Batch;
use crate::{Error, Result};

pub use file::{FileFormat, FileSink};
pub use http::{Backoff, HttpSink};
pub use iceberg::{CatalogSettings, IcebergSink};
pub use millpond_core::sink::SinkKind;
pub use object::ObjectSink;

/// Options that apply to the HTTP sink and to the object storage sink's
/// requests.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub timeout: Duration,
}

/// Why one attempt to write a batch failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// The sink cannot take writes now (down, overloaded, out of space): the
    /// same batch is tried again later.
    #[error("{message}")]
    Unavailable {
        message: String,
        /// How long the sink asked to wait (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The sink refused what the batch holds: the same batch would be refused
    /// again. `status` is the sink's code (HTTP status), `message` its answer.
    #[error("{message}")]
    Refused {
        status: Option<u16>,
        message: String,
    },
}

impl WriteError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        WriteError::Unavailable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn refused(status: Option<u16>, message: impl Into<String>) -> Self {
        WriteError::Refused {
            status,
            message: message.into(),
        }
    }
}

/// A configured sink.
pub enum Sink {
    File(FileSink),
    Http(HttpSink),
    Object(ObjectSink),
    Iceberg(Box<IcebergSink>),
}

impl Sink {
    /// Builds the sink a `SINK_URL` names:
    /// `file:///dir?format=ndjson|parquet`, `http://host/path`, `https://...`,
    /// `s3://bucket/prefix?format=...`, `iceberg://namespace/table`.
    pub fn from_url(
        raw: &str,
        http: &HttpOptions,
        catalog: &Option<CatalogSettings>,
    ) -> Result<Self> {
        let url = Url::parse(raw)
            .map_err(|e| Error::Config(format!("SINK_URL `{raw}` is not a URL: {e}")))?;
        match url.scheme() {
            "file" => Ok(Sink::File(FileSink::from_url(&url)?)),
            "http" | "https" => Ok(Sink::Http(HttpSink::new(url, http)?)),
            "s3" => Ok(Sink::Object(ObjectSink::from_url(&url, http)?)),
            "iceberg" => {
                let catalog = catalog.clone().ok_or_else(|| {
                    Error::Config(format!(
                        "SINK_URL `{raw}`: an Iceberg sink needs ICEBERG_CATALOG_URI (its REST catalog)"
                    ))
                })?;
                Ok(Sink::Iceberg(Box::new(IcebergSink::new(&url, catalog)?)))
            }
            other => Err(Error::Config(format!(
                "SINK_URL `{raw}`: unknown sink scheme `{other}` (supported: file, http, https, s3, iceberg)"
            ))),
        }
    }

    /// One attempt to write a batch; `Ok` once the sink acknowledged all of it.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
        match self {
            Sink::File(s) => s.write(batch).await,
            Sink::Http(s) => s.write(batch).await,
            Sink::Object(s) => s.write(batch).await,
            Sink::Iceberg(s) => s.write(batch).await,
        }
    }

    /// Memory the sink holds beside a batch while writing it, per batch byte
    /// (see [`SinkKind::memory_factor`]).
    pub fn memory_factor(&self) -> f64 {
        let kind = match self {
            Sink::File(s) => SinkKind::File(s.format()),
            Sink::Http(_) => SinkKind::Http,
            Sink::Object(s) => SinkKind::Object(s.format()),
            Sink::Iceberg(_) => SinkKind::Iceberg,
        };
        kind.memory_factor()
    }

    /// The writes the pod may run at once: a sink that holds written
    /// batches for a commit (Iceberg, with a commit interval) commits once
    /// it holds that many.
    pub fn set_max_in_flight(&self, permits: u32) {
        if let Sink::Iceberg(s) = self {
            s.set_max_in_flight(permits);
        }
    }

    /// The pod is handing partitions off (`true`) or done with it: held
    /// batches are committed at once meanwhile.
    pub fn hurry(&self, on: bool) {
        if let Sink::Iceberg(s) = self {
            s.hurry(on);
        }
    }

    /// A batch of one record this sink refused is in the dead-letter topic.
    pub fn dead_lettered(&self, batch: &Batch) {
        if let Sink::Iceberg(s) = self {
            s.dead_lettered(batch);
        }
    }

    /// Exports the sink's own metrics (the Iceberg sink's commits).
    pub fn observe(&self, metrics: &crate::metrics::Metrics) {
        if let Sink::Iceberg(s) = self {
            s.observe(metrics.table.clone());
        }
    }

    /// A description for logs that never includes credentials.
    pub fn describe(&self) -> String {
        match self {
            Sink::File(s) => s.describe(),
            Sink::Http(s) => s.describe(),
            Sink::Object(s) => s.describe(),
            Sink::Iceberg(s) => s.describe(),
        }
    }
}
