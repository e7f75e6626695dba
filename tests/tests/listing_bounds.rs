//! Listings stay bounded whatever the tenant holds, through the real local stack:
//! - trashed and live files are indexed in partitions of their own, so neither listing reads the
//!   other's items (many trashed files newer than the live ones once made a plain `GET /v1/files`
//!   read all of them first, and answer `query_too_broad` past 5,000);
//! - a page ends early, with a cursor, before its JSON passes the page byte budget
//!   (`FILES_LIST_PAGE_MAX_BYTES`, 1 MiB), and the walk still returns every file once.

use futures::StreamExt;
use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, assert_matches_schema};
use reqwest::Method;
use serde_json::{Value, json};
use shared::listing::ListQuery;

async fn list(t: &TestStack, token: &str, query: &str) -> Value {
    let (status, body) = t
        .call(Method::GET, token, &format!("/v1/files?{query}"), None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Every page of `query`, following `next_cursor`; the ids in the order returned.
async fn walk(t: &TestStack, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_query = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_string(),
        };
        let page = list(t, token, &page_query).await;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

/// Index items one listing request reads (the store's own count, as list-files logs it).
async fn items_read(t: &TestStack, pairs: &[(&str, &str)]) -> usize {
    let query = ListQuery::parse(pairs.iter().copied()).unwrap();
    let (_, stats) = t
        .stack
        .app
        .files
        .list_files(&query, "acme", None)
        .await
        .unwrap();
    stats.items_read
}

async fn count_read(t: &TestStack, pairs: &[(&str, &str)]) -> (usize, usize) {
    let query = ListQuery::parse(pairs.iter().copied()).unwrap();
    let (count, stats) = t.stack.app.files.count_files(&query, "acme").await.unwrap();
    (count, stats.items_read)
}

/// Runs `tasks` a few at a time (a test stack on a busy 2-core machine answers a burst of 120
/// transactions of 23 items each with 503s), in the order given.
async fn in_turn<T>(tasks: impl Iterator<Item = impl Future<Output = T>>) -> Vec<T> {
    futures::stream::iter(tasks).buffered(8).collect().await
}

/// Declares a file (`POST /v1/uploads`, no content: a pending file is listed like any other).
async fn declare(t: &TestStack, token: &str, body: Value) -> String {
    let (status, upload) = t.create_upload(token, &body).await;
    assert_eq!(status, 201, "{upload}");
    upload["file_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn trashed_and_live_files_are_listed_from_their_own_partitions() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    const LIVE: usize = 6;
    const TRASHED: usize = 40;

    // GIVEN 6 live files, then 40 newer ones that went to the trash, all tagged "t" in "case-1"
    let mut live = Vec::new();
    for i in 0..LIVE {
        live.push(
            declare(
                &t,
                &token,
                json!({"name": format!("live-{i}.txt"), "size": 3, "content_type": "text/plain",
                       "tags": ["t"], "parent": "case-1"}),
            )
            .await,
        );
    }
    let trashed: Vec<String> = in_turn((0..TRASHED).map(|i| {
        let (t, token) = (&t, &token);
        async move {
            let id = declare(
                t,
                token,
                json!({"name": format!("old-{i}.txt"), "size": 3, "content_type": "text/plain",
                       "tags": ["t"], "parent": "case-1"}),
            )
            .await;
            let (status, body) = t
                .call(Method::POST, token, &format!("/v1/files/{id}/trash"), None)
                .await;
            assert_eq!(status, 200, "{body}");
            id
        }
    }))
    .await;
    let newest_first = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort_by(|a, b| b.cmp(a)); // UUIDv7: creation order
        ids
    };

    // WHEN the live files are listed, a page at a time, in every index order, THEN exactly the
    // live ones come, and a first page reads no more than a page's worth of index items: none
    // of the 40 newer trashed ones (each is one more item read on a shared range)
    assert_eq!(walk(&t, &token, "limit=5").await, newest_first(&live));
    for pairs in [
        vec![("limit", "5")],
        vec![("limit", "5"), ("order_by", "-updated_at")],
        vec![("limit", "5"), ("parent", "case-1")],
        vec![("limit", "5"), ("parent", "case-1"), ("order_by", "name")],
        vec![("limit", "5"), ("tag", "t")],
    ] {
        let read = items_read(&t, &pairs).await;
        assert!(read <= LIVE + 2, "{pairs:?}: {read} items read");
    }
    // Sorted in memory and counted: the live range alone.
    assert_eq!(items_read(&t, &[("order_by", "size")]).await, LIVE);
    assert_eq!(
        count_read(&t, &[("count_only", "true")]).await,
        (LIVE, LIVE)
    );

    // AND the trash lists its own files alone, as cheaply
    assert_eq!(
        walk(&t, &token, "trashed=true&limit=7").await,
        newest_first(&trashed)
    );
    let read = items_read(&t, &[("trashed", "true"), ("limit", "5"), ("tag", "t")]).await;
    assert!(read <= 8, "a first trash page read {read} items");
    assert_eq!(
        count_read(&t, &[("count_only", "true"), ("trashed", "true")]).await,
        (TRASHED, TRASHED)
    );

    // AND trashed=all merges both, in order, each file once, in every plan
    let everything: Vec<String> = newest_first(&[live.clone(), trashed.clone()].concat());
    assert_eq!(walk(&t, &token, "trashed=all&limit=9").await, everything);
    assert_eq!(
        walk(&t, &token, "trashed=all&limit=9&tag=t").await,
        everything
    );
    let mut by_size = walk(&t, &token, "trashed=all&limit=9&order_by=size").await;
    by_size.sort();
    let mut all_sorted = everything.clone();
    all_sorted.sort();
    assert_eq!(by_size, all_sorted);

    // WHEN a trashed file is restored, THEN it moves back, tag entry included
    let restored = &trashed[0];
    let (status, body) = t
        .call(
            Method::POST,
            &token,
            &format!("/v1/files/{restored}/restore"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for query in ["limit=50", "limit=50&tag=t", "limit=50&parent=case-1"] {
        let ids = walk(&t, &token, query).await;
        assert!(ids.contains(restored), "{query}");
        assert_eq!(ids.len(), LIVE + 1, "{query}");
        assert!(
            !walk(&t, &token, &format!("{query}&trashed=true"))
                .await
                .contains(restored)
        );
    }
    let page = list(&t, &token, "limit=2&trashed=all").await;
    assert_matches_schema("get", "/v1/files", 200, &page);

    // AND every index entry and tag entry is in its file's area (the no-orphan check)
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("trash and restore");
}

#[tokio::test]
async fn a_page_of_large_files_ends_before_the_byte_budget_and_the_walk_returns_each_once() {
    let t = TestStack::start().await;
    // The largest values the API takes, in four-byte characters where text is free: a 1,020-byte
    // name, a 1,024-byte parent, 20 tags of 256 bytes, 2,048 bytes of metadata, and an uploader
    // whose OIDC name is 256 characters: about 11 KB of JSON per file.
    let token = t.token_with_claims(
        "acme",
        "alice",
        "files:read files:write",
        json!({"name": "😀".repeat(256)}),
    );
    let parent = "📁".repeat(256);
    let metadata: serde_json::Map<String, Value> = (0..8)
        .map(|k| (format!("{k}{}", "k".repeat(63)), json!("😀".repeat(48))))
        .collect();
    const FILES: usize = 120;
    let ids: Vec<String> = in_turn((0..FILES).map(|i| {
        let (t, token, parent, metadata) = (&t, &token, &parent, &metadata);
        async move {
            let tags: Vec<String> = (0..20)
                .map(|n| format!("{n:02}{}", "🏷".repeat(62)))
                .collect();
            declare(
                t,
                token,
                json!({"name": format!("{i:03}{}", "😀".repeat(252)), "size": 1 + i,
                       "content_type": "text/plain", "parent": parent, "tags": tags,
                       "metadata": metadata}),
            )
            .await
        }
    }))
    .await;
    let budget = t.stack.app.config.list_page_max_bytes;
    assert_eq!(budget, 1024 * 1024, "the default budget");

    for order in ["-created_at", "size", "name"] {
        // WHEN a page of 100 is asked for
        let resp = t
            .http
            .get(t.url(&format!("/v1/files?limit=100&order_by={order}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        let page: Value = serde_json::from_slice(&body).unwrap();
        let items = page["items"].as_array().unwrap();
        // THEN it ends early, within the budget, and says where to go on
        assert!(
            items.len() < 100 && items.len() > 50,
            "{order}: {} items in {} bytes",
            items.len(),
            body.len()
        );
        assert!(body.len() <= budget + 1024, "{order}: {} bytes", body.len());
        assert!(page["next_cursor"].is_string(), "{order}");
        assert_matches_schema("get", "/v1/files", 200, &page);
        // AND walking every page returns each file exactly once
        let mut walked = walk(&t, &token, &format!("limit=100&order_by={order}")).await;
        assert_eq!(walked.len(), FILES, "{order}");
        walked.sort();
        walked.dedup();
        assert_eq!(walked.len(), FILES, "{order}: a file came twice");
    }
    let mut expected = ids.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(walk(&t, &token, "limit=100").await, expected);
}
