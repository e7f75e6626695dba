//! Harness for end-to-end tests: a whole local stack per test (own table, own bucket, own ports),
//! talked to over HTTP like a client would.
//!
//! DynamoDB Local takes ~3 s to start, so the test script starts one for the whole run and passes
//! its endpoint in `FILES_TEST_DYNAMODB_ENDPOINT`; without it each test starts its own.

use files_client::types::{CompleteUploadRequest, CreateUploadRequest, File, FileStatus, PartUrl};
use files_client::{Client, Completed, Polling, RetryPolicy};
use local_stack::authorizer::{
    DEFAULT_LOCAL_AUDIENCE, DEFAULT_LOCAL_ISSUER, DEFAULT_LOCAL_SECRET, JwtAuthorizerConfig,
    mint_hs256,
};
use local_stack::dynamodb::DynamoDbLocalOptions;
use local_stack::stack::{DynamoDbSource, LocalStack, StackOptions, local_config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

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

    /// A client of this stack's API for `token`, as an application uses it, but without retries:
    /// a test sees the first answer (a retried 5xx or 429 would hide what it looks for).
    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.stack.base_url(), token)
            .expect("API client")
            .with_retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
    }

    /// A client for presigned URLs only: they carry their own signature, no token.
    fn presigned(&self) -> Client {
        self.client("")
    }

    /// `POST /v1/uploads` through the client; the status (201, the only success the client takes,
    /// or the refusal's) and the JSON body (the answer, or the problem). `body` must be a
    /// declaration the API's type reads: malformed ones go through [`TestStack::call`].
    pub async fn create_upload(&self, token: &str, body: &Value) -> (u16, Value) {
        let request = typed::<CreateUploadRequest>(body);
        answer(self.client(token).create_upload(&request).await, 201)
    }

    /// PUTs `content` to an upload answer's (or an upload state's) URL with exactly the headers it
    /// lists; S3's status (200 stored, 403 expired, 412 refused, ...).
    pub async fn put_content(&self, upload: &Value, content: Vec<u8>) -> u16 {
        let url = upload["url"].as_str().expect("url");
        let headers = typed::<BTreeMap<String, String>>(&upload["headers"]);
        match self
            .presigned()
            .put_content(url, &headers, content.into())
            .await
        {
            Ok(_) => 200,
            Err(files_client::Error::Storage { status, .. }) => status,
            Err(e) => panic!("PUT to S3: {e}"),
        }
    }

    /// The same PUT as [`TestStack::put_content`] without the client, for a test that reads S3's
    /// own answer to a refused write (its XML error document).
    pub async fn put_content_raw(&self, upload: &Value, content: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.put(upload["url"].as_str().expect("url"));
        for (name, value) in upload["headers"].as_object().expect("headers") {
            request = request.header(name, value.as_str().expect("header value"));
        }
        request.body(content).send().await.expect("PUT to S3")
    }

    /// `POST /v1/uploads/{id}/complete` through the client with `body` (none: `{}`, no part list);
    /// the status (200 processed, 202 left to the S3 event, or the refusal's) and the JSON body.
    pub async fn complete(
        &self,
        token: &str,
        upload_id: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let request = body.map(typed::<CompleteUploadRequest>).unwrap_or_default();
        match self
            .client(token)
            .complete_upload(upload_id, &request)
            .await
        {
            Ok(Completed { file, deferred }) => answer(Ok(file), if deferred { 202 } else { 200 }),
            Err(e) => answer::<File>(Err(e), 0),
        }
    }

    /// PUTs each part of a multipart upload answer; returns the body for `complete`.
    pub async fn put_parts(&self, upload: &Value, content: &[u8]) -> Value {
        let parts = typed::<Vec<PartUrl>>(&upload["parts"]);
        let completed = self
            .presigned()
            .put_parts(&parts, &bytes::Bytes::copy_from_slice(content))
            .await
            .unwrap_or_else(|e| panic!("part PUTs: {e}"));
        json!({ "parts": completed })
    }

    /// The current content of `file_id`: `GET /v1/files/{id}/content`, its 302 followed.
    pub async fn download(&self, token: &str, file_id: &str) -> Vec<u8> {
        self.client(token)
            .download_bytes(file_id)
            .await
            .unwrap_or_else(|e| panic!("download of {file_id}: {e}"))
    }

    /// A thumbnail's bytes: `GET /v1/files/{id}/thumbnails/{size}`, its 302 followed.
    pub async fn download_thumbnail(&self, token: &str, file_id: &str, size: u32) -> Vec<u8> {
        let client = self.client(token);
        let url = client
            .thumbnail_url(file_id, size)
            .await
            .unwrap_or_else(|e| panic!("thumbnail {size} of {file_id}: {e}"));
        client
            .fetch(&url)
            .await
            .unwrap_or_else(|e| panic!("thumbnail {size} of {file_id}: {e}"))
    }

    /// `GET /v1/files/{id}` through the client: the file (panics on an error answer).
    pub async fn get_file(&self, token: &str, file_id: &str) -> Value {
        let file = self
            .client(token)
            .get_file(file_id, false)
            .await
            .unwrap_or_else(|e| panic!("GET /v1/files/{file_id}: {e}"));
        serde_json::to_value(file).expect("a file is JSON")
    }

    /// The status `GET /v1/files/{id}` answers (200, or the refusal's).
    pub async fn file_status(&self, token: &str, file_id: &str) -> u16 {
        answer(self.client(token).get_file(file_id, false).await, 200).0
    }

    /// `GET /v1/files/{id}` without the client, for what only the raw answer shows (ETag,
    /// caching headers, 304).
    pub async fn get_file_response(&self, token: &str, file_id: &str) -> reqwest::Response {
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
    /// revision) is processed by the S3 event (no `complete`); returns the file as
    /// `GET /v1/files/{id}` answers it then.
    pub async fn upload(&self, token: &str, body: &Value, content: &[u8]) -> Value {
        let client = self.client(token);
        let upload = client
            .create_upload(&typed(body))
            .await
            .unwrap_or_else(|e| panic!("POST /v1/uploads of {body}: {e}"));
        let before = if upload.creates_file {
            0
        } else {
            client
                .get_file(&upload.file_id, false)
                .await
                .unwrap_or_else(|e| panic!("the file of {body}: {e}"))
                .revision
        };
        client
            .put_content(
                upload.url.as_deref().expect("a single PUT"),
                &upload.headers.clone().unwrap_or_default(),
                content.to_vec().into(),
            )
            .await
            .unwrap_or_else(|e| panic!("PUT of {body}: {e}"));
        let file = client
            .wait_for(&upload.file_id, PROCESSING, |file| {
                file.status == FileStatus::Ready && file.revision > before
            })
            .await
            .unwrap_or_else(|e| panic!("never processed: {e}"));
        serde_json::to_value(file).expect("a file is JSON")
    }

    /// Polls the file until its status is `status` (S3 events are asynchronous), or panics.
    pub async fn wait_for_status(&self, token: &str, file_id: &str, status: &str) -> Value {
        let file = self
            .client(token)
            .wait_for(file_id, PROCESSING, |file| file.status.as_str() == status)
            .await
            .unwrap_or_else(|e| panic!("file {file_id} never became {status}: {e}"));
        serde_json::to_value(file).expect("a file is JSON")
    }
}

/// How the harness waits for the S3 event's verdict: often (the local stack processes a small
/// upload in milliseconds), and long enough for a loaded machine.
const PROCESSING: Polling = Polling {
    first: Duration::from_millis(25),
    max: Duration::from_millis(25),
    timeout: Duration::from_secs(15),
};

/// A test's JSON body as the API's request type (the client sends only typed requests).
fn typed<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| {
        panic!("{body} is not what the client sends ({e}); send it with `TestStack::call`")
    })
}

/// A client call as the status and JSON body the tests assert on: `success` and the answer, or
/// the refusal's status and its problem (the gateway's own refusals: code and detail).
fn answer<T: Serialize>(result: Result<T, files_client::Error>, success: u16) -> (u16, Value) {
    match result {
        Ok(value) => (
            success,
            serde_json::to_value(value).expect("an answer is JSON"),
        ),
        Err(files_client::Error::Api(e)) => {
            let body = match e.problem {
                Some(problem) => serde_json::to_value(problem).expect("a problem is JSON"),
                None => json!({"code": e.code, "detail": e.detail}),
            };
            (e.status, body)
        }
        Err(e) => panic!("no answer from the API: {e}"),
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
