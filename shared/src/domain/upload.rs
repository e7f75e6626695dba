//! An upload session: the promise, made by `POST /v1/uploads`, that one object of a declared size and
//! type will land at one server-chosen key for one file.

use super::time::{Timestamp, rfc3339_millis};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How many days an upload session lives: exactly as long as the bucket keeps an incomplete
/// multipart upload (the template's `abort-incomplete-multipart-uploads` lifecycle rule,
/// `DaysAfterInitiation`; the contract test keeps the two equal). A session that outlived its S3
/// upload could only sign URLs for parts S3 has already dropped.
pub const UPLOAD_SESSION_LIFETIME_DAYS: u64 = 1;

/// How long a session lasts, whatever the URLs' lifetime: its URLs live only
/// `FILES_UPLOAD_URL_TTL_SECONDS` each, and `GET /v1/uploads/{id}` signs fresh ones for the rest of
/// the session. A URL lifetime above a day (allowed up to SigV4's 7 days) lengthens the session
/// to match, so that no URL outlives its session.
pub fn session_lifetime(url_ttl: Duration) -> Duration {
    Duration::from_secs(UPLOAD_SESSION_LIFETIME_DAYS * 24 * 3600).max(url_ttl)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Waiting for the object (or for its S3 event).
    Pending,
    /// The object was checked and became a revision of the file.
    Completed,
    /// The object did not match the declaration and was deleted.
    Rejected,
    /// The client gave up (`DELETE /v1/uploads/{id}`).
    Aborted,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Pending => "pending",
            UploadStatus::Completed => "completed",
            UploadStatus::Rejected => "rejected",
            UploadStatus::Aborted => "aborted",
        }
    }
}

/// How the content travels to S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum UploadKind {
    /// One presigned PUT.
    Single,
    /// S3 multipart: presigned part URLs, then `POST /v1/uploads/{id}/complete`.
    Multipart {
        s3_upload_id: String,
        part_size: u64,
        part_count: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadSession {
    pub tenant_id: String,
    pub upload_id: String,
    pub file_id: String,
    pub object_key: String,
    pub declared_size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub status: UploadStatus,
    pub kind: UploadKind,
    /// True when this upload created its file (its first content); false for a new revision.
    pub creates_file: bool,
    /// With `if_match`: the revision the client based this upload on; processing refuses it if
    /// another revision landed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_revision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// Once accepted: the revision the upload became. A late or repeated event of the upload
    /// finds its revision by it (sessions accepted before it was recorded have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// Who started the upload: it becomes the revision's `created_by` (and the file's, or its
    /// `updated_by`). The bare `sub` string in sessions written before.
    #[serde(deserialize_with = "super::actor::stored")]
    pub created_by: super::actor::Actor,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    /// When the session ends ([`session_lifetime`] after it started); each presigned URL expires
    /// sooner, `FILES_UPLOAD_URL_TTL_SECONDS` after it was signed.
    #[serde(with = "rfc3339_millis")]
    pub expires_at: Timestamp,
}

/// Why a landed object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    SizeMismatch {
        declared: u64,
        actual: u64,
    },
    ContentTypeMismatch {
        declared: String,
        actual: String,
    },
    ChecksumMismatch,
    /// The bytes contradict the declared type dangerously (see [`super::sniff`]).
    ContentMismatch,
    /// `if_match` was given and another revision landed first.
    RevisionConflict,
}

impl Rejection {
    /// Stable code shown to clients as the file's `rejection_reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::SizeMismatch { .. } => "size_mismatch",
            Rejection::ContentTypeMismatch { .. } => "content_type_mismatch",
            Rejection::ChecksumMismatch => "checksum_mismatch",
            Rejection::ContentMismatch => "content_mismatch",
            Rejection::RevisionConflict => "revision_conflict",
        }
    }
}

/// What S3 reports about the landed object, as far as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct LandedObject<'a> {
    pub size: u64,
    pub content_type: Option<&'a str>,
}

/// Checks what HeadObject says of a landed object against its session's declaration: the cheap
/// checks, made before anything reads the content. The upload URL already binds size, type and
/// checksum, but the object is re-checked: trust the signature, verify the result.
pub fn check_landed_object(
    session: &UploadSession,
    object: &LandedObject<'_>,
) -> Result<(), Rejection> {
    if object.size != session.declared_size {
        return Err(Rejection::SizeMismatch {
            declared: session.declared_size,
            actual: object.size,
        });
    }
    if let Some(actual) = object.content_type
        && !actual.eq_ignore_ascii_case(&session.content_type)
    {
        return Err(Rejection::ContentTypeMismatch {
            declared: session.content_type.clone(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Compares the content's SHA-256 with the declared one (lowercase hex).
pub fn check_sha256(declared_hex: &str, actual: &[u8; 32]) -> Result<(), Rejection> {
    match hex::decode(declared_hex) {
        Ok(declared) if declared == actual => Ok(()),
        _ => Err(Rejection::ChecksumMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sha256: Option<&str>) -> UploadSession {
        let now = crate::domain::time::now();
        UploadSession {
            tenant_id: "acme".into(),
            upload_id: "u".into(),
            file_id: "f".into(),
            object_key: "k".into(),
            declared_size: 5,
            content_type: "text/plain".into(),
            sha256: sha256.map(str::to_string),
            status: UploadStatus::Pending,
            kind: UploadKind::Single,
            creates_file: true,
            base_revision: None,
            rejection_reason: None,
            revision: None,
            created_by: crate::domain::actor::user("alice"),
            created_at: now,
            expires_at: now,
        }
    }

    #[test]
    fn matching_object_is_accepted() {
        let object = LandedObject {
            size: 5,
            content_type: Some("text/plain"),
        };
        assert_eq!(check_landed_object(&session(None), &object), Ok(()));
    }

    #[test]
    fn size_lie_is_rejected() {
        let object = LandedObject {
            size: 6,
            content_type: Some("text/plain"),
        };
        let err = check_landed_object(&session(None), &object).unwrap_err();
        assert_eq!(err.code(), "size_mismatch");
    }

    #[test]
    fn checksum_is_compared_as_bytes() {
        let hex_digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let digest: [u8; 32] = hex::decode(hex_digest).unwrap().try_into().unwrap();
        assert_eq!(check_sha256(hex_digest, &digest), Ok(()));
        let mut other = digest;
        other[0] ^= 1;
        assert_eq!(
            check_sha256(hex_digest, &other),
            Err(Rejection::ChecksumMismatch)
        );
        assert_eq!(
            check_sha256("not hex", &digest),
            Err(Rejection::ChecksumMismatch)
        );
    }
}
