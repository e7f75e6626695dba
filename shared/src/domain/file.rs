//! A file: what the client attached, and the state of its content.

use super::actor::Actor;
use super::time::{Timestamp, optional_rfc3339_millis, rfc3339_millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use api_types::FileStatus;

/// The box sizes thumbnails are made in (bounded box, aspect kept, never upscaled).
pub const THUMBNAIL_SIZES: [u32; 3] = [64, 256, 1024];

/// The thumbnails of a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Thumbnails {
    /// Not made yet (the upload is not processed, or thumbnailing is under way).
    #[default]
    Pending,
    /// Made, in these box sizes.
    Ready { sizes: Vec<u32> },
    /// There will be none: not an image, an unsupported format (HEIC), corrupt or too large.
    None { reason: String },
}

impl Thumbnails {
    /// What clients see of it: the status, and the reason when there are none.
    pub fn status(&self) -> (api_types::ThumbnailStatus, Option<String>) {
        use api_types::ThumbnailStatus as S;
        match self {
            Thumbnails::Pending => (S::Pending, None),
            Thumbnails::Ready { .. } => (S::Ready, None),
            Thumbnails::None { reason } => (S::None, Some(reason.clone())),
        }
    }
}

/// The stored record of a file (one DynamoDB item, tenant-scoped key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub content_type: String,
    /// Declared size while pending; the size S3 reports once ready.
    pub size: u64,
    pub status: FileStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The current content revision: 0 until the first upload is processed, then 1, 2, ...
    pub revision: u32,
    /// S3 key of the current revision's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// Lowercase hex SHA-256 of the content, when the client declared one (S3 verified it on upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// Thumbnails of the current revision.
    #[serde(default)]
    pub thumbnails: Thumbnails,
    /// Set while the file has never had content: an abandoned first upload makes the record (and
    /// its name claim) expire through DynamoDB TTL. Cleared when the first revision lands.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_rfc3339_millis"
    )]
    pub expires_at: Option<Timestamp>,
    /// Set while the file is in the trash.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_rfc3339_millis"
    )]
    pub trashed_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    /// Records written before actors had a type, name and email hold the `sub` string.
    #[serde(deserialize_with = "super::actor::stored")]
    pub created_by: Actor,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: Timestamp,
    /// Who made the change that set `updated_at`; absent on records written before it was kept
    /// and on files never changed since their creation (then it is `created_by`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::actor::stored_optional"
    )]
    pub updated_by: Option<Actor>,
    /// Bumped by every change to the record: the basis of the ETag and of conditional writes.
    pub version: u64,
}

impl FileRecord {
    /// The strong ETag of the record's representation.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.version)
    }

    /// What clients see of the file (without links: `crate::links` adds them).
    pub fn view(&self) -> api_types::File {
        let (thumbnail_status, thumbnail_reason) = self.thumbnails.status();
        api_types::File {
            id: self.id.clone(),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            status: self.status,
            parent: self.parent.clone(),
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            revision: self.revision,
            sha256: self.sha256.clone(),
            rejection_reason: self.rejection_reason.clone(),
            trashed: self.trashed_at.is_some(),
            created_at: super::time::format(&self.created_at),
            created_by: self.created_by.clone(),
            updated_at: super::time::format(&self.updated_at),
            updated_by: self
                .updated_by
                .clone()
                .unwrap_or_else(|| self.created_by.clone()),
            download_url: None,
            download_url_expires_at: None,
            thumbnail_status,
            thumbnail_reason,
            thumbnails: None,
        }
    }
}

impl FileRecord {
    /// The record after an accepted upload: the next revision, with the landed object's size,
    /// changed by the upload's creator `by`.
    pub fn with_new_revision(
        &self,
        object_key: &str,
        size: u64,
        content_type: &str,
        sha256: Option<&str>,
        at: Timestamp,
        by: &Actor,
    ) -> FileRecord {
        FileRecord {
            size,
            content_type: content_type.to_string(),
            status: FileStatus::Ready,
            revision: self.revision + 1,
            object_key: Some(object_key.to_string()),
            sha256: sha256.map(str::to_string),
            rejection_reason: None,
            thumbnails: Thumbnails::Pending,
            expires_at: None,
            updated_at: at,
            updated_by: Some(by.clone()),
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The record after a refused upload. A file that never had content becomes `rejected`; a file
    /// with a current revision keeps it (the refused upload was only a replacement attempt).
    pub fn with_rejected_upload(&self, reason: &str, at: Timestamp) -> FileRecord {
        if self.revision > 0 {
            return FileRecord {
                updated_at: at,
                version: self.version + 1,
                ..self.clone()
            };
        }
        FileRecord {
            status: FileStatus::Rejected,
            rejection_reason: Some(reason.to_string()),
            // A terminal state: nobody waits for thumbnails of content that was refused.
            thumbnails: Thumbnails::None {
                reason: "rejected".into(),
            },
            updated_at: at,
            version: self.version + 1,
            ..self.clone()
        }
    }
}
