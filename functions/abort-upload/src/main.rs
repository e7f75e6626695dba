#[tokio::main]
async fn main() -> Result<(), shared::lambda::LambdaError> {
    shared::lambda::run_http(abort_upload::handle).await
}
