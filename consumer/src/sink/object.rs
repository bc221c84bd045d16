//! The object storage sink: one object per partition per batch, NDJSON or
//! Parquet, named as the file sink names its files, in an S3 bucket (AWS or
//! any S3-compatible store).
//!
//! `s3://bucket/prefix?format=ndjson|parquet`. Everything else comes from
//! the standard `AWS_*` environment, read by the `object_store` crate:
//! credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//! `AWS_SESSION_TOKEN`, or the pod's identity: `AWS_WEB_IDENTITY_TOKEN_FILE`
//! with `AWS_ROLE_ARN`, as EKS sets them), `AWS_REGION`, and for an
//! S3-compatible store `AWS_ENDPOINT` (path-style addressing, the crate's
//! default) and `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint.
//!
//! An object is written with one PUT, or above 16 MiB as a multipart upload
//! of 8 MiB parts; either way a reader never sees a partial object, and a
//! batch delivered twice replaces its own object. A batch's encoded objects
//! are held in memory while they upload (the budget counts them). Every
//! failure of the store (unreachable, access denied, no such bucket) leaves
//! the sink unavailable until it passes; only a Parquet batch that cannot be
//! encoded is refused.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use url::Url;

use millpond_core::sink::trouble;

use super::file::{chunk_name, encode, FileFormat};
use super::{HttpOptions, WriteError};
use crate::buffer::Batch;
use crate::{Error, Result};

/// Writes batches as objects under one prefix of a bucket.
pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Path,
    format: FileFormat,
}

impl ObjectSink {
    /// Each write is one attempt with `http.timeout`: the store client does
    /// not retry on its own, so an outage shows in the sink's metrics and a
    /// hand-off is not held up by retries ([`super::retry`] does them).
    pub fn from_url(url: &Url, http: &HttpOptions) -> Result<Self> {
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
            Error::Config(format!(
                "SINK_URL `{url}`: an object storage sink names its bucket, e.g. s3://bucket/prefix"
            ))
        })?;
        let format = format_of(url)?;
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // Beside what the environment configured (AWS_ALLOW_HTTP, ...).
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}ms", http.timeout.as_millis()),
            )
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| Error::Config(format!("SINK_URL `{url}`: {e}")))?;
        let prefix = Path::from_url_path(url.path())
            .map_err(|e| Error::Config(format!("SINK_URL `{url}`: the prefix: {e}")))?;
        Ok(ObjectSink {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix,
            format,
        })
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    pub fn describe(&self) -> String {
        format!(
            "objects in s3://{}/{} ({})",
            self.bucket,
            self.prefix,
            self.format.extension()
        )
    }

    /// Uploads every chunk of the batch as its own object. All chunks are
    /// encoded first, so a batch that cannot be encoded leaves no object.
    pub async fn write(&self, batch: Arc<Batch>) -> std::result::Result<(), WriteError> {
        let (format, encoded_batch) = (self.format, batch.clone());
        let objects = tokio::task::spawn_blocking(move || {
            encoded_batch
                .chunks
                .iter()
                .filter(|chunk| chunk.records > 0)
                .map(|chunk| {
                    let name = chunk_name(&encoded_batch.topic, format, chunk);
                    encode(format, &name, chunk).map(|body| (name, Bytes::from(body)))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| WriteError::unavailable(format!("encoder task failed: {e}")))??;
        for (name, body) in objects {
            let path = self.prefix.clone().join(name.as_str());
            if let Err(e) = self.upload(&path, body).await {
                let error = e.to_string();
                let said = match store_answer(&error) {
                    Some(answer) => answer,
                    None => format!("{}{}", what_failed(&error), self.diagnose().await),
                };
                let error = format!("putting s3://{}/{path}: {said}", self.bucket);
                return Err(WriteError::unavailable(tag_denied(&said, error)));
            }
        }
        Ok(())
    }

    /// One PUT up to [`MULTIPART_THRESHOLD`], else a multipart upload of
    /// [`PART_SIZE`] parts (aborted if a part fails). Either way the object
    /// appears whole or not at all.
    async fn upload(&self, path: &Path, body: Bytes) -> object_store::Result<()> {
        if body.len() <= MULTIPART_THRESHOLD {
            self.store.put(path, PutPayload::from(body)).await?;
            return Ok(());
        }
        let mut upload = self.store.put_multipart(path).await?;
        for start in (0..body.len()).step_by(PART_SIZE) {
            let part = body.slice(start..body.len().min(start + PART_SIZE));
            if let Err(e) = upload.put_part(PutPayload::from(part)).await {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(%path, error = %abort, "aborting a failed multipart upload");
                }
                return Err(e);
            }
        }
        upload.complete().await?;
        Ok(())
    }

    /// The store's own answer to a listing of the prefix, after a failed
    /// upload: a store that refuses a request often closes the connection
    /// before the client has sent the body, so the upload's error says only
    /// that sending failed, while a listing reads the refusal (access
    /// denied, no such bucket).
    async fn diagnose(&self) -> String {
        match self.store.list_with_delimiter(Some(&self.prefix)).await {
            Ok(_) => String::new(),
            Err(e) => {
                let error = e.to_string();
                let answer = store_answer(&error).unwrap_or_else(|| what_failed(&error));
                format!("; listing the prefix answers: {answer}")
            }
        }
    }
}

/// The store's answer in an object store error, as a user acts on it: its
/// status, error code and message (`403 Forbidden, SignatureDoesNotMatch:
/// ...`); `None` when the store did not answer. The client's full text
/// repeats the URL and appends the store's whole XML document, with the
/// request's signature.
pub(super) fn store_answer(error: &str) -> Option<String> {
    let between = |open: &str, close: &str| {
        let start = error.find(open)? + open.len();
        let len = error[start..].find(close)?;
        Some(error[start..start + len].trim().to_string())
    };
    let mut answer = between("status code: ", ":")?;
    if let Some(code) = between("<Code>", "</Code>") {
        answer = format!("{answer}, {code}");
    }
    if let Some(message) = between("<Message>", "</Message>") {
        answer = format!("{answer}: {message}");
    }
    Some(answer)
}

/// `error`, tagged as refused credentials when the store's answer is a 403
/// (the operator reports it as `StorageAccessDenied`).
pub(super) fn tag_denied(answer: &str, error: String) -> String {
    if answer.starts_with("403") || answer.contains("answers: 403") {
        trouble::tag(trouble::STORAGE_ACCESS_DENIED, &error)
    } else {
        error
    }
}

/// What failed on the way when the store did not answer (`HTTP error:
/// error sending`): the last part of the client's text.
pub(super) fn what_failed(error: &str) -> String {
    let tail = error.rsplit(" - ").next().unwrap_or(error);
    tail.chars().take(300).collect()
}

/// Objects larger than this go up in parts.
const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of one part of a multipart upload (S3 takes 5 MiB to 5 GiB).
const PART_SIZE: usize = 8 << 20;

/// `format=` of the sink URL (NDJSON unless it says otherwise).
pub(super) fn format_of(url: &Url) -> Result<FileFormat> {
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
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::{store_answer, what_failed};

    // Errors of the object store client as versitygw v1.8.0 provoked them
    // (the stack's store; XML cut after the message).
    const DENIED: &str = "The operation lacked the necessary privileges to complete for path dbg/t-0-0-499.ndjson: Error performing PUT http://198.18.0.1:19000/millpond/dbg/t-0-0-499.ndjson in 1.105171ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><AWSAccessKeyId>millpond-e2e</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256&#xA;</StringToSign></Error>";
    const NOT_SENT: &str = "Generic S3 error: Error performing PUT http://198.18.0.1:19000/millpond/operator/t-0-0-12704.ndjson in 1.785721ms - HTTP error: error sending";

    #[test]
    fn the_stores_status_code_and_message_are_kept_and_the_signature_dropped() {
        assert_eq!(
            store_answer(DENIED).unwrap(),
            "403 Forbidden, SignatureDoesNotMatch: The request signature we calculated does not \
             match the signature you provided. Check your key and signing method."
        );
    }

    #[test]
    fn refused_credentials_are_tagged_for_the_operator() {
        let answer = store_answer(DENIED).unwrap();
        let error = super::tag_denied(&answer, format!("putting s3://b/o: {answer}"));
        assert!(
            error.starts_with("StorageAccessDenied: putting s3://b/o: 403"),
            "{error}"
        );
        let listed = "HTTP error: error sending; listing the prefix answers: 403 Forbidden";
        assert!(super::tag_denied(listed, listed.into()).starts_with("StorageAccessDenied: "));
        let missing = "404 Not Found, NoSuchBucket";
        assert_eq!(super::tag_denied(missing, missing.into()), missing);
    }

    #[test]
    fn without_an_answer_what_failed_on_the_way_is_kept() {
        assert_eq!(store_answer(NOT_SENT), None);
        assert_eq!(what_failed(NOT_SENT), "HTTP error: error sending");
    }
}
