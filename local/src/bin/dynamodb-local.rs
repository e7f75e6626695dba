//! `dynamodb-local`: starts DynamoDB Local and keeps it up until SIGTERM or Ctrl-C, then stops it.
//! `scripts/test` runs one for the whole test run (starting one per test costs ~3 s each).
//!
//! Usage: dynamodb-local [--port 8000] [--data-dir DIR]; prints `ready <endpoint>` when it answers.

use local_stack::dynamodb::{DynamoDbLocal, DynamoDbLocalOptions};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut options = DynamoDbLocalOptions {
        port: 8000,
        db_path: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--port", Some(port)) => options.port = port.parse()?,
            ("--data-dir", Some(dir)) => options.db_path = Some(PathBuf::from(dir)),
            _ => {
                eprintln!("usage: dynamodb-local [--port 8000] [--data-dir DIR]");
                std::process::exit(2);
            }
        }
    }
    let dynamodb = DynamoDbLocal::start(options).await?;
    println!("ready {}", dynamodb.endpoint_url());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    dynamodb.shutdown().await;
    Ok(())
}
