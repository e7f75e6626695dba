//! Request parsing and response building for API Gateway HTTP API (payload 2.0) handlers.

use crate::error::ApiError;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest request body a route reads. The largest valid declaration (every field at its
/// limit, every character written as a `\\uXXXX` escape) is about 30 KB; anything larger cannot be
/// valid, so it is refused before it is parsed (API Gateway itself lets up to 10 MB through).
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// API Gateway HTTP API's payload limit ("Payload size: 10 MB", not adjustable): it answers 413
/// itself to a larger body.
pub const API_GATEWAY_MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Lambda's limit on a synchronous invocation's request payload, the whole event JSON ("6 MB";
/// Lambda refuses larger ones with "Request must be smaller than 6291456 bytes for the
/// InvokeFunction operation"). The event carries a binary body base64-encoded (payload format 2.0,
/// `isBase64Encoded`), 4/3 of its size: so this, not API Gateway's 10 MB, bounds what a request
/// body can bring to a function.
pub const LAMBDA_MAX_REQUEST_PAYLOAD_BYTES: usize = 6_291_456;

/// The media types a JSON body may be sent as: `application/json` everywhere, and for PATCH also
/// `application/merge-patch+json` (RFC 7396), which is what the body is.
pub fn accepted_body_types(method: &http::Method) -> &'static [&'static str] {
    if method == http::Method::PATCH {
        &["application/merge-patch+json", "application/json"]
    } else {
        &["application/json"]
    }
}

/// Checks the request's `Content-Type` against `accepted`: the essence compared case-insensitively,
/// parameters allowed, except a `charset` other than UTF-8 (JSON is UTF-8, RFC 8259 section 8.1).
fn check_body_type(req: &Request, accepted: &'static [&'static str]) -> Result<(), ApiError> {
    let refused = |got: Option<&str>| ApiError::UnsupportedMediaType {
        got: got.map(|g| g.chars().take(100).collect()),
        accepted,
    };
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(refused(None));
    };
    let Ok(value) = value.to_str() else {
        return Err(refused(Some("(not visible ASCII)")));
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !accepted.iter().any(|a| a.eq_ignore_ascii_case(essence)) {
        return Err(refused(Some(value)));
    }
    for param in parts {
        let (name, param_value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !param_value
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8")
        {
            return Err(refused(Some(value)));
        }
    }
    Ok(())
}

/// Parses a JSON request body: the one place where bodies are read. An empty body is 400
/// `malformed_json`; a body of another media type 415 `unsupported_media_type`; one over
/// [`MAX_JSON_BODY_BYTES`] 413 `body_too_large`; a syntax error (also invalid UTF-8, nesting deeper
/// than 128) 400 `malformed_json`; a body of the wrong shape (missing, unknown or duplicate fields,
/// wrong types, numbers out of range) 422 `invalid_body`.
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
    check_body_type(req, accepted_body_types(req.method()))?;
    if bytes.len() > MAX_JSON_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            size: bytes.len(),
            limit: MAX_JSON_BODY_BYTES,
        });
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

/// The most a request may wait for the thumbnails (`?wait=N`): well inside API Gateway's 30 s.
pub const MAX_WAIT_SECONDS: u64 = 10;

/// `?wait=N`: how long to wait for the thumbnails, 0 to [`MAX_WAIT_SECONDS`] whole seconds
/// (`GET /v1/files/{id}/thumbnails/{size}`, `POST /v1/files`); none means not at all.
pub fn wait_param(req: &Request) -> Result<std::time::Duration, ApiError> {
    match query_param(req, "wait") {
        None => Ok(std::time::Duration::ZERO),
        Some(value) => value
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= MAX_WAIT_SECONDS)
            .map(std::time::Duration::from_secs)
            .ok_or(ApiError::InvalidParameter {
                name: "wait",
                reason: format!("must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}"),
            }),
    }
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

/// The entity tags of an `If-Match` value: `*`, or a comma-separated list of `"..."` / `W/"..."`
/// (RFC 9110 sections 8.8.3 and 13.1.1), with visible ASCII inside the quotes. `None` for anything
/// else: such a header is a client bug, answered 400 rather than "does not match" (412).
pub fn entity_tags(value: &str) -> Option<Vec<&str>> {
    const OWS: [char; 2] = [' ', '\t'];
    let value = value.trim_matches(OWS);
    if value == "*" {
        return Some(vec!["*"]);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        let start = rest;
        let opaque = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = opaque.find('"')?;
        if !opaque[..end]
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return None;
        }
        let tag_len = start.len() - opaque.len() + end + 1;
        tags.push(&start[..tag_len]);
        rest = start[tag_len..].trim_start_matches(OWS);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix(',')?.trim_start_matches(OWS);
    }
}

/// Honors `If-Match`: 412 unless it lists `etag` (or `*`), 400 `invalid_parameter` if it is not a
/// list of entity tags. No header, no condition.
pub fn check_if_match(req: &Request, etag: &str) -> Result<(), ApiError> {
    let mut present = false;
    let mut matched = false;
    for value in req.headers().get_all(header::IF_MATCH) {
        present = true;
        let tags = value.to_str().ok().and_then(entity_tags).ok_or_else(|| {
            ApiError::InvalidParameter {
                name: "If-Match",
                reason: "must be * or a list of entity tags such as \"<etag>\"".into(),
            }
        })?;
        // If-Match uses the strong comparison: a weak ETag never matches.
        matched |= tags
            .iter()
            .any(|candidate| *candidate == "*" || *candidate == etag);
    }
    if !present || matched {
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

#[cfg(test)]
mod tests {
    use super::entity_tags;

    #[test]
    fn if_match_values_are_star_or_entity_tag_lists() {
        assert_eq!(entity_tags("*"), Some(vec!["*"]));
        assert_eq!(entity_tags("\"a-1\""), Some(vec!["\"a-1\""]));
        assert_eq!(
            entity_tags(" \"a\" ,W/\"b\",\t\"\" "),
            Some(vec!["\"a\"", "W/\"b\"", "\"\""])
        );
        for bad in [
            "",
            "a-1",
            "\"a",
            "\"a\" \"b\"",
            "\"a\",",
            "w/\"a\"",
            "\"a b\"",
            "*, \"a\"",
        ] {
            assert_eq!(entity_tags(bad), None, "{bad:?}");
        }
    }
}
