//! The rules of the Files API as plain functions and types: no AWS, no HTTP.

pub mod actor;
pub mod disposition;
pub mod file;
pub mod ids;
pub mod multipart;
pub mod names;
pub mod patch;
pub mod revision;
pub mod sniff;
pub mod time;
pub mod upload;
pub mod validate;

pub use actor::{Actor, PrincipalType};
pub use file::{FileRecord, FileStatus, THUMBNAIL_SIZES, Thumbnails};
pub use revision::RevisionRecord;
pub use upload::{UploadKind, UploadSession, UploadStatus};
