//! Rules the OpenAPI document states, so that a client (or a fuzzer) that follows it is never
//! refused: entity-tag syntax of `If-Match` and `if_match`, empty time ranges, integer bounds.

use integration_tests::{TestStack, assert_matches_schema};
use serde_json::{Value, json};

async fn patch_with_if_match(
    stack: &TestStack,
    token: &str,
    file_id: &str,
    if_match: &str,
) -> (u16, Value) {
    let resp = stack
        .http
        .patch(stack.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", if_match)
        .body(r#"{"tags": ["x"]}"#)
        .send()
        .await
        .expect("patch");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn if_match_that_is_not_an_entity_tag_is_400_and_a_stale_one_412() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    let (_, upload) = stack
        .create_upload(
            &token,
            &json!({"name": "e.txt", "size": 5, "content_type": "text/plain"}),
        )
        .await;
    let file_id = upload["file_id"].as_str().unwrap();
    let etag = stack.get_file_response(&token, file_id).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();

    for malformed in ["abc", "\"unterminated", "\"a\" \"b\"", "W/abc", ""] {
        let (status, problem) = patch_with_if_match(&stack, &token, file_id, malformed).await;
        assert_eq!(status, 400, "{malformed:?}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter");
        assert_eq!(problem["parameter"], "If-Match");
        assert_matches_schema("PATCH", "/v1/files/{file_id}", 400, &problem);
    }
    for stale in ["\"other\"", "W/\"x\", \"y\"", &format!("W/{etag}")] {
        let (status, problem) = patch_with_if_match(&stack, &token, file_id, stale).await;
        assert_eq!(status, 412, "{stale:?}: {problem}");
    }
    let (status, file) =
        patch_with_if_match(&stack, &token, file_id, &format!("\"other\", {etag}")).await;
    assert_eq!(status, 200, "{file}");

    // In a revision upload's body: the same syntax, 422 when it is not an entity tag.
    let app = stack.token_with_claims(
        "acme",
        "bot",
        "files:read files:write",
        json!({"principal_type": "app"}),
    );
    let revision = |if_match: &str| json!({"file_id": file_id, "size": 1, "content_type": "text/plain", "if_match": if_match});
    let (status, problem) = stack.create_upload(&app, &revision("abc")).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid_field");
    let (status, problem) = stack.create_upload(&app, &revision("\"stale\"")).await;
    assert_eq!(status, 412, "{problem}");
    let (status, upload) = stack.create_upload(&app, &revision("*")).await;
    assert_eq!(status, 201, "{upload}");
}

#[tokio::test]
async fn a_time_range_that_ends_before_it_starts_matches_nothing() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    stack
        .create_upload(
            &token,
            &json!({"name": "r.txt", "size": 5, "content_type": "text/plain"}),
        )
        .await;
    for (query, expected) in [
        (
            "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
            json!({"items": [], "next_cursor": null}),
        ),
        (
            "updated_from=2026-01-01T00:00:00Z&updated_to=2026-01-01T00:00:00Z&count_only=true",
            json!({"count": 0}),
        ),
    ] {
        let resp = stack
            .http
            .get(stack.url(&format!("/v1/files?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, expected, "{query}");
        assert_matches_schema("GET", "/v1/files", 200, &body);
    }
    // The widest range RFC 3339 can write still finds the file.
    let resp = stack
        .http
        .get(stack.url(
            "/v1/files?created_from=0000-01-01T00:00:00Z&created_to=9999-12-31T23:59:59.9999Z",
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
}
