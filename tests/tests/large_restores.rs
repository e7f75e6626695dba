//! Revision restores of objects over the single-copy threshold: the multipart copy path
//! (CreateMultipartUpload, UploadPartCopy with inclusive `x-amz-copy-source-range`s, 16 in flight,
//! CompleteMultipartUpload with `If-None-Match: *`), through the real local stack.
//!
//! The thresholds are lowered through the configuration (`FILES_SINGLE_COPY_MAX_BYTES`,
//! `FILES_COPY_PART_BYTES`) to S3's smallest part size, 5 MiB, instead of copying a real object
//! over 256 MiB: the code path is the same (the sizes are parameters of one function, and their
//! arithmetic at the real sizes is unit-tested in `shared::storage`), S3's part-size rule is still
//! enforced by the local endpoint at 5 MiB, and the test moves about 25 MiB instead of 800 MiB
//! (upload, parts, assembly, hashing) on CI's two cores. Both restores have 3 parts (the last one
//! short); the one whose source vanishes copies 2 at a time (`FILES_COPY_PARTS_IN_FLIGHT`), so
//! that the 3rd is sent only after the source is gone: it fails for certain. (With the default 16
//! at a time it needed 17 parts, 85 MB, whose debug-build copies outlasted the gateway's 30 s on
//! a fresh CI machine.)
//!
//! Failpoints are process-wide: `fail::FailScenario` serialises the scenarios of this binary.

use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, assert_matches_schema, sha256_hex, test_bytes};
use serde_json::{Value, json};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// S3's smallest part (all but the last), as the copy's threshold and part size here.
const PART: usize = 5 * MIB;
/// Two full parts and a short third.
const SIZE: usize = 2 * PART + 1234567;
const RESTORE: &str = "/v1/files/{file_id}/revisions/{revision}/restore";

async fn stack() -> TestStack {
    stack_copying(shared::storage::COPY_PARTS_IN_FLIGHT).await
}

/// A stack whose restores copy in 5 MiB parts, `parts_in_flight` at a time.
async fn stack_copying(parts_in_flight: usize) -> TestStack {
    TestStack::start_with(|config| {
        config.single_copy_max_bytes = PART as u64;
        config.copy_part_bytes = PART as u64;
        config.copy_parts_in_flight = parts_in_flight;
    })
    .await
}

/// A file whose revision 1 is `content` and revision 2 a few other bytes. With `declare_sha256`
/// the upload declares the content's SHA-256: S3 checks the PUT, and the restored copy is hashed
/// again by process-upload before it becomes the current revision.
async fn file_with_large_first_revision(
    t: &TestStack,
    token: &str,
    content: &[u8],
    declare_sha256: bool,
) -> String {
    let mut declaration = json!({"name": "scan.bin", "size": content.len(),
                                 "content_type": "application/octet-stream"});
    if declare_sha256 {
        declaration["sha256"] = json!(sha256_hex(content));
    }
    let file = t.upload(token, &declaration, content).await;
    let id = file["id"].as_str().unwrap().to_string();
    let second = t
        .upload(
            token,
            &json!({"file_id": id, "size": 5, "content_type": "application/octet-stream"}),
            b"small",
        )
        .await;
    assert_eq!(second["revision"], 2, "{second}");
    id
}

async fn restore(
    t: &TestStack,
    token: &str,
    id: &str,
    revision: u32,
) -> (u16, Option<String>, Value) {
    let resp = t
        .http
        .post(t.url(&format!("/v1/files/{id}/revisions/{revision}/restore")))
        .bearer_auth(token)
        .send()
        .await
        .expect("restore request");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_over_the_copy_threshold_is_restored_in_parts_byte_for_byte() {
    let scenario = fail::FailScenario::setup();
    let t = stack().await;
    let token = t.token("acme", "alice");
    let content = test_bytes(SIZE, 11);
    let digest = sha256_hex(&content);
    let id = file_with_large_first_revision(&t, &token, &content, true).await;

    // WHEN revision 1 (over the threshold) is restored
    let started = Instant::now();
    let (status, location, body) = restore(&t, &token, &id, 1).await;
    let answered = started.elapsed();
    // 202: the copy is made, and (a copy in parts has no S3-checked SHA-256) the S3 event's
    // processing hashes it; 201 if that processing finished first.
    assert!(status == 202 || status == 201, "{status}: {body}");
    assert_matches_schema("POST", RESTORE, status, &body);
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/files/{id}/revisions/3").as_str())
    );

    // THEN revision 3 becomes ready through the S3 event, with the original bytes
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        let file: Value = t.get_file(&token, &id).await;
        if file["revision"] == 3 && file["status"] == "ready" {
            break file;
        }
        assert!(Instant::now() < deadline, "never ready: {file}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready = started.elapsed();
    assert_eq!(file["size"], SIZE, "{file}");
    assert_eq!(file["sha256"], digest.as_str(), "{file}");
    let served = t.download(&token, &id).await;
    assert_eq!(served.len(), SIZE);
    assert_eq!(
        sha256_hex(&served),
        digest,
        "the restored content is the original"
    );

    // It was copied in 3 parts (a multipart object's ETag is `<md5 of part md5s>-<parts>`), and
    // its multipart upload is gone.
    let record = t
        .stack
        .app
        .files
        .find_revision("acme", &id, 3)
        .await
        .unwrap()
        .expect("revision 3");
    let head = t
        .stack
        .app
        .objects
        .head(&record.object_key)
        .await
        .unwrap()
        .expect("the restored object");
    let etag = head.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(t.stack.s3.multipart_leftovers().await, Vec::<String>::new());

    // Nothing left over: the copy is tagged live and recorded; nothing else was written.
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("large revision restore");
    eprintln!("restore of {SIZE} bytes in 3 parts: answered in {answered:?}, ready in {ready:?}");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_deleted_in_the_middle_of_a_multipart_copy_is_404_and_leaves_no_parts() {
    let scenario = fail::FailScenario::setup();
    let t = stack_copying(2).await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    let content = test_bytes(SIZE, 12);
    let id = file_with_large_first_revision(&t, &token, &content, false).await;

    // Hold the copy once its first part is copied (2 parts are then sent, the 3rd is not).
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reached_tx = Mutex::new(reached_tx);
    let release_rx = Arc::new(Mutex::new(release_rx));
    fail::cfg_callback("storage/first-part-copied", move || {
        let _ = reached_tx.lock().unwrap().send(());
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
    })
    .unwrap();
    let restoring = {
        let http = t.http.clone();
        let url = t.url(&format!("/v1/files/{id}/revisions/1/restore"));
        let token = token.clone();
        tokio::spawn(async move {
            let resp = http.post(url).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the copy reached its first part");

    // WHEN revision 1 is deleted meanwhile
    let deleted = t
        .http
        .delete(t.url(&format!("/v1/files/{id}/revisions/1")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    release_tx.send(()).unwrap();
    fail::remove("storage/first-part-copied");

    // THEN the restore is a 4xx that says so, never a 500
    let (status, problem) = restoring.await.unwrap();
    assert!(status == 404 || status == 409, "{status}: {problem}");
    assert_matches_schema("POST", RESTORE, status, &problem);

    // and nothing of the copy stays: no object, no multipart upload, no part
    t.stack.s3.deliveries_idle().await;
    assert_eq!(t.stack.s3.multipart_leftovers().await, Vec::<String>::new());
    let file: Value = t.get_file(&token, &id).await;
    assert_eq!(file["revision"], 2, "{file}");
    assert_eq!(t.download(&token, &id).await, b"small");
    let objects = t.stack.list_objects().await;
    assert_eq!(objects.len(), 1, "only revision 2's object: {objects:?}");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("source deleted during a multipart copy");
    scenario.teardown();
}
