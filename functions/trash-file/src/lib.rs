//! `POST /v1/files/{file_id}/trash`: move a file to the trash. Its name is free for other files;
//! it is hidden from reads and listings unless asked for (`trashed=true`). 200 with the record;
//! trashing a trashed file answers the same. `If-Match` is honoured.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::{FileRecord, time};
use shared::file_update::update_file_with;
use shared::http::{authorize, file_id_param, file_response, respond};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(trash_file(&app, &req).await)
}

async fn trash_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    let file = update_file_with(app, req, &principal, &file_id, Trashed::Include, |file| {
        Ok(file.trashed_at.is_none().then(|| FileRecord {
            trashed_at: Some(time::now()),
            ..file.clone()
        }))
    })
    .await?;
    file_response(http::StatusCode::OK, &file)
}
