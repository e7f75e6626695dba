//! `DELETE /v1/files/{file_id}`: delete a file for good (`files:admin`), trashed or not: every
//! revision's object and thumbnails, then the records. 204 when all is gone; 202 when the file is
//! gone for every reader (404 everywhere, its name free) but the time budget of this run ran out
//! before every revision was deleted; a 404 once nothing is left.
//!
//! The steps and the invariant that makes every interruption resumable are in `shared::purge`: the
//! record first becomes a `deleting_since` marker in one transaction (with the name claim and tag
//! entries), then revisions are deleted chunk by chunk (objects and every thumbnail key first, their
//! records second), the marker last. A repeated DELETE finds the marker and resumes; so a run that
//! timed out, crashed or answered 202 leaves nothing that the next run cannot reach.
//!
//! Finishing without the client: the marker write itself is the job, so that no crash can separate
//! "marked" from "scheduled". FilesTable's stream, filtered to file records that became markers,
//! invokes `finish-deletes` (a 15-minute function that runs `shared::purge::purge_file` until
//! `Done`; its failures are retried from the stream, then go to a queue with an alarm). Locally the
//! stack polls DynamoDB Local's stream as Lambda's event source mapping does
//! (`local_stack::streams`). A repeated DELETE still resumes too.

use lambda_http::{Body, Request, RequestExt, Response};
use shared::http::{authorize, file_id_param, no_content, respond};
use shared::principal::{Principal, Scope};
use shared::purge::{Budget, Progress, purge_file};
use shared::retry::back_off;
use shared::store::FileForDelete;
use shared::{ApiError, App};
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(delete_file(&app, &req).await)
}

/// How many times the record is read again when it changed between the read and the mark.
const MAX_ATTEMPTS: u32 = 5;

/// The function's timeout is 29 s (API Gateway gives up at 30): stop starting chunks this long
/// before the invocation's deadline, which leaves time for the chunk under way and the answer.
const SAFETY_MARGIN: Duration = Duration::from_secs(8);
/// The budget when the invocation carries no deadline (the local gateway).
const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

async fn delete_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Admin)?;
    let file_id = file_id_param(req)?;
    let tenant = principal.tenant_id.as_str();
    mark(app, &principal, &file_id).await?;
    match purge_file(app, tenant, &file_id, Budget::until(deadline(req))).await? {
        Progress::Done => no_content(),
        Progress::Unfinished { revisions_deleted } => {
            tracing::info!(
                file_id,
                revisions_deleted,
                "time budget spent; the delete resumes on the next run"
            );
            Response::builder()
                .status(http::StatusCode::ACCEPTED)
                .body(Body::Empty)
                .map_err(ApiError::internal)
        }
    }
}

/// Step 1: marks the file as being deleted, unless an earlier run did. 404 when nothing is left.
/// A token limited to some parents deletes only files it may see; a file already being deleted
/// no longer says its parent, so only a tenant-wide token resumes that.
async fn mark(app: &App, principal: &Principal, file_id: &str) -> Result<(), ApiError> {
    let tenant = principal.tenant_id.as_str();
    for attempt in 0..MAX_ATTEMPTS {
        let file = match app.files.file_for_delete(tenant, file_id).await? {
            None => return Err(ApiError::NotFound("file")),
            Some(FileForDelete::Deleting) if principal.parents.is_some() => {
                return Err(ApiError::NotFound("file"));
            }
            Some(FileForDelete::Deleting) => return Ok(()),
            Some(FileForDelete::Live(file)) if !principal.may_see(&file) => {
                return Err(ApiError::NotFound("file"));
            }
            Some(FileForDelete::Live(file)) => file,
        };
        match app.files.mark_file_deleting(&file).await {
            Ok(()) => return Ok(()),
            // The record changed since it was read (a revision landed, a PATCH), or is being
            // written right now (a transaction conflict): read again after a pause.
            Err(e) if e.is_condition_failed() || e.is_retryable() => back_off(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "file kept changing while being deleted",
    ))
}

/// When this run must stop starting chunks: from the Lambda invocation's deadline, else a default.
fn deadline(req: &Request) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let remaining = req
        .lambda_context_ref()
        .and_then(|ctx| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as u64;
            ctx.deadline.checked_sub(now_ms).map(Duration::from_millis)
        })
        .map(|left| left.saturating_sub(SAFETY_MARGIN))
        .unwrap_or(DEFAULT_BUDGET)
        .min(DEFAULT_BUDGET);
    now + remaining
}
