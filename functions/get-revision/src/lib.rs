//! `GET /v1/files/{file_id}/revisions/{revision}`: one revision, with a presigned `download_url`
//! for its content (the same as `GET /v1/files/{id}/content?revision=N` redirects to).

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::disposition::{Disposition, content_disposition};
use shared::domain::time;
use shared::http::{authorize, file_id_param, json_response, respond, revision_param};
use shared::principal::Scope;
use shared::storage::DownloadOverrides;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(get_revision(&app, &req).await)
}

async fn get_revision(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let number = revision_param(req)?;
    let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
    let revision = app
        .files
        .find_revision(&principal.tenant_id, &file_id, number)
        .await?
        .ok_or(ApiError::NotFound("revision"))?;
    let presigned = app
        .objects
        .presign_download(
            &revision.object_key,
            &DownloadOverrides {
                content_disposition: &content_disposition(Disposition::Attachment, &file.name),
                content_type: &revision.content_type,
            },
            app.config.download_url_ttl,
        )
        .await?;
    let mut body = revision.view(file.revision);
    body.download_url = Some(presigned.url);
    body.download_url_expires_at = Some(time::format(&presigned.expires_at));
    json_response(http::StatusCode::OK, &body)
}
