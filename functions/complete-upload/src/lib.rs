//! `POST /v1/uploads/{upload_id}/complete`: finish an upload now.
//!
//! For a multipart upload, `{"parts": [{"part_number", "etag"}]}` completes it in S3. For a single PUT
//! there is nothing to complete: calling it processes the landed content at once instead of waiting
//! for the S3 event. Either way the answer is the file as it is then (200), and calling it again
//! answers the same file: the S3 event, this route and a retry can all run for one upload.

use lambda_http::{Body, Request, Response};
use shared::domain::{UploadKind, UploadSession, UploadStatus};
use shared::finalize::{Effort, Outcome, finalize_upload};
use shared::http::authorize;
use shared::http::{file_response, json_body, respond, upload_id_param};
use shared::principal::Scope;
use shared::retry::back_off;
use shared::storage::{StorageError, UploadedPart};
use shared::{ApiError, App};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use api_types::{CompleteUploadRequest, CompletedPart};

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(complete_upload(&app, &req).await)
}

async fn complete_upload(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let upload_id = upload_id_param(req)?;
    let body: CompleteUploadRequest = match req.body().as_ref().is_empty() {
        true => CompleteUploadRequest { parts: None },
        false => json_body(req)?,
    };
    let session = app.upload_of(&principal, &upload_id).await?;
    principal.may_act_on_upload(&session.created_by)?;

    if session.status == UploadStatus::Pending
        && let UploadKind::Multipart {
            s3_upload_id,
            part_count,
            ..
        } = &session.kind
    {
        let completed = match body.parts.as_deref() {
            Some(parts) => {
                let parts = checked_parts(parts, *part_count)?;
                app.objects
                    .complete_multipart(&session.object_key, s3_upload_id, &parts)
                    .await
            }
            // No list: complete with the parts S3 holds, if they are all there.
            None => match app
                .objects
                .list_parts(&session.object_key, s3_upload_id)
                .await
            {
                Ok(uploaded) => {
                    let parts = parts_from_s3(&uploaded, *part_count)?;
                    app.objects
                        .complete_multipart(&session.object_key, s3_upload_id, &parts)
                        .await
                }
                Err(e) => Err(e),
            },
        };
        match completed {
            Ok(()) => {}
            // S3 no longer knows the upload: either an earlier call completed it (the object is
            // there: carry on), or it was aborted (by the bucket's lifecycle rule, or concurrently)
            // and nothing will ever land: the session must say so instead of staying pending.
            Err(StorageError::Refused { code }) if code == "NoSuchUpload" => {
                if app.objects.head(&session.object_key).await?.is_none() {
                    return upload_gone(app, &session).await;
                }
            }
            Err(StorageError::Refused { code }) => {
                return Err(ApiError::InvalidParts(format!(
                    "S3 refused the part list ({code}): every part must be uploaded, with the ETag its PUT answered"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }

    match finalize_upload(app, &principal.tenant_id, &upload_id, Effort::Bounded).await? {
        Outcome::Accepted(file) => file_response(http::StatusCode::OK, &file),
        // Verifying it takes work that grows with the object: the S3 event does it, and the
        // file's status says how it ended.
        Outcome::Deferred(file) => file_response(http::StatusCode::ACCEPTED, &file),
        Outcome::Rejected { reason, .. } => Err(ApiError::UploadRejected {
            reason: reason.to_string(),
        }),
        Outcome::NotLanded => Err(ApiError::UploadIncomplete),
        Outcome::Orphaned(_) | Outcome::Ignored(_) => answer_for_finished(app, &session).await,
    }
}

/// Nothing was done now: say how the upload stands.
async fn answer_for_finished(
    app: &App,
    before: &UploadSession,
) -> Result<Response<Body>, ApiError> {
    let session = app
        .files
        .get_upload(&before.tenant_id, &before.upload_id)
        .await?
        .ok_or(ApiError::NotFound("upload"))?;
    match session.status {
        UploadStatus::Completed => {
            let file = app
                .files
                .get_file(&session.tenant_id, &session.file_id)
                .await?
                .ok_or(ApiError::NotFound("file"))?;
            file_response(http::StatusCode::OK, &file)
        }
        UploadStatus::Rejected => Err(ApiError::UploadRejected {
            reason: session
                .rejection_reason
                .unwrap_or_else(|| "rejected".into()),
        }),
        // Aborted by its client, or ended because its file was deleted meanwhile.
        UploadStatus::Aborted if is_expired(&session) => Err(ApiError::UploadExpired),
        UploadStatus::Aborted => Err(ApiError::UploadNotPending { status: "aborted" }),
        // Another writer moved it between the two reads; it is finished by now or soon.
        UploadStatus::Pending => Err(ApiError::UploadIncomplete),
    }
}

/// The reason recorded on a session that ended because S3 lost its multipart upload.
const EXPIRED: &str = "upload_expired";

fn is_expired(session: &UploadSession) -> bool {
    session.rejection_reason.as_deref() == Some(EXPIRED)
}

/// A lost race means the session or its file is being written right now: read again after a
/// pause, a few times (as `abort-upload` does).
const MAX_ATTEMPTS: u32 = 5;

/// The multipart upload is gone from S3 and no object landed: end the session as `aborted` (reason
/// `upload_expired`), taking a file that this upload created and that never had content with it,
/// exactly as `DELETE /v1/uploads/{id}` does; then answer 410 `upload_expired`. If the session
/// moved meanwhile (a concurrent abort or completion), answer what it says now.
async fn upload_gone(app: &App, before: &UploadSession) -> Result<Response<Body>, ApiError> {
    for attempt in 0..MAX_ATTEMPTS {
        let session = app
            .files
            .get_upload(&before.tenant_id, &before.upload_id)
            .await?
            .ok_or(ApiError::NotFound("upload"))?;
        if session.status != UploadStatus::Pending {
            return answer_for_finished(app, &session).await;
        }
        let file = app
            .files
            .get_file(&session.tenant_id, &session.file_id)
            .await?;
        let ended = UploadSession {
            status: UploadStatus::Aborted,
            rejection_reason: Some(EXPIRED.to_string()),
            ..session.clone()
        };
        match app.files.abort_upload(&ended, file.as_ref()).await {
            Ok(()) => return Err(ApiError::UploadExpired),
            Err(e) if e.is_condition_failed() || e.is_retryable() => back_off(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "upload kept changing while being ended",
    ))
}

/// Without a part list, the parts are what S3 holds: every part of the plan must be there, or the
/// content has not all been uploaded yet (409, which a client may retry once its PUTs finish).
fn parts_from_s3(
    uploaded: &[UploadedPart],
    part_count: u32,
) -> Result<Vec<(u32, String)>, ApiError> {
    let held: BTreeMap<u32, &str> = uploaded
        .iter()
        .map(|part| (part.part_number, part.etag.as_str()))
        .collect();
    let missing: Vec<u32> = (1..=part_count).filter(|n| !held.contains_key(n)).collect();
    if !missing.is_empty() {
        return Err(ApiError::PartsMissing { missing });
    }
    Ok((1..=part_count)
        .map(|n| (n, held[&n].to_string()))
        .collect())
}

/// S3 wants parts in ascending order, each once; every part of the plan must be there.
fn checked_parts(parts: &[CompletedPart], part_count: u32) -> Result<Vec<(u32, String)>, ApiError> {
    if parts.len() != part_count as usize {
        return Err(ApiError::InvalidParts(format!(
            "expected {part_count} parts, got {}",
            parts.len()
        )));
    }
    let mut checked = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        if part.part_number != index as u32 + 1 {
            return Err(ApiError::InvalidParts(
                "parts must be listed once each, in order, numbered from 1".into(),
            ));
        }
        let etag = part.etag.trim_matches('"');
        if etag.is_empty() || etag.len() > 128 || !etag.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::InvalidParts(format!(
                "part {} has an invalid etag",
                part.part_number
            )));
        }
        checked.push((part.part_number, format!("\"{etag}\"")));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.into(),
        }
    }

    #[test]
    fn parts_must_be_complete_ordered_and_unique() {
        assert_eq!(
            checked_parts(&[part(1, "\"a\""), part(2, "b")], 2).unwrap(),
            vec![(1, "\"a\"".to_string()), (2, "\"b\"".to_string())]
        );
        assert!(checked_parts(&[part(1, "a")], 2).is_err());
        assert!(checked_parts(&[part(2, "a"), part(1, "b")], 2).is_err());
        assert!(checked_parts(&[part(1, "a"), part(1, "b")], 2).is_err());
        assert!(checked_parts(&[part(1, ""), part(2, "b")], 2).is_err());
    }

    fn held(n: u32, etag: &str) -> UploadedPart {
        UploadedPart {
            part_number: n,
            size: 5 << 20,
            etag: etag.into(),
        }
    }

    #[test]
    fn without_a_list_every_planned_part_must_be_in_s3() {
        assert_eq!(
            parts_from_s3(&[held(2, "\"b\""), held(1, "\"a\"")], 2).unwrap(),
            vec![(1, "\"a\"".to_string()), (2, "\"b\"".to_string())]
        );
        match parts_from_s3(&[held(2, "\"b\"")], 3) {
            Err(ApiError::PartsMissing { missing }) => assert_eq!(missing, vec![1, 3]),
            other => panic!("expected parts_missing, got {other:?}"),
        }
    }
}
