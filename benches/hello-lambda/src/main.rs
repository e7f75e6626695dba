//! The cold-start anchor of `files-bench cold-start`: a `lambda_runtime` hello world (as in
//! maxday/lambda-perf), built with `cargo lambda build --release` like the functions, so that the
//! difference between the two is what the functions add at init (tracing, config, SDK clients).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn hello(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "statusCode": 200, "body": "hello" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
