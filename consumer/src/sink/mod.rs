//! Where batches go. A sink takes a whole [`Batch`] and returns only once it is
//! durably written (file: fsynced and renamed; HTTP: a 2xx answer). Retries live
//! inside the sink; an error returned from [`Sink::write`] is permanent.

mod file;
mod http;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::buffer::Batch;
use crate::{Error, Result};

pub use file::{FileFormat, FileSink};
pub use http::{Backoff, HttpSink};
pub use millpond_core::sink::memory_factor;

/// Options that apply to the HTTP sink.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff: Backoff,
}

/// A configured sink.
pub enum Sink {
    File(FileSink),
    Http(HttpSink),
}

impl Sink {
    /// Builds the sink a `SINK_URL` names:
    /// `file:///dir?format=ndjson|parquet`, `http://host/path`, `https://...`.
    pub fn from_url(raw: &str, http: &HttpOptions) -> Result<Self> {
        let url = Url::parse(raw)
            .map_err(|e| Error::Config(format!("SINK_URL `{raw}` is not a URL: {e}")))?;
        match url.scheme() {
            "file" => Ok(Sink::File(FileSink::from_url(&url)?)),
            "http" | "https" => Ok(Sink::Http(HttpSink::new(url, http)?)),
            other => Err(Error::Config(format!(
                "SINK_URL `{raw}`: unknown sink scheme `{other}` (supported: file, http, https)"
            ))),
        }
    }

    /// Writes a batch; returns once the sink acknowledged all of it.
    pub async fn write(&self, batch: Arc<Batch>) -> Result<()> {
        match self {
            Sink::File(s) => s.write(batch).await,
            Sink::Http(s) => s.write(batch).await,
        }
    }

    /// Memory the sink holds beside a batch while writing it, per batch byte
    /// (see [`memory_factor`]).
    pub fn memory_factor(&self) -> f64 {
        match self {
            Sink::File(s) => memory_factor(false, s.format()),
            Sink::Http(_) => memory_factor(true, FileFormat::Ndjson),
        }
    }

    /// A description for logs that never includes credentials.
    pub fn describe(&self) -> String {
        match self {
            Sink::File(s) => s.describe(),
            Sink::Http(s) => s.describe(),
        }
    }
}
