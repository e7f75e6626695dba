//! The rules of the Files API as plain functions and types: no AWS, no HTTP.

pub mod disposition;
pub mod file;
pub mod ids;
pub mod revision;
pub mod time;
pub mod upload;
pub mod validate;

pub use file::{FileRecord, FileStatus, FileView};
pub use revision::RevisionRecord;
pub use upload::{UploadSession, UploadStatus};
