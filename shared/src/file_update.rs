//! The read-modify-write of a file record shared by PATCH, trash and restore.
//!
//! Read the file, honour `If-Match`, compute the new record, write it conditional on the version
//! read. A lost race answers 412 when the client gave `If-Match` (it asked for "only if unchanged");
//! without it the change is re-applied to the fresh record, so no concurrent update is lost.

use crate::App;
use crate::app::Trashed;
use crate::domain::{FileRecord, time};
use crate::error::ApiError;
use crate::http::{check_if_match, has_if_match};
use crate::principal::Principal;
use crate::retry::back_off;
use crate::store::UpdateConflict;
use lambda_http::Request;

/// Lost races (without If-Match) are retried from a fresh read this many times, with a growing,
/// jittered pause ([`back_off`]).
const MAX_ATTEMPTS: u32 = 10;

/// Applies `change` to the file and stores the result. `change` returns `None` when the file is
/// already as asked (nothing is written), else the new record; version, `updated_at` and
/// `updated_by` (the caller) are set here.
pub async fn update_file_with(
    app: &App,
    req: &Request,
    principal: &Principal,
    file_id: &str,
    trashed: Trashed,
    change: impl Fn(&FileRecord) -> Result<Option<FileRecord>, ApiError>,
) -> Result<FileRecord, ApiError> {
    for attempt in 0..MAX_ATTEMPTS {
        let file = app.file_of(principal, file_id, trashed).await?;
        check_if_match(req, &file.etag())?;
        let Some(mut next) = change(&file)?.filter(|next| *next != file) else {
            return Ok(file);
        };
        next.version = file.version + 1;
        next.updated_at = time::now();
        next.updated_by = Some(principal.actor());
        let written = match app.files.update_file(&file, &next).await {
            // Two transactions on the same items at once: DynamoDB cancels one. Not a lost race
            // in the ETag sense: try again.
            Err(e) if e.is_retryable() => {
                back_off(attempt).await;
                continue;
            }
            other => other?,
        };
        match written {
            Ok(()) => return Ok(next),
            Err(UpdateConflict::NameTaken) => {
                let holder = app
                    .files
                    .get_name_claim(&principal.tenant_id, next.parent.as_deref(), &next.name)
                    .await?;
                return Err(ApiError::NameConflict {
                    existing_file_id: holder.map(|c| c.file_id).unwrap_or_default(),
                });
            }
            Err(UpdateConflict::Version) if has_if_match(req) => {
                return Err(ApiError::PreconditionFailed);
            }
            Err(UpdateConflict::Version) => back_off(attempt).await,
        }
    }
    Err(ApiError::unavailable(
        "the file kept changing while being updated",
    ))
}
