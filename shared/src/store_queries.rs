//! The DynamoDB reads behind `GET /v1/files`: Queries on the listing indexes (gsi1..gsi4) and on the
//! tag entries, BatchGetItem of the files that tag entries point to. What to read is decided in
//! [`crate::listing`]; the table design is in docs/table-design.md. Never a Scan.

use crate::domain::FileRecord;
use crate::error::ApiError;
use crate::keys;
use crate::listing::{
    Candidates, Gather, Index, ListQuery, MAX_CHUNK, MAX_ITEMS_READ, Page, PageFill, Plan,
    Position, ReadBudget, Scan,
};
use crate::store::{
    FileItem, FileStore, Item, StoreError, TagEntryItem, classify, from_item, key, live_file,
};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_KEYS: usize = 100;
/// BatchGetItem calls in flight at once for one request.
const BATCH_GET_CONCURRENCY: usize = 8;
/// Resubmissions of keys that BatchGetItem left unprocessed (under throttling), with backoff.
const BATCH_GET_ATTEMPTS: u32 = 8;

/// What a listing read cost, for the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Index items read (tag entries count once, their files are not counted again).
    pub items_read: usize,
    /// Query calls.
    pub queries: usize,
    /// How the listing was served ([`Plan::name`]; empty for a count).
    pub plan: &'static str,
}

/// The ExclusiveStartKey that resumes `scan` right after `position`: the index key plus, for a
/// global secondary index, the table key of the file at that position.
fn start_key(scan: &Scan, position: &Position) -> Item {
    let (pk, sk) = scan.index.key_attributes();
    let mut item = HashMap::from([
        (pk.to_string(), AttributeValue::S(scan.partition.clone())),
        (
            sk.to_string(),
            AttributeValue::S(scan.index.sort_key(position)),
        ),
    ]);
    if scan.index != Index::Tag {
        item.extend(key(
            keys::file_pk(&scan.tenant, &position.id),
            keys::FILE_SK,
        ));
    }
    item
}

impl FileStore {
    /// One Query call of `scan`: up to `limit` items from `start` on, and where to go on from.
    async fn query_chunk(
        &self,
        scan: &Scan,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let (pk, sk) = scan.index.key_attributes();
        let condition = match (&scan.bounds.from, &scan.bounds.to) {
            (None, None) => "#pk = :pk",
            (Some(_), None) => "#pk = :pk AND #sk >= :from",
            (None, Some(_)) => "#pk = :pk AND #sk < :to",
            // Sort keys are `<bound>#<id>`: none equals `to`, so BETWEEN is `from <= sk < to`.
            (Some(_), Some(_)) => "#pk = :pk AND #sk BETWEEN :from AND :to",
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(scan.index.name().map(str::to_string))
            .key_condition_expression(condition)
            .expression_attribute_names("#pk", pk)
            .expression_attribute_values(":pk", AttributeValue::S(scan.partition.clone()))
            .scan_index_forward(!scan.descending)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        if scan.bounds.from.is_some() || scan.bounds.to.is_some() {
            request = request.expression_attribute_names("#sk", sk);
        }
        if let Some(from) = &scan.bounds.from {
            request = request.expression_attribute_values(":from", AttributeValue::S(from.clone()));
        }
        if let Some(to) = &scan.bounds.to {
            request = request.expression_attribute_values(":to", AttributeValue::S(to.clone()));
        }
        let out = request.send().await.map_err(classify)?;
        let next = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// The files of index items, in index order. Listing indexes project whole file records; tag
    /// entries only name their file, which is fetched (`None` when it no longer exists).
    async fn files_of(
        &self,
        scan: &Scan,
        items: Vec<Item>,
    ) -> Result<Vec<Option<FileRecord>>, StoreError> {
        if scan.index != Index::Tag {
            return items
                .into_iter()
                .map(|item| Ok(Some(from_item::<FileItem>(item)?.record)))
                .collect();
        }
        let ids = items
            .into_iter()
            .map(|item| Ok(from_item::<TagEntryItem>(item)?.entry.file_id))
            .collect::<Result<Vec<String>, StoreError>>()?;
        let mut found = self.batch_get_files(&scan.tenant, &ids).await?;
        Ok(ids.iter().map(|id| found.remove(id)).collect())
    }

    /// The file records of `ids` (missing ones are left out), by id. Eventually consistent, like
    /// the indexes the ids come from.
    pub async fn batch_get_files(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, FileRecord>, StoreError> {
        let mut unique: Vec<String> = ids.to_vec();
        unique.sort();
        unique.dedup();
        // Owned chunks and keys: the futures must not borrow across the stream (Send + 'static
        // bounds of the Lambda runtime).
        let requests: Vec<Vec<Item>> = unique
            .chunks(BATCH_GET_KEYS)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|id| key(keys::file_pk(tenant, id), keys::FILE_SK))
                    .collect()
            })
            .collect();
        let found: Vec<Vec<FileRecord>> = futures::stream::iter(requests)
            .map(|keys| self.batch_get_chunk(keys))
            .buffer_unordered(BATCH_GET_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .flatten()
            .map(|f| (f.id.clone(), f))
            .collect())
    }

    async fn batch_get_chunk(&self, keys: Vec<Item>) -> Result<Vec<FileRecord>, StoreError> {
        let count = keys.len();
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .build()
            .map_err(|e| StoreError::Permanent(Box::new(e)))?;
        let mut files = Vec::with_capacity(count);
        for attempt in 0..BATCH_GET_ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(classify)?;
            if let Some(items) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                // A file being deleted for good is no file (its tag entries went with the mark).
                for item in items {
                    files.extend(live_file(item)?);
                }
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => {
                    pending = rest;
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                _ => return Ok(files),
            }
        }
        Err(StoreError::Transient(
            "BatchGetItem kept keys unprocessed (throttled)".into(),
        ))
    }

    /// One page of `query` read straight from `scan`, whose order is the query's order, starting
    /// after `after`: reads until the page is full (DynamoDB's Limit counts items before any filter,
    /// so one call rarely suffices for a filtered query), within [`MAX_ITEMS_READ`].
    pub async fn list_page(
        &self,
        query: &ListQuery,
        scan: &Scan,
        after: Option<&Position>,
    ) -> Result<(Page, ReadStats), ApiError> {
        self.list_page_within(query, scan, after, MAX_ITEMS_READ)
            .await
    }

    /// One page of `query` from several partitions of an index in the query's order (a token
    /// limited to some parents): each is read from `after` on, all at once, with an equal share
    /// of [`MAX_ITEMS_READ`], and the pages are merged in the order. One cursor position serves
    /// every partition: the ExclusiveStartKey of a partition is the position's index key there,
    /// whether or not a file of that partition is at it.
    pub async fn list_page_merged(
        &self,
        query: &ListQuery,
        scans: &[Scan],
        after: Option<&Position>,
    ) -> Result<(Page, ReadStats), ApiError> {
        let share = MAX_ITEMS_READ / scans.len().max(1);
        let pages = futures::future::try_join_all(
            scans
                .iter()
                .map(|scan| self.list_page_within(query, scan, after, share)),
        )
        .await?;
        let mut stats = ReadStats::default();
        let mut files = Vec::new();
        let mut more = false;
        for (page, read) in pages {
            stats.items_read += read.items_read;
            stats.queries += read.queries;
            more |= page.next.is_some();
            files.extend(page.items);
        }
        Ok((query.merge_pages(files, more), stats))
    }

    async fn list_page_within(
        &self,
        query: &ListQuery,
        scan: &Scan,
        after: Option<&Position>,
        budget: usize,
    ) -> Result<(Page, ReadStats), ApiError> {
        let mut fill = PageFill::with_budget(query, scan, budget);
        let mut start = after.map(|p| start_key(scan, p));
        let exhausted = loop {
            if fill.is_over_budget() {
                break false;
            }
            let limit = fill.next_chunk();
            let (items, next) = self.query_chunk(scan, start.take(), limit).await?;
            let mut full = false;
            for file in self.files_of(scan, items).await? {
                if fill.offer(file) {
                    full = true;
                    break;
                }
            }
            match next {
                _ if full => break false,
                Some(next) => start = Some(next),
                None => break true,
            }
        };
        let stats = ReadStats {
            items_read: fill.items_read,
            queries: fill.calls,
            ..ReadStats::default()
        };
        Ok((fill.finish(exhausted)?, stats))
    }

    /// One page of `query` after `after`, read as its plan says ([`ListQuery::plan`]).
    pub async fn list_files(
        &self,
        query: &ListQuery,
        tenant: &str,
        after: Option<&Position>,
    ) -> Result<(Page, ReadStats), ApiError> {
        let plan = query.plan(tenant);
        let (page, stats) = match &plan {
            Plan::Stream(scan) => self.list_page(query, scan, after).await?,
            Plan::Merge(scans) => self.list_page_merged(query, scans, after).await?,
            Plan::Sort(candidates) => {
                let (gather, stats) = self
                    .gather_candidates(candidates, || Gather::page(query, after))
                    .await?;
                (gather.into_page(), stats)
            }
        };
        Ok((
            page,
            ReadStats {
                plan: plan.name(),
                ..stats
            },
        ))
    }

    /// `count_only`: how many files match `query` (bounded like a listing).
    pub async fn count_files(
        &self,
        query: &ListQuery,
        tenant: &str,
    ) -> Result<(usize, ReadStats), ApiError> {
        let (gather, stats) = self
            .gather_candidates(&query.candidate_scans(tenant), || Gather::count(query))
            .await?;
        Ok((gather.matched(), stats))
    }

    /// Streams the candidates of a query sorted or counted in memory through one [`Gather`] per
    /// source (see [`Candidates`]): the sources are read side by side, a chunk each in turn, and
    /// the gather of the first to end is the answer. Each chunk is offered as soon as it is read,
    /// so what is held is one chunk plus what the gathers keep, never the candidates themselves.
    /// More than [`MAX_ITEMS_READ`] items read in all: 400 `query_too_broad`.
    async fn gather_candidates<'q>(
        &self,
        candidates: &Candidates,
        new_gather: impl Fn() -> Gather<'q>,
    ) -> Result<(Gather<'q>, ReadStats), ApiError> {
        let sources = &candidates.0;
        let mut stats = ReadStats::default();
        let mut budget = ReadBudget::new(MAX_ITEMS_READ);
        let mut gathers: Vec<Gather<'q>> = sources.iter().map(|_| new_gather()).collect();
        // Where each source is: which of its scans, and where in it.
        let mut at: Vec<(usize, Option<Item>)> = vec![(0, None); sources.len()];
        // A source without reads holds nothing (and no source: nothing to read either).
        if sources.is_empty() || sources.iter().any(Vec::is_empty) {
            return Ok((new_gather(), stats));
        }
        loop {
            for (i, scans) in sources.iter().enumerate() {
                let (scan_index, start) = &mut at[i];
                let scan = &scans[*scan_index];
                let (items, next) = self
                    .query_chunk(scan, start.take(), budget.next_limit(MAX_CHUNK))
                    .await?;
                stats.queries += 1;
                stats.items_read += items.len();
                budget.spend(items.len())?;
                for file in self.files_of(scan, items).await? {
                    gathers[i].offer(file);
                }
                match next {
                    Some(next) => *start = Some(next),
                    None => *scan_index += 1,
                }
                if *scan_index == scans.len() {
                    return Ok((gathers.swap_remove(i), stats));
                }
            }
        }
    }
}
