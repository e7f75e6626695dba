//! `PATCH /v1/files/{file_id}`: change a file's name, parent (a move), tags or metadata with a JSON
//! merge patch (see `shared::domain::patch`). 200 with the new record.
//!
//! `If-Match: <etag>` makes the change conditional: a stale ETag answers 412 and changes nothing.
//! Without it, a concurrent change is merged (the patch is re-applied to the fresh record), so no
//! update is lost either way. Renaming or moving onto a name taken in the target parent: 409.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::patch::{FilePatch, apply_patch};
use shared::domain::time;
use shared::http::{
    authorize, check_if_match, file_id_param, file_response, has_if_match, json_body, respond,
};
use shared::principal::Scope;
use shared::store::UpdateConflict;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(update_file(&app, &req).await)
}

/// Lost races (without If-Match) are retried from a fresh read this many times.
const MAX_ATTEMPTS: u32 = 5;

async fn update_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    let patch: FilePatch = json_body(req)?;
    for _ in 0..MAX_ATTEMPTS {
        let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
        check_if_match(req, &file.etag())?;
        let mut next = apply_patch(&file, &patch)?;
        if next == file {
            return file_response(http::StatusCode::OK, &file);
        }
        next.version = file.version + 1;
        next.updated_at = time::now();
        match app.files.update_file(&file, &next).await? {
            Ok(()) => return file_response(http::StatusCode::OK, &next),
            Err(UpdateConflict::NameTaken) => {
                let holder = app
                    .files
                    .get_name_claim(&principal.tenant_id, next.parent.as_deref(), &next.name)
                    .await?;
                return Err(ApiError::NameConflict {
                    existing_file_id: holder.map(|c| c.file_id).unwrap_or_default(),
                });
            }
            Err(UpdateConflict::Version) if has_if_match(req) => {
                return Err(ApiError::PreconditionFailed);
            }
            Err(UpdateConflict::Version) => continue,
        }
    }
    Err(ApiError::internal("file kept changing while being updated"))
}
