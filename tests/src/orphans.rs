//! The no-orphan check of the fault suite: everything in the bucket and the table is reachable from
//! a live file, or is on its way out by a mechanism that provably removes it.
//!
//! The invariant (README, "Nothing is orphaned"):
//! - every object under `uploads/` is the object of a revision record of an existing file, and is
//!   tagged `files-state=live`; every object under `thumbnails/` is a thumbnail of such a revision
//!   that the revision records as made. Anything else must be tagged pending (the lifecycle rule expires it): after
//!   [`OrphanCheck::after_lifecycle`] nothing else may remain;
//! - every revision item belongs to an existing file, and its upload session is kept (completed);
//! - every upload session is completed (with its revision), or pending / ended with a TTL;
//! - every name claim and tag entry points at an existing file that holds that name / tag (a tag
//!   entry in the partition of the file's listing area: the trash's while it is trashed), or
//!   carries the same TTL as its never-filled file.

use crate::TestStack;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use local_stack::dynamodb::local_client;
use shared::domain::THUMBNAIL_SIZES;
use shared::keys::thumbnail_key;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

type Item = HashMap<String, AttributeValue>;

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// What the check found: one line per orphan, empty when there is none.
#[derive(Debug, Default)]
pub struct OrphanReport {
    pub objects: usize,
    pub items: usize,
    pub orphans: Vec<String>,
}

impl OrphanReport {
    pub fn assert_none(&self, scenario: &str) {
        assert!(
            self.orphans.is_empty(),
            "{scenario}: {} orphan(s) among {} objects and {} items:\n{}",
            self.orphans.len(),
            self.objects,
            self.items,
            self.orphans.join("\n")
        );
    }
}

pub struct OrphanCheck;

impl OrphanCheck {
    /// Waits for in-flight S3 event deliveries, applies the bucket's lifecycle rules as S3 would
    /// have by `now + 4 days` (the pending-object rule's 3 days, rounded to midnight), then checks.
    pub async fn after_lifecycle(t: &TestStack) -> OrphanReport {
        t.stack.s3.deliveries_idle().await;
        let later = SystemTime::now() + Duration::from_secs(4 * 24 * 3600);
        t.stack.apply_lifecycle(later).await;
        Self::now(t).await
    }

    /// The check as things are. Items with a TTL count as on their way out (DynamoDB deletes
    /// expired items within days; the TTLs themselves are checked by the tests that set them).
    pub async fn now(t: &TestStack) -> OrphanReport {
        let items = scan(t).await;
        let objects: BTreeSet<String> = t.stack.list_objects().await.into_iter().collect();
        let tags: HashMap<String, local_stack::s3_lifecycle::TagSet> =
            futures::stream::iter(objects.iter().cloned())
                .map(|key| async move {
                    let tags = t.stack.object_tags(&key).await;
                    (key, tags)
                })
                .buffer_unordered(16)
                .collect()
                .await;
        let mut report = OrphanReport {
            objects: objects.len(),
            items: items.len(),
            orphans: Vec::new(),
        };

        let mut files: BTreeMap<String, &Item> = BTreeMap::new();
        let mut revisions = Vec::new();
        let mut sessions: BTreeMap<String, &Item> = BTreeMap::new();
        for item in &items {
            let (pk, sk) = (text(item, "pk").unwrap(), text(item, "sk").unwrap());
            if sk == "FILE" {
                files.insert(pk, item);
            } else if sk.starts_with("REV#") {
                revisions.push((pk, item));
            } else if sk == "UPLOAD" {
                sessions.insert(pk, item);
            }
        }
        let tenant_of = |pk: &str| pk.split('#').nth(1).unwrap_or_default().to_string();

        // Objects and sessions that live revisions account for.
        let mut wanted_objects = BTreeSet::new();
        let mut wanted_sessions = BTreeSet::new();
        for (pk, revision) in &revisions {
            let name = format!("revision {pk} {}", text(revision, "sk").unwrap());
            if !files.contains_key(pk) {
                report.orphans.push(format!("{name}: its file is gone"));
                continue;
            }
            let key = text(revision, "object_key").unwrap_or_default();
            if !objects.contains(&key) {
                report
                    .orphans
                    .push(format!("{name}: its object {key} is missing"));
            } else if tags[&key].get("files-state").map(String::as_str) != Some("live") {
                report
                    .orphans
                    .push(format!("{name}: its object {key} is not tagged live"));
            }
            wanted_objects.insert(key.clone());
            // Thumbnail objects only for sizes the revision records as made.
            let made: Vec<u32> = revision
                .get("thumbnails")
                .and_then(|t| t.as_m().ok())
                .filter(|t| {
                    t.get("state")
                        .and_then(|s| s.as_s().ok())
                        .map(String::as_str)
                        == Some("ready")
                })
                .and_then(|t| t.get("sizes"))
                .and_then(|s| s.as_l().ok())
                .map(|sizes| {
                    sizes
                        .iter()
                        .filter_map(|n| n.as_n().ok().and_then(|n| n.parse().ok()))
                        .collect()
                })
                .unwrap_or_default();
            for size in THUMBNAIL_SIZES.into_iter().filter(|s| made.contains(s)) {
                wanted_objects.insert(thumbnail_key(&key, size));
            }
            let upload = text(revision, "upload_id").unwrap_or_default();
            wanted_sessions.insert(format!("T#{}#U#{upload}", tenant_of(pk)));
        }
        for key in &objects {
            if !wanted_objects.contains(key) {
                report.orphans.push(format!(
                    "object {key} belongs to no live revision (tags {:?})",
                    tags[key]
                ));
            }
        }
        for (pk, session) in &sessions {
            let status = text(session, "status").unwrap_or_default();
            let accounted = match status.as_str() {
                "completed" => wanted_sessions.contains(pk),
                _ => number(session, "expires_at_epoch").is_some(),
            };
            if !accounted {
                report.orphans.push(format!(
                    "upload session {pk} ({status}): no revision and no TTL"
                ));
            }
        }
        for item in &items {
            let (pk, sk) = (text(item, "pk").unwrap(), text(item, "sk").unwrap());
            if sk.starts_with("NAME#") {
                let file_pk = format!(
                    "T#{}#F#{}",
                    tenant_of(&pk),
                    text(item, "file_id").unwrap_or_default()
                );
                let held = files
                    .get(&file_pk)
                    .is_some_and(|f| !f.contains_key("trashed_at"));
                if !held && number(item, "expires_at_epoch").is_none() {
                    report
                        .orphans
                        .push(format!("name claim {pk} {sk}: no live file holds it"));
                }
            } else if pk.contains("#TAG#") {
                let tag = pk.split("#TAG#").nth(1).unwrap_or_default();
                let file_pk = format!(
                    "T#{}#F#{}",
                    tenant_of(&pk),
                    text(item, "file_id").unwrap_or_default()
                );
                let entry_ttl = number(item, "expires_at_epoch");
                let accounted = match files.get(&file_pk) {
                    // The entry lives exactly as long as its file, in the file's listing area
                    // (the trash's partition while the file is trashed).
                    Some(file) => {
                        let in_trash_area = pk.contains("#TRASH#TAG#");
                        let same_area = in_trash_area == file.contains_key("trashed_at");
                        let has_tag =
                            file.get("tags")
                                .and_then(|t| t.as_l().ok())
                                .is_some_and(|tags| {
                                    tags.iter().any(|v| v.as_s().is_ok_and(|s| s == tag))
                                });
                        same_area && has_tag && entry_ttl == number(file, "expires_at_epoch")
                    }
                    None => entry_ttl.is_some(),
                };
                if !accounted {
                    report.orphans.push(format!(
                        "tag entry {pk} {sk}: not its file's, or without its file's TTL"
                    ));
                }
            }
        }
        report
    }
}

async fn scan(t: &TestStack) -> Vec<Item> {
    let client = local_client(&t.stack.dynamodb_endpoint).await;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(&t.stack.app.config.table_name)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan the table");
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return items,
        }
    }
}
