#[tokio::main]
async fn main() -> Result<(), shared::lambda::LambdaError> {
    shared::lambda::run_s3_events(process_upload::handle).await
}
