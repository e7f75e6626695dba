//! A revision: one version of a file's content. Revisions are numbered 1, 2, ... per file and kept
//! beside the file record, so the history survives replacements.

use super::file::Thumbnails;
use super::time::{Timestamp, rfc3339_millis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub tenant_id: String,
    pub file_id: String,
    pub revision: u32,
    pub upload_id: String,
    pub object_key: String,
    pub size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default)]
    pub thumbnails: Thumbnails,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    /// The upload's creator (or the restorer); the bare `sub` string in older records.
    #[serde(deserialize_with = "super::actor::stored")]
    pub created_by: super::actor::Actor,
}

impl RevisionRecord {
    /// What clients see of the revision (without a download link).
    pub fn view(&self, current_revision: u32) -> api_types::Revision {
        let (thumbnail_status, thumbnail_reason) = self.thumbnails.status();
        api_types::Revision {
            revision: self.revision,
            size: self.size,
            content_type: self.content_type.clone(),
            sha256: self.sha256.clone(),
            current: self.revision == current_revision,
            created_at: super::time::format(&self.created_at),
            created_by: self.created_by.clone(),
            thumbnail_status,
            thumbnail_reason,
            download_url: None,
            download_url_expires_at: None,
        }
    }
}
