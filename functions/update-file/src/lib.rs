//! `PATCH /v1/files/{file_id}`: change a file's name, parent (a move), tags or metadata with a JSON
//! merge patch (see `shared::domain::patch`). 200 with the new record.
//!
//! `If-Match: <etag>` makes the change conditional: a stale ETag answers 412 and changes nothing.
//! Without it, a concurrent change is merged (the patch is re-applied to the fresh record), so no
//! update is lost either way. Renaming or moving onto a name taken in the target parent: 409.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::patch::{FilePatch, apply_patch};
use shared::file_update::update_file_with;
use shared::http::{authorize, file_id_param, file_response, json_body, respond};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(update_file(&app, &req).await)
}

async fn update_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    let patch: FilePatch = json_body(req)?;
    // The file must be one the token may see (else 404, in `file_of`), and a limited token may
    // move it only into another parent it names.
    let file = update_file_with(app, req, &principal, &file_id, Trashed::Exclude, |file| {
        let next = apply_patch(file, &patch)?;
        if next.parent != file.parent {
            principal.may_put_into(next.parent.as_deref())?;
        }
        Ok(Some(next))
    })
    .await?;
    file_response(http::StatusCode::OK, &file)
}
