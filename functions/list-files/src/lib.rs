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
//! Answer: `{items, next_cursor}`. A page holds `limit` items unless it is the last, whose
//! `next_cursor` is null, or its items' JSON reached the page's byte budget
//! (`FILES_LIST_PAGE_MAX_BYTES`, 1 MiB): then it ends early, with a cursor. Ready files carry a presigned `download_url`. How each query is served
//! (index, key condition, in-memory filters, bounds): `shared::listing` and docs/table-design.md.

use api_types::{FileCount, FileList};
use lambda_http::{Body, Request, RequestExt, Response};
use shared::http::{authorize, json_response, respond};
use shared::links::{Links, with_links};
use shared::listing::{ListQuery, decode_cursor, encode_cursor};
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
        let (count, stats) = app.files.count_files(&query, tenant).await?;
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
    let (mut page, stats) = app.files.list_files(&query, tenant, after.as_ref()).await?;

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
    // A page ends early rather than outgrow its byte budget (and Lambda's 6 MB response): the
    // cursor then continues right after the last item sent.
    let sizes: Vec<usize> = items
        .iter()
        .map(|item| serde_json::to_vec(item).map_or(usize::MAX, |json| json.len() + 1))
        .collect();
    let kept = page.keep_within_bytes(query.order.field, &sizes, app.config.list_page_max_bytes);
    items.truncate(kept);
    tracing::info!(
        plan = stats.plan,
        returned = items.len(),
        cut_for_bytes = kept < sizes.len(),
        items_read = stats.items_read,
        queries = stats.queries,
        "files listed"
    );

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
