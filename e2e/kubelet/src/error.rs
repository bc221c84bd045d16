//! The crate's error type.

use std::path::PathBuf;

/// Errors of the process kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A local file or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Invalid command-line or file configuration.
    #[error("configuration: {0}")]
    Config(String),

    /// (De)serialisation of a generated file failed.
    #[error("serialisation: {0}")]
    Serde(String),
}

impl Error {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// A bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Io { .. } => "io",
            Error::Config(_) => "config",
            Error::Serde(_) => "serde",
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
