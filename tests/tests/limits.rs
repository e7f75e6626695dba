//! Limits where the platform counts bytes: the longest values the API allows, in the widest
//! characters, become DynamoDB keys that fit (no 500), and metadata stays within S3's 2 KB budget.

use integration_tests::{TestStack, assert_matches_schema};
use serde_json::{Value, json};

async fn patch(stack: &TestStack, token: &str, file_id: &str, body: Value) -> (u16, Value) {
    let resp = stack
        .http
        .patch(stack.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .expect("patch");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn list(stack: &TestStack, token: &str, query: &[(&str, &str)]) -> Value {
    let resp = stack
        .http
        .get(stack.url("/v1/files"))
        .query(query)
        .bearer_auth(token)
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn the_longest_names_parents_and_tags_in_four_byte_characters_work_end_to_end() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    let parent = "😀".repeat(256);
    let tags: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{}", "😀".repeat(62)))
        .collect();

    // GIVEN names whose keys would pass DynamoDB's 1,024-byte sort key limit as they are:
    // 250 emoji (1,000 bytes), and 255 characters that NFC makes three times longer.
    let emoji = "😀".repeat(250);
    let musical = "\u{1D160}".repeat(255);
    let mut ids = Vec::new();
    for name in [&emoji, &musical] {
        let body = json!({"name": name, "size": 5, "content_type": "text/plain",
                          "parent": parent, "tags": tags});
        let (status, upload) = stack.create_upload(&token, &body).await;
        // THEN each is declared like any other name.
        assert_eq!(status, 201, "{upload}");
        ids.push(upload["file_id"].as_str().unwrap().to_string());
        let resp = stack.put_content(&upload, b"hello".to_vec()).await;
        assert_eq!(resp, 200);
    }
    for id in &ids {
        let file = stack.wait_for_status(&token, id, "ready").await;
        assert_matches_schema("GET", "/v1/files/{file_id}", 200, &file);
    }

    // Names stay unique case-insensitively, also when the key is cut and completed by a digest.
    let same = json!({"name": emoji.to_uppercase(), "size": 1, "content_type": "text/plain", "parent": parent});
    let (status, problem) = stack.create_upload(&token, &same).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["existing_file_id"], ids[0].as_str());
    let other = format!("{}😃", "😀".repeat(249));
    let (status, upload) = stack
        .create_upload(
            &token,
            &json!({"name": other, "size": 1, "content_type": "text/plain", "parent": parent}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");

    // Listing by parent, by tag, by name order and by name search finds them.
    let by_name = list(
        &stack,
        &token,
        &[("parent", &parent), ("order_by", "name"), ("limit", "1")],
    )
    .await;
    assert_eq!(by_name["items"].as_array().unwrap().len(), 1);
    let cursor = by_name["next_cursor"].as_str().expect("a second page");
    let next = list(
        &stack,
        &token,
        &[
            ("parent", &parent),
            ("order_by", "name"),
            ("limit", "1"),
            ("cursor", cursor),
        ],
    )
    .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 1, "{next}");
    assert_ne!(by_name["items"][0]["id"], next["items"][0]["id"]);
    let tagged = list(&stack, &token, &[("tag", &tags[19])]).await;
    assert_eq!(tagged["items"].as_array().unwrap().len(), 2, "{tagged}");
    let found = list(&stack, &token, &[("q", "\u{1D160}\u{1D160}")]).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");

    // A rename onto the longest names works the same way.
    let (status, renamed) = patch(&stack, &token, &ids[1], json!({"name": "😀".repeat(255)})).await;
    assert_eq!(status, 200, "{renamed}");
}

#[tokio::test]
async fn metadata_is_bounded_to_2_kb_like_s3_user_metadata() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    // GIVEN the largest metadata allowed: 8 keys of 64 bytes, values of 48 four-byte characters.
    let largest: serde_json::Map<String, Value> = (0..8)
        .map(|i| (format!("{i}{}", "k".repeat(63)), json!("😀".repeat(48))))
        .collect();
    let bytes: usize = largest
        .iter()
        .map(|(k, v)| k.len() + v.as_str().unwrap().len())
        .sum();
    assert_eq!(bytes, 2048);
    let (status, upload) = stack
        .create_upload(
            &token,
            &json!({"name": "m.txt", "size": 1, "content_type": "text/plain", "metadata": largest}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let file_id = upload["file_id"].as_str().unwrap();
    let file: Value = stack.get_file(&token, file_id).await;
    assert_eq!(file["metadata"], Value::Object(largest.clone()));

    // A ninth key, a longer value, a longer key: 422, on create and on PATCH, and nothing changes.
    let mut refused = Vec::new();
    let mut ninth = largest.clone();
    ninth.insert("ninth".into(), json!("v"));
    refused.push(ninth);
    let mut longer = largest.clone();
    longer.insert(format!("0{}", "k".repeat(63)), json!("😀".repeat(49)));
    refused.push(longer);
    let mut long_key = serde_json::Map::new();
    long_key.insert("k".repeat(65), json!("v"));
    refused.push(long_key);
    for metadata in &refused {
        let (status, problem) = stack
            .create_upload(
                &token,
                &json!({"name": "n.txt", "size": 1, "content_type": "text/plain", "metadata": metadata}),
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["code"], "invalid_field");
        assert_matches_schema("POST", "/v1/uploads", 422, &problem);
    }
    let (status, problem) =
        patch(&stack, &token, file_id, json!({"metadata": {"ninth": "v"}})).await;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = patch(
        &stack,
        &token,
        file_id,
        json!({"metadata": {format!("0{}", "k".repeat(63)): "x".repeat(49)}}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let after: Value = stack.get_file(&token, file_id).await;
    assert_eq!(after["metadata"], Value::Object(largest));
}
