//! The Lambda entry points, so that every function's `main` is one line.

use crate::app::App;
use aws_lambda_events::s3::S3Event;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use std::future::Future;
use std::sync::Arc;

pub type LambdaError = lambda_runtime::Error;

/// Runs an HTTP API route handler: logs as JSON, builds the [`App`] once, then serves events.
pub async fn run_http<F, Fut>(handler: F) -> Result<(), LambdaError>
where
    F: Fn(Arc<App>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    lambda_http::tracing::init_default_subscriber();
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
    lambda_http::tracing::init_default_subscriber();
    let app = Arc::new(App::from_env().await?);
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<S3Event>| {
            let (app, handler) = (app.clone(), handler.clone());
            async move {
                handler(app, event.payload)
                    .await
                    .map_err(|e| -> LambdaError { Box::new(e) })
            }
        },
    ))
    .await
}
