//! S3 adapter: presigned upload and download URLs, and the checks on landed objects.
//!
//! Clients move bytes straight to and from S3; the API only signs. An upload URL is bound to one key,
//! one exact size, one content type and (when declared) one SHA-256, so S3 itself refuses anything else.

use crate::domain::time::Timestamp;
use crate::error::BoxError;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine;
use std::collections::BTreeMap;
use std::time::Duration;

/// Every object this service writes is born `pending` and becomes `live` only when a record points
/// at it (an accepted revision, its recorded thumbnails). The bucket's lifecycle rule
/// (`expire-pending-objects` in infra/template.yaml) deletes objects still `pending` after
/// [`PENDING_OBJECT_EXPIRY_DAYS`], so nothing that landed without being recorded (a second PUT after
/// a rejection, an upload whose processing failed on every retry, thumbnails of a file deleted while
/// they were made) stays in the bucket for ever.
pub const OBJECT_STATE_TAG: &str = "files-state";
/// `x-amz-tagging` value of a new object (signed into upload URLs, so a client cannot change it).
pub const PENDING_TAGGING: &str = "files-state=pending";
/// Days after which the lifecycle rule expires a `pending` object; longer than any upload session
/// can stay pending (see `store::UPLOAD_SESSION_GRACE_SECONDS`).
pub const PENDING_OBJECT_EXPIRY_DAYS: u32 = 3;

/// What S3 answers when a conditional write (`If-None-Match: *`) finds the key taken.
pub const PRECONDITION_FAILED: &str = "PreconditionFailed";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// S3 refused the request for a reason the client caused (e.g. `InvalidPart`, `NoSuchUpload`).
    #[error("S3 refused the request: {code}")]
    Refused { code: String },
    #[error("transient S3 error: {0}")]
    Transient(#[source] BoxError),
    #[error("S3 error: {0}")]
    Permanent(#[source] BoxError),
}

impl StorageError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }
}

/// As for DynamoDB errors (`store.rs`): transient → 503 with Retry-After, the rest → 500.
impl From<StorageError> for crate::error::ApiError {
    fn from(e: StorageError) -> Self {
        if e.is_retryable() {
            crate::error::ApiError::unavailable(e)
        } else {
            crate::error::ApiError::internal(e)
        }
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let SdkError::ServiceError(s) = &err
        && let Some(
            code @ ("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "NoSuchUpload"
            | "NoSuchKey" | "PreconditionFailed"),
        ) = s.err().code()
    {
        return StorageError::Refused {
            code: code.to_string(),
        };
    }
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => matches!(
            s.err().code(),
            // ConditionalRequestConflict: a concurrent conditional write to the key; S3 says retry.
            Some(
                "SlowDown"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestTimeout"
                    | "ConditionalRequestConflict"
            )
        ),
        _ => false,
    };
    if transient {
        StorageError::Transient(Box::new(err))
    } else {
        StorageError::Permanent(Box::new(err))
    }
}

/// A presigned request and the headers the client must send with it (they are signed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PresignedRequest {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "crate::domain::time::rfc3339_millis")]
    pub expires_at: Timestamp,
}

/// What S3 says about a stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
    pub e_tag: Option<String>,
    /// Base64 SHA-256, when the object was uploaded with one.
    pub checksum_sha256: Option<String>,
}

/// The upload URL's constraints.
#[derive(Debug, Clone)]
pub struct UploadConstraints<'a> {
    pub content_type: &'a str,
    pub size: u64,
    /// Lowercase hex; signed as `x-amz-checksum-sha256`, so S3 verifies the body against it.
    pub sha256_hex: Option<&'a str>,
}

/// The download URL's response overrides.
#[derive(Debug, Clone)]
pub struct DownloadOverrides<'a> {
    pub content_disposition: &'a str,
    pub content_type: &'a str,
}

#[derive(Debug, Clone)]
pub struct ObjectStorage {
    client: Client,
    bucket: String,
    /// Objects up to this size are copied with one CopyObject (see [`ObjectStorage::copy`]).
    single_copy_max_bytes: u64,
    /// Part size of a multipart copy.
    copy_part_bytes: u64,
    /// UploadPartCopy requests of one copy sent at once.
    copy_parts_in_flight: usize,
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, StorageError> {
    PresigningConfig::expires_in(ttl).map_err(|e| StorageError::Permanent(Box::new(e)))
}

fn expiry(ttl: Duration) -> Timestamp {
    crate::domain::time::now() + chrono::Duration::from_std(ttl).unwrap_or_default()
}

impl ObjectStorage {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        ObjectStorage {
            client,
            bucket: bucket.into(),
            single_copy_max_bytes: SINGLE_COPY_MAX_BYTES,
            copy_part_bytes: COPY_PART_BYTES,
            copy_parts_in_flight: COPY_PARTS_IN_FLIGHT,
        }
    }

    /// Copies up to `single_copy_max_bytes` with one CopyObject, larger objects in parts of
    /// `copy_part_bytes` (`FILES_SINGLE_COPY_MAX_BYTES`, `FILES_COPY_PART_BYTES`; the configuration
    /// keeps both within S3's part sizes).
    pub fn with_copy_sizes(mut self, single_copy_max_bytes: u64, copy_part_bytes: u64) -> Self {
        self.single_copy_max_bytes = single_copy_max_bytes;
        self.copy_part_bytes = copy_part_bytes;
        self
    }

    /// How many parts of a multipart copy are copied at once (`FILES_COPY_PARTS_IN_FLIGHT`).
    pub fn with_copy_parts_in_flight(mut self, parts: usize) -> Self {
        self.copy_parts_in_flight = parts.max(1);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A presigned single PUT for `key`, bound to the constraints. It is also bound to
    /// `If-None-Match: *` (S3 refuses it with 412 once an object is at the key, so the URL writes at
    /// most one object, and the object that was checked is the one that stays) and to the pending
    /// tag (see [`OBJECT_STATE_TAG`]). Both headers are signed: a client cannot drop them.
    pub async fn presign_upload(
        &self,
        key: &str,
        constraints: &UploadConstraints<'_>,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let size =
            i64::try_from(constraints.size).map_err(|e| StorageError::Permanent(Box::new(e)))?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(constraints.content_type)
            .content_length(size)
            .if_none_match("*")
            .tagging(PENDING_TAGGING);
        if let Some(hex_digest) = constraints.sha256_hex {
            let digest =
                hex::decode(hex_digest).map_err(|e| StorageError::Permanent(Box::new(e)))?;
            request =
                request.checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest));
        }
        let expires_at = expiry(ttl);
        let presigned = request
            .presigned(presigning(ttl)?)
            .await
            .map_err(classify)?;
        Ok(PresignedRequest {
            url: presigned.uri().to_string(),
            headers: signed_headers(presigned.headers()),
            expires_at,
        })
    }

    /// Writes an upload's content that came in an API request (`POST /v1/files`) as its presigned
    /// PUT would have: written once (`If-None-Match: *`), tagged pending, with the content's
    /// SHA-256 as its S3 checksum, so S3 verifies the transfer and HeadObject reports the digest
    /// that `finalize` compares with the declared one (no re-read of the object).
    pub async fn put_upload(
        &self,
        key: &str,
        content: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&content);
        let size =
            i64::try_from(content.len()).map_err(|e| StorageError::Permanent(Box::new(e)))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size)
            .if_none_match("*")
            .tagging(PENDING_TAGGING)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .body(content.into())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// A presigned GET for `key` whose response carries the given disposition and type.
    pub async fn presign_download(
        &self,
        key: &str,
        overrides: &DownloadOverrides<'_>,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let expires_at = expiry(ttl);
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(overrides.content_disposition)
            .response_content_type(overrides.content_type)
            .presigned(presigning(ttl)?)
            .await
            .map_err(classify)?;
        Ok(PresignedRequest {
            url: presigned.uri().to_string(),
            headers: signed_headers(presigned.headers()),
            expires_at,
        })
    }

    /// HeadObject; `None` when the object does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, StorageError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(ObjectHead {
                size: out.content_length.unwrap_or_default().max(0) as u64,
                content_type: out.content_type,
                e_tag: out.e_tag,
                checksum_sha256: out.checksum_sha256,
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Deletes `key`; deleting a missing object succeeds, as in S3.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

impl ObjectStorage {
    /// Starts an S3 multipart upload, its object tagged pending; returns its S3 upload id.
    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .tagging(PENDING_TAGGING)
            .send()
            .await
            .map_err(classify)?;
        out.upload_id
            .ok_or_else(|| StorageError::Permanent("S3 returned no upload id".into()))
    }

    /// A presigned PUT for one part, bound to its exact length.
    pub async fn presign_part(
        &self,
        key: &str,
        s3_upload_id: &str,
        part_number: u32,
        part_len: u64,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let presigned = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(s3_upload_id)
            .part_number(part_number as i32)
            .content_length(part_len as i64)
            .presigned(presigning(ttl)?)
            .await
            .map_err(classify)?;
        Ok(presigned.uri().to_string())
    }

    /// Completes a multipart upload from the client's part list, only if no object is at the key
    /// yet (`If-None-Match: *`): an upload's object is written once.
    pub async fn complete_multipart(
        &self,
        key: &str,
        s3_upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let parts = parts
            .iter()
            .map(|(number, etag)| {
                CompletedPart::builder()
                    .part_number(*number as i32)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(s3_upload_id)
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Aborts a multipart upload; an unknown (already finished or aborted) one is fine.
    pub async fn abort_multipart(&self, key: &str, s3_upload_id: &str) -> Result<(), StorageError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(s3_upload_id)
            .send()
            .await
            .map_err(classify)
        {
            Err(StorageError::Refused { .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The first `len` bytes of an object (fewer if it is shorter).
    pub async fn read_prefix(&self, key: &str, len: usize) -> Result<Vec<u8>, StorageError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await;
        match out {
            Ok(out) => collect(out.body).await,
            // An empty object has no byte 0.
            Err(SdkError::ServiceError(e)) if e.err().meta().code() == Some("InvalidRange") => {
                Ok(Vec::new())
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// The whole object in memory. Callers bound the size first.
    pub async fn read_all(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        collect(self.open(key).await?).await
    }

    async fn open(&self, key: &str) -> Result<aws_sdk_s3::primitives::ByteStream, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.body)
    }

    /// The SHA-256 of an object of `size` bytes (for multipart uploads, whose S3 checksum is
    /// composite). The bytes come in [`HASH_RANGE_BYTES`] ranges, [`HASH_RANGES_IN_FLIGHT`] GETs at
    /// a time, and are hashed in order: one GET stream is limited by its connection, hashing is not
    /// (BENCHMARKS.md, "Verification throughput"), and at most ranges × in flight bytes are held.
    pub async fn sha256(&self, key: &str, size: u64) -> Result<[u8; 32], StorageError> {
        use futures::{StreamExt, TryStreamExt};
        use sha2::Digest;
        let ranges = (0..size.div_ceil(HASH_RANGE_BYTES)).map(|i| {
            let start = i * HASH_RANGE_BYTES;
            (start, (start + HASH_RANGE_BYTES).min(size) - 1)
        });
        let mut chunks = futures::stream::iter(ranges)
            .map(|(first, last)| self.read_range(key, first, last))
            .buffered(HASH_RANGES_IN_FLIGHT);
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = chunks.try_next().await? {
            hasher.update(&chunk);
        }
        Ok(hasher.finalize().into())
    }

    /// Bytes `first..=last` of an object.
    async fn read_range(&self, key: &str, first: u64, last: u64) -> Result<Vec<u8>, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={first}-{last}"))
            .send()
            .await
            .map_err(classify)?;
        collect(out.body).await
    }

    /// Marks an object `live` (see [`OBJECT_STATE_TAG`]): a record points at it now, so the
    /// lifecycle rule must leave it alone. Called before the record is written, so that a crash in
    /// between leaves a live object the retried event records, never a recorded pending one that
    /// would expire under a live file.
    pub async fn mark_live(&self, key: &str) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{Tag, Tagging};
        let tag = Tag::builder()
            .key(OBJECT_STATE_TAG)
            .value("live")
            .build()
            .map_err(|e| StorageError::Permanent(Box::new(e)))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| StorageError::Permanent(Box::new(e)))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Writes a small object the service made itself (a thumbnail), tagged pending until
    /// [`Self::mark_live`].
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .tagging(PENDING_TAGGING)
            .body(bytes.into())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

impl ObjectStorage {
    /// Server-side copy to a new key (a restored revision gets its own object without the bytes
    /// passing here), written once (`If-None-Match: *`) and tagged pending like an upload. Up to
    /// the single-copy threshold ([`SINGLE_COPY_MAX_BYTES`] unless configured) one CopyObject;
    /// larger objects (S3's CopyObject stops at 5 GiB, and one copy of gigabytes outlasts a
    /// request) as a multipart copy, parts copied in parallel. A failed multipart copy leaves
    /// nothing: its upload is aborted once no part copy is in flight any more.
    pub async fn copy(&self, source_key: &str, target_key: &str) -> Result<(), StorageError> {
        let source = format!(
            "{}/{}",
            self.bucket,
            percent_encoding::utf8_percent_encode(source_key, COPY_SOURCE_ESCAPES)
        );
        let Some(head) = self.head(source_key).await? else {
            return Err(StorageError::Refused {
                code: "NoSuchKey".into(),
            });
        };
        if head.size <= self.single_copy_max_bytes {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(target_key)
                .copy_source(source)
                .if_none_match("*")
                .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
                .tagging(PENDING_TAGGING)
                .send()
                .await
                .map_err(classify)?;
            return Ok(());
        }
        let content_type = head
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let upload_id = self.create_multipart(target_key, content_type).await?;
        let copied = self
            .copy_parts(&source, target_key, &upload_id, head.size)
            .await;
        let completed = match copied {
            Ok(parts) => {
                self.complete_multipart(target_key, &upload_id, &parts)
                    .await
            }
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Copied parts are invisible and billed: give them back now (the bucket's
            // abort-incomplete rule would, a day later).
            self.abort_multipart_fully(target_key, &upload_id).await;
        }
        completed
    }

    /// Aborts a multipart upload and checks with ListParts that S3 holds no part of it any more,
    /// aborting again if it does (S3: a part upload in progress during an abort "might or might
    /// not succeed", and ListParts is how to verify). Best effort: whatever stays, the bucket's
    /// abort-incomplete rule removes a day later.
    async fn abort_multipart_fully(&self, key: &str, upload_id: &str) {
        for _ in 0..3 {
            if let Err(error) = self.abort_multipart(key, upload_id).await {
                tracing::warn!(%error, key, "could not abort a failed multipart copy");
                return;
            }
            match self.list_parts(key, upload_id).await {
                Ok(parts) if !parts.is_empty() => continue,
                // NoSuchUpload (or an empty list): nothing is held any more.
                _ => return,
            }
        }
    }

    /// Copies every part with UploadPartCopy, `copy_parts_in_flight` at a time, in inclusive
    /// byte ranges (`bytes=first-last`). After the first failure no new part copy starts, but
    /// those already sent are waited for: dropping one would not stop S3 from finishing it, and a
    /// part finished after the abort would stay stored.
    async fn copy_parts(
        &self,
        source: &str,
        target_key: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<(u32, String)>, StorageError> {
        use futures::StreamExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let failed = AtomicBool::new(false);
        let failed = &failed;
        let mut copied = futures::stream::iter(copy_part_ranges(size, self.copy_part_bytes))
            .map(|(number, first, last)| async move {
                if failed.load(Ordering::SeqCst) {
                    return None;
                }
                let result = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(target_key)
                    .upload_id(upload_id)
                    .part_number(number as i32)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .send()
                    .await
                    .map_err(classify)
                    .and_then(|out| {
                        out.copy_part_result.and_then(|r| r.e_tag).ok_or_else(|| {
                            StorageError::Permanent("S3 returned no part ETag".into())
                        })
                    })
                    .map(|etag| (number, etag));
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                if number == 1 {
                    // The fault suite's moment for a source that vanishes mid-copy. Its callback
                    // holds the copy by blocking: on a runtime worker that would also stall the
                    // tasks queued on that worker (the test's deletion of the source among them,
                    // until the hold timed out), so the worker hands them over first.
                    #[cfg(feature = "failpoints")]
                    tokio::task::block_in_place(|| {
                        fail::fail_point!("storage/first-part-copied");
                    });
                }
                Some(result)
            })
            .buffered(self.copy_parts_in_flight);
        let mut parts = Vec::new();
        let mut first_error = None;
        while let Some(outcome) = copied.next().await {
            match outcome {
                Some(Ok(part)) => parts.push(part),
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(parts),
        }
    }

    /// Deletes many objects, 1,000 per request; missing ones are fine.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Permanent(Box::new(e)))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Permanent(Box::new(e)))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(classify)?;
            if let Some(error) = out.errors.as_deref().and_then(|e| e.first()) {
                return Err(StorageError::Transient(
                    format!("S3 could not delete {:?}: {:?}", error.key, error.code).into(),
                ));
            }
        }
        Ok(())
    }
}

/// Objects up to this size are copied with one CopyObject, larger ones part by part (default of
/// `FILES_SINGLE_COPY_MAX_BYTES`).
pub const SINGLE_COPY_MAX_BYTES: u64 = 256 << 20;
/// Part size of a multipart copy (default of `FILES_COPY_PART_BYTES`; grows for objects over
/// 10,000 of them), and parts in flight.
pub const COPY_PART_BYTES: u64 = 256 << 20;
pub const COPY_PARTS_IN_FLIGHT: usize = 16;

/// The parts of a multipart copy of `size` bytes: (part number, first byte, last byte), inclusive
/// as `x-amz-copy-source-range` takes them. Parts of `part_bytes`, or larger when that would make
/// more than S3's 10,000 parts; only the last may be smaller.
pub fn copy_part_ranges(size: u64, part_bytes: u64) -> impl Iterator<Item = (u32, u64, u64)> {
    let part_bytes = part_bytes.max(size.div_ceil(10_000)).max(1);
    (0..size.div_ceil(part_bytes)).map(move |i| {
        let first = i * part_bytes;
        (i as u32 + 1, first, (first + part_bytes).min(size) - 1)
    })
}

/// Ranged reads of [`ObjectStorage::sha256`]: 8 MiB each, 8 in flight (64 MiB held at most).
pub const HASH_RANGE_BYTES: u64 = 8 << 20;
pub const HASH_RANGES_IN_FLIGHT: usize = 8;

/// `x-amz-copy-source` is a URL path: keys are percent-encoded, `/` kept.
const COPY_SOURCE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

async fn collect(body: aws_sdk_s3::primitives::ByteStream) -> Result<Vec<u8>, StorageError> {
    body.collect()
        .await
        .map(|data| data.into_bytes().to_vec())
        .map_err(|e| StorageError::Transient(Box::new(e)))
}

/// The headers a client must send; `host` is left out, since every HTTP client sets it itself.
fn signed_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    headers
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect()
}

/// A part S3 already holds for a multipart upload (from ListParts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    /// As S3 answers it, quotes included: what `complete` expects back.
    pub etag: String,
}

/// Resuming multipart uploads (`GET /v1/uploads/{id}`): what S3 holds, and fresh part URLs.
impl ObjectStorage {
    /// Every part S3 holds for the upload, in part-number order. ListParts answers at most 1,000
    /// parts per page, and an upload may have 10,000: follow the markers to the end.
    pub async fn list_parts(
        &self,
        key: &str,
        s3_upload_id: &str,
    ) -> Result<Vec<UploadedPart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(s3_upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(classify)?;
            for part in page.parts() {
                let (Some(number), Some(etag)) = (part.part_number, part.e_tag.as_deref()) else {
                    continue;
                };
                parts.push(UploadedPart {
                    part_number: u32::try_from(number).unwrap_or_default(),
                    size: part.size.unwrap_or_default().max(0) as u64,
                    etag: etag.to_string(),
                });
            }
            match (page.is_truncated, page.next_part_number_marker) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn copy_parts_cover_the_object_in_inclusive_ranges() {
        let parts: Vec<_> = copy_part_ranges(12 * MIB + 1, 5 * MIB).collect();
        assert_eq!(
            parts,
            vec![
                (1, 0, 5 * MIB - 1),
                (2, 5 * MIB, 10 * MIB - 1),
                (3, 10 * MIB, 12 * MIB),
            ]
        );
        let exact: Vec<_> = copy_part_ranges(10 * MIB, 5 * MIB).collect();
        assert_eq!(exact.last(), Some(&(2, 5 * MIB, 10 * MIB - 1)));
    }

    #[test]
    fn copy_parts_grow_to_stay_within_10000_and_5_gib() {
        // S3's largest object at the default part size: 10,000 parts at most, none over 5 GiB.
        let size = 5 << 40;
        let parts: Vec<_> = copy_part_ranges(size, COPY_PART_BYTES).collect();
        assert!(parts.len() <= 10_000, "{}", parts.len());
        assert!(parts.iter().all(|(_, first, last)| last - first < 5 << 30));
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|(_, first, last)| last - first + 1 >= 5 * MIB)
        );
        assert_eq!(parts.last().unwrap().2, size - 1);
        // Just over the default threshold: two parts, the second one byte.
        let parts: Vec<_> = copy_part_ranges(SINGLE_COPY_MAX_BYTES + 1, COPY_PART_BYTES).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], (2, COPY_PART_BYTES, COPY_PART_BYTES));
    }
}
