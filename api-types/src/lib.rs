//! The Files API's wire types: the JSON bodies requests carry and answers hold, defined once for
//! the functions (which serialize answers and parse requests) and for the client (which does the
//! opposite). Plain serde types, no AWS and no HTTP stack, so a client does not build the server's
//! dependencies. infra/openapi.yaml describes the same shapes; the contract test keeps them in
//! agreement with what the functions answer.
//!
//! Request types keep `deny_unknown_fields`: the API refuses a field it does not know (a typo would
//! otherwise be silently ignored), and a client serializing these types never sends one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod json_input;

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Created by `POST /v1/uploads`; the content has not arrived (or not been processed) yet.
    Pending,
    /// The content arrived and passed the checks; it can be downloaded.
    Ready,
    /// The content arrived but did not match what was declared; it was deleted.
    Rejected,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Ready => "ready",
            FileStatus::Rejected => "rejected",
        }
    }
}

/// What kind of principal a token names: a person, or a service (claim `principal_type: app`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalType {
    User,
    App,
}

/// Who did something (`created_by`, `updated_by`): the token's `sub` as `id`, whether it was a user
/// or an app, and the token's OIDC `name` and `email` claims when it had them (as they were then:
/// a later change of the user's name does not rewrite history).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    #[serde(rename = "type")]
    pub principal_type: PrincipalType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A file as the API answers it (`GET /v1/files/{id}`, listings, `complete`, `PATCH`, ...): no
/// tenant, no storage keys, no internal version counter. The links are present only where the
/// route adds them and there is something to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub status: FileStatus,
    pub parent: Option<String>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// The current content revision: 0 until the first upload is processed, then 1, 2, ...
    pub revision: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub trashed: bool,
    pub created_at: String,
    /// Who created the file (its first upload).
    pub created_by: Actor,
    pub updated_at: String,
    /// Who made the last change: a PATCH, a trash or restore, a new revision (its uploader) or a
    /// revision restore. The creator until then.
    pub updated_by: Actor,
    /// Presigned URL of the current content (ready files that are not in the trash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url_expires_at: Option<String>,
    /// How the current revision's thumbnails stand: a gallery knows whether to wait for them.
    pub thumbnail_status: ThumbnailStatus,
    /// Why there are none (`thumbnail_status: none` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_reason: Option<String>,
    /// Box size (`"64"`, `"256"`, `"1024"`) → presigned JPEG URL; they expire with `download_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<BTreeMap<String, String>>,
}

/// How the thumbnails of a revision stand. Every revision ends `ready` or `none`: `pending` is
/// never a final state (a failed thumbnailing ends `none` with the reason `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThumbnailStatus {
    /// Not made yet: the upload is not processed, or thumbnailing is under way.
    Pending,
    /// Made, in every box size the image is larger than (never upscaled).
    Ready,
    /// There will be none; `thumbnail_reason` says why.
    None,
}

impl ThumbnailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ThumbnailStatus::Pending => "pending",
            ThumbnailStatus::Ready => "ready",
            ThumbnailStatus::None => "none",
        }
    }
}

/// `GET /v1/files`: one page of files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    pub items: Vec<File>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/files?count_only=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCount {
    pub count: usize,
}

/// One revision of a file's content as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u32,
    pub size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// True for the file's current revision.
    pub current: bool,
    pub created_at: String,
    /// Who uploaded this revision (for a restored revision: who restored it).
    pub created_by: Actor,
    /// How this revision's thumbnails stand.
    pub thumbnail_status: ThumbnailStatus,
    /// Why there are none (`thumbnail_status: none` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_reason: Option<String>,
    /// Presigned URL of this revision's content (`GET /v1/files/{id}/revisions/{n}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url_expires_at: Option<String>,
}

/// `GET /v1/files/{id}/revisions`: a page of revisions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionList {
    pub items: Vec<Revision>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/uploads`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(deserialize_with = "json_input::whole::u64")]
    pub size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_input::unique_map"
    )]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Hex SHA-256 of the content, verified before the upload becomes a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// On a taken name: add a revision to the file that holds it instead of answering 409.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
    /// Upload a new revision of this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The file's ETag the client based this revision on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
}

/// How the content of an upload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadMethod {
    /// One PUT of the whole content to `url` with `headers`.
    #[serde(rename = "PUT")]
    Put,
    /// One PUT per part, then `POST complete_url` with each part's ETag.
    #[serde(rename = "MULTIPART")]
    Multipart,
}

/// A presigned URL for one part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUrl {
    pub part_number: u32,
    pub url: String,
    /// The exact length this part must have (it is signed).
    pub size: u64,
}

/// The answer to `POST /v1/uploads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateUploadResponse {
    pub upload_id: String,
    pub file_id: String,
    /// True when this upload creates the file; false when it adds a revision.
    pub creates_file: bool,
    /// `PUT` (one request to `url` with `headers`) or `MULTIPART` (one PUT per entry of `parts`,
    /// then `POST complete_url` with each part's ETag).
    pub method: UploadMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Send exactly these headers with the PUT: they are part of the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartUrl>>,
    pub complete_url: String,
    /// When the presigned URLs stop working (`GET /v1/uploads/{id}` signs fresh ones).
    pub expires_at: String,
    /// When the session ends: until then the upload can be resumed with `GET /v1/uploads/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

/// Where an upload session is (`GET /v1/uploads/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSessionStatus {
    /// Waiting for its content: it can be resumed.
    Pending,
    /// The content landed and was processed.
    Completed,
    /// The content landed and was refused.
    Rejected,
    /// Given up with `DELETE /v1/uploads/{id}`.
    Aborted,
    /// Pending past the session's end: it cannot be finished any more.
    Expired,
}

impl UploadSessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadSessionStatus::Pending => "pending",
            UploadSessionStatus::Completed => "completed",
            UploadSessionStatus::Rejected => "rejected",
            UploadSessionStatus::Aborted => "aborted",
            UploadSessionStatus::Expired => "expired",
        }
    }
}

/// A part S3 already holds (from ListParts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    /// As S3 answers it, quotes included: what `complete` expects back.
    pub etag: String,
}

/// `GET /v1/uploads/{upload_id}`: the session, and what it still takes to finish it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadState {
    pub upload_id: String,
    pub file_id: String,
    /// The file's name (for a new revision: the name of the file it adds to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub size: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub status: UploadSessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub creates_file: bool,
    pub method: UploadMethod,
    pub created_at: String,
    pub session_expires_at: String,
    pub complete_url: String,
    /// When the URLs of this answer stop working (pending uploads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_count: Option<u32>,
    /// The parts S3 holds, in order (pending multipart uploads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_parts: Option<Vec<UploadedPart>>,
    /// Fresh URLs for the parts still missing, or for those asked for with `part_numbers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartUrl>>,
}

/// `POST /v1/uploads/{upload_id}/complete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteUploadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<CompletedPart>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    #[serde(deserialize_with = "json_input::whole::u32")]
    pub part_number: u32,
    /// The ETag S3 answered the part's PUT with (quotes optional).
    pub etag: String,
}

/// An RFC 9457 problem+json body, as every error answer carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable: what a client branches on.
    pub code: String,
    /// Extension members (RFC 9457 section 3.2) that help the client act on the error.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_put_answer_round_trips() {
        let json = serde_json::json!({
            "upload_id": "u", "file_id": "f", "creates_file": true, "method": "PUT",
            "url": "http://s3/x", "headers": {"content-type": "text/plain"},
            "complete_url": "/v1/uploads/u/complete", "expires_at": "2026-01-01T00:00:00.000Z"
        });
        let answer: CreateUploadResponse = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(answer.method, UploadMethod::Put);
        assert_eq!(serde_json::to_value(&answer).unwrap(), json);
    }

    #[test]
    fn a_minimal_request_sends_only_what_is_set() {
        let request = CreateUploadRequest {
            name: Some("a.txt".into()),
            size: 3,
            content_type: "text/plain".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"name": "a.txt", "size": 3, "content_type": "text/plain"})
        );
        assert!(
            serde_json::from_value::<CreateUploadRequest>(
                serde_json::json!({"size": 1, "content_type": "a/b", "nmae": "x"})
            )
            .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn problem_extensions_are_kept() {
        let json = serde_json::json!({
            "type": "/problems/name_conflict", "title": "Conflict", "status": 409,
            "detail": "taken", "code": "name_conflict", "existing_file_id": "f1"
        });
        let problem: Problem = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(problem.extensions["existing_file_id"], "f1");
        assert_eq!(serde_json::to_value(&problem).unwrap(), json);
    }
}
