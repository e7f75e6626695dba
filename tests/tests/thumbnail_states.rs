//! Every revision's thumbnails reach a terminal state (`ready`, or `none` with a reason such as
//! `failed`), also a revision that another one superseded before its thumbnails were made. Through
//! the real local stack; the states are read as clients read them: `thumbnail_status` and
//! `thumbnail_reason` of `GET /v1/files/{id}/revisions/{n}` and of the file.
//!
//! Failpoints are process-wide: `fail::FailScenario` serialises the scenarios of this binary.

use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, jpeg_with_orientation};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Declares a new revision of `file_id` (a JPEG) and PUTs it; returns the upload.
async fn put_photo_revision(t: &TestStack, token: &str, file_id: &str, photo: &[u8]) -> Value {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"file_id": file_id, "size": photo.len(), "content_type": "image/jpeg"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, photo.to_vec()).await, 200);
    upload
}

/// Revision `n`'s `(thumbnail_status, thumbnail_reason)` as the API answers them, once they are
/// no longer `pending` (or after 15 s).
async fn revision_thumbnails(t: &TestStack, token: &str, file_id: &str, n: u32) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, revision) = t
            .call(
                reqwest::Method::GET,
                token,
                &format!("/v1/files/{file_id}/revisions/{n}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{revision}");
        integration_tests::assert_matches_schema(
            "get",
            "/v1/files/{file_id}/revisions/{revision}",
            200,
            &revision,
        );
        if revision["thumbnail_status"] != "pending" || Instant::now() > deadline {
            return (
                revision["thumbnail_status"].clone(),
                revision["thumbnail_reason"].clone(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revision_superseded_before_its_late_event_gets_a_terminal_thumbnail_state() {
    let scenario = fail::FailScenario::setup();
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let first = jpeg_with_orientation(320, 200, 1);
    let file = t
        .upload(
            &token,
            &json!({"name": "site.jpg", "size": first.len(), "content_type": "image/jpeg"}),
            &first,
        )
        .await;
    let id = file["id"].as_str().unwrap().to_string();
    let made = (json!("ready"), Value::Null);
    assert_eq!(revision_thumbnails(&t, &token, &id, 1).await, made);

    // GIVEN revision 2's S3 event held back (the first event from now on; later ones pass)
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reached_tx = Mutex::new(reached_tx);
    let release_rx = Arc::new(Mutex::new(release_rx));
    let held = AtomicBool::new(false);
    fail::cfg_callback("process-upload/event-received", move || {
        if held.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = reached_tx.lock().unwrap().send(());
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
    })
    .unwrap();
    let second = put_photo_revision(&t, &token, &id, &jpeg_with_orientation(300, 200, 1)).await;
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("revision 2's event reached process-upload");
    // and revision 2 accepted by `complete` (its thumbnails pending, made by the event)
    let (status, done) = t
        .complete(&token, second["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        (status, done["revision"].clone()),
        (200, json!(2)),
        "{done}"
    );

    // WHEN revision 3 lands and is processed before revision 2's event goes on
    let third = put_photo_revision(&t, &token, &id, &jpeg_with_orientation(200, 300, 1)).await;
    let (status, done) = t
        .complete(&token, third["upload_id"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        (status, done["revision"].clone()),
        (200, json!(3)),
        "{done}"
    );
    assert_eq!(revision_thumbnails(&t, &token, &id, 3).await, made);
    release_tx.send(()).unwrap();
    t.stack.s3.deliveries_idle().await;
    fail::remove("process-upload/event-received");

    // THEN every revision's thumbnails are terminal: 2 has none, superseded before they were made
    assert_eq!(revision_thumbnails(&t, &token, &id, 1).await, made);
    assert_eq!(
        revision_thumbnails(&t, &token, &id, 2).await,
        (json!("none"), json!("superseded"))
    );
    assert_eq!(revision_thumbnails(&t, &token, &id, 3).await, made);
    // and the file still shows revision 3's
    let file: Value = t.get_file(&token, &id).await;
    assert_eq!(file["revision"], 3, "{file}");
    assert_eq!(file["thumbnail_status"], "ready", "{file}");
    assert!(
        file["thumbnails"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "{file}"
    );
    OrphanCheck::after_lifecycle(&t)
        .await
        .assert_none("revision superseded before its thumbnails");
    scenario.teardown();
}
