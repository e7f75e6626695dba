//! A client of the Files API.
//!
//! - [`Client`]: one typed method per route, answers as [`api_types`], errors as [`Error`] (an API
//!   refusal is [`ApiError`]: status, stable code, detail).
//! - [`Client::upload_file`]: the direct-to-S3 upload (one PUT or parallel multipart parts, retried
//!   with jittered back-off, re-signed when a URL expired, resumed from `GET /v1/uploads/{id}`).
//! - [`Client::download`]: follows the content route's 302 and resumes with HTTP `Range`.
//!
//! Retries: connection errors, 429 and 5xx are tried again with back-off ([`RetryPolicy`]); a
//! request that is not idempotent (`POST /v1/uploads`) only when it was certainly not carried out
//! (the connection was never made, or 429/503).

mod download;
mod error;
mod retry;
mod upload;

pub use api_types as types;
pub use download::DownloadProgress;
pub use error::{ApiError, Error};
pub use retry::RetryPolicy;
pub use upload::{NoProgress, UploadObserver, UploadSpec, sha256_file};

use api_types::{
    CompleteUploadRequest, CreateUploadRequest, CreateUploadResponse, File, FileList, Revision,
    RevisionList, UploadState,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How many content transfers (PUTs of parts or files, GETs of content) run at once by default.
pub const DEFAULT_TRANSFERS: usize = 4;

/// The path of the local stack's development token (only `local/` serves it; never deployed).
pub const DEV_TOKEN_PATH: &str = "/local/dev-token";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
    retry: RetryPolicy,
    /// Shared by every transfer of this client, so `--jobs N` bounds the PUTs in flight whether
    /// they are parts of one file or whole files.
    transfers: Arc<Semaphore>,
    transfer_limit: usize,
}

impl std::fmt::Debug for Client {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The HTTP client every request goes through: redirects are not followed (the API's 302s are
/// answers the caller reads).
pub fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // No overall timeout: a part of 16 MiB on a slow line takes long; a stalled read does not.
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| {
            Error::Local(format!(
                "cannot build the HTTP client: {}",
                error::chain(&e)
            ))
        })
}

impl Client {
    pub fn new(base_url: &str, token: &str) -> Result<Client, Error> {
        Ok(Client {
            http: http_client()?,
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            retry: RetryPolicy::default(),
            transfers: Arc::new(Semaphore::new(DEFAULT_TRANSFERS)),
            transfer_limit: DEFAULT_TRANSFERS,
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// At most `n` content transfers at once (at least 1).
    pub fn with_transfers(mut self, n: usize) -> Client {
        self.transfers = Arc::new(Semaphore::new(n.max(1)));
        self.transfer_limit = n.max(1);
        self
    }

    pub fn transfer_limit(&self) -> usize {
        self.transfer_limit
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Asks the local stack for its development token (`GET /local/dev-token`).
    pub async fn dev_token(base_url: &str) -> Result<String, Error> {
        let url = format!("{}{DEV_TOKEN_PATH}", base_url.trim_end_matches('/'));
        let http = http_client()?;
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::network(&url, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Error::network(&url, &e))?;
        if !status.is_success() {
            return Err(ApiError::from_body(status.as_u16(), &body).into());
        }
        #[derive(serde::Deserialize)]
        struct DevToken {
            token: String,
        }
        serde_json::from_slice::<DevToken>(&body)
            .map(|t| t.token)
            .map_err(|e| Error::Protocol {
                what: url,
                message: e.to_string(),
            })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends what `build` makes, again after a back-off while the failure is worth retrying.
    pub(crate) async fn send_retrying(
        &self,
        idempotent: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Error> {
        let mut attempt = 1;
        loop {
            let request = build()
                .build()
                .map_err(|e| Error::Local(error::chain(&e)))?;
            let url = request.url().to_string();
            let last = attempt >= self.retry.max_attempts;
            match self.http.execute(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let again = retry::retryable_status(status)
                        && (idempotent || retry::not_carried_out(status));
                    if !again || last {
                        return Ok(resp);
                    }
                    let pause = self
                        .retry
                        .delay(attempt, retry::retry_after(resp.headers()));
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    if last || !(e.is_connect() || idempotent) {
                        return Err(Error::network(&url, &e));
                    }
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                }
            }
            attempt += 1;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        idempotent: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, Error> {
        self.call_expecting(idempotent, &[StatusCode::OK], build)
            .await
            .map(|(_, value)| value)
    }

    /// A JSON answer with one of the `expected` success statuses (the ones the route documents),
    /// and which it was.
    async fn call_expecting<T: DeserializeOwned>(
        &self,
        idempotent: bool,
        expected: &[StatusCode],
        build: impl Fn() -> RequestBuilder,
    ) -> Result<(StatusCode, T), Error> {
        let resp = self.send_retrying(idempotent, build).await?;
        json_answer(resp, expected).await
    }

    async fn call_empty(&self, build: impl Fn() -> RequestBuilder) -> Result<(), Error> {
        let resp = self.send_retrying(true, build).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|e| Error::network(&url, &e))?;
        Err(ApiError::from_body(status.as_u16(), &body).into())
    }

    /// `POST /v1/uploads`.
    pub async fn create_upload(
        &self,
        request: &CreateUploadRequest,
    ) -> Result<CreateUploadResponse, Error> {
        // Not idempotent: a repeat after a lost answer would meet its own name claim (409).
        self.call_expecting(false, &[StatusCode::CREATED], || {
            self.api(Method::POST, "/v1/uploads").json(request)
        })
        .await
        .map(|(_, answer)| answer)
    }

    /// `GET /v1/uploads/{id}`: the session, the parts S3 holds, fresh URLs for the rest (or for
    /// `part_numbers` only).
    pub async fn get_upload(
        &self,
        upload_id: &str,
        part_numbers: Option<&[u32]>,
    ) -> Result<UploadState, Error> {
        let path = format!("/v1/uploads/{}", segment(upload_id));
        let query: Vec<(&str, String)> = part_numbers
            .map(|numbers| {
                let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
                vec![("part_numbers", list.join(","))]
            })
            .unwrap_or_default();
        self.call(true, || self.api(Method::GET, &path).query(&query))
            .await
    }

    /// `POST /v1/uploads/{id}/complete` (idempotent: a repeat answers the same file).
    pub async fn complete_upload(
        &self,
        upload_id: &str,
        request: &CompleteUploadRequest,
    ) -> Result<Completed, Error> {
        let path = format!("/v1/uploads/{}/complete", segment(upload_id));
        let (status, file) = self
            .call_expecting(true, &[StatusCode::OK, StatusCode::ACCEPTED], || {
                self.api(Method::POST, &path).json(request)
            })
            .await?;
        Ok(Completed {
            file,
            deferred: status == StatusCode::ACCEPTED,
        })
    }

    /// `DELETE /v1/uploads/{id}`.
    pub async fn abort_upload(&self, upload_id: &str) -> Result<(), Error> {
        let path = format!("/v1/uploads/{}", segment(upload_id));
        self.call_empty(|| self.api(Method::DELETE, &path)).await
    }

    /// `GET /v1/files/{id}` (with `trashed=true`, also a file in the trash).
    pub async fn get_file(&self, file_id: &str, trashed: bool) -> Result<File, Error> {
        let path = format!("/v1/files/{}", segment(file_id));
        let query: &[(&str, &str)] = if trashed { &[("trashed", "true")] } else { &[] };
        self.call(true, || self.api(Method::GET, &path).query(query))
            .await
    }

    /// `GET /v1/files` with the given query parameters (filters, `order_by`, `limit`, `cursor`).
    pub async fn list_files(&self, query: &[(String, String)]) -> Result<FileList, Error> {
        self.call(true, || self.api(Method::GET, "/v1/files").query(query))
            .await
    }

    /// Every file of a listing, following `next_cursor`.
    pub async fn list_all_files(&self, query: &[(String, String)]) -> Result<Vec<File>, Error> {
        all_pages(|cursor| async move {
            let mut page_query = query.to_vec();
            if let Some(cursor) = cursor {
                page_query.push(("cursor".into(), cursor));
            }
            let page = self.list_files(&page_query).await?;
            Ok((page.items, page.next_cursor))
        })
        .await
    }

    /// `POST /v1/files/{id}/trash`.
    pub async fn trash_file(&self, file_id: &str) -> Result<File, Error> {
        let path = format!("/v1/files/{}/trash", segment(file_id));
        self.call(true, || self.api(Method::POST, &path)).await
    }

    /// `POST /v1/files/{id}/restore`.
    pub async fn restore_file(&self, file_id: &str) -> Result<File, Error> {
        let path = format!("/v1/files/{}/restore", segment(file_id));
        self.call(true, || self.api(Method::POST, &path)).await
    }

    /// `DELETE /v1/files/{id}`: for good (needs `files:admin`).
    pub async fn delete_file(&self, file_id: &str) -> Result<(), Error> {
        let path = format!("/v1/files/{}", segment(file_id));
        self.call_empty(|| self.api(Method::DELETE, &path)).await
    }

    /// `GET /v1/files/{id}/revisions`: one page, oldest first (`limit` 1-100, the API's default
    /// without; `cursor` from the previous page's `next_cursor`).
    pub async fn list_revisions(
        &self,
        file_id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<RevisionList, Error> {
        let path = format!("/v1/files/{}/revisions", segment(file_id));
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_string()));
        }
        self.call(true, || self.api(Method::GET, &path).query(&query))
            .await
    }

    /// Every revision of a file, oldest first, following `next_cursor` (pages of 100, the most the
    /// API gives, so a long history takes few requests).
    pub async fn list_all_revisions(&self, file_id: &str) -> Result<Vec<Revision>, Error> {
        all_pages(|cursor| async move {
            let page = self
                .list_revisions(file_id, Some(100), cursor.as_deref())
                .await?;
            Ok((page.items, page.next_cursor))
        })
        .await
    }

    /// `GET /v1/files/{id}/content`: the presigned URL it redirects to.
    pub async fn content_url(&self, file_id: &str) -> Result<String, Error> {
        let path = format!("/v1/files/{}/content", segment(file_id));
        self.redirect(path).await
    }

    /// `GET /v1/files/{id}/thumbnails/{size}`: the presigned URL of the thumbnail (`size` 64, 256
    /// or 1024; 404 `thumbnail_pending` while it is being made).
    pub async fn thumbnail_url(&self, file_id: &str, size: u32) -> Result<String, Error> {
        let path = format!("/v1/files/{}/thumbnails/{size}", segment(file_id));
        self.redirect(path).await
    }

    /// The current content of `file_id`, in memory (for small files; [`Client::download`] writes
    /// to disk and resumes).
    pub async fn download_bytes(&self, file_id: &str) -> Result<Vec<u8>, Error> {
        let url = self.content_url(file_id).await?;
        self.fetch(&url).await
    }

    /// The bytes behind a presigned GET URL (a `download_url`, a thumbnail link).
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, Error> {
        let resp = self.send_retrying(true, || self.http.get(url)).await?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Error::network(url, &e))?;
        if status != StatusCode::OK {
            return Err(Error::Storage {
                status: status.as_u16(),
                message: upload::s3_message(&String::from_utf8_lossy(&body))
                    .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            });
        }
        Ok(body.to_vec())
    }

    /// A route that answers 302: where it points.
    async fn redirect(&self, path: String) -> Result<String, Error> {
        let resp = self
            .send_retrying(true, || self.api(Method::GET, &path))
            .await?;
        let status = resp.status();
        if status == StatusCode::FOUND {
            return resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| Error::Protocol {
                    what: path,
                    message: "a 302 without a Location".into(),
                });
        }
        let body = resp.bytes().await.map_err(|e| Error::network(&path, &e))?;
        if status.is_success() {
            return Err(Error::Protocol {
                what: path,
                message: format!("expected a 302, got {status}"),
            });
        }
        Err(ApiError::from_body(status.as_u16(), &body).into())
    }

    /// Polls `GET /v1/files/{id}` until the file is no longer `pending` (S3 events are
    /// asynchronous), or `timeout` passed.
    pub async fn wait_until_processed(
        &self,
        file_id: &str,
        timeout: Duration,
    ) -> Result<File, Error> {
        self.wait_for(file_id, Polling::backing_off(timeout), |file| {
            file.status != api_types::FileStatus::Pending
        })
        .await
    }

    /// Polls `GET /v1/files/{id}` until `until` holds for the file (a status, a revision,
    /// thumbnails), or `polling.timeout` passed (then [`Error::Local`] with the file as it was).
    pub async fn wait_for(
        &self,
        file_id: &str,
        polling: Polling,
        until: impl Fn(&File) -> bool,
    ) -> Result<File, Error> {
        let deadline = Instant::now() + polling.timeout;
        let mut pause = polling.first;
        loop {
            let file = self.get_file(file_id, false).await?;
            if until(&file) {
                return Ok(file);
            }
            if Instant::now() >= deadline {
                return Err(Error::Local(format!(
                    "file {file_id} is still {} (revision {}) after {}s",
                    file.status.as_str(),
                    file.revision,
                    polling.timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(polling.max);
        }
    }
}

/// What `complete` answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub file: File,
    /// 202: the API left the verification to the S3 event (the whole content must be hashed), and
    /// the file is still `pending`; 200: it processed the upload (the file is `ready`).
    pub deferred: bool,
}

/// How [`Client::wait_for`] polls: `first` apart, doubling up to `max`, for at most `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
    pub timeout: Duration,
}

impl Polling {
    /// 50 ms, doubling to 1 s: quick for the usual sub-second processing, light on a long wait.
    pub fn backing_off(timeout: Duration) -> Polling {
        Polling {
            first: Duration::from_millis(50),
            max: Duration::from_secs(1),
            timeout,
        }
    }

    /// Every `interval`: when the moment the file changed is measured (the benches), a growing
    /// pause would blur it.
    pub fn every(interval: Duration, timeout: Duration) -> Polling {
        Polling {
            first: interval,
            max: interval,
            timeout,
        }
    }
}

/// Every item of a cursor-paginated listing: `page(cursor)` answers a page's items and its
/// `next_cursor`, until there is none.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Error>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), Error>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let (page_items, next) = page(cursor).await?;
        items.extend(page_items);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// A success answer's JSON and its status, or the API's problem as an error. A success the route
/// does not document (not one of `expected`) is a protocol error: the answer may not mean what the
/// caller takes it for.
async fn json_answer<T: DeserializeOwned>(
    resp: Response,
    expected: &[StatusCode],
) -> Result<(StatusCode, T), Error> {
    let status = resp.status();
    let url = error::strip_query(resp.url().as_str());
    let body = resp.bytes().await.map_err(|e| Error::network(&url, &e))?;
    if !status.is_success() {
        return Err(ApiError::from_body(status.as_u16(), &body).into());
    }
    if !expected.contains(&status) {
        return Err(Error::Protocol {
            what: url,
            message: format!("answered {status}, which the route does not document"),
        });
    }
    serde_json::from_slice(&body)
        .map(|value| (status, value))
        .map_err(|e| Error::Protocol {
            what: url,
            message: e.to_string(),
        })
}

/// An id as one path segment: ids are URL-safe, anything else is percent-encoded rather than
/// allowed to change the path.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
