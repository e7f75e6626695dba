//! Request parsing and response building for API Gateway HTTP API (payload 2.0) handlers.

use crate::error::ApiError;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses a JSON request body. Syntax errors are 400 `malformed_json`; a body of the wrong shape
/// (missing or unknown fields, wrong types, negative sizes) is 422 `invalid_body`.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the request body is empty".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::InvalidBody(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedJson(e.to_string())
            }
        }
    })
}

/// The caller, if the token grants `scope` for this route: 401 without verified claims, 403 without
/// a tenant or the scope. Every handler starts here.
pub fn authorize(
    req: &Request,
    config: &crate::Config,
    scope: crate::principal::Scope,
) -> Result<crate::principal::Principal, ApiError> {
    let principal = crate::principal::Principal::from_request(req, &config.tenant_claim)?;
    principal.require(scope)?;
    Ok(principal)
}

/// A file id from the path. A value that cannot be an id cannot exist: 404, as for a missing file.
pub fn file_id_param(req: &Request) -> Result<String, ApiError> {
    let params = req.path_parameters();
    let id = params.first("file_id").unwrap_or_default();
    if !crate::domain::ids::is_valid_id(id) {
        return Err(ApiError::NotFound("file"));
    }
    Ok(id.to_string())
}

/// A revision number from the path; anything but a positive number cannot exist: 404.
pub fn revision_param(req: &Request) -> Result<u32, ApiError> {
    let params = req.path_parameters();
    params
        .first("revision")
        .and_then(|r| r.parse::<u32>().ok())
        .filter(|r| *r > 0)
        .ok_or(ApiError::NotFound("revision"))
}

/// An upload id from the path; one that cannot exist is a 404.
pub fn upload_id_param(req: &Request) -> Result<String, ApiError> {
    let params = req.path_parameters();
    let id = params.first("upload_id").unwrap_or_default();
    if !crate::domain::ids::is_valid_id(id) {
        return Err(ApiError::NotFound("upload"));
    }
    Ok(id.to_string())
}

/// A file record as the API answers it: its view as JSON, with its ETag.
pub fn file_response(
    status: StatusCode,
    file: &crate::domain::FileRecord,
) -> Result<Response<Body>, ApiError> {
    let mut resp = json_response(status, &file.view())?;
    resp.headers_mut().insert(
        header::ETAG,
        file.etag().parse().map_err(ApiError::internal)?,
    );
    Ok(resp)
}

pub fn no_content() -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .map_err(ApiError::internal)
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_string)
}

pub fn json_response<T: Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_string(value).map_err(ApiError::internal)?;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .map_err(ApiError::internal)
}

/// 302 to a presigned URL. Not cacheable: the URL expires.
pub fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Empty)
        .map_err(ApiError::internal)
}

/// True when an `If-None-Match` header lists `etag` (or `*`).
pub fn if_none_match(req: &Request, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// Honors `If-Match`: 412 unless it lists `etag` (or `*`). No header, no condition.
pub fn check_if_match(req: &Request, etag: &str) -> Result<(), ApiError> {
    let mut values = req
        .headers()
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    if values.peek().is_none() {
        return Ok(());
    }
    // If-Match uses the strong comparison: a weak ETag never matches.
    if values.any(|candidate| candidate == "*" || candidate == etag) {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

/// True when the request carries `If-Match`.
pub fn has_if_match(req: &Request) -> bool {
    req.headers().contains_key(header::IF_MATCH)
}

/// Turns a handler's result into the response: errors become problem+json here, in one place.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}
