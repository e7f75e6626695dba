//! Reading files through the real local stack: `GET /v1/files` with every filter and order, cursors
//! (keyset, tamper-evident, bound to the query and the tenant), counts; `GET /v1/files/{id}` with its
//! links and conditional requests; downloads with awkward names, ranges and older revisions.

use futures::future::join_all;
use integration_tests::{TestStack, assert_matches_schema, sha256_hex};
use serde_json::{Value, json};
use shared::domain::disposition::{Disposition, content_disposition};
use shared::domain::names::name_key;
use shared::listing::{ListQuery, Plan};
use std::collections::HashSet;
use std::time::Instant;

/// Uploads run this many at a time.
const CONCURRENCY: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ready,
    /// Declared, never uploaded.
    Pending,
    /// An executable declared as an image: refused by processing.
    Rejected,
    Trashed,
}

/// What file `i` of the data set is: spread over parents, tags, types, names, creators, states.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    parent: Option<String>,
    tags: Vec<&'static str>,
    content_type: &'static str,
    creator: &'static str,
    outcome: Outcome,
    content: Vec<u8>,
}

fn spec(i: usize) -> Spec {
    let outcome = match (i % 25, i % 50) {
        (3, _) => Outcome::Pending,
        (7, _) => Outcome::Rejected,
        (_, 11) | (_, 30) => Outcome::Trashed,
        _ => Outcome::Ready,
    };
    let mut tags = Vec::new();
    if i.is_multiple_of(3) {
        tags.push("legal");
    }
    if i % 4 == 1 {
        tags.push("q3");
    }
    if i % 7 == 2 {
        tags.push("hr");
    }
    let content_type = if outcome == Outcome::Rejected {
        "image/png"
    } else {
        [
            "text/plain",
            "application/pdf",
            "image/png",
            "text/csv",
            "text/plain; charset=utf-8",
            "image/jpeg",
        ][i % 6]
    };
    let name = match i % 4 {
        0 => format!("Report {i:03}.txt"),
        1 => format!("quarterly REPORT {i:03}"),
        2 => format!("Ärger über {i:03}"),
        _ => format!("notes-{i:03}.md"),
    };
    let content = if outcome == Outcome::Rejected {
        let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
        exe.extend(vec![0u8; i]);
        exe
    } else if content_type.starts_with("image/") {
        // Image types must hold images (a PNG declared as JPEG is fine).
        png(4 + (i as u32 * 7) % 29, 4)
    } else {
        // A PDF must start as one (shared/src/domain/sniff.rs); text is text.
        let header = if content_type == "application/pdf" {
            "%PDF-1.7\n"
        } else {
            ""
        };
        let mut c = format!("{header}file {i}\n").into_bytes();
        c.extend(std::iter::repeat_n(b'x', (i * 37) % 500));
        c
    };
    Spec {
        name,
        parent: (i % 6 != 5).then(|| format!("case-{}", i % 6)),
        tags,
        content_type,
        creator: if i.is_multiple_of(2) { "alice" } else { "bob" },
        outcome,
        content,
    }
}

/// Creates `spec` through the API (declare, PUT, complete at once; trash), returning the file id.
async fn create(t: &TestStack, tenant: &str, spec: &Spec) -> String {
    let token = t.token(tenant, spec.creator);
    let mut body = json!({
        "name": spec.name, "size": spec.content.len(), "content_type": spec.content_type,
        "tags": spec.tags, "sha256": sha256_hex(&spec.content),
    });
    if let Some(parent) = &spec.parent {
        body["parent"] = json!(parent);
    }
    let (status, upload) = t.create_upload(&token, &body).await;
    assert_eq!(status, 201, "{upload}");
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    if spec.outcome == Outcome::Pending {
        return file_id;
    }
    let put = t.put_content(&upload, spec.content.clone()).await;
    assert_eq!(put, 200);
    let (status, file) = complete_now(t, &token, upload["upload_id"].as_str().unwrap()).await;
    match spec.outcome {
        // 409 when the S3 event processed (and refused) it first.
        Outcome::Rejected => assert!(status == 422 || status == 409, "{file}"),
        _ => assert_eq!(status, 200, "{file}"),
    }
    if spec.outcome == Outcome::Trashed {
        let resp = t
            .http
            .post(t.url(&format!("/v1/files/{file_id}/trash")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }
    file_id
}

/// `POST /v1/uploads/{id}/complete`, retried like a client would on a 5xx: the S3 event processes
/// the same upload concurrently, and a transaction conflict between the two surfaces as a 500.
async fn complete_now(t: &TestStack, token: &str, upload_id: &str) -> (u16, Value) {
    for attempt in 0.. {
        let (status, body) = t.complete(token, upload_id, None).await;
        if status < 500 || attempt == 4 {
            return (status, body);
        }
        eprintln!("complete answered {status} (attempt {attempt}); retrying: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// Creates files `range` of the data set for `tenant`, `CONCURRENCY` at a time.
async fn create_all(t: &TestStack, tenant: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let specs: Vec<Spec> = range.map(spec).collect();
    let mut ids = Vec::with_capacity(specs.len());
    for chunk in specs.chunks(CONCURRENCY) {
        ids.extend(join_all(chunk.iter().map(|s| create(t, tenant, s))).await);
    }
    ids
}

/// The records as the API shows them now (trashed ones included).
async fn snapshot(t: &TestStack, token: &str, ids: &[String]) -> Vec<Value> {
    let mut records = Vec::new();
    for chunk in ids.chunks(CONCURRENCY) {
        let fetched = join_all(chunk.iter().map(|id| async move {
            let resp = t
                .http
                .get(t.url(&format!("/v1/files/{id}?trashed=true")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }))
        .await;
        records.extend(fetched);
    }
    records
}

async fn list(t: &TestStack, token: &str, params: &[(&str, String)]) -> (u16, Value) {
    let resp = t
        .http
        .get(t.url("/v1/files"))
        .query(params)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_matches_schema("GET", "/v1/files", status, &body);
    (status, body)
}

fn params<'a>(pairs: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Every page of a listing: each full but the last, the last non-empty (unless nothing matches).
async fn walk(t: &TestStack, token: &str, query: &[(&str, String)], limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.to_vec();
        q.push(("limit", limit.to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let (status, page) = list(t, token, &q).await;
        assert_eq!(status, 200, "{query:?}: {page}");
        let items = page["items"].as_array().unwrap().clone();
        let next = page["next_cursor"].as_str().map(str::to_string);
        if next.is_some() {
            assert_eq!(
                items.len(),
                limit,
                "{query:?}: a page before the last is full"
            );
        } else {
            assert!(
                !items.is_empty() || all.is_empty(),
                "{query:?}: empty last page"
            );
        }
        all.extend(items);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn sort_value(file: &Value, field: &str) -> String {
    match field {
        "name" => name_key(file["name"].as_str().unwrap()),
        "size" => format!("{:020}", file["size"].as_u64().unwrap()),
        other => file[other].as_str().unwrap().to_string(),
    }
}

/// The ids of `files` that pass `keep`, in `order_by` order (ties by id, same direction).
fn expected(files: &[Value], keep: impl Fn(&Value) -> bool, order_by: &str) -> Vec<String> {
    let (descending, field) = match order_by.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, order_by),
    };
    let mut kept: Vec<(String, String)> = files
        .iter()
        .filter(|f| keep(f))
        .map(|f| (sort_value(f, field), f["id"].as_str().unwrap().to_string()))
        .collect();
    kept.sort();
    if descending {
        kept.reverse();
    }
    kept.into_iter().map(|(_, id)| id).collect()
}

fn live(f: &Value) -> bool {
    f["trashed"] == false
}

#[tokio::test]
async fn listing_filters_orders_pages_cursors_and_counts() {
    let t = TestStack::start().await;
    let alice = t.token("acme", "alice");

    // GIVEN 250 files created through the API, spread over parents, tags, types, creators, states
    let started = Instant::now();
    let created = create_all(&t, "acme", 0..250).await;
    let creation = started.elapsed();
    let files = snapshot(&t, &alice, &created).await;
    eprintln!("created 250 files in {creation:?}");
    let count = |status: &str| files.iter().filter(|f| f["status"] == status).count();
    assert_eq!(count("pending"), 10);
    assert_eq!(count("rejected"), 10);
    assert_eq!(files.iter().filter(|f| f["trashed"] == true).count(), 10);

    // THEN the default listing walks every live file newest first, every page full but the last
    let started = Instant::now();
    let all = walk(&t, &alice, &[], 25).await;
    eprintln!(
        "walked {} files in pages of 25 in {:?}",
        all.len(),
        started.elapsed()
    );
    assert_eq!(ids(&all), expected(&files, live, "-created_at"));
    assert_eq!(all.len(), 240);

    // AND ready files carry a working presigned download URL, others none
    for item in &all {
        let ready = item["status"] == "ready";
        assert_eq!(item["download_url"].is_string(), ready, "{item}");
        assert_eq!(item["download_url_expires_at"].is_string(), ready, "{item}");
    }
    let ready = all.iter().find(|f| f["status"] == "ready").unwrap();
    let download = t
        .http
        .get(ready["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-disposition"].to_str().unwrap(),
        content_disposition(Disposition::Attachment, ready["name"].as_str().unwrap())
    );

    // AND every order, both directions, matches the order computed here
    let started = Instant::now();
    for order in [
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "name",
        "-name",
        "size",
        "-size",
    ] {
        let walked = walk(&t, &alice, &params(&[("order_by", order)]), 23).await;
        assert_eq!(
            ids(&walked),
            expected(&files, live, order),
            "order_by={order}"
        );
        // Within a parent too (gsi1 / gsi4 for created_at and name, in memory for the others).
        let walked = walk(
            &t,
            &alice,
            &params(&[("order_by", order), ("parent", "case-2")]),
            9,
        )
        .await;
        let in_parent = |f: &Value| live(f) && f["parent"] == "case-2";
        assert_eq!(
            ids(&walked),
            expected(&files, in_parent, order),
            "parent, order_by={order}"
        );
        // And within a tag (tag entries for created_at, in memory for the others).
        let walked = walk(
            &t,
            &alice,
            &params(&[("order_by", order), ("tag", "legal")]),
            11,
        )
        .await;
        let tagged = |f: &Value| live(f) && f["tags"].as_array().unwrap().contains(&json!("legal"));
        assert_eq!(
            ids(&walked),
            expected(&files, tagged, order),
            "tag, order_by={order}"
        );
    }

    eprintln!("checked 8 orders x 3 scopes in {:?}", started.elapsed());

    // AND every filter, alone and combined, returns exactly the matching files
    let started = Instant::now();
    let mut created_ats: Vec<String> = files
        .iter()
        .map(|f| f["created_at"].as_str().unwrap().to_string())
        .collect();
    created_ats.sort();
    let (c_from, c_to) = (created_ats[60].clone(), created_ats[180].clone());
    let mut updated_ats: Vec<String> = files
        .iter()
        .map(|f| f["updated_at"].as_str().unwrap().to_string())
        .collect();
    updated_ats.sort();
    let (u_from, u_to) = (updated_ats[100].clone(), updated_ats[220].clone());
    let has_tag = |f: &Value, tag: &str| f["tags"].as_array().unwrap().contains(&json!(tag));
    let essence = |f: &Value| {
        f["content_type"]
            .as_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    type Keep<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let (c_from_s, c_to_s, u_from_s, u_to_s) = (
        c_from.as_str(),
        c_to.as_str(),
        u_from.as_str(),
        u_to.as_str(),
    );
    let cases: Vec<(Vec<(&str, &str)>, Keep<'_>)> = vec![
        (
            vec![("parent", "case-1")],
            Box::new(|f: &Value| live(f) && f["parent"] == "case-1"),
        ),
        (
            vec![("q", "rEpOrT")],
            Box::new(|f: &Value| {
                live(f) && name_key(f["name"].as_str().unwrap()).contains("report")
            }),
        ),
        (
            vec![("q", "ärger Ü")],
            Box::new(|f: &Value| live(f) && f["name"].as_str().unwrap().starts_with("Ärger über")),
        ),
        (
            vec![("tag", "hr")],
            Box::new(|f: &Value| live(f) && has_tag(f, "hr")),
        ),
        (
            vec![("content_type", "image/*")],
            Box::new(|f: &Value| live(f) && essence(f).starts_with("image/")),
        ),
        (
            vec![("content_type", "text/plain")],
            Box::new(|f: &Value| live(f) && essence(f) == "text/plain"),
        ),
        (
            vec![("content_type", "text/plain; charset=utf-8")],
            Box::new(|f: &Value| live(f) && f["content_type"] == "text/plain; charset=utf-8"),
        ),
        (
            vec![("created_by", "bob")],
            Box::new(|f: &Value| live(f) && f["created_by"]["id"] == "bob"),
        ),
        (
            vec![("created_from", c_from_s), ("created_to", c_to_s)],
            Box::new(|f: &Value| {
                let c = f["created_at"].as_str().unwrap();
                live(f) && c >= c_from.as_str() && c < c_to.as_str()
            }),
        ),
        (
            vec![("created_from", c_from_s)],
            Box::new(|f: &Value| live(f) && f["created_at"].as_str().unwrap() >= c_from.as_str()),
        ),
        (
            vec![("created_to", c_to_s)],
            Box::new(|f: &Value| live(f) && f["created_at"].as_str().unwrap() < c_to.as_str()),
        ),
        (
            vec![("updated_from", u_from_s), ("updated_to", u_to_s)],
            Box::new(|f: &Value| {
                let u = f["updated_at"].as_str().unwrap();
                live(f) && u >= u_from.as_str() && u < u_to.as_str()
            }),
        ),
        (
            vec![("status", "pending")],
            Box::new(|f: &Value| live(f) && f["status"] == "pending"),
        ),
        (
            vec![("status", "rejected")],
            Box::new(|f: &Value| live(f) && f["status"] == "rejected"),
        ),
        (
            vec![("status", "ready")],
            Box::new(|f: &Value| live(f) && f["status"] == "ready"),
        ),
        (
            vec![("trashed", "true")],
            Box::new(|f: &Value| f["trashed"] == true),
        ),
        (vec![("trashed", "all")], Box::new(|_: &Value| true)),
        (
            vec![("parent", "case-2"), ("tag", "legal"), ("order_by", "name")],
            Box::new(|f: &Value| live(f) && f["parent"] == "case-2" && has_tag(f, "legal")),
        ),
        (
            vec![
                ("tag", "q3"),
                ("content_type", "text/*"),
                ("order_by", "-size"),
            ],
            Box::new(|f: &Value| live(f) && has_tag(f, "q3") && essence(f).starts_with("text/")),
        ),
        (
            vec![
                ("q", "report"),
                ("created_by", "alice"),
                ("order_by", "updated_at"),
            ],
            Box::new(|f: &Value| {
                live(f)
                    && name_key(f["name"].as_str().unwrap()).contains("report")
                    && f["created_by"]["id"] == "alice"
            }),
        ),
        (
            vec![
                ("parent", "case-3"),
                ("created_from", c_from_s),
                ("order_by", "-created_at"),
            ],
            Box::new(|f: &Value| {
                live(f)
                    && f["parent"] == "case-3"
                    && f["created_at"].as_str().unwrap() >= c_from.as_str()
            }),
        ),
        (
            vec![
                ("status", "ready"),
                ("trashed", "all"),
                ("order_by", "size"),
            ],
            Box::new(|f: &Value| f["status"] == "ready"),
        ),
        (
            vec![
                ("tag", "legal"),
                ("updated_from", u_from_s),
                ("created_by", "bob"),
                ("order_by", "-updated_at"),
            ],
            Box::new(|f: &Value| {
                live(f)
                    && has_tag(f, "legal")
                    && f["updated_at"].as_str().unwrap() >= u_from.as_str()
                    && f["created_by"]["id"] == "bob"
            }),
        ),
        (
            vec![("parent", "case-0"), ("q", "no such name")],
            Box::new(|_: &Value| false),
        ),
    ];
    for (pairs, keep) in &cases {
        let order = pairs
            .iter()
            .find(|(k, _)| *k == "order_by")
            .map(|(_, v)| *v)
            .unwrap_or("-created_at");
        let query = params(pairs);
        let walked = walk(&t, &alice, &query, 7).await;
        let want = expected(&files, keep, order);
        assert_eq!(ids(&walked), want, "{pairs:?}");
        // count_only counts what the walk returned.
        let mut counting = query.clone();
        counting.push(("count_only", "true".into()));
        let (status, counted) = list(&t, &alice, &counting).await;
        assert_eq!(status, 200, "{counted}");
        assert_eq!(counted, json!({"count": want.len()}), "{pairs:?}");
    }

    eprintln!(
        "checked {} filter combinations (walk + count) in {:?}",
        cases.len(),
        started.elapsed()
    );

    // AND a page costs what the design says: one Query for a plain page, a few for filtered ones,
    // all candidates for an in-memory order
    let app = &t.stack.app;
    for pairs in [
        vec![],
        vec![("parent", "case-1")],
        vec![("q", "report")],
        vec![("content_type", "image/*")],
        vec![("status", "rejected")],
        vec![("tag", "legal")],
        vec![("tag", "hr"), ("created_by", "bob")],
        vec![("order_by", "size")],
        vec![("order_by", "name"), ("parent", "case-4")],
    ] {
        let query = ListQuery::parse(pairs.iter().copied()).unwrap();
        let (page, stats) = app.files.list_files(&query, "acme", None).await.unwrap();
        eprintln!(
            "first page of {pairs:?}: {} items, {} index items read in {} Query calls",
            page.items.len(),
            stats.items_read,
            stats.queries
        );
        assert!(stats.items_read <= 250, "{pairs:?}: {stats:?}");
        if pairs.is_empty() {
            assert_eq!(stats.queries, 1, "a plain page is one Query");
            assert!(stats.items_read <= 31, "{stats:?}");
        }
    }

    // AND a token limited to two parents reads only their ranges: a page is one Query per
    // parent, a count reads their files alone, never the tenant's 250
    let permitted = ["case-1".to_string(), "case-3".to_string()];
    let in_permitted = files
        .iter()
        .filter(|f| permitted.iter().any(|p| f["parent"] == p.as_str()))
        .count();
    for pairs in [vec![], vec![("order_by", "name")], vec![("q", "report")]] {
        let mut query = ListQuery::parse(pairs.iter().copied()).unwrap();
        query.limit_to(Some(&permitted));
        let Plan::Merge(scans) = query.plan("acme") else {
            panic!("{pairs:?}: a merge of the parents' ranges");
        };
        let (page, stats) = app
            .files
            .list_page_merged(&query, &scans, None)
            .await
            .unwrap();
        eprintln!(
            "limited first page of {pairs:?}: {} items, {stats:?}",
            page.items.len()
        );
        assert!(
            page.items
                .iter()
                .all(|f| permitted.contains(f.parent.as_ref().unwrap()))
        );
        assert!(stats.items_read <= in_permitted, "{pairs:?}: {stats:?}");
        if pairs.is_empty() {
            assert_eq!(stats.queries, 2, "one Query per parent");
        }
    }
    let mut counting = ListQuery::parse([("count_only", "true")]).unwrap();
    counting.limit_to(Some(&permitted));
    let (count, stats) = app.files.count_files(&counting, "acme").await.unwrap();
    eprintln!("limited count: {count}, {stats:?}");
    // Their live files only: the trashed ones are in the trash's partitions.
    let live_in_permitted = files
        .iter()
        .filter(|f| live(f) && permitted.iter().any(|p| f["parent"] == p.as_str()))
        .count();
    assert_eq!(stats.items_read, live_in_permitted, "{stats:?}");
    assert_eq!(count, live_in_permitted);

    // AND the limit may change from page to page
    let (_, first) = list(&t, &alice, &params(&[("limit", "10")])).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (status, second) = list(
        &t,
        &alice,
        &[("limit", "40".to_string()), ("cursor", cursor.clone())],
    )
    .await;
    assert_eq!(status, 200);
    let expected_all = expected(&files, live, "-created_at");
    assert_eq!(
        ids(second["items"].as_array().unwrap()),
        expected_all[10..50].to_vec()
    );

    // AND a tampered cursor, a cursor reused with another query, another tenant's cursor: 400
    let mut tampered = cursor.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let globex = t.token("globex", "mallory");
    for (token, query, what) in [
        (&alice, vec![("cursor", tampered)], "tampered"),
        (
            &alice,
            vec![("cursor", cursor.clone()), ("tag", "legal".into())],
            "other query",
        ),
        (
            &alice,
            vec![
                ("cursor", cursor.clone()),
                ("order_by", "created_at".into()),
            ],
            "other order",
        ),
        (&globex, vec![("cursor", cursor.clone())], "other tenant"),
        (&alice, vec![("cursor", "not-a-cursor".into())], "garbage"),
    ] {
        let (status, problem) = list(&t, token, &query).await;
        assert_eq!(status, 400, "{what}: {problem}");
        assert_eq!(problem["code"], "invalid_cursor", "{what}");
        assert_eq!(problem["parameter"], "cursor", "{what}");
    }

    // AND another tenant sees none of them
    let (status, theirs) = list(&t, &globex, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(theirs, json!({"items": [], "next_cursor": null}));
    let (_, counted) = list(
        &t,
        &globex,
        &params(&[("count_only", "true"), ("trashed", "all")]),
    )
    .await;
    assert_eq!(counted, json!({"count": 0}));
}

#[tokio::test]
async fn bad_listing_parameters_are_400_naming_the_parameter() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let long_parent = "p".repeat(300);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("colour", "red")], "colour"),
        (&[("limit", "0")], "limit"),
        (&[("limit", "101")], "limit"),
        (&[("limit", "")], "limit"),
        (&[("limit", "2"), ("limit", "3")], "limit"),
        (&[("order_by", "owner")], "order_by"),
        (&[("status", "done")], "status"),
        (&[("trashed", "maybe")], "trashed"),
        (&[("count_only", "yes")], "count_only"),
        (&[("created_from", "last tuesday")], "created_from"),
        (&[("updated_to", "2026-02-30T00:00:00Z")], "updated_to"),
        (&[("content_type", "not a type")], "content_type"),
        (&[("q", "")], "q"),
        (&[("tag", "")], "tag"),
        (&[("parent", long_parent.as_str())], "parent"),
        (&[("count_only", "true"), ("cursor", "x")], "cursor"),
    ];
    for (pairs, name) in cases {
        let (status, problem) = list(&t, &token, &params(pairs)).await;
        assert_eq!(status, 400, "{pairs:?}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter", "{pairs:?}");
        assert_eq!(problem["parameter"], *name, "{pairs:?}");
        assert_eq!(problem["status"], 400);
    }
}

#[tokio::test]
async fn walking_while_files_are_added_returns_each_file_once_in_order() {
    let t = TestStack::start().await;
    let token = t.token("initech", "alice");
    let originals = create_all(&t, "initech", 0..30).await;
    let files = snapshot(&t, &token, &originals).await;
    let before = expected(&files, live, "created_at");

    // Oldest first, adding two files after every page: they sort after everything read so far.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let mut q = vec![
            ("order_by", "created_at".to_string()),
            ("limit", "4".to_string()),
        ];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let (status, page) = list(&t, &token, &q).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(page["items"].as_array().unwrap()));
        let Some(next) = page["next_cursor"].as_str() else {
            break;
        };
        cursor = Some(next.to_string());
        create_all(&t, "initech", 1000 + added..1000 + added + 2).await;
        added += 2;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no file twice");
    assert_eq!(seen[..before.len()], before[..], "the originals, in order");
    assert!(
        seen.len() > before.len(),
        "files added behind the cursor show up"
    );

    // Newest first, adding files while walking: they are ahead of the walk, never in it.
    let mut newest_first = Vec::new();
    let mut cursor: Option<String> = None;
    let now_live = {
        let (_, all) = list(&t, &token, &params(&[("limit", "100")])).await;
        ids(all["items"].as_array().unwrap())
    };
    loop {
        let mut q = vec![("limit", "6".to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let (_, page) = list(&t, &token, &q).await;
        newest_first.extend(ids(page["items"].as_array().unwrap()));
        let Some(next) = page["next_cursor"].as_str() else {
            break;
        };
        cursor = Some(next.to_string());
        create_all(&t, "initech", 2000 + added..2000 + added + 1).await;
        added += 1;
    }
    assert_eq!(newest_first, now_live);
}

async fn content_redirect(
    t: &TestStack,
    token: &str,
    file_id: &str,
    query: &str,
) -> reqwest::Response {
    t.http
        .get(t.url(&format!("/v1/files/{file_id}/content{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn upload_ready(t: &TestStack, token: &str, body: Value, content: &[u8]) -> Value {
    let mut body = body;
    body["size"] = json!(content.len());
    body["sha256"] = json!(sha256_hex(content));
    let (status, upload) = t.create_upload(token, &body).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, content.to_vec()).await, 200);
    let (status, file) = complete_now(t, token, upload["upload_id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{file}");
    file
}

#[tokio::test]
async fn downloads_name_files_exactly_serve_ranges_and_older_revisions() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");

    // Names with spaces, quotes, separators and non-ASCII text, attachment and inline.
    for name in [
        "spaces in the name.txt",
        "a \"quoted\" name; with=separators, too.txt",
        "Ünïcødé résumé 日本語 🚀.txt",
        "back\\slash 'single' %20.txt",
    ] {
        let content = format!("content of {name}").into_bytes();
        let file = upload_ready(
            &t,
            &token,
            json!({"name": name, "content_type": "text/plain"}),
            &content,
        )
        .await;
        let id = file["id"].as_str().unwrap();
        for (query, disposition) in [
            ("", Disposition::Attachment),
            ("?disposition=attachment", Disposition::Attachment),
            ("?disposition=inline", Disposition::Inline),
        ] {
            let redirect = content_redirect(&t, &token, id, query).await;
            assert_eq!(redirect.status(), 302, "{name}{query}");
            let location = redirect.headers()["location"].to_str().unwrap().to_string();
            let download = t.http.get(&location).send().await.unwrap();
            assert_eq!(download.status(), 200, "{name}{query}");
            let header = download.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(
                header,
                content_disposition(disposition, name),
                "{name}{query}"
            );
            assert!(header.is_ascii());
            assert_eq!(download.headers()["content-type"], "text/plain");
            assert_eq!(download.bytes().await.unwrap().as_ref(), content.as_slice());
        }
    }

    // A range of the content, on the presigned URL.
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let file = upload_ready(
        &t,
        &token,
        json!({"name": "ranged.bin", "content_type": "application/octet-stream"}),
        &content,
    )
    .await;
    let id = file["id"].as_str().unwrap().to_string();
    let location = content_redirect(&t, &token, &id, "").await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let ranged = t
        .http
        .get(&location)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &content[1000..2000]);

    // A second revision: the default is the current one, ?revision=1 the first.
    let first = b"first revision".to_vec();
    let second = b"the second revision, longer".to_vec();
    let file = upload_ready(
        &t,
        &token,
        json!({"name": "history.txt", "content_type": "text/plain"}),
        &first,
    )
    .await;
    let id = file["id"].as_str().unwrap().to_string();
    let revised = upload_ready(
        &t,
        &token,
        json!({"file_id": id, "content_type": "text/markdown"}),
        &second,
    )
    .await;
    assert_eq!(revised["revision"], 2);
    for (query, want, content_type) in [
        ("", &second, "text/markdown"),
        ("?revision=2", &second, "text/markdown"),
        ("?revision=1", &first, "text/plain"),
        ("?revision=1&disposition=inline", &first, "text/plain"),
    ] {
        let redirect = content_redirect(&t, &token, &id, query).await;
        assert_eq!(redirect.status(), 302, "{query}");
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        let download = t.http.get(&location).send().await.unwrap();
        assert_eq!(download.headers()["content-type"], content_type, "{query}");
        assert_eq!(&download.bytes().await.unwrap()[..], &want[..], "{query}");
    }
    for (query, status, code) in [
        ("?revision=3", 404, "not_found"),
        ("?revision=0", 400, "invalid_parameter"),
        ("?revision=one", 400, "invalid_parameter"),
        ("?disposition=download", 400, "invalid_parameter"),
    ] {
        let resp = content_redirect(&t, &token, &id, query).await;
        assert_eq!(resp.status(), status, "{query}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], code, "{query}");
    }
}

/// A valid RGB PNG (stored deflate blocks, no compression library needed).
fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    0xedb8_8320 ^ (crc >> 1)
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend([(x * 7) as u8, (y * 5) as u8, 128]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn get_file_links_conditional_requests_and_the_trash() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let image = png(300, 200);
    let file = upload_ready(
        &t,
        &token,
        json!({"name": "photo.png", "content_type": "image/png"}),
        &image,
    )
    .await;
    let id = file["id"].as_str().unwrap().to_string();

    // The record comes with a download URL and, once made, thumbnail URLs.
    let deadline = Instant::now() + std::time::Duration::from_secs(15);
    let (body, etag) = loop {
        let resp = t.get_file_response(&token, &id).await;
        assert_eq!(resp.status(), 200);
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let body: Value = resp.json().await.unwrap();
        if body.get("thumbnails").is_some() {
            break (body, etag);
        }
        assert!(Instant::now() < deadline, "no thumbnails: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &body);
    let download = t
        .http
        .get(body["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), image.as_slice());
    let thumbnails = body["thumbnails"].as_object().unwrap();
    assert!(!thumbnails.is_empty(), "{body}");
    for url in thumbnails.values() {
        let thumbnail = t.http.get(url.as_str().unwrap()).send().await.unwrap();
        assert_eq!(thumbnail.status(), 200);
        assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
        assert!(
            thumbnail
                .bytes()
                .await
                .unwrap()
                .starts_with(b"\xFF\xD8\xFF")
        );
    }

    // The ETag is the record's: new presigned links do not change it, and it answers 304.
    let again = t.get_file_response(&token, &id).await;
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    let not_modified = t
        .http
        .get(t.url(&format!("/v1/files/{id}")))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
    let modified = t
        .http
        .get(t.url(&format!("/v1/files/{id}")))
        .bearer_auth(&token)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(modified.status(), 200);

    // A pending file has no links.
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "later.txt", "size": 3, "content_type": "text/plain"}),
        )
        .await;
    let pending: Value = t
        .get_file(&token, upload["file_id"].as_str().unwrap())
        .await;
    assert_eq!(pending["status"], "pending");
    assert!(pending.get("download_url").is_none() && pending.get("thumbnails").is_none());

    // In the trash: 404 unless asked for, and no download.
    let trashed = t
        .http
        .post(t.url(&format!("/v1/files/{id}/trash")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(trashed.status(), 200);
    assert_eq!(t.file_status(&token, &id).await, 404);
    let shown = t
        .http
        .get(t.url(&format!("/v1/files/{id}?trashed=true")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let shown: Value = shown.json().await.unwrap();
    assert_eq!(shown["trashed"], true);
    assert!(shown.get("download_url").is_none());
    assert_eq!(content_redirect(&t, &token, &id, "").await.status(), 404);
    assert_eq!(
        content_redirect(&t, &token, &id, "?revision=1")
            .await
            .status(),
        404
    );
    let bad = t
        .http
        .get(t.url(&format!("/v1/files/{id}?trashed=maybe")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// Every tenant's files are served from the bucket's one origin: HTML, SVG and scripts asked for
/// inline would run there. They are attachments whatever the client asks; passive types (images,
/// plain text, PDF) are inline when asked. Checked on the headers the local S3 endpoint answers the
/// presigned GET with.
#[tokio::test]
async fn active_content_is_served_as_an_attachment_even_when_asked_inline() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let jpeg = integration_tests::jpeg_with_orientation(64, 48, 1);
    let cases: [(&str, &str, Vec<u8>, &str); 5] = [
        (
            "page.html",
            "text/html",
            b"<!doctype html><script>alert(document.domain)</script>".to_vec(),
            "attachment",
        ),
        (
            "icon.svg",
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec(),
            "attachment",
        ),
        (
            "app.js",
            "text/javascript",
            b"alert(document.cookie)".to_vec(),
            "attachment",
        ),
        ("photo.jpg", "image/jpeg", jpeg, "inline"),
        ("notes.txt", "text/plain", b"just text".to_vec(), "inline"),
    ];
    for (name, content_type, content, served) in cases {
        let file = upload_ready(
            &t,
            &token,
            json!({"name": name, "content_type": content_type}),
            &content,
        )
        .await;
        let id = file["id"].as_str().unwrap();
        let redirect = content_redirect(&t, &token, id, "?disposition=inline").await;
        assert_eq!(redirect.status(), 302, "{name}");
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        let download = t.http.get(&location).send().await.unwrap();
        assert_eq!(download.status(), 200, "{name}");
        let header = download.headers()["content-disposition"].to_str().unwrap();
        assert!(
            header.starts_with(&format!("{served};")),
            "{name} ({content_type}) asked inline is served {header:?}"
        );
        assert_eq!(download.headers()["content-type"], content_type, "{name}");
    }
}
