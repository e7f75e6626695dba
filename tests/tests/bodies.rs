//! Hostile request bodies get a clear 4xx problem+json and change nothing: bodies of another media
//! type (415), larger than any valid one (413), nested too deep, not UTF-8 or not JSON (400), with
//! repeated keys or numbers out of range (422). Through the local stack, as a client sends them.

use integration_tests::{TestStack, assert_matches_schema};
use serde_json::{Value, json};

fn declaration(name: &str) -> Value {
    json!({"name": name, "size": 5, "content_type": "text/plain"})
}

/// Sends `body` as `content_type` (none when `None`) with `method` to `path`.
async fn send(
    stack: &TestStack,
    token: &str,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = stack
        .http
        .request(method, stack.url(path))
        .bearer_auth(token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let resp = request.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if status >= 400 {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path} answered {status}"
        );
    }
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

async fn file_count(stack: &TestStack, token: &str) -> u64 {
    let resp = stack
        .http
        .get(stack.url("/v1/files?count_only=true&trashed=all"))
        .bearer_auth(token)
        .send()
        .await
        .expect("count");
    let body: Value = resp.json().await.expect("json");
    body["count"].as_u64().expect("count")
}

#[tokio::test]
async fn bodies_of_other_media_types_are_refused_with_415_and_change_nothing() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    let body = serde_json::to_vec(&declaration("a.txt")).unwrap();

    // GIVEN a valid declaration WHEN it is sent as anything but JSON THEN 415, and no file exists.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/xml"),
        Some("multipart/form-data; boundary=x"),
        Some("application/merge-patch+json"),
        Some("application/json; charset=iso-8859-1"),
        Some("application/jsonx"),
        None,
    ] {
        let (status, headers, problem) = send(
            &stack,
            &token,
            reqwest::Method::POST,
            "/v1/uploads",
            content_type,
            body.clone(),
        )
        .await;
        assert_eq!(status, 415, "{content_type:?}: {problem}");
        assert_eq!(problem["code"], "unsupported_media_type", "{problem}");
        assert_eq!(problem["accepted"], json!(["application/json"]));
        assert_eq!(headers["accept-post"], "application/json");
        assert_matches_schema("POST", "/v1/uploads", 415, &problem);
    }
    assert_eq!(file_count(&stack, &token).await, 0);

    // The documented types, with parameters, are read.
    for (i, content_type) in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _, answer) = send(
            &stack,
            &token,
            reqwest::Method::POST,
            "/v1/uploads",
            Some(content_type),
            serde_json::to_vec(&declaration(&format!("typed-{i}.txt"))).unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{content_type}: {answer}");
    }

    // PATCH: a merge patch, or plain JSON; nothing else changes the file.
    let (_, upload) = stack.create_upload(&token, &declaration("p.txt")).await;
    let file_id = upload["file_id"].as_str().unwrap();
    let path = format!("/v1/files/{file_id}");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, headers, problem) = send(
            &stack,
            &token,
            reqwest::Method::PATCH,
            &path,
            Some(content_type),
            br#"{"name": "changed.txt"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {problem}");
        assert_eq!(problem["code"], "unsupported_media_type");
        assert_eq!(
            headers["accept-patch"],
            "application/merge-patch+json, application/json"
        );
        assert_matches_schema("PATCH", "/v1/files/{file_id}", 415, &problem);
    }
    let file: Value = stack.get_file(&token, file_id).await;
    assert_eq!(file["name"], "p.txt");
    for (content_type, name) in [
        ("application/merge-patch+json", "m.txt"),
        ("application/json; charset=utf-8", "j.txt"),
    ] {
        let (status, _, file) = send(
            &stack,
            &token,
            reqwest::Method::PATCH,
            &path,
            Some(content_type),
            serde_json::to_vec(&json!({"name": name})).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{content_type}: {file}");
        assert_eq!(file["name"], name);
    }

    // complete: no body needs no type; a body of another type is refused.
    let (status, _, problem) = send(
        &stack,
        &token,
        reqwest::Method::POST,
        &format!(
            "/v1/uploads/{}/complete",
            upload["upload_id"].as_str().unwrap()
        ),
        Some("text/plain"),
        br#"{"parts": []}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{problem}");
    assert_matches_schema("POST", "/v1/uploads/{upload_id}/complete", 415, &problem);
}

#[tokio::test]
async fn oversized_deep_non_utf8_duplicate_and_out_of_range_bodies_are_4xx() {
    let stack = TestStack::start().await;
    let token = stack.token("acme", "alice");
    let post = |body: Vec<u8>| {
        send(
            &stack,
            &token,
            reqwest::Method::POST,
            "/v1/uploads",
            Some("application/json"),
            body,
        )
    };

    // Larger than any valid declaration can be (64 KiB), even as valid JSON: 413 before parsing.
    let mut padded = declaration("big.txt");
    padded["metadata"] = json!({"k": "x".repeat(70_000)});
    let (status, _, problem) = post(serde_json::to_vec(&padded).unwrap()).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "body_too_large");
    assert_eq!(problem["limit"], 65536);
    assert_matches_schema("POST", "/v1/uploads", 413, &problem);
    // Up to the limit it is read, and the values are judged on their own (the metadata is too big).
    let mut under = declaration("under.txt");
    under["metadata"] = json!({"k": "x".repeat(60_000)});
    let (status, _, problem) = post(serde_json::to_vec(&under).unwrap()).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid_field");

    // Nested 5,000 deep, well inside the size limit, at the top and inside a member: refused at
    // the first level that has the wrong shape (the typed request never recurses into it), or by
    // the parser's depth limit of 128: a 4xx either way, never a stack overflow.
    for deep in [
        format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
        format!(
            r#"{{"name": "d.txt", "size": 1, "content_type": "text/plain", "metadata": {{"k": {}{}}}}}"#,
            "[".repeat(5_000),
            "]".repeat(5_000)
        ),
        format!(r#"{{"name": {}"#, "{\"a\": ".repeat(5_000)),
    ] {
        let (status, _, problem) = post(deep.into_bytes()).await;
        assert!(status == 400 || status == 422, "{status}: {problem}");
        assert_matches_schema("POST", "/v1/uploads", status, &problem);
    }

    // Not UTF-8 (a lone 0xFF inside a string; an overlong encoding of '/'): 400.
    for bad in [&b"\xff"[..], &b"\xc0\xaf"[..]] {
        let mut body = br#"{"name": "bad"#.to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(br#".txt", "size": 1, "content_type": "text/plain"}"#);
        let (status, _, problem) = post(body).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "malformed_json");
    }

    // Repeated keys, at the top and inside metadata (where a map would keep the last one): 422.
    for body in [
        r#"{"name": "a.txt", "name": "b.txt", "size": 1, "content_type": "text/plain"}"#,
        r#"{"name": "a.txt", "size": 1, "content_type": "text/plain", "metadata": {"k": "1", "k": "2"}}"#,
    ] {
        let (status, _, problem) = post(body.as_bytes().to_vec()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["code"], "invalid_body");
        assert!(
            problem["detail"].as_str().unwrap().contains("duplicate"),
            "{problem}"
        );
        assert_matches_schema("POST", "/v1/uploads", 422, &problem);
    }

    // Numbers out of range or not integers: 422.
    for size in [
        "-1",
        "18446744073709551616",
        "1e30",
        "1.5",
        "1e400",
        "\"5\"",
    ] {
        let body = format!(r#"{{"name": "n.txt", "size": {size}, "content_type": "text/plain"}}"#);
        let (status, _, problem) = post(body.into_bytes()).await;
        assert!(
            status == 422 || status == 400,
            "size {size}: {status} {problem}"
        );
        assert_matches_schema("POST", "/v1/uploads", status, &problem);
    }
    let (_, upload) = stack.create_upload(&token, &declaration("parts.txt")).await;
    let complete = format!(
        "/v1/uploads/{}/complete",
        upload["upload_id"].as_str().unwrap()
    );
    let (status, _, problem) = send(
        &stack,
        &token,
        reqwest::Method::POST,
        &complete,
        Some("application/json"),
        br#"{"parts": [{"part_number": 4294967296, "etag": "x"}]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "invalid_body");

    // Nothing of all this left a file behind (the one the last step declared aside).
    assert_eq!(file_count(&stack, &token).await, 1);
}
