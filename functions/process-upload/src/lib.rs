//! The S3-event function: turns each landed upload into a revision of its file.
//!
//! S3 delivers events at least once and in no particular order, so every step is idempotent: the
//! upload session moves from `pending` exactly once (a conditional write), and an event for a session
//! that is already finished, unknown, expired, or whose object is gone changes nothing.
//! Transient failures (throttling, timeouts) fail the invocation so Lambda retries it; uploads that do
//! not match their declaration are recorded as rejected and their object deleted.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use percent_encoding::percent_decode_str;
use shared::App;
use shared::domain::upload::{LandedObject, check_landed_object};
use shared::domain::{RevisionRecord, UploadStatus, time};
use shared::keys::parse_object_key;
use shared::storage::StorageError;
use shared::store::StoreError;
use std::sync::Arc;

/// A failure after which Lambda should retry the invocation.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("gave up after {0} lost races on one upload")]
    Contended(u32),
}

/// What happened to one event record; logged, and returned for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        file_id: String,
        revision: u32,
    },
    Rejected {
        file_id: String,
        reason: &'static str,
    },
    /// Nothing to do: the reason says why (duplicate, unknown key, ...).
    Ignored(&'static str),
}

pub async fn handle(app: Arc<App>, event: S3Event) -> Result<(), ProcessError> {
    for record in &event.records {
        let outcome = process_record(&app, record).await?;
        tracing::info!(?outcome, key = ?record.s3.object.key, "upload processed");
    }
    Ok(())
}

/// Keys in S3 events are form-encoded: `+` is a space, the rest percent-encoded.
pub fn decode_event_key(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// Each conditional write that loses a race is retried from a fresh read, a few times.
const MAX_ATTEMPTS: u32 = 5;

pub async fn process_record(app: &App, record: &S3EventRecord) -> Result<Outcome, ProcessError> {
    if record.s3.bucket.name.as_deref() != Some(app.objects.bucket()) {
        return Ok(Outcome::Ignored("event for another bucket"));
    }
    let Some(key) = record.s3.object.key.as_deref().and_then(decode_event_key) else {
        return Ok(Outcome::Ignored("event without a readable key"));
    };
    let Some(parsed) = parse_object_key(&key) else {
        return Ok(Outcome::Ignored("key not chosen by this service"));
    };

    for _ in 0..MAX_ATTEMPTS {
        let Some(session) = app
            .files
            .get_upload(&parsed.tenant_id, &parsed.upload_id)
            .await?
        else {
            return Ok(Outcome::Ignored(
                "no such upload session (expired or unknown)",
            ));
        };
        if session.status != UploadStatus::Pending {
            return Ok(Outcome::Ignored("upload already processed"));
        }
        if session.file_id != parsed.file_id || session.object_key != key {
            return Ok(Outcome::Ignored(
                "key does not belong to its upload session",
            ));
        }
        let Some(file) = app
            .files
            .get_file(&session.tenant_id, &session.file_id)
            .await?
        else {
            // The file was deleted while its upload was in flight: nothing may keep its bytes.
            app.objects.delete(&key).await?;
            return Ok(Outcome::Ignored("file no longer exists; object deleted"));
        };
        let Some(head) = app.objects.head(&key).await? else {
            return Ok(Outcome::Ignored("object no longer exists"));
        };

        let now = time::now();
        let landed = LandedObject {
            size: head.size,
            content_type: head.content_type.as_deref(),
            checksum_sha256: head.checksum_sha256.as_deref(),
        };
        let result = match check_landed_object(&session, &landed) {
            Ok(()) => {
                let updated = file.with_new_revision(
                    &key,
                    head.size,
                    &session.content_type,
                    session.sha256.as_deref(),
                    now,
                );
                let revision = RevisionRecord {
                    tenant_id: session.tenant_id.clone(),
                    file_id: session.file_id.clone(),
                    revision: updated.revision,
                    upload_id: session.upload_id.clone(),
                    object_key: key.clone(),
                    size: head.size,
                    content_type: session.content_type.clone(),
                    sha256: session.sha256.clone(),
                    created_at: now,
                    created_by: session.created_by.clone(),
                };
                let finished = shared::domain::UploadSession {
                    status: UploadStatus::Completed,
                    ..session.clone()
                };
                app.files
                    .finish_upload(&finished, &updated, file.version, Some(&revision))
                    .await
                    .map(|()| Outcome::Accepted {
                        file_id: updated.id.clone(),
                        revision: updated.revision,
                    })
            }
            Err(rejection) => {
                tracing::warn!(?rejection, upload_id = %session.upload_id, "upload rejected");
                let updated = file.with_rejected_upload(rejection.code(), now);
                let finished = shared::domain::UploadSession {
                    status: UploadStatus::Rejected,
                    ..session.clone()
                };
                match app
                    .files
                    .finish_upload(&finished, &updated, file.version, None)
                    .await
                {
                    Ok(()) => {
                        // Recorded first, deleted second: a crash in between leaves a rejected
                        // record and an object that the next delivery (or lifecycle rule) removes.
                        app.objects.delete(&key).await?;
                        Ok(Outcome::Rejected {
                            file_id: updated.id.clone(),
                            reason: rejection.code(),
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(outcome) => return Ok(outcome),
            // Another delivery of this event, or a change to the file, won the race: read again.
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProcessError::Contended(MAX_ATTEMPTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_form_decoded() {
        assert_eq!(
            decode_event_key("uploads/a+b%2Bc%C3%A9").unwrap(),
            "uploads/a b+cé"
        );
        assert!(decode_event_key("bad%FF").is_none());
    }
}
