//! The upload engine: declare the file, send its content straight to S3 (one PUT, or the parts of a
//! multipart upload in parallel), then `complete`, so the answer is the processed file.
//!
//! - Every PUT is retried with back-off on connection errors, 429 and 5xx.
//! - A URL that expired (S3 answers 403 "Request has expired") is signed again with
//!   `GET /v1/uploads/{id}?part_numbers=N`, and the PUT repeated.
//! - Resuming (`resume = Some(upload_id)`): `GET /v1/uploads/{id}` says which parts S3 already holds;
//!   only the others are sent. A session that ended (expired, aborted, rejected, unknown) is
//!   aborted and the file uploaded afresh; a completed one is simply answered.
//! - Bodies are streamed from the file (no part held in memory), with the exact signed length.

use crate::Client;
use crate::error::{ApiError, Error};
use crate::retry;
use api_types::{
    CompleteUploadRequest, CompletedPart, CreateUploadRequest, File, PartUrl, UploadMethod,
    UploadSessionStatus, UploadState,
};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// What to upload and what the file is to be.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    pub path: PathBuf,
    /// The declaration; `size` and (when `checksum`) `sha256` are filled in from the file.
    pub request: CreateUploadRequest,
    /// Declare the content's SHA-256, which the API verifies before the upload becomes a revision.
    pub checksum: bool,
}

/// Hears how an upload goes (progress bars, the resume state file). All methods default to nothing.
pub trait UploadObserver: Send + Sync {
    /// The upload session exists (created, or found again when resuming): from now on it can be
    /// resumed with `upload_id`. `already` bytes are in S3 from an earlier run.
    fn started(&self, _upload_id: &str, _file_id: &str, _total: u64, _already: u64) {}
    /// `bytes` more of the content went out.
    fn sent(&self, _bytes: u64) {}
    /// A failed attempt's `bytes` will be sent again.
    fn unsent(&self, _bytes: u64) {}
}

/// An observer that ignores everything.
pub struct NoProgress;
impl UploadObserver for NoProgress {}

/// A presigned PUT: where, and the headers that are part of its signature.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    headers: BTreeMap<String, String>,
}

/// One piece of the content still to send.
#[derive(Debug, Clone)]
struct Piece {
    /// 0 for a single PUT.
    part_number: u32,
    offset: u64,
    len: u64,
    target: Option<Target>,
}

/// What is left to do for a session.
struct Remaining {
    upload_id: String,
    file_id: String,
    method: UploadMethod,
    pieces: Vec<Piece>,
    done: Vec<CompletedPart>,
    already: u64,
}

enum Attempt {
    Stored(Option<String>),
    /// The URL expired: sign again.
    Expired,
    Retry(Error, Option<Duration>),
    Fatal(Error),
}

/// How long an upload waits for the S3 event's verdict after `complete` answered 202: the
/// processor's own timeout and retries fit well inside it.
const VERIFICATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Client {
    /// Uploads `spec.path` (or resumes `resume`) and answers the file once `complete` processed it.
    pub async fn upload_file(
        &self,
        spec: &UploadSpec,
        resume: Option<&str>,
        observer: &dyn UploadObserver,
    ) -> Result<File, Error> {
        let size = tokio::fs::metadata(&spec.path)
            .await
            .map_err(|e| Error::io(&spec.path, e))?
            .len();
        let mut remaining = None;
        if let Some(upload_id) = resume {
            match self.resumable(upload_id, size).await? {
                Resumed::Remaining(r) => remaining = Some(r),
                Resumed::Completed(file_id) => {
                    observer.started(upload_id, &file_id, size, size);
                    return self.get_file(&file_id, false).await;
                }
                Resumed::Gone => {}
            }
        }
        let remaining = match remaining {
            Some(r) => r,
            None => self.create(spec, size).await?,
        };
        observer.started(
            &remaining.upload_id,
            &remaining.file_id,
            size,
            remaining.already,
        );
        self.send_pieces(&spec.path, remaining, observer).await
    }

    async fn create(&self, spec: &UploadSpec, size: u64) -> Result<Remaining, Error> {
        let mut request = spec.request.clone();
        request.size = size;
        if spec.checksum && request.sha256.is_none() {
            request.sha256 = Some(sha256_file(&spec.path).await?);
        }
        let answer = self.create_upload(&request).await?;
        let pieces = match answer.method {
            UploadMethod::Put => vec![Piece {
                part_number: 0,
                offset: 0,
                len: size,
                target: Some(Target {
                    url: answer
                        .url
                        .clone()
                        .ok_or_else(|| protocol("a PUT upload without url"))?,
                    headers: answer.headers.clone().unwrap_or_default(),
                }),
            }],
            UploadMethod::Multipart => {
                let part_size = answer
                    .part_size
                    .ok_or_else(|| protocol("a multipart upload without part_size"))?;
                answer
                    .parts
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| Piece {
                        part_number: p.part_number,
                        offset: u64::from(p.part_number.saturating_sub(1)) * part_size,
                        len: p.size,
                        target: Some(Target {
                            url: p.url,
                            headers: BTreeMap::new(),
                        }),
                    })
                    .collect()
            }
        };
        Ok(Remaining {
            upload_id: answer.upload_id,
            file_id: answer.file_id,
            method: answer.method,
            pieces,
            done: Vec::new(),
            already: 0,
        })
    }

    /// What an earlier session still needs, or why it cannot go on.
    async fn resumable(&self, upload_id: &str, size: u64) -> Result<Resumed, Error> {
        let state = match self.get_upload(upload_id, None).await {
            Ok(state) => state,
            // The session is unknown (a gateway without the route says `route_not_found`:
            // that is an error, not a reason to start over).
            Err(Error::Api(ApiError {
                status: 404, code, ..
            })) if code == "not_found" => {
                return Ok(Resumed::Gone);
            }
            Err(e) => return Err(e),
        };
        match state.status {
            UploadSessionStatus::Completed => return Ok(Resumed::Completed(state.file_id)),
            UploadSessionStatus::Pending if state.size == size => {}
            // Ended, or the local file is not what was declared any more: start over, and free
            // the name the old session holds (a pending file claims it).
            _ => {
                // Best effort: if it fails and the old file still holds the name, the fresh
                // upload's 409 says so.
                let _ = self.abort_upload(upload_id).await;
                return Ok(Resumed::Gone);
            }
        }
        Ok(Resumed::Remaining(remaining_of(state)?))
    }

    async fn send_pieces(
        &self,
        path: &Path,
        remaining: Remaining,
        observer: &dyn UploadObserver,
    ) -> Result<File, Error> {
        let Remaining {
            upload_id,
            method,
            pieces,
            mut done,
            ..
        } = remaining;
        let sent: Vec<CompletedPart> = futures::stream::iter(pieces)
            .map(|piece| self.send_piece(path, &upload_id, piece, observer))
            // The shared transfer semaphore bounds what is really in flight; this only keeps the
            // number of waiting futures small.
            .buffer_unordered(self.transfer_limit)
            .try_collect()
            .await?;
        let request = match method {
            UploadMethod::Put => CompleteUploadRequest { parts: None },
            UploadMethod::Multipart => {
                done.extend(sent);
                done.sort_by_key(|p| p.part_number);
                CompleteUploadRequest { parts: Some(done) }
            }
        };
        let file = self.complete_upload(&upload_id, &request).await?.file;
        // `complete` answers 202 with the file still pending when the checks need the whole content
        // hashed (a multipart upload with a sha256): the S3 event finishes them; wait for its verdict.
        if file.status == api_types::FileStatus::Pending {
            return self
                .wait_until_processed(&file.id, VERIFICATION_TIMEOUT)
                .await;
        }
        Ok(file)
    }

    /// Sends one piece: retried, re-signed when its URL expired.
    async fn send_piece(
        &self,
        path: &Path,
        upload_id: &str,
        piece: Piece,
        observer: &dyn UploadObserver,
    ) -> Result<CompletedPart, Error> {
        let mut target = match piece.target.clone() {
            Some(t) => t,
            None => self.sign(upload_id, piece.part_number).await?,
        };
        let mut attempt = 1;
        let mut resigned = 0;
        loop {
            let outcome = {
                let _permit = self
                    .transfers
                    .acquire()
                    .await
                    .map_err(|_| Error::Local("the transfer pool closed".into()))?;
                self.put_once(path, &piece, &target, observer).await
            };
            match outcome {
                Attempt::Stored(etag) => {
                    return Ok(CompletedPart {
                        part_number: piece.part_number,
                        etag: etag.unwrap_or_default(),
                    });
                }
                Attempt::Expired if resigned < 3 => {
                    resigned += 1;
                    target = self.sign(upload_id, piece.part_number).await?;
                }
                Attempt::Expired => {
                    return Err(Error::Storage {
                        status: 403,
                        message: "the upload URL keeps expiring".into(),
                    });
                }
                Attempt::Retry(e, after) => {
                    if !self.pause_before_retry(&mut attempt, after).await {
                        return Err(e);
                    }
                }
                Attempt::Fatal(e) => return Err(e),
            }
        }
    }

    /// Waits before the next of `attempt`s when the policy allows one more (and counts it);
    /// false when it does not.
    async fn pause_before_retry(&self, attempt: &mut u32, after: Option<Duration>) -> bool {
        if *attempt >= self.retry.max_attempts {
            return false;
        }
        tokio::time::sleep(self.retry.delay(*attempt, after)).await;
        *attempt += 1;
        true
    }

    /// A fresh URL for `part_number` (0: the single PUT).
    async fn sign(&self, upload_id: &str, part_number: u32) -> Result<Target, Error> {
        let numbers = [part_number];
        let state = self
            .get_upload(upload_id, (part_number > 0).then_some(&numbers[..]))
            .await?;
        if state.status != UploadSessionStatus::Pending {
            return Err(Error::Local(format!(
                "upload {upload_id} is {} and cannot take content any more",
                state.status.as_str()
            )));
        }
        if part_number == 0 {
            return Ok(Target {
                url: state.url.ok_or_else(|| protocol("no url for the PUT"))?,
                headers: state.headers.unwrap_or_default(),
            });
        }
        state
            .parts
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.part_number == part_number)
            .map(|p| Target {
                url: p.url,
                headers: BTreeMap::new(),
            })
            .ok_or_else(|| protocol(&format!("no URL for part {part_number}")))
    }

    async fn put_once(
        &self,
        path: &Path,
        piece: &Piece,
        target: &Target,
        observer: &dyn UploadObserver,
    ) -> Attempt {
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) => return Attempt::Fatal(Error::io(path, e)),
        };
        if let Err(e) = file.seek(SeekFrom::Start(piece.offset)).await {
            return Attempt::Fatal(Error::io(path, e));
        }
        let counted = Arc::new(AtomicU64::new(0));
        let body = {
            let counted = counted.clone();
            let stream =
                tokio_util::io::ReaderStream::with_capacity(file.take(piece.len), 64 * 1024)
                    .inspect_ok(move |chunk| {
                        counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    });
            reqwest::Body::wrap_stream(stream)
        };
        self.put_body(target, piece.len, body, &counted, observer)
            .await
    }

    /// One PUT of `body` (`len` bytes) to a presigned URL; `counted` is how much of it went out.
    async fn put_body(
        &self,
        target: &Target,
        len: u64,
        body: reqwest::Body,
        counted: &AtomicU64,
        observer: &dyn UploadObserver,
    ) -> Attempt {
        let mut headers = HeaderMap::new();
        for (name, value) in &target.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        // A streamed body has no length of its own; S3 needs it (and it is signed for parts).
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        let request = self.http.put(&target.url).headers(headers).body(body);

        // Progress is reported as the body is read, by a ticker beside the request, so that the
        // observer need not be 'static to live inside the body stream.
        let reported = AtomicU64::new(0);
        let report = || {
            let now = counted.load(Ordering::Relaxed);
            let before = reported.swap(now, Ordering::Relaxed);
            observer.sent(now.saturating_sub(before));
        };
        let ticker = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                report();
            }
        };
        let result = tokio::select! {
            result = request.send() => result,
            () = ticker => unreachable!("the ticker never ends"),
        };
        report();
        let outcome = match result {
            Err(e) => Attempt::Retry(Error::network(&target.url, &e), None),
            Ok(resp) if resp.status().is_success() => Attempt::Stored(
                resp.headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            ),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let after = retry::retry_after(resp.headers());
                let text = resp.text().await.unwrap_or_default();
                let message = s3_message(&text).unwrap_or_else(|| format!("HTTP {status}"));
                if status == 403 && message.to_ascii_lowercase().contains("expired") {
                    Attempt::Expired
                } else if retry::retryable_status(status) {
                    Attempt::Retry(Error::Storage { status, message }, after)
                } else {
                    Attempt::Fatal(Error::Storage { status, message })
                }
            }
        };
        if !matches!(outcome, Attempt::Stored(_)) {
            // These bytes will go again (or the upload fails): take them back.
            observer.unsent(reported.load(Ordering::Relaxed));
        }
        outcome
    }
}

impl Client {
    /// PUTs `content` to a presigned URL (an upload's `url`, or a part's) with exactly the
    /// `headers` it was signed with; the ETag S3 answered. Retried like every PUT; an expired URL
    /// is an [`Error::Storage`] 403 (signing it again is the caller's move: `get_upload`).
    pub async fn put_content(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        content: bytes::Bytes,
    ) -> Result<Option<String>, Error> {
        let target = Target {
            url: url.to_string(),
            headers: headers.clone(),
        };
        let mut attempt = 1;
        loop {
            // Nobody hears this body's progress (`NoProgress`): it goes out whole, from memory.
            let counted = AtomicU64::new(0);
            let body = reqwest::Body::from(content.clone());
            match self
                .put_body(&target, content.len() as u64, body, &counted, &NoProgress)
                .await
            {
                Attempt::Stored(etag) => return Ok(etag),
                Attempt::Expired => {
                    return Err(Error::Storage {
                        status: 403,
                        message: "the URL expired".into(),
                    });
                }
                Attempt::Retry(e, after) => {
                    if !self.pause_before_retry(&mut attempt, after).await {
                        return Err(e);
                    }
                }
                Attempt::Fatal(e) => return Err(e),
            }
        }
    }

    /// PUTs `content` as the `parts` of a multipart upload (each part its signed `size`, in order,
    /// one at a time); the list `complete` takes.
    pub async fn put_parts(
        &self,
        parts: &[PartUrl],
        content: &bytes::Bytes,
    ) -> Result<Vec<CompletedPart>, Error> {
        let covered: u64 = parts.iter().map(|p| p.size).sum();
        if covered != content.len() as u64 {
            return Err(Error::Local(format!(
                "the parts cover {covered} bytes, the content has {}",
                content.len()
            )));
        }
        let mut completed = Vec::with_capacity(parts.len());
        let mut offset = 0usize;
        for part in parts {
            let end = offset + part.size as usize;
            let etag = self
                .put_content(&part.url, &BTreeMap::new(), content.slice(offset..end))
                .await?
                .ok_or_else(|| {
                    protocol(&format!("part {} stored without an ETag", part.part_number))
                })?;
            completed.push(CompletedPart {
                part_number: part.part_number,
                etag,
            });
            offset = end;
        }
        Ok(completed)
    }
}

enum Resumed {
    Remaining(Remaining),
    Completed(String),
    Gone,
}

fn remaining_of(state: UploadState) -> Result<Remaining, Error> {
    match state.method {
        UploadMethod::Put => Ok(Remaining {
            pieces: vec![Piece {
                part_number: 0,
                offset: 0,
                len: state.size,
                target: state.url.map(|url| Target {
                    url,
                    headers: state.headers.unwrap_or_default(),
                }),
            }],
            upload_id: state.upload_id,
            file_id: state.file_id,
            method: UploadMethod::Put,
            done: Vec::new(),
            already: 0,
        }),
        UploadMethod::Multipart => {
            let part_size = state
                .part_size
                .ok_or_else(|| protocol("a multipart session without part_size"))?;
            let part_count = state
                .part_count
                .ok_or_else(|| protocol("a multipart session without part_count"))?;
            let mut urls: BTreeMap<u32, String> = state
                .parts
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.part_number, p.url))
                .collect();
            let mut done = Vec::new();
            let mut already = 0;
            let mut pieces = Vec::new();
            let held: BTreeMap<u32, (u64, String)> = state
                .uploaded_parts
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.part_number, (p.size, p.etag)))
                .collect();
            for number in 1..=part_count {
                let offset = u64::from(number - 1) * part_size;
                let len = part_size.min(state.size.saturating_sub(offset));
                match held.get(&number) {
                    // A part of the right length is in S3: not sent again.
                    Some((size, etag)) if *size == len => {
                        done.push(CompletedPart {
                            part_number: number,
                            etag: etag.clone(),
                        });
                        already += len;
                    }
                    _ => pieces.push(Piece {
                        part_number: number,
                        offset,
                        len,
                        target: urls.remove(&number).map(|url| Target {
                            url,
                            headers: BTreeMap::new(),
                        }),
                    }),
                }
            }
            Ok(Remaining {
                upload_id: state.upload_id,
                file_id: state.file_id,
                method: UploadMethod::Multipart,
                pieces,
                done,
                already,
            })
        }
    }
}

/// The `<Message>` of an S3 error document.
pub(crate) fn s3_message(xml: &str) -> Option<String> {
    let start = xml.find("<Message>")? + "<Message>".len();
    let end = xml[start..].find("</Message>")? + start;
    Some(xml[start..end].to_string())
}

fn protocol(message: &str) -> Error {
    Error::Protocol {
        what: "the API".into(),
        message: message.to_string(),
    }
}

/// Lowercase hex SHA-256 of a file, read in 1 MiB blocks.
pub async fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
