//! `POST /v1/files`: a small file in one request, as `multipart/form-data`, instead of the
//! presigned two-step (`POST /v1/uploads`, then a PUT to S3).
//!
//! The form has the content as the part named `content` and the fields of `POST /v1/uploads`:
//! `name`, `parent`, `tags` (one part per tag),
//! `metadata` (a JSON object), `sha256`, `replace` (`true`/`false`), or `file_id` (+ `if_match`)
//! for a new revision. `size` and `content_type` are the content part's length and `Content-Type`.
//! The form becomes a `CreateUploadRequest` and goes through the same declaration
//! (`create_upload::declare_upload`: validation, name claim, replace, ownership, tenant). The
//! function then writes the bytes where the presigned PUT would have, with the same conditions
//! (`storage::put_upload`: `If-None-Match: *`, tagged pending, S3-checked SHA-256), so the S3 event
//! and the processor treat it as any upload; and since the bytes are there it finalizes at once
//! (`shared::finalize`, as `complete` does): the answer is the file, `ready` (201) or refused (422
//! `upload_rejected`). `?wait=N` (at most 10 s) also waits for the thumbnails; the
//! `Thumbnail-Status` header says how they stand then.
//!
//! The size limit is the platform's ([`MAX_CONTENT_BYTES`]); larger files go through
//! `POST /v1/uploads`, which takes up to `FILES_MAX_UPLOAD_BYTES`.

use api_types::CreateUploadRequest;
use api_types::json_input::UniqueMap;
use bytes::Bytes;
use create_upload::{Declared, Transfer, declare_upload};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use shared::domain::{FileRecord, Thumbnails, UploadSession, UploadStatus};
use shared::finalize::{Effort, Outcome, finalize_upload};
use shared::http::{
    LAMBDA_MAX_REQUEST_PAYLOAD_BYTES, authorize, json_response, respond, wait_param,
};
use shared::links::{Links, with_links};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Room kept in Lambda's invocation payload for everything of the event but the body: the headers
/// and the request line, of which API Gateway takes at most 10,240 bytes in all, and which the event
/// repeats and JSON-escapes (`rawPath` and `requestContext.http.path`, `rawQueryString` and
/// `queryStringParameters`, the token's claims beside the `authorization` header), and the fixed
/// members (`requestContext`, about 1 KB). Three times the 10,240 bytes (a 10 KB header block in the
/// headers, its token again as claims, escaping) stays under 64 KiB. A request that fills its
/// 10,240 bytes with a query string of escaped characters (repeated four times over) could still
/// push a form at the content limit past Lambda's limit: API Gateway then refuses it itself.
pub const EVENT_ENVELOPE_MARGIN_BYTES: usize = 64 * 1024;

/// The largest `multipart/form-data` body: base64 makes 4 bytes of every 3, and the encoded body
/// must fit in Lambda's 6,291,456 bytes beside the envelope: (6,291,456 - 65,536) / 4 * 3 =
/// 4,669,440 bytes. (API Gateway's 10 MB would allow more: Lambda's limit is the one that binds.)
pub const MAX_FORM_BODY_BYTES: usize =
    (LAMBDA_MAX_REQUEST_PAYLOAD_BYTES - EVENT_ENVELOPE_MARGIN_BYTES) / 4 * 3;

/// Room kept in the body for the form's framing and fields: at their limits the field values take
/// about 12.5 KB (name 1,020 bytes, parent 1,024, 20 tags of 256, metadata at most 5.2 KB as JSON
/// even with every character `\u`-escaped, sha256, file_id, if_match, replace), and the boundaries
/// and part headers of its at most 29 parts about 5 KB (170 bytes each): 17.5 KB of 32 KiB.
pub const FIELDS_MARGIN_BYTES: usize = 32 * 1024;

/// The largest content `POST /v1/files` takes: 4,669,440 - 32,768 = 4,636,672 bytes (4.42 MiB).
pub const MAX_CONTENT_BYTES: u64 = (MAX_FORM_BODY_BYTES - FIELDS_MARGIN_BYTES) as u64;

// The largest form, base64-encoded, fits in one invocation beside the envelope margin, and API
// Gateway lets it through: checked when this compiles.
const _: () = assert!(
    MAX_FORM_BODY_BYTES.div_ceil(3) * 4 + EVENT_ENVELOPE_MARGIN_BYTES
        <= LAMBDA_MAX_REQUEST_PAYLOAD_BYTES
);
const _: () = assert!(MAX_FORM_BODY_BYTES <= shared::http::API_GATEWAY_MAX_PAYLOAD_BYTES);

/// The largest value of a field other than the content (the largest valid one, `metadata`, is
/// about 4 KB as JSON).
pub const MAX_FIELD_BYTES: u64 = 16 * 1024;

/// The media type of the body.
pub const ACCEPTED_BODY_TYPES: &[&str] = &["multipart/form-data"];

/// The header that says how the thumbnails stand when the answer is sent.
pub const THUMBNAIL_STATUS_HEADER: &str = "thumbnail-status";

const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(create_file(&app, &req).await)
}

async fn create_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let boundary = form_boundary(req)?;
    let wait = wait_param(req)?;
    let form = read_form(body_bytes(req), boundary).await?;
    let (declaration, content) = form.into_declaration()?;

    let Declared { session, .. } =
        declare_upload(app, &principal, &declaration, Transfer::InRequest).await?;
    if let Err(e) = app
        .objects
        .put_upload(&session.object_key, content, &session.content_type)
        .await
    {
        abandon(app, &session).await;
        return Err(e.into());
    }

    let file = match finalize_upload(
        app,
        &principal.tenant_id,
        &session.upload_id,
        Effort::Bounded,
    )
    .await?
    {
        Outcome::Accepted(file) => *file,
        Outcome::Rejected { reason, .. } => {
            return Err(ApiError::UploadRejected {
                reason: reason.to_string(),
            });
        }
        // Not expected (S3 reports the checksum of a single PUT), but if the checks were left to
        // the S3 event, the file's status will say how it ended.
        Outcome::Deferred(file) => return answer(app, &file, StatusCode::ACCEPTED).await,
        Outcome::NotLanded => {
            return Err(ApiError::unavailable(
                "the content was written but S3 does not show it yet",
            ));
        }
        // The S3 event got there first.
        Outcome::Orphaned(_) | Outcome::Ignored(_) => processed_elsewhere(app, &session).await?,
    };
    let file = wait_for_thumbnails(app, file, wait).await?;
    answer(app, &file, StatusCode::CREATED).await
}

/// The boundary of a `multipart/form-data` body: 415 for another media type, 400 without one.
fn form_boundary(req: &Request) -> Result<String, ApiError> {
    let refused = |got: Option<String>| ApiError::UnsupportedMediaType {
        got,
        accepted: ACCEPTED_BODY_TYPES,
    };
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| refused(None))?
        .to_str()
        .map_err(|_| refused(Some("(not visible ASCII)".into())))?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(refused(Some(value.chars().take(100).collect())));
    }
    multer::parse_boundary(value).map_err(|_| {
        ApiError::MalformedMultipart(
            "the Content-Type multipart/form-data needs a boundary parameter".into(),
        )
    })
}

/// The body as API Gateway passed it: binary bodies come base64-encoded (`isBase64Encoded`) and
/// lambda_http has decoded them.
fn body_bytes(req: &Request) -> Bytes {
    match req.body() {
        Body::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
        Body::Binary(bytes) => Bytes::copy_from_slice(bytes),
        _ => Bytes::new(),
    }
}

/// The parts a form may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Content,
    Name,
    Parent,
    Tags,
    Metadata,
    Sha256,
    Replace,
    FileId,
    IfMatch,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::Content,
        Field::Name,
        Field::Parent,
        Field::Tags,
        Field::Metadata,
        Field::Sha256,
        Field::Replace,
        Field::FileId,
        Field::IfMatch,
    ];

    /// The part's name, which is also the `CreateUploadRequest` field it fills.
    fn name(self) -> &'static str {
        match self {
            Field::Content => "content",
            Field::Name => "name",
            Field::Parent => "parent",
            Field::Tags => "tags",
            Field::Metadata => "metadata",
            Field::Sha256 => "sha256",
            Field::Replace => "replace",
            Field::FileId => "file_id",
            Field::IfMatch => "if_match",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The content part. Its `filename` is not the file's name: `name` is, as in `POST /v1/uploads`
/// (a client that sends the file's own name sends it twice, as `curl -F` does).
struct Content {
    bytes: Bytes,
    content_type: Option<String>,
}

/// A parsed form: the content and the other fields as JSON values of `CreateUploadRequest`.
#[derive(Default)]
struct Form {
    content: Option<Content>,
    fields: Map<String, Value>,
    tags: Vec<Value>,
}

impl Form {
    /// The declaration the form makes (what `POST /v1/uploads` would have been sent), and the
    /// content. Deserialized into the one request type, so the fields mean the same on both routes.
    fn into_declaration(self) -> Result<(CreateUploadRequest, Vec<u8>), ApiError> {
        let Form {
            content,
            mut fields,
            tags,
        } = self;
        let content = content.ok_or_else(|| {
            ApiError::InvalidBody(
                "the form has no content part: send the file as the part named content".into(),
            )
        })?;
        fields.insert("size".into(), Value::from(content.bytes.len() as u64));
        fields.insert(
            "content_type".into(),
            Value::from(
                content
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
            ),
        );
        if !tags.is_empty() {
            fields.insert("tags".into(), Value::Array(tags));
        }
        let declaration = serde_json::from_value(Value::Object(fields))
            .map_err(|e| ApiError::InvalidBody(e.to_string()))?;
        Ok((declaration, content.bytes.to_vec()))
    }
}

/// Parses the form with multer, within the limits: the content part up to [`MAX_CONTENT_BYTES`]
/// (413 `file_too_large` above), other parts up to [`MAX_FIELD_BYTES`]. Unknown parts, a second
/// content part or a repeated field are 422 `invalid_body`; a body that is not a well-formed form
/// 400 `malformed_multipart`.
async fn read_form(body: Bytes, boundary: String) -> Result<Form, ApiError> {
    if body.len() > MAX_FORM_BODY_BYTES {
        return Err(ApiError::ContentTooLarge {
            limit: MAX_CONTENT_BYTES,
        });
    }
    let limits = multer::SizeLimit::new()
        .whole_stream(MAX_FORM_BODY_BYTES as u64)
        .per_field(MAX_FIELD_BYTES)
        .for_field(Field::Content.name(), MAX_CONTENT_BYTES);
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::with_constraints(
        stream,
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut form = Form::default();
    while let Some(part) = multipart.next_field().await.map_err(malformed)? {
        let name = part.name().ok_or_else(|| {
            ApiError::InvalidBody(
                "every part needs a name (Content-Disposition: form-data; name=\"...\")".into(),
            )
        })?;
        let field = Field::from_name(name).ok_or_else(|| {
            let shown: String = name.chars().take(64).collect();
            ApiError::InvalidBody(format!(
                "unknown field {shown:?}; the form takes {}",
                Field::ALL.map(Field::name).join(", ")
            ))
        })?;
        if field == Field::Content {
            if form.content.is_some() {
                return Err(ApiError::InvalidBody(
                    "the form has two content parts: send one file per request".into(),
                ));
            }
            let content_type = part.content_type().map(|m| m.to_string());
            let bytes = part.bytes().await.map_err(|e| part_error(e, field))?;
            form.content = Some(Content {
                bytes,
                content_type,
            });
            continue;
        }
        let bytes = part.bytes().await.map_err(|e| part_error(e, field))?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::InvalidField {
            field: field.name(),
            reason: "must be UTF-8 text".into(),
        })?;
        if field == Field::Tags {
            form.tags.push(Value::from(text));
            continue;
        }
        if form.fields.contains_key(field.name()) {
            return Err(ApiError::InvalidBody(format!(
                "the field {} is given twice",
                field.name()
            )));
        }
        form.fields
            .insert(field.name().into(), field_value(field, text)?);
    }
    Ok(form)
}

/// A text part as the JSON value the declaration's field takes.
fn field_value(field: Field, text: String) -> Result<Value, ApiError> {
    match field {
        Field::Replace => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(ApiError::InvalidField {
                field: "replace",
                reason: "must be true or false".into(),
            }),
        },
        // Read as a map with unique keys, as in a JSON body.
        Field::Metadata => serde_json::from_str::<UniqueMap<String>>(&text)
            .map(|map| Value::Object(map.0.into_iter().map(|(k, v)| (k, v.into())).collect()))
            .map_err(|e| ApiError::InvalidField {
                field: "metadata",
                reason: format!("must be a JSON object of strings ({e})"),
            }),
        _ => Ok(Value::from(text)),
    }
}

/// Reading a part failed: over its limit, or the body ended inside it.
fn part_error(e: multer::Error, field: Field) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } if field == Field::Content => {
            ApiError::ContentTooLarge {
                limit: MAX_CONTENT_BYTES,
            }
        }
        multer::Error::FieldSizeExceeded { limit, .. } => ApiError::InvalidField {
            field: field.name(),
            reason: format!("is over {limit} bytes"),
        },
        other => malformed(other),
    }
}

fn malformed(e: multer::Error) -> ApiError {
    match e {
        // The content is what makes a body big.
        multer::Error::StreamSizeExceeded { .. } => ApiError::ContentTooLarge {
            limit: MAX_CONTENT_BYTES,
        },
        other => ApiError::MalformedMultipart(other.to_string()),
    }
}

/// The content could not be written: end the session now (as `DELETE /v1/uploads/{id}` would), so
/// that a new file's name is free for the retry instead of held by a pending file for a day. Best
/// effort: the session's TTL ends it anyway, and if the bytes did land, the S3 event finds the
/// session aborted and deletes them.
async fn abandon(app: &App, session: &UploadSession) {
    let file = match app
        .files
        .get_file(&session.tenant_id, &session.file_id)
        .await
    {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the file of an abandoned upload");
            return;
        }
    };
    let aborted = UploadSession {
        status: UploadStatus::Aborted,
        ..session.clone()
    };
    if let Err(e) = app.files.abort_upload(&aborted, file.as_ref()).await {
        tracing::warn!(error = %e, "could not end an abandoned upload");
    }
}

/// The S3 event processed the upload before this request did: answer what it decided.
async fn processed_elsewhere(app: &App, session: &UploadSession) -> Result<FileRecord, ApiError> {
    let now = app
        .files
        .get_upload(&session.tenant_id, &session.upload_id)
        .await?
        .ok_or(ApiError::NotFound("upload"))?;
    match now.status {
        UploadStatus::Completed => app
            .files
            .get_file(&now.tenant_id, &now.file_id)
            .await?
            .ok_or(ApiError::NotFound("file")),
        UploadStatus::Rejected => Err(ApiError::UploadRejected {
            reason: now.rejection_reason.unwrap_or_else(|| "rejected".into()),
        }),
        // The file was deleted while its content was being written.
        UploadStatus::Aborted => Err(ApiError::NotFound("file")),
        UploadStatus::Pending => Err(ApiError::unavailable(
            "the upload is being processed concurrently",
        )),
    }
}

/// Polls the file until its thumbnails are no longer pending or `wait` has passed.
async fn wait_for_thumbnails(
    app: &App,
    mut file: FileRecord,
    wait: Duration,
) -> Result<FileRecord, ApiError> {
    let deadline = Instant::now() + wait;
    while file.thumbnails == Thumbnails::Pending {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        match app.files.get_file(&file.tenant_id, &file.id).await? {
            Some(current) => file = current,
            // Deleted meanwhile: answer what was created.
            None => break,
        }
    }
    Ok(file)
}

/// The file with its links (as `GET /v1/files/{id}` answers it), its ETag, `Location` and
/// `Thumbnail-Status`.
async fn answer(
    app: &App,
    file: &FileRecord,
    status: StatusCode,
) -> Result<Response<Body>, ApiError> {
    let links = Links {
        download: true,
        thumbnails: true,
    };
    let body = with_links(&app.objects, file, links, app.config.download_url_ttl).await?;
    let mut resp = json_response(status, &body)?;
    let headers = resp.headers_mut();
    headers.insert(
        header::LOCATION,
        format!("/v1/files/{}", file.id)
            .parse()
            .map_err(ApiError::internal)?,
    );
    headers.insert(
        header::ETAG,
        file.etag().parse().map_err(ApiError::internal)?,
    );
    headers.insert(
        THUMBNAIL_STATUS_HEADER,
        // `ready` once made, `none` when there will be none, `pending` when the wait ran out.
        HeaderValue::from_static(file.thumbnails.status().0.as_str()),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_add_up_to_lambdas_payload() {
        assert_eq!(MAX_FORM_BODY_BYTES, 4_669_440);
        assert_eq!(MAX_CONTENT_BYTES, 4_636_672);
    }

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut body = Vec::new();
        for (name, file_name, value) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            match file_name {
                Some(f) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body.into()
    }

    async fn parse(body: Bytes) -> Result<(CreateUploadRequest, Vec<u8>), ApiError> {
        read_form(body, "XyZ".into()).await?.into_declaration()
    }

    #[tokio::test]
    async fn a_form_becomes_the_declaration_of_post_uploads() {
        let (declaration, content) = parse(form(&[
            ("name", None, b"hello.txt"),
            ("tags", None, b"a"),
            ("content", Some("hello.txt"), b"hello"),
            ("metadata", None, br#"{"k": "v"}"#),
            ("tags", None, b"b"),
            ("replace", None, b"true"),
        ]))
        .await
        .unwrap();
        assert_eq!(content, b"hello");
        assert_eq!(declaration.name.as_deref(), Some("hello.txt"));
        assert_eq!(declaration.size, 5);
        assert_eq!(declaration.content_type, "text/plain");
        assert_eq!(declaration.tags, Some(vec!["a".into(), "b".into()]));
        assert_eq!(declaration.metadata.unwrap()["k"], "v");
        assert!(declaration.replace);
    }

    /// `events/create-file.json` (for `sam local invoke` and `cargo lambda invoke`) is a form this
    /// function reads, as the Lambda runtime hands it over (base64 body decoded by lambda_http).
    #[tokio::test]
    async fn the_fixture_event_is_a_form_it_reads() {
        let fixture = include_str!("../../../events/create-file.json");
        let event: lambda_http::request::LambdaRequest = serde_json::from_str(fixture).unwrap();
        let req: Request = event.into();
        assert!(
            matches!(req.body(), Body::Binary(_)),
            "base64 bodies arrive decoded"
        );
        let boundary = form_boundary(&req).unwrap();
        assert_eq!(wait_param(&req).unwrap(), Duration::from_secs(5));
        let form = read_form(body_bytes(&req), boundary).await.unwrap();
        let (declaration, content) = form.into_declaration().unwrap();
        assert_eq!(content, b"hello, files\n");
        assert_eq!(declaration.name.as_deref(), Some("hello.txt"));
        assert_eq!(declaration.parent.as_deref(), Some("case-42"));
        assert_eq!(declaration.content_type, "text/plain");
        assert_eq!(declaration.metadata.unwrap()["source"], "fixture");
    }

    #[tokio::test]
    async fn malformed_forms_have_stable_codes() {
        let cases: Vec<(&str, Bytes, &str)> = vec![
            ("no content", form(&[("name", None, b"a")]), "invalid_body"),
            (
                "two contents",
                form(&[("content", Some("a"), b"1"), ("content", Some("b"), b"2")]),
                "invalid_body",
            ),
            (
                "unknown field",
                form(&[("content", Some("a"), b"1"), ("size", None, b"1")]),
                "invalid_body",
            ),
            (
                "repeated field",
                form(&[
                    ("content", Some("a"), b"1"),
                    ("name", None, b"x"),
                    ("name", None, b"y"),
                ]),
                "invalid_body",
            ),
            (
                "duplicate metadata key",
                form(&[
                    ("content", Some("a"), b"1"),
                    ("metadata", None, br#"{"k": "1", "k": "2"}"#),
                ]),
                "invalid_field",
            ),
            (
                "bad replace",
                form(&[("content", Some("a"), b"1"), ("replace", None, b"yes")]),
                "invalid_field",
            ),
            (
                "field over its limit",
                form(&[
                    ("content", Some("a"), b"1"),
                    ("name", None, &[b'n'; 20_000]),
                ]),
                "invalid_field",
            ),
            (
                "truncated",
                Bytes::from_static(
                    b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nabc",
                ),
                "malformed_multipart",
            ),
            (
                "not a form",
                Bytes::from_static(b"hello"),
                "malformed_multipart",
            ),
        ];
        for (case, body, code) in cases {
            let err = parse(body)
                .await
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            assert_eq!(err.code(), code, "{case}: {err}");
        }
    }
}
