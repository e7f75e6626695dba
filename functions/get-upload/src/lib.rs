//! `GET /v1/uploads/{upload_id}`: where an upload stands, and what it still takes to finish it.
//!
//! The answer holds the session's state (declared name, size, type, status, when the session ends)
//! and, while it is pending, fresh presigned URLs: for a single PUT, the PUT again; for a multipart
//! upload, the parts S3 already holds (number, size, ETag, from ListParts) and a URL for every part
//! still missing. A client that was interrupted, or whose URLs expired, resumes from here: URLs live
//! `FILES_UPLOAD_URL_TTL_SECONDS`, the session as long as the bucket keeps the multipart upload
//! (`shared::domain::upload::session_lifetime`).
//!
//! Why a `GET` that signs, and not a `POST` that signs the part numbers asked for: signing changes
//! nothing (a presigned URL is computed here, without a call to S3, and sending a part twice only
//! replaces it), so the request is safe and idempotent, and resuming needs the state, the parts S3
//! holds and URLs for the rest in one round trip. `?part_numbers=3,7` narrows the signed URLs to
//! those parts: what a client asks when one part's URL expired (Uppy's `signPart`), and what keeps
//! the answer small for uploads of thousands of parts. Without it at most [`MAX_SIGNED_PARTS`]
//! missing parts are signed (a Lambda response is limited to 6 MB; ~600 bytes per URL).
//!
//! Who may ask: the tenant's own upload only (another tenant's is 404, like a missing one), and of
//! those only the creator's, an app's or an admin's (the rule for replacing content), since the
//! URLs let the caller write the content.

use lambda_http::{Body, Request, Response};
use shared::domain::multipart::PartPlan;
use shared::domain::{self, UploadKind, UploadSession, time};
use shared::http::{authorize, json_response, query_param, respond, upload_id_param};
use shared::principal::Scope;
use shared::storage::{StorageError, UploadConstraints};
use shared::{ApiError, App};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most part URLs signed in one answer (the lowest-numbered missing parts first).
pub const MAX_SIGNED_PARTS: usize = 1_000;

pub use api_types::{
    PartUrl, UploadMethod, UploadSessionStatus as UploadStatus, UploadState, UploadedPart,
};

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(get_upload(&app, &req).await)
}

async fn get_upload(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    // Write: the answer carries URLs that upload content.
    let principal = authorize(req, &app.config, Scope::Write)?;
    let upload_id = upload_id_param(req)?;
    let asked = query_param(req, "part_numbers")
        .map(|raw| parse_part_numbers(&raw))
        .transpose()?;
    let session = app.upload_of(&principal, &upload_id).await?;
    principal.may_replace_content_of(&session.created_by)?;
    let name = app
        .files
        .get_file(&session.tenant_id, &session.file_id)
        .await?
        .map(|file| file.name);

    let now = time::now();
    let status = match session.status {
        domain::UploadStatus::Pending if session.expires_at <= now => UploadStatus::Expired,
        domain::UploadStatus::Pending => UploadStatus::Pending,
        domain::UploadStatus::Completed => UploadStatus::Completed,
        domain::UploadStatus::Rejected => UploadStatus::Rejected,
        domain::UploadStatus::Aborted => UploadStatus::Aborted,
    };
    let mut state = UploadState {
        upload_id: session.upload_id.clone(),
        file_id: session.file_id.clone(),
        name,
        size: session.declared_size,
        content_type: session.content_type.clone(),
        sha256: session.sha256.clone(),
        status,
        rejection_reason: session.rejection_reason.clone(),
        creates_file: session.creates_file,
        method: match session.kind {
            UploadKind::Single => UploadMethod::Put,
            UploadKind::Multipart { .. } => UploadMethod::Multipart,
        },
        created_at: time::format(&session.created_at),
        session_expires_at: time::format(&session.expires_at),
        complete_url: format!("/v1/uploads/{upload_id}/complete"),
        expires_at: None,
        url: None,
        headers: None,
        part_size: None,
        part_count: None,
        uploaded_parts: None,
        parts: None,
    };
    if let UploadKind::Multipart {
        part_size,
        part_count,
        ..
    } = session.kind
    {
        state.part_size = Some(part_size);
        state.part_count = Some(part_count);
    }
    if status == UploadStatus::Pending {
        sign_rest(app, &session, asked.as_ref(), &mut state).await?;
    } else if asked.is_some() {
        return Err(ApiError::UploadNotPending {
            status: status.as_str(),
        });
    }
    let mut resp = json_response(http::StatusCode::OK, &state)?;
    // Presigned URLs inside: nothing may keep this answer.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// Fresh URLs for what the pending upload still needs.
async fn sign_rest(
    app: &App,
    session: &UploadSession,
    asked: Option<&BTreeSet<u32>>,
    state: &mut UploadState,
) -> Result<(), ApiError> {
    let ttl = app.config.upload_url_ttl;
    // No URL may outlive its session: S3 drops the multipart upload then.
    let expires_at = time::plus(time::now(), ttl).min(session.expires_at);
    let ttl = (expires_at - time::now())
        .to_std()
        .unwrap_or_default()
        .max(std::time::Duration::from_secs(1));
    state.expires_at = Some(time::format(&expires_at));
    match &session.kind {
        UploadKind::Single => {
            if asked.is_some() {
                let first = asked.and_then(|a| a.first()).copied().unwrap_or(1);
                return Err(ApiError::NoSuchPart {
                    part: first,
                    part_count: None,
                });
            }
            let presigned = app
                .objects
                .presign_upload(
                    &session.object_key,
                    &UploadConstraints {
                        content_type: &session.content_type,
                        size: session.declared_size,
                        sha256_hex: session.sha256.as_deref(),
                    },
                    ttl,
                )
                .await?;
            state.url = Some(presigned.url);
            state.headers = Some(presigned.headers);
        }
        UploadKind::Multipart {
            s3_upload_id,
            part_size,
            part_count,
        } => {
            let plan = PartPlan {
                part_size: *part_size,
                part_count: *part_count,
            };
            if let Some(beyond) = asked.and_then(|a| a.iter().find(|n| **n > *part_count)) {
                return Err(ApiError::NoSuchPart {
                    part: *beyond,
                    part_count: Some(*part_count),
                });
            }
            let uploaded = match app
                .objects
                .list_parts(&session.object_key, s3_upload_id)
                .await
            {
                Ok(uploaded) => uploaded,
                // S3 no longer has the upload (its lifecycle rule aborted it): nothing can finish
                // it. Said, not changed: a GET writes nothing (`complete` records the end).
                Err(StorageError::Refused { code }) if code == "NoSuchUpload" => {
                    state.status = UploadStatus::Expired;
                    state.expires_at = None;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let to_sign = parts_to_sign(&plan, session.declared_size, &uploaded, asked);
            let mut parts = Vec::with_capacity(to_sign.len());
            for part_number in to_sign {
                let size = plan.part_len(session.declared_size, part_number);
                let url = app
                    .objects
                    .presign_part(&session.object_key, s3_upload_id, part_number, size, ttl)
                    .await?;
                parts.push(PartUrl {
                    part_number,
                    url,
                    size,
                });
            }
            state.uploaded_parts = Some(
                uploaded
                    .into_iter()
                    .map(|p| UploadedPart {
                        part_number: p.part_number,
                        size: p.size,
                        etag: p.etag,
                    })
                    .collect(),
            );
            state.parts = Some(parts);
        }
    }
    Ok(())
}

/// The asked-for parts, or else the parts S3 does not hold with their planned size (a part of
/// another length, which S3 would refuse at completion, counts as missing), at most
/// [`MAX_SIGNED_PARTS`].
fn parts_to_sign(
    plan: &PartPlan,
    total: u64,
    uploaded: &[shared::storage::UploadedPart],
    asked: Option<&BTreeSet<u32>>,
) -> Vec<u32> {
    if let Some(asked) = asked {
        return asked.iter().copied().collect();
    }
    (1..=plan.part_count)
        .filter(|n| {
            !uploaded
                .iter()
                .any(|p| p.part_number == *n && p.size == plan.part_len(total, *n))
        })
        .take(MAX_SIGNED_PARTS)
        .collect()
}

/// `3,7,8`: distinct part numbers from 1, at most [`MAX_SIGNED_PARTS`].
fn parse_part_numbers(raw: &str) -> Result<BTreeSet<u32>, ApiError> {
    let invalid = |reason: String| ApiError::InvalidParameter {
        name: "part_numbers",
        reason,
    };
    let mut numbers = BTreeSet::new();
    for item in raw.split(',').map(str::trim) {
        let number: u32 = item
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid(format!("{item:?} is not a part number (1, 2, ...)")))?;
        numbers.insert(number);
    }
    if numbers.len() > MAX_SIGNED_PARTS {
        return Err(invalid(format!(
            "at most {MAX_SIGNED_PARTS} part numbers at a time"
        )));
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, size: u64) -> shared::storage::UploadedPart {
        shared::storage::UploadedPart {
            part_number: n,
            size,
            etag: format!("\"{n}\""),
        }
    }

    #[test]
    fn missing_parts_are_those_s3_lacks_or_holds_at_another_size() {
        let plan = PartPlan {
            part_size: 10,
            part_count: 4,
        };
        // 35 bytes: parts of 10, 10, 10 and 5.
        let uploaded = [part(1, 10), part(3, 7), part(4, 5)];
        assert_eq!(parts_to_sign(&plan, 35, &uploaded, None), vec![2, 3]);
        let asked = BTreeSet::from([1, 4]);
        assert_eq!(
            parts_to_sign(&plan, 35, &uploaded, Some(&asked)),
            vec![1, 4]
        );
    }

    #[test]
    fn part_numbers_are_positive_distinct_and_bounded() {
        assert_eq!(
            parse_part_numbers("3, 1,3").unwrap(),
            BTreeSet::from([1, 3])
        );
        for bad in ["", "0", "-1", "a", "1,,2", "4294967296"] {
            let err = parse_part_numbers(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{bad:?}");
        }
        let many = (1..=1001)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_part_numbers(&many).is_err());
    }
}
