//! A gallery page in one request: `GET /v1/files?include=thumbnails` carries each item's presigned
//! thumbnail links, instead of one `GET /v1/files/{id}` per file.

use integration_tests::{TestStack, assert_matches_schema, jpeg_with_orientation};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn upload(
    t: &TestStack,
    token: &str,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> String {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": bytes.len(), "content_type": content_type}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, bytes).await, 200);
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    t.wait_for_status(token, &file_id, "ready").await;
    file_id
}

async fn list(t: &TestStack, token: &str, query: &str) -> (u16, Value) {
    let resp = t
        .http
        .get(t.url(&format!("/v1/files{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_matches_schema("GET", "/v1/files", status, &body);
    (status, body)
}

#[tokio::test]
async fn a_listing_with_include_thumbnails_carries_every_items_thumbnail_links() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let mut photos = Vec::new();
    for (i, (w, h)) in [(320, 200), (200, 320), (640, 480)].into_iter().enumerate() {
        let id = upload(
            &t,
            &token,
            &format!("photo-{i}.jpg"),
            "image/jpeg",
            jpeg_with_orientation(w, h, 1),
        )
        .await;
        photos.push(id);
    }
    let note = upload(
        &t,
        &token,
        "note.txt",
        "text/plain",
        b"no pixels here".to_vec(),
    )
    .await;

    // Thumbnails are made after the file is ready, asynchronously: wait until all are.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (status, page) = list(&t, &token, "?include=thumbnails").await;
        assert_eq!(status, 200, "{page}");
        let with_thumbnails = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item.get("thumbnails").is_some())
            .count();
        if with_thumbnails == photos.len() {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "thumbnails never all listed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        let id = item["id"].as_str().unwrap();
        if id == note {
            assert!(item.get("thumbnails").is_none(), "{item}");
            continue;
        }
        assert!(photos.iter().any(|p| p == id));
        let thumbnails = item["thumbnails"].as_object().unwrap();
        assert_eq!(
            thumbnails.keys().cloned().collect::<Vec<_>>(),
            vec!["1024", "256", "64"],
            "{item}"
        );
        for url in thumbnails.values() {
            let resp = t.http.get(url.as_str().unwrap()).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "image/jpeg");
            assert!(resp.bytes().await.unwrap().starts_with(b"\xFF\xD8\xFF"));
        }
    }

    // Without it, the listing stays lean.
    let (_, plain) = list(&t, &token, "").await;
    assert!(
        plain["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("thumbnails").is_none()),
        "{plain}"
    );

    // It changes what items show, not which come: a cursor works with and without it.
    let (_, first) = list(&t, &token, "?include=thumbnails&limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, rest) = list(&t, &token, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);

    for bad in ["thumbnail", "thumbnails,owner"] {
        let (status, problem) = list(&t, &token, &format!("?include={bad}")).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "invalid_parameter");
    }
}
