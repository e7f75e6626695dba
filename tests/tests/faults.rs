//! The fault suite: process-upload failing at chosen points (fail-rs failpoints, compiled in only
//! for tests), on one attempt or on every attempt (the on-failure destination), racing a delete, and
//! DynamoDB stopping in the middle of an upload. Each scenario ends with the no-orphan check.
//!
//! Failpoints are process-wide: `fail::FailScenario` serialises the scenarios of this binary.

use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, jpeg_with_orientation};
use local_stack::dynamodb::{DynamoDbLocal, DynamoDbLocalOptions};
use local_stack::stack::DynamoDbSource;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

async fn upload_photo(t: &TestStack, token: &str, name: &str) -> (Value, Vec<u8>) {
    let photo = jpeg_with_orientation(320, 200, 1);
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": photo.len(), "content_type": "image/jpeg"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, photo.clone()).await, 200);
    (upload, photo)
}

async fn thumbnail(t: &TestStack, token: &str, file_id: &str, wait: u32) -> (u16, Value) {
    let resp = t
        .http
        .get(t.url(&format!("/v1/files/{file_id}/thumbnails/256?wait={wait}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thumbnails_stored_but_not_recorded_are_made_again_by_the_retry() {
    let scenario = fail::FailScenario::setup();
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    // The first attempt dies between storing the thumbnails and recording them.
    fail::cfg("process-upload/thumbnails-stored", "1*return").unwrap();
    let (upload, _) = upload_photo(&t, &token, "photo.jpg").await;
    let file_id = upload["file_id"].as_str().unwrap();
    t.stack.s3.deliveries_idle().await;
    let (status, _) = thumbnail(&t, &token, file_id, 0).await;
    assert_eq!(status, 302, "the retry made and recorded them");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("crash between storing and recording thumbnails");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thumbnailing_that_fails_on_every_attempt_ends_in_a_terminal_state() {
    let scenario = fail::FailScenario::setup();
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    for point in [
        "process-upload/thumbnailing",
        "process-upload/thumbnails-stored",
    ] {
        fail::cfg(point, "return").unwrap();
        let (upload, photo) = upload_photo(&t, &token, &format!("{}.jpg", point.len())).await;
        let file_id = upload["file_id"].as_str().unwrap();
        // Every attempt fails: the on-failure destination gives the thumbnails their end.
        t.stack.s3.deliveries_idle().await;
        let ready = t.wait_for_status(&token, file_id, "ready").await;
        assert_eq!(ready["status"], "ready", "the content itself was accepted");
        let started = Instant::now();
        let (status, body) = thumbnail(&t, &token, file_id, 10).await;
        assert_eq!(status, 404, "{point}: {body}");
        assert_eq!(
            body["code"], "not_found",
            "{point}: no thumbnail will come: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{point}: waited"
        );
        let file = t.get_file(&token, file_id).await;
        assert_eq!(
            (&file["thumbnail_status"], &file["thumbnail_reason"]),
            (&serde_json::json!("none"), &serde_json::json!("failed")),
            "{point}: {file}"
        );
        let served = t.download(&token, file_id).await;
        assert_eq!(served, photo);
        fail::remove(point);
    }
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("thumbnailing failing on every attempt");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thumbnails_of_a_file_deleted_while_they_were_made_are_removed() {
    let scenario = fail::FailScenario::setup();
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let admin = t.token_with("acme", "root", "files:admin");
    // Hold process-upload between storing the thumbnails and recording them.
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reached_tx = Mutex::new(reached_tx);
    let release_rx = Arc::new(Mutex::new(release_rx));
    fail::cfg_callback("process-upload/thumbnails-stored", move || {
        let _ = reached_tx.lock().unwrap().send(());
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
    })
    .unwrap();
    let (upload, _) = upload_photo(&t, &token, "doomed.jpg").await;
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("process-upload reached the failpoint");
    let deleted = t
        .http
        .delete(t.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    release_tx.send(()).unwrap();
    t.stack.s3.deliveries_idle().await;
    let thumbnails: Vec<String> = t
        .stack
        .list_objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with("thumbnails/"))
        .collect();
    assert!(thumbnails.is_empty(), "left behind: {thumbnails:?}");
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("delete while thumbnailing");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_stopping_mid_upload_leaves_an_upload_that_completes_when_retried() {
    let scenario = fail::FailScenario::setup();
    let data = tempfile::tempdir().unwrap();
    let options = DynamoDbLocalOptions {
        port: 0,
        db_path: Some(data.path().to_owned()),
    };
    let dynamodb = DynamoDbLocal::start(options).await.expect("DynamoDB Local");
    let endpoint_url = dynamodb.endpoint_url();
    let port: u16 = endpoint_url.rsplit(':').next().unwrap().parse().unwrap();
    let t = TestStack::start_on(
        DynamoDbSource::Existing {
            endpoint_url: endpoint_url.clone(),
        },
        |_| {},
    )
    .await;
    let token = t.token("acme", "alice");
    let content = b"written while the table was away".to_vec();
    let (_, upload) = t
        .create_upload(
            &token,
            &json!({"name": "away.txt", "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    dynamodb.shutdown().await;

    // The bytes land; every attempt to process them fails (and so does the destination).
    assert_eq!(t.put_content(&upload, content.clone()).await, 200);
    t.stack.s3.deliveries_idle().await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let (status, body) = t.complete(&token, upload_id, None).await;
    assert_eq!(status, 503, "a retry may succeed: {body}");

    // Back, with its data: the client's retry finishes the upload.
    let dynamodb = DynamoDbLocal::start(DynamoDbLocalOptions {
        port,
        db_path: Some(data.path().to_owned()),
    })
    .await
    .expect("DynamoDB Local restarts");
    let (status, file) = t.complete(&token, upload_id, None).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["status"], "ready");
    let file_id = upload["file_id"].as_str().unwrap();
    let served = t.download(&token, file_id).await;
    assert_eq!(served, content);
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("DynamoDB stopped mid-upload");
    drop(t);
    dynamodb.shutdown().await;
    scenario.teardown();
}
