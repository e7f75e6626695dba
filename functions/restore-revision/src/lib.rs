//! `POST /v1/files/{file_id}/revisions/{revision}/restore`: make an old revision's content current
//! again as a new revision N+1, keeping all history. The content is copied inside S3 (no re-upload).
//!
//! The restore is an upload whose bytes come from a server-side copy: it gets an upload session and
//! goes through the same checks and the same conditional writes as any upload (`shared::finalize`),
//! so a concurrent upload cannot be lost and the copy's S3 event finds the work done. 201 with the
//! file and a `Location` naming the new revision, however the race with the copy's S3 event went;
//! `If-Match` is honoured (`*`: the file exists); replacing another principal's file needs an app
//! token or admin. A source revision deleted meanwhile answers 404, never a failed copy's 500.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::{FileRecord, UploadKind, UploadSession, UploadStatus, ids, time};
use shared::finalize::{Effort, Outcome, finalize_upload};
use shared::http::{
    authorize, check_if_match, file_id_param, file_response, has_if_match, respond, revision_param,
};
use shared::principal::Scope;
use shared::storage::StorageError;
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

    // Only an If-Match with the file's ETag pins the restore to the file as read; `*` means "the
    // file exists" (RFC 9110 section 13.1.1), and without If-Match a revision landing meanwhile
    // simply comes before the restored one.
    let pinned = has_if_match(req) && !if_match_is_any(req);
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
        base_revision: pinned.then_some(file.revision),
        rejection_reason: None,
        revision: None,
        created_by: principal.actor(),
        created_at: now,
        expires_at: time::plus(now, app.config.upload_url_ttl),
    };
    let precondition = if pinned {
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
        Err(StoreError::ConditionFailed { .. }) if pinned => {
            return Err(ApiError::PreconditionFailed);
        }
        Err(StoreError::ConditionFailed { .. }) => return Err(ApiError::NotFound("file")),
        Err(e) => return Err(e.into()),
    }
    match app
        .objects
        .copy(&revision.object_key, &session.object_key)
        .await
    {
        Ok(()) => {}
        // `DELETE .../revisions/{n}` removed the source between our read and the copy.
        Err(StorageError::Refused { code }) if code == "NoSuchKey" => {
            give_up(app, &session).await;
            return Err(ApiError::NotFound("revision"));
        }
        Err(e) => {
            give_up(app, &session).await;
            return Err(e.into());
        }
    }

    match finalize_upload(app, &principal.tenant_id, &upload_id, Effort::Bounded).await? {
        Outcome::Accepted(restored) => created(&restored, restored.revision),
        // Another revision landed between the read and the copy (only when pinned).
        Outcome::Rejected {
            reason: "revision_conflict",
            ..
        } => Err(ApiError::PreconditionFailed),
        Outcome::Rejected { reason, .. } => Err(ApiError::UploadRejected {
            reason: reason.to_string(),
        }),
        // A copy whose SHA-256 must be hashed again (a multipart copy): the S3 event does it.
        Outcome::Deferred(file) => {
            let mut resp = created(&file, file.revision + 1)?;
            *resp.status_mut() = http::StatusCode::ACCEPTED;
            Ok(resp)
        }
        Outcome::NotLanded => answer_after_event(app, &session, "copy not visible yet").await,
        // The copy's S3 event got there first (or the file went meanwhile): answer from the
        // session, as the event left it, with the same headers as above.
        Outcome::Orphaned(why) | Outcome::Ignored(why) => {
            answer_after_event(app, &session, why).await
        }
    }
}

/// True when an `If-Match` value is `*` (alone or in a list): then it only asks that the file exists.
fn if_match_is_any(req: &Request) -> bool {
    req.headers()
        .get_all(http::header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| candidate.trim() == "*")
}

/// 201 with the file, its ETag and the restored revision's `Location`.
fn created(file: &FileRecord, revision: u32) -> Result<Response<Body>, ApiError> {
    let mut resp = file_response(http::StatusCode::CREATED, file)?;
    let location = format!("/v1/files/{}/revisions/{revision}", file.id);
    resp.headers_mut().insert(
        http::header::LOCATION,
        location.parse().map_err(ApiError::internal)?,
    );
    Ok(resp)
}

/// The copy failed: the session will never get its object. Mark it aborted so that it does not
/// stay pending until its TTL; a failure here only leaves that (harmless) pending session.
async fn give_up(app: &App, session: &UploadSession) {
    let aborted = UploadSession {
        status: UploadStatus::Aborted,
        ..session.clone()
    };
    if let Err(e) = app.files.abort_upload(&aborted, None).await {
        tracing::warn!(error = %e, upload_id = %session.upload_id, "could not abort a failed restore's session");
    }
}

/// `finalize` did nothing because the S3 event of the copy processed the upload first: what the
/// event decided is in the session.
async fn answer_after_event(
    app: &App,
    session: &UploadSession,
    why: &'static str,
) -> Result<Response<Body>, ApiError> {
    let tenant = &session.tenant_id;
    let now = app
        .files
        .get_upload(tenant, &session.upload_id)
        .await?
        .ok_or_else(|| ApiError::unavailable("restore session vanished"))?;
    let file = app.files.get_file(tenant, &session.file_id).await?;
    match (now.status, file) {
        (UploadStatus::Completed, Some(file)) => {
            // The restored revision is the file's current one unless another landed right after.
            let revision = if file.object_key.as_deref() == Some(session.object_key.as_str()) {
                file.revision
            } else {
                app.files
                    .find_revision_of_upload(tenant, &file.id, &session.upload_id)
                    .await?
                    .map(|r| r.revision)
                    .ok_or(ApiError::NotFound("revision"))?
            };
            created(&file, revision)
        }
        (_, None) => Err(ApiError::NotFound("file")),
        (UploadStatus::Rejected, Some(_))
            if now.rejection_reason.as_deref() == Some("revision_conflict") =>
        {
            Err(ApiError::PreconditionFailed)
        }
        (UploadStatus::Rejected, Some(_)) => Err(ApiError::UploadRejected {
            reason: now.rejection_reason.unwrap_or_else(|| "rejected".into()),
        }),
        (UploadStatus::Aborted, Some(_)) => Err(ApiError::UploadNotPending { status: "aborted" }),
        (UploadStatus::Pending, Some(_)) => Err(ApiError::unavailable(format!(
            "restore still pending after finalize: {why}"
        ))),
    }
}
