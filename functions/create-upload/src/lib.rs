//! `POST /v1/uploads`: declare a file and get a presigned URL to PUT its content straight to S3.
//!
//! The file record is created now, `pending`; the S3 event of the finished upload makes it `ready`
//! (see `process-upload`). The object key is the server's choice, scoped to the tenant: nothing the
//! client sends ends up in it.

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::domain::{FileRecord, FileStatus, UploadSession, UploadStatus, ids, time, validate};
use shared::http::{json_body, json_response, respond};
use shared::principal::Principal;
use shared::storage::UploadConstraints;
use shared::{ApiError, App, keys};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    pub name: String,
    pub size: u64,
    pub content_type: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Hex SHA-256 of the content: S3 refuses a body that does not match.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CreateUploadResponse {
    pub upload_id: String,
    pub file_id: String,
    pub method: &'static str,
    pub url: String,
    /// Send exactly these headers with the PUT: they are part of the signature.
    pub headers: HashMap<String, String>,
    pub expires_at: String,
}

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(create_upload(&app, &req).await)
}

async fn create_upload(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = Principal::from_request(req, &app.config.tenant_claim)?;
    let body: CreateUploadRequest = json_body(req)?;

    let name = validate::file_name(&body.name)?;
    let size = validate::file_size(body.size, app.config.max_upload_bytes)?;
    let content_type = validate::content_type(&body.content_type)?;
    let parent = validate::parent(body.parent.as_deref())?;
    let tags = validate::tags(body.tags.as_deref())?;
    let metadata = validate::metadata(body.metadata.as_ref())?;
    let sha256 = validate::sha256_hex(body.sha256.as_deref())?;

    let file_id = ids::new_id();
    let upload_id = ids::new_id();
    let object_key = keys::object_key(&principal.tenant_id, &file_id, &upload_id);
    let presigned = app
        .objects
        .presign_upload(
            &object_key,
            &UploadConstraints {
                content_type: &content_type,
                size,
                sha256_hex: sha256.as_deref(),
            },
            app.config.upload_url_ttl,
        )
        .await?;

    let now = time::now();
    let file = FileRecord {
        tenant_id: principal.tenant_id.clone(),
        id: file_id.clone(),
        name,
        content_type: content_type.clone(),
        size,
        status: FileStatus::Pending,
        parent,
        tags,
        metadata,
        revision: 0,
        object_key: None,
        sha256: sha256.clone(),
        rejection_reason: None,
        created_at: now,
        created_by: principal.subject.clone(),
        updated_at: now,
        version: 1,
    };
    let session = UploadSession {
        tenant_id: principal.tenant_id.clone(),
        upload_id: upload_id.clone(),
        file_id: file_id.clone(),
        object_key,
        declared_size: size,
        content_type,
        sha256,
        status: UploadStatus::Pending,
        created_by: principal.subject,
        created_at: now,
        expires_at: presigned.expires_at,
    };
    app.files.create_file_with_upload(&file, &session).await?;

    let response = CreateUploadResponse {
        upload_id,
        file_id: file_id.clone(),
        method: "PUT",
        url: presigned.url,
        headers: presigned.headers.into_iter().collect(),
        expires_at: time::format(&presigned.expires_at),
    };
    let mut resp = json_response(http::StatusCode::CREATED, &response)?;
    if let Ok(location) = format!("/v1/files/{file_id}").parse() {
        resp.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(resp)
}
