//! Per-container access (issue 14): a token whose `files_parents` claim names some parents reads,
//! lists, uploads, changes and downloads only files of those parents; everything else answers 404
//! exactly as another tenant's file does. The tokens carry the claim as a product mints it (a JSON
//! array of percent-encoded parents) and reach the functions as API Gateway flattens it (`[a b]`).

use integration_tests::{TestStack, assert_matches_schema, jpeg_with_orientation};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ALL: &str = "files:read files:write files:admin";

/// A token limited to `parents` (the `files_parents` claim): a JSON array of percent-encoded
/// parents, as a product mints it. The local gateway flattens it to `[a b]` exactly as API
/// Gateway's JWT authorizer does before the functions see it.
fn token_limited_to(
    t: &TestStack,
    tenant: &str,
    sub: &str,
    scope: &str,
    parents: &[&str],
) -> String {
    let encoded: Vec<String> = parents
        .iter()
        .map(|p| shared::principal::encode_parent(p))
        .collect();
    t.token_with_claims(
        tenant,
        sub,
        scope,
        json!({ shared::principal::PARENTS_CLAIM: encoded }),
    )
}

async fn jpeg_in(t: &TestStack, token: &str, name: &str, parent: Option<&str>) -> String {
    let content = jpeg_with_orientation(48, 32, 1);
    let mut body = json!({"name": name, "size": content.len(), "content_type": "image/jpeg"});
    if let Some(parent) = parent {
        body["parent"] = json!(parent);
    }
    let file = t.upload(token, &body, &content).await;
    file["id"].as_str().unwrap().to_string()
}

/// A pending upload of a new revision of `file_id`, started by a tenant-wide token.
async fn pending_revision(t: &TestStack, token: &str, file_id: &str) -> String {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"file_id": file_id, "size": 3, "content_type": "image/jpeg"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    upload["upload_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_route_serves_a_limited_token_only_the_files_of_its_parents() {
    // GIVEN files in two parents a token names, one in a parent it does not and one without a
    // parent, uploaded by a tenant-wide token; and another tenant's file
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    let inside = jpeg_in(&t, &wide, "in.jpg", Some("case 1")).await;
    let outside = jpeg_in(&t, &wide, "out.jpg", Some("case-9")).await;
    let rootless = jpeg_in(&t, &wide, "root.jpg", None).await;
    let globex = t.token_with("globex", "gina", ALL);
    let foreign = jpeg_in(&t, &globex, "foreign.jpg", Some("case 1")).await;
    // Admin scope, so that only the parents limit it (restores and deletes need admin or owner).
    let limited = token_limited_to(&t, "acme", "lena", ALL, &["case 1", "case-2"]);

    // The routes of one file, the answer for a file the token may see, and a body where needed.
    let routes = |id: &str| -> Vec<(Method, String, u16, Option<Value>)> {
        vec![
            (Method::GET, format!("/v1/files/{id}"), 200, None),
            (
                Method::GET,
                format!("/v1/files/{id}?trashed=true"),
                200,
                None,
            ),
            (Method::GET, format!("/v1/files/{id}/content"), 302, None),
            (
                Method::GET,
                format!("/v1/files/{id}/thumbnails/64?wait=5"),
                302,
                None,
            ),
            (Method::GET, format!("/v1/files/{id}/revisions"), 200, None),
            (
                Method::GET,
                format!("/v1/files/{id}/revisions/1"),
                200,
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/files/{id}"),
                200,
                Some(json!({"tags": ["seen"]})),
            ),
            (
                Method::POST,
                format!("/v1/files/{id}/revisions/1/restore"),
                201,
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/files/{id}/revisions/1"),
                204,
                None,
            ),
            (Method::POST, format!("/v1/files/{id}/trash"), 200, None),
            (Method::POST, format!("/v1/files/{id}/restore"), 200, None),
        ]
    };

    // WHEN the limited token calls every route on a file of another tenant, THEN 404
    let mut foreign_answers = Vec::new();
    for (method, path, _, body) in routes(&foreign) {
        let answer = t.call(method.clone(), &limited, &path, body.as_ref()).await;
        assert_eq!(answer.0, 404, "{method} {path}: {answer:?}");
        foreign_answers.push(answer);
    }
    // AND on files outside its parents (one elsewhere, one without a parent): the same answers
    for id in [&outside, &rootless] {
        for ((method, path, _, body), foreign) in routes(id).into_iter().zip(&foreign_answers) {
            let answer = t.call(method.clone(), &limited, &path, body.as_ref()).await;
            assert_eq!(&answer, foreign, "{method} {path}");
        }
        let upload = t
            .create_upload(
                &limited,
                &json!({"file_id": id, "size": 3, "content_type": "image/jpeg"}),
            )
            .await;
        assert_eq!(upload.0, 404, "a new revision of {id}: {upload:?}");
        let delete = t
            .call(Method::DELETE, &limited, &format!("/v1/files/{id}"), None)
            .await;
        assert_eq!(delete.0, 404);
        assert_eq!(delete.1, foreign_answers[0].1, "the same problem body");
    }
    // (and the tenant-wide token still sees them, untouched)
    for id in [&outside, &rootless] {
        let file: Value = t.get_file(&wide, id).await;
        assert_eq!(
            (file["revision"].as_u64(), &file["tags"]),
            (Some(1), &json!([]))
        );
    }

    // WHEN it calls them on the file inside its parents, THEN each works as for any token
    for (method, path, expected, body) in routes(&inside) {
        let (status, answer) = t.call(method.clone(), &limited, &path, body.as_ref()).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    let revision = t
        .upload(
            &limited,
            &json!({"file_id": inside, "size": 3, "content_type": "text/plain"}),
            b"abc",
        )
        .await;
    assert_eq!(revision["revision"], 3);
    let delete = t
        .call(
            Method::DELETE,
            &limited,
            &format!("/v1/files/{inside}"),
            None,
        )
        .await;
    assert_eq!(delete.0, 204, "{delete:?}");
}

#[tokio::test]
async fn a_limited_token_uploads_only_into_its_parents_and_only_finishes_their_uploads() {
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    let limited = token_limited_to(&t, "acme", "lena", ALL, &["case-1"]);
    let outside = jpeg_in(&t, &wide, "out.jpg", Some("case-9")).await;
    let inside = jpeg_in(&t, &wide, "in.jpg", Some("case-1")).await;

    // WHEN it declares new files: THEN only into its parent; elsewhere, or without a parent, 403
    let new = |parent: Option<&str>| {
        let mut body = json!({"name": "n.txt", "size": 1, "content_type": "text/plain"});
        if let Some(parent) = parent {
            body["parent"] = json!(parent);
        }
        body
    };
    for parent in [Some("case-9"), Some("case-1 "), None] {
        let (status, problem) = t.create_upload(&limited, &new(parent)).await;
        assert_eq!(status, 403, "{parent:?}: {problem}");
        assert_eq!(problem["code"], "parent_not_permitted");
        assert_eq!(problem["claim"], "files_parents");
        assert_matches_schema("POST", "/v1/uploads", 403, &problem);
    }
    let file = t.upload(&limited, &new(Some("case-1")), b"n").await;
    assert_eq!(file["parent"], "case-1");

    // GIVEN uploads a tenant-wide token started: one for the file outside, one for the file inside
    let outside_upload = pending_revision(&t, &wide, &outside).await;
    let inside_upload = pending_revision(&t, &wide, &inside).await;
    let unknown = "0".repeat(32);
    // WHEN the limited token resumes, completes or aborts them
    let calls = |id: &str| {
        vec![
            (Method::GET, format!("/v1/uploads/{id}")),
            (Method::POST, format!("/v1/uploads/{id}/complete")),
            (Method::DELETE, format!("/v1/uploads/{id}")),
        ]
    };
    // THEN the outside one answers exactly as an upload that does not exist
    for ((method, path), (_, unknown_path)) in
        calls(&outside_upload).into_iter().zip(calls(&unknown))
    {
        let answer = t.call(method.clone(), &limited, &path, None).await;
        let nothing = t.call(method.clone(), &limited, &unknown_path, None).await;
        assert_eq!(answer.0, 404, "{method} {path}: {answer:?}");
        assert_eq!(answer, nothing, "{method} {path}");
    }
    // AND the inside one works (complete answers 409: nothing was PUT; abort 204)
    let (status, state) = t
        .call(
            Method::GET,
            &limited,
            &format!("/v1/uploads/{inside_upload}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{state}");
    let (status, problem) = t
        .call(
            Method::POST,
            &limited,
            &format!("/v1/uploads/{inside_upload}/complete"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("upload_incomplete"))
    );
    let (status, _) = t
        .call(
            Method::DELETE,
            &limited,
            &format!("/v1/uploads/{inside_upload}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    // (the outside upload is still pending for the tenant-wide token)
    let (status, state) = t
        .call(
            Method::GET,
            &wide,
            &format!("/v1/uploads/{outside_upload}"),
            None,
        )
        .await;
    assert_eq!((status, state["status"].as_str()), (200, Some("pending")));
}

async fn patch(t: &TestStack, token: &str, id: &str, body: Value) -> (u16, Value) {
    t.call(
        Method::PATCH,
        token,
        &format!("/v1/files/{id}"),
        Some(&body),
    )
    .await
}

#[tokio::test]
async fn moving_a_file_needs_both_parents_permitted() {
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    let limited = token_limited_to(&t, "acme", "lena", ALL, &["case-1", "case-2"]);
    let file = jpeg_in(&t, &wide, "a.jpg", Some("case-1")).await;
    let other = jpeg_in(&t, &wide, "b.jpg", Some("case-9")).await;

    // WHEN it moves a file between its parents, THEN it moves
    let (status, moved) = patch(&t, &limited, &file, json!({"parent": "case-2"})).await;
    assert_eq!(
        (status, moved["parent"].as_str()),
        (200, Some("case-2")),
        "{moved}"
    );
    // WHEN it moves it out of them (elsewhere, or to no parent), THEN 403 and it stays
    for out in [json!({"parent": "case-9"}), json!({"parent": null})] {
        let (status, problem) = patch(&t, &limited, &file, out.clone()).await;
        assert_eq!(status, 403, "{out}: {problem}");
        assert_eq!(problem["code"], "parent_not_permitted");
        assert_matches_schema("PATCH", "/v1/files/{file_id}", 403, &problem);
    }
    let still: Value = t.get_file(&limited, &file).await;
    assert_eq!(still["parent"], "case-2");
    // WHEN it tries to move a file of another parent into its own, THEN 404: it cannot see it
    let (status, _) = patch(&t, &limited, &other, json!({"parent": "case-1"})).await;
    assert_eq!(status, 404);

    // WHEN a tenant-wide token moves that file into one of its parents, THEN it sees it; moved
    // out again, it does not
    let (status, _) = patch(&t, &wide, &other, json!({"parent": "case-1"})).await;
    assert_eq!(status, 200);
    assert_eq!(t.file_status(&limited, &other).await, 200);
    let (status, listed) = t
        .call(Method::GET, &limited, "/v1/files?parent=case-1", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], other.as_str());
    let (status, _) = patch(&t, &wide, &other, json!({"parent": "case-7"})).await;
    assert_eq!(status, 200);
    assert_eq!(t.file_status(&limited, &other).await, 404);
}

/// Walks every page of `query` (limit 2) and returns the names in order, checking each page.
async fn walk(t: &TestStack, token: &str, query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let path = match &cursor {
            Some(c) => format!("/v1/files?{query}&limit=2&cursor={c}"),
            None => format!("/v1/files?{query}&limit=2"),
        };
        let (status, page) = t.call(Method::GET, token, &path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_matches_schema("GET", "/v1/files", 200, &page);
        let items = page["items"].as_array().unwrap();
        names.extend(
            items
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), 2, "only the last page is short");
                cursor = Some(next.to_string());
            }
            None => return names,
        }
    }
    panic!("more than 50 pages");
}

#[tokio::test]
async fn listings_read_only_the_permitted_parents_and_page_across_them() {
    // GIVEN files in three parents a token names, in one it does not, and without a parent,
    // created one after the other (names sort differently from creation)
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    let placed = [
        ("m", Some("case-1")),
        ("c", Some("case 2")),
        ("x", Some("case-9")),
        ("k", Some("case-1")),
        ("a", None),
        ("q", Some("case-3")),
        ("e", Some("case 2")),
        ("z", Some("case-9")),
        ("b", Some("case-1")),
        ("h", Some("case-3")),
        ("p", Some("case 2")),
    ];
    for (name, parent) in placed {
        let mut body = json!({"name": name, "size": name.len(), "content_type": "text/plain"});
        if let Some(parent) = parent {
            body["parent"] = json!(parent);
            body["tags"] = json!([if name < "h" { "early" } else { "late" }]);
        }
        t.upload(&wide, &body, name.as_bytes()).await;
    }
    let limited = token_limited_to(
        &t,
        "acme",
        "lena",
        "files:read",
        &["case-1", "case 2", "case-3"],
    );
    let permitted: Vec<&str> = placed
        .iter()
        .filter(|(_, p)| matches!(p, Some("case-1" | "case 2" | "case-3")))
        .map(|(n, _)| *n)
        .collect();
    let newest_first: Vec<String> = permitted.iter().rev().map(|n| n.to_string()).collect();
    let mut by_name: Vec<String> = permitted.iter().map(|n| n.to_string()).collect();
    by_name.sort();

    // WHEN it lists without a parent, page by page (2 per page, cursors across the parents)
    // THEN every file of its parents comes once, in the order asked, and nothing else
    assert_eq!(
        walk(&t, &limited, "order_by=-created_at").await,
        newest_first
    );
    assert_eq!(walk(&t, &limited, "order_by=name").await, by_name);
    let mut by_name_desc = by_name.clone();
    by_name_desc.reverse();
    assert_eq!(walk(&t, &limited, "order_by=-name").await, by_name_desc);
    // (no index sorts by size: gathered from the parents' ranges and sorted)
    let by_size = walk(&t, &limited, "order_by=-size").await;
    assert_eq!(
        by_size.iter().cloned().collect::<BTreeSet<_>>(),
        by_name.iter().cloned().collect::<BTreeSet<_>>()
    );
    let oldest_first: Vec<String> = permitted.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        walk(&t, &limited, "order_by=created_at").await,
        oldest_first
    );
    // with a filter the parents' ranges do not apply (a tag): still only theirs
    let late: Vec<String> = newest_first
        .iter()
        .filter(|n| n.as_str() >= "h")
        .cloned()
        .collect();
    assert_eq!(walk(&t, &limited, "tag=late").await, late);
    // one of its parents, by its (percent-decoded) name
    assert_eq!(
        walk(&t, &limited, "parent=case%202").await,
        vec!["p", "e", "c"]
    );

    // AND counts agree
    let count = |query: &'static str| {
        let t = &t;
        let limited = limited.clone();
        async move {
            let (status, body) = t
                .call(
                    Method::GET,
                    &limited,
                    &format!("/v1/files?count_only=true{query}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_matches_schema("GET", "/v1/files", 200, &body);
            body["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count("").await, permitted.len() as u64);
    assert_eq!(count("&tag=late").await, late.len() as u64);
    assert_eq!(count("&parent=case-1").await, 3);
    // A parent it does not name is an empty listing, as another tenant's parent is
    assert_eq!(count("&parent=case-9").await, 0);
    let (status, empty) = t
        .call(Method::GET, &limited, "/v1/files?parent=case-9", None)
        .await;
    assert_eq!(
        (status, &empty),
        (200, &json!({"items": [], "next_cursor": null}))
    );
    let (_, globex_view) = t
        .call(
            Method::GET,
            &t.token_with("globex", "gina", "files:read"),
            "/v1/files?parent=case-9",
            None,
        )
        .await;
    assert_eq!(empty, globex_view);

    // AND a cursor of the limited token is not one of another token's listing
    let (_, first) = t
        .call(Method::GET, &limited, "/v1/files?limit=2", None)
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, problem) = t
        .call(
            Method::GET,
            &wide,
            &format!("/v1/files?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}

#[tokio::test]
async fn a_parents_claim_that_cannot_be_read_is_403_never_a_wider_token() {
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    t.upload(
        &wide,
        &json!({"name": "a.txt", "size": 1, "content_type": "text/plain", "parent": "a"}),
        b"a",
    )
    .await;
    let eleven: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    for claim in [
        json!([]),
        json!(""),
        json!("[\"a\"]"),
        json!(["a,b"]),
        json!(["100%"]),
        json!({"a": "b"}),
        json!(eleven),
    ] {
        let token = t.token_with_claims("acme", "lena", ALL, json!({"files_parents": claim}));
        for path in ["/v1/files", "/v1/files?parent=a"] {
            let (status, problem) = t.call(Method::GET, &token, path, None).await;
            assert_eq!(status, 403, "{claim}: {problem}");
            assert_eq!(problem["code"], "invalid_token_claim", "{claim}");
            assert_eq!(problem["claim"], "files_parents");
            assert_matches_schema("GET", "/v1/files", 403, &problem);
        }
    }
    // A plain string of space-separated parents (what an IdP without array claims can send) works
    let token = t.token_with_claims("acme", "lena", ALL, json!({"files_parents": "a b%20c"}));
    let (status, listed) = t.call(Method::GET, &token, "/v1/files", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["name"], "a.txt");
}

/// `POST /v1/files` (one-request upload) as `curl -F` sends it: text fields, then the content.
async fn post_form(
    t: &TestStack,
    token: &str,
    fields: &[(&str, &str)],
    content: &[u8],
) -> (u16, Value) {
    const BOUNDARY: &str = "containers-7d2e";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let resp = t
        .http
        .post(t.url("/v1/files"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_request_uploads_follow_the_same_parents() {
    // GIVEN a token limited to case-1, a file in case-9 and one in case-1, and another tenant's
    let t = TestStack::start().await;
    let wide = t.token_with("acme", "alice", ALL);
    let limited = token_limited_to(&t, "acme", "lena", ALL, &["case-1"]);
    let outside = jpeg_in(&t, &wide, "out.jpg", Some("case-9")).await;
    let inside = jpeg_in(&t, &wide, "in.jpg", Some("case-1")).await;
    let foreign = jpeg_in(
        &t,
        &t.token_with("globex", "gina", ALL),
        "f.jpg",
        Some("case-1"),
    )
    .await;

    // WHEN it posts new files: THEN only into case-1
    for fields in [
        vec![("name", "n.txt"), ("parent", "case-9")],
        vec![("name", "n.txt")],
    ] {
        let (status, problem) = post_form(&t, &limited, &fields, b"n").await;
        assert_eq!(status, 403, "{fields:?}: {problem}");
        assert_eq!(problem["code"], "parent_not_permitted");
        assert_matches_schema("POST", "/v1/files", 403, &problem);
    }
    let (status, file) = post_form(
        &t,
        &limited,
        &[("name", "n.txt"), ("parent", "case-1")],
        b"n",
    )
    .await;
    assert_eq!(status, 201, "{file}");

    // WHEN it posts a new revision: THEN of the file inside only; the one outside answers as
    // another tenant's file
    let (status, foreign_answer) = post_form(&t, &limited, &[("file_id", &foreign)], b"r").await;
    assert_eq!(status, 404, "{foreign_answer}");
    let (status, answer) = post_form(&t, &limited, &[("file_id", &outside)], b"r").await;
    assert_eq!((status, &answer), (404, &foreign_answer));
    let (status, revised) = post_form(&t, &limited, &[("file_id", &inside)], b"r").await;
    assert!(status == 201, "{revised}");
}
