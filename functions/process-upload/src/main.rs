// The S3-event future nests deeply (finalize, thumbnails, SDK calls): the default limit is too low.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), shared::lambda::LambdaError> {
    shared::lambda::run_s3_events(process_upload::handle).await
}
