//! Every setting of the service, read from the environment in one place.
//!
//! The same binaries run on AWS (values from the SAM template), under the local stack and under
//! `sam local` (values from `infra/env.local.json`). AWS endpoints and credentials are not here: the
//! SDK reads its standard variables (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`, ...).

use std::time::Duration;

/// Settings shared by all functions.
#[derive(Debug, Clone)]
pub struct Config {
    /// `FILES_TABLE_NAME` (required): the DynamoDB table holding files, revisions and upload sessions.
    pub table_name: String,
    /// `FILES_BUCKET_NAME` (required): the S3 bucket holding file contents and thumbnails.
    pub bucket_name: String,
    /// `FILES_TENANT_CLAIM` (default `tenant_id`): the JWT claim that names the caller's tenant.
    pub tenant_claim: String,
    /// `FILES_UPLOAD_URL_TTL_SECONDS` (default 900): how long a presigned upload URL stays valid.
    pub upload_url_ttl: Duration,
    /// `FILES_DOWNLOAD_URL_TTL_SECONDS` (default 900): how long a presigned download URL stays valid.
    pub download_url_ttl: Duration,
    /// `FILES_MAX_UPLOAD_BYTES` (default 5 GiB, S3's single-PUT limit): largest file accepted.
    pub max_upload_bytes: u64,
    /// `FILES_MULTIPART_THRESHOLD_BYTES` (default 100 MiB): declared sizes from here on upload in
    /// S3 multipart parts instead of one PUT.
    pub multipart_threshold_bytes: u64,
    /// `FILES_MULTIPART_PART_BYTES` (default 16 MiB, at least 5 MiB): the preferred part size; it
    /// grows for very large files (see `domain::multipart`).
    pub multipart_part_bytes: u64,
    /// `FILES_ALLOWED_CONTENT_TYPES` (default `*/*`): comma-separated media types that may be
    /// uploaded; `image/*` allows a family. Others are refused with 415.
    pub allowed_content_types: Vec<String>,
    /// `FILES_THUMBNAIL_MAX_SOURCE_BYTES` (default 64 MiB): larger images get no thumbnails (the
    /// processor holds the source in memory).
    pub thumbnail_max_source_bytes: u64,
    /// `FILES_SINGLE_COPY_MAX_BYTES` (default 256 MiB; 5 MiB to 5 GiB): revision restores copy
    /// objects up to this size with one CopyObject (S3's limit is 5 GiB), larger ones part by part
    /// with UploadPartCopy (S3 copies a range only of a source over 5 MiB).
    pub single_copy_max_bytes: u64,
    /// `FILES_COPY_PART_BYTES` (default 256 MiB; 5 MiB to 5 GiB, S3's part sizes): the part size of
    /// a multipart copy (it grows for objects that would need more than 10,000 parts).
    pub copy_part_bytes: u64,
    /// `FILES_COPY_PARTS_IN_FLIGHT` (default 16; 1 to 64): UploadPartCopy requests of one multipart
    /// copy sent at once.
    pub copy_parts_in_flight: usize,
    /// `FILES_S3_FORCE_PATH_STYLE` (default false): path-style S3 URLs, needed by local S3 endpoints
    /// that are addressed by IP.
    pub s3_force_path_style: bool,
    /// `FILES_CURSOR_SECRET` (no default; at least 32 bytes when set): the HMAC-SHA256 key that
    /// signs listing cursors (`GET /v1/files`), so a client cannot forge or alter one. Only the
    /// list-files function needs it (it answers 500 without it). Changing it invalidates the cursors
    /// handed out before (clients get 400 `invalid_cursor` and start their walk again).
    pub cursor_secret: Option<Secret>,
    /// `FILES_LIST_PAGE_MAX_BYTES` (default 1 MiB, at most [`MAX_LIST_PAGE_BYTES`]): a listing page
    /// (`GET /v1/files`) ends early, with a `next_cursor`, before its items' JSON would pass this
    /// many bytes, so that no page can outgrow Lambda's 6 MB response, whatever the files hold.
    pub list_page_max_bytes: usize,
}

/// The largest `FILES_LIST_PAGE_MAX_BYTES`: Lambda's synchronous response is at most 6,291,456
/// bytes, and API Gateway's payload format puts the body in a JSON string, where escaping can
/// double it (every `"` becomes `\"`); this leaves room for that and for the envelope.
pub const MAX_LIST_PAGE_BYTES: usize = 3_000_000;

/// Key material that never shows in logs (`Debug` prints only its length).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The shortest accepted `FILES_CURSOR_SECRET`: HMAC-SHA256 keys below the hash's size are weaker.
pub const MIN_CURSOR_SECRET_BYTES: usize = 32;

/// A setting that is missing or cannot be parsed; the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// S3 accepts a single PUT of at most 5 GiB.
pub const S3_MAX_SINGLE_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// S3's largest object (multipart).
pub const S3_MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let parsed = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|e| ConfigError::Invalid {
                    name,
                    reason: format!("{e}"),
                }),
            }
        };
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match lookup(name).as_deref().map(str::trim) {
                None | Some("") | Some("false") | Some("0") => Ok(false),
                Some("true") | Some("1") => Ok(true),
                Some(other) => Err(ConfigError::Invalid {
                    name,
                    reason: format!("expected true or false, got {other:?}"),
                }),
            }
        };
        let ttl = |name: &'static str| -> Result<Duration, ConfigError> {
            let secs = parsed(name, 900)?;
            // SigV4 presigned URLs cannot live longer than 7 days.
            if secs == 0 || secs > 7 * 24 * 3600 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be between 1 and 604800 seconds".into(),
                });
            }
            Ok(Duration::from_secs(secs))
        };
        Ok(Config {
            table_name: required("FILES_TABLE_NAME")?,
            bucket_name: required("FILES_BUCKET_NAME")?,
            tenant_claim: lookup("FILES_TENANT_CLAIM")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "tenant_id".to_string()),
            upload_url_ttl: ttl("FILES_UPLOAD_URL_TTL_SECONDS")?,
            download_url_ttl: ttl("FILES_DOWNLOAD_URL_TTL_SECONDS")?,
            max_upload_bytes: {
                let max = parsed("FILES_MAX_UPLOAD_BYTES", S3_MAX_SINGLE_PUT_BYTES)?;
                if max > S3_MAX_OBJECT_BYTES {
                    return Err(ConfigError::Invalid {
                        name: "FILES_MAX_UPLOAD_BYTES",
                        reason: "S3 objects are at most 5 TiB".into(),
                    });
                }
                max
            },
            multipart_threshold_bytes: {
                let threshold = parsed("FILES_MULTIPART_THRESHOLD_BYTES", 100 * MIB)?;
                if threshold > S3_MAX_SINGLE_PUT_BYTES {
                    return Err(ConfigError::Invalid {
                        name: "FILES_MULTIPART_THRESHOLD_BYTES",
                        reason: "a single PUT is at most 5 GiB".into(),
                    });
                }
                threshold
            },
            multipart_part_bytes: parsed("FILES_MULTIPART_PART_BYTES", 16 * MIB)?
                .max(crate::domain::multipart::MIN_PART_BYTES),
            allowed_content_types: lookup("FILES_ALLOWED_CONTENT_TYPES")
                .unwrap_or_else(|| "*/*".to_string())
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect(),
            thumbnail_max_source_bytes: parsed("FILES_THUMBNAIL_MAX_SOURCE_BYTES", 64 * MIB)?,
            single_copy_max_bytes: s3_part_size(
                "FILES_SINGLE_COPY_MAX_BYTES",
                parsed(
                    "FILES_SINGLE_COPY_MAX_BYTES",
                    crate::storage::SINGLE_COPY_MAX_BYTES,
                )?,
            )?,
            copy_part_bytes: s3_part_size(
                "FILES_COPY_PART_BYTES",
                parsed("FILES_COPY_PART_BYTES", crate::storage::COPY_PART_BYTES)?,
            )?,
            copy_parts_in_flight: {
                let n = parsed(
                    "FILES_COPY_PARTS_IN_FLIGHT",
                    crate::storage::COPY_PARTS_IN_FLIGHT as u64,
                )?;
                if !(1..=64).contains(&n) {
                    return Err(ConfigError::Invalid {
                        name: "FILES_COPY_PARTS_IN_FLIGHT",
                        reason: "must be from 1 to 64".into(),
                    });
                }
                n as usize
            },
            s3_force_path_style: flag("FILES_S3_FORCE_PATH_STYLE")?,
            cursor_secret: match lookup("FILES_CURSOR_SECRET") {
                None => None,
                Some(secret) if secret.len() < MIN_CURSOR_SECRET_BYTES => {
                    return Err(ConfigError::Invalid {
                        name: "FILES_CURSOR_SECRET",
                        reason: format!("must be at least {MIN_CURSOR_SECRET_BYTES} bytes"),
                    });
                }
                Some(secret) => Some(Secret::new(secret)),
            },
            list_page_max_bytes: {
                let max = parsed("FILES_LIST_PAGE_MAX_BYTES", MIB)?;
                if !(4096..=MAX_LIST_PAGE_BYTES as u64).contains(&max) {
                    return Err(ConfigError::Invalid {
                        name: "FILES_LIST_PAGE_MAX_BYTES",
                        reason: format!("must be from 4096 to {MAX_LIST_PAGE_BYTES} bytes"),
                    });
                }
                max as usize
            },
        })
    }
}

/// A size S3 takes as a copy's part (5 MiB to 5 GiB; S3 answers `EntityTooSmall` to a smaller part
/// that is not the last) and as the largest single CopyObject (at most 5 GiB; a range of a source of
/// 5 MiB or less cannot be copied, so the threshold is at least 5 MiB too). Out of range is refused,
/// not clamped: a setting that S3 would refuse must not start.
fn s3_part_size(name: &'static str, bytes: u64) -> Result<u64, ConfigError> {
    use crate::domain::multipart::{MAX_PART_BYTES, MIN_PART_BYTES};
    if (MIN_PART_BYTES..=MAX_PART_BYTES).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!(
                "must be between {MIN_PART_BYTES} (5 MiB) and {MAX_PART_BYTES} (5 GiB) bytes, S3's part sizes"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let c = config(&[("FILES_TABLE_NAME", "t"), ("FILES_BUCKET_NAME", "b")]).unwrap();
        assert_eq!(c.tenant_claim, "tenant_id");
        assert_eq!(c.upload_url_ttl, Duration::from_secs(900));
        assert_eq!(c.max_upload_bytes, S3_MAX_SINGLE_PUT_BYTES);
        assert!(!c.s3_force_path_style);
        assert_eq!(c.allowed_content_types, vec!["*/*"]);
        assert_eq!(c.multipart_threshold_bytes, 100 * MIB);
        assert_eq!(c.list_page_max_bytes, 1024 * 1024);
        assert_eq!(c.single_copy_max_bytes, 256 * MIB);
        assert_eq!(c.copy_part_bytes, 256 * MIB);
    }

    #[test]
    fn copy_sizes_stay_within_s3_part_sizes() {
        let base = [("FILES_TABLE_NAME", "t"), ("FILES_BUCKET_NAME", "b")];
        for name in ["FILES_SINGLE_COPY_MAX_BYTES", "FILES_COPY_PART_BYTES"] {
            for refused in ["5242879", "5368709121", "0"] {
                let mut vars = base.to_vec();
                vars.push((name, refused));
                let err = config(&vars).unwrap_err();
                assert!(err.to_string().contains(name), "{name}={refused}: {err}");
            }
            for accepted in ["5242880", "5368709120"] {
                let mut vars = base.to_vec();
                vars.push((name, accepted));
                assert!(config(&vars).is_ok(), "{name}={accepted}");
            }
        }
        let c = config(&[
            ("FILES_TABLE_NAME", "t"),
            ("FILES_BUCKET_NAME", "b"),
            ("FILES_SINGLE_COPY_MAX_BYTES", "5242880"),
            ("FILES_COPY_PART_BYTES", "6291456"),
        ])
        .unwrap();
        assert_eq!(
            (c.single_copy_max_bytes, c.copy_part_bytes),
            (5 * MIB, 6 * MIB)
        );
    }

    #[test]
    fn missing_table_is_an_error_naming_the_variable() {
        let err = config(&[("FILES_BUCKET_NAME", "b")]).unwrap_err();
        assert!(err.to_string().contains("FILES_TABLE_NAME"));
    }

    #[test]
    fn invalid_numbers_and_flags_are_refused() {
        let base = [("FILES_TABLE_NAME", "t"), ("FILES_BUCKET_NAME", "b")];
        let mut bad_ttl = base.to_vec();
        bad_ttl.push(("FILES_UPLOAD_URL_TTL_SECONDS", "0"));
        assert!(config(&bad_ttl).is_err());
        let mut bad_flag = base.to_vec();
        bad_flag.push(("FILES_S3_FORCE_PATH_STYLE", "yes please"));
        assert!(config(&bad_flag).is_err());
        let mut bad_size = base.to_vec();
        bad_size.push(("FILES_MAX_UPLOAD_BYTES", "-1"));
        assert!(config(&bad_size).is_err());
        let mut page_over_lambda = base.to_vec();
        page_over_lambda.push(("FILES_LIST_PAGE_MAX_BYTES", "6291456"));
        assert!(config(&page_over_lambda).is_err());
    }

    #[test]
    fn cursor_secret_is_optional_but_long_when_set_and_never_printed() {
        let base = [("FILES_TABLE_NAME", "t"), ("FILES_BUCKET_NAME", "b")];
        assert!(config(&base).unwrap().cursor_secret.is_none());
        let mut short = base.to_vec();
        short.push(("FILES_CURSOR_SECRET", "too short"));
        let err = config(&short).unwrap_err();
        assert!(err.to_string().contains("FILES_CURSOR_SECRET"), "{err}");
        let secret = "0123456789abcdef0123456789abcdef-secret";
        let mut long = base.to_vec();
        long.push(("FILES_CURSOR_SECRET", secret));
        let c = config(&long).unwrap();
        assert_eq!(
            c.cursor_secret.as_ref().unwrap().expose(),
            secret.as_bytes()
        );
        assert!(!format!("{c:?}").contains(secret));
    }
}
