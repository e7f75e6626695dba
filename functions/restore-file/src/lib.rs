//! `POST /v1/files/{file_id}/restore`: take a file out of the trash. 409 `name_conflict` if another
//! live file took its name in its parent meanwhile (rename or move that one, or this one after).
//! Restoring a file that is not in the trash answers it unchanged. `If-Match` is honoured.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::FileRecord;
use shared::file_update::update_file_with;
use shared::http::{authorize, file_id_param, file_response, respond};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(restore_file(&app, &req).await)
}

async fn restore_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    let file = update_file_with(app, req, &principal, &file_id, Trashed::Include, |file| {
        Ok(file.trashed_at.is_some().then(|| FileRecord {
            trashed_at: None,
            ..file.clone()
        }))
    })
    .await?;
    file_response(http::StatusCode::OK, &file)
}
