//! `DELETE /v1/files/{file_id}/revisions/{revision}`: remove an old revision and its objects for
//! good (`files:admin`). The current revision cannot be deleted: 409 `current_revision`. 204.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::THUMBNAIL_SIZES;
use shared::http::{authorize, file_id_param, no_content, respond, revision_param};
use shared::keys::thumbnail_key;
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(delete_revision(&app, &req).await)
}

async fn delete_revision(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Admin)?;
    let file_id = file_id_param(req)?;
    let number = revision_param(req)?;
    let file = app.file_of(&principal, &file_id, Trashed::Include).await?;
    let revision = app
        .files
        .find_revision(&principal.tenant_id, &file_id, number)
        .await?
        .ok_or(ApiError::NotFound("revision"))?;
    if revision.revision == file.revision {
        return Err(ApiError::CurrentRevision);
    }
    // Objects first, as for a file: a failure after them leaves a record a retry can finish.
    let mut keys = vec![revision.object_key.clone()];
    keys.extend(
        THUMBNAIL_SIZES
            .iter()
            .map(|size| thumbnail_key(&revision.object_key, *size)),
    );
    app.objects.delete_many(&keys).await?;
    match app.files.delete_revision(&revision).await {
        Ok(()) => no_content(),
        Err(e) if e.is_condition_failed() => Err(ApiError::CurrentRevision),
        Err(e) => Err(e.into()),
    }
}
