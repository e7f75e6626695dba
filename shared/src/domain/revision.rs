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
    pub created_by: String,
}

impl RevisionRecord {
    pub fn view(&self, current_revision: u32) -> RevisionView<'_> {
        RevisionView {
            revision: self.revision,
            size: self.size,
            content_type: &self.content_type,
            sha256: self.sha256.as_deref(),
            current: self.revision == current_revision,
            created_at: super::time::format(&self.created_at),
            created_by: &self.created_by,
        }
    }
}

/// What clients see of a revision.
#[derive(Debug, Serialize)]
pub struct RevisionView<'a> {
    pub revision: u32,
    pub size: u64,
    pub content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<&'a str>,
    /// True for the file's current revision.
    pub current: bool,
    pub created_at: String,
    pub created_by: &'a str,
}
