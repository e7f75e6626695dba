//! Integrity through the real parts: a ready file serves exactly the bytes that were checked,
//! whatever is sent through its upload URL afterwards; objects that no record will ever point at are
//! deleted (or expire by the bucket's lifecycle rule); races answer 4xx; every scenario ends with the
//! no-orphan check (tests/src/orphans.rs).

use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, sha256_hex, test_bytes};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn ready_upload(t: &TestStack, token: &str, name: &str, content: &[u8]) -> (Value, String) {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let put = t.put_content(&upload, content.to_vec()).await;
    assert_eq!(put, 200);
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    t.wait_for_status(token, &file_id, "ready").await;
    (upload, file_id)
}

/// S3's answer to a write refused by `If-None-Match: *`.
async fn assert_precondition_failed(resp: reqwest::Response) {
    assert_eq!(
        resp.status(),
        412,
        "S3 must refuse a second write to the key"
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Code>PreconditionFailed</Code>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_through_the_upload_url_cannot_replace_checked_content() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let checked = b"checked content, 32 bytes long!!".to_vec();
    let (upload, file_id) = ready_upload(&t, &token, "report.txt", &checked).await;
    let before: Value = t.get_file(&token, &file_id).await;

    // The same URL and headers, other bytes of the same size and type (no sha256 was declared).
    let script = b"<script>alert(document.domain)</".to_vec();
    assert_eq!(script.len(), checked.len());
    assert_precondition_failed(t.put_content_raw(&upload, script).await).await;

    t.stack.s3.deliveries_idle().await;
    let served = t.download(&token, &file_id).await;
    assert_eq!(served, checked, "the file serves the checked bytes");
    let after: Value = t.get_file(&token, &file_id).await;
    assert_eq!(after["revision"], before["revision"]);
    assert_eq!(after["updated_at"], before["updated_at"]);
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("second PUT after acceptance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_while_the_first_is_processed_is_refused_too() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let first = test_bytes(4096, 1);
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"name": "a.bin", "size": first.len(), "content_type": "application/octet-stream"}),
        )
        .await;
    assert_eq!(status, 201);
    // Both PUTs at once: S3 takes exactly one of them.
    let second = test_bytes(4096, 2);
    let (a, b) = tokio::join!(
        t.put_content(&upload, first.clone()),
        t.put_content(&upload, second.clone())
    );
    let statuses = [a, b];
    assert!(
        statuses == [200, 412] || statuses == [412, 200],
        "exactly one write wins: {statuses:?}"
    );
    let winner = if statuses[0] == 200 { first } else { second };
    let file_id = upload["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "ready").await;
    let served = t.download(&token, file_id).await;
    assert_eq!(sha256_hex(&served), sha256_hex(&winner));
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("concurrent PUTs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_again_after_a_rejection_are_deleted() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    // Declared an image, sent text: rejected (content_mismatch) and deleted.
    let text = b"not a png at all".to_vec();
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "x.png", "size": text.len(), "content_type": "image/png"}),
        )
        .await;
    assert_eq!(t.put_content(&upload, text.clone()).await, 200);
    let file_id = upload["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "rejected").await;
    t.stack.s3.deliveries_idle().await;
    let key = format!("uploads/acme/{}", upload["upload_id"].as_str().unwrap());
    assert!(!t.stack.list_objects().await.contains(&key));

    // The URL still works (the key is free again): the bytes land, and go.
    assert_eq!(t.put_content(&upload, text).await, 200);
    t.stack.s3.deliveries_idle().await;
    assert!(
        !t.stack.list_objects().await.contains(&key),
        "an object for a rejected upload stays"
    );
    // The rejected file's thumbnails are in a terminal state: no wait.
    let started = Instant::now();
    let resp = t
        .http
        .get(t.url(&format!("/v1/files/{file_id}/thumbnails/256?wait=10")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    let body: Value = resp.json().await.unwrap();
    assert_ne!(body["code"], "thumbnail_pending", "{body}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("PUT after rejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_after_the_file_was_deleted_is_a_4xx_and_keeps_nothing() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let content = b"never wanted".to_vec();
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "gone.txt", "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    let file_id = upload["file_id"].as_str().unwrap();
    let upload_id = upload["upload_id"].as_str().unwrap();
    let deleted = t
        .http
        .delete(t.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(t.put_content(&upload, content).await, 200);
    let (status, body) = t.complete(&token, upload_id, None).await;
    assert!(
        (400..500).contains(&status),
        "complete after delete: {status} {body}"
    );
    assert_eq!(body["code"], "upload_not_pending", "{body}");
    integration_tests::assert_matches_schema(
        "POST",
        "/v1/uploads/{upload_id}/complete",
        status,
        &body,
    );
    // And again (the S3 event may have ended the session first): the same answer.
    let (again, _) = t.complete(&token, upload_id, None).await;
    assert_eq!(again, status);
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("complete after delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_for_an_unknown_or_expired_session_is_deleted() {
    let t = TestStack::start().await;
    // What lands after its session expired looks like this: a key of ours, no session.
    let key = "uploads/acme/019a00000000700080000000000000ff";
    t.stack
        .app
        .objects
        .put_bytes(key, b"late".to_vec(), "text/plain")
        .await
        .unwrap();
    t.stack.s3.deliveries_idle().await;
    assert!(
        !t.stack.list_objects().await.contains(&key.to_string()),
        "the object of an unknown session stays"
    );
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("unknown session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_entries_of_a_never_filled_file_expire_with_it() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (_, abandoned) = t
        .create_upload(
            &token,
            &json!({"name": "never.txt", "size": 3, "content_type": "text/plain", "tags": ["x"]}),
        )
        .await;
    let (filled, _) = {
        let (status, upload) = t
            .create_upload(
                &token,
                &json!({"name": "filled.txt", "size": 3, "content_type": "text/plain", "tags": ["x"]}),
            )
            .await;
        assert_eq!(status, 201);
        assert_eq!(t.put_content(&upload, b"abc".to_vec()).await, 200);
        let id = upload["file_id"].as_str().unwrap().to_string();
        t.wait_for_status(&token, &id, "ready").await;
        (id, upload)
    };
    let client = local_stack::dynamodb::local_client(&t.stack.dynamodb_endpoint).await;
    let entries = client
        .query()
        .table_name(&t.stack.app.config.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("T#acme#TAG#x".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        let file_id = entry["file_id"].as_s().unwrap();
        let ttl = entry
            .get("expires_at_epoch")
            .map(|v| v.as_n().unwrap().clone());
        if *file_id == filled {
            assert_eq!(ttl, None, "a filled file's entry has no TTL");
        } else {
            assert_eq!(file_id, abandoned["file_id"].as_str().unwrap());
            assert!(
                ttl.is_some(),
                "an abandoned upload's tag entry must expire with it"
            );
        }
    }
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("abandoned upload with a tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_does_not_hash_a_multipart_upload_the_event_does() {
    let t = TestStack::start_with(|config| {
        config.multipart_threshold_bytes = 5 << 20;
        config.multipart_part_bytes = 5 << 20;
    })
    .await;
    let token = t.token("acme", "alice");
    let content = test_bytes((5 << 20) + 1234, 7);
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"name": "big.bin", "size": content.len(),
                    "content_type": "application/octet-stream", "sha256": sha256_hex(&content)}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["method"], "MULTIPART");
    let parts = t.put_parts(&upload, &content).await;
    let (status, file) = t
        .complete(&token, upload["upload_id"].as_str().unwrap(), Some(&parts))
        .await;
    // The request only completed the upload in S3; checking the SHA-256 is the event's work.
    assert_eq!(status, 202, "{file}");
    assert_eq!(file["status"], "pending");
    integration_tests::assert_matches_schema(
        "POST",
        "/v1/uploads/{upload_id}/complete",
        202,
        &file,
    );
    let file_id = upload["file_id"].as_str().unwrap();
    let ready = t.wait_for_status(&token, file_id, "ready").await;
    assert_eq!(ready["sha256"], sha256_hex(&content));
    let served = t.download(&token, file_id).await;
    assert_eq!(sha256_hex(&served), sha256_hex(&content));
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("multipart with sha256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_repeated_events_change_nothing_and_leave_nothing() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let (first, file_id) = ready_upload(&t, &token, "kept.txt", b"one").await;
    let (second, _) = ready_upload(&t, &token, "deleted.txt", b"two").await;
    let deleted_id = second["file_id"].as_str().unwrap();
    let resp = t
        .http
        .delete(t.url(&format!("/v1/files/{deleted_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let trash = t
        .http
        .post(t.url(&format!("/v1/files/{file_id}/trash")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(trash.status(), 200);

    // Every event again, twice, in reverse order: for a trashed file and for a deleted one.
    let bucket = t.stack.app.config.bucket_name.clone();
    for upload in [&second, &first, &second, &first] {
        let key = format!("uploads/acme/{}", upload["upload_id"].as_str().unwrap());
        let event: aws_lambda_events::s3::S3Event = serde_json::from_value(json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-23T00:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "local"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
                   "bucket": {"name": bucket, "ownerIdentity": {"principalId": "local"}, "arn": "arn:aws:s3:::b"},
                   "object": {"key": key, "size": 3, "eTag": "x", "sequencer": "00"}}
        }]}))
        .unwrap();
        process_upload::handle(t.stack.app.clone(), event)
            .await
            .unwrap();
    }
    let restored = t
        .http
        .post(t.url(&format!("/v1/files/{file_id}/restore")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200);
    let served = t.download(&token, &file_id).await;
    assert_eq!(served, b"one");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("late and repeated events");
}
