#[tokio::main]
async fn main() -> Result<(), shared::lambda::LambdaError> {
    shared::lambda::run_stream_batches(finish_deletes::handle).await
}
