//! Iceberg's file IO on the `object_store` crate: the table's data and
//! metadata files go through the same S3 client as the `s3://` sink, so the
//! binary carries one S3 stack.
//!
//! Settings come from the standard `AWS_*` environment (as for the `s3://`
//! sink), overridden by what the catalog hands out with a table
//! (`s3.endpoint`, `s3.region`, `s3.access-key-id`, `s3.secret-access-key`,
//! `s3.session-token`: a catalog that vends credentials). A file above
//! [`MULTIPART_THRESHOLD`] goes up as a multipart upload. The catalog
//! builds a file IO with every table it loads: clients are kept for the
//! process, one per bucket and settings, so connections are reused.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::sink::object::{store_answer, what_failed};

/// Files above this size are uploaded in parts of this size while they are
/// written.
const MULTIPART_THRESHOLD: usize = 8 << 20;
/// Parts of one file uploaded at once: with the part being filled, a file
/// holds at most three parts in memory (24 MiB) however large it grows.
const PARTS_IN_FLIGHT: usize = 2;

/// The clients of the process, by bucket and settings.
static STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(Mutex::default);

/// Builds [`ObjectStorage`] for the catalog's file IO.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory;

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage {
            props: config
                .props()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }))
    }
}

/// `s3://` and `s3a://` locations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    props: BTreeMap<String, String>,
}

impl ObjectStorage {
    /// The store holding `location` and the object's path in it.
    fn locate(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = url::Url::parse(location).map_err(|e| invalid(location, e))?;
        if !matches!(url.scheme(), "s3" | "s3a") {
            return Err(Error::new(
                ErrorKind::FeatureUnsupported,
                format!("`{location}`: only s3:// locations are supported"),
            ));
        }
        let bucket = url.host_str().unwrap_or_default().to_string();
        let path = Path::from_url_path(url.path()).map_err(|e| invalid(location, e))?;
        let key = format!("{bucket} {:?}", self.props);
        let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = stores.get(&key) {
            return Ok((store.clone(), path));
        }
        let store: Arc<dyn ObjectStore> = Arc::new(self.builder(&bucket).build().map_err(|e| {
            Error::new(ErrorKind::DataInvalid, format!("S3 client for `{bucket}`")).with_source(e)
        })?);
        stores.insert(key, store.clone());
        Ok((store, path))
    }

    /// The environment's S3 settings, overridden by the catalog's.
    fn builder(&self, bucket: &str) -> AmazonS3Builder {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in &self.props {
            let setting = match key.as_str() {
                "s3.endpoint" => AmazonS3ConfigKey::Endpoint,
                "s3.region" | "client.region" => AmazonS3ConfigKey::Region,
                "s3.access-key-id" => AmazonS3ConfigKey::AccessKeyId,
                "s3.secret-access-key" => AmazonS3ConfigKey::SecretAccessKey,
                "s3.session-token" => AmazonS3ConfigKey::Token,
                "s3.path-style-access" => {
                    let virtual_hosted = value.trim() != "true";
                    builder = builder.with_virtual_hosted_style_request(virtual_hosted);
                    continue;
                }
                _ => continue,
            };
            if setting == AmazonS3ConfigKey::Endpoint && value.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_config(setting, value);
        }
        builder
    }
}

fn invalid(location: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::DataInvalid,
        format!("`{location}` is not an object location"),
    )
    .with_source(e)
}

/// An object store error as an Iceberg error that names the file and says
/// the store's answer (without the request's signature), or what failed on
/// the way.
fn failed(what: &str, location: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let said = store_answer(&text).unwrap_or_else(|| what_failed(&text));
    Error::new(ErrorKind::Unexpected, format!("{what} {location}: {said}"))
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, at) = self.locate(path)?;
        match store.head(&at).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed("checking", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, at) = self.locate(path)?;
        let meta = store
            .head(&at)
            .await
            .map_err(|e| failed("reading", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, at) = self.locate(path)?;
        let got = store
            .get(&at)
            .await
            .map_err(|e| failed("reading", path, e))?;
        got.bytes().await.map_err(|e| failed("reading", path, e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, at) = self.locate(path)?;
        Ok(Box::new(ObjectReader {
            store,
            at,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, at) = self.locate(path)?;
        store
            .put(&at, bs.into())
            .await
            .map_err(|e| failed("writing", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, at) = self.locate(path)?;
        Ok(Box::new(ObjectWriter {
            writer: BufWriter::with_capacity(store, at, MULTIPART_THRESHOLD)
                .with_max_concurrency(PARTS_IN_FLIGHT),
            location: path.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, at) = self.locate(path)?;
        match store.delete(&at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("deleting", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (store, at) = self.locate(path)?;
        let mut listed = store.list(Some(&at));
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| failed("listing", path, e))?;
            store
                .delete(&meta.location)
                .await
                .map_err(|e| failed("deleting", path, e))?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    at: Path,
    location: String,
}

#[async_trait]
impl FileRead for ObjectReader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.at, range)
            .await
            .map_err(|e| failed("reading", &self.location, e))
    }
}

struct ObjectWriter {
    writer: BufWriter,
    location: String,
}

#[async_trait]
impl FileWrite for ObjectWriter {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.writer
            .put(bs)
            .await
            .map_err(|e| failed("writing", &self.location, e))
    }

    async fn close(&mut self) -> Result<()> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| failed("writing", &self.location, e))
    }
}
