//! `DELETE /v1/files/{file_id}`: delete a file for good (`files:admin`), trashed or not: every
//! revision's object and thumbnails, then the records. 204; a second call answers 404.
//!
//! Objects go first: if the records were deleted first and the function died, nothing would lead
//! to the objects any more. The other way round, a retry finds the record and finishes the job.
//! An upload still in flight for the file finds it gone when it lands and deletes its own object.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::THUMBNAIL_SIZES;
use shared::http::{authorize, file_id_param, no_content, respond};
use shared::keys::thumbnail_key;
use shared::principal::Scope;
use shared::retry::back_off;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(delete_file(&app, &req).await)
}

/// How many times the objects and records are read again when the file changed meanwhile.
const MAX_ATTEMPTS: u32 = 5;

async fn delete_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Admin)?;
    let file_id = file_id_param(req)?;
    for attempt in 0..MAX_ATTEMPTS {
        let file = app.file_of(&principal, &file_id, Trashed::Include).await?;
        let revisions = app
            .files
            .list_revisions(&principal.tenant_id, &file_id)
            .await?;
        let mut keys: Vec<String> =
            Vec::with_capacity(revisions.len() * (1 + THUMBNAIL_SIZES.len()));
        for revision in &revisions {
            keys.push(revision.object_key.clone());
            keys.extend(
                THUMBNAIL_SIZES
                    .iter()
                    .map(|size| thumbnail_key(&revision.object_key, *size)),
            );
        }
        app.objects.delete_many(&keys).await?;
        match app.files.delete_file(&file, &revisions).await {
            Ok(()) => return no_content(),
            // A revision landed meanwhile (its objects must go too), or one is landing right now
            // (a transaction conflict): read again after a pause.
            Err(e) if e.is_condition_failed() || e.is_retryable() => back_off(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "file kept changing while being deleted",
    ))
}
