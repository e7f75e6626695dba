//! `POST /v1/files`: a small file in one `multipart/form-data` request, through the local stack
//! (the gateway passes the form base64-encoded as API Gateway does, and enforces API Gateway's and
//! Lambda's payload limits; the S3 endpoint emits the event the processor also handles).

use create_file::{MAX_CONTENT_BYTES, THUMBNAIL_STATUS_HEADER};
use integration_tests::orphans::OrphanCheck;
use integration_tests::{
    TestStack, assert_matches_schema, jpeg_with_orientation, sha256_hex, test_bytes,
};
use serde_json::{Value, json};
use std::time::Instant;

const BOUNDARY: &str = "form-test-6f1c0b2a";

/// One part of a form.
struct Part {
    name: &'static str,
    file_name: Option<&'static str>,
    content_type: Option<&'static str>,
    value: Vec<u8>,
}

fn field(name: &'static str, value: &str) -> Part {
    Part {
        name,
        file_name: None,
        content_type: None,
        value: value.as_bytes().to_vec(),
    }
}

fn content(content_type: &'static str, value: Vec<u8>) -> Part {
    Part {
        name: "content",
        file_name: Some("upload.bin"),
        content_type: Some(content_type),
        value,
    }
}

/// The body as a browser or `curl -F` sends it.
fn form_body(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn post(
    t: &TestStack,
    token: &str,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    send(
        t.http
            .post(t.url(&format!("/v1/files{query}")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let resp = request.send().await.expect("POST /v1/files");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn post_form(t: &TestStack, token: &str, query: &str, parts: &[Part]) -> Answer {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    post(t, token, query, &content_type, form_body(parts)).await
}

/// A new text file in one request: 201 and its id.
async fn new_text_file(t: &TestStack, token: &str, name: &str, text: &str) -> Answer {
    let answer = post_form(
        t,
        token,
        "",
        &[
            field("name", name),
            content("text/plain", text.as_bytes().to_vec()),
        ],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_uploads_in_one_request_and_comes_back_ready_with_its_thumbnails() {
    // GIVEN a stack and a photo
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let photo = jpeg_with_orientation(640, 480, 1);

    // WHEN it is sent in one request, waiting for the thumbnails
    let started = Instant::now();
    let answer = post_form(
        &t,
        &token,
        "?wait=10",
        &[
            field("name", "photo.jpg"),
            field("parent", "case-42"),
            field("tags", "site"),
            field("tags", "before"),
            field("metadata", r#"{"camera": "phone"}"#),
            field("sha256", &sha256_hex(&photo)),
            content("image/jpeg", photo.clone()),
        ],
    )
    .await;
    let took = started.elapsed();

    // THEN the answer is the ready file with its thumbnails, where Location says
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_matches_schema("POST", "/v1/files", 201, &answer.body);
    let file = &answer.body;
    let id = file["id"].as_str().unwrap();
    assert_eq!(answer.header("location"), format!("/v1/files/{id}"));
    assert_eq!(file["status"], "ready");
    assert_eq!(file["revision"], 1);
    assert_eq!(file["size"], photo.len());
    assert_eq!(file["content_type"], "image/jpeg");
    assert_eq!(file["parent"], "case-42");
    assert_eq!(file["tags"], json!(["site", "before"]));
    assert_eq!(file["metadata"], json!({"camera": "phone"}));
    assert_eq!(file["sha256"], sha256_hex(&photo));
    assert_eq!(answer.header(THUMBNAIL_STATUS_HEADER), "ready", "{file}");
    let sizes: Vec<&String> = file["thumbnails"].as_object().unwrap().keys().collect();
    assert_eq!(sizes, ["1024", "256", "64"]);
    println!(
        "one-request upload of a {} byte photo with ?wait: {took:?}",
        photo.len()
    );

    // AND the content downloads as sent, the thumbnail route has them, the record is the same
    assert_eq!(t.download(&token, id).await, photo);
    let thumbnail = t.download_thumbnail(&token, id, 256).await;
    assert_eq!(&thumbnail[..2], b"\xFF\xD8");
    let record = t.get_file_response(&token, id).await;
    assert_eq!(record.headers()["etag"], answer.header("etag"));
    let record: Value = record.json().await.unwrap();
    assert_eq!(record["status"], "ready");
    assert_eq!(record["revision"], 1);

    // WHEN another photo is sent without waiting THEN it is ready, its thumbnails may still be made
    let answer = post_form(
        &t,
        &token,
        "",
        &[
            field("name", "second.jpg"),
            content("image/jpeg", jpeg_with_orientation(320, 240, 1)),
        ],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["status"], "ready");
    let state = answer.header(THUMBNAIL_STATUS_HEADER).to_string();
    assert!(state == "pending" || state == "ready", "{state}");

    // AND nothing is orphaned (the S3 event saw the objects too)
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("one-request uploads of photos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_conflicts_ownership_scope_and_tenants_follow_the_upload_rules() {
    let t = TestStack::start().await;
    let alice = t.token("acme", "alice");
    let bob = t.token("acme", "bob");

    // GIVEN alice's file
    let file = new_text_file(&t, &alice, "notes.txt", "first").await;
    let id = file.body["id"].as_str().unwrap().to_string();
    let etag = file.header("etag").to_string();

    // WHEN she sends a new revision based on its ETag THEN it is revision 2, with the new bytes
    let answer = post_form(
        &t,
        &alice,
        "",
        &[
            field("file_id", &id),
            field("if_match", &etag),
            content("text/plain", b"second".to_vec()),
        ],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["id"], id.as_str());
    assert_eq!(answer.body["revision"], 2);
    assert_eq!(answer.header("location"), format!("/v1/files/{id}"));
    assert_eq!(t.download(&alice, &id).await, b"second");

    // WHEN the same stale ETag is sent again THEN 412
    let answer = post_form(
        &t,
        &alice,
        "",
        &[
            field("file_id", &id),
            field("if_match", &etag),
            content("text/plain", b"third".to_vec()),
        ],
    )
    .await;
    assert_eq!(answer.status, 412, "{}", answer.body);
    assert_eq!(answer.body["code"], "precondition_failed");

    // WHEN a new file takes the same name (another case) THEN 409 naming the holder
    let answer = post_form(
        &t,
        &alice,
        "",
        &[
            field("name", "NOTES.txt"),
            content("text/plain", b"x".to_vec()),
        ],
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_matches_schema("POST", "/v1/files", 409, &answer.body);
    assert_eq!(answer.body["code"], "name_conflict");
    assert_eq!(answer.body["existing_file_id"], id.as_str());

    // WHEN it says replace=true THEN it is revision 3 of the same file
    let answer = post_form(
        &t,
        &alice,
        "",
        &[
            field("name", "notes.txt"),
            field("replace", "true"),
            content("text/plain", b"third".to_vec()),
        ],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["id"], id.as_str());
    assert_eq!(answer.body["revision"], 3);

    // WHEN bob (same tenant, a user) replaces alice's content, either way THEN 403
    for parts in [
        vec![
            field("file_id", &id),
            content("text/plain", b"bob".to_vec()),
        ],
        vec![
            field("name", "notes.txt"),
            field("replace", "true"),
            content("text/plain", b"bob".to_vec()),
        ],
    ] {
        let answer = post_form(&t, &bob, "", &parts).await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert_eq!(answer.body["code"], "not_file_owner");
    }

    // WHEN an app token or an admin does THEN it is a new revision
    let app = t.token_with_claims(
        "acme",
        "importer",
        "files:read files:write",
        json!({"principal_type": "app"}),
    );
    let admin = t.token_with("acme", "carol", "files:read files:write files:admin");
    for (who, revision) in [(&app, 4), (&admin, 5)] {
        let answer = post_form(
            &t,
            who,
            "",
            &[
                field("file_id", &id),
                content("text/plain", b"by app".to_vec()),
            ],
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["revision"], revision);
    }

    // WHEN a read-only token uploads THEN 403 insufficient_scope
    let reader = t.token_with("acme", "alice", "files:read");
    let answer = post_form(
        &t,
        &reader,
        "",
        &[field("name", "r.txt"), content("text/plain", b"r".to_vec())],
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body["code"], "insufficient_scope");

    // WHEN another tenant names the file THEN 404, as for a file that does not exist
    let other = t.token("globex", "alice");
    let answer = post_form(
        &t,
        &other,
        "",
        &[field("file_id", &id), content("text/plain", b"x".to_vec())],
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(answer.body["code"], "not_found");
    // ... and its own file of the same name is no conflict
    new_text_file(&t, &other, "notes.txt", "theirs").await;

    // WHEN the content does not match its declared sha256 or type THEN 422 upload_rejected
    for (parts, reason) in [
        (
            vec![
                field("name", "digest.txt"),
                field("sha256", &sha256_hex(b"something else")),
                content("text/plain", b"this".to_vec()),
            ],
            "checksum_mismatch",
        ),
        (
            vec![
                field("name", "fake.png"),
                content("image/png", b"not a png".to_vec()),
            ],
            "content_mismatch",
        ),
    ] {
        let answer = post_form(&t, &alice, "", &parts).await;
        assert_eq!(answer.status, 422, "{}", answer.body);
        assert_eq!(answer.body["code"], "upload_rejected");
        assert_eq!(answer.body["reason"], reason);
    }

    // AND the history is what was accepted, nothing is orphaned
    let revisions: Value = t
        .http
        .get(t.url(&format!("/v1/files/{id}/revisions")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revisions["items"].as_array().unwrap().len(), 5);
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("revisions and refusals of one-request uploads");
}

/// What is wrong, the request's Content-Type, its body and query, the status and code answered.
type MalformedCase = (
    &'static str,
    String,
    Vec<u8>,
    &'static str,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_forms_are_problems_with_stable_codes() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let form_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let text = || content("text/plain", b"hello".to_vec());
    let cases: Vec<MalformedCase> = vec![
        (
            "no content part",
            form_type.clone(),
            form_body(&[field("name", "a.txt")]),
            "",
            422,
            "invalid_body",
        ),
        (
            "two content parts",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), text(), text()]),
            "",
            422,
            "invalid_body",
        ),
        (
            "an unknown field",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), field("size", "5"), text()]),
            "",
            422,
            "invalid_body",
        ),
        (
            "a field twice",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), field("name", "b.txt"), text()]),
            "",
            422,
            "invalid_body",
        ),
        (
            "no name",
            form_type.clone(),
            form_body(&[text()]),
            "",
            422,
            "invalid_field",
        ),
        (
            "metadata that is not a JSON object",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), field("metadata", "k=v"), text()]),
            "",
            422,
            "invalid_field",
        ),
        (
            "a field over its limit",
            form_type.clone(),
            form_body(&[field("name", &"n".repeat(20_000)), text()]),
            "",
            422,
            "invalid_field",
        ),
        (
            "no boundary",
            "multipart/form-data".into(),
            form_body(&[field("name", "a.txt"), text()]),
            "",
            400,
            "malformed_multipart",
        ),
        (
            "a truncated body",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), text()])[..120].to_vec(),
            "",
            400,
            "malformed_multipart",
        ),
        (
            "another boundary than the header's",
            "multipart/form-data; boundary=other".into(),
            form_body(&[field("name", "a.txt"), text()]),
            "",
            400,
            "malformed_multipart",
        ),
        (
            "an empty body",
            form_type.clone(),
            Vec::new(),
            "",
            400,
            "malformed_multipart",
        ),
        (
            "JSON instead of a form",
            "application/json".into(),
            br#"{"name": "a.txt", "size": 5, "content_type": "text/plain"}"#.to_vec(),
            "",
            415,
            "unsupported_media_type",
        ),
        (
            "a content part over the limit",
            form_type.clone(),
            form_body(&[
                field("name", "big.bin"),
                content(
                    "application/octet-stream",
                    vec![0; MAX_CONTENT_BYTES as usize + 1],
                ),
            ]),
            "",
            413,
            "file_too_large",
        ),
        (
            "wait over 10 s",
            form_type.clone(),
            form_body(&[field("name", "a.txt"), text()]),
            "?wait=11",
            400,
            "invalid_parameter",
        ),
    ];
    for (case, content_type, body, query, status, code) in cases {
        let answer = post(&t, &token, query, &content_type, body).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        assert_eq!(answer.body["code"], code, "{case}: {}", answer.body);
        assert_eq!(
            answer.header("content-type"),
            "application/problem+json",
            "{case}"
        );
        assert_matches_schema("POST", "/v1/files", status, &answer.body);
        if status == 415 {
            assert_eq!(
                answer.header("accept-post"),
                "multipart/form-data",
                "{case}"
            );
        }
    }

    // Nothing was declared for any of them: no file, no object.
    let list: Value = t
        .http
        .get(t.url("/v1/files"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("malformed forms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_size_limit_is_the_platforms_and_is_enforced_at_the_byte() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    assert_eq!(MAX_CONTENT_BYTES, 4_636_672);

    // WHEN the content is exactly at the limit, with 8 KB of headers besides the token (API
    // Gateway takes 10,240 bytes of request line and headers; the event repeats some of them)
    // THEN it is accepted, and downloads whole
    let at_limit = test_bytes(MAX_CONTENT_BYTES as usize, 14);
    let body = form_body(&[
        field("name", "at-limit.bin"),
        field("sha256", &sha256_hex(&at_limit)),
        content("application/octet-stream", at_limit.clone()),
    ]);
    let started = Instant::now();
    let answer = send(
        t.http
            .post(t.url("/v1/files"))
            .bearer_auth(&token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header("x-padding", "p".repeat(8_000))
            .body(body),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["status"], "ready");
    assert_eq!(answer.body["size"], MAX_CONTENT_BYTES);
    assert_eq!(answer.header(THUMBNAIL_STATUS_HEADER), "none");
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(t.download(&token, id).await, at_limit);
    println!("one-request upload of {MAX_CONTENT_BYTES} bytes (the limit): {took:?}");

    // WHEN it is one byte more THEN 413 file_too_large, pointing at the presigned route
    let mut over = at_limit;
    over.push(0);
    let answer = post_form(
        &t,
        &token,
        "",
        &[
            field("name", "over-limit.bin"),
            content("application/octet-stream", over),
        ],
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_matches_schema("POST", "/v1/files", 413, &answer.body);
    assert_eq!(answer.body["code"], "file_too_large");
    assert_eq!(answer.body["limit"], MAX_CONTENT_BYTES);
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains("POST /v1/uploads"), "{detail}");

    // WHEN the body is so large that its event would be over Lambda's 6,291,456 bytes (base64
    // makes 4.8 MB into 6.4 MB) THEN the gateway answers itself, as AWS does, without the function
    let answer = post_form(
        &t,
        &token,
        "",
        &[
            field("name", "too-big-for-lambda.bin"),
            content("application/octet-stream", vec![7; 4_800_000]),
        ],
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.body, json!({"message": "Request Entity Too Large"}));
    assert_matches_schema("POST", "/v1/files", 413, &answer.body);

    // Only the accepted file exists; nothing else was left.
    let list: Value = t
        .http
        .get(t.url("/v1/files"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("one-request uploads at and over the limit");
}
