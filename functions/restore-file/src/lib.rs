//! `POST /v1/files/{file_id}/restore`: take a file out of the trash. 409 `name_conflict` if another
//! live file took its name in its parent meanwhile (rename or move that one, or this one after).
//! Restoring a file that is not in the trash answers it unchanged. `If-Match` is honoured.

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
    respond(restore_file(&app, &req).await)
}

async fn restore_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    for _ in 0..5 {
        let file = app.file_of(&principal, &file_id, Trashed::Include).await?;
        check_if_match(req, &file.etag())?;
        if file.trashed_at.is_none() {
            return file_response(http::StatusCode::OK, &file);
        }
        let next = FileRecord {
            trashed_at: None,
            updated_at: time::now(),
            version: file.version + 1,
            ..file.clone()
        };
        match app.files.update_file(&file, &next).await? {
            Ok(()) => return file_response(http::StatusCode::OK, &next),
            Err(UpdateConflict::NameTaken) => {
                let holder = app
                    .files
                    .get_name_claim(&principal.tenant_id, file.parent.as_deref(), &file.name)
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
    Err(ApiError::internal(
        "file kept changing while being restored",
    ))
}
