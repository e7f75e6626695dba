//! Thumbnails through the whole pipeline: upload, S3 event, processing, the thumbnail route.

use integration_tests::{TestStack, jpeg_with_orientation, png_bomb_header};
use serde_json::{Value, json};

/// Uploads `content` as `content_type` and waits until the file is ready.
async fn upload(
    t: &TestStack,
    token: &str,
    name: &str,
    content_type: &str,
    content: Vec<u8>,
) -> String {
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": name, "size": content.len(), "content_type": content_type}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(t.put_content(&upload, content).await, 200);
    let file_id = upload["file_id"].as_str().unwrap().to_string();
    t.wait_for_status(token, &file_id, "ready").await;
    file_id
}

async fn thumbnail(
    t: &TestStack,
    token: &str,
    file_id: &str,
    size: u32,
    query: &str,
) -> reqwest::Response {
    t.http
        .get(t.url(&format!("/v1/files/{file_id}/thumbnails/{size}{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_portrait_photo_shot_sideways_gets_upright_thumbnails_in_every_size() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    // Stored 1200 x 800 (landscape) with EXIF orientation 6: displayed as 800 x 1200 (portrait).
    let file_id = upload(
        &t,
        &token,
        "photo.jpg",
        "image/jpeg",
        jpeg_with_orientation(1200, 800, 6),
    )
    .await;

    for (size, expected) in [
        (64u32, (43u32, 64u32)),
        (256, (171, 256)),
        (1024, (683, 1024)),
    ] {
        let resp = thumbnail(&t, &token, &file_id, size, "?wait=10").await;
        assert_eq!(resp.status(), 302, "size {size}");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let jpeg = t.http.get(location).send().await.unwrap();
        assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
        let bytes = jpeg.bytes().await.unwrap();
        let decoded = image::load_from_memory(&bytes).expect("a JPEG");
        let (w, h) = (decoded.width(), decoded.height());
        assert!(h > w, "size {size}: {w}x{h} is not portrait");
        assert!(
            w.abs_diff(expected.0) <= 1 && h == expected.1,
            "size {size}: {w}x{h}, expected {expected:?}"
        );
    }
    let file: Value = t.get_file(&token, &file_id).await;
    assert_eq!(file["status"], "ready");
    assert_eq!(file["thumbnail_status"], "ready", "{file}");
    assert!(file.get("thumbnail_reason").is_none(), "{file}");
}

#[tokio::test]
async fn small_images_are_never_upscaled() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let mut png = Vec::new();
    image::RgbaImage::from_pixel(100, 50, image::Rgba([10, 200, 30, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let file_id = upload(&t, &token, "small.png", "image/png", png).await;
    let resp = thumbnail(&t, &token, &file_id, 1024, "?wait=10").await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let bytes = t
        .http
        .get(location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (100, 50));
}

#[tokio::test]
async fn a_decompression_bomb_and_a_heic_get_no_thumbnail_but_stay_downloadable() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let bomb = upload(
        &t,
        &token,
        "bomb.png",
        "image/png",
        png_bomb_header(100_000, 100_000),
    )
    .await;
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(&[0u8; 64]);
    let heic = upload(&t, &token, "photo.heic", "image/heic", heic).await;

    for (file_id, reason) in [(&bomb, "too_large"), (&heic, "unsupported_format")] {
        let resp = thumbnail(&t, &token, file_id, 256, "?wait=10").await;
        assert_eq!(resp.status(), 404);
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "not_found", "{problem}");
        let file: Value = t.get_file(&token, file_id).await;
        assert_eq!(file["status"], "ready");
        // The file says there will be none, and why: a gallery need not wait.
        assert_eq!(
            (&file["thumbnail_status"], &file["thumbnail_reason"]),
            (&json!("none"), &json!(reason)),
            "{file}"
        );
        let download = t
            .http
            .get(t.url(&format!("/v1/files/{file_id}/content")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 302);
    }
    // A text file never had a thumbnail to wait for.
    let text = upload(&t, &token, "a.txt", "text/plain", b"hi".to_vec()).await;
    let resp = thumbnail(&t, &token, &text, 64, "").await;
    assert_eq!(resp.status(), 404);
    let file = t.get_file(&token, &text).await;
    assert_eq!(
        (&file["thumbnail_status"], &file["thumbnail_reason"]),
        (&json!("none"), &json!("not_an_image")),
        "{file}"
    );
    // A file without content yet: pending, in the record, its revision-less listing item too.
    let (status, declared) = t
        .create_upload(
            &token,
            &json!({"name": "later.png", "size": 10, "content_type": "image/png"}),
        )
        .await;
    assert_eq!(status, 201, "{declared}");
    let pending = t
        .get_file(&token, declared["file_id"].as_str().unwrap())
        .await;
    assert_eq!(pending["thumbnail_status"], "pending", "{pending}");
    assert!(pending.get("thumbnail_reason").is_none(), "{pending}");
    let (status, listed) = t
        .call(reqwest::Method::GET, &token, "/v1/files?limit=100", None)
        .await;
    assert_eq!(status, 200);
    integration_tests::assert_matches_schema("get", "/v1/files", 200, &listed);
    let states: std::collections::BTreeMap<&str, &str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["thumbnail_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("a.txt", "none"),
            ("bomb.png", "none"),
            ("later.png", "pending"),
            ("photo.heic", "none"),
        ]
        .into_iter()
        .collect()
    );
    // Sizes other than 64, 256 and 1024 are a bad parameter.
    assert_eq!(thumbnail(&t, &token, &text, 100, "").await.status(), 400);
    assert_eq!(
        thumbnail(&t, &token, &text, 64, "?wait=11").await.status(),
        400
    );
}
