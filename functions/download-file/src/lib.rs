//! `GET /v1/files/{file_id}/content`: 302 to a short-lived presigned GET of the file's content.
//!
//! The bytes never pass through Lambda (6 MB response limit, and no reason to pay for the transfer):
//! S3 serves them, with the file's type and an RFC 6266 `Content-Disposition` set through the
//! presigned response overrides. `?disposition=inline|attachment` (default attachment).

use lambda_http::{Body, Request, Response};
use shared::domain::FileStatus;
use shared::domain::disposition::{Disposition, content_disposition};
use shared::http::{file_id_param, query_param, redirect, respond};
use shared::principal::Principal;
use shared::storage::DownloadOverrides;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(download_file(&app, &req).await)
}

async fn download_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = Principal::from_request(req, &app.config.tenant_claim)?;
    let file_id = file_id_param(req)?;
    let disposition = match query_param(req, "disposition") {
        None => Disposition::Attachment,
        Some(value) => Disposition::parse(&value).ok_or(ApiError::InvalidParameter {
            name: "disposition",
            reason: "must be inline or attachment".into(),
        })?,
    };
    let file = app
        .files
        .get_file(&principal.tenant_id, &file_id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    let object_key = match (&file.status, &file.object_key) {
        (FileStatus::Ready, Some(key)) => key,
        _ => {
            return Err(ApiError::FileNotReady {
                status: file.status.as_str().to_string(),
            });
        }
    };
    let presigned = app
        .objects
        .presign_download(
            object_key,
            &DownloadOverrides {
                content_disposition: &content_disposition(disposition, &file.name),
                content_type: &file.content_type,
            },
            app.config.download_url_ttl,
        )
        .await?;
    redirect(&presigned.url)
}
