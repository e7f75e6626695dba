//! How records and objects are keyed. Every key starts with the tenant, so a request can only ever
//! address its own tenant's data; ids and tenants are validated before they reach a key.
//!
//! DynamoDB (one table; see docs/table-design.md):
//! - file record        pk `T#<tenant>#F#<file>`    sk `FILE`
//! - file revision      pk `T#<tenant>#F#<file>`    sk `REV#<revision, 10 digits>`
//! - upload session     pk `T#<tenant>#U#<upload>`  sk `UPLOAD`
//! - gsi1 (by parent)   `<area>#P[#<parent>]`       / `<created_at>#<file>`
//! - gsi2 (by tenant)   `<area>`                    / `<updated_at>#<file>`
//! - gsi3 (by tenant)   `<area>`                    / `<created_at>#<file>`
//! - gsi4 (by parent)   `<area>#P[#<parent>]`       / `<name key>\x01<file>`
//! - name claim         pk `T#<tenant>#N[#<parent>]` sk `NAME#<name key>`
//! - tag entry          pk `<area>#TAG#<tag>`        sk `<created_at>#<file>` (keys only)
//!
//! `<area>` is `T#<tenant>` for files not in the trash and `T#<tenant>#TRASH` for trashed ones
//! ([`ListingArea`]): the two are indexed in different partitions, so that neither listing reads
//! the other's items.
//!
//! S3: content at `uploads/<tenant>/<upload>`: one object per upload (so per revision), fixed before
//! the upload knows which file it will belong to (a `replace` upload may join an existing file), and
//! the `uploads/` prefix is what the S3 notification listens to. Thumbnails at
//! `thumbnails/<tenant>/<upload>/<size>.jpg`, outside that prefix.

use crate::domain::time::{Timestamp, format};

pub const FILE_SK: &str = "FILE";
pub const UPLOAD_SK: &str = "UPLOAD";
pub const UPLOAD_PREFIX: &str = "uploads/";

pub fn file_pk(tenant: &str, file_id: &str) -> String {
    format!("T#{tenant}#F#{file_id}")
}

/// Tenant and file id of a [`file_pk`] (tenant ids never hold `#`, see
/// [`crate::principal::is_valid_tenant_id`]).
pub fn parse_file_pk(pk: &str) -> Option<(&str, &str)> {
    let (tenant, file_id) = pk.strip_prefix("T#")?.split_once("#F#")?;
    (!tenant.is_empty() && !file_id.is_empty() && !file_id.contains('#'))
        .then_some((tenant, file_id))
}

pub fn revision_sk(revision: u32) -> String {
    format!("REV#{revision:010}")
}

pub fn upload_pk(tenant: &str, upload_id: &str) -> String {
    format!("T#{tenant}#U#{upload_id}")
}

/// Which listing partitions a file is indexed in. Trashed files are kept apart from the others, so
/// that a listing of either never reads (and pays for, and is bounded by) the other's items: a
/// tenant with 100,000 files in the trash lists its live files as fast as one with none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingArea {
    Live,
    Trash,
}

impl ListingArea {
    pub fn of(file: &crate::domain::FileRecord) -> ListingArea {
        if file.trashed_at.is_some() {
            ListingArea::Trash
        } else {
            ListingArea::Live
        }
    }

    /// The prefix of every listing partition of this area. Tenant ids never hold `#`, so the
    /// segment after the tenant (`P`, `TAG`, `TRASH`, and the table's `F`, `U`, `N`) tells the
    /// kinds apart, and no live key can equal a trash key.
    fn prefix(self, tenant: &str) -> String {
        match self {
            ListingArea::Live => format!("T#{tenant}"),
            ListingArea::Trash => format!("T#{tenant}#TRASH"),
        }
    }
}

pub fn parent_gsi_pk(tenant: &str, area: ListingArea, parent: Option<&str>) -> String {
    match parent {
        Some(parent) => format!("{}#P#{parent}", area.prefix(tenant)),
        None => format!("{}#P", area.prefix(tenant)),
    }
}

pub fn tenant_gsi_pk(tenant: &str, area: ListingArea) -> String {
    area.prefix(tenant)
}

pub fn time_sort_key(at: &Timestamp, file_id: &str) -> String {
    format!("{}#{file_id}", format(at))
}

/// Name order within a parent. `\x01` sorts below every character a name may contain (names have no
/// control characters), so "a" and all its ties come before "a b".
pub fn name_sort_key(name_key: &str, file_id: &str) -> String {
    format!("{name_key}\u{1}{file_id}")
}

/// The partition of a tag's entries.
pub fn tag_pk(tenant: &str, area: ListingArea, tag: &str) -> String {
    format!("{}#TAG#{tag}", area.prefix(tenant))
}

pub fn object_key(tenant: &str, upload_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{tenant}/{upload_id}")
}

/// Keys in S3 events are form-encoded: `+` is a space, the rest percent-encoded.
pub fn decode_event_key(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// The parts of an upload object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadObjectKey {
    pub tenant_id: String,
    pub upload_id: String,
}

/// Parses a (decoded) object key; `None` for keys this service did not choose.
pub fn parse_object_key(key: &str) -> Option<UploadObjectKey> {
    let rest = key.strip_prefix(UPLOAD_PREFIX)?;
    let mut parts = rest.split('/');
    let (tenant, upload) = (parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !crate::principal::is_valid_tenant_id(tenant)
        || !crate::domain::ids::is_valid_id(upload)
    {
        return None;
    }
    Some(UploadObjectKey {
        tenant_id: tenant.to_string(),
        upload_id: upload.to_string(),
    })
}

/// Name claims live under the parent they are unique in; the name key is the sort key.
pub fn name_claim_pk(tenant: &str, parent: Option<&str>) -> String {
    match parent {
        Some(parent) => format!("T#{tenant}#N#{parent}"),
        None => format!("T#{tenant}#N"),
    }
}

pub fn name_claim_sk(name_key: &str) -> String {
    format!("NAME#{name_key}")
}

pub const THUMBNAIL_PREFIX: &str = "thumbnails/";

/// Thumbnails of the revision stored at `object_key`, outside the `uploads/` prefix so that
/// writing them never triggers the S3-event function again.
pub fn thumbnail_key(object_key: &str, size: u32) -> String {
    let revision_path = object_key.strip_prefix(UPLOAD_PREFIX).unwrap_or(object_key);
    format!("{THUMBNAIL_PREFIX}{revision_path}/{size}.jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_parse_back() {
        assert_eq!(
            parse_file_pk(&file_pk("acme", "01ab")),
            Some(("acme", "01ab"))
        );
        assert_eq!(parse_file_pk("T#acme#U#01ab"), None);
        assert_eq!(parse_file_pk("T##F#01ab"), None);
    }

    #[test]
    fn event_keys_are_form_decoded() {
        assert_eq!(
            decode_event_key("uploads/a+b%2Bc%C3%A9").unwrap(),
            "uploads/a b+cé"
        );
        assert!(decode_event_key("bad%FF").is_none());
    }
    use crate::domain::ids::new_id;

    #[test]
    fn object_keys_round_trip() {
        let u = new_id();
        let key = object_key("acme", &u);
        let parsed = parse_object_key(&key).unwrap();
        assert_eq!(parsed.tenant_id, "acme");
        assert_eq!(parsed.upload_id, u);
        assert_eq!(
            thumbnail_key(&key, 256),
            format!("thumbnails/acme/{u}/256.jpg")
        );
    }

    #[test]
    fn keys_not_chosen_by_the_service_are_ignored() {
        let u = new_id();
        assert!(parse_object_key(&format!("thumbnails/acme/{u}")).is_none());
        assert!(parse_object_key(&format!("uploads/acme/{u}/extra")).is_none());
        assert!(parse_object_key(&format!("uploads/ac#me/{u}")).is_none());
        assert!(parse_object_key("uploads/acme/not-an-id").is_none());
        assert!(parse_object_key(&format!("uploads/../{u}")).is_none());
    }

    /// DynamoDB's key limits, in bytes of UTF-8: partition keys 2,048, sort keys 1,024.
    const MAX_PARTITION_KEY_BYTES: usize = 2048;
    const MAX_SORT_KEY_BYTES: usize = 1024;

    #[test]
    fn keys_of_the_longest_allowed_values_fit_dynamodb_limits() {
        use crate::domain::validate::{MAX_NAME_CHARS, MAX_PARENT_CHARS, MAX_TAG_CHARS};
        let tenant = "t".repeat(128);
        assert!(crate::principal::is_valid_tenant_id(&tenant));
        let file_id = new_id();
        // Every allowed character is at most 4 bytes; NFC can triple a name, hence the name key.
        let parent = "😀".repeat(MAX_PARENT_CHARS);
        let tag = "😀".repeat(MAX_TAG_CHARS);
        let name = "\u{1D160}".repeat(MAX_NAME_CHARS);
        let name_key = crate::domain::names::name_key(&name);
        for pk in [
            parent_gsi_pk(&tenant, ListingArea::Live, Some(&parent)),
            parent_gsi_pk(&tenant, ListingArea::Trash, Some(&parent)),
            name_claim_pk(&tenant, Some(&parent)),
            tag_pk(&tenant, ListingArea::Live, &tag),
            tag_pk(&tenant, ListingArea::Trash, &tag),
            file_pk(&tenant, &file_id),
            upload_pk(&tenant, &file_id),
        ] {
            assert!(pk.len() <= MAX_PARTITION_KEY_BYTES, "{} bytes", pk.len());
        }
        for sk in [
            name_claim_sk(&name_key),
            name_sort_key(&name_key, &file_id),
            time_sort_key(&crate::domain::time::now(), &file_id),
        ] {
            assert!(sk.len() <= MAX_SORT_KEY_BYTES, "{} bytes", sk.len());
        }
        // S3 object keys: at most 1,024 bytes.
        assert!(thumbnail_key(&object_key(&tenant, &file_id), 1024).len() <= 1024);
    }

    #[test]
    fn live_and_trash_partitions_never_share_a_key() {
        use ListingArea::{Live, Trash};
        // Parents and tags are free text (`#` included): a trash key must not be reachable by a
        // live parent or tag, nor the other way round.
        for (a, b) in [("TRASH", "x"), ("x", "TRASH#P#x"), ("#TRASH", "#TRASH")] {
            assert_ne!(
                parent_gsi_pk("t", Live, Some(a)),
                parent_gsi_pk("t", Trash, Some(b))
            );
            assert_ne!(parent_gsi_pk("t", Live, Some(a)), tenant_gsi_pk("t", Trash));
            assert_ne!(tag_pk("t", Live, a), tag_pk("t", Trash, b));
            assert_ne!(tag_pk("t", Live, a), parent_gsi_pk("t", Trash, Some(b)));
        }
        assert!(!parent_gsi_pk("t", Live, Some("TRASH")).starts_with(&tenant_gsi_pk("t", Trash)));
        assert!(!tag_pk("t", Live, "x").starts_with(&tenant_gsi_pk("t", Trash)));
    }

    #[test]
    fn revision_sort_keys_sort_numerically() {
        assert!(revision_sk(9) < revision_sk(10));
    }
}
