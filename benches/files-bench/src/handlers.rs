//! Warm requests: the handler's own work, in-process, against the local stack.
//!
//! Each iteration does what one warm Lambda invocation does in the process: deserialize the API
//! Gateway event (`lambda_http`'s conversion), run the route's `handle` (the very function the
//! Lambda binary runs, with an `App` like the one built at cold start), and serialize the
//! response event. The SDK clients carry an interceptor that notes each attempt's transmit phase
//! (request sent → response head back, `read_before_transmit` → `read_after_transmit`): that is the
//! round trip to DynamoDB Local or the S3 endpoint. The handler's own work is its wall time minus
//! the union of those intervals, so it still includes everything the SDK does in the process
//! (serializing, signing, reading and parsing the response body) and every presign (a local
//! computation that never transmits).
//!
//! The cases run interleaved, one iteration of each in turn, after a warm-up.

use crate::args::Args;
use crate::client::{api_client, seed_file, small_jpeg};
use crate::stats::{Samples, Table, ms};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use lambda_http::{Body, Request, Response};
use local_stack::dynamodb::{
    DynamoDbLocalOptions, LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY,
    workspace_root,
};
use local_stack::stack::{DynamoDbSource, LocalStack, StackOptions};
use serde_json::{Value, json};
use shared::App;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: files-bench handlers [--iterations 2000] [--warmup 200]
Starts its own local stack (DynamoDB Local, S3 endpoint) and runs get-file and create-upload in-process.";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Handle = fn(Arc<App>, Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Notes the transmit phase of every SDK attempt, in every client it is given to.
#[derive(Debug, Clone, Default)]
struct WireTimer {
    intervals: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

#[derive(Debug, Clone)]
struct TransmitStarted(Instant);

impl Storable for TransmitStarted {
    type Storer = StoreReplace<Self>;
}

impl Intercept for WireTimer {
    fn name(&self) -> &'static str {
        "WireTimer"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Presigning stops right after this hook: only a pair with `read_after_transmit` counts.
        cfg.interceptor_state()
            .store_put(TransmitStarted(Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(TransmitStarted(started)) = cfg.load::<TransmitStarted>() {
            let mut intervals = self.intervals.lock().expect("not poisoned");
            intervals.push((*started, Instant::now()));
        }
        Ok(())
    }
}

impl WireTimer {
    /// The time covered by at least one transmit since the last call, and how many there were.
    fn take(&self) -> (Duration, usize) {
        let mut intervals = std::mem::take(&mut *self.intervals.lock().expect("not poisoned"));
        intervals.sort_unstable();
        let count = intervals.len();
        let mut covered = Duration::ZERO;
        let mut current: Option<(Instant, Instant)> = None;
        for (start, end) in intervals {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    covered += e - s;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = current {
            covered += e - s;
        }
        (covered, count)
    }
}

struct Case {
    name: String,
    handle: Handle,
    expected_status: u16,
    /// The event for iteration `i` (outside the timed part).
    event: Box<dyn Fn(usize) -> String>,
}

#[derive(Default)]
struct CaseSamples {
    own: Vec<Duration>,
    wire: Vec<Duration>,
    adapter: Vec<Duration>,
    total: Vec<Duration>,
    calls: usize,
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &[], USAGE)?;
    let iterations: usize = args.number("iterations", 2000)?;
    let warmup: usize = args.number("warmup", 200)?;
    // As in a Lambda binary (`#[tokio::main]`): the multi-threaded runtime.
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(run(iterations, warmup))
}

async fn run(iterations: usize, warmup: usize) -> Result<(), String> {
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let options = StackOptions::local(
        0,
        0,
        temp.path().join("s3"),
        DynamoDbSource::Start(DynamoDbLocalOptions {
            port: 0,
            db_path: None,
        }),
    );
    let stack = LocalStack::start(options)
        .await
        .map_err(|e| format!("starting the local stack: {e}"))?;
    let result = measure(&stack, iterations, warmup).await;
    stack.shutdown().await;
    result
}

async fn measure(stack: &LocalStack, iterations: usize, warmup: usize) -> Result<(), String> {
    let tenant = "bench";
    let api = api_client(&stack.base_url(), tenant)?;
    let text_id = seed_file(
        &api,
        "bench.txt",
        b"hello, files\n".to_vec(),
        "text/plain",
        false,
    )
    .await?;
    let jpeg_id = seed_file(&api, "bench.jpg", small_jpeg(640, 480), "image/jpeg", true).await?;

    let timer = WireTimer::default();
    let app = Arc::new(App::with_clients(
        stack.app.config.clone(),
        dynamodb_client(&stack.dynamodb_endpoint, &timer),
        s3_client(&stack.s3.endpoint_url(), &timer),
    ));

    let get_event = fixture("get-file", tenant)?;
    let create_event = fixture("create-upload", tenant)?;
    let get = |file_id: String| -> Box<dyn Fn(usize) -> String> {
        let mut event = get_event.clone();
        let path = format!("/v1/files/{file_id}");
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["pathParameters"]["file_id"] = json!(file_id);
        let text = event.to_string();
        Box::new(move |_| text.clone())
    };
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let cases = [
        Case {
            name: "get-file: ready text file (1 presigned GET)".into(),
            handle: |app, req| Box::pin(get_file::handle(app, req)),
            expected_status: 200,
            event: get(text_id),
        },
        Case {
            name: "get-file: ready JPEG (1 + 3 thumbnail presigned GETs)".into(),
            handle: |app, req| Box::pin(get_file::handle(app, req)),
            expected_status: 200,
            event: get(jpeg_id),
        },
        Case {
            name: "create-upload: new file, single presigned PUT".into(),
            handle: |app, req| Box::pin(create_upload::handle(app, req)),
            expected_status: 201,
            event: Box::new(move |i| {
                let mut event = create_event.clone();
                let content = b"hello, files\n";
                let body =
                    crate::client::declaration(&format!("{run_id}-{i}.txt"), content, "text/plain");
                event["body"] = json!(serde_json::to_string(&body).expect("a request is JSON"));
                event.to_string()
            }),
        },
    ];

    let mut samples: Vec<CaseSamples> = cases.iter().map(|_| CaseSamples::default()).collect();
    for i in 0..warmup + iterations {
        for (case, samples) in cases.iter().zip(samples.iter_mut()) {
            let event = (case.event)(i);
            let _ = timer.take();
            let started = Instant::now();
            let request = lambda_http::request::from_str(&event).map_err(|e| e.to_string())?;
            let decoded = Instant::now();
            let response = (case.handle)(app.clone(), request).await;
            let handled = Instant::now();
            let status = response.status().as_u16();
            let encoded = encode_response(response)?;
            let finished = Instant::now();
            if status != case.expected_status {
                return Err(format!("{}: status {status}: {encoded}", case.name));
            }
            let (wire, calls) = timer.take();
            if i >= warmup {
                let handler = handled - decoded;
                samples.own.push(handler.saturating_sub(wire));
                samples.wire.push(wire);
                samples
                    .adapter
                    .push((decoded - started) + (finished - handled));
                samples.total.push(finished - started);
                samples.calls = calls;
            }
        }
    }

    println!(
        "warm requests, in-process against the local stack, {iterations} iterations each (ms)"
    );
    println!(
        "own = handler wall time minus SDK transmit time; adapter = event JSON -> Request and Response -> event JSON"
    );
    let mut table = Table::new(&[
        "case",
        "own p50",
        "own p90",
        "own p99",
        "adapter p50",
        "wire p50",
        "SDK round trips",
        "total p50",
    ]);
    for (case, s) in cases.iter().zip(samples) {
        let own = Samples::new(s.own);
        let adapter = Samples::new(s.adapter);
        table.row(vec![
            case.name.clone(),
            ms(own.median()),
            ms(own.percentile(90.0)),
            ms(own.percentile(99.0)),
            ms(adapter.median()),
            ms(Samples::new(s.wire).median()),
            s.calls.to_string(),
            ms(Samples::new(s.total).median()),
        ]);
    }
    table.print();
    Ok(())
}

/// `events/<name>.json` with the caller's tenant in the JWT claims.
fn fixture(name: &str, tenant: &str) -> Result<Value, String> {
    let path = workspace_root().join("events").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut event: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    claims["tenant_id"] = json!(tenant);
    claims["sub"] = json!("bench");
    Ok(event)
}

/// The response event `lambda_http` sends back for an HTTP API (payload 2.0) request.
fn encode_response(response: Response<Body>) -> Result<String, String> {
    let (parts, body) = response.into_parts();
    let mut event = ApiGatewayV2httpResponse::default();
    event.status_code = i64::from(parts.status.as_u16());
    event.is_base64_encoded = matches!(body, Body::Binary(_));
    event.body = match body {
        Body::Empty => None,
        other => Some(other),
    };
    event.headers = parts.headers;
    serde_json::to_string(&event).map_err(|e| e.to_string())
}

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        LOCAL_ACCESS_KEY_ID,
        LOCAL_SECRET_ACCESS_KEY,
        None,
        None,
        "files-bench",
    )
}

fn dynamodb_config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(LOCAL_REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
}

/// A DynamoDB client for DynamoDB Local with the local stack's credentials.
pub fn local_dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(endpoint).build())
}

fn dynamodb_client(endpoint: &str, timer: &WireTimer) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        dynamodb_config(endpoint).interceptor(timer.clone()).build(),
    )
}

fn s3_client(endpoint: &str, timer: &WireTimer) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(LOCAL_REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .interceptor(timer.clone())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
