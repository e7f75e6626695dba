//! Object tags and the bucket's lifecycle rules, as S3 applies them: what the local S3 endpoint
//! adds to s3s-fs, which has neither.
//!
//! The Files API tags every object it writes `files-state=pending` and re-tags it `live` once a
//! record points at it; the template's `expire-pending-objects` rule deletes pending objects after
//! some days. A test of "nothing is orphaned" is only worth something if tags are stored and the
//! rule is applied exactly as S3 does, so both are implemented here:
//! - tags come from `x-amz-tagging` on PutObject / CreateMultipartUpload (carried to the completed
//!   object), `x-amz-tagging-directive` on CopyObject (COPY by default: the source's tags), and
//!   PutObjectTagging; deleting an object deletes its tags;
//! - an expiration rule (`ExpirationInDays`, optional `Prefix`, `TagFilters` all of which must
//!   match) expires an object at the first midnight UTC at least that many days after its creation
//!   (S3's documented rounding), evaluated by [`LifecycleRule::expires`] as of a given instant, so a
//!   test can ask "what would S3 have deleted three days from now".

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_norway::Value;

/// An object's tag set (S3 allows 10 per object; keys are unique).
pub type TagSet = BTreeMap<String, String>;

/// Parses `x-amz-tagging` (URL query syntax: `k1=v1&k2=v2`, `+` for space).
pub fn parse_tagging_header(value: &str) -> Option<TagSet> {
    let mut tags = TagSet::new();
    for pair in value.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        };
        let key = decode(key)?;
        if key.is_empty() || tags.insert(key, decode(value)?).is_some() {
            return None;
        }
    }
    (tags.len() <= 10).then_some(tags)
}

/// Tags kept beside s3s-fs's own metadata files, in the data folder's root (files there are not
/// buckets), so they survive a restart with `--data-dir` like the objects do.
#[derive(Debug, Clone)]
pub struct TagStore {
    root: PathBuf,
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl TagStore {
    pub fn new(root: &Path) -> Self {
        TagStore {
            root: root.to_owned(),
        }
    }

    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(format!(
            ".bucket-{}.object-{}.tagging.json",
            encode(bucket),
            encode(key)
        ))
    }

    fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.root
            .join(format!(".upload-{}.tagging.json", encode(upload_id)))
    }

    async fn read(path: &Path) -> io::Result<TagSet> {
        match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TagSet::new()),
            Err(e) => Err(e),
        }
    }

    async fn write(path: &Path, tags: &TagSet) -> io::Result<()> {
        if tags.is_empty() {
            return match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        // Write then rename: a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
        tokio::fs::write(&tmp, serde_json::to_vec(tags).map_err(io::Error::other)?).await?;
        tokio::fs::rename(&tmp, path).await
    }

    pub async fn get(&self, bucket: &str, key: &str) -> io::Result<TagSet> {
        Self::read(&self.object_path(bucket, key)).await
    }

    pub async fn set(&self, bucket: &str, key: &str, tags: &TagSet) -> io::Result<()> {
        Self::write(&self.object_path(bucket, key), tags).await
    }

    pub async fn remove(&self, bucket: &str, key: &str) -> io::Result<()> {
        self.set(bucket, key, &TagSet::new()).await
    }

    /// Tags given to CreateMultipartUpload, for the object CompleteMultipartUpload makes.
    pub async fn set_for_upload(&self, upload_id: &str, tags: &TagSet) -> io::Result<()> {
        Self::write(&self.upload_path(upload_id), tags).await
    }

    pub async fn take_for_upload(&self, upload_id: &str) -> io::Result<TagSet> {
        let path = self.upload_path(upload_id);
        let tags = Self::read(&path).await?;
        Self::write(&path, &TagSet::new()).await?;
        Ok(tags)
    }
}

/// One expiration rule of a bucket's lifecycle configuration (CloudFormation's
/// `AWS::S3::Bucket.Rule`), as far as S3 applies it to current objects of an unversioned bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    pub id: String,
    pub prefix: String,
    pub tags: TagSet,
    pub expiration_days: u32,
}

impl LifecycleRule {
    /// The enabled expiration rules of a bucket resource of the SAM template. Rules without
    /// `ExpirationInDays` (e.g. only `AbortIncompleteMultipartUpload`) expire no object.
    pub fn from_bucket_resource(resource: &Value) -> Vec<LifecycleRule> {
        let rules = resource
            .get("Properties")
            .and_then(|p| p.get("LifecycleConfiguration"))
            .and_then(|l| l.get("Rules"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        rules
            .iter()
            .filter(|rule| rule.get("Status").and_then(Value::as_str) == Some("Enabled"))
            .filter_map(|rule| {
                let days = rule.get("ExpirationInDays").and_then(Value::as_u64)?;
                let tags = rule
                    .get("TagFilters")
                    .and_then(Value::as_sequence)
                    .map(|filters| {
                        filters
                            .iter()
                            .filter_map(|f| {
                                Some((
                                    f.get("Key")?.as_str()?.to_string(),
                                    f.get("Value")?.as_str()?.to_string(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(LifecycleRule {
                    id: rule
                        .get("Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    prefix: rule
                        .get("Prefix")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    tags,
                    expiration_days: u32::try_from(days).ok()?,
                })
            })
            .collect()
    }

    /// Whether S3 would have expired an object with this key, tags and creation time by `now`:
    /// the rule's filter matches (prefix, and every tag filter), and `now` is past the first
    /// midnight UTC at least `expiration_days` after the creation.
    pub fn expires(&self, key: &str, tags: &TagSet, created: SystemTime, now: SystemTime) -> bool {
        if !key.starts_with(&self.prefix) || !self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
        {
            return false;
        }
        let due = expiry_time(created, self.expiration_days);
        DateTime::<Utc>::from(now) >= due
    }
}

/// S3: "the number of days specified in the rule added to the object creation time, rounded to
/// the next day midnight UTC".
pub fn expiry_time(created: SystemTime, days: u32) -> DateTime<Utc> {
    let after = DateTime::<Utc>::from(created) + Duration::days(i64::from(days));
    let midnight = after
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    if midnight == after {
        midnight
    } else {
        midnight + Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_headers_parse_as_query_strings() {
        let tags = parse_tagging_header("files-state=pending&a+b=c%26d").unwrap();
        assert_eq!(tags.get("files-state").unwrap(), "pending");
        assert_eq!(tags.get("a b").unwrap(), "c&d");
        assert!(parse_tagging_header("k=1&k=2").is_none(), "duplicate keys");
        assert!(parse_tagging_header("=v").is_none(), "empty key");
    }

    #[test]
    fn expiry_rounds_up_to_the_next_midnight_utc() {
        let created: SystemTime = "2026-12-02T16:43:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        assert_eq!(
            expiry_time(created, 3).to_rfc3339(),
            "2026-12-06T00:00:00+00:00"
        );
        let at_midnight: SystemTime = "2026-12-02T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        assert_eq!(
            expiry_time(at_midnight, 1).to_rfc3339(),
            "2026-12-03T00:00:00+00:00"
        );
    }

    #[test]
    fn a_rule_matches_on_prefix_and_every_tag() {
        let rule = LifecycleRule {
            id: "r".into(),
            prefix: "uploads/".into(),
            tags: TagSet::from([("files-state".into(), "pending".into())]),
            expiration_days: 1,
        };
        let created: SystemTime = "2026-12-02T12:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        let later: SystemTime = "2026-12-04T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        let before: SystemTime = "2026-12-03T23:59:59Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        let pending = TagSet::from([("files-state".into(), "pending".into())]);
        let live = TagSet::from([("files-state".into(), "live".into())]);
        assert!(rule.expires("uploads/a", &pending, created, later));
        assert!(!rule.expires("uploads/a", &pending, created, before));
        assert!(!rule.expires("uploads/a", &live, created, later));
        assert!(!rule.expires("thumbnails/a", &pending, created, later));
    }
}
