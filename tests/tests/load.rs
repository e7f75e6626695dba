//! Load through the real parts: 1,000 uploads from 32 concurrent clients. Every one becomes
//! `ready` exactly once, the listing returns exactly them, and the bucket holds exactly their
//! objects (nothing lost, nothing duplicated, nothing orphaned).

use futures::StreamExt;
use integration_tests::orphans::OrphanCheck;
use integration_tests::{TestStack, sha256_hex};
use local_stack::dynamodb::DynamoDbLocalOptions;
use local_stack::stack::DynamoDbSource;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Instant;

const UPLOADS: usize = 1_000;
const CLIENTS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_uploads_from_32_clients_are_all_ready_exactly_once() {
    // Its own DynamoDB Local: the one the other tests share holds a table per test by now (each
    // with its stream), and a JVM that has taken all of them writes slower; this scenario is about
    // its own 32 clients, not about what ran before it.
    let t = TestStack::start_on(
        DynamoDbSource::Start(DynamoDbLocalOptions::default()),
        |_| {},
    )
    .await;
    let token = t.token("acme", "loader");
    let started = Instant::now();
    let created: Vec<(String, String)> = futures::stream::iter(0..UPLOADS)
        .map(|i| {
            let (t, token) = (&t, &token);
            async move {
                let content = format!("upload number {i:04}\n").into_bytes();
                let (status, upload) = t
                    .create_upload(
                        token,
                        &json!({"name": format!("load-{i:04}.txt"), "size": content.len(),
                                "content_type": "text/plain", "sha256": sha256_hex(&content)}),
                    )
                    .await;
                assert_eq!(status, 201, "upload {i}: {upload}");
                let put = t.put_content(&upload, content).await;
                assert_eq!(put, 200, "upload {i}");
                (
                    upload["file_id"].as_str().unwrap().to_string(),
                    upload["upload_id"].as_str().unwrap().to_string(),
                )
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    t.stack.s3.deliveries_idle().await;
    let elapsed = started.elapsed();
    eprintln!(
        "{UPLOADS} uploads from {CLIENTS} clients processed in {:.1} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        UPLOADS as f64 / elapsed.as_secs_f64()
    );

    // The listing returns each file exactly once, every one ready (all events were delivered).
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = t.url("/v1/files?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = t
            .http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().expect("items") {
            assert_eq!(item["status"], "ready");
            listed.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(listed.len(), UPLOADS, "listing length");
    let unique: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), UPLOADS, "no file listed twice");
    let expected: BTreeSet<_> = created.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(unique, expected);

    // The bucket holds exactly one object per upload.
    let objects: BTreeSet<String> = t.stack.list_objects().await.into_iter().collect();
    let expected_objects: BTreeSet<String> = created
        .iter()
        .map(|(_, upload)| format!("uploads/acme/{upload}"))
        .collect();
    assert_eq!(objects, expected_objects);
    let checking = Instant::now();
    let report = OrphanCheck::after_lifecycle(&t).await;
    eprintln!(
        "lifecycle + no-orphan check: {:.1} s",
        checking.elapsed().as_secs_f64()
    );
    report.assert_none("1,000 uploads from 32 clients");
    eprintln!(
        "no-orphan check: {} objects, {} items, {} orphans",
        report.objects,
        report.items,
        report.orphans.len()
    );
}
