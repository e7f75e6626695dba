//! `GET /v1/files/{file_id}`: the file's record, with an ETag; `If-None-Match` answers 304.

use lambda_http::{Body, Request, Response};
use shared::http::{file_id_param, if_none_match, json_response, respond};
use shared::principal::Principal;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(get_file(&app, &req).await)
}

async fn get_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = Principal::from_request(req, &app.config.tenant_claim)?;
    let file_id = file_id_param(req)?;
    let file = app
        .files
        .get_file(&principal.tenant_id, &file_id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    let etag = file.etag();
    let mut resp = if if_none_match(req, &etag) {
        Response::builder()
            .status(http::StatusCode::NOT_MODIFIED)
            .body(Body::Empty)
            .map_err(ApiError::internal)?
    } else {
        json_response(http::StatusCode::OK, &file.view())?
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
