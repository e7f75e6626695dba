//! The first vertical slice through the real parts: create an upload, PUT the bytes to S3 with the
//! presigned URL, let the S3 event make the file ready, read it, download it through a 302.

use integration_tests::openapi::assert_request_violates_schema;
use integration_tests::{
    TestStack, assert_matches_schema, assert_request_matches_schema, sha256_hex, test_bytes,
};
use serde_json::{Value, json};

#[tokio::test]
async fn upload_process_read_and_download_round_trip() {
    // GIVEN a running stack and a tenant's token
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(200_000, 1);
    let name = "Q3 report \"final\"; é.txt";

    // WHEN the client declares the file
    let request = json!({
        "name": name, "size": content.len(), "content_type": "text/plain",
        "parent": "case-42", "tags": ["legal", "q3"], "metadata": {"case-id": "42"},
        "sha256": sha256_hex(&content),
    });
    assert_request_matches_schema("POST", "/v1/uploads", &request);
    let (status, upload) = t.create_upload(&token, &request).await;

    // THEN it gets a presigned PUT under the tenant's prefix, with nothing of the name in the key
    assert_eq!(status, 201, "{upload}");
    assert_matches_schema("POST", "/v1/uploads", 201, &upload);
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    assert_eq!(upload["method"], "PUT");
    let url = upload["url"].as_str().unwrap();
    let upload_id = upload["upload_id"].as_str().unwrap();
    assert!(
        url.contains(&format!("/uploads/acme/{upload_id}?")),
        "{url}"
    );
    assert!(!url.contains("report"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(upload["headers"]["content-type"], "text/plain");
    assert!(
        upload["headers"]["x-amz-checksum-sha256"].is_string(),
        "{upload}"
    );

    // AND until the content arrives the file is pending and cannot be downloaded
    let pending: Value = t.get_file(&token, &file_id).await;
    assert_eq!(pending["status"], "pending");
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &pending);
    let early = t
        .http
        .get(t.url(&format!("/v1/files/{file_id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409);
    let problem: Value = early.json().await.unwrap();
    assert_matches_schema("GET", "/v1/files/{file_id}/content", 409, &problem);

    // WHEN the bytes are PUT straight to S3
    let put = t.put_content(&upload, content.clone()).await;
    assert_eq!(put, 200);

    // THEN the S3 event makes the file ready, with the real size, as revision 1
    let ready = t.wait_for_status(&token, &file_id, "ready").await;
    assert_matches_schema("GET", "/v1/files/{file_id}", 200, &ready);
    assert_eq!(ready["id"], file_id.as_str());
    assert_eq!(ready["name"], name);
    assert_eq!(ready["size"], content.len());
    assert_eq!(ready["revision"], 1);
    assert_eq!(ready["parent"], "case-42");
    assert_eq!(ready["tags"], json!(["legal", "q3"]));
    assert_eq!(ready["metadata"], json!({"case-id": "42"}));
    assert_eq!(ready["created_by"], json!({"id": "alice", "type": "user"}));
    assert_eq!(ready["updated_by"], ready["created_by"]);
    assert_eq!(ready["sha256"], sha256_hex(&content).as_str());
    for field in ["created_at", "updated_at", "content_type"] {
        assert!(ready[field].is_string(), "{field} in {ready}");
    }
    assert!(ready.get("tenant_id").is_none() && ready.get("object_key").is_none());

    // AND the record has an ETag that answers If-None-Match with 304
    let resp = t.get_file_response(&token, &file_id).await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let not_modified = t
        .http
        .get(t.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_matches_schema("GET", "/v1/files/{file_id}", 304, &Value::Null);

    // WHEN the client downloads it
    let redirect = t
        .http
        .get(t.url(&format!("/v1/files/{file_id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    // THEN it is sent to a presigned GET that returns the same bytes, named safely
    assert_eq!(redirect.status(), 302);
    assert_matches_schema("GET", "/v1/files/{file_id}/content", 302, &Value::Null);
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    let download = t.http.get(&location).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.starts_with("attachment; "), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''Q3%20report%20%22final%22%3B%20%C3%A9.txt"),
        "{disposition}"
    );
    assert_eq!(download.headers()["content-type"], "text/plain");
    assert_eq!(download.bytes().await.unwrap().as_ref(), content.as_slice());

    // AND a tampered download URL is refused by S3
    let tampered = flip_last_signature_digit(&location);
    assert_ne!(tampered, location);
    assert_eq!(t.http.get(&tampered).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn tenants_never_see_each_others_files() {
    let t = TestStack::start().await;
    let alice = t.token("acme", "alice");
    let mallory = t.token("globex", "mallory");
    let content = b"secret".to_vec();
    let (_, upload) = t
        .create_upload(
            &alice,
            &json!({"name": "a.txt", "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&upload, content).await;
    let file_id = upload["file_id"].as_str().unwrap();
    t.wait_for_status(&alice, file_id, "ready").await;

    for (path, template) in [
        (format!("/v1/files/{file_id}"), "/v1/files/{file_id}"),
        (
            format!("/v1/files/{file_id}/content"),
            "/v1/files/{file_id}/content",
        ),
    ] {
        let resp = t
            .http
            .get(t.url(&path))
            .bearer_auth(&mallory)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert_matches_schema("GET", template, 404, &body);
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let t = TestStack::start().await;
    let missing = t
        .http
        .get(t.url("/v1/files/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_matches_schema("GET", "/v1/files/{file_id}", 401, &body);
    let forged = t.token("acme", "alice").replace('.', ".x");
    let bad = t
        .http
        .post(t.url("/v1/uploads"))
        .bearer_auth(forged)
        .json(&json!({"name": "a", "size": 1, "content_type": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.unwrap();
    assert_matches_schema("POST", "/v1/uploads", 401, &body);
}

#[tokio::test]
async fn bad_input_gets_a_problem_never_a_500() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let long_name = "x".repeat(300);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "{\"name\": ".into(),
            400,
            "malformed_json",
        ),
        ("empty body", "".into(), 400, "malformed_json"),
        ("not an object", "[1,2]".into(), 422, "invalid_body"),
        (
            "missing size",
            json!({"name": "a", "content_type": "text/plain"}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "negative size",
            json!({"name": "a", "size": -1, "content_type": "text/plain"}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "unknown field",
            json!({"name": "a", "size": 1, "content_type": "text/plain", "owner": "x"}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "empty name",
            json!({"name": "", "size": 1, "content_type": "text/plain"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "300-character name",
            json!({"name": long_name, "size": 1, "content_type": "text/plain"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "control characters",
            json!({"name": "a\u{0007}b", "size": 1, "content_type": "text/plain"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "bad content type",
            json!({"name": "a", "size": 1, "content_type": "text"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "bad sha256",
            json!({"name": "a", "size": 1, "content_type": "text/plain", "sha256": "abc"})
                .to_string(),
            422,
            "invalid_field",
        ),
        (
            "too large",
            json!({"name": "a", "size": 6u64 << 30, "content_type": "text/plain"}).to_string(),
            413,
            "file_too_large",
        ),
    ];
    for (what, body, status, code) in cases {
        let body_sent = body.clone();
        let resp = t
            .http
            .post(t.url("/v1/uploads"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], code, "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}");
        assert!(problem["detail"].is_string(), "{what}");
        assert_matches_schema("POST", "/v1/uploads", status, &problem);
        // The contract refuses what the handler refuses, where a schema can tell (not the
        // configured size limit).
        if let Ok(sent) = serde_json::from_str::<Value>(&body_sent)
            && what != "too large"
        {
            assert_request_violates_schema("POST", "/v1/uploads", &sent);
        }
    }
    // An id that cannot exist is a plain 404, and so is a bad disposition on it... after the id check.
    let resp = t.get_file_response(&token, "not-an-id").await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn s3_refuses_content_that_differs_from_the_declaration() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let declared = b"exactly this".to_vec();
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "a.txt", "size": declared.len(), "content_type": "text/plain", "sha256": sha256_hex(&declared)}),
        )
        .await;
    let file_id = upload["file_id"].as_str().unwrap();

    // Same length, other bytes: the signed checksum does not match.
    let swapped = t.put_content_raw(&upload, b"exactly that".to_vec()).await;
    assert!(swapped.status().is_client_error(), "{}", swapped.status());

    // Another length: the signed Content-Length does not match.
    let mut request = t.http.put(upload["url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let longer = request
        .body(b"exactly this, and more".to_vec())
        .send()
        .await
        .unwrap();
    assert!(longer.status().is_client_error(), "{}", longer.status());

    // Nothing landed, so the file is still pending.
    let body: Value = t.get_file(&token, file_id).await;
    assert_eq!(body["status"], "pending");
}

#[tokio::test]
async fn a_second_delivery_of_the_same_event_changes_nothing() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let content = b"hello".to_vec();
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "a.txt", "size": 5, "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&upload, content).await;
    let file_id = upload["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "ready").await;
    let before = t.get_file_response(&token, file_id).await;
    let etag_before = before.headers()["etag"].clone();

    // The same S3 event again, as S3's at-least-once delivery may send it.
    let key = format!("uploads/acme/{}", upload["upload_id"].as_str().unwrap());
    let event: aws_lambda_events::s3::S3Event = serde_json::from_value(json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-23T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "local"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
               "bucket": {"name": t.stack.app.config.bucket_name, "ownerIdentity": {"principalId": "local"}, "arn": "arn:aws:s3:::b"},
               "object": {"key": key, "size": 5, "eTag": "x", "sequencer": "00"}}
    }]}))
    .unwrap();
    let outcome = process_upload::process_record(&t.stack.app, &event.records[0])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        shared::finalize::Outcome::Ignored("upload already processed")
    );
    let after = t.get_file_response(&token, file_id).await;
    assert_eq!(after.headers()["etag"], etag_before);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["revision"], 1);
}

/// The same URL with the last hex digit of its signature changed.
fn flip_last_signature_digit(url: &str) -> String {
    let start = url.find("X-Amz-Signature=").expect("signed URL") + "X-Amz-Signature=".len();
    let end = url[start..].find('&').map_or(url.len(), |i| start + i);
    let last = &url[end - 1..end];
    let flipped = if last == "0" { "1" } else { "0" };
    format!("{}{flipped}{}", &url[..end - 1], &url[end..])
}
