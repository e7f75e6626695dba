//! `POST /v1/files/{file_id}/trash`: move a file to the trash. Its name is free for other files;
//! it is hidden from reads and listings unless asked for (`trashed=true`). 200 with the record;
//! trashing a trashed file answers the same. `If-Match` is honoured.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::{FileRecord, time};
use shared::http::{
    authorize, check_if_match, file_id_param, file_response, has_if_match, respond,
};
use shared::principal::Scope;
use shared::store::UpdateConflict;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(trash_file(&app, &req).await)
}

async fn trash_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    for _ in 0..5 {
        let file = app.file_of(&principal, &file_id, Trashed::Include).await?;
        check_if_match(req, &file.etag())?;
        if file.trashed_at.is_some() {
            return file_response(http::StatusCode::OK, &file);
        }
        let now = time::now();
        let next = FileRecord {
            trashed_at: Some(now),
            updated_at: now,
            version: file.version + 1,
            ..file.clone()
        };
        match app.files.update_file(&file, &next).await? {
            Ok(()) => return file_response(http::StatusCode::OK, &next),
            Err(UpdateConflict::Version) if has_if_match(req) => {
                return Err(ApiError::PreconditionFailed);
            }
            Err(_) => continue,
        }
    }
    Err(ApiError::internal("file kept changing while being trashed"))
}
