//! Finishes permanent deletes that no request finished: the DynamoDB stream of FilesTable, filtered
//! to file records that became `deleting_since` markers, invokes this function (infra/template.yaml,
//! `FinishDeletesFunction`).
//!
//! `DELETE /v1/files/{id}` marks the file and purges what fits in its 29 s; a file with thousands
//! of revisions answers 202 and leaves the rest. The marker write itself is the job: it is in the
//! stream the moment it is in the table, so no crash and no client that walks away can separate
//! "marked" from "scheduled". Each record runs `shared::purge::purge_file` until the file is gone.
//!
//! Failures use the stream's own retries: the first record that fails, or that this run's time
//! budget cannot finish, is reported as a batch item failure, and Lambda retries the batch from it
//! (`FunctionResponseTypes: ReportBatchItemFailures`). Records after it in the batch are retried
//! with it (a shard is processed in order). Purging is idempotent, so a record seen twice costs
//! one read. A record that keeps failing until its retries are spent goes to the failures queue.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::App;
use shared::keys::{FILE_SK, parse_file_pk};
use shared::purge::{Budget, Progress, purge_file};
use std::sync::Arc;
use tokio::time::Instant;

/// Handles one batch of stream records; never fails as a whole (see the module documentation).
pub async fn handle(app: Arc<App>, event: Event, deadline: Instant) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some((tenant, file_id)) = marked_file(record) else {
            // The filter sends only file markers; anything else is not for this function.
            continue;
        };
        match purge_file(&app, tenant, file_id, Budget::until(deadline)).await {
            Ok(Progress::Done) => {
                tracing::info!(tenant, file_id, "permanent delete finished");
                continue;
            }
            Ok(Progress::Unfinished { revisions_deleted }) => tracing::info!(
                tenant,
                file_id,
                revisions_deleted,
                "time budget spent; the stream retries the record"
            ),
            Err(error) => {
                tracing::warn!(tenant, file_id, %error, "purge failed; the stream retries the record")
            }
        }
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = record.change.sequence_number.clone();
        response.batch_item_failures.push(failure);
        // Lambda retries from the lowest failed sequence number: the rest waits for this one.
        break;
    }
    response
}

/// The tenant and file id of a record that made a file record a `deleting_since` marker.
fn marked_file(record: &EventRecord) -> Option<(&str, &str)> {
    let key_string = |name: &str| match record.change.keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    if key_string("sk")? != FILE_SK {
        return None;
    }
    parse_file_pk(key_string("pk")?)
}
