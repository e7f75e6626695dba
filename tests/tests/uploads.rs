//! Uploads made complete and trustworthy: multipart, verification, idempotent and reordered events,
//! abort, limits, names. Through the real local stack.

use integration_tests::{TestStack, sha256_hex, test_bytes};
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;

/// Multipart from 8 MiB on, in parts of (at least) 8 MiB.
async fn multipart_stack() -> TestStack {
    TestStack::start_with(|c| {
        c.multipart_threshold_bytes = 8 * MIB;
        c.multipart_part_bytes = 8 * MIB;
    })
    .await
}

#[tokio::test]
async fn a_40_mb_file_uploads_in_parts_and_downloads_intact() {
    let t = multipart_stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(40_000_000, 7);
    let (status, upload) = t
        .create_upload(&token, &json!({
            "name": "big.bin", "size": content.len(), "content_type": "application/octet-stream",
            "sha256": sha256_hex(&content),
        }))
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["method"], "MULTIPART");
    assert_eq!(upload["part_size"], 8 * MIB);
    assert_eq!(upload["parts"].as_array().unwrap().len(), 5);
    assert!(upload.get("url").is_none());

    let parts = t.put_parts(&upload, &content).await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    // The declared SHA-256 of a multipart object is checked by the S3 event, not by this request.
    let (status, pending) = t.complete(&token, upload_id, Some(&parts)).await;
    assert_eq!(status, 202, "{pending}");
    let file = t
        .wait_for_status(&token, pending["id"].as_str().unwrap(), "ready")
        .await;
    assert_eq!(file["size"], content.len());
    assert_eq!(file["revision"], 1);

    // Completing again answers the same file.
    let (again_status, again) = t.complete(&token, upload_id, Some(&parts)).await;
    assert_eq!(again_status, 200);
    assert_eq!(again["id"], file["id"]);
    assert_eq!(again["revision"], 1);

    let file_id = file["id"].as_str().unwrap();
    let bytes = t.download(&token, file_id).await;
    assert_eq!(sha256_hex(&bytes), sha256_hex(&content));
}

#[tokio::test]
async fn a_multipart_upload_whose_checksum_does_not_match_is_rejected_and_deleted() {
    let t = multipart_stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(9 * MIB as usize, 3);
    let (_, upload) = t
        .create_upload(&token, &json!({
            "name": "liar.bin", "size": content.len(), "content_type": "application/octet-stream",
            "sha256": sha256_hex(b"something else"),
        }))
        .await;
    let parts = t.put_parts(&upload, &content).await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let (status, pending) = t.complete(&token, upload_id, Some(&parts)).await;
    assert_eq!(status, 202, "{pending}");
    let file = t
        .wait_for_status(&token, upload["file_id"].as_str().unwrap(), "rejected")
        .await;
    // Once the event decided, complete says so.
    let (status, problem) = t.complete(&token, upload_id, Some(&parts)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "upload_rejected");
    assert_eq!(problem["reason"], "checksum_mismatch");
    assert_eq!(file["status"], "rejected");
    assert_eq!(file["rejection_reason"], "checksum_mismatch");
    let key = format!("uploads/acme/{}", upload["upload_id"].as_str().unwrap());
    assert!(
        t.stack.app.objects.head(&key).await.unwrap().is_none(),
        "the rejected object is deleted"
    );
}

#[tokio::test]
async fn parts_of_another_length_or_a_short_part_list_are_refused() {
    let t = multipart_stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(17 * MIB as usize, 4);
    let (_, upload) = t
        .create_upload(&token, &json!({"name": "p.bin", "size": content.len(), "content_type": "application/octet-stream"}))
        .await;
    // A part of another length than signed: S3 refuses it.
    let first = &upload["parts"][0];
    let resp = t
        .http
        .put(first["url"].as_str().unwrap())
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // A part list that leaves parts out cannot complete the upload.
    let parts = t.put_parts(&upload, &content).await;
    let short = json!({"parts": [parts["parts"][0], parts["parts"][1]]});
    let (status, problem) = t
        .complete(&token, upload["upload_id"].as_str().unwrap(), Some(&short))
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "invalid_parts");
    let wrong_etag = json!({"parts": [parts["parts"][0], parts["parts"][1],
        {"part_number": 3, "etag": "\"0123456789abcdef0123456789abcdef\""}]});
    let (status, problem) = t
        .complete(
            &token,
            upload["upload_id"].as_str().unwrap(),
            Some(&wrong_etag),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid_parts");
    // The right list still completes it.
    let (status, _) = t
        .complete(&token, upload["upload_id"].as_str().unwrap(), Some(&parts))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_a_part_list_complete_uses_the_parts_s3_holds_once_all_are_there() {
    let t = multipart_stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(20 * MIB as usize, 9);
    let (_, upload) = t
        .create_upload(&token, &json!({"name": "np.bin", "size": content.len(), "content_type": "application/octet-stream"}))
        .await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let parts = upload["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let put_part = |index: usize| {
        let part = &parts[index];
        let start = index * 8 * MIB as usize;
        let len = part["size"].as_u64().unwrap() as usize;
        t.http
            .put(part["url"].as_str().unwrap())
            .body(content[start..start + len].to_vec())
            .send()
    };
    assert_eq!(put_part(0).await.unwrap().status(), 200);
    assert_eq!(put_part(2).await.unwrap().status(), 200);

    // Part 2 is not in S3: the upload cannot complete yet, and the problem says what is missing.
    // (No body at all: the client always sends one, so this goes raw.)
    let complete_path = format!("/v1/uploads/{upload_id}/complete");
    let (status, problem) = t
        .call(reqwest::Method::POST, &token, &complete_path, None)
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "upload_incomplete");
    assert_eq!(problem["missing_parts"], json!([2]));
    let (status, problem) = t.complete(&token, upload_id, Some(&json!({}))).await;
    assert_eq!(status, 409, "an empty object is no list either: {problem}");

    assert_eq!(put_part(1).await.unwrap().status(), 200);
    let (status, file) = t.complete(&token, upload_id, None).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["status"], "ready");
    let bytes = t.download(&token, file["id"].as_str().unwrap()).await;
    assert_eq!(sha256_hex(&bytes), sha256_hex(&content));
}

#[tokio::test]
async fn complete_processes_a_single_put_at_once_and_refuses_before_the_content_landed() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "now.txt", "size": 3, "content_type": "text/plain"}),
        )
        .await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let (status, problem) = t.complete(&token, upload_id, None).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "upload_incomplete");

    t.put_content(&upload, b"abc".to_vec()).await;
    let (status, file) = t.complete(&token, upload_id, None).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["status"], "ready");
    assert_eq!(file["size"], 3);
}

#[tokio::test]
async fn an_aborted_upload_frees_its_name_and_late_bytes_are_deleted() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let body = json!({"name": "draft.txt", "size": 5, "content_type": "text/plain"});
    let (_, upload) = t.create_upload(&token, &body).await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let file_id = upload["file_id"].as_str().unwrap();

    let abort = |id: String| {
        let request = t
            .http
            .delete(t.url(&format!("/v1/uploads/{id}")))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(abort(upload_id.to_string()).await, 204);
    assert_eq!(
        abort(upload_id.to_string()).await,
        204,
        "aborting twice is fine"
    );
    assert_eq!(
        t.file_status(&token, file_id).await,
        404,
        "the never-filled file is gone"
    );

    // The bytes arrive anyway (the URL was still valid): the event finds the session aborted.
    let put = t.put_content(&upload, b"hello".to_vec()).await;
    assert_eq!(put, 200);
    let key = format!("uploads/acme/{upload_id}");
    let mut deleted = false;
    for _ in 0..100 {
        if t.stack.app.objects.head(&key).await.unwrap().is_none() {
            deleted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(deleted, "bytes of an aborted upload are deleted");

    // The name is free again.
    let (status, _) = t.create_upload(&token, &body).await;
    assert_eq!(status, 201);
    // A completed upload cannot be aborted.
    let (_, done) = t
        .create_upload(
            &token,
            &json!({"name": "done.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&done, b"x".to_vec()).await;
    t.wait_for_status(&token, done["file_id"].as_str().unwrap(), "ready")
        .await;
    assert_eq!(
        abort(done["upload_id"].as_str().unwrap().to_string()).await,
        409
    );
}

#[tokio::test]
async fn size_and_type_limits_are_enforced() {
    let t = TestStack::start_with(|c| {
        c.max_upload_bytes = 1000;
        c.allowed_content_types = vec!["image/*".into(), "text/plain".into()];
    })
    .await;
    let token = t.token("acme", "alice");
    let (status, problem) = t
        .create_upload(
            &token,
            &json!({"name": "big.txt", "size": 1001, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(problem["code"], "file_too_large");
    assert_eq!(problem["limit"], 1000);
    let (status, problem) = t
        .create_upload(
            &token,
            &json!({"name": "a.pdf", "size": 10, "content_type": "application/pdf"}),
        )
        .await;
    assert_eq!(status, 415);
    assert_eq!(problem["code"], "unsupported_content_type");
    let (status, _) = t
        .create_upload(
            &token,
            &json!({"name": "a.png", "size": 10, "content_type": "image/png"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn an_executable_declared_as_an_image_is_rejected() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    exe.extend(test_bytes(500, 9));
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "cat.png", "size": exe.len(), "content_type": "image/png"}),
        )
        .await;
    t.put_content(&upload, exe).await;
    let file = t
        .wait_for_status(&token, upload["file_id"].as_str().unwrap(), "rejected")
        .await;
    assert_eq!(file["rejection_reason"], "content_mismatch");
    let download = t
        .http
        .get(t.url(&format!(
            "/v1/files/{}/content",
            upload["file_id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 409);
}

/// The type policy (shared/src/domain/sniff.rs) on files of common types, each declared truthfully
/// (accepted: `ready`) and lied about (rejected: `content_mismatch`), through the S3 event.
#[tokio::test]
async fn common_files_declared_truthfully_are_accepted_and_lies_are_rejected() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let with_tail = |head: &[u8]| {
        let mut bytes = head.to_vec();
        bytes.extend(test_bytes(300, 5));
        bytes
    };
    let jpeg = integration_tests::jpeg_with_orientation(32, 24, 1);
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    // An OOXML document is a zip whose first entry is [Content_Types].xml.
    let docx = with_tail(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml");
    let zip = with_tail(b"PK\x03\x04\x14\x00\x00\x00\x08\x00");
    let legacy_doc = with_tail(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");
    let mp3 = with_tail(b"ID3\x04\x00\x00\x00\x00\x00\x21");
    let mp4 = with_tail(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2");
    let elf = with_tail(b"\x7fELF\x02\x01\x01\x00");
    let csv = b"id,name\n1,alice\n2,bob\n".to_vec();
    let json_doc = br#"{"a": [1, 2, 3]}"#.to_vec();
    let shell = b"#!/bin/sh\necho hello\n".to_vec();
    let perl = b"#!/usr/bin/perl\nprint \"hi\\n\";\n".to_vec();
    let html = b"<!doctype html><p>hi</p>".to_vec();
    let cases: Vec<(&str, &str, Vec<u8>, bool)> = vec![
        // Truthful.
        ("photo.jpg", "image/jpeg", jpeg.clone(), true),
        ("report.pdf", "application/pdf", pdf.clone(), true),
        (
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            docx.clone(),
            true,
        ),
        ("old.doc", "application/msword", legacy_doc, true),
        ("bundle.zip", "application/zip", zip.clone(), true),
        ("song.mp3", "audio/mpeg", mp3, true),
        ("clip.mp4", "video/mp4", mp4.clone(), true),
        ("table.csv", "text/csv", csv, true),
        ("data.json", "application/json", json_doc, true),
        ("run.sh", "text/x-sh", shell.clone(), true),
        ("run-as-text.sh", "text/plain", shell.clone(), true),
        ("tool.pl", "application/x-perl", perl, true),
        ("page.html", "text/html", html.clone(), true),
        ("program", "application/octet-stream", elf.clone(), true),
        // Lies.
        ("fake.png", "image/png", pdf.clone(), false),
        ("fake.pdf", "application/pdf", zip.clone(), false),
        ("fake-report.pdf", "application/pdf", shell.clone(), false),
        ("fake.jpg", "image/jpeg", html, false),
        ("fake.mp4", "video/mp4", shell.clone(), false),
        (
            "fake.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            elf.clone(),
            false,
        ),
        ("fake.txt", "text/plain", elf, false),
        ("fake.zip", "application/zip", shell, false),
    ];
    for (name, content_type, content, accepted) in cases {
        let (status, upload) = t
            .create_upload(
                &token,
                &json!({"name": name, "size": content.len(), "content_type": content_type}),
            )
            .await;
        assert_eq!(status, 201, "{name}: {upload}");
        assert_eq!(t.put_content(&upload, content).await, 200, "{name}");
        let want = if accepted { "ready" } else { "rejected" };
        let file = t
            .wait_for_status(&token, upload["file_id"].as_str().unwrap(), want)
            .await;
        if !accepted {
            assert_eq!(file["rejection_reason"], "content_mismatch", "{name}");
        }
    }
}

#[tokio::test]
async fn names_are_unique_per_parent_case_insensitively_unless_replacing() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (status, first) = t
        .create_upload(&token, &json!({"name": "Plan.PDF", "size": 4, "content_type": "application/pdf", "parent": "case-1"}))
        .await;
    assert_eq!(status, 201);
    t.put_content(&first, b"%PDF".to_vec()).await;
    let file_id = first["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "ready").await;

    let (status, problem) = t
        .create_upload(&token, &json!({"name": "plan.pdf", "size": 4, "content_type": "application/pdf", "parent": "case-1"}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "name_conflict");
    assert_eq!(problem["existing_file_id"], file_id);

    // Another parent is another namespace.
    let (status, _) = t
        .create_upload(&token, &json!({"name": "plan.pdf", "size": 4, "content_type": "application/pdf", "parent": "case-2"}))
        .await;
    assert_eq!(status, 201);

    // replace: true makes the upload revision 2 of the same file.
    let (status, second) = t
        .create_upload(&token, &json!({"name": "plan.pdf", "size": 5, "content_type": "application/pdf", "parent": "case-1", "replace": true}))
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["file_id"], file_id);
    assert_eq!(second["creates_file"], false);
    t.put_content(&second, b"%PDF2".to_vec()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let file: Value = t.get_file(&token, file_id).await;
        if file["revision"] == 2 {
            assert_eq!(file["size"], 5);
            assert_eq!(file["name"], "Plan.PDF");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revision 2 never landed: {file}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn of_concurrent_uploads_of_one_name_exactly_one_wins() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let body = json!({"name": "race.txt", "size": 1, "content_type": "text/plain"});
    let attempts = (0..8).map(|_| t.create_upload(&token, &body));
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["code"] == "name_conflict")
        .count();
    assert_eq!((created, conflicts), (1, 7), "{results:?}");
}

#[tokio::test]
async fn an_upload_based_on_a_stale_etag_is_refused() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "v.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&upload, b"1".to_vec()).await;
    let file_id = upload["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "ready").await;
    let etag = t.get_file_response(&token, file_id).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();

    let (status, _) = t
        .create_upload(&token, &json!({"file_id": file_id, "size": 1, "content_type": "text/plain", "if_match": "\"stale-1\""}))
        .await;
    assert_eq!(status, 412);
    let (status, revision) = t
        .create_upload(
            &token,
            &json!({"file_id": file_id, "size": 1, "content_type": "text/plain", "if_match": etag}),
        )
        .await;
    assert_eq!(status, 201, "{revision}");
    assert_eq!(revision["creates_file"], false);
}

#[tokio::test]
async fn duplicate_reordered_and_stray_events_change_nothing() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let (_, first) = t
        .create_upload(
            &token,
            &json!({"name": "e.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&first, b"1".to_vec()).await;
    let file_id = first["file_id"].as_str().unwrap();
    t.wait_for_status(&token, file_id, "ready").await;
    let (_, second) = t
        .create_upload(
            &token,
            &json!({"file_id": file_id, "size": 2, "content_type": "text/plain"}),
        )
        .await;
    t.put_content(&second, b"22".to_vec()).await;
    let (status, file) = t
        .complete(&token, second["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!((status, file["revision"].clone()), (200, json!(2)));
    let etag = t.get_file_response(&token, file_id).await.headers()["etag"].clone();

    // The first upload's event again, after the second's: old news.
    let bucket = t.stack.app.config.bucket_name.clone();
    let first_key = format!("uploads/acme/{}", first["upload_id"].as_str().unwrap());
    let outcome = process_upload::process_record(&t.stack.app, &event_record(&bucket, &first_key))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        shared::finalize::Outcome::Ignored("upload already processed")
    );
    // An event for a key this service never issued, and for an unknown upload.
    let stray = process_upload::process_record(
        &t.stack.app,
        &event_record(&bucket, "uploads/acme/../../etc"),
    )
    .await
    .unwrap();
    assert_eq!(
        stray,
        shared::finalize::Outcome::Ignored("key not chosen by this service")
    );
    let unknown_key = "uploads/acme/0123456789abcdef0123456789abcdef".to_string();
    let unknown =
        process_upload::process_record(&t.stack.app, &event_record(&bucket, &unknown_key))
            .await
            .unwrap();
    assert_eq!(
        unknown,
        shared::finalize::Outcome::Orphaned(
            "no such upload session (expired or unknown); object deleted"
        )
    );
    // An event for an upload whose object is not (or no longer) there.
    let (_, third) = t
        .create_upload(
            &token,
            &json!({"file_id": file_id, "size": 3, "content_type": "text/plain"}),
        )
        .await;
    let third_key = format!("uploads/acme/{}", third["upload_id"].as_str().unwrap());
    let missing = process_upload::process_record(&t.stack.app, &event_record(&bucket, &third_key))
        .await
        .unwrap();
    assert_eq!(missing, shared::finalize::Outcome::NotLanded);

    let after = t.get_file_response(&token, file_id).await;
    assert_eq!(after.headers()["etag"], etag, "nothing changed the record");
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["revision"], 2);
    assert_eq!(body["size"], 2);
}

fn event_record(bucket: &str, key: &str) -> aws_lambda_events::s3::S3EventRecord {
    let encoded = key.replace(' ', "+");
    let event: aws_lambda_events::s3::S3Event = serde_json::from_value(json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-23T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "local"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "local"}, "arn": "arn:aws:s3:::b"},
               "object": {"key": encoded, "size": 1, "eTag": "x", "sequencer": "00"}}
    }]}))
    .unwrap();
    event.records.into_iter().next().unwrap()
}
