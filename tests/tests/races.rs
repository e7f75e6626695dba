//! Races and edge states of uploads, revisions and deletes: who may act on an upload, restores
//! racing deletes and events, `If-Match: *`, multipart uploads that S3 no longer knows, paginated
//! revision lists and permanent deletes that are interrupted. Through the real local stack.

use integration_tests::{TestStack, assert_matches_schema, test_bytes};
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;

/// Creates a ready file (processed at once through `complete`).
async fn ready_file(t: &TestStack, token: &str, name: &str, content: &[u8]) -> Value {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, content.to_vec()).await, 200);
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

/// A request with a bearer token and optional headers; answers status, headers and JSON body.
async fn call(
    t: &TestStack,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = t.http.request(method, t.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

async fn abort(t: &TestStack, token: &str, upload_id: &str) -> (u16, Value) {
    let (status, _, body) = call(
        t,
        reqwest::Method::DELETE,
        &format!("/v1/uploads/{upload_id}"),
        token,
        &[],
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn only_the_uploads_creator_an_app_or_an_admin_may_complete_or_abort_it() {
    let t = TestStack::start().await;
    let alice = t.token("acme", "alice");
    let bob = t.token("acme", "bob");
    let app = t.token_with_claims(
        "acme",
        "ingest-bot",
        "files:write",
        json!({"principal_type": "app"}),
    );
    let admin = t.token_with("acme", "root", "files:admin");

    // Bob knows the id of Alice's upload: he can neither abort it (which would delete her
    // never-filled file) nor complete it.
    let (_, upload) = t
        .create_upload(
            &alice,
            &json!({"name": "mine.txt", "size": 3, "content_type": "text/plain"}),
        )
        .await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let file_id = upload["file_id"].as_str().unwrap();
    let (status, problem) = abort(&t, &bob, upload_id).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("not_file_owner")),
        "{problem}"
    );
    assert_matches_schema("DELETE", "/v1/uploads/{upload_id}", 403, &problem);
    assert_eq!(
        t.file_status(&alice, file_id).await,
        200,
        "the file is still there"
    );
    t.put_content(&upload, b"abc".to_vec()).await;
    let (status, problem) = t.complete(&bob, upload_id, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("not_file_owner")),
        "{problem}"
    );
    // Alice herself may.
    let (status, file) = t.complete(&alice, upload_id, None).await;
    assert_eq!(
        (status, file["status"].as_str()),
        (200, Some("ready")),
        "{file}"
    );

    // An app token and an admin may act on anyone's upload.
    for (n, who) in [&app, &admin].into_iter().enumerate() {
        let (_, upload) = t
            .create_upload(
                &alice,
                &json!({"name": format!("other-{n}.txt"), "size": 1, "content_type": "text/plain"}),
            )
            .await;
        let upload_id = upload["upload_id"].as_str().unwrap();
        t.put_content(&upload, b"x".to_vec()).await;
        let (status, file) = t.complete(who, upload_id, None).await;
        assert_eq!(status, 200, "{file}");
        let (_, upload) = t
            .create_upload(
                &alice,
                &json!({"name": format!("gone-{n}.txt"), "size": 1, "content_type": "text/plain"}),
            )
            .await;
        let (status, body) = abort(&t, who, upload["upload_id"].as_str().unwrap()).await;
        assert_eq!(status, 204, "{body}");
        assert_eq!(
            t.file_status(&alice, upload["file_id"].as_str().unwrap())
                .await,
            404
        );
    }
}

/// `POST /v1/files/{id}/revisions/{n}/restore`, with `If-Match` if given.
async fn restore(
    t: &TestStack,
    token: &str,
    file_id: &str,
    revision: u32,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let headers: Vec<(&str, &str)> = if_match.map(|e| ("if-match", e)).into_iter().collect();
    let (status, headers, body) = call(
        t,
        reqwest::Method::POST,
        &format!("/v1/files/{file_id}/revisions/{revision}/restore"),
        token,
        &headers,
    )
    .await;
    let location = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, body)
}

#[tokio::test]
async fn every_restore_answers_201_with_the_location_of_the_new_revision() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(&t, &token, "loc.txt", b"first").await;
    let id = file["id"].as_str().unwrap();
    // The copy's S3 event and the handler race to process each restore: whoever wins, the answer
    // is the same.
    for n in 2..=21u64 {
        let (status, location, body) = restore(&t, &token, id, 1, None).await;
        assert_eq!(status, 201, "{body}");
        assert_matches_schema(
            "POST",
            "/v1/files/{file_id}/revisions/{revision}/restore",
            201,
            &body,
        );
        assert_eq!(body["revision"], n, "{body}");
        assert_eq!(
            location.as_deref(),
            Some(format!("/v1/files/{id}/revisions/{n}").as_str()),
            "restore {n}: {body}"
        );
    }
}

#[tokio::test]
async fn restoring_a_revision_whose_object_was_deleted_meanwhile_is_404_not_500() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let file = ready_file(&t, &token, "gone.txt", b"one").await;
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(new_revision(&t, &token, &id, b"two").await.0, 200);

    // Deterministic: `DELETE .../revisions/1` deletes the object first and the record second; a
    // restore that read the record in between copies a key that is gone.
    let first = t
        .stack
        .app
        .files
        .find_revision("acme", &id, 1)
        .await
        .unwrap()
        .unwrap();
    t.stack.app.objects.delete(&first.object_key).await.unwrap();
    let (status, _, problem) = restore(&t, &token, &id, 1, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("not_found")),
        "{problem}"
    );
    assert_matches_schema(
        "POST",
        "/v1/files/{file_id}/revisions/{revision}/restore",
        404,
        &problem,
    );
    // Nothing changed, and no object was left by the failed copy.
    let current: Value = t.get_file(&token, &id).await;
    assert_eq!(current["revision"], 2);
    let objects = t.stack.list_objects().await;
    assert_eq!(objects.len(), 1, "only revision 2's object: {objects:?}");

    // And the real race, many times: never a 500, and a restore that won has the old bytes.
    for round in 0..12 {
        let file = ready_file(&t, &token, &format!("race-{round}.txt"), b"old").await;
        let id = file["id"].as_str().unwrap().to_string();
        assert_eq!(new_revision(&t, &token, &id, b"newer").await.0, 200);
        let revision_path = format!("/v1/files/{id}/revisions/1");
        let delete = call(&t, reqwest::Method::DELETE, &revision_path, &admin, &[]);
        let restored = restore(&t, &token, &id, 1, None);
        let ((deleted, _, deleted_body), (status, location, body)) = tokio::join!(delete, restored);
        assert_eq!(deleted, 204, "round {round}: {deleted_body}");
        match status {
            201 => {
                assert_eq!(body["revision"], 3, "{body}");
                assert_eq!(
                    location.as_deref(),
                    Some(format!("/v1/files/{id}/revisions/3").as_str())
                );
                assert_eq!(t.download(&token, &id).await, b"old");
            }
            404 | 409 => assert_matches_schema(
                "POST",
                "/v1/files/{file_id}/revisions/{revision}/restore",
                status,
                &body,
            ),
            other => panic!("round {round}: restore answered {other}: {body}"),
        }
    }
}

#[tokio::test]
async fn if_match_star_means_the_file_exists_not_the_version_read() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(&t, &token, "star.txt", b"one").await;
    let id = file["id"].as_str().unwrap().to_string();

    // An upload with if_match "*", and another revision landing before its content does.
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"file_id": id, "size": 4, "content_type": "text/plain", "if_match": "*"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(new_revision(&t, &token, &id, b"two").await.0, 200);
    t.put_content(&upload, b"four".to_vec()).await;
    let (status, done) = t
        .complete(&token, upload["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        (status, done["revision"].clone()),
        (200, json!(3)),
        "{done}"
    );
    // A concrete stale ETag still loses.
    let stale = format!("\"{id}-1\"");
    let (status, problem) = t
        .create_upload(
            &token,
            &json!({"file_id": id, "size": 1, "content_type": "text/plain", "if_match": stale}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (412, Some("precondition_failed"))
    );
    let (status, _, problem) = restore(&t, &token, &id, 1, Some(&stale)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (412, Some("precondition_failed"))
    );

    // Restores with If-Match: * while the file keeps changing (tags, new revisions): none is 412.
    for round in 0..10u32 {
        let patch = t
            .http
            .patch(t.url(&format!("/v1/files/{id}")))
            .bearer_auth(&token)
            .header("content-type", "application/merge-patch+json")
            .body(json!({"tags": [format!("round-{round}")]}).to_string())
            .send();
        let content = test_bytes(8, u64::from(round));
        let revision = new_revision(&t, &token, &id, &content);
        let restored = restore(&t, &token, &id, 1, Some("*"));
        let (patched, (uploaded, uploaded_body), (status, location, body)) =
            tokio::join!(patch, revision, restored);
        assert_eq!(patched.unwrap().status(), 200);
        assert_eq!(uploaded, 200, "{uploaded_body}");
        assert_eq!(status, 201, "round {round}: {body}");
        assert!(location.is_some(), "{body}");
    }
}

/// Multipart from 8 MiB on, in parts of 8 MiB.
async fn multipart_stack() -> TestStack {
    TestStack::start_with(|c| {
        c.multipart_threshold_bytes = 8 * MIB;
        c.multipart_part_bytes = 8 * MIB;
    })
    .await
}

// The local S3 endpoint must answer CompleteMultipartUpload of an unknown upload id with
// NoSuchUpload, as S3 does; today it answers InvalidPart (local/src/s3.rs checks the part files
// first) or AccessDenied (s3s-fs). With that fixed, drop the `ignore`.
#[tokio::test]
async fn a_multipart_upload_that_s3_no_longer_knows_is_gone_not_incomplete_forever() {
    let t = multipart_stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes((16 * MIB) as usize, 3);
    let declare = json!({"name": "big.bin", "size": content.len(), "content_type": "application/octet-stream"});
    let (status, upload) = t.create_upload(&token, &declare).await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["upload_id"].as_str().unwrap();
    let file_id = upload["file_id"].as_str().unwrap();
    let parts = t.put_parts(&upload, &content).await;

    // The bucket's lifecycle rule (AbortIncompleteMultipartUpload) aborts it in S3, behind the
    // API's back, while the session is still pending.
    let session = t
        .stack
        .app
        .files
        .get_upload("acme", upload_id)
        .await
        .unwrap()
        .unwrap();
    let shared::domain::UploadKind::Multipart { s3_upload_id, .. } = &session.kind else {
        panic!("not multipart: {session:?}");
    };
    t.stack
        .app
        .objects
        .abort_multipart(&session.object_key, s3_upload_id)
        .await
        .unwrap();

    for attempt in 0..2 {
        let resp = t
            .http
            .post(t.url(&format!("/v1/uploads/{upload_id}/complete")))
            .bearer_auth(&token)
            .json(&parts)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 410, "attempt {attempt}");
        assert!(
            resp.headers().get("retry-after").is_none(),
            "nothing to wait for"
        );
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "upload_expired", "{problem}");
        assert_matches_schema("POST", "/v1/uploads/{upload_id}/complete", 410, &problem);
    }
    // The session stopped being pending, and took its never-filled file (and name) with it.
    let session = t
        .stack
        .app
        .files
        .get_upload("acme", upload_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.status, shared::domain::UploadStatus::Aborted);
    assert_eq!(t.file_status(&token, file_id).await, 404);
    assert!(t.stack.list_objects().await.is_empty());
    let (status, again) = t.create_upload(&token, &declare).await;
    assert_eq!(status, 201, "the name is free: {again}");

    // NoSuchUpload after a completion that did land is still "completed by an earlier call".
    let parts = t.put_parts(&again, &content).await;
    let again_id = again["upload_id"].as_str().unwrap();
    for _ in 0..2 {
        let (status, file) = t.complete(&token, again_id, Some(&parts)).await;
        assert_eq!(
            (status, file["status"].as_str()),
            (200, Some("ready")),
            "{file}"
        );
    }
}

#[tokio::test]
async fn revisions_are_listed_by_signed_keyset_pages() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let file = ready_file(&t, &token, "pages.txt", b"r1").await;
    let id = file["id"].as_str().unwrap().to_string();
    let other = ready_file(&t, &token, "other.txt", b"o").await;
    let other_id = other["id"].as_str().unwrap().to_string();
    for _ in 2..=16 {
        assert_eq!(restore(&t, &token, &id, 1, None).await.0, 201);
    }

    let list = |path: String, token: String| {
        let t = &t;
        async move {
            let (status, _, body) = call(t, reqwest::Method::GET, &path, &token, &[]).await;
            (status, body)
        }
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let path = match &cursor {
            None => format!("/v1/files/{id}/revisions?limit=7"),
            Some(c) => format!("/v1/files/{id}/revisions?limit=7&cursor={c}"),
        };
        let (status, page) = list(path, token.clone()).await;
        assert_eq!(status, 200, "{page}");
        assert_matches_schema("GET", "/v1/files/{file_id}/revisions", 200, &page);
        let items = page["items"].as_array().unwrap();
        pages.push(items.len());
        for item in items {
            seen.push(item["revision"].as_u64().unwrap());
            assert_eq!(item["current"], item["revision"] == 16, "{item}");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, vec![7, 7, 2]);
    assert_eq!(seen, (1..=16).collect::<Vec<u64>>());

    // Without limit: 25 a page, so all 16 at once and no cursor.
    let (_, page) = list(format!("/v1/files/{id}/revisions"), token.clone()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 16);
    assert!(page["next_cursor"].is_null());

    // A cursor is valid only for its file and its tenant, and only unaltered.
    let (_, first) = list(format!("/v1/files/{id}/revisions?limit=3"), token.clone()).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (path, who) in [
        (
            format!("/v1/files/{other_id}/revisions?cursor={cursor}"),
            token.clone(),
        ),
        (
            format!("/v1/files/{id}/revisions?cursor={tampered}"),
            token.clone(),
        ),
        (
            format!("/v1/files/{id}/revisions?cursor={cursor}"),
            t.token("globex", "alice"),
        ),
    ] {
        let (status, problem) = list(path.clone(), who).await;
        if status == 404 {
            // Another tenant does not see the file at all.
            assert!(path.contains(&id), "{path}");
            continue;
        }
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{path}: {problem}"
        );
        assert_matches_schema("GET", "/v1/files/{file_id}/revisions", 400, &problem);
    }
    for bad in ["limit=0", "limit=101", "limit=x", "order_by=revision"] {
        let (status, problem) =
            list(format!("/v1/files/{id}/revisions?{bad}"), token.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{bad}: {problem}"
        );
    }
}
