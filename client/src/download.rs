//! Downloads: `GET /v1/files/{id}/content` answers 302 to a presigned S3 URL; the bytes come from
//! there. They are written to `<dest>.partial` and renamed when complete, so an interrupted
//! download leaves a partial file that the next attempt (or the next run) continues with
//! `Range: bytes=N-` instead of starting over.

use crate::error::Error;
use crate::{Client, retry};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Hears how a download goes. All methods default to nothing.
pub trait DownloadProgress: Send + Sync {
    /// The total size (when S3 said it) and the bytes already on disk from an earlier attempt.
    fn started(&self, _total: Option<u64>, _already: u64) {}
    fn received(&self, _bytes: u64) {}
}

impl DownloadProgress for crate::NoProgress {}

/// Where the bytes of an unfinished download of `dest` are kept.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

enum Step {
    Done(u64),
    Retry(Error),
}

impl Client {
    /// Downloads the current content of `file_id` to `dest`; its size.
    pub async fn download(
        &self,
        file_id: &str,
        dest: &Path,
        progress: &dyn DownloadProgress,
    ) -> Result<u64, Error> {
        let partial = partial_path(dest);
        let mut attempt = 1;
        loop {
            // A fresh URL each attempt: the last one may have expired meanwhile.
            let url = self.content_url(file_id).await?;
            let before = file_len(&partial).await;
            let step = {
                let _permit = self
                    .transfers
                    .acquire()
                    .await
                    .map_err(|_| Error::Local("the transfer pool closed".into()))?;
                self.fetch_into(&url, &partial, progress).await?
            };
            match step {
                Step::Done(size) => {
                    tokio::fs::rename(&partial, dest)
                        .await
                        .map_err(|e| Error::io(dest, e))?;
                    return Ok(size);
                }
                Step::Retry(e) => {
                    // Progress made: the attempts count from here again.
                    if file_len(&partial).await > before {
                        attempt = 1;
                    }
                    if attempt >= self.retry.max_attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One GET of what `partial` is missing, appended to it.
    async fn fetch_into(
        &self,
        url: &str,
        partial: &Path,
        progress: &dyn DownloadProgress,
    ) -> Result<Step, Error> {
        let have = file_len(partial).await;
        let mut request = self.http.get(url);
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let resp = match request.send().await {
            Ok(resp) => resp,
            Err(e) => return Ok(Step::Retry(Error::network(url, &e))),
        };
        let status = resp.status();
        let (append, total) = match status {
            StatusCode::PARTIAL_CONTENT => (true, content_range_total(resp.headers())),
            StatusCode::OK => (false, content_length(resp.headers())),
            // Asked past the end: the partial file holds everything already.
            StatusCode::RANGE_NOT_SATISFIABLE
                if content_range_total(resp.headers()) == Some(have) =>
            {
                progress.started(Some(have), have);
                return Ok(Step::Done(have));
            }
            s => {
                let message = format!("HTTP {}", s.as_u16());
                let err = Error::Storage {
                    status: s.as_u16(),
                    message,
                };
                if retry::retryable_status(s.as_u16()) || s == StatusCode::FORBIDDEN {
                    // 403: most likely the URL expired; the next attempt gets a fresh one.
                    return Ok(Step::Retry(err));
                }
                if s == StatusCode::RANGE_NOT_SATISFIABLE {
                    // The partial file is not a prefix of this content: start over.
                    let _ = tokio::fs::remove_file(partial).await;
                    return Ok(Step::Retry(err));
                }
                return Err(err);
            }
        };
        let already = if append { have } else { 0 };
        progress.started(total, already);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .await
            .map_err(|e| Error::io(partial, e))?;
        let mut written = already;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    file.flush().await.map_err(|e| Error::io(partial, e))?;
                    return Ok(Step::Retry(Error::network(url, &e)));
                }
            };
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(partial, e))?;
            written += chunk.len() as u64;
            progress.received(chunk.len() as u64);
        }
        file.flush().await.map_err(|e| Error::io(partial, e))?;
        if let Some(total) = total
            && written != total
        {
            return Ok(Step::Retry(Error::Local(format!(
                "the download ended after {written} of {total} bytes"
            ))));
        }
        Ok(Step::Done(written))
    }
}

async fn file_len(path: &Path) -> u64 {
    tokio::fs::metadata(path).await.map_or(0, |m| m.len())
}

fn content_length(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The `N` of `Content-Range: bytes a-b/N` (or `bytes */N`).
fn content_range_total(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_RANGE)?
        .to_str()
        .ok()?
        .rsplit('/')
        .next()?
        .trim()
        .parse()
        .ok()
}
