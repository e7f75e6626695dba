//! `GET /v1/files/{file_id}/thumbnails/{size}`: 302 to a presigned GET of the thumbnail (JPEG) of
//! the file's current revision, in a 64, 256 or 1024 px box.
//!
//! 404 `not_found` when there will be none (not an image, HEIC, corrupt), 404 `thumbnail_pending`
//! while it is being made. `?wait=N` (N <= 10 seconds) waits for processing to finish first.

use lambda_http::RequestExt;
use lambda_http::{Body, Request, Response};
use shared::domain::{FileRecord, THUMBNAIL_SIZES, Thumbnails};
use shared::http::authorize;
use shared::http::{file_id_param, redirect, respond, wait_param};
use shared::principal::Scope;
use shared::storage::DownloadOverrides;
use shared::{ApiError, App, keys};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(get_thumbnail(&app, &req).await)
}

async fn get_thumbnail(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let size = size_param(req)?;
    let wait = wait_param(req)?;
    let deadline = Instant::now() + wait;

    let file = loop {
        let file = app
            .files
            .get_file(&principal.tenant_id, &file_id)
            .await?
            .filter(|f| principal.may_see(f) && f.trashed_at.is_none())
            .ok_or(ApiError::NotFound("file"))?;
        if file.thumbnails != Thumbnails::Pending || Instant::now() >= deadline {
            break file;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    let object_key = thumbnail_object(&file, size)?;
    let presigned = app
        .objects
        .presign_download(
            &object_key,
            &DownloadOverrides {
                content_disposition: "inline",
                content_type: "image/jpeg",
            },
            app.config.download_url_ttl,
        )
        .await?;
    redirect(&presigned.url)
}

fn thumbnail_object(file: &FileRecord, size: u32) -> Result<String, ApiError> {
    match (&file.thumbnails, &file.object_key) {
        (Thumbnails::Ready { sizes }, Some(key)) if sizes.contains(&size) => {
            Ok(keys::thumbnail_key(key, size))
        }
        (Thumbnails::Pending, _) => Err(ApiError::ThumbnailPending),
        _ => Err(ApiError::NotFound("thumbnail")),
    }
}

fn size_param(req: &Request) -> Result<u32, ApiError> {
    let params = req.path_parameters();
    params
        .first("size")
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| THUMBNAIL_SIZES.contains(s))
        .ok_or(ApiError::InvalidParameter {
            name: "size",
            reason: format!("must be one of {THUMBNAIL_SIZES:?}"),
        })
}
