//! DynamoDB reads of a file's revisions by page: `GET /v1/files/{id}/revisions` (keyset pages in
//! revision order) and the lookup of the revision an upload became. Revision items share the file's
//! partition (`REV#<10 digits>` sort keys, see [`crate::keys`]), so both are one Query on the table.

use crate::domain::RevisionRecord;
use crate::keys;
use crate::store::{FileStore, Item, RevisionItem, StoreError, classify, from_item, key};
use aws_sdk_dynamodb::types::AttributeValue;

/// Revisions looked at, newest first, to find the one an upload became: the S3 event that made it
/// ran a moment ago, so it is the newest or close to it.
const RECENT_REVISIONS: i32 = 100;

/// One page of revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionPage {
    pub items: Vec<RevisionRecord>,
    /// True when revisions follow the last item.
    pub more: bool,
}

impl FileStore {
    /// Up to `limit` revisions of a file, oldest first, strictly after revision `after`. One Query of
    /// `limit + 1` items: the extra one only says whether another page follows, so every page but the
    /// last is full and the last one says so (the 1 MB Query limit is far above 101 revisions).
    pub async fn list_revisions_page(
        &self,
        tenant: &str,
        file_id: &str,
        after: Option<u32>,
        limit: usize,
    ) -> Result<RevisionPage, StoreError> {
        let pk = keys::file_pk(tenant, file_id);
        let start: Option<Item> = after.map(|n| key(pk.clone(), keys::revision_sk(n)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rev)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":rev", AttributeValue::S("REV#".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(classify)?;
        let mut items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| Ok(from_item::<RevisionItem>(item)?.revision))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(RevisionPage { items, more })
    }

    /// The revision that upload `upload_id` became, among the file's newest revisions.
    pub async fn find_revision_of_upload(
        &self,
        tenant: &str,
        file_id: &str,
        upload_id: &str,
    ) -> Result<Option<RevisionRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rev)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::file_pk(tenant, file_id)))
            .expression_attribute_values(":rev", AttributeValue::S("REV#".into()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(RECENT_REVISIONS)
            .send()
            .await
            .map_err(classify)?;
        for item in out.items.unwrap_or_default() {
            let revision = from_item::<RevisionItem>(item)?.revision;
            if revision.upload_id == upload_id {
                return Ok(Some(revision));
            }
        }
        Ok(None)
    }
}
