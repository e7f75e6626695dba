//! Harness for end-to-end tests: a whole local stack per test (own table, own bucket, own ports),
//! talked to over HTTP like a client would.
//!
//! DynamoDB Local takes ~3 s to start, so the test script starts one for the whole run and passes
//! its endpoint in `FILES_TEST_DYNAMODB_ENDPOINT`; without it each test starts its own.

use local_stack::authorizer::{
    DEFAULT_LOCAL_AUDIENCE, DEFAULT_LOCAL_ISSUER, DEFAULT_LOCAL_SECRET, JwtAuthorizerConfig,
    mint_hs256,
};
use local_stack::dynamodb::DynamoDbLocalOptions;
use local_stack::stack::{DynamoDbSource, LocalStack, StackOptions, local_config};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub mod openapi;
pub mod orphans;
pub use openapi::{assert_matches_schema, assert_request_matches_schema};

pub const DYNAMODB_ENDPOINT_ENV: &str = "FILES_TEST_DYNAMODB_ENDPOINT";

pub struct TestStack {
    pub stack: LocalStack,
    /// A client that does not follow redirects, so tests see the 302s.
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl TestStack {
    pub async fn start() -> TestStack {
        Self::start_with(|_| {}).await
    }

    /// A stack whose functions run with a changed configuration (limits, thresholds).
    pub async fn start_with(configure: impl FnOnce(&mut shared::Config)) -> TestStack {
        Self::start_on(Self::default_dynamodb(), configure).await
    }

    /// A stack on the given DynamoDB (a test that stops its DynamoDB Local starts its own).
    pub async fn start_on(
        dynamodb: DynamoDbSource,
        configure: impl FnOnce(&mut shared::Config),
    ) -> TestStack {
        Self::start_with_options(dynamodb, |options| configure(&mut options.config)).await
    }

    /// A stack on the default DynamoDB without the template's stream event source mappings (as
    /// if they were disabled): what is left half-done stays so, for a test to look at.
    pub async fn start_without_stream_mappings() -> TestStack {
        Self::start_with_options(Self::default_dynamodb(), |options| {
            options.stream_mappings_enabled = false
        })
        .await
    }

    fn default_dynamodb() -> DynamoDbSource {
        match std::env::var(DYNAMODB_ENDPOINT_ENV) {
            Ok(endpoint_url) if !endpoint_url.is_empty() => {
                DynamoDbSource::Existing { endpoint_url }
            }
            _ => DynamoDbSource::Start(DynamoDbLocalOptions::default()),
        }
    }

    /// A stack with changed start options (configuration, mappings).
    pub async fn start_with_options(
        dynamodb: DynamoDbSource,
        configure: impl FnOnce(&mut StackOptions),
    ) -> TestStack {
        let data = tempfile::tempdir().expect("temp dir");
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let options = StackOptions {
            gateway_addr: any_port,
            s3_addr: any_port,
            dynamodb,
            s3_root: data.path().join("s3"),
            jwt: JwtAuthorizerConfig {
                issuer: DEFAULT_LOCAL_ISSUER.to_string(),
                audiences: vec![DEFAULT_LOCAL_AUDIENCE.to_string()],
                hs256_secret: Some(DEFAULT_LOCAL_SECRET.to_string()),
                jwks: None,
            },
            config: local_config(&format!("files-{suffix}"), &format!("files-{suffix}")),
            event_retry_delays: vec![Duration::from_millis(50), Duration::from_millis(200)],
            template_parameters: Default::default(),
            stream_mappings_enabled: true,
        };
        let mut options = options;
        configure(&mut options);
        let stack = LocalStack::start(options)
            .await
            .expect("local stack starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        TestStack {
            stack,
            http,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.base_url())
    }

    /// A valid local token for `sub` in `tenant`, with the scopes the API knows.
    pub fn token(&self, tenant: &str, sub: &str) -> String {
        let now = chrono_now();
        mint_hs256(
            DEFAULT_LOCAL_SECRET,
            &json!({
                "iss": DEFAULT_LOCAL_ISSUER,
                "aud": DEFAULT_LOCAL_AUDIENCE,
                "sub": sub,
                "tenant_id": tenant,
                "scope": "files:read files:write",
                "iat": now,
                "exp": now + 3600,
            }),
        )
    }

    /// A valid local token for `sub` in `tenant` with exactly `scope`.
    pub fn token_with(&self, tenant: &str, sub: &str, scope: &str) -> String {
        self.token_with_claims(tenant, sub, scope, json!({}))
    }

    /// A valid local token with extra claims (e.g. `principal_type: app`).
    pub fn token_with_claims(&self, tenant: &str, sub: &str, scope: &str, extra: Value) -> String {
        let now = chrono_now();
        let mut claims = json!({
            "iss": DEFAULT_LOCAL_ISSUER,
            "aud": DEFAULT_LOCAL_AUDIENCE,
            "sub": sub,
            "tenant_id": tenant,
            "scope": scope,
            "iat": now,
            "exp": now + 3600,
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        mint_hs256(DEFAULT_LOCAL_SECRET, &claims)
    }

    /// `POST /v1/uploads`; returns status and JSON body.
    pub async fn create_upload(&self, token: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/v1/uploads"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("create upload request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// PUTs `content` to an upload answer's URL with exactly the headers it lists.
    pub async fn put_content(&self, upload: &Value, content: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.put(upload["url"].as_str().expect("url"));
        for (name, value) in upload["headers"].as_object().expect("headers") {
            request = request.header(name, value.as_str().expect("header value"));
        }
        request.body(content).send().await.expect("PUT to S3")
    }

    /// `POST /v1/uploads/{id}/complete` with `body` (or none).
    pub async fn complete(
        &self,
        token: &str,
        upload_id: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(&format!("/v1/uploads/{upload_id}/complete")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await.expect("complete request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// PUTs each part of a multipart upload answer; returns the part list for `complete`.
    pub async fn put_parts(&self, upload: &Value, content: &[u8]) -> Value {
        let mut completed = Vec::new();
        let mut offset = 0usize;
        for part in upload["parts"].as_array().expect("parts") {
            let len = part["size"].as_u64().expect("part size") as usize;
            let resp = self
                .http
                .put(part["url"].as_str().expect("part url"))
                .body(content[offset..offset + len].to_vec())
                .send()
                .await
                .expect("part PUT");
            assert_eq!(resp.status(), 200, "part {}", part["part_number"]);
            let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
            completed.push(json!({"part_number": part["part_number"], "etag": etag}));
            offset += len;
        }
        assert_eq!(offset, content.len(), "the parts cover the content");
        json!({ "parts": completed })
    }

    /// GETs `path` (a route answering 302), asserts the redirect, and returns the bytes behind it.
    pub async fn download(&self, token: &str, path: &str) -> Vec<u8> {
        let redirect = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET the route");
        assert_eq!(redirect.status(), 302, "{path}");
        let location = redirect.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        let content = self
            .http
            .get(location)
            .send()
            .await
            .expect("GET the presigned URL");
        assert_eq!(content.status(), 200, "{path}");
        content.bytes().await.expect("body").to_vec()
    }

    pub async fn get_file(&self, token: &str, file_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/files/{file_id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("get file")
    }

    /// Any API request with an optional JSON body (PATCH sends it as a merge patch); returns the
    /// status and the JSON body (null when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let content_type = if method == reqwest::Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let resp = request.send().await.expect("API request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Declares `body` (`POST /v1/uploads`), PUTs `content` and waits until the file (or the new
    /// revision) is processed; returns the file as `GET /v1/files/{id}` answers it then.
    pub async fn upload(&self, token: &str, body: &Value, content: &[u8]) -> Value {
        let (status, upload) = self.create_upload(token, body).await;
        assert_eq!(status, 201, "{upload}");
        let before = match upload["creates_file"].as_bool() {
            Some(false) => {
                let file: Value = self
                    .get_file(token, upload["file_id"].as_str().unwrap())
                    .await
                    .json()
                    .await
                    .unwrap();
                file["revision"].as_u64().unwrap_or(0)
            }
            _ => 0,
        };
        let put = self.put_content(&upload, content.to_vec()).await;
        assert_eq!(put.status(), 200, "PUT of {body}");
        let file_id = upload["file_id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let file: Value = self.get_file(token, file_id).await.json().await.unwrap();
            if file["status"] == "ready" && file["revision"].as_u64() > Some(before) {
                return file;
            }
            assert!(Instant::now() < deadline, "never processed: {file}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls the file until its status is `status` (S3 events are asynchronous), or panics.
    pub async fn wait_for_status(&self, token: &str, file_id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body: Value = self
                .get_file(token, file_id)
                .await
                .json()
                .await
                .expect("json");
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "file {file_id} never became {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (no RNG dependency, same content every run).
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// A photo-like JPEG of `width` x `height` whose EXIF says "rotate 90° clockwise to display"
/// (orientation 6), as phones write portrait shots.
pub fn jpeg_with_orientation(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&pixels)
        .expect("encode JPEG");
    // APP1 "Exif" with a little-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    // Right after SOI.
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG header that declares `width` x `height` (a decompression bomb's shape), with a tiny body.
pub fn png_bomb_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png.extend_from_slice(&0u32.to_be_bytes());
    png.extend_from_slice(b"IEND");
    png.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
