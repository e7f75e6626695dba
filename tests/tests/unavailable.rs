//! When DynamoDB cannot be reached, the API answers 503 `temporarily_unavailable` with Retry-After
//! (a retry may succeed), never a 500, and says nothing of the cause.

use integration_tests::{TestStack, assert_matches_schema};
use local_stack::dynamodb::{DynamoDbLocal, DynamoDbLocalOptions};
use local_stack::stack::DynamoDbSource;
use serde_json::{Value, json};

async fn assert_unavailable(
    resp: reqwest::Response,
    dynamodb_port: &str,
    method: &str,
    path_template: &str,
) {
    let what = format!("{method} {path_template}");
    assert_eq!(resp.status().as_u16(), 503, "{what}");
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1"),
        "{what}"
    );
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{what}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "temporarily_unavailable", "{what}: {body}");
    assert_eq!(body["status"], 503, "{what}: {body}");
    assert_matches_schema(method, path_template, 503, &body);
    let text = body.to_string();
    for leak in [dynamodb_port, "dispatch", "DynamoDB", "connect"] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_dynamodb_gives_503_with_retry_after() {
    // Its own DynamoDB Local (not the shared one of the test run): this test stops it.
    let dynamodb = DynamoDbLocal::start(DynamoDbLocalOptions::default())
        .await
        .expect("DynamoDB Local starts");
    let endpoint_url = dynamodb.endpoint_url();
    let port = endpoint_url.rsplit(':').next().unwrap().to_string();
    let t = TestStack::start_on(DynamoDbSource::Existing { endpoint_url }, |_| {}).await;
    let token = t.token("acme", "alice");

    let content = b"still here".to_vec();
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"name": "a.txt", "size": content.len(), "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let file_id = upload["file_id"].as_str().unwrap().to_string();

    dynamodb.shutdown().await;

    let read = t.get_file_response(&token, &file_id).await;
    assert_unavailable(read, &port, "GET", "/v1/files/{file_id}").await;
    let create = t
        .http
        .post(t.url("/v1/uploads"))
        .bearer_auth(&token)
        .json(&json!({"name": "b.txt", "size": 3, "content_type": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_unavailable(create, &port, "POST", "/v1/uploads").await;
}
