//! The Files API on one machine, with real protocol implementations instead of AWS:
//! DynamoDB Local, an S3 endpoint built on s3s that emits S3 events, and an HTTP gateway that reads the
//! routes from the SAM template and verifies JWTs as the HTTP API JWT authorizer does.

pub mod authorizer;
pub mod cors;
pub mod dynamodb;
pub mod event_filter;
pub mod gateway;
pub mod s3;
pub mod s3_lifecycle;
pub mod stack;
pub mod streams;
pub mod template;
