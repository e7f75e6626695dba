//! The local S3 endpoint over the real protocol: aws-sdk-s3 for signed calls and presigning, reqwest for
//! raw HTTP. Each test starts its own endpoint on a free port in a temporary folder.

use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use local_stack::s3::S3Endpoint;
use s3s::crypto::{Checksum, Md5, Sha256};
use tokio::sync::mpsc;

mod s3_common;
use s3_common::{BUCKET, Endpoint, client};

struct Harness {
    endpoint: S3Endpoint,
    events: mpsc::UnboundedReceiver<S3Event>,
    s3: aws_sdk_s3::Client,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let Endpoint {
            endpoint,
            events,
            s3,
            dir,
        } = Endpoint::start().await;
        Self {
            endpoint,
            events,
            s3,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn next_event(&mut self) -> S3Event {
        s3_common::next_event(&mut self.events).await
    }

    async fn assert_no_event(&mut self) {
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(500), self.events.recv()).await
        {
            panic!("unexpected S3 event: {event:?}");
        }
    }

    /// Sends a presigned request the way a browser would: its URL, its headers (minus any in `skip`), a body.
    async fn send_presigned(
        &self,
        presigned: &PresignedRequest,
        skip: &[&str],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(presigned.method().as_bytes()).unwrap();
        let mut req = self.http.request(method, presigned.uri());
        for (name, value) in presigned.headers() {
            if !skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                req = req.header(name, value);
            }
        }
        req.body(body).send().await.unwrap()
    }

    async fn put(&mut self, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
        let event = self.next_event().await;
        assert_eq!(
            event.records[0].event_name.as_deref(),
            Some("ObjectCreated:Put")
        );
    }

    async fn object_status(&self, key: &str) -> Option<u16> {
        match self.s3.head_object().bucket(BUCKET).key(key).send().await {
            Ok(_) => None,
            Err(err) => Some(err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)),
        }
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }
}

fn md5_hex(data: &[u8]) -> String {
    Md5::checksum(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::checksum(data))
}

fn presign_config(secs: u64) -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(secs)).unwrap()
}

async fn presign_put(h: &Harness, key: &str, body: &[u8], expires_secs: u64) -> PresignedRequest {
    h.s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("text/plain")
        .content_length(i64::try_from(body.len()).unwrap())
        .checksum_sha256(sha256_b64(body))
        .presigned(presign_config(expires_secs))
        .await
        .unwrap()
}

fn xml_error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_owned())
}

#[tokio::test]
async fn presigned_put_stores_the_object_and_emits_one_put_event() {
    let mut h = Harness::start().await;
    let key = "uploads/my photo é.txt";
    let body = b"hello from a presigned PUT".to_vec();
    let presigned = presign_put(&h, key, &body, 300).await;
    assert!(
        presigned.uri().contains("X-Amz-Signature="),
        "{}",
        presigned.uri()
    );

    let resp = h.send_presigned(&presigned, &[], body.clone()).await;
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().trim_matches('"').to_owned());
    let request_id = resp
        .headers()
        .get("x-amz-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    assert_eq!(etag.as_deref(), Some(md5_hex(&body).as_str()));

    let event = h.next_event().await;
    assert_eq!(event.records.len(), 1);
    let record = &event.records[0];
    assert_eq!(record.event_version.as_deref(), Some("2.1"));
    assert_eq!(record.event_source.as_deref(), Some("aws:s3"));
    assert_eq!(record.aws_region.as_deref(), Some("us-east-1"));
    assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
    assert!((chrono::Utc::now() - record.event_time).num_seconds().abs() < 60);
    assert_eq!(
        record.principal_id.principal_id.as_deref(),
        Some("AWS:AKIDLOCALTEST")
    );
    assert_eq!(
        record.request_parameters.source_ip_address.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        record.response_elements.get("x-amz-request-id"),
        request_id.as_ref()
    );
    assert_eq!(record.s3.schema_version.as_deref(), Some("1.0"));
    assert!(record.s3.configuration_id.is_some());
    assert_eq!(record.s3.bucket.name.as_deref(), Some(BUCKET));
    assert_eq!(record.s3.bucket.arn.as_deref(), Some("arn:aws:s3:::files"));
    assert!(record.s3.bucket.owner_identity.is_some());
    assert_eq!(
        record.s3.object.key.as_deref(),
        Some("uploads/my+photo+%C3%A9.txt")
    );
    assert_eq!(
        record.s3.object.size,
        Some(i64::try_from(body.len()).unwrap())
    );
    assert_eq!(record.s3.object.e_tag, etag);
    let sequencer = record.s3.object.sequencer.clone().unwrap();
    assert!(
        sequencer
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{sequencer}"
    );

    // Exactly one event, and the object really is there with its content type.
    h.assert_no_event().await;
    assert_eq!(h.get(key).await, body);
    let head =
        h.s3.head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));

    // A second write to the same key gets a greater sequencer (compared as strings).
    let second = b"second version".to_vec();
    let presigned = presign_put(&h, key, &second, 300).await;
    assert_eq!(
        h.send_presigned(&presigned, &[], second).await.status(),
        200
    );
    let later = h.next_event().await.records[0]
        .s3
        .object
        .sequencer
        .clone()
        .unwrap();
    assert_eq!(later.len(), sequencer.len());
    assert!(later > sequencer, "{later} <= {sequencer}");
    h.endpoint.shutdown().await;
}

#[tokio::test]
async fn bad_signatures_expired_urls_and_wrong_bodies_are_refused_without_events() {
    let mut h = Harness::start().await;
    let body = b"twenty-four bytes of it!".to_vec();

    // Tampered signature: flip the last hex digit.
    let presigned = presign_put(&h, "tampered.txt", &body, 300).await;
    let mut uri = presigned.uri().to_owned();
    let last = uri.pop().unwrap();
    uri.push(if last == '0' { '1' } else { '0' });
    let mut req = h.http.put(&uri);
    for (name, value) in presigned.headers() {
        req = req.header(name, value);
    }
    let resp = req.body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(
        xml_error_code(&resp.text().await.unwrap()).as_deref(),
        Some("SignatureDoesNotMatch")
    );

    // Signed with another secret.
    let other = client(&h.endpoint.endpoint_url(), "not-the-secret");
    let presigned = other
        .put_object()
        .bucket(BUCKET)
        .key("wrong-secret.txt")
        .presigned(presign_config(300))
        .await
        .unwrap();
    assert_eq!(
        h.send_presigned(&presigned, &[], body.clone())
            .await
            .status(),
        403
    );

    // Expired URL.
    let presigned = presign_put(&h, "expired.txt", &body, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = h.send_presigned(&presigned, &[], body.clone()).await;
    assert_eq!(
        resp.status().as_u16(),
        403,
        "{}",
        resp.text().await.unwrap()
    );

    // A body of another length than the signed Content-Length (reqwest sends the real length).
    let presigned = presign_put(&h, "longer.txt", &body, 300).await;
    let mut longer = body.clone();
    longer.extend_from_slice(b" and more");
    let status = h
        .send_presigned(&presigned, &["content-length"], longer)
        .await
        .status()
        .as_u16();
    assert!(status == 403 || status == 400, "status {status}");

    // Anonymous requests.
    let url = format!("{}/{BUCKET}/anonymous.txt", h.endpoint.endpoint_url());
    assert_eq!(
        h.http
            .put(&url)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(h.http.get(&url).send().await.unwrap().status(), 403);

    h.assert_no_event().await;
    for key in [
        "tampered.txt",
        "wrong-secret.txt",
        "expired.txt",
        "longer.txt",
        "anonymous.txt",
    ] {
        assert_eq!(h.object_status(key).await, Some(404), "{key}");
    }
}

#[tokio::test]
async fn a_body_that_fails_its_signed_checksum_leaves_no_trace() {
    let mut h = Harness::start().await;
    let declared = b"the bytes the client declared".to_vec();
    let mut sent = declared.clone();
    sent[0] = b'T'; // same length, other content

    // New key: refused, and no object appears (s3s-fs alone would leave the bad bytes in place).
    let presigned = presign_put(&h, "new.txt", &declared, 300).await;
    let resp = h.send_presigned(&presigned, &[], sent.clone()).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        xml_error_code(&resp.text().await.unwrap()).as_deref(),
        Some("BadDigest")
    );
    assert_eq!(h.object_status("new.txt").await, Some(404));

    // Existing key: refused, and the previous content survives.
    h.put("existing.txt", b"original content").await;
    let presigned = presign_put(&h, "existing.txt", &declared, 300).await;
    assert_eq!(
        h.send_presigned(&presigned, &[], sent)
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(h.get("existing.txt").await, b"original content");

    h.assert_no_event().await;
}

#[tokio::test]
async fn multipart_upload_emits_complete_multipart_upload_with_the_total_size() {
    let mut h = Harness::start().await;
    let key = "big/video.bin";
    let part_size = 5 * 1024 * 1024;
    let parts: Vec<Vec<u8>> = vec![
        vec![b'a'; part_size],
        vec![b'b'; part_size],
        b"tail".to_vec(),
    ];
    let total: usize = parts.iter().map(Vec::len).sum();

    let created =
        h.s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await
            .unwrap();
    let upload_id = created.upload_id().unwrap().to_owned();

    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i32::try_from(i + 1).unwrap();
        let out =
            h.s3.upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    // Parts alone create nothing.
    h.assert_no_event().await;
    let listed =
        h.s3.list_parts()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
            .unwrap();
    assert_eq!(listed.parts().len(), 3);

    let done =
        h.s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    let etag = done.e_tag().unwrap().trim_matches('"').to_owned();
    assert!(etag.ends_with("-3"), "{etag}");

    let event = h.next_event().await;
    assert_eq!(event.records.len(), 1);
    let record = &event.records[0];
    assert_eq!(
        record.event_name.as_deref(),
        Some("ObjectCreated:CompleteMultipartUpload")
    );
    assert_eq!(record.s3.bucket.name.as_deref(), Some(BUCKET));
    assert_eq!(record.s3.object.key.as_deref(), Some(key));
    assert_eq!(record.s3.object.size, Some(i64::try_from(total).unwrap()));
    assert_eq!(record.s3.object.e_tag.as_deref(), Some(etag.as_str()));
    h.assert_no_event().await;

    let stored = h.get(key).await;
    assert_eq!(stored.len(), total);
    assert!(stored.ends_with(b"btail"));
}

#[tokio::test]
async fn presigned_get_applies_response_overrides_and_ranges() {
    let mut h = Harness::start().await;
    let key = "docs/report.txt";
    let body = b"0123456789abcdefghij".to_vec();
    h.s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("text/plain")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    h.next_event().await;

    let disposition = "attachment; filename=\"report.txt\"; filename*=UTF-8''r%C3%A9port.txt";
    let presigned =
        h.s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .response_content_disposition(disposition)
            .response_content_type("application/x-report")
            .response_cache_control("private, max-age=60")
            .presigned(presign_config(300))
            .await
            .unwrap();

    let resp = h
        .http
        .get(presigned.uri())
        .header("range", "bytes=10-14")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-disposition").as_deref(), Some(disposition));
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-report")
    );
    assert_eq!(
        header("cache-control").as_deref(),
        Some("private, max-age=60")
    );
    assert_eq!(header("content-range").as_deref(), Some("bytes 10-14/20"));
    assert_eq!(header("content-length").as_deref(), Some("5"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"abcde");

    // Without overrides, the stored content type comes back and the whole object is sent.
    let presigned =
        h.s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .presigned(presign_config(300))
            .await
            .unwrap();
    let resp = h.http.get(presigned.uri()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert!(resp.headers().get("content-disposition").is_none());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice());

    // Reads never produce events.
    h.assert_no_event().await;
}

#[tokio::test]
async fn cors_preflight_and_cors_headers_on_responses() {
    let h = Harness::start().await;
    let origin = "http://localhost:5173";
    let url = format!(
        "{}/{BUCKET}/uploads/some%20file.png",
        h.endpoint.endpoint_url()
    );

    let resp = h
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "content-type,x-amz-checksum-sha256",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header("access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert_eq!(
        header("access-control-allow-methods").as_deref(),
        Some("GET, PUT, HEAD, POST, DELETE")
    );
    assert_eq!(
        header("access-control-allow-headers").as_deref(),
        Some("content-type,x-amz-checksum-sha256")
    );
    assert_eq!(
        header("access-control-expose-headers").as_deref(),
        Some("ETag, x-amz-version-id")
    );
    assert_eq!(header("access-control-max-age").as_deref(), Some("3600"));
    assert_eq!(header("vary").as_deref(), Some("Origin"));

    // Preflight on the service root too (any path).
    let resp = h
        .http
        .request(reqwest::Method::OPTIONS, h.endpoint.endpoint_url())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    // Actual responses to cross-origin requests carry the CORS headers, errors included.
    let key = "cors.txt";
    let body = b"cors".to_vec();
    let presigned = presign_put(&h, key, &body, 300).await;
    let method = reqwest::Method::from_bytes(presigned.method().as_bytes()).unwrap();
    let mut req = h
        .http
        .request(method, presigned.uri())
        .header("origin", origin);
    for (name, value) in presigned.headers() {
        req = req.header(name, value);
    }
    let resp = req.body(body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], origin);
    assert_eq!(
        resp.headers()["access-control-expose-headers"],
        "ETag, x-amz-version-id"
    );
    assert!(resp.headers().contains_key("etag"));

    let resp = h
        .http
        .get(&url)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.headers()["access-control-allow-origin"], origin);

    // Same-origin requests get no CORS headers.
    let resp = h.http.get(&url).send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn copy_object_emits_a_copy_event_and_listing_works() {
    let mut h = Harness::start().await;
    h.put("src/a.txt", b"copy me").await;
    h.s3.copy_object()
        .bucket(BUCKET)
        .key("dst/b c.txt")
        .copy_source(format!("{BUCKET}/src/a.txt"))
        .send()
        .await
        .unwrap();
    let event = h.next_event().await;
    let record = &event.records[0];
    assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Copy"));
    assert_eq!(record.s3.object.key.as_deref(), Some("dst/b+c.txt"));
    assert_eq!(record.s3.object.size, Some(7));
    assert_eq!(
        record.s3.object.e_tag.as_deref(),
        Some(md5_hex(b"copy me").as_str())
    );

    let listed =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("dst/")
            .send()
            .await
            .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dst/b c.txt"]);

    h.s3.delete_object()
        .bucket(BUCKET)
        .key("src/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(h.object_status("src/a.txt").await, Some(404));
    h.assert_no_event().await;
}

#[tokio::test]
async fn shutdown_stops_the_listener_and_drop_releases_the_port() {
    let h = Harness::start().await;
    let url = h.endpoint.endpoint_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    h.s3.head_bucket().bucket(BUCKET).send().await.unwrap();
    let http = h.http.clone();
    h.endpoint.shutdown().await;
    assert!(
        http.get(&url).send().await.is_err(),
        "still answering after shutdown"
    );

    let h = Harness::start().await;
    let addr = h.endpoint.local_addr();
    drop(h);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after drop"
    );
}
