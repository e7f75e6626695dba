//! Changing files after upload: metadata (merge patch, If-Match), revisions (list, get, restore,
//! delete), trash and restore, permanent delete, scopes and ownership. Through the real local stack.

use integration_tests::{TestStack, test_bytes};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Creates a ready file named `name` (processed at once through `complete`).
async fn ready_file(t: &TestStack, token: &str, body: Value, content: &[u8]) -> Value {
    let (status, upload) = t.create_upload(token, &body).await;
    assert_eq!(status, 201, "{upload}");
    let put = t.put_content(&upload, content.to_vec()).await;
    assert_eq!(put, 200);
    let (status, file) = t
        .complete(token, upload["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200, "{file}");
    file
}

/// A new revision of `file_id` with `content`, processed at once.
async fn new_revision(t: &TestStack, token: &str, file_id: &str, content: &[u8]) -> (u16, Value) {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"file_id": file_id, "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    if status != 201 {
        return (status, upload);
    }
    t.put_content(&upload, content.to_vec()).await;
    t.complete(token, upload["upload_id"].as_str().unwrap(), None)
        .await
}

async fn send(
    t: &TestStack,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = t.http.request(method, t.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
    }
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap_or(Value::Null), etag)
}

#[tokio::test]
async fn metadata_changes_with_merge_patch_and_if_match() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "a.txt", "size": 1, "content_type": "text/plain",
        "parent": "case-1", "tags": ["x"], "metadata": {"keep": "1", "drop": "2"}}),
        b"a",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    let (_, _, etag) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &token,
        None,
        None,
    )
    .await;
    let etag = etag.unwrap();

    let (status, patched, new_etag) = send(&t, reqwest::Method::PATCH, &format!("/v1/files/{id}"), &token,
        Some(json!({"name": "b.txt", "parent": "case-2", "tags": ["y"], "metadata": {"drop": null, "new": "3"}})), Some(&etag)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "b.txt");
    assert_eq!(patched["parent"], "case-2");
    assert_eq!(patched["tags"], json!(["y"]));
    assert_eq!(patched["metadata"], json!({"keep": "1", "new": "3"}));
    assert_ne!(new_etag.as_deref(), Some(etag.as_str()));

    // The old ETag is stale now: 412, nothing changes.
    let (status, problem, _) = send(
        &t,
        reqwest::Method::PATCH,
        &format!("/v1/files/{id}"),
        &token,
        Some(json!({"name": "c.txt"})),
        Some(&etag),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (412, Some("precondition_failed"))
    );
    let (_, current, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(current["name"], "b.txt");

    // Bad patches are 422, never 500.
    for bad in [
        json!({"name": null}),
        json!({"name": ""}),
        json!({"size": 3}),
        json!({"metadata": {"bad key": "v"}}),
    ] {
        let (status, problem, _) = send(
            &t,
            reqwest::Method::PATCH,
            &format!("/v1/files/{id}"),
            &token,
            Some(bad.clone()),
            None,
        )
        .await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
}

#[tokio::test]
async fn renaming_or_moving_onto_a_taken_name_is_409_and_frees_the_old_name() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let a = ready_file(
        &t,
        &token,
        json!({"name": "a.txt", "size": 1, "content_type": "text/plain", "parent": "p"}),
        b"a",
    )
    .await;
    let b = ready_file(
        &t,
        &token,
        json!({"name": "b.txt", "size": 1, "content_type": "text/plain", "parent": "p"}),
        b"b",
    )
    .await;
    let a_id = a["id"].as_str().unwrap();
    let (status, problem, _) = send(
        &t,
        reqwest::Method::PATCH,
        &format!("/v1/files/{a_id}"),
        &token,
        Some(json!({"name": "B.TXT"})),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "name_conflict");
    assert_eq!(problem["existing_file_id"], b["id"]);
    // A move to another parent is fine, and frees "a.txt" in "p".
    let (status, _, _) = send(
        &t,
        reqwest::Method::PATCH,
        &format!("/v1/files/{a_id}"),
        &token,
        Some(json!({"parent": "q"})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = t
        .create_upload(
            &token,
            &json!({"name": "a.txt", "size": 1, "content_type": "text/plain", "parent": "p"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn of_concurrent_patches_with_one_etag_exactly_one_wins_and_none_is_lost() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "c.txt", "size": 1, "content_type": "text/plain"}),
        b"c",
    )
    .await;
    let id = file["id"].as_str().unwrap().to_string();
    let (_, _, etag) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &token,
        None,
        None,
    )
    .await;
    let etag = etag.unwrap();

    let attempts = (0..6).map(|i| {
        let (id, etag, token) = (id.clone(), etag.clone(), token.clone());
        let t = &t;
        async move {
            send(
                t,
                reqwest::Method::PATCH,
                &format!("/v1/files/{id}"),
                &token,
                Some(json!({"metadata": {format!("k{i}"): "v"}})),
                Some(&etag),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        5,
        "{statuses:?}"
    );

    // Without If-Match every change is merged: none is lost.
    let merges = (0..6).map(|i| {
        let (id, token) = (id.clone(), token.clone());
        let t = &t;
        async move {
            send(
                t,
                reqwest::Method::PATCH,
                &format!("/v1/files/{id}"),
                &token,
                Some(json!({"metadata": {format!("m{i}"): "v"}})),
                None,
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(merges).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (_, current, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}"),
        &token,
        None,
        None,
    )
    .await;
    let keys: BTreeSet<&str> = current["metadata"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for i in 0..6 {
        assert!(
            keys.contains(format!("m{i}").as_str()),
            "m{i} lost: {current}"
        );
    }
}

#[tokio::test]
async fn revision_history_after_upload_replace_restore_and_delete_is_exact() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "doc.txt", "size": 2, "content_type": "text/plain"}),
        b"v1",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    assert_eq!(new_revision(&t, &token, id, b"v2!").await.0, 200);
    let (status, replaced) = {
        let (s, upload) = t.create_upload(&token, &json!({"name": "DOC.txt", "size": 4, "content_type": "text/plain", "replace": true})).await;
        assert_eq!(s, 201);
        t.put_content(&upload, b"v3!!".to_vec()).await;
        t.complete(&token, upload["upload_id"].as_str().unwrap(), None)
            .await
    };
    assert_eq!((status, replaced["revision"].clone()), (200, json!(3)));

    // Restore revision 1 as revision 4: a server-side copy, the same bytes.
    let (status, restored, _) = send(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/revisions/1/restore"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 201, "{restored}");
    assert_eq!(restored["revision"], 4);
    assert_eq!(restored["size"], 2);
    assert_eq!(t.download(&token, id).await, b"v1");

    let (_, list, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}/revisions"),
        &token,
        None,
        None,
    )
    .await;
    let revisions: Vec<(u64, u64, bool)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["size"].as_u64().unwrap(),
                r["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        revisions,
        vec![(1, 2, false), (2, 3, false), (3, 4, false), (4, 2, true)]
    );

    // One revision, with its own download URL.
    let (status, second, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}/revisions/2"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let bytes = t
        .http
        .get(second["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"v2!");

    // Deleting: the current revision cannot go; an old one can (admin only), with its object.
    let (status, problem, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}/revisions/4"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("current_revision"))
    );
    let (status, problem, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}/revisions/2"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, _, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}/revisions/2"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        t.stack
            .app
            .objects
            .head(&second_object_key(&t, &second))
            .await
            .unwrap()
            .is_none()
    );
    let (_, list, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}/revisions"),
        &token,
        None,
        None,
    )
    .await;
    let numbers: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 3, 4]);
    let (status, _, _) = send(
        &t,
        reqwest::Method::GET,
        &format!("/v1/files/{id}/revisions/2"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// The S3 key behind a revision's download URL (path-style: /bucket/key?query).
fn second_object_key(t: &TestStack, revision: &Value) -> String {
    let url = revision["download_url"].as_str().unwrap();
    let path = url.split('?').next().unwrap();
    let bucket = &t.stack.app.config.bucket_name;
    path.split(&format!("/{bucket}/"))
        .nth(1)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn trash_hides_a_file_frees_its_name_and_restore_brings_it_back_unless_taken() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "t.txt", "size": 1, "content_type": "text/plain"}),
        b"t",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    let (status, trashed, _) = send(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/trash"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!((status, trashed["trashed"].clone()), (200, json!(true)));
    assert_eq!(t.file_status(&token, id).await, 404);

    // Its name is free: another file takes it; restoring now conflicts.
    let other = ready_file(
        &t,
        &token,
        json!({"name": "T.txt", "size": 1, "content_type": "text/plain"}),
        b"o",
    )
    .await;
    let (status, problem, _) = send(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/restore"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("name_conflict"))
    );
    assert_eq!(problem["existing_file_id"], other["id"]);

    // Rename the other one away and the restore succeeds.
    let other_id = other["id"].as_str().unwrap();
    send(
        &t,
        reqwest::Method::PATCH,
        &format!("/v1/files/{other_id}"),
        &token,
        Some(json!({"name": "other.txt"})),
        None,
    )
    .await;
    let (status, restored, _) = send(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/restore"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!((status, restored["trashed"].clone()), (200, json!(false)));
    assert_eq!(t.file_status(&token, id).await, 200);
}

#[tokio::test]
async fn a_permanent_delete_leaves_no_object_and_a_second_one_is_404() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "d.txt", "size": 3, "content_type": "text/plain"}),
        b"one",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    new_revision(&t, &token, id, b"two").await;
    let before = t.stack.list_objects().await;
    assert!(
        before
            .iter()
            .filter(|k| k.starts_with("uploads/acme/"))
            .count()
            >= 2,
        "{before:?}"
    );

    let (status, problem, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, _, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = send(
        &t,
        reqwest::Method::DELETE,
        &format!("/v1/files/{id}"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(t.file_status(&token, id).await, 404);
    let after = t.stack.list_objects().await;
    assert!(after.is_empty(), "objects left behind: {after:?}");
    // Its name is free.
    let (status, _) = t
        .create_upload(
            &token,
            &json!({"name": "d.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn each_route_checks_its_scope_and_hides_other_tenants_files() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(
        &t,
        &token,
        json!({"name": "s.txt", "size": 1, "content_type": "text/plain"}),
        b"s",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    let reader = t.token_with("acme", "alice", "files:read");
    let nothing = t.token_with("acme", "alice", "openid");
    let admin = t.token_with("acme", "root", "files:admin");
    let foreign = t.token_with("globex", "mallory", "files:admin");
    use reqwest::Method as M;
    let routes: Vec<(M, String, Option<Value>, &str)> = vec![
        (M::GET, format!("/v1/files/{id}"), None, "files:read"),
        (
            M::GET,
            format!("/v1/files/{id}/content"),
            None,
            "files:read",
        ),
        (
            M::GET,
            format!("/v1/files/{id}/thumbnails/64"),
            None,
            "files:read",
        ),
        (
            M::GET,
            format!("/v1/files/{id}/revisions"),
            None,
            "files:read",
        ),
        (
            M::GET,
            format!("/v1/files/{id}/revisions/1"),
            None,
            "files:read",
        ),
        (
            M::PATCH,
            format!("/v1/files/{id}"),
            Some(json!({"tags": ["z"]})),
            "files:write",
        ),
        (
            M::POST,
            format!("/v1/files/{id}/revisions/1/restore"),
            None,
            "files:write",
        ),
        (
            M::POST,
            format!("/v1/files/{id}/trash"),
            None,
            "files:write",
        ),
        (
            M::POST,
            format!("/v1/files/{id}/restore"),
            None,
            "files:write",
        ),
        (
            M::DELETE,
            format!("/v1/files/{id}/revisions/1"),
            None,
            "files:admin",
        ),
        (M::DELETE, format!("/v1/files/{id}"), None, "files:admin"),
    ];
    for (method, path, body, needed) in &routes {
        let (status, problem, _) =
            send(&t, method.clone(), path, &nothing, body.clone(), None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("insufficient_scope")),
            "{method} {path}"
        );
        assert_eq!(problem["required_scope"], *needed, "{method} {path}");
        if *needed != "files:read" {
            let (status, _, _) = send(&t, method.clone(), path, &reader, body.clone(), None).await;
            assert_eq!(status, 403, "reader on {method} {path}");
        }
        let (status, problem, _) =
            send(&t, method.clone(), path, &foreign, body.clone(), None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (404, Some("not_found")),
            "foreign {method} {path}"
        );
    }
    for (method, path) in [
        (M::POST, "/v1/uploads".to_string()),
        (
            M::DELETE,
            "/v1/uploads/0123456789abcdef0123456789abcdef".to_string(),
        ),
    ] {
        let (status, _, _) = send(&t, method.clone(), &path, &reader, Some(json!({})), None).await;
        assert_eq!(status, 403, "reader on {method} {path}");
    }
    // Admins can do everything (here: the permanent delete).
    let (status, _, _) = send(
        &t,
        M::DELETE,
        &format!("/v1/files/{id}"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn only_owners_apps_and_admins_replace_someone_elses_content() {
    let t = TestStack::start().await;
    let alice = t.token("acme", "alice");
    let bob = t.token("acme", "bob");
    let app = t.token_with_claims(
        "acme",
        "ingest-bot",
        "files:write",
        json!({"principal_type": "app"}),
    );
    let file = ready_file(
        &t,
        &alice,
        json!({"name": "o.txt", "size": 1, "content_type": "text/plain"}),
        b"o",
    )
    .await;
    let id = file["id"].as_str().unwrap();

    let (status, problem) = new_revision(&t, &bob, id, b"bob").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("not_file_owner"))
    );
    let (status, problem) = t
        .create_upload(
            &bob,
            &json!({"name": "o.txt", "size": 1, "content_type": "text/plain", "replace": true}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("not_file_owner"))
    );
    let (status, _, _) = send(
        &t,
        reqwest::Method::POST,
        &format!("/v1/files/{id}/revisions/1/restore"),
        &bob,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    // Metadata changes are not content: bob may tag it.
    let (status, _, _) = send(
        &t,
        reqwest::Method::PATCH,
        &format!("/v1/files/{id}"),
        &bob,
        Some(json!({"tags": ["seen"]})),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, file) = new_revision(&t, &app, id, b"app").await;
    assert_eq!((status, file["revision"].clone()), (200, json!(2)));
    let (status, file) = new_revision(&t, &alice, id, &test_bytes(10, 1)).await;
    assert_eq!((status, file["revision"].clone()), (200, json!(3)));
}
