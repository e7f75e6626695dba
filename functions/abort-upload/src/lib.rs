//! `DELETE /v1/uploads/{upload_id}`: give up an upload. 204, also when it was already aborted.
//!
//! A file that the upload created and that never had content goes with it (its name is free again);
//! a file that already has revisions keeps them. S3 is cleaned after the record says `aborted`, so an
//! S3 event that arrives meanwhile finds the session aborted and deletes what landed.

use lambda_http::{Body, Request, Response};
use shared::domain::{UploadKind, UploadSession, UploadStatus};
use shared::http::authorize;
use shared::http::{no_content, respond, upload_id_param};
use shared::principal::Scope;
use shared::retry::back_off;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(abort_upload(&app, &req).await)
}

/// A lost race means the session or its file changed meanwhile (a transaction conflict: they are
/// being written right now): read again after a pause, a few times.
const MAX_ATTEMPTS: u32 = 5;

async fn abort_upload(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Write)?;
    let upload_id = upload_id_param(req)?;
    for attempt in 0..MAX_ATTEMPTS {
        let session = app.upload_of(&principal, &upload_id).await?;
        principal.may_act_on_upload(&session.created_by)?;
        match session.status {
            UploadStatus::Pending => {}
            UploadStatus::Aborted => return no_content(),
            other => {
                return Err(ApiError::UploadNotPending {
                    status: other.as_str(),
                });
            }
        }
        let file = app
            .files
            .get_file(&session.tenant_id, &session.file_id)
            .await?;
        let aborted = UploadSession {
            status: UploadStatus::Aborted,
            ..session.clone()
        };
        match app.files.abort_upload(&aborted, file.as_ref()).await {
            Ok(()) => {
                clean_up_s3(app, &session).await?;
                return no_content();
            }
            Err(e) if e.is_condition_failed() || e.is_retryable() => back_off(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "upload kept changing while being aborted",
    ))
}

async fn clean_up_s3(app: &App, session: &UploadSession) -> Result<(), ApiError> {
    match &session.kind {
        UploadKind::Multipart { s3_upload_id, .. } => {
            app.objects
                .abort_multipart(&session.object_key, s3_upload_id)
                .await?
        }
        UploadKind::Single => app.objects.delete(&session.object_key).await?,
    }
    Ok(())
}
