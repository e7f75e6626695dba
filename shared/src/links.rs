//! Presigned links that come with a file's representation (`GET /v1/files/{id}`, `GET /v1/files`):
//! the content (as `GET /v1/files/{id}/content` would redirect to) and the thumbnails.
//!
//! Presigning is a local computation (no request to S3). The links are not part of the record's
//! ETag: they change with every answer, the record does not.

use crate::domain::disposition::{Disposition, content_disposition};
use crate::domain::{FileRecord, FileStatus, Thumbnails, time};
use crate::keys;
use crate::storage::{DownloadOverrides, ObjectStorage, StorageError};
use std::collections::BTreeMap;
use std::time::Duration;

/// A file's view with its links (`api_types::File`). Links are absent when there is nothing to
/// fetch: content only for ready files that are not in the trash, thumbnails only once they are made.
pub use api_types::File as FileWithLinks;

/// Which links to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    pub download: bool,
    pub thumbnails: bool,
}

/// The S3 object of the file's current content, if it can be downloaded.
fn downloadable(file: &FileRecord) -> Option<&str> {
    match (file.status, &file.object_key, &file.trashed_at) {
        (FileStatus::Ready, Some(key), None) => Some(key),
        _ => None,
    }
}

/// `file`'s view with the requested links, each valid for `ttl`.
pub async fn with_links(
    objects: &ObjectStorage,
    file: &FileRecord,
    links: Links,
    ttl: Duration,
) -> Result<FileWithLinks, StorageError> {
    let mut out = file.view();
    let Some(object_key) = downloadable(file) else {
        return Ok(out);
    };
    if links.download {
        let presigned = objects
            .presign_download(
                object_key,
                &DownloadOverrides {
                    // What `GET /v1/files/{id}/content` answers by default.
                    content_disposition: &content_disposition(Disposition::Attachment, &file.name),
                    content_type: &file.content_type,
                },
                ttl,
            )
            .await?;
        out.download_url = Some(presigned.url);
        out.download_url_expires_at = Some(time::format(&presigned.expires_at));
    }
    if links.thumbnails
        && let Thumbnails::Ready { sizes } = &file.thumbnails
    {
        let mut urls = BTreeMap::new();
        for size in sizes {
            let presigned = objects
                .presign_download(
                    &keys::thumbnail_key(object_key, *size),
                    &DownloadOverrides {
                        content_disposition: "inline",
                        content_type: "image/jpeg",
                    },
                    ttl,
                )
                .await?;
            urls.insert(size.to_string(), presigned.url);
        }
        out.thumbnails = Some(urls);
    }
    Ok(out)
}
