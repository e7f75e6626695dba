//! The Lambda entry points, so that every function's `main` is one line.

use crate::app::App;
use aws_lambda_events::s3::S3Event;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use std::future::Future;
use std::sync::Arc;

pub type LambdaError = lambda_runtime::Error;

/// Runs an HTTP API route handler: sets up logging, builds the [`App`] once, then serves events.
pub async fn run_http<F, Fut>(handler: F) -> Result<(), LambdaError>
where
    F: Fn(Arc<App>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    init_logging();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let (app, handler) = (app.clone(), handler.clone());
        async move { Ok::<_, std::convert::Infallible>(handler(app, req).await) }
    }))
    .await
}

/// Runs an S3-event handler. An `Err` fails the invocation so that Lambda retries it.
pub async fn run_s3_events<F, Fut, E>(handler: F) -> Result<(), LambdaError>
where
    F: Fn(Arc<App>, S3Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    run_events(handler).await
}

/// Runs the handler of an asynchronously invoked function whose payload is a `T` (an S3 event,
/// a destination's invocation record). An `Err` fails the invocation so that Lambda retries it.
pub async fn run_events<T, F, Fut, E>(handler: F) -> Result<(), LambdaError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(Arc<App>, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    init_logging();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<T>| {
        let (app, handler) = (app.clone(), handler.clone());
        async move {
            handler(app, event.payload)
                .await
                .map_err(|e| -> LambdaError { Box::new(e) })
        }
    }))
    .await
}

/// How long before the invocation's deadline a stream batch handler stops starting work: time for
/// the step under way and the answer.
pub const STREAM_SAFETY_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the handler of a DynamoDB stream event source mapping. The handler gets the instant to
/// stop starting work (the invocation's deadline less [`STREAM_SAFETY_MARGIN`]) and answers which
/// records failed (`ReportBatchItemFailures`); it never fails the whole batch.
pub async fn run_stream_batches<F, Fut>(handler: F) -> Result<(), LambdaError>
where
    F: Fn(Arc<App>, aws_lambda_events::dynamodb::Event, tokio::time::Instant) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = aws_lambda_events::streams::DynamoDbEventResponse> + Send + 'static,
{
    init_logging();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| {
            let (app, handler) = (app.clone(), handler.clone());
            async move {
                let deadline = stop_starting_at(&event.context);
                Ok::<_, LambdaError>(handler(app, event.payload, deadline).await)
            }
        },
    ))
    .await
}

/// The invocation's deadline (epoch milliseconds in the context) as an `Instant`, less the margin.
fn stop_starting_at(context: &lambda_runtime::Context) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let left = std::time::Duration::from_millis(context.deadline.saturating_sub(now_ms));
    tokio::time::Instant::now() + left.saturating_sub(STREAM_SAFETY_MARGIN)
}

/// Logs to stdout as Lambda's advanced logging controls ask: JSON lines when the function's
/// `LoggingConfig.LogFormat` is `JSON` (`AWS_LAMBDA_LOG_FORMAT`), the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else from `RUST_LOG`, else INFO.
///
/// Not `lambda_http::tracing::init_default_subscriber`: it filters with `EnvFilter`, whose regex
/// engine is about 90 KB of every zipped function (BENCHMARKS.md, "Artifact sizes"). `RUST_LOG`
/// here takes `level` and `target=level` directives, comma-separated (`info,aws_smithy_runtime=debug`),
/// which is what a Lambda's log settings use; span and field filters are not supported.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let filter = log_filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let format = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE);
    // An error means a subscriber is already set (a second call): the first one stays.
    let _ = if json {
        tracing::subscriber::set_global_default(format.json().finish().with(filter))
    } else {
        tracing::subscriber::set_global_default(format.finish().with(filter))
    };
}

/// The log filter from Lambda's log level (`TRACE`..`FATAL`, which wins) or `RUST_LOG`
/// directives; INFO when neither is set or parses.
fn log_filter(
    lambda_level: Option<&str>,
    rust_log: Option<&str>,
) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    if let Some(level) = lambda_level {
        // Lambda's levels are TRACE, DEBUG, INFO, WARN, ERROR, FATAL; tracing has no FATAL.
        let level = if level.eq_ignore_ascii_case("fatal") {
            "error"
        } else {
            level
        };
        if let Ok(level) = level.parse::<LevelFilter>() {
            return Targets::new().with_default(level);
        }
    }
    rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn lambda_log_level_wins_over_rust_log() {
        let filter = log_filter(Some("DEBUG"), Some("error"));
        assert!(filter.would_enable("shared", &Level::DEBUG));
        assert!(!filter.would_enable("shared", &Level::TRACE));
        let fatal = log_filter(Some("FATAL"), None);
        assert!(fatal.would_enable("shared", &Level::ERROR));
        assert!(!fatal.would_enable("shared", &Level::WARN));
    }

    #[test]
    fn rust_log_directives_set_levels_per_target() {
        let filter = log_filter(None, Some("warn,aws_smithy_runtime=debug"));
        assert!(filter.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(!filter.would_enable("shared::store", &Level::INFO));
        assert!(filter.would_enable("shared::store", &Level::WARN));
    }

    #[test]
    fn info_when_nothing_usable_is_set() {
        for (lambda, rust_log) in [(None, None), (Some("loud"), None), (None, Some("a=b=c"))] {
            let filter = log_filter(lambda, rust_log);
            assert!(
                filter.would_enable("shared", &Level::INFO),
                "{lambda:?} {rust_log:?}"
            );
            assert!(
                !filter.would_enable("shared", &Level::DEBUG),
                "{lambda:?} {rust_log:?}"
            );
        }
    }
}
