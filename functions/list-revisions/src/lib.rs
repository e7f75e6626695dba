//! `GET /v1/files/{file_id}/revisions`: the revisions of a file, oldest first, the current one
//! marked, by pages: `limit` 1..100 (25), `cursor` from the previous page; `{items, next_cursor}`.
//! Rejected uploads never became revisions; deleted revisions are gone.
//!
//! Pages are keyset pages in revision order, with the same HMAC-signed cursors as `GET /v1/files`
//! (`shared::listing`), bound to this file: a file with tens of thousands of revisions never makes an
//! answer larger than a page (Lambda answers at most 6 MB), and each page is one Query.

use api_types::RevisionList;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::app::Trashed;
use shared::http::{authorize, file_id_param, json_response, respond};
use shared::listing::{
    DEFAULT_LIMIT, MAX_CURSOR_LEN, MAX_LIMIT, Position, decode_cursor, encode_cursor,
    revisions_fingerprint,
};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(list_revisions(&app, &req).await)
}

/// The page asked for: how many, and after which cursor.
#[derive(Debug, PartialEq)]
struct PageParams {
    limit: usize,
    cursor: Option<String>,
}

/// `limit` and `cursor`, each at most once; any other parameter is refused, as in `GET /v1/files`,
/// so that a typo never goes unnoticed.
fn page_params<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<PageParams, ApiError> {
    let mut page = PageParams {
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    let (mut seen_limit, mut seen_cursor) = (false, false);
    for (name, value) in params {
        let seen = match name {
            "limit" => &mut seen_limit,
            "cursor" => &mut seen_cursor,
            other => {
                return Err(ApiError::UnknownParameter(other.chars().take(64).collect()));
            }
        };
        if std::mem::replace(seen, true) {
            return Err(ApiError::InvalidParameter {
                name: if name == "limit" { "limit" } else { "cursor" },
                reason: "must be given at most once".into(),
            });
        }
        if name == "limit" {
            page.limit = value
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::InvalidParameter {
                    name: "limit",
                    reason: format!("must be a whole number from 1 to {MAX_LIMIT}"),
                })?;
        } else {
            if value.is_empty() || value.len() > MAX_CURSOR_LEN {
                return Err(ApiError::InvalidCursor);
            }
            page.cursor = Some(value.to_string());
        }
    }
    Ok(page)
}

/// A revision's place in the list: its number (fixed width, so positions sort as numbers) and the
/// file's id.
fn position(file_id: &str, revision: u32) -> Position {
    Position {
        value: format!("{revision:010}"),
        id: file_id.to_string(),
    }
}

async fn list_revisions(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let file_id = file_id_param(req)?;
    let query = req.query_string_parameters_ref();
    let page = page_params(query.into_iter().flat_map(|p| p.iter()))?;
    let secret = app.config.cursor_secret.as_ref().ok_or_else(|| {
        ApiError::internal("FILES_CURSOR_SECRET is not set: list-revisions cannot sign cursors")
    })?;
    let tenant = principal.tenant_id.as_str();
    let fingerprint = revisions_fingerprint(&file_id);
    let after = page
        .cursor
        .as_deref()
        .map(|cursor| {
            let at = decode_cursor(secret.expose(), tenant, &fingerprint, cursor)?;
            match at.value.parse::<u32>() {
                Ok(n) if at.id == file_id => Ok(n),
                _ => Err(ApiError::InvalidCursor),
            }
        })
        .transpose()?;

    let file = app.file_of(&principal, &file_id, Trashed::Exclude).await?;
    let revisions = app
        .files
        .list_revisions_page(tenant, &file_id, after, page.limit)
        .await?;
    let next_cursor = match revisions.items.last() {
        Some(last) if revisions.more => Some(encode_cursor(
            secret.expose(),
            tenant,
            &fingerprint,
            &position(&file_id, last.revision),
        )),
        _ => None,
    };
    let items = revisions
        .items
        .iter()
        .map(|r| r.view(file.revision))
        .collect();
    json_response(http::StatusCode::OK, &RevisionList { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_are_bounded_and_unknown_ones_refused() {
        assert_eq!(
            page_params([]).unwrap(),
            PageParams {
                limit: DEFAULT_LIMIT,
                cursor: None
            }
        );
        assert_eq!(page_params([("limit", "100")]).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert_eq!(
                page_params([("limit", bad)]).unwrap_err().code(),
                "invalid_parameter",
                "{bad:?}"
            );
        }
        assert_eq!(
            page_params([("limit", "1"), ("limit", "2")])
                .unwrap_err()
                .code(),
            "invalid_parameter"
        );
        assert_eq!(
            page_params([("cursor", "")]).unwrap_err().code(),
            "invalid_cursor"
        );
        assert_eq!(
            page_params([("order_by", "x")]).unwrap_err().code(),
            "invalid_parameter"
        );
    }

    #[test]
    fn positions_sort_as_revision_numbers() {
        assert!(position("f", 9).value < position("f", 10).value);
    }
}
