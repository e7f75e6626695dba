//! The S3-event function: turns each landed upload into a revision of its file, then makes the
//! revision's thumbnails.
//!
//! S3 delivers events at least once and in no particular order; `shared::finalize` makes accepting an
//! upload idempotent, and thumbnails are made for whatever revision is current and still lacks them,
//! so a duplicate, late or reordered event changes nothing that is already done.
//! Transient failures (throttling, timeouts) fail the invocation so Lambda retries it; uploads that do
//! not match their declaration are recorded as rejected and their object deleted.

pub mod thumbnails;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use futures::future::try_join_all;
use shared::App;
use shared::domain::{THUMBNAIL_SIZES, Thumbnails};
use shared::finalize::{Effort, FinalizeError, Outcome, accepted_revision, finalize_upload};
pub use shared::keys::decode_event_key;
use shared::keys::{UploadObjectKey, parse_object_key, thumbnail_key};
use shared::storage::StorageError;
use shared::store::StoreError;
use std::sync::Arc;
use std::time::Instant;

/// A failure after which Lambda should retry the invocation.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Finalize(#[from] FinalizeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("thumbnailing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A fault injected by the fault suite (`failpoints` feature, tests only).
    #[error("injected fault at {0}")]
    Injected(&'static str),
}

pub async fn handle(app: Arc<App>, event: S3Event) -> Result<(), ProcessError> {
    for record in &event.records {
        let outcome = process_record(&app, record).await?;
        tracing::info!(?outcome, key = ?record.s3.object.key, "upload processed");
    }
    Ok(())
}

pub async fn process_record(app: &App, record: &S3EventRecord) -> Result<Outcome, ProcessError> {
    // The fault suite's stand-in for an event that arrives late (held here while others pass).
    fail::fail_point!("process-upload/event-received");
    if record.s3.bucket.name.as_deref() != Some(app.objects.bucket()) {
        return Ok(Outcome::Ignored("event for another bucket"));
    }
    let Some(key) = record.s3.object.key.as_deref().and_then(decode_event_key) else {
        return Ok(Outcome::Ignored("event without a readable key"));
    };
    let Some(parsed) = parse_object_key(&key) else {
        return Ok(Outcome::Ignored("key not chosen by this service"));
    };
    let outcome = finalize_upload(app, &parsed.tenant_id, &parsed.upload_id, Effort::Full).await?;
    make_missing_thumbnails(app, &parsed, &key).await?;
    Ok(outcome)
}

/// Gives the revision stored at `key` its thumbnails' terminal state, whoever accepted the upload
/// (this event, an earlier one, or `complete`): made (`ready`) or `none` with a reason when it is
/// the file's current revision, `none` (`superseded`) when another revision became current before
/// they were made (no route serves an old revision's thumbnails, so none are made for it). The
/// revision record decides, not the file record: the file shows only its current revision, and a
/// revision that lost that place must not stay `pending` for ever.
async fn make_missing_thumbnails(
    app: &App,
    parsed: &UploadObjectKey,
    key: &str,
) -> Result<(), ProcessError> {
    let Some(session) = app
        .files
        .get_upload(&parsed.tenant_id, &parsed.upload_id)
        .await?
    else {
        return Ok(());
    };
    let Some(revision) = accepted_revision(app, &session).await? else {
        return Ok(());
    };
    if revision.object_key != key {
        return Ok(());
    }
    let Some(file) = app
        .files
        .get_file(&session.tenant_id, &session.file_id)
        .await?
    else {
        return Ok(());
    };
    let current = file.revision == revision.revision;
    if revision.thumbnails != Thumbnails::Pending {
        // Recorded on the revision, but a failure between the two writes of `set_thumbnails`
        // left the file record behind: record it there too.
        if current && file.thumbnails == Thumbnails::Pending {
            record_thumbnails(
                app,
                &file.tenant_id,
                &file.id,
                revision.revision,
                &revision.thumbnails,
            )
            .await?;
        }
        return Ok(());
    }
    if !current {
        tracing::info!(
            key,
            revision = revision.revision,
            current = file.revision,
            "revision superseded before its thumbnails were made; none will be"
        );
        let superseded = Thumbnails::None {
            reason: SUPERSEDED_REASON.to_string(),
        };
        return record_thumbnails(
            app,
            &file.tenant_id,
            &file.id,
            revision.revision,
            &superseded,
        )
        .await;
    }
    // The fault suite's stand-in for a crash, an out-of-memory kill or a timeout while thumbnailing.
    fail::fail_point!("process-upload/thumbnailing", |_| Err(
        ProcessError::Injected("process-upload/thumbnailing")
    ));
    let started = Instant::now();
    let source = app.objects.read_all(key).await?;
    let read = started.elapsed();
    let limits = thumbnails::ThumbnailLimits::default();
    // Decoding and resizing are CPU-bound: keep them off the async workers.
    let made = tokio::task::spawn_blocking(move || {
        thumbnails::make_thumbnails(&source, &THUMBNAIL_SIZES, &limits)
    })
    .await?;
    let made_at = started.elapsed();
    let state = match made {
        Ok(made) => {
            let sizes = made.iter().map(|t| t.size).collect();
            let keys: Vec<String> = made.iter().map(|t| thumbnail_key(key, t.size)).collect();
            // All sizes at once: one round trip to S3 instead of one per size. Written pending,
            // made live before they are recorded (see `shared::storage::OBJECT_STATE_TAG`).
            try_join_all(
                made.into_iter()
                    .zip(&keys)
                    .map(|(thumbnail, key)| async move {
                        app.objects
                            .put_bytes(key, thumbnail.jpeg, "image/jpeg")
                            .await?;
                        app.objects.mark_live(key).await
                    }),
            )
            .await?;
            tracing::info!(
                key,
                read_ms = read.as_secs_f64() * 1e3,
                thumbnails_ms = (made_at - read).as_secs_f64() * 1e3,
                store_ms = (started.elapsed() - made_at).as_secs_f64() * 1e3,
                "thumbnails made"
            );
            // A crash between storing the thumbnails and recording them.
            fail::fail_point!("process-upload/thumbnails-stored", |_| Err(
                ProcessError::Injected("process-upload/thumbnails-stored")
            ));
            let state = Thumbnails::Ready { sizes };
            match app
                .files
                .set_thumbnails(&file.tenant_id, &file.id, file.revision, &state)
                .await
            {
                Ok(()) => {}
                // The revision (or the whole file) was deleted while its thumbnails were made:
                // its deletion could not see these, so they go now.
                Err(e) if e.is_condition_failed() => {
                    tracing::info!(
                        key,
                        "revision deleted while thumbnailing; thumbnails deleted"
                    );
                    app.objects.delete_many(&keys).await?;
                }
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        Err(error) => {
            tracing::info!(%error, key, "no thumbnails");
            Thumbnails::None {
                reason: no_thumbnail_reason(&error).to_string(),
            }
        }
    };
    record_thumbnails(app, &file.tenant_id, &file.id, file.revision, &state).await
}

/// Why a revision has no thumbnails when another revision became current before they were made.
pub const SUPERSEDED_REASON: &str = "superseded";

/// Records a revision's thumbnails; a revision deleted meanwhile has nothing left to record.
async fn record_thumbnails(
    app: &App,
    tenant: &str,
    file_id: &str,
    revision: u32,
    state: &Thumbnails,
) -> Result<(), ProcessError> {
    match app
        .files
        .set_thumbnails(tenant, file_id, revision, state)
        .await
    {
        Err(e) if !e.is_condition_failed() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Stable codes for the file's `thumbnails.reason`.
fn no_thumbnail_reason(error: &thumbnails::ThumbnailError) -> &'static str {
    match error {
        thumbnails::ThumbnailError::Unsupported(_) => "unsupported_format",
        thumbnails::ThumbnailError::Corrupt(_) => "corrupt",
        thumbnails::ThumbnailError::TooLarge { .. } => "too_large",
    }
}
