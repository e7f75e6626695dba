//! The one error type of the HTTP routes, and its mapping to RFC 9457 problem+json.
//!
//! Every failure a handler can meet ends here. Clients get a stable machine-readable `code`, a title
//! and a detail that is safe to show; internal error text (SDK errors, bugs) is logged with the request
//! id and never returned.

use http::StatusCode;
use lambda_http::{Body, Response};

/// A boxed error from an adapter or a bug: logged, answered as a bare 500.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON object the route expects.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// A `multipart/form-data` body that cannot be parsed: no boundary, a truncated or malformed
    /// part, headers that are not a part's.
    #[error("malformed multipart/form-data body: {0}")]
    MalformedMultipart(String),
    /// Content sent in the request body (`POST /v1/files`) over what a request can carry through
    /// API Gateway and Lambda; presigned uploads take up to `FILES_MAX_UPLOAD_BYTES`.
    #[error(
        "content sent in the request body is limited to {limit} bytes (the API Gateway and Lambda payload limits); upload larger files with POST /v1/uploads"
    )]
    ContentTooLarge { limit: u64 },
    /// The body parsed but a field is missing, unknown or of the wrong type.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// A field has a value the API does not accept.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A query or path parameter has a value the API does not accept.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A query parameter the route does not know (the name is the client's text).
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
    /// A listing cursor that this service did not issue for this caller and this query.
    #[error(
        "the cursor is not valid for this query: it was altered, or issued for another query or caller; list again without it"
    )]
    InvalidCursor,
    /// A listing that would read more than the per-request bound to fill its page.
    #[error("{0}")]
    QueryTooBroad(String),
    /// The request reached the function without verified JWT claims (the authorizer is bypassed).
    #[error("missing authorization")]
    Unauthenticated,
    /// The token is valid but carries no usable tenant claim.
    #[error("the token carries no valid tenant claim {claim}")]
    MissingTenant { claim: String },
    /// A claim the API reads (the per-container `files_parents`) has a value it cannot use: it is
    /// refused rather than ignored, since ignoring a limit would widen the token.
    #[error("the token's {claim} claim is not valid: {reason}")]
    InvalidTokenClaim { claim: &'static str, reason: String },
    /// The token is limited to some parents, and the parent a new or moved file would get is not
    /// one of them.
    #[error("this token may only put files into the parents its {claim} claim names")]
    ParentNotPermitted { claim: &'static str },
    /// The token lacks the scope the route needs.
    #[error("this needs the {needed} scope")]
    InsufficientScope { needed: &'static str },
    /// A user tried to replace the content of a file another principal created.
    #[error("only the file's creator, an app or an admin may replace its content")]
    NotFileOwner,
    /// A user tried to complete or abort an upload another principal started (same code as
    /// [`ApiError::NotFileOwner`]: it is the same rule, applied to the upload).
    #[error("only the upload's creator, an app or an admin may complete or abort it")]
    NotUploadOwner,
    /// The current revision cannot be deleted (upload or restore another one first).
    #[error("the current revision cannot be deleted")]
    CurrentRevision,
    /// No such resource for this tenant (also what another tenant's resource looks like).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The file exists but its content is not available yet (still uploading or processing).
    #[error("file is not ready: {status}")]
    FileNotReady { status: String },
    /// The declared size is over the configured limit.
    #[error("file of {size} bytes is over the limit of {limit} bytes")]
    FileTooLarge { size: u64, limit: u64 },
    /// The request body is sent as a media type the route does not read (the `Content-Type` header).
    #[error("{}; send the body as {}", match got {
        Some(got) => format!("a request body of type {got:?} is not accepted"),
        None => "the request has a body but no Content-Type".to_string(),
    }, accepted.join(" or "))]
    UnsupportedMediaType {
        got: Option<String>,
        accepted: &'static [&'static str],
    },
    /// The request body is larger than any valid one can be.
    #[error("the request body of {size} bytes is over the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    /// The declared content type is not in `FILES_ALLOWED_CONTENT_TYPES`.
    #[error("content type {0} is not accepted")]
    UnsupportedContentType(String),
    /// Another live file in the same parent has this name (case-insensitively).
    #[error(
        "a file named like this already exists in this parent; upload with replace: true to add a revision to it"
    )]
    NameConflict { existing_file_id: String },
    /// The upload session is no longer pending (completed, rejected or aborted).
    #[error("the upload is {status}")]
    UploadNotPending { status: &'static str },
    /// The upload's content did not pass the checks.
    #[error("the upload was rejected: {reason}")]
    UploadRejected { reason: String },
    /// `complete` was called before the content landed.
    #[error("the content has not been uploaded yet")]
    UploadIncomplete,
    /// `complete` without a part list, and S3 does not hold every part of the plan yet (same code as
    /// [`ApiError::UploadIncomplete`]; `missing_parts` says which to upload).
    #[error("{} of the upload's parts are not in S3 yet; upload them, then complete again", missing.len())]
    PartsMissing { missing: Vec<u32> },
    /// `part_numbers` names a part the upload does not have: beyond its plan, or any part of a
    /// single-PUT upload (which has one URL and no parts).
    #[error("{}", match part_count {
        Some(count) => format!("part {part} is beyond this upload's {count} parts"),
        None => "this upload is a single PUT, not multipart: it has no parts".to_string(),
    })]
    NoSuchPart { part: u32, part_count: Option<u32> },
    /// S3 no longer knows the multipart upload (the bucket's lifecycle rule aborted it, or it was
    /// aborted concurrently) and nothing landed: the content can never arrive; start a new upload.
    #[error(
        "the multipart upload no longer exists in S3 (expired or aborted) and no content landed; start a new upload"
    )]
    UploadExpired,
    /// The file's thumbnails are still being made.
    #[error("the thumbnail is not ready yet; retry, or ask with ?wait=N")]
    ThumbnailPending,
    /// The multipart part list cannot complete the upload.
    #[error("invalid parts: {0}")]
    InvalidParts(String),
    /// `If-Match` / `if_match` did not match the current state.
    #[error("the file has changed since the ETag or revision given")]
    PreconditionFailed,
    /// Adapter failure or bug. The source is logged, never returned.
    /// DynamoDB or S3 throttled, timed out or could not be reached, or the record kept changing
    /// under concurrent writers: the same request may well succeed in a moment.
    #[error("temporarily unavailable: {0}")]
    Unavailable(#[source] BoxError),

    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

/// How many missing part numbers a `upload_incomplete` problem lists (up to 10,000 could be).
const MISSING_PARTS_SHOWN: usize = 100;

impl ApiError {
    pub fn internal(e: impl Into<BoxError>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        ApiError::Unavailable(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::MalformedMultipart(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidParameter { .. }
            | ApiError::UnknownParameter(_)
            | ApiError::InvalidCursor
            | ApiError::QueryTooBroad(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidBody(_) | ApiError::InvalidField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::MissingTenant { .. }
            | ApiError::InvalidTokenClaim { .. }
            | ApiError::ParentNotPermitted { .. }
            | ApiError::InsufficientScope { .. }
            | ApiError::NotFileOwner
            | ApiError::NotUploadOwner => StatusCode::FORBIDDEN,
            ApiError::CurrentRevision => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::FileNotReady { .. } => StatusCode::CONFLICT,
            ApiError::FileTooLarge { .. } | ApiError::ContentTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedContentType(_) | ApiError::UnsupportedMediaType { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NameConflict { .. }
            | ApiError::UploadNotPending { .. }
            | ApiError::UploadIncomplete
            | ApiError::PartsMissing { .. }
            | ApiError::NoSuchPart { .. } => StatusCode::CONFLICT,
            ApiError::UploadExpired => StatusCode::GONE,
            ApiError::ThumbnailPending => StatusCode::NOT_FOUND,
            ApiError::UploadRejected { .. } | ApiError::InvalidParts(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code; clients switch on this, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::MalformedMultipart(_) => "malformed_multipart",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::InvalidParameter { .. } | ApiError::UnknownParameter(_) => {
                "invalid_parameter"
            }
            ApiError::InvalidCursor => "invalid_cursor",
            ApiError::QueryTooBroad(_) => "query_too_broad",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::MissingTenant { .. } => "missing_tenant",
            ApiError::InvalidTokenClaim { .. } => "invalid_token_claim",
            ApiError::ParentNotPermitted { .. } => "parent_not_permitted",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::NotFileOwner | ApiError::NotUploadOwner => "not_file_owner",
            ApiError::CurrentRevision => "current_revision",
            ApiError::NotFound(_) => "not_found",
            ApiError::FileNotReady { .. } => "file_not_ready",
            ApiError::FileTooLarge { .. } | ApiError::ContentTooLarge { .. } => "file_too_large",
            ApiError::UnsupportedContentType(_) => "unsupported_content_type",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::NameConflict { .. } => "name_conflict",
            ApiError::UploadNotPending { .. } => "upload_not_pending",
            ApiError::UploadRejected { .. } => "upload_rejected",
            ApiError::UploadIncomplete | ApiError::PartsMissing { .. } => "upload_incomplete",
            ApiError::NoSuchPart { .. } => "no_such_part",
            ApiError::UploadExpired => "upload_expired",
            ApiError::ThumbnailPending => "thumbnail_pending",
            ApiError::InvalidParts(_) => "invalid_parts",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::Unavailable(_) => "temporarily_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::MalformedMultipart(_) => "Malformed multipart body",
            ApiError::InvalidBody(_) => "Invalid request body",
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::InvalidParameter { .. } | ApiError::UnknownParameter(_) => {
                "Invalid parameter"
            }
            ApiError::InvalidCursor => "Invalid cursor",
            ApiError::QueryTooBroad(_) => "Query too broad",
            ApiError::Unauthenticated => "Unauthenticated",
            ApiError::MissingTenant { .. } => "No tenant in token",
            ApiError::InvalidTokenClaim { .. } => "Invalid token claim",
            ApiError::ParentNotPermitted { .. } => "Parent not permitted",
            ApiError::InsufficientScope { .. } => "Insufficient scope",
            ApiError::NotFileOwner => "Not the file's owner",
            ApiError::NotUploadOwner => "Not the upload's owner",
            ApiError::CurrentRevision => "Current revision",
            ApiError::NotFound(_) => "Not found",
            ApiError::FileNotReady { .. } => "File not ready",
            ApiError::FileTooLarge { .. } | ApiError::ContentTooLarge { .. } => "File too large",
            ApiError::UnsupportedContentType(_) => "Unsupported content type",
            ApiError::UnsupportedMediaType { .. } => "Unsupported media type",
            ApiError::BodyTooLarge { .. } => "Request body too large",
            ApiError::NameConflict { .. } => "Name conflict",
            ApiError::UploadNotPending { .. } => "Upload not pending",
            ApiError::UploadRejected { .. } => "Upload rejected",
            ApiError::UploadIncomplete | ApiError::PartsMissing { .. } => "Upload incomplete",
            ApiError::NoSuchPart { .. } => "No such part",
            ApiError::UploadExpired => "Upload expired",
            ApiError::ThumbnailPending => "Thumbnail pending",
            ApiError::InvalidParts(_) => "Invalid parts",
            ApiError::PreconditionFailed => "Precondition failed",
            ApiError::Unavailable(_) => "Temporarily unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The detail shown to the client: for internal errors, nothing of the cause.
    fn public_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "The request could not be completed. It has been logged; try again later.".into()
            }
            ApiError::Unavailable(_) => {
                "The service is busy or a dependency did not answer in time. Retry after the \
                 number of seconds in Retry-After."
                    .into()
            }
            other => other.to_string(),
        }
    }

    fn extensions(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        match self {
            ApiError::NameConflict { existing_file_id } => {
                map.insert("existing_file_id".into(), existing_file_id.clone().into());
            }
            ApiError::UploadRejected { reason } => {
                map.insert("reason".into(), reason.clone().into());
            }
            ApiError::InvalidTokenClaim { claim, .. } | ApiError::ParentNotPermitted { claim } => {
                map.insert("claim".into(), (*claim).into());
            }
            ApiError::InsufficientScope { needed } => {
                map.insert("required_scope".into(), (*needed).into());
            }
            ApiError::FileTooLarge { limit, .. } | ApiError::ContentTooLarge { limit } => {
                map.insert("limit".into(), (*limit).into());
            }
            ApiError::BodyTooLarge { limit, .. } => {
                map.insert("limit".into(), (*limit).into());
            }
            // What to send instead (RFC 9110 section 15.5.16 suggests saying so).
            ApiError::UnsupportedMediaType { accepted, .. } => {
                map.insert("accepted".into(), accepted.to_vec().into());
            }
            // Which query parameter to fix.
            ApiError::InvalidParameter { name, .. } => {
                map.insert("parameter".into(), (*name).into());
            }
            ApiError::UnknownParameter(name) => {
                map.insert("parameter".into(), name.clone().into());
            }
            ApiError::InvalidCursor => {
                map.insert("parameter".into(), "cursor".into());
            }
            // The first ones only: a client uploads those and asks again.
            ApiError::PartsMissing { missing } => {
                let shown: Vec<u32> = missing.iter().copied().take(MISSING_PARTS_SHOWN).collect();
                map.insert("missing_parts".into(), shown.into());
            }
            ApiError::NoSuchPart { part, part_count } => {
                map.insert("parameter".into(), "part_numbers".into());
                map.insert("part_number".into(), (*part).into());
                map.insert("part_count".into(), part_count.unwrap_or(0).into());
            }
            _ => {}
        }
        map
    }

    /// Builds the problem+json response; internal errors are logged here, once.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if let ApiError::Internal(source) = &self {
            tracing::error!(error = %source, debug = ?source, "internal error");
        } else if let ApiError::Unavailable(source) = &self {
            tracing::warn!(error = %source, debug = ?source, "temporarily unavailable");
        } else {
            tracing::info!(code = self.code(), detail = %self, "request refused");
        }
        let problem = api_types::Problem {
            problem_type: format!("/problems/{}", self.code()),
            title: self.title().to_string(),
            status: status.as_u16(),
            detail: self.public_detail(),
            code: self.code().to_string(),
            extensions: self.extensions(),
        };
        let body = serde_json::to_string(&problem).unwrap_or_else(|_| "{}".into());
        let mut builder = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/problem+json");
        if status == StatusCode::UNAUTHORIZED {
            builder = builder.header(http::header::WWW_AUTHENTICATE, "Bearer");
        }
        if matches!(
            self,
            ApiError::ThumbnailPending
                | ApiError::UploadIncomplete
                | ApiError::PartsMissing { .. }
                | ApiError::Unavailable(_)
        ) {
            builder = builder.header(http::header::RETRY_AFTER, "1");
        }
        // RFC 5789 section 2.2: a 415 to a PATCH says which patch formats are accepted.
        if let ApiError::UnsupportedMediaType { accepted, .. } = &self {
            let name = if accepted.contains(&"application/merge-patch+json") {
                "accept-patch"
            } else {
                "accept-post"
            };
            builder = builder.header(name, accepted.join(", "));
        }
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(resp: &Response<Body>) -> serde_json::Value {
        match resp.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn transient_store_errors_are_503_with_retry_after_and_permanent_ones_500() {
        let transient: ApiError =
            crate::store::StoreError::Transient("throttled on table files-prod".into()).into();
        let resp = transient.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "1");
        let body = body_json(&resp);
        assert_eq!(body["code"], "temporarily_unavailable");
        assert!(!body.to_string().contains("files-prod"), "{body}");
        let permanent: ApiError =
            crate::store::StoreError::Permanent("ValidationException".into()).into();
        assert_eq!(permanent.into_response().status(), 500);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let resp =
            ApiError::internal("dynamodb: table files-prod throttled at 10.0.0.1").into_response();
        assert_eq!(resp.status(), 500);
        let body = body_json(&resp);
        assert_eq!(body["code"], "internal_error");
        let text = body.to_string();
        assert!(!text.contains("files-prod"), "{text}");
        assert!(!text.contains("10.0.0.1"), "{text}");
    }

    #[test]
    fn problem_has_rfc9457_members_and_content_type() {
        let resp = ApiError::InvalidField {
            field: "name",
            reason: "must not be empty".into(),
        }
        .into_response();
        assert_eq!(resp.status(), 422);
        assert_eq!(
            resp.headers()[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_json(&resp);
        assert_eq!(body["status"], 422);
        assert_eq!(body["code"], "invalid_field");
        assert_eq!(body["type"], "/problems/invalid_field");
        assert!(body["detail"].as_str().unwrap().contains("name"));
    }
}
