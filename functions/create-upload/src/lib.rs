//! `POST /v1/uploads`: declare content and get presigned URLs to send it straight to S3.
//!
//! - A new file: `name` (+ `parent`, `tags`, `metadata`). The name is claimed now, so of two
//!   concurrent uploads of one name exactly one gets it; the other gets 409 `name_conflict`, unless
//!   it says `replace: true`, which makes it a new revision of the file that holds the name.
//! - A new revision of a file: `file_id`, optionally `if_match` (the file's ETag): then the upload
//!   only lands if no other revision landed first.
//!
//! Below `FILES_MULTIPART_THRESHOLD_BYTES` the answer is one presigned PUT; from there on, S3
//! multipart with one presigned URL per part, finished by `POST /v1/uploads/{id}/complete`.
//! The object key is the server's choice, scoped to the tenant: nothing the client sends is in it.
//! The file record is `pending` until the S3 event (see `process-upload`) or `complete` processes it.

use lambda_http::{Body, Request, Response};
use shared::domain::multipart::{PartPlan, plan_parts};
use shared::domain::{
    FileRecord, FileStatus, Thumbnails, UploadKind, UploadSession, UploadStatus, ids, time,
    validate,
};
use shared::http::authorize;
use shared::http::{json_body, json_response, respond};
use shared::principal::{Principal, Scope};
use shared::storage::UploadConstraints;
use shared::store::{RevisionPrecondition, StoreError};
use shared::{ApiError, App, keys};
use std::sync::Arc;

pub use api_types::{CreateUploadRequest, CreateUploadResponse, PartUrl, UploadMethod};

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(create_upload(&app, &req).await)
}

/// What the upload will become.
enum Target {
    NewFile(Box<FileRecord>),
    NewRevision {
        file: Box<FileRecord>,
        precondition: RevisionPrecondition,
    },
}

async fn create_upload(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let body: CreateUploadRequest = json_body(req)?;
    let Declared {
        session,
        creates_file,
        plan,
        urls_expire_at: expires_at,
    } = declare_upload(app, &principal, &body, Transfer::Presigned).await?;
    let (upload_id, file_id, object_key) = (
        session.upload_id.clone(),
        session.file_id.clone(),
        session.object_key.clone(),
    );
    let (kind, size, content_type, sha256) = (
        session.kind.clone(),
        session.declared_size,
        session.content_type.clone(),
        session.sha256.clone(),
    );
    let session_expires_at = session.expires_at;

    let response = match (&kind, plan) {
        (UploadKind::Single, _) => {
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
            CreateUploadResponse {
                upload_id: upload_id.clone(),
                file_id,
                creates_file,
                method: UploadMethod::Put,
                url: Some(presigned.url),
                headers: Some(presigned.headers.into_iter().collect()),
                part_size: None,
                parts: None,
                complete_url: format!("/v1/uploads/{upload_id}/complete"),
                expires_at: time::format(&expires_at),
                session_expires_at: Some(time::format(&session_expires_at)),
            }
        }
        (UploadKind::Multipart { s3_upload_id, .. }, Some(plan)) => CreateUploadResponse {
            upload_id: upload_id.clone(),
            file_id,
            creates_file,
            method: UploadMethod::Multipart,
            url: None,
            headers: None,
            part_size: Some(plan.part_size),
            parts: Some(part_urls(app, &object_key, s3_upload_id, size, plan).await?),
            complete_url: format!("/v1/uploads/{upload_id}/complete"),
            expires_at: time::format(&expires_at),
            session_expires_at: Some(time::format(&session_expires_at)),
        },
        (UploadKind::Multipart { .. }, None) => {
            unreachable!("a multipart upload always has a plan")
        }
    };
    let mut resp = json_response(http::StatusCode::CREATED, &response)?;
    if let Ok(location) = format!("/v1/files/{}", response.file_id).parse() {
        resp.headers_mut().insert(http::header::LOCATION, location);
    }
    Ok(resp)
}

/// How the content of a declared upload will arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Through presigned URLs: one PUT, or S3 multipart from `FILES_MULTIPART_THRESHOLD_BYTES` on.
    Presigned,
    /// In the request that declares it (`POST /v1/files`): the function writes it with one PUT.
    InRequest,
}

/// A stored upload session (and, for a new file, the pending file with its name claim).
pub struct Declared {
    pub session: UploadSession,
    /// True when the upload creates the file; false when it adds a revision (`file_id`, or
    /// `replace` on a taken name).
    pub creates_file: bool,
    /// The part plan of a multipart upload.
    pub plan: Option<PartPlan>,
    /// When the presigned URLs of this declaration stop working.
    pub urls_expire_at: time::Timestamp,
}

/// Validates a declaration and stores its upload session: the rules of `POST /v1/uploads`, also
/// applied by `POST /v1/files`, whose content comes in the request (the session, the object key and
/// what happens when the object lands are the same: `shared::finalize`).
pub async fn declare_upload(
    app: &App,
    principal: &Principal,
    body: &CreateUploadRequest,
    transfer: Transfer,
) -> Result<Declared, ApiError> {
    let size = validate::file_size(body.size, app.config.max_upload_bytes)?;
    let content_type = validate::content_type(&body.content_type)?;
    if !validate::content_type_allowed(&content_type, &app.config.allowed_content_types) {
        return Err(ApiError::UnsupportedContentType(content_type));
    }
    let sha256 = validate::sha256_hex(body.sha256.as_deref())?;
    if let Some(if_match) = &body.if_match {
        validate::if_match(if_match)?;
    }
    let now = time::now();
    let upload_id = ids::new_id();
    // The URLs are short-lived; the session lasts as long as S3 keeps the multipart upload, so that
    // `GET /v1/uploads/{id}` can sign fresh URLs after these expired.
    let expires_at = time::plus(now, app.config.upload_url_ttl);
    let session_expires_at = time::plus(
        now,
        shared::domain::upload::session_lifetime(app.config.upload_url_ttl),
    );

    let target = match &body.file_id {
        Some(file_id) => {
            existing_file_target(app, principal, file_id, body.if_match.as_deref(), body).await?
        }
        None => Target::NewFile(Box::new(new_file(
            principal,
            body,
            &content_type,
            size,
            &sha256,
            now,
            session_expires_at,
        )?)),
    };
    let file_id = match &target {
        Target::NewFile(file) => file.id.clone(),
        Target::NewRevision { file, .. } => file.id.clone(),
    };
    let object_key = keys::object_key(&principal.tenant_id, &upload_id);

    // Multipart: S3 must know the upload before parts can be presigned.
    let plan = if transfer == Transfer::Presigned && size >= app.config.multipart_threshold_bytes {
        Some(
            plan_parts(size, app.config.multipart_part_bytes).ok_or(ApiError::FileTooLarge {
                size,
                limit: app.config.max_upload_bytes,
            })?,
        )
    } else {
        None
    };
    let kind = match plan {
        None => UploadKind::Single,
        Some(plan) => UploadKind::Multipart {
            s3_upload_id: app
                .objects
                .create_multipart(&object_key, &content_type)
                .await?,
            part_size: plan.part_size,
            part_count: plan.part_count,
        },
    };

    let mut session = UploadSession {
        tenant_id: principal.tenant_id.clone(),
        upload_id: upload_id.clone(),
        file_id: file_id.clone(),
        object_key: object_key.clone(),
        declared_size: size,
        content_type: content_type.clone(),
        sha256: sha256.clone(),
        status: UploadStatus::Pending,
        kind: kind.clone(),
        creates_file: matches!(target, Target::NewFile(_)),
        base_revision: None,
        rejection_reason: None,
        revision: None,
        created_by: principal.actor(),
        created_at: now,
        expires_at: session_expires_at,
    };
    let stored = store_session(app, principal, body, &mut session, target).await;
    if let (Err(_), UploadKind::Multipart { s3_upload_id, .. }) = (&stored, &kind) {
        // Nothing refers to the S3 upload: do not leave it (and its parts) behind.
        if let Err(e) = app.objects.abort_multipart(&object_key, s3_upload_id).await {
            tracing::warn!(error = %e, "could not abort an unused multipart upload");
        }
    }
    // A `replace` upload joined the file that holds the name (`session.file_id` says which).
    let creates_file = stored?;
    Ok(Declared {
        session,
        creates_file,
        plan,
        urls_expire_at: expires_at,
    })
}

/// The new pending file, from the request's description of it.
fn new_file(
    principal: &Principal,
    body: &CreateUploadRequest,
    content_type: &str,
    size: u64,
    sha256: &Option<String>,
    now: time::Timestamp,
    upload_expires_at: time::Timestamp,
) -> Result<FileRecord, ApiError> {
    let name = body.name.as_deref().ok_or(ApiError::InvalidField {
        field: "name",
        reason: "is required (or give file_id to upload a new revision)".into(),
    })?;
    let parent = validate::parent(body.parent.as_deref())?;
    // A token limited to some parents creates files only in them (403 `parent_not_permitted`).
    principal.may_put_into(parent.as_deref())?;
    Ok(FileRecord {
        tenant_id: principal.tenant_id.clone(),
        id: ids::new_id(),
        name: validate::file_name(name)?,
        content_type: content_type.to_string(),
        size,
        status: FileStatus::Pending,
        parent,
        tags: validate::tags(body.tags.as_deref())?,
        metadata: validate::metadata(body.metadata.as_ref())?,
        revision: 0,
        object_key: None,
        sha256: sha256.clone(),
        rejection_reason: None,
        thumbnails: Thumbnails::Pending,
        // An abandoned first upload takes its file record (and name) with it.
        expires_at: Some(time::plus(
            upload_expires_at,
            std::time::Duration::from_secs(shared::store::UPLOAD_SESSION_GRACE_SECONDS as u64),
        )),
        trashed_at: None,
        created_at: now,
        created_by: principal.actor(),
        updated_at: now,
        updated_by: None,
        version: 1,
    })
}

/// `file_id` names the file; a file in the trash, of another tenant or in a parent a limited token
/// does not name is not found.
async fn existing_file_target(
    app: &App,
    principal: &Principal,
    file_id: &str,
    if_match: Option<&str>,
    body: &CreateUploadRequest,
) -> Result<Target, ApiError> {
    if body.name.is_some()
        || body.parent.is_some()
        || body.tags.is_some()
        || body.metadata.is_some()
        || body.replace
    {
        return Err(ApiError::InvalidBody(
            "with file_id, leave out name, parent, tags, metadata and replace: they describe a new file".into(),
        ));
    }
    if !ids::is_valid_id(file_id) {
        return Err(ApiError::NotFound("file"));
    }
    let file = app
        .files
        .get_file(&principal.tenant_id, file_id)
        .await?
        .filter(|f| principal.may_see(f) && f.trashed_at.is_none())
        .ok_or(ApiError::NotFound("file"))?;
    revision_target(principal, file, if_match)
}

fn revision_target(
    principal: &Principal,
    file: FileRecord,
    if_match: Option<&str>,
) -> Result<Target, ApiError> {
    principal.may_replace_content_of(&file.created_by)?;
    let precondition = match if_match {
        // `*` means "the file exists" (RFC 9110 section 13.1.1), not "as I read it": a revision
        // landing meanwhile does not make this upload lose.
        None | Some("*") => RevisionPrecondition::Live,
        Some(etag) if etag == file.etag() => RevisionPrecondition::AtVersion(file.version),
        Some(_) => return Err(ApiError::PreconditionFailed),
    };
    Ok(Target::NewRevision {
        file: Box::new(file),
        precondition,
    })
}

/// Stores the session (and the new file with its name claim). Returns whether a file was created.
async fn store_session(
    app: &App,
    principal: &Principal,
    body: &CreateUploadRequest,
    session: &mut UploadSession,
    target: Target,
) -> Result<bool, ApiError> {
    let (file, precondition) = match target {
        Target::NewFile(file) => match app.files.create_file_with_upload(&file, session).await {
            Ok(()) => return Ok(true),
            // The name is taken (item 0 is the name claim).
            Err(StoreError::ConditionFailed { item: Some(0) }) => {
                let holder = name_holder(app, &file).await?;
                match holder {
                    Some(existing) if body.replace => {
                        match revision_target(principal, existing, body.if_match.as_deref())? {
                            Target::NewRevision { file, precondition } => (file, precondition),
                            Target::NewFile(_) => unreachable!(),
                        }
                    }
                    Some(existing) => {
                        return Err(ApiError::NameConflict {
                            existing_file_id: existing.id,
                        });
                    }
                    // The holder vanished between the write and the read: the client may retry.
                    None => {
                        return Err(ApiError::unavailable(
                            "name claim changed during upload creation",
                        ));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        },
        Target::NewRevision { file, precondition } => (file, precondition),
    };
    // The upload becomes a revision of `file`.
    session.file_id = file.id.clone();
    session.creates_file = false;
    if let RevisionPrecondition::AtVersion(_) = precondition {
        session.base_revision = Some(file.revision);
    }
    match app
        .files
        .create_revision_upload(session, precondition)
        .await
    {
        Ok(()) => Ok(false),
        Err(StoreError::ConditionFailed { item: Some(0) }) => match precondition {
            RevisionPrecondition::AtVersion(_) => Err(ApiError::PreconditionFailed),
            RevisionPrecondition::Live => Err(ApiError::NotFound("file")),
        },
        Err(e) => Err(e.into()),
    }
}

/// The live file that holds `file`'s name in its parent.
async fn name_holder(app: &App, file: &FileRecord) -> Result<Option<FileRecord>, ApiError> {
    let Some(claim) = app
        .files
        .get_name_claim(&file.tenant_id, file.parent.as_deref(), &file.name)
        .await?
    else {
        return Ok(None);
    };
    Ok(app
        .files
        .get_file(&file.tenant_id, &claim.file_id)
        .await?
        .filter(|f| f.trashed_at.is_none()))
}

async fn part_urls(
    app: &App,
    object_key: &str,
    s3_upload_id: &str,
    size: u64,
    plan: PartPlan,
) -> Result<Vec<PartUrl>, ApiError> {
    let mut parts = Vec::with_capacity(plan.part_count as usize);
    for part_number in 1..=plan.part_count {
        let part_len = plan.part_len(size, part_number);
        let url = app
            .objects
            .presign_part(
                object_key,
                s3_upload_id,
                part_number,
                part_len,
                app.config.upload_url_ttl,
            )
            .await?;
        parts.push(PartUrl {
            part_number,
            url,
            size: part_len,
        });
    }
    Ok(parts)
}
