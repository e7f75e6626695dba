#[tokio::main]
async fn main() -> Result<(), shared::lambda::LambdaError> {
    shared::lambda::run_http(complete_upload::handle).await
}
