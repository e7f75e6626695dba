//! process-upload's on-failure destination: Lambda invokes it with the S3 event that failed every
//! attempt (the first and two retries: a crash, an out-of-memory kill, a timeout, a panic, which
//! aborts the process), so that no file waits for ever for thumbnails that will never come.
//!
//! For each object of the event that is an accepted revision's content (current or superseded)
//! with thumbnails still `pending`, the thumbnails become `none` with reason `failed`, a terminal state that
//! `GET /v1/files/{id}` shows and `GET .../thumbnails/{size}?wait=N` answers at once. An upload that
//! never got accepted is left as it is: its session stays pending (a `POST .../complete` retries
//! it), and its object, still tagged pending, expires with the bucket's lifecycle rule. If this
//! function fails too, Lambda retries it and then sends the record to the failures queue.

use aws_lambda_events::s3::S3Event;
use serde::Deserialize;
use shared::App;
use shared::domain::{THUMBNAIL_SIZES, Thumbnails};
use shared::finalize::accepted_revision;
use shared::keys::{decode_event_key, parse_object_key, thumbnail_key};
use shared::storage::StorageError;
use shared::store::StoreError;
use std::sync::Arc;

/// What Lambda sends an asynchronous invocation's destination (the "invocation record").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRecord {
    pub request_context: RequestContext,
    /// The event that failed.
    pub request_payload: S3Event,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    #[serde(default)]
    pub approximate_invoke_count: u32,
}

/// The reason a file's thumbnails show when making them failed on every attempt.
pub const FAILED_REASON: &str = "failed";

/// A failure after which Lambda should retry this function.
#[derive(Debug, thiserror::Error)]
pub enum FailedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub async fn handle(app: Arc<App>, record: InvocationRecord) -> Result<(), FailedError> {
    tracing::warn!(
        request_id = %record.request_context.request_id,
        condition = %record.request_context.condition,
        attempts = record.request_context.approximate_invoke_count,
        "process-upload gave up on an event"
    );
    for s3 in &record.request_payload.records {
        let Some(key) = s3.s3.object.key.as_deref().and_then(decode_event_key) else {
            continue;
        };
        let Some(parsed) = parse_object_key(&key) else {
            continue;
        };
        let Some(session) = app
            .files
            .get_upload(&parsed.tenant_id, &parsed.upload_id)
            .await?
        else {
            continue;
        };
        // The revision the upload became, current or not: the state is the revision's, and a
        // revision superseded meanwhile must not keep `pending` either.
        let Some(revision) = accepted_revision(&app, &session).await? else {
            continue;
        };
        if revision.object_key != key || revision.thumbnails != Thumbnails::Pending {
            continue;
        }
        // An attempt may have stored some before it died: they will never be recorded.
        let keys: Vec<String> = THUMBNAIL_SIZES
            .iter()
            .map(|size| thumbnail_key(&key, *size))
            .collect();
        app.objects.delete_many(&keys).await?;
        let failed = Thumbnails::None {
            reason: FAILED_REASON.into(),
        };
        match app
            .files
            .set_thumbnails(
                &revision.tenant_id,
                &revision.file_id,
                revision.revision,
                &failed,
            )
            .await
        {
            // The revision was deleted meanwhile: nothing left to mark.
            Err(e) if e.is_condition_failed() => {}
            other => other?,
        }
        tracing::info!(file_id = %revision.file_id, revision = revision.revision, "thumbnails marked failed");
    }
    Ok(())
}
