//! DynamoDB adapter: files, revisions and upload sessions in one table (keys in [`crate::keys`]).
//!
//! Every write that could race is conditional; a lost condition comes back as
//! [`StoreError::ConditionFailed`] for the caller to map (409, 412, or "already done").

use crate::domain::{FileRecord, RevisionRecord, UploadSession, UploadStatus};
use crate::error::{ApiError, BoxError};
use crate::keys;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in another state than expected.
    #[error("condition failed")]
    ConditionFailed,
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
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
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

fn classify<E, R>(err: SdkError<E, R>) -> StoreError
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
                return StoreError::ConditionFailed;
            }
            if code == "TransactionCanceledException" {
                let message = service.err().message().unwrap_or_default();
                // The reasons list names ConditionalCheckFailed for the item whose condition lost.
                if message.contains("ConditionalCheckFailed") {
                    return StoreError::ConditionFailed;
                }
                if message.contains("TransactionConflict") || message.contains("Throttling") {
                    return StoreError::Transient(Box::new(err));
                }
            }
            if TRANSIENT_CODES.contains(&code) {
                StoreError::Transient(Box::new(err))
            } else {
                StoreError::Permanent(Box::new(err))
            }
        }
        _ => StoreError::Permanent(Box::new(err)),
    }
}

type Item = HashMap<String, AttributeValue>;

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Permanent(Box::new(e)))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Permanent(Box::new(e)))
}

/// The file record as stored: its keys, then its fields.
#[derive(Serialize, Deserialize)]
struct FileItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    #[serde(flatten)]
    record: FileRecord,
}

impl FileItem {
    fn new(record: &FileRecord) -> Self {
        FileItem {
            pk: keys::file_pk(&record.tenant_id, &record.id),
            sk: keys::FILE_SK.to_string(),
            gsi1pk: keys::parent_gsi_pk(&record.tenant_id, record.parent.as_deref()),
            gsi1sk: keys::time_sort_key(&record.created_at, &record.id),
            gsi2pk: keys::tenant_gsi_pk(&record.tenant_id),
            gsi2sk: keys::time_sort_key(&record.updated_at, &record.id),
            record: record.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct UploadItem {
    pk: String,
    sk: String,
    /// DynamoDB TTL: a session nobody finished is removed a day after its URL expired.
    expires_at_epoch: i64,
    #[serde(flatten)]
    session: UploadSession,
}

/// Sessions are kept this long after their URL expired, so late S3 events still find them.
const UPLOAD_SESSION_GRACE_SECONDS: i64 = 24 * 3600;

impl UploadItem {
    fn new(session: &UploadSession) -> Self {
        UploadItem {
            pk: keys::upload_pk(&session.tenant_id, &session.upload_id),
            sk: keys::UPLOAD_SK.to_string(),
            expires_at_epoch: session.expires_at.timestamp() + UPLOAD_SESSION_GRACE_SECONDS,
            session: session.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RevisionItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    revision: RevisionRecord,
}

/// Files, revisions and upload sessions in DynamoDB.
#[derive(Debug, Clone)]
pub struct FileStore {
    client: Client,
    table: String,
}

impl FileStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        FileStore {
            client,
            table: table.into(),
        }
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_conditioned_on(
        &self,
        item: Item,
        condition: &str,
        values: Item,
        names: HashMap<String, String>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.to_string()))
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
            .map_err(classify)?;
        Ok(())
    }

    /// Stores a new pending file and its first upload session, together or not at all.
    pub async fn create_file_with_upload(
        &self,
        file: &FileRecord,
        session: &UploadSession,
    ) -> Result<(), StoreError> {
        let new_only = "attribute_not_exists(pk)";
        self.transact(vec![
            self.put(to_item(&FileItem::new(file))?, new_only)?,
            self.put(to_item(&UploadItem::new(session))?, new_only)?,
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
            Some(item) => Ok(Some(from_item::<FileItem>(item)?.record)),
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

    /// Records the outcome of a pending upload: the session's new status, the file as it is now
    /// (written only if nobody changed it since `expected_version` was read), and the new revision if
    /// the upload was accepted. All or nothing; a lost race is [`StoreError::ConditionFailed`].
    pub async fn finish_upload(
        &self,
        session: &UploadSession,
        file: &FileRecord,
        expected_version: u64,
        revision: Option<&RevisionRecord>,
    ) -> Result<(), StoreError> {
        let mut session_item = to_item(&UploadItem::new(session))?;
        // The TTL keeps counting from the original expiry, whatever the outcome.
        session_item.insert(
            "expires_at_epoch".into(),
            AttributeValue::N(
                (session.expires_at.timestamp() + UPLOAD_SESSION_GRACE_SECONDS).to_string(),
            ),
        );
        let status_name = HashMap::from([("#status".to_string(), "status".to_string())]);
        let mut items = vec![
            self.put_conditioned_on(
                session_item,
                "#status = :pending",
                HashMap::from([(
                    ":pending".to_string(),
                    AttributeValue::S(status_text(UploadStatus::Pending)),
                )]),
                status_name,
            )?,
            self.put_conditioned_on(
                to_item(&FileItem::new(file))?,
                "version = :expected",
                HashMap::from([(
                    ":expected".to_string(),
                    AttributeValue::N(expected_version.to_string()),
                )]),
                HashMap::new(),
            )?,
        ];
        if let Some(revision) = revision {
            let item = RevisionItem {
                pk: keys::file_pk(&revision.tenant_id, &revision.file_id),
                sk: keys::revision_sk(revision.revision),
                revision: revision.clone(),
            };
            items.push(self.put(to_item(&item)?, "attribute_not_exists(pk)")?);
        }
        self.transact(items).await
    }
}

fn status_text(status: UploadStatus) -> String {
    match status {
        UploadStatus::Pending => "pending",
        UploadStatus::Completed => "completed",
        UploadStatus::Rejected => "rejected",
    }
    .to_string()
}
