//! Turning a landed upload into a revision of its file: the one place that decides.
//!
//! Called by the S3-event function for every created object, and by `POST /v1/uploads/{id}/complete`
//! (which may run before the event arrives). Both may run for the same upload, and S3 may deliver an
//! event twice or late: the session moves from `pending` exactly once (a conditional write), and
//! whoever loses re-reads and finds it done.

use crate::App;
use crate::domain::sniff::{SNIFF_LEN, Sniffed, check_declared_type};
use crate::domain::upload::{LandedObject, Rejection, check_landed_object, check_sha256};
use crate::domain::{
    FileRecord, RevisionRecord, Thumbnails, UploadKind, UploadSession, UploadStatus, time,
};
use crate::storage::StorageError;
use crate::store::StoreError;
use base64::Engine;

/// A failure after which the same call may succeed (retry it).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("gave up after {0} lost races on one upload")]
    Contended(u32),
}

impl From<FinalizeError> for crate::ApiError {
    fn from(e: FinalizeError) -> Self {
        match e {
            FinalizeError::Store(e) => e.into(),
            FinalizeError::Storage(e) => e.into(),
            contended @ FinalizeError::Contended(_) => crate::ApiError::unavailable(contended),
        }
    }
}

/// What happened to the upload.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The upload became the file's current revision.
    Accepted(Box<FileRecord>),
    /// The content did not match its declaration; it was deleted.
    Rejected {
        file_id: String,
        reason: &'static str,
    },
    /// The checks need work that grows with the object (hashing a multipart upload): left to the
    /// S3-event function, which runs with a timeout sized for it. The file as it is now.
    Deferred(Box<FileRecord>),
    /// The upload's object has not landed (yet).
    NotLanded,
    /// Nothing will ever record this object: no session (never existed, or expired), a session that
    /// ended (rejected, aborted) or whose file was deleted. The object, if any, was deleted.
    Orphaned(&'static str),
    /// Nothing to do now; the text says why (already processed, another bucket, ...).
    Ignored(&'static str),
}

/// How much work the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// A request handler (29 s, answering a client): no work that grows with the object.
    Bounded,
    /// The S3-event function: whatever the checks need.
    Full,
}

/// Each conditional write that loses a race is retried from a fresh read, a few times.
const MAX_ATTEMPTS: u32 = 5;

pub async fn finalize_upload(
    app: &App,
    tenant: &str,
    upload_id: &str,
    effort: Effort,
) -> Result<Outcome, FinalizeError> {
    for attempt in 0..MAX_ATTEMPTS {
        let Some(session) = app.files.get_upload(tenant, upload_id).await? else {
            // Sessions of accepted uploads are kept as long as their revision: without one, no
            // record points at this key, and none ever will.
            app.objects
                .delete(&crate::keys::object_key(tenant, upload_id))
                .await?;
            return Ok(Outcome::Orphaned(
                "no such upload session (expired or unknown); object deleted",
            ));
        };
        match session.status {
            UploadStatus::Pending => {}
            // The object at the key is the accepted one: objects are written once
            // (`If-None-Match: *`), so a late or repeated event cannot mean other bytes.
            UploadStatus::Completed => return Ok(Outcome::Ignored("upload already processed")),
            // A second PUT through the URL after the first object was rejected and deleted, or
            // bytes that land after an abort: they belong to nobody.
            UploadStatus::Rejected | UploadStatus::Aborted => {
                app.objects.delete(&session.object_key).await?;
                return Ok(Outcome::Orphaned("upload already ended; object deleted"));
            }
        }
        let Some(file) = app
            .files
            .get_file(&session.tenant_id, &session.file_id)
            .await?
        else {
            // The file was deleted while its upload was in flight: end the session, so that
            // `complete` and later events say so, and keep nothing of its bytes.
            let ended = UploadSession {
                status: UploadStatus::Aborted,
                ..session.clone()
            };
            match app.files.abort_upload(&ended, None).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
            app.objects.delete(&session.object_key).await?;
            return Ok(Outcome::Orphaned("file no longer exists; object deleted"));
        };
        let Some(head) = app.objects.head(&session.object_key).await? else {
            return Ok(Outcome::NotLanded);
        };

        let verdict = match verify(app, &session, &file, &head, effort).await? {
            Verdict::NeedsFullEffort => return Ok(Outcome::Deferred(Box::new(file))),
            Verdict::Checked(verdict) => verdict,
        };
        let now = time::now();
        let result = match verdict {
            Ok(sniffed) => {
                // Live before recorded (see `storage::OBJECT_STATE_TAG`).
                app.objects.mark_live(&session.object_key).await?;
                accept(app, &session, &file, head.size, sniffed, now).await
            }
            Err(rejection) => reject(app, &session, &file, rejection, now).await,
        };
        match result {
            Err(e) if e.is_condition_failed() => continue,
            // The S3 event and `complete` can write the same items at the same moment: DynamoDB
            // cancels one transaction (TransactionConflict). Back off a little and read again.
            Err(e) if e.is_retryable() => {
                tracing::info!(error = %e, attempt, "transient store error while finalizing; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
            Ok(outcome) => {
                if let Outcome::Rejected { .. } = outcome {
                    // Recorded first, deleted second: a crash in between leaves a rejected session,
                    // whose next event deletes the object (and the object is still tagged pending).
                    app.objects.delete(&session.object_key).await?;
                }
                return Ok(outcome);
            }
        }
    }
    Err(FinalizeError::Contended(MAX_ATTEMPTS))
}

/// The revision an accepted upload became: by the number its session records, or (sessions accepted
/// before the number was recorded) by looking for its upload among the file's recent revisions.
/// `None` when the upload was not accepted, or its revision was deleted since.
pub async fn accepted_revision(
    app: &App,
    session: &UploadSession,
) -> Result<Option<RevisionRecord>, StoreError> {
    if session.status != UploadStatus::Completed {
        return Ok(None);
    }
    let revision = match session.revision {
        Some(number) => {
            app.files
                .find_revision(&session.tenant_id, &session.file_id, number)
                .await?
        }
        None => {
            app.files
                .find_revision_of_upload(&session.tenant_id, &session.file_id, &session.upload_id)
                .await?
        }
    };
    Ok(revision.filter(|r| r.upload_id == session.upload_id))
}

enum Verdict {
    Checked(Result<Sniffed, Rejection>),
    NeedsFullEffort,
}

/// The checks, cheapest first: what HeadObject says (base revision, size, type), then the first
/// bytes, then (only when S3 could not check it itself) the SHA-256 of the whole object.
async fn verify(
    app: &App,
    session: &UploadSession,
    file: &FileRecord,
    head: &crate::storage::ObjectHead,
    effort: Effort,
) -> Result<Verdict, FinalizeError> {
    if let Some(base) = session.base_revision
        && base != file.revision
    {
        return Ok(Verdict::Checked(Err(Rejection::RevisionConflict)));
    }
    let landed = LandedObject {
        size: head.size,
        content_type: head.content_type.as_deref(),
    };
    if let Err(rejection) = check_landed_object(session, &landed) {
        return Ok(Verdict::Checked(Err(rejection)));
    }
    let prefix = app
        .objects
        .read_prefix(&session.object_key, SNIFF_LEN)
        .await?;
    let sniffed = match check_declared_type(&session.content_type, &prefix) {
        Ok(sniffed) => sniffed,
        Err(reason) => {
            tracing::warn!(reason, upload_id = %session.upload_id, "content contradicts its declared type");
            return Ok(Verdict::Checked(Err(Rejection::ContentMismatch)));
        }
    };
    if let Some(declared) = &session.sha256 {
        let actual = match s3_checked_sha256(session, head) {
            Some(digest) => digest,
            None if effort == Effort::Bounded => return Ok(Verdict::NeedsFullEffort),
            None => {
                let started = std::time::Instant::now();
                let digest = app.objects.sha256(&session.object_key, head.size).await?;
                // The figure that sizes process-upload's timeout (BENCHMARKS.md, "Verification
                // throughput"): watch it on AWS, where the S3 side cannot be measured locally.
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    upload_id = %session.upload_id,
                    bytes = head.size,
                    seconds,
                    mb_per_second = head.size as f64 / 1e6 / seconds.max(1e-9),
                    "object hashed"
                );
                digest
            }
        };
        if let Err(rejection) = check_sha256(declared, &actual) {
            return Ok(Verdict::Checked(Err(rejection)));
        }
    }
    Ok(Verdict::Checked(Ok(sniffed)))
}

/// A single PUT was checked by S3 against the signed SHA-256 and reports it; a multipart object's
/// S3 checksum is a checksum of part checksums (`...-N`), which says nothing about the whole.
fn s3_checked_sha256(
    session: &UploadSession,
    head: &crate::storage::ObjectHead,
) -> Option<[u8; 32]> {
    if session.kind != UploadKind::Single {
        return None;
    }
    head.checksum_sha256
        .as_deref()
        .filter(|c| !c.contains('-'))
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

async fn accept(
    app: &App,
    session: &UploadSession,
    file: &FileRecord,
    size: u64,
    sniffed: Sniffed,
    now: time::Timestamp,
) -> Result<Outcome, StoreError> {
    let thumbnails = if !sniffed.is_raster_image() {
        Thumbnails::None {
            reason: "not_an_image".into(),
        }
    } else if size > app.config.thumbnail_max_source_bytes {
        Thumbnails::None {
            reason: "too_large".into(),
        }
    } else {
        Thumbnails::Pending
    };
    let mut updated = file.with_new_revision(
        &session.object_key,
        size,
        &session.content_type,
        session.sha256.as_deref(),
        now,
        &session.created_by,
    );
    updated.thumbnails = thumbnails.clone();
    let revision = RevisionRecord {
        tenant_id: session.tenant_id.clone(),
        file_id: session.file_id.clone(),
        revision: updated.revision,
        upload_id: session.upload_id.clone(),
        object_key: session.object_key.clone(),
        size,
        content_type: session.content_type.clone(),
        sha256: session.sha256.clone(),
        thumbnails,
        created_at: now,
        created_by: session.created_by.clone(),
    };
    let finished = UploadSession {
        status: UploadStatus::Completed,
        revision: Some(updated.revision),
        ..session.clone()
    };
    app.files
        .finish_upload(&finished, &updated, file.version, Some(&revision))
        .await?;
    Ok(Outcome::Accepted(Box::new(updated)))
}

async fn reject(
    app: &App,
    session: &UploadSession,
    file: &FileRecord,
    rejection: Rejection,
    now: time::Timestamp,
) -> Result<Outcome, StoreError> {
    tracing::warn!(?rejection, upload_id = %session.upload_id, "upload rejected");
    let updated = file.with_rejected_upload(rejection.code(), now);
    let finished = UploadSession {
        status: UploadStatus::Rejected,
        rejection_reason: Some(rejection.code().to_string()),
        ..session.clone()
    };
    app.files
        .finish_upload(&finished, &updated, file.version, None)
        .await?;
    Ok(Outcome::Rejected {
        file_id: updated.id.clone(),
        reason: rejection.code(),
    })
}
