//! DynamoDB stream event source mappings, locally: what Lambda does for a function's `DynamoDB`
//! event (infra/template.yaml), against DynamoDB Local's Streams API.
//!
//! Per shard, in order: GetRecords (up to 1,000 records), the template's `FilterCriteria` applied to
//! each record's Lambda JSON ([`crate::event_filter`]), the matching records handed to the function
//! in `{"Records": [...]}` events of at most `BatchSize`. With `ReportBatchItemFailures`, a reported sequence number is
//! retried from, after a pause, up to `MaximumRetryAttempts` times; then the batch is given up as
//! Lambda gives it to the on-failure destination (here: logged), and the shard moves on. Polls every
//! [`POLL_INTERVAL`], as Lambda polls a shard four times a second.

use crate::dynamodb::{LOCAL_REGION, local_credentials};
use crate::template::StreamMapping;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest pause between retries of a failing batch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Records per GetRecords call: the API's maximum, as Lambda reads a shard.
const GET_RECORDS_LIMIT: usize = 1000;

/// The function a mapping invokes: the batch, and what failed.
pub type StreamHandler =
    Arc<dyn Fn(Event) -> Pin<Box<dyn Future<Output = DynamoDbEventResponse> + Send>> + Send + Sync>;

/// A running mapping; dropping it stops the polling.
pub struct StreamPoller {
    task: JoinHandle<()>,
}

impl Drop for StreamPoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl StreamPoller {
    /// Starts polling the stream of `table_name` (which must have one) for `mapping`.
    pub async fn start(
        endpoint_url: &str,
        table_name: &str,
        mapping: StreamMapping,
        handler: StreamHandler,
        retry_delay: Duration,
    ) -> Result<StreamPoller, BoxError> {
        let tables = crate::dynamodb::local_client(endpoint_url).await;
        let stream_arn = tables
            .describe_table()
            .table_name(table_name)
            .send()
            .await?
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned)
            .ok_or_else(|| format!("table {table_name} has no stream"))?;
        let client = streams_client(endpoint_url);
        let mut shard_reader = ShardReader {
            client,
            http: reqwest::Client::new(),
            endpoint_url: endpoint_url.to_owned(),
            stream_arn,
            mapping,
            handler,
            retry_delay,
            shards: BTreeMap::new(),
        };
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = shard_reader.poll_once().await {
                    tracing::warn!(%error, "stream poll failed; retrying");
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        });
        Ok(StreamPoller { task })
    }
}

fn streams_client(endpoint_url: &str) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::config::Builder::new()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new(LOCAL_REGION))
        .credentials_provider(local_credentials())
        .endpoint_url(endpoint_url)
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// Where a shard is read from next.
enum ShardPosition {
    Iterator(String),
    /// Re-read from this record (a reported failure), after `retries` retries so far.
    Retry {
        sequence_number: String,
        retries: i64,
    },
    /// The shard is closed and fully read.
    Done,
}

struct ShardReader {
    client: aws_sdk_dynamodbstreams::Client,
    http: reqwest::Client,
    endpoint_url: String,
    stream_arn: String,
    mapping: StreamMapping,
    handler: StreamHandler,
    retry_delay: Duration,
    shards: BTreeMap<String, ShardPosition>,
}

impl ShardReader {
    async fn poll_once(&mut self) -> Result<(), BoxError> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        let shard_ids: Vec<String> = description
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for shard_id in shard_ids {
            if !self.shards.contains_key(&shard_id) {
                let start = if self.shards.is_empty() {
                    ShardIteratorType::from(self.mapping.starting_position.as_str())
                } else {
                    // Shards that appear later hold only records written after the start.
                    ShardIteratorType::TrimHorizon
                };
                let iterator = self.iterator(&shard_id, start, None).await?;
                self.shards.insert(shard_id.clone(), iterator);
            }
            self.read_shard(&shard_id).await?;
        }
        Ok(())
    }

    async fn iterator(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence_number: Option<String>,
    ) -> Result<ShardPosition, BoxError> {
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence_number)
            .send()
            .await?;
        Ok(match out.shard_iterator {
            Some(iterator) => ShardPosition::Iterator(iterator),
            None => ShardPosition::Done,
        })
    }

    /// Reads a shard until it has nothing new, handing each batch to the function.
    async fn read_shard(&mut self, shard_id: &str) -> Result<(), BoxError> {
        loop {
            let (iterator, retries) = match self.shards.get(shard_id) {
                Some(ShardPosition::Iterator(iterator)) => (iterator.clone(), 0),
                Some(ShardPosition::Retry {
                    sequence_number,
                    retries,
                }) => {
                    let (sequence_number, retries) = (sequence_number.clone(), *retries);
                    match self
                        .iterator(
                            shard_id,
                            ShardIteratorType::AtSequenceNumber,
                            Some(sequence_number),
                        )
                        .await?
                    {
                        ShardPosition::Iterator(iterator) => (iterator, retries),
                        other => {
                            self.shards.insert(shard_id.to_owned(), other);
                            return Ok(());
                        }
                    }
                }
                Some(ShardPosition::Done) | None => return Ok(()),
            };
            let page = self.get_records(&iterator).await?;
            let next = match page.get("NextShardIterator").and_then(Value::as_str) {
                Some(next) => ShardPosition::Iterator(next.to_owned()),
                None => ShardPosition::Done,
            };
            let raw = match page.get("Records") {
                Some(Value::Array(records)) => records.clone(),
                _ => Vec::new(),
            };
            if raw.is_empty() {
                // Nothing new yet (or the shard is done): poll again later.
                self.shards.insert(shard_id.to_owned(), next);
                return Ok(());
            }
            let records: Vec<Value> = raw
                .into_iter()
                .map(|mut record| {
                    repair_images(&mut record);
                    record["eventSourceARN"] = json!(self.stream_arn);
                    record
                })
                .filter(|r| self.delivered(r))
                .collect();
            if records.is_empty() {
                self.shards.insert(shard_id.to_owned(), next);
                continue;
            }
            // The filter runs before batching, as on AWS: `BatchSize` counts delivered records.
            let mut failed = None;
            for batch in records.chunks(self.mapping.batch_size.max(1)) {
                let event: Event = serde_json::from_value(json!({ "Records": batch }))?;
                let response = (self.handler)(event).await;
                failed = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.clone())
                    .min_by(sequence_order)
                    .filter(|_| self.mapping.reports_batch_item_failures);
                if failed.is_some() {
                    break;
                }
            }
            let Some(sequence_number) = failed else {
                self.shards.insert(shard_id.to_owned(), next);
                continue;
            };
            let retries = retries + 1;
            let limit = self.mapping.maximum_retry_attempts;
            if limit >= 0 && retries > limit {
                tracing::error!(
                    shard_id,
                    sequence_number,
                    retries,
                    "stream batch failed every retry; given up (on AWS: the on-failure destination)"
                );
                self.shards.insert(shard_id.to_owned(), next);
                continue;
            }
            // Read again from the failed record (what follows it in the page comes again too).
            self.shards.insert(
                shard_id.to_owned(),
                ShardPosition::Retry {
                    sequence_number,
                    retries,
                },
            );
            // Backing off as Lambda does between retries of a stream batch, so that the retry
            // budget spans more than a passing hiccup of DynamoDB Local.
            let backoff = self.retry_delay * 2u32.pow(retries.clamp(0, 8) as u32);
            tokio::time::sleep(backoff.min(MAX_RETRY_DELAY)).await;
        }
    }

    /// GetRecords, raw: DynamoDB Local renders an empty map attribute as `{}`, which the SDK's
    /// deserializer rejects ("Union did not contain a valid variant"), and which would stall the
    /// shard at the first item with an empty `metadata`. The JSON is also what Lambda hands on.
    async fn get_records(&self, iterator: &str) -> Result<Value, BoxError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let body = json!({ "ShardIterator": iterator, "Limit": GET_RECORDS_LIMIT }).to_string();
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDBStreams_20120810.GetRecords"),
        ];
        let identity = local_credentials().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(LOCAL_REGION)
            .name("dynamodb")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint_url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut request = self.http.post(&self.endpoint_url).body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("GetRecords answered {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }

    fn delivered(&self, record: &Value) -> bool {
        self.mapping.filter_patterns.is_empty()
            || self
                .mapping
                .filter_patterns
                .iter()
                .any(|p| crate::event_filter::matches(p, record))
    }
}

/// Sequence numbers are decimal strings of growing length: compare as numbers.
fn sequence_order(a: &String, b: &String) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Repairs DynamoDB Local's rendering of an empty map attribute, `{}` instead of `{"M": {}}`, in a
/// record's images, so that the record is what DynamoDB Streams (and Lambda) would give.
fn repair_images(record: &mut Value) {
    for image in ["Keys", "NewImage", "OldImage"] {
        if let Some(Value::Object(attributes)) =
            record.get_mut("dynamodb").and_then(|d| d.get_mut(image))
        {
            attributes.values_mut().for_each(repair_attribute);
        }
    }
}

fn repair_attribute(value: &mut Value) {
    match value {
        Value::Object(typed) if typed.is_empty() => *value = json!({ "M": {} }),
        Value::Object(typed) => {
            if let Some(Value::Object(map)) = typed.get_mut("M") {
                map.values_mut().for_each(repair_attribute);
            }
            if let Some(Value::Array(list)) = typed.get_mut("L") {
                list.iter_mut().for_each(repair_attribute);
            }
        }
        _ => {}
    }
}
