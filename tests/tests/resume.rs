//! Resumable uploads: `GET /v1/uploads/{upload_id}` tells what S3 holds and signs fresh URLs, so an
//! upload outlives the short lifetime of its URLs (the local S3 endpoint enforces presigned expiry).

use integration_tests::{TestStack, assert_matches_schema, sha256_hex, test_bytes};
use serde_json::{Value, json};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const URL_TTL_SECONDS: u64 = 2;

/// Multipart from 1 MiB on, 5 MiB parts (S3's minimum), URLs that expire after 2 s.
async fn short_url_stack() -> TestStack {
    TestStack::start_with(|c| {
        c.multipart_threshold_bytes = MIB;
        c.multipart_part_bytes = 5 * MIB;
        c.upload_url_ttl = Duration::from_secs(URL_TTL_SECONDS);
    })
    .await
}

async fn get_upload(t: &TestStack, token: &str, path_and_query: &str) -> (u16, Value) {
    let resp = t
        .http
        .get(t.url(&format!("/v1/uploads/{path_and_query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET upload");
    let status = resp.status().as_u16();
    if status == 200 {
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let upload_id = path_and_query.split('?').next().unwrap_or_default();
    assert!(!upload_id.is_empty());
    assert_matches_schema("GET", "/v1/uploads/{upload_id}", status, &body);
    (status, body)
}

async fn put_part(t: &TestStack, url: &str, bytes: &[u8]) -> reqwest::Response {
    t.http
        .put(url)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("part PUT")
}

fn part_bytes(content: &[u8], part: &Value, part_size: u64) -> Vec<u8> {
    let n = part["part_number"].as_u64().unwrap();
    let start = ((n - 1) * part_size) as usize;
    let len = part["size"].as_u64().unwrap() as usize;
    content[start..start + len].to_vec()
}

#[tokio::test]
async fn a_multipart_upload_resumes_after_its_urls_expired_and_downloads_intact() {
    let t = short_url_stack().await;
    let token = t.token("acme", "alice");
    // 12 MiB + 1: parts of 5, 5 and 2 MiB + 1 byte.
    let content = test_bytes(12 * MIB as usize + 1, 11);
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({
                "name": "resumed.bin", "size": content.len(),
                "content_type": "application/octet-stream", "sha256": sha256_hex(&content),
            }),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["method"], "MULTIPART");
    let upload_id = upload["upload_id"].as_str().unwrap().to_string();
    let parts = upload["parts"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 3);
    // The session outlives its URLs: a day against 2 s.
    let urls_end =
        chrono::DateTime::parse_from_rfc3339(upload["expires_at"].as_str().unwrap()).unwrap();
    let session_end =
        chrono::DateTime::parse_from_rfc3339(upload["session_expires_at"].as_str().unwrap())
            .unwrap();
    assert!(
        session_end - urls_end > chrono::Duration::hours(23),
        "{upload}"
    );

    // GIVEN part 1 sent in time...
    let first = put_part(
        &t,
        parts[0]["url"].as_str().unwrap(),
        &part_bytes(&content, &parts[0], 5 * MIB),
    )
    .await;
    assert_eq!(first.status(), 200);
    let first_etag = first.headers()["etag"].to_str().unwrap().to_string();

    // ...WHEN the URLs expire before part 2 is sent, S3 refuses it...
    tokio::time::sleep(Duration::from_secs(URL_TTL_SECONDS + 1)).await;
    let late = put_part(
        &t,
        parts[1]["url"].as_str().unwrap(),
        &part_bytes(&content, &parts[1], 5 * MIB),
    )
    .await;
    assert_eq!(late.status(), 403, "an expired part URL must be refused");

    // ...THEN GET /v1/uploads/{id} tells what S3 holds and signs the rest afresh.
    let (status, state) = get_upload(&t, &token, &upload_id).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "pending");
    assert_eq!(state["name"], "resumed.bin");
    assert_eq!(state["size"], content.len());
    assert_eq!(state["content_type"], "application/octet-stream");
    assert_eq!(state["method"], "MULTIPART");
    assert_eq!(state["part_count"], 3);
    assert_eq!(state["file_id"], upload["file_id"]);
    assert_eq!(state["session_expires_at"], upload["session_expires_at"]);
    assert_eq!(
        state["uploaded_parts"],
        json!([{"part_number": 1, "size": 5 * MIB, "etag": first_etag}])
    );
    let fresh = state["parts"].as_array().unwrap();
    let numbers: Vec<u64> = fresh
        .iter()
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 3]);

    let mut completed = vec![json!({"part_number": 1, "etag": first_etag})];
    for part in fresh {
        let resp = put_part(
            &t,
            part["url"].as_str().unwrap(),
            &part_bytes(&content, part, 5 * MIB),
        )
        .await;
        assert_eq!(
            resp.status(),
            200,
            "fresh URL of part {}",
            part["part_number"]
        );
        completed.push(json!({
            "part_number": part["part_number"],
            "etag": resp.headers()["etag"].to_str().unwrap(),
        }));
    }

    // A part re-signed on request (what a client does when one URL expired) works too.
    let (status, resigned) = get_upload(&t, &token, &format!("{upload_id}?part_numbers=3")).await;
    assert_eq!(status, 200, "{resigned}");
    assert_eq!(resigned["parts"].as_array().unwrap().len(), 1);
    assert_eq!(resigned["parts"][0]["part_number"], 3);
    assert_eq!(resigned["uploaded_parts"].as_array().unwrap().len(), 3);

    let (status, pending) = t
        .complete(&token, &upload_id, Some(&json!({ "parts": completed })))
        .await;
    // With a declared SHA-256, the S3 event hashes the multipart object (complete answers 202).
    assert_eq!(status, 202, "{pending}");
    let file = t
        .wait_for_status(&token, pending["id"].as_str().unwrap(), "ready")
        .await;
    let bytes = t.download(&token, file["id"].as_str().unwrap()).await;
    assert_eq!(sha256_hex(&bytes), sha256_hex(&content));

    // Finished: the state says so and signs nothing any more.
    let (status, done) = get_upload(&t, &token, &upload_id).await;
    assert_eq!(status, 200);
    assert_eq!(done["status"], "completed");
    assert!(
        done.get("parts").is_none() && done.get("url").is_none(),
        "{done}"
    );
    let (status, problem) = get_upload(&t, &token, &format!("{upload_id}?part_numbers=1")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "upload_not_pending");
}

#[tokio::test]
async fn a_single_put_gets_a_fresh_url_after_the_first_expired() {
    let t = short_url_stack().await;
    let token = t.token("acme", "alice");
    let content = b"small enough for one PUT".to_vec();
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({
                "name": "note.txt", "size": content.len(), "content_type": "text/plain",
                "sha256": sha256_hex(&content),
            }),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    tokio::time::sleep(Duration::from_secs(URL_TTL_SECONDS + 1)).await;
    assert_eq!(t.put_content(&upload, content.clone()).await, 403);

    let upload_id = upload["upload_id"].as_str().unwrap();
    let (status, state) = get_upload(&t, &token, upload_id).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["method"], "PUT");
    assert!(state.get("uploaded_parts").is_none());
    // A single PUT has no parts to narrow the URLs to: a conflict with what this upload is.
    let (status, problem) = get_upload(&t, &token, &format!("{upload_id}?part_numbers=1")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "no_such_part");
    assert_eq!(problem["part_count"], 0);
    assert_eq!(t.put_content(&state, content.clone()).await, 200);
    let file = t
        .wait_for_status(&token, upload["file_id"].as_str().unwrap(), "ready")
        .await;
    assert_eq!(file["size"], content.len());

    let (status, problem) = get_upload(&t, &token, &format!("{upload_id}?part_numbers=1")).await;
    assert_eq!(status, 409, "finished by now: {problem}");
}

#[tokio::test]
async fn only_the_creator_an_app_or_an_admin_of_the_tenant_sees_an_upload() {
    let t = short_url_stack().await;
    let alice = t.token("acme", "alice");
    let (status, upload) = t
        .create_upload(
            &alice,
            &json!({"name": "big.bin", "size": 6 * MIB, "content_type": "application/octet-stream"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["upload_id"].as_str().unwrap();

    // Another tenant: as if it did not exist.
    let (status, problem) = get_upload(&t, &t.token("globex", "alice"), upload_id).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["code"], "not_found");
    // Same tenant, another user: its URLs would let bob write alice's file.
    let (status, problem) = get_upload(&t, &t.token("acme", "bob"), upload_id).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "not_file_owner");
    // Reading is not enough: the answer holds upload URLs.
    let (status, problem) =
        get_upload(&t, &t.token_with("acme", "alice", "files:read"), upload_id).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "insufficient_scope");
    // Apps and admins may.
    let app = t.token_with_claims(
        "acme",
        "importer",
        "files:write",
        json!({"principal_type": "app"}),
    );
    assert_eq!(get_upload(&t, &app, upload_id).await.0, 200);
    let admin = t.token_with("acme", "carol", "files:admin");
    assert_eq!(get_upload(&t, &admin, upload_id).await.0, 200);

    // Malformed asks, unknown and malformed ids.
    for bad in ["0", "x", "1,,2"] {
        let (status, problem) =
            get_upload(&t, &alice, &format!("{upload_id}?part_numbers={bad}")).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["code"], "invalid_parameter");
    }
    // Well-formed, but this upload has no such part: a conflict with what it is.
    let planned = upload["parts"].as_array().unwrap().len() as u64;
    let (status, problem) = get_upload(
        &t,
        &alice,
        &format!("{upload_id}?part_numbers=1,{}", planned + 1),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "no_such_part");
    assert_eq!(problem["part_number"], planned + 1);
    assert_eq!(problem["part_count"], planned);
    let (status, _) = get_upload(&t, &alice, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404);
    let (status, _) = get_upload(&t, &alice, "not-an-id").await;
    assert_eq!(status, 404);

    // Aborted: its state, no URLs.
    let resp = t
        .http
        .delete(t.url(&format!("/v1/uploads/{upload_id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, state) = get_upload(&t, &alice, upload_id).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "aborted");
    assert!(state.get("parts").is_none());
}

#[tokio::test]
async fn an_upload_s3_no_longer_holds_is_expired_and_gets_no_urls() {
    let t = short_url_stack().await;
    let token = t.token("acme", "alice");
    let (status, upload) = t
        .create_upload(
            &token,
            &json!({"name": "lost.bin", "size": 6 * MIB, "content_type": "application/octet-stream"}),
        )
        .await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["upload_id"].as_str().unwrap();
    // GIVEN the bucket dropped the multipart upload (its abort-incomplete-multipart-uploads rule)...
    let session = t
        .stack
        .app
        .files
        .get_upload("acme", upload_id)
        .await
        .unwrap()
        .unwrap();
    let shared::domain::UploadKind::Multipart { s3_upload_id, .. } = &session.kind else {
        panic!("multipart expected");
    };
    t.stack
        .app
        .objects
        .abort_multipart(&session.object_key, s3_upload_id)
        .await
        .unwrap();
    // ...THEN the state says expired, with no URLs that could not work.
    let (status, state) = get_upload(&t, &token, upload_id).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["status"], "expired");
    assert!(
        state.get("parts").is_none() && state.get("expires_at").is_none(),
        "{state}"
    );
}
