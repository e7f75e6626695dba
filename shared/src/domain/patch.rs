//! `PATCH /v1/files/{id}` as a JSON merge patch (RFC 7396): members present change, `null` removes,
//! absent members stay. `metadata` merges key by key (`{"k": null}` removes `k`); `tags` is replaced
//! as a whole (an array is not merged); `parent: null` moves the file to the top level.

use super::FileRecord;
use super::validate;
use crate::error::ApiError;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Distinguishes a member set to `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// [`present`] for the metadata object, whose keys must be unique (see [`api_types::json_input`]).
fn present_unique<'de, D, V>(d: D) -> Result<Option<Option<BTreeMap<String, V>>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    Option::<api_types::json_input::UniqueMap<V>>::deserialize(d).map(|m| Some(m.map(|m| m.0)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub parent: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present_unique")]
    pub metadata: Option<Option<BTreeMap<String, Option<String>>>>,
}

impl FilePatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.parent.is_none()
            && self.tags.is_none()
            && self.metadata.is_none()
    }
}

/// The file as the patch would leave it (not yet versioned or timestamped), validated.
pub fn apply_patch(file: &FileRecord, patch: &FilePatch) -> Result<FileRecord, ApiError> {
    let mut next = file.clone();
    match &patch.name {
        None => {}
        Some(None) => {
            return Err(ApiError::InvalidField {
                field: "name",
                reason: "cannot be removed".into(),
            });
        }
        Some(Some(name)) => next.name = validate::file_name(name)?,
    }
    match &patch.parent {
        None => {}
        Some(None) => next.parent = None,
        Some(Some(parent)) => next.parent = validate::parent(Some(parent))?,
    }
    match &patch.tags {
        None => {}
        Some(None) => next.tags = Vec::new(),
        Some(Some(tags)) => next.tags = validate::tags(Some(tags))?,
    }
    match &patch.metadata {
        None => {}
        Some(None) => next.metadata = BTreeMap::new(),
        Some(Some(changes)) => {
            validate::metadata_patch(changes)?;
            let mut merged = file.metadata.clone();
            for (key, value) in changes {
                match value {
                    Some(value) => merged.insert(key.clone(), value.clone()),
                    None => merged.remove(key),
                };
            }
            next.metadata = validate::metadata(Some(&merged))?;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FileStatus, Thumbnails, time};

    fn file() -> FileRecord {
        let now = time::now();
        FileRecord {
            tenant_id: "acme".into(),
            id: "f".into(),
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 1,
            status: FileStatus::Ready,
            parent: Some("case-1".into()),
            tags: vec!["x".into()],
            metadata: BTreeMap::from([("keep".into(), "1".into()), ("drop".into(), "2".into())]),
            revision: 1,
            object_key: None,
            sha256: None,
            rejection_reason: None,
            thumbnails: Thumbnails::Pending,
            expires_at: None,
            trashed_at: None,
            created_at: now,
            created_by: crate::domain::actor::user("alice"),
            updated_by: None,
            updated_at: now,
            version: 3,
        }
    }

    fn patch(json: &str) -> FilePatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn absent_members_stay_and_null_removes() {
        let next = apply_patch(
            &file(),
            &patch(r#"{"parent": null, "metadata": {"drop": null, "new": "3"}}"#),
        )
        .unwrap();
        assert_eq!(next.name, "a.txt");
        assert_eq!(next.parent, None);
        assert_eq!(next.tags, vec!["x"]);
        assert_eq!(
            next.metadata,
            BTreeMap::from([("keep".into(), "1".into()), ("new".into(), "3".into())])
        );
    }

    #[test]
    fn tags_are_replaced_and_names_validated() {
        let next = apply_patch(
            &file(),
            &patch(r#"{"tags": ["y", "y", "z"], "name": "b.txt"}"#),
        )
        .unwrap();
        assert_eq!(next.tags, vec!["y", "z"]);
        assert_eq!(next.name, "b.txt");
        assert!(apply_patch(&file(), &patch(r#"{"name": null}"#)).is_err());
        assert!(apply_patch(&file(), &patch(r#"{"name": "a/b"}"#)).is_err());
        assert!(serde_json::from_str::<FilePatch>(r#"{"size": 3}"#).is_err());
        assert!(patch("{}").is_empty());
    }

    #[test]
    fn merged_metadata_is_still_bounded() {
        let many: String = (0..31)
            .map(|i| format!("\"k{i}\": \"v\""))
            .collect::<Vec<_>>()
            .join(",");
        let err =
            apply_patch(&file(), &patch(&format!("{{\"metadata\": {{{many}}}}}"))).unwrap_err();
        assert_eq!(err.code(), "invalid_field");
    }
}
