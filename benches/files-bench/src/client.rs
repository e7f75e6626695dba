//! The benches' use of the Files API (through the local gateway), for seeding files and for the
//! end-to-end measurement: tokens as `mint-token` makes them, calls through `files-client`.

use files_client::types::{CreateUploadRequest, File, FileStatus};
use files_client::{Client, Polling, RetryPolicy};
use local_stack::authorizer::{JwtAuthorizerConfig, mint_hs256};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// A bearer token the local gateway accepts (same secret, issuer and audience as `mint-token`).
pub fn token(tenant: &str, subject: &str) -> String {
    let config = JwtAuthorizerConfig::local_from_env();
    let secret = config
        .hs256_secret
        .expect("the local configuration has a secret");
    let claim = std::env::var("FILES_TENANT_CLAIM").unwrap_or_else(|_| "tenant_id".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut claims = json!({
        "iss": config.issuer,
        "aud": config.audiences.first().cloned().unwrap_or_default(),
        "sub": subject,
        "scope": "files:read files:write",
        "iat": now,
        "exp": now + 3600,
    });
    claims[claim] = json!(tenant);
    mint_hs256(&secret, &claims)
}

/// A client of the Files API for `tenant` (a bench token): `files-client`, as the CLI uses it, but
/// without retries, so that a failed request fails the run instead of adding a back-off to the
/// figures. What it adds to a request is parsing the answer into the API's type (microseconds,
/// against the milliseconds measured).
pub fn api_client(base_url: &str, tenant: &str) -> Result<Client, String> {
    Client::new(base_url, &token(tenant, "bench"))
        .map(|client| {
            client.with_retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
        })
        .map_err(|e| e.to_string())
}

/// A failed call as one line: the status and code of an API refusal, and what it said.
pub fn failure(error: files_client::Error) -> String {
    match error.api() {
        Some(api) => format!("HTTP {} {}: {}", api.status, api.code, api.detail),
        None => error.to_string(),
    }
}

/// `POST /v1/uploads` declaring `content` (with its SHA-256, as a careful client sends it).
pub fn declaration(name: &str, content: &[u8], content_type: &str) -> CreateUploadRequest {
    CreateUploadRequest {
        name: Some(name.to_string()),
        size: content.len() as u64,
        content_type: content_type.to_string(),
        sha256: Some(hex::encode(Sha256::digest(content))),
        ..CreateUploadRequest::default()
    }
}

/// Polls the file every `interval` until `done` holds, failing early if it was rejected; when it
/// held.
pub async fn wait_for(
    api: &Client,
    file_id: &str,
    interval: Duration,
    timeout: Duration,
    done: impl Fn(&File) -> bool,
) -> Result<Instant, String> {
    let file = api
        .wait_for(file_id, Polling::every(interval, timeout), |file| {
            done(file) || file.status == FileStatus::Rejected
        })
        .await
        .map_err(failure)?;
    let at = Instant::now();
    if !done(&file) {
        return Err(format!(
            "the upload was rejected: {}",
            file.rejection_reason.unwrap_or_default()
        ));
    }
    Ok(at)
}

/// Uploads `content` as a new file and waits until it is ready (and, with `thumbnails`, until its
/// thumbnails are made); its id.
pub async fn seed_file(
    api: &Client,
    name: &str,
    content: Vec<u8>,
    content_type: &str,
    thumbnails: bool,
) -> Result<String, String> {
    let upload = api
        .create_upload(&declaration(name, &content, content_type))
        .await
        .map_err(failure)?;
    let url = upload.url.as_deref().ok_or("not a single-PUT upload")?;
    api.put_content(
        url,
        &upload.headers.clone().unwrap_or_default(),
        content.into(),
    )
    .await
    .map_err(failure)?;
    wait_for(
        api,
        &upload.file_id,
        Duration::from_millis(20),
        Duration::from_secs(30),
        |file| file.status == FileStatus::Ready && (!thumbnails || file.thumbnails.is_some()),
    )
    .await?;
    Ok(upload.file_id)
}

/// A small photo-like JPEG (a gradient), for files that get thumbnails.
pub fn small_jpeg(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&pixels)
        .expect("a JPEG encodes into memory");
    jpeg
}
