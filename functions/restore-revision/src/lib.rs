//! `POST /v1/files/{file_id}/revisions/{revision}/restore`: make an old revision's content current
//! again as a new revision N+1, keeping all history. The content is copied inside S3 (no re-upload).
//!
//! The restore is an upload whose bytes come from a server-side copy: it gets an upload session and
//! goes through the same checks and the same conditional writes as any upload (`shared::finalize`),
//! so a concurrent upload cannot be lost and the copy's S3 event finds the work done. 201 with the
//! file; `If-Match` is honoured; replacing another principal's file needs an app token or admin.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::{UploadKind, UploadSession, UploadStatus, ids, time};
use shared::finalize::{Outcome, finalize_upload};
use shared::http::{
    authorize, check_if_match, file_id_param, file_response, has_if_match, respond, revision_param,
};
use shared::principal::Scope;
use shared::store::{RevisionPrecondition, StoreError};
use shared::{ApiError, App, keys};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(restore_revision(&app, &req).await)
}

async fn restore_revision(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let file_id = file_id_param(req)?;
    let number = revision_param(req)?;
    let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
    check_if_match(req, &file.etag())?;
    principal.may_replace_content_of(&file.created_by)?;
    let revision = app
        .files
        .find_revision(&principal.tenant_id, &file_id, number)
        .await?
        .ok_or(ApiError::NotFound("revision"))?;

    let now = time::now();
    let upload_id = ids::new_id();
    let session = UploadSession {
        tenant_id: principal.tenant_id.clone(),
        upload_id: upload_id.clone(),
        file_id: file_id.clone(),
        object_key: keys::object_key(&principal.tenant_id, &upload_id),
        declared_size: revision.size,
        content_type: revision.content_type.clone(),
        sha256: revision.sha256.clone(),
        status: UploadStatus::Pending,
        kind: UploadKind::Single,
        creates_file: false,
        // Restoring onto what the client saw: a revision landing first makes this one lose.
        base_revision: Some(file.revision),
        rejection_reason: None,
        created_by: principal.subject.clone(),
        created_at: now,
        expires_at: time::plus(now, app.config.upload_url_ttl),
    };
    let precondition = if has_if_match(req) {
        RevisionPrecondition::AtVersion(file.version)
    } else {
        RevisionPrecondition::Live
    };
    match app
        .files
        .create_revision_upload(&session, precondition)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) if has_if_match(req) => {
            return Err(ApiError::PreconditionFailed);
        }
        Err(StoreError::ConditionFailed { .. }) => return Err(ApiError::NotFound("file")),
        Err(e) => return Err(e.into()),
    }
    app.objects
        .copy(&revision.object_key, &session.object_key)
        .await?;

    match finalize_upload(app, &principal.tenant_id, &upload_id).await? {
        Outcome::Accepted(restored) => {
            let mut resp = file_response(http::StatusCode::CREATED, &restored)?;
            let location = format!("/v1/files/{file_id}/revisions/{}", restored.revision);
            resp.headers_mut().insert(
                http::header::LOCATION,
                location.parse().map_err(ApiError::internal)?,
            );
            Ok(resp)
        }
        // Another revision landed between the read and the copy.
        Outcome::Rejected {
            reason: "revision_conflict",
            ..
        } => Err(ApiError::PreconditionFailed),
        Outcome::Rejected { reason, .. } => Err(ApiError::UploadRejected {
            reason: reason.to_string(),
        }),
        // The copy's S3 event got there first: the restore is done.
        Outcome::Ignored(_) => {
            let restored = app.file_of(&principal, &file_id, Trashed::Include).await?;
            file_response(http::StatusCode::CREATED, &restored)
        }
    }
}
