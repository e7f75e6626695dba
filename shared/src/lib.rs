//! The Files API's library, used by every Lambda function and by the local stack.
//!
//! Layout, from the edge inwards:
//! - [`config`]: every setting, read from the environment in one place.
//! - [`app`]: what a function builds once at cold start (config + AWS clients).
//! - [`http`]: request parsing and response building for API Gateway HTTP API handlers.
//! - [`error`]: the one error type, and its mapping to RFC 9457 problem+json.
//! - [`principal`]: who is calling (tenant, subject, scopes), from the JWT claims.
//! - [`domain`]: the rules (validation, records, state changes) as plain functions.
//! - [`keys`]: how tenant-scoped DynamoDB and S3 keys are built.
//! - [`store`] (DynamoDB) and [`storage`] (S3): the AWS adapters; [`store_queries`]: the listing reads;
//!   [`store_revisions`]: revision pages.
//! - [`purge`]: permanent deletes in resumable steps.
//! - [`listing`]: `GET /v1/files` parameters, plans, pages and cursors; [`links`]: presigned links of a file.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod file_update;
pub mod finalize;
pub mod http;
pub mod keys;
pub mod lambda;
pub mod links;
pub mod listing;
pub mod principal;
pub mod purge;
pub mod retry;
pub mod storage;
pub mod store;
pub mod store_queries;
pub mod store_revisions;

pub use app::App;
pub use config::Config;
pub use error::ApiError;
