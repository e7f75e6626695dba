//! `GET /v1/files/{file_id}/revisions`: every revision of a file, oldest first, the current one
//! marked. Rejected uploads never became revisions; deleted revisions are gone.

use api_types::RevisionList;
use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::http::{authorize, file_id_param, json_response, respond};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(list_revisions(&app, &req).await)
}

async fn list_revisions(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
    let revisions = app
        .files
        .list_revisions(&principal.tenant_id, &file_id)
        .await?;
    let items = revisions.iter().map(|r| r.view(file.revision)).collect();
    json_response(http::StatusCode::OK, &RevisionList { items })
}
