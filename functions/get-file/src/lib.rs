//! `GET /v1/files/{file_id}`: the file's record, with an ETag; `If-None-Match` answers 304.
//!
//! A ready file comes with a presigned `download_url` (and `download_url_expires_at`) and, once made,
//! its `thumbnails` (box size → presigned JPEG URL). The links are not part of the ETag, which is the
//! record's version: a 304 stays valid while only the links would differ. A file in the trash
//! answers 404 unless `?trashed=true`.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::http::authorize;
use shared::http::{file_id_param, if_none_match, json_response, query_param, respond};
use shared::links::{Links, with_links};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(get_file(&app, &req).await)
}

async fn get_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let trashed = match query_param(req, "trashed").as_deref() {
        None | Some("false") => Trashed::Exclude,
        Some("true") => Trashed::Include,
        Some(_) => {
            return Err(ApiError::InvalidParameter {
                name: "trashed",
                reason: "must be true or false".into(),
            });
        }
    };
    let file = app.file_of(&principal, &file_id, trashed).await?;
    let etag = file.etag();
    let mut resp = if if_none_match(req, &etag) {
        Response::builder()
            .status(http::StatusCode::NOT_MODIFIED)
            .body(Body::Empty)
            .map_err(ApiError::internal)?
    } else {
        let links = Links {
            download: true,
            thumbnails: true,
        };
        let body = with_links(&app.objects, &file, links, app.config.download_url_ttl).await?;
        json_response(http::StatusCode::OK, &body)?
    };
    let headers = resp.headers_mut();
    headers.insert(
        http::header::ETAG,
        etag.parse().map_err(ApiError::internal)?,
    );
    // The record changes as the upload is processed: clients must revalidate.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-cache"),
    );
    Ok(resp)
}
