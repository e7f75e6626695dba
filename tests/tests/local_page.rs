//! What the local stack serves for the browser page, besides the API: the page at `/` with Uppy
//! from npm, a development token at `/local/dev-token`, and CORS on the API and the bucket.

use integration_tests::TestStack;
use serde_json::{Value, json};

#[tokio::test]
async fn the_page_and_uppy_are_served_at_the_root_without_a_token() {
    let t = TestStack::start().await;
    let page = t.http.get(t.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("app.js") && html.contains("uppy.min.css"),
        "{html}"
    );
    for (path, content_type) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        // Installed from npm by scripts/setup-local (local/web/package-lock.json).
        (
            "/node_modules/uppy/dist/uppy.min.mjs",
            "text/javascript; charset=utf-8",
        ),
        (
            "/node_modules/uppy/dist/uppy.min.css",
            "text/css; charset=utf-8",
        ),
    ] {
        let resp = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path} (run scripts/setup-local)");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
    }
    // The page imports exactly what the bundle exports.
    let app = t
        .http
        .get(t.url("/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(app.contains("from './node_modules/uppy/dist/uppy.min.mjs'"));
}

/// The page takes its token from `/local/dev-token` on the API's origin, which is not the page's:
/// that answer must carry CORS headers too.
#[tokio::test]
async fn the_development_token_can_be_fetched_from_another_origin_and_is_accepted() {
    let t = TestStack::start().await;
    let resp = t
        .http
        .get(t.url("/local/dev-token"))
        .header("origin", "http://127.0.0.1:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let (status, upload) = t
        .create_upload(
            token,
            &json!({"name": "a.txt", "size": 1, "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
}

/// A browser on another origin PUTs straight to the presigned URL with the headers the API signed:
/// the bucket's preflight must allow them, and the answer must expose ETag (multipart completion).
#[tokio::test]
async fn the_bucket_lets_a_page_on_another_origin_put_with_the_signed_headers() {
    let t = TestStack::start().await;
    let token = t.token("acme", "alice");
    let content = b"hello from a browser".to_vec();
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({
                "name": "b.txt", "size": content.len(), "content_type": "text/plain",
                "sha256": integration_tests::sha256_hex(&content),
            }),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let url = upload["url"].as_str().unwrap();
    let signed: Vec<String> = upload["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| *name != "content-length")
        .cloned()
        .collect();
    let origin = "http://127.0.0.1:5173";
    let preflight = t
        .http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", signed.join(","))
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in &signed {
        assert!(
            allowed.contains(name.as_str()),
            "{name} not allowed: {allowed}"
        );
        // And the deployed bucket's rule allows it too.
        assert!(
            template_bucket_put_rule()
                .0
                .iter()
                .any(|p| header_matches(p, name)),
            "infra/template.yaml FilesBucket CORS must allow {name}, which the API signs"
        );
    }
    let mut put = t.http.put(url).header("origin", origin);
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let resp = put.body(content).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
}

/// The PUT rule of the deployed bucket's CORS (the template): allowed and exposed headers, lower-cased.
fn template_bucket_put_rule() -> (Vec<String>, Vec<String>) {
    let template =
        local_stack::template::SamTemplate::load(&local_stack::dynamodb::template_path()).unwrap();
    let rules = template
        .resource("FilesBucket")
        .and_then(|b| b.get("Properties"))
        .and_then(|p| p.get("CorsConfiguration"))
        .and_then(|c| c.get("CorsRules"))
        .and_then(|r| r.as_sequence())
        .cloned()
        .expect("FilesBucket has CORS rules");
    let strings = |rule: &serde_norway::Value, key: &str| -> Vec<String> {
        rule.get(key)
            .and_then(|v| v.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(|s| s.to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let put_rule = rules
        .iter()
        .find(|rule| strings(rule, "AllowedMethods").contains(&"put".to_string()))
        .expect("a rule allows PUT");
    (
        strings(put_rule, "AllowedHeaders"),
        strings(put_rule, "ExposedHeaders"),
    )
}

/// S3 CORS patterns: exact names, `*`, or a prefix ending in `*`.
fn header_matches(pattern: &str, header: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => header.starts_with(prefix),
        None => pattern == header,
    }
}

/// The deployed bucket's CORS rule allows what browser PUTs carry and exposes ETag, which Uppy
/// reads to complete multipart uploads. Besides the signed headers a single PUT gets now
/// (content-type, x-amz-checksum-sha256), conditional creation and tagging headers are allowed
/// (if-none-match, x-amz-tagging).
#[test]
fn the_templates_bucket_cors_allows_the_signed_headers_and_exposes_etag() {
    let (allowed, exposed) = template_bucket_put_rule();
    for header in [
        "content-type",
        "x-amz-checksum-sha256",
        "if-none-match",
        "x-amz-tagging",
    ] {
        assert!(
            allowed.iter().any(|p| header_matches(p, header)),
            "the bucket's CORS rule must allow {header}: {allowed:?}"
        );
    }
    assert!(exposed.contains(&"etag".to_string()), "{exposed:?}");
}
