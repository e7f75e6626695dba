//! `GET /v1/files/{file_id}/content`: 302 to a short-lived presigned GET of the file's content.
//!
//! The bytes never pass through Lambda (6 MB response limit, and no reason to pay for the transfer):
//! S3 serves them, with the file's type and an RFC 6266 `Content-Disposition` set through the
//! presigned response overrides; S3 also serves `Range` requests on that URL.
//! `?disposition=inline|attachment` (default attachment); inline only for passive types
//! (`shared::domain::disposition::INLINE_TYPES`): HTML, SVG, XML, scripts and unknown types are
//! always attachments, since every tenant's files share the bucket's origin. S3 cannot add
//! `X-Content-Type-Options: nosniff` to a presigned GET (its response overrides are the content
//! type, disposition, encoding, language, cache control and expiry), so the type is always the
//! checked one, set through the override. `?revision=N` an older revision (404 if the file has no
//! such revision). A file in the trash answers 404.

use lambda_http::{Body, Request, Response};
use shared::app::Trashed;
use shared::domain::FileStatus;
use shared::domain::disposition::{Disposition, content_disposition, served_disposition};
use shared::http::authorize;
use shared::http::{file_id_param, query_param, redirect, respond};
use shared::principal::Scope;
use shared::storage::DownloadOverrides;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(download_file(&app, &req).await)
}

async fn download_file(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let disposition = match query_param(req, "disposition") {
        None => Disposition::Attachment,
        Some(value) => Disposition::parse(&value).ok_or(ApiError::InvalidParameter {
            name: "disposition",
            reason: "must be inline or attachment".into(),
        })?,
    };
    let revision = match query_param(req, "revision") {
        None => None,
        Some(value) => Some(value.parse::<u32>().ok().filter(|n| *n >= 1).ok_or(
            ApiError::InvalidParameter {
                name: "revision",
                reason: "must be a revision number (1, 2, ...)".into(),
            },
        )?),
    };
    let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
    // The object to serve and its type: the current revision's, or the one asked for.
    let (object_key, content_type) = match revision {
        Some(n) => {
            let revision = app
                .files
                .find_revision(&principal.tenant_id, &file_id, n)
                .await?
                .ok_or(ApiError::NotFound("revision"))?;
            (revision.object_key, revision.content_type)
        }
        None => match (&file.status, &file.object_key) {
            (FileStatus::Ready, Some(key)) => (key.clone(), file.content_type.clone()),
            _ => {
                return Err(ApiError::FileNotReady {
                    status: file.status.as_str().to_string(),
                });
            }
        },
    };
    let presigned = app
        .objects
        .presign_download(
            &object_key,
            &DownloadOverrides {
                content_disposition: &content_disposition(
                    served_disposition(disposition, &content_type),
                    &file.name,
                ),
                content_type: &content_type,
            },
            app.config.download_url_ttl,
        )
        .await?;
    redirect(&presigned.url)
}
