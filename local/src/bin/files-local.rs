//! `files-local`: the whole Files API on this machine. Run through `scripts/run`, which installs
//! what it needs first.
//!
//! Usage: files-local [--port 3000] [--s3-port 4566] [--dynamodb-port 8000] [--data-dir DIR]
//!   --data-dir DIR   keep DynamoDB and S3 data in DIR across restarts (default: in memory and a
//!                    temporary folder, both gone at exit)
//! JWT settings: FILES_JWT_SECRET, FILES_JWT_ISSUER, FILES_JWT_AUDIENCE (see `mint-token`).

use local_stack::dynamodb::DynamoDbLocalOptions;
use local_stack::stack::{DynamoDbSource, LocalStack, StackOptions};
use std::path::PathBuf;

struct Args {
    port: u16,
    s3_port: u16,
    dynamodb_port: u16,
    data_dir: Option<PathBuf>,
}

const USAGE: &str =
    "usage: files-local [--port 3000] [--s3-port 4566] [--dynamodb-port 8000] [--data-dir DIR]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 3000,
        s3_port: 4566,
        dynamodb_port: 8000,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let port = |v: String| v.parse::<u16>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--port" => args.port = port(value()?)?,
            "--s3-port" => args.s3_port = port(value()?)?,
            "--dynamodb-port" => args.dynamodb_port = port(value()?)?,
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };

    // Without --data-dir everything is thrown away at exit: DynamoDB in memory, S3 in a temp folder.
    let temp = tempfile::tempdir()?;
    let (s3_root, db_path) = match &args.data_dir {
        Some(dir) => (dir.join("s3"), Some(dir.join("dynamodb"))),
        None => (temp.path().join("s3"), None),
    };
    let options = StackOptions::local(
        args.port,
        args.s3_port,
        s3_root,
        DynamoDbSource::Start(DynamoDbLocalOptions {
            port: args.dynamodb_port,
            db_path,
        }),
    );
    let tenant_claim = options.config.tenant_claim.clone();
    let stack = LocalStack::start(options).await?;

    println!("Files API listening on {}", stack.base_url());
    println!("  S3 endpoint:       {}", stack.s3.endpoint_url());
    println!("  DynamoDB endpoint: {}", stack.dynamodb_endpoint);
    println!("  tenant claim:      {tenant_claim}");
    println!(
        "  a token:           cargo run -q -p local-stack --bin mint-token -- --tenant acme --sub alice"
    );
    println!("Press Ctrl-C to stop.");

    // Ctrl-C in a terminal, SIGTERM from a supervisor: both stop DynamoDB Local's java process too.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("Stopping...");
    stack.shutdown().await;
    drop(temp);
    Ok(())
}
