//! `GET /v1/files`: the caller's files, filtered, ordered and paginated with opaque cursors.
//!
//! Filters (any combination): `parent`, `q` (case-insensitive substring of the name), `tag`,
//! `content_type` (`type/subtype` or `type/*`), `created_by`, `created_from`/`created_to`,
//! `updated_from`/`updated_to` (RFC 3339; from inclusive, to exclusive), `status`, `trashed`
//! (`false` by default, `true`, `all`). `order_by` `created_at|updated_at|name|size`, `-` for
//! descending (default `-created_at`); `limit` 1..100 (25); `cursor` from the previous page;
//! `count_only=true` answers `{count}`; `include=thumbnails` adds each item's presigned `thumbnails`
//! (box size → URL, once they are made), so a gallery gets a whole page of images in one request.
//!
//! Answer: `{items, next_cursor}`. Every page holds `limit` items unless it is the last, whose
//! `next_cursor` is null. Ready files carry a presigned `download_url`. How each query is served
//! (index, key condition, in-memory filters, bounds): `shared::listing` and docs/table-design.md.

use api_types::{FileCount, FileList};
use lambda_http::{Body, Request, RequestExt, Response};
use shared::http::{authorize, json_response, respond};
use shared::links::{Links, with_links};
use shared::listing::{ListQuery, Plan, decode_cursor, encode_cursor};
use shared::principal::Scope;
use shared::{ApiError, App};
use std::sync::Arc;

pub async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
    respond(list_files(&app, &req).await)
}

async fn list_files(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let principal = authorize(req, &app.config, Scope::Read)?;
    let tenant = principal.tenant_id.as_str();
    let params = req.query_string_parameters_ref();
    let mut query = ListQuery::parse(params.into_iter().flat_map(|p| p.iter()))?;
    // A token limited to some parents lists only their files: only their index ranges are read,
    // and a `parent` outside them is an empty page (as another tenant's parent is).
    query.limit_to(principal.parents.as_deref());

    if query.count_only && query.matches_nothing() {
        return no_store(json_response(
            http::StatusCode::OK,
            &FileCount { count: 0 },
        )?);
    }
    if query.count_only {
        let (candidates, stats) = app
            .files
            .list_candidates(&query.candidate_scans(tenant))
            .await?;
        let count = query.count(&candidates);
        tracing::info!(
            count,
            items_read = stats.items_read,
            queries = stats.queries,
            "files counted"
        );
        return no_store(json_response(http::StatusCode::OK, &FileCount { count })?);
    }

    let secret = app.config.cursor_secret.as_ref().ok_or_else(|| {
        ApiError::internal("FILES_CURSOR_SECRET is not set: list-files cannot sign cursors")
    })?;
    let fingerprint = query.fingerprint();
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| decode_cursor(secret.expose(), tenant, &fingerprint, cursor))
        .transpose()?;

    if query.matches_nothing() {
        let empty = FileList {
            items: Vec::new(),
            next_cursor: None,
        };
        return no_store(json_response(http::StatusCode::OK, &empty)?);
    }
    let plan = query.plan(tenant);
    let (page, stats) = match &plan {
        Plan::Stream(scan) => app.files.list_page(&query, scan, after.as_ref()).await?,
        Plan::Merge(scans) => {
            app.files
                .list_page_merged(&query, scans, after.as_ref())
                .await?
        }
        Plan::Sort(scans) => {
            let (candidates, stats) = app.files.list_candidates(scans).await?;
            (
                query.page_from_candidates(candidates, after.as_ref()),
                stats,
            )
        }
    };
    tracing::info!(
        plan = match plan {
            Plan::Stream(_) => "stream",
            Plan::Merge(_) => "merge",
            Plan::Sort(_) => "sort",
        },
        returned = page.items.len(),
        items_read = stats.items_read,
        queries = stats.queries,
        "files listed"
    );

    let mut items = Vec::with_capacity(page.items.len());
    for file in &page.items {
        items.push(
            with_links(
                &app.objects,
                file,
                Links {
                    download: true,
                    // Presigning is local (no S3 request), but three more URLs per item make the
                    // page ~3x larger: only when asked.
                    thumbnails: query.include_thumbnails,
                },
                app.config.download_url_ttl,
            )
            .await?,
        );
    }
    let next_cursor = page
        .next
        .as_ref()
        .map(|position| encode_cursor(secret.expose(), tenant, &fingerprint, position));
    no_store(json_response(
        http::StatusCode::OK,
        &FileList { items, next_cursor },
    )?)
}

/// Listings hold presigned URLs and change all the time: never cached.
fn no_store(mut resp: Response<Body>) -> Result<Response<Body>, ApiError> {
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
