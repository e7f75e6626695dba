//! DynamoDB adapter: files, revisions, name claims and upload sessions in one table (keys in
//! [`crate::keys`], design in docs/table-design.md).
//!
//! Every write that could race is conditional; a lost condition comes back as
//! [`StoreError::ConditionFailed`], naming which item of a transaction lost, for the caller to map
//! (409, 412, or "already done").

use crate::domain::names::name_key;
use crate::domain::{FileRecord, RevisionRecord, Thumbnails, UploadSession, UploadStatus};
use crate::error::{ApiError, BoxError};
use crate::keys::{self, ListingArea};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found an item in another state than expected. `item` is the index of
    /// the losing item in a transaction (None for single-item writes or when DynamoDB did not say).
    #[error("condition failed (item {item:?})")]
    ConditionFailed { item: Option<usize> },
    /// Throttling, timeouts, 5xx: the same call may succeed later.
    #[error("transient DynamoDB error: {0}")]
    Transient(#[source] BoxError),
    /// Anything else: a bug or a misconfiguration.
    #[error("DynamoDB error: {0}")]
    Permanent(#[source] BoxError),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }

    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

/// Throttling, timeouts and transaction conflicts are worth retrying: 503 with Retry-After; the rest
/// is a bug or a misconfiguration: 500. Either way the cause is only logged.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::unavailable(e)
        } else {
            ApiError::internal(e)
        }
    }
}

/// DynamoDB error codes after which the same request may succeed.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(Box::new(err))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if code == "ConditionalCheckFailedException" {
                StoreError::ConditionFailed { item: None }
            } else if TRANSIENT_CODES.contains(&code) {
                StoreError::Transient(Box::new(err))
            } else {
                StoreError::Permanent(Box::new(err))
            }
        }
        _ => StoreError::Permanent(Box::new(err)),
    }
}

/// A cancelled transaction says, item by item, why: a lost condition is not an error of the
/// store, conflicts and throttling are transient.
fn classify_transaction<R>(err: SdkError<TransactWriteItemsError, R>) -> StoreError
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err
        && let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err()
    {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if let Some(item) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
            return StoreError::ConditionFailed { item: Some(item) };
        }
        if codes.iter().any(|c| {
            matches!(
                *c,
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        }) {
            return StoreError::Transient(Box::new(err));
        }
    }
    classify(err)
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Permanent(Box::new(e)))
}

pub(crate) fn to_value<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Permanent(Box::new(e)))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Permanent(Box::new(e)))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// The file record as stored: its keys, then its fields.
#[derive(Serialize, Deserialize)]
pub(crate) struct FileItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    gsi3pk: String,
    gsi3sk: String,
    gsi4pk: String,
    gsi4sk: String,
    /// DynamoDB TTL, only while the file has never had content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_epoch: Option<i64>,
    #[serde(flatten)]
    pub(crate) record: FileRecord,
}

impl FileItem {
    fn new(record: &FileRecord) -> Self {
        // A trash or a restore rewrites the record, hence moves it between the listing areas.
        let area = ListingArea::of(record);
        let parent_pk = keys::parent_gsi_pk(&record.tenant_id, area, record.parent.as_deref());
        FileItem {
            pk: keys::file_pk(&record.tenant_id, &record.id),
            sk: keys::FILE_SK.to_string(),
            gsi1pk: parent_pk.clone(),
            gsi1sk: keys::time_sort_key(&record.created_at, &record.id),
            gsi2pk: keys::tenant_gsi_pk(&record.tenant_id, area),
            gsi2sk: keys::time_sort_key(&record.updated_at, &record.id),
            gsi3pk: keys::tenant_gsi_pk(&record.tenant_id, area),
            gsi3sk: keys::time_sort_key(&record.created_at, &record.id),
            gsi4pk: parent_pk,
            gsi4sk: keys::name_sort_key(&name_key(&record.name), &record.id),
            expires_at_epoch: record.expires_at.map(|t| t.timestamp()),
            record: record.clone(),
        }
    }
}

/// Sessions are kept this long after their URL expired, so late S3 events still find them.
pub const UPLOAD_SESSION_GRACE_SECONDS: i64 = 24 * 3600;

#[derive(Serialize, Deserialize)]
struct UploadItem {
    pk: String,
    sk: String,
    /// DynamoDB TTL: a session that did not become a revision is removed a day after its URL
    /// expired. An accepted one stays as long as its revision (deleted with it): it is how a late
    /// or repeated S3 event for its key learns that the object is wanted, and its absence means
    /// the object is not (`finalize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_epoch: Option<i64>,
    #[serde(flatten)]
    session: UploadSession,
}

impl UploadItem {
    fn new(session: &UploadSession) -> Self {
        UploadItem {
            pk: keys::upload_pk(&session.tenant_id, &session.upload_id),
            sk: keys::UPLOAD_SK.to_string(),
            expires_at_epoch: (session.status != UploadStatus::Completed)
                .then(|| session.expires_at.timestamp() + UPLOAD_SESSION_GRACE_SECONDS),
            session: session.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RevisionItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    pub(crate) revision: RevisionRecord,
}

/// "This name in this parent belongs to this file": the item whose conditional put makes names
/// unique. It carries the file's TTL while the file has never had content, so an abandoned upload
/// frees its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameClaim {
    pub file_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_epoch: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct NameClaimItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    claim: NameClaim,
}

impl NameClaimItem {
    fn for_file(file: &FileRecord) -> Self {
        NameClaimItem {
            pk: keys::name_claim_pk(&file.tenant_id, file.parent.as_deref()),
            sk: keys::name_claim_sk(&name_key(&file.name)),
            claim: NameClaim {
                file_id: file.id.clone(),
                expires_at_epoch: file.expires_at.map(|t| t.timestamp()),
            },
        }
    }
}

/// "This file has this tag": one keys-only entry per (file, tag), so that a tag's files are one
/// Query in creation order. The file record stays the source of truth; entries are written in the
/// same transactions that change a file's tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagEntry {
    pub file_id: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TagEntryItem {
    pk: String,
    sk: String,
    /// The file's TTL while it has never had content: an abandoned upload's entries go with it
    /// (they would count against a tag listing's budget for ever otherwise). Cleared with the
    /// file's when the first revision lands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_epoch: Option<i64>,
    #[serde(flatten)]
    pub(crate) entry: TagEntry,
}

impl TagEntryItem {
    /// The entry of `tag` for `file` as it is now: in the trash's partition while it is trashed.
    fn new(file: &FileRecord, tag: &str) -> Self {
        TagEntryItem {
            pk: keys::tag_pk(&file.tenant_id, ListingArea::of(file), tag),
            sk: keys::time_sort_key(&file.created_at, &file.id),
            expires_at_epoch: file.expires_at.map(|t| t.timestamp()),
            entry: TagEntry {
                file_id: file.id.clone(),
            },
        }
    }
}

/// Files, revisions, name claims and upload sessions in DynamoDB.
#[derive(Debug, Clone)]
pub struct FileStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

/// The condition under which a new upload of an existing file may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionPrecondition {
    /// The file exists and is not in the trash.
    Live,
    /// ... and is still at this version (the client's `if_match`).
    AtVersion(u64),
}

impl FileStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        FileStore {
            client,
            table: table.into(),
        }
    }

    fn put(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(
        &self,
        key: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn check(
        &self,
        key: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            // Read-after-write: a client reads the file right after creating it.
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify_transaction)?;
        Ok(())
    }

    /// The writes that move a file's tag entries from `before` to `after` (either may be absent:
    /// a new file, a deleted file): entries of tags it lost, or in the area it left (a trash or a
    /// restore moves every entry), are deleted; new ones are put. Unchanged entries are not touched.
    pub fn tag_entry_writes(
        &self,
        before: Option<&FileRecord>,
        after: Option<&FileRecord>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let entries_of = |f: Option<&FileRecord>| -> Vec<TagEntryItem> {
            f.map(|f| f.tags.iter().map(|t| TagEntryItem::new(f, t)).collect())
                .unwrap_or_default()
        };
        let (old, new) = (entries_of(before), entries_of(after));
        let same_key = |a: &TagEntryItem, b: &TagEntryItem| a.pk == b.pk && a.sk == b.sk;
        let mut writes = Vec::new();
        for gone in old.iter().filter(|o| !new.iter().any(|n| same_key(o, n))) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(gone.pk.clone(), gone.sk.clone())))
                .build()
                .map_err(|e| StoreError::Permanent(Box::new(e)))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        for added in new.iter().filter(|n| !old.iter().any(|o| same_key(o, n))) {
            writes.push(self.put(to_item(added)?, None, Item::new())?);
        }
        Ok(writes)
    }

    /// A name claim may be taken when nobody holds it, or when its holder never got content and
    /// expired (DynamoDB TTL deletes lazily, up to days later).
    fn claim_put(&self, file: &FileRecord) -> Result<TransactWriteItem, StoreError> {
        self.put(
            to_item(&NameClaimItem::for_file(file))?,
            Some("attribute_not_exists(pk) OR expires_at_epoch < :now"),
            HashMap::from([(
                ":now".to_string(),
                n(crate::domain::time::now().timestamp()),
            )]),
        )
    }

    /// Stores a new pending file, its name claim and its first upload session, all or nothing.
    /// A taken name is `ConditionFailed { item: Some(0) }`.
    pub async fn create_file_with_upload(
        &self,
        file: &FileRecord,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        let mut items = vec![
            self.claim_put(file)?,
            self.put(
                to_item(&FileItem::new(file))?,
                Some("attribute_not_exists(pk)"),
                Item::new(),
            )?,
            self.put(
                to_item(&UploadItem::new(session))?,
                Some("attribute_not_exists(pk)"),
                Item::new(),
            )?,
        ];
        items.extend(self.tag_entry_writes(None, Some(file))?);
        self.transact(items).await
    }

    /// Stores an upload session for a new revision of an existing file, if the file still meets
    /// `precondition` (`ConditionFailed { item: Some(0) }` otherwise).
    pub async fn create_revision_upload(
        &self,
        session: &UploadSession,
        precondition: RevisionPrecondition,
    ) -> Result<(), StoreError> {
        let file_key = key(
            keys::file_pk(&session.tenant_id, &session.file_id),
            keys::FILE_SK,
        );
        let check = match precondition {
            RevisionPrecondition::Live => self.check(
                file_key,
                "attribute_exists(pk) AND attribute_not_exists(trashed_at) AND attribute_not_exists(deleting_since)",
                Item::new(),
            )?,
            RevisionPrecondition::AtVersion(version) => self.check(
                file_key,
                "attribute_exists(pk) AND attribute_not_exists(trashed_at) AND attribute_not_exists(deleting_since) AND version = :v",
                HashMap::from([(":v".to_string(), n(version))]),
            )?,
        };
        self.transact(vec![
            check,
            self.put(
                to_item(&UploadItem::new(session))?,
                Some("attribute_not_exists(pk)"),
                Item::new(),
            )?,
        ])
        .await
    }

    pub async fn get_file(
        &self,
        tenant: &str,
        file_id: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        match self
            .get_item(keys::file_pk(tenant, file_id), keys::FILE_SK)
            .await?
        {
            Some(item) => live_file(item),
            None => Ok(None),
        }
    }

    pub async fn get_name_claim(
        &self,
        tenant: &str,
        parent: Option<&str>,
        name: &str,
    ) -> Result<Option<NameClaim>, StoreError> {
        let pk = keys::name_claim_pk(tenant, parent);
        match self
            .get_item(pk, &keys::name_claim_sk(&name_key(name)))
            .await?
        {
            Some(item) => Ok(Some(from_item::<NameClaimItem>(item)?.claim)),
            None => Ok(None),
        }
    }

    pub async fn get_upload(
        &self,
        tenant: &str,
        upload_id: &str,
    ) -> Result<Option<UploadSession>, StoreError> {
        match self
            .get_item(keys::upload_pk(tenant, upload_id), keys::UPLOAD_SK)
            .await?
        {
            Some(item) => Ok(Some(from_item::<UploadItem>(item)?.session)),
            None => Ok(None),
        }
    }

    fn session_transition(&self, session: &UploadSession) -> Result<TransactWriteItem, StoreError> {
        self.put(
            to_item(&UploadItem::new(session))?,
            Some("#status = :pending"),
            HashMap::from([(":pending".to_string(), s(UploadStatus::Pending.as_str()))]),
        )
        .map(with_status_name)
    }

    fn file_put_at_version(
        &self,
        file: &FileRecord,
        expected_version: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put(
            to_item(&FileItem::new(file))?,
            Some("version = :expected"),
            HashMap::from([(":expected".to_string(), n(expected_version))]),
        )
    }

    /// Records the outcome of a pending upload: the session's new status (written only while it is
    /// still pending), the file as it is now (only if nobody changed it since `expected_version`),
    /// the new revision if the upload was accepted, and the name claim made permanent when the
    /// file got its first content. All or nothing.
    pub async fn finish_upload(
        &self,
        session: &UploadSession,
        file: &FileRecord,
        expected_version: u64,
        revision: Option<&RevisionRecord>,
    ) -> Result<(), StoreError> {
        let mut items = vec![
            self.session_transition(session)?,
            self.file_put_at_version(file, expected_version)?,
        ];
        if let Some(revision) = revision {
            let item = RevisionItem {
                pk: keys::file_pk(&revision.tenant_id, &revision.file_id),
                sk: keys::revision_sk(revision.revision),
                revision: revision.clone(),
            };
            items.push(self.put(
                to_item(&item)?,
                Some("attribute_not_exists(pk)"),
                Item::new(),
            )?);
            if revision.revision == 1 && file.trashed_at.is_none() {
                items.push(self.put(
                    to_item(&NameClaimItem::for_file(file))?,
                    Some("file_id = :id"),
                    HashMap::from([(":id".to_string(), s(file.id.clone()))]),
                )?);
            }
            if revision.revision == 1 {
                // The file has content now: its tag entries lose their TTL with it.
                for tag in &file.tags {
                    items.push(self.put(
                        to_item(&TagEntryItem::new(file, tag))?,
                        None,
                        Item::new(),
                    )?);
                }
            }
        }
        self.transact(items).await
    }

    /// Aborts a pending upload. A file that this upload created and that never had content goes
    /// with it, and frees its name.
    pub async fn abort_upload(
        &self,
        session: &UploadSession,
        file: Option<&FileRecord>,
    ) -> Result<(), StoreError> {
        let mut items = vec![self.session_transition(session)?];
        if let Some(file) = file.filter(|f| session.creates_file && f.revision == 0) {
            items.push(self.delete(
                key(keys::file_pk(&file.tenant_id, &file.id), keys::FILE_SK),
                "version = :v",
                HashMap::from([(":v".to_string(), n(file.version))]),
            )?);
            if file.trashed_at.is_none() {
                let claim = NameClaimItem::for_file(file);
                items.push(self.delete(
                    key(claim.pk, claim.sk),
                    "file_id = :id",
                    HashMap::from([(":id".to_string(), s(file.id.clone()))]),
                )?);
            }
        }
        items.extend(self.tag_entry_writes(
            file.filter(|f| session.creates_file && f.revision == 0),
            None,
        )?);
        self.transact(items).await
    }

    /// Records a revision's thumbnails, on the revision and, while it is still the current
    /// revision, on the file (whose representation, hence version, changes).
    pub async fn set_thumbnails(
        &self,
        tenant: &str,
        file_id: &str,
        revision: u32,
        thumbnails: &Thumbnails,
    ) -> Result<(), StoreError> {
        let value = to_value(thumbnails)?;
        let revision_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::file_pk(tenant, file_id),
                keys::revision_sk(revision),
            )))
            .update_expression("SET thumbnails = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", value.clone())
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        self.transact(vec![
            TransactWriteItem::builder().update(revision_update).build(),
        ])
        .await?;
        let file_update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::file_pk(tenant, file_id), keys::FILE_SK)))
            .update_expression("SET thumbnails = :t, version = version + :one")
            .condition_expression("revision = :r")
            .expression_attribute_values(":t", value)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":r", n(revision))
            .send()
            .await
            .map_err(classify);
        match file_update {
            // A newer revision landed meanwhile: the file shows that one's thumbnails.
            Err(StoreError::ConditionFailed { .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// `status` is a DynamoDB reserved word.
fn with_status_name(mut item: TransactWriteItem) -> TransactWriteItem {
    if let Some(put) = item.put.take() {
        let mut put = put;
        put.expression_attribute_names = Some(HashMap::from([(
            "#status".to_string(),
            "status".to_string(),
        )]));
        item.put = Some(put);
    }
    item
}

/// Why a file update lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateConflict {
    /// The record changed since it was read (another writer won).
    Version,
    /// The new name is held by another live file in the target parent.
    NameTaken,
}

/// A file holds its name claim while it is not in the trash.
fn holds_claim(file: &FileRecord) -> bool {
    file.trashed_at.is_none()
}

impl FileStore {
    /// Replaces a file record read at `before.version` with `after` (a metadata change, a move, a
    /// trash or a restore), moving its name claim and tag entries along, all or nothing.
    pub async fn update_file(
        &self,
        before: &FileRecord,
        after: &FileRecord,
    ) -> Result<Result<(), UpdateConflict>, StoreError> {
        let mut items = vec![self.file_put_at_version(after, before.version)?];
        let (old_claim, new_claim) = (
            NameClaimItem::for_file(before),
            NameClaimItem::for_file(after),
        );
        let same_claim = old_claim.pk == new_claim.pk && old_claim.sk == new_claim.sk;
        let mut new_claim_index = None;
        if !(same_claim && holds_claim(before) && holds_claim(after)) {
            if holds_claim(before) {
                items.push(self.delete(
                    key(old_claim.pk, old_claim.sk),
                    "file_id = :id",
                    HashMap::from([(":id".to_string(), s(before.id.clone()))]),
                )?);
            }
            if holds_claim(after) {
                new_claim_index = Some(items.len());
                items.push(self.claim_put(after)?);
            }
        }
        items.extend(self.tag_entry_writes(Some(before), Some(after))?);
        match self.transact(items).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::ConditionFailed { item })
                if item.is_some() && item == new_claim_index =>
            {
                Ok(Err(UpdateConflict::NameTaken))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Err(UpdateConflict::Version)),
            Err(e) => Err(e),
        }
    }

    pub async fn find_revision(
        &self,
        tenant: &str,
        file_id: &str,
        revision: u32,
    ) -> Result<Option<RevisionRecord>, StoreError> {
        match self
            .get_item(keys::file_pk(tenant, file_id), &keys::revision_sk(revision))
            .await?
        {
            Some(item) => Ok(Some(from_item::<RevisionItem>(item)?.revision)),
            None => Ok(None),
        }
    }

    /// Deletes an old revision's record, unless it is (or meanwhile became) the current one:
    /// `ConditionFailed { item: Some(0) }`.
    pub async fn delete_revision(&self, revision: &RevisionRecord) -> Result<(), StoreError> {
        self.transact(vec![
            self.check(
                key(
                    keys::file_pk(&revision.tenant_id, &revision.file_id),
                    keys::FILE_SK,
                ),
                "attribute_exists(pk) AND revision <> :n",
                HashMap::from([(":n".to_string(), n(revision.revision))]),
            )?,
            self.delete(
                key(
                    keys::file_pk(&revision.tenant_id, &revision.file_id),
                    keys::revision_sk(revision.revision),
                ),
                "attribute_exists(pk)",
                Item::new(),
            )?,
            self.session_delete(revision)?,
        ])
        .await
    }

    /// First step of deleting a file for good, in one transaction: the record becomes a
    /// `deleting_since` marker (if it is still at the version read), which every read takes for
    /// "no such file" and which no index holds any more, and its name claim and tag entries go.
    /// The version is bumped, so no write based on an earlier read (a revision landing, a PATCH,
    /// an abort) can succeed on it any more. What follows is in [`crate::purge`].
    pub async fn mark_file_deleting(&self, file: &FileRecord) -> Result<(), StoreError> {
        let marker = DeletingFileItem {
            pk: keys::file_pk(&file.tenant_id, &file.id),
            sk: keys::FILE_SK.to_string(),
            deleting_since: crate::domain::time::now().timestamp(),
            record: FileRecord {
                version: file.version + 1,
                ..file.clone()
            },
        };
        let mut items = vec![self.put(
            to_item(&marker)?,
            Some("version = :v AND attribute_not_exists(deleting_since)"),
            HashMap::from([(":v".to_string(), n(file.version))]),
        )?];
        if holds_claim(file) {
            let claim = NameClaimItem::for_file(file);
            items.push(self.delete(
                key(claim.pk, claim.sk),
                "file_id = :id",
                HashMap::from([(":id".to_string(), s(file.id.clone()))]),
            )?);
        }
        items.extend(self.tag_entry_writes(Some(file), None)?);
        self.transact(items).await
    }

    /// The file's record as a permanent delete sees it: live, being deleted, or gone.
    pub async fn file_for_delete(
        &self,
        tenant: &str,
        file_id: &str,
    ) -> Result<Option<FileForDelete>, StoreError> {
        match self
            .get_item(keys::file_pk(tenant, file_id), keys::FILE_SK)
            .await?
        {
            None => Ok(None),
            Some(item) if item.contains_key(DELETING_ATTR) => Ok(Some(FileForDelete::Deleting)),
            Some(item) => Ok(Some(FileForDelete::Live(Box::new(
                from_item::<FileItem>(item)?.record,
            )))),
        }
    }

    /// Deletes revision records (their objects must be gone already), 25 per BatchWriteItem.
    pub async fn delete_revision_items(
        &self,
        revisions: &[RevisionRecord],
    ) -> Result<(), StoreError> {
        // Each revision with its accepted upload session (see [`UploadItem`]).
        let item_keys: Vec<Item> = revisions
            .iter()
            .flat_map(|r| {
                [
                    key(
                        keys::file_pk(&r.tenant_id, &r.file_id),
                        keys::revision_sk(r.revision),
                    ),
                    key(keys::upload_pk(&r.tenant_id, &r.upload_id), keys::UPLOAD_SK),
                ]
            })
            .collect();
        for chunk in item_keys.chunks(25) {
            let requests = chunk
                .iter()
                .map(|k| {
                    let delete = aws_sdk_dynamodb::types::DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map_err(|e| StoreError::Permanent(Box::new(e)))?;
                    Ok(aws_sdk_dynamodb::types::WriteRequest::builder()
                        .delete_request(delete)
                        .build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut pending = HashMap::from([(self.table.clone(), requests)]);
            // BatchWriteItem may leave items unprocessed under load: resubmit them.
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(classify)?;
                match out.unprocessed_items {
                    Some(rest) if !rest.is_empty() => pending = rest,
                    _ => break,
                }
                attempt += 1;
                if attempt == 8 {
                    return Err(StoreError::Transient(
                        "BatchWriteItem kept leaving revision deletes unprocessed".into(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The accepted upload session of a revision goes with the revision (see [`UploadItem`]).
    fn session_delete(&self, revision: &RevisionRecord) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::upload_pk(&revision.tenant_id, &revision.upload_id),
                keys::UPLOAD_SK,
            )))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Last step of a permanent delete: the marker goes, once no revision record is left.
    pub async fn delete_file_marker(&self, tenant: &str, file_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::file_pk(tenant, file_id), keys::FILE_SK)))
            .condition_expression("attribute_exists(deleting_since)")
            .send()
            .await
            .map_err(classify);
        match result {
            // Already gone: another run of the same delete finished first.
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The attribute that marks a file record as being deleted for good.
pub(crate) const DELETING_ATTR: &str = "deleting_since";

/// A file record that is being deleted: the record as it was (for the logs and the purge), without
/// the index keys (so no listing finds it) and without a TTL (so it outlives the purge).
#[derive(Serialize, Deserialize)]
struct DeletingFileItem {
    pk: String,
    sk: String,
    /// Epoch seconds when the delete began.
    deleting_since: i64,
    #[serde(flatten)]
    record: FileRecord,
}

/// A file item as every reader but the purge sees it: a record being deleted is no file.
pub(crate) fn live_file(item: Item) -> Result<Option<FileRecord>, StoreError> {
    if item.contains_key(DELETING_ATTR) {
        return Ok(None);
    }
    Ok(Some(from_item::<FileItem>(item)?.record))
}

/// What a permanent delete finds under a file's key.
#[derive(Debug, Clone, PartialEq)]
pub enum FileForDelete {
    Live(Box<FileRecord>),
    /// An earlier delete began and did not finish: resume it.
    Deleting,
}
