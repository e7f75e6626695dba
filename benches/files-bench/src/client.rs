//! An HTTP client of the Files API (through the local gateway), for seeding files and for the
//! end-to-end measurement: tokens as `mint-token` makes them, uploads as a client makes them.

use local_stack::authorizer::{JwtAuthorizerConfig, mint_hs256};
use serde_json::{Value, json};
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

/// `POST /v1/uploads` body declaring `content` (with its SHA-256, as a careful client sends it).
pub fn declaration(name: &str, content: &[u8], content_type: &str) -> Value {
    json!({
        "name": name,
        "size": content.len(),
        "content_type": content_type,
        "sha256": hex::encode(Sha256::digest(content)),
    })
}

pub struct ApiClient {
    pub http: reqwest::Client,
    pub base_url: String,
    pub token: String,
}

impl ApiClient {
    pub fn new(base_url: &str, tenant: &str) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token(tenant, "bench"),
        }
    }

    pub async fn create_upload(&self, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}/v1/uploads", self.base_url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("POST /v1/uploads answered {status}: {body}"));
        }
        Ok(body)
    }

    /// PUTs `content` to the upload's presigned URL with the headers it was signed with.
    pub async fn put_content(&self, upload: &Value, content: Vec<u8>) -> Result<(), String> {
        let url = upload["url"].as_str().ok_or("the upload has no url")?;
        let mut request = self.http.put(url).body(content);
        if let Some(headers) = upload["headers"].as_object() {
            for (name, value) in headers {
                request = request.header(name, value.as_str().unwrap_or_default());
            }
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(format!("PUT to S3 answered {status}: {text}"));
        }
        Ok(())
    }

    pub async fn get_file(&self, file_id: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}/v1/files/{file_id}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("GET /v1/files/{file_id} answered {status}: {body}"));
        }
        Ok(body)
    }

    /// Polls `GET /v1/files/{id}` every `interval` until `done` holds; the record and when.
    pub async fn wait_for(
        &self,
        file_id: &str,
        interval: Duration,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Instant), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let record = self.get_file(file_id).await?;
            let at = Instant::now();
            if done(&record) {
                return Ok((record, at));
            }
            if record["status"] == "rejected" {
                return Err(format!("the upload was rejected: {record}"));
            }
            if at > deadline {
                return Err(format!(
                    "file {file_id} not done after {timeout:?}: {record}"
                ));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Uploads `content` as a new file and waits until it is ready (and, with `thumbnails`, until
    /// its thumbnails are made); its id.
    pub async fn seed_file(
        &self,
        name: &str,
        content: Vec<u8>,
        content_type: &str,
        thumbnails: bool,
    ) -> Result<String, String> {
        let upload = self
            .create_upload(&declaration(name, &content, content_type))
            .await?;
        self.put_content(&upload, content).await?;
        let file_id = upload["file_id"].as_str().ok_or("no file_id")?.to_string();
        self.wait_for(
            &file_id,
            Duration::from_millis(20),
            Duration::from_secs(30),
            |r| r["status"] == "ready" && (!thumbnails || r.get("thumbnails").is_some()),
        )
        .await?;
        Ok(file_id)
    }
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
