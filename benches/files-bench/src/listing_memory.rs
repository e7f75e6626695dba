//! Listing memory: the peak resident memory of `list-files` answering the worst listings the API
//! allows, one process per request, as Lambda reports it ("Max Memory Used").
//!
//! A table on its own DynamoDB Local is seeded with `--files` files of the largest size the API
//! takes (every text field at its limit, in four-byte characters where text is free; ready, with
//! thumbnails, so that each item carries every presigned URL), written through the store's own
//! `create_file_with_upload`. Each `--function` binary is then spawned once per measurement
//! against a fake Lambda Runtime API that hands it one API Gateway HTTP API (payload 2.0) event;
//! when its response arrives, the process's `VmHWM` (peak resident set, what Lambda reports) is
//! read from /proc and the process killed. The init-only row is a process that was asked for
//! nothing: the floor every request starts from. `GET /v1/files?limit=100` is the anchor, a page
//! read straight from an index; the others sort or count every candidate in memory.
//!
//! Everything runs round after round (each request, each binary), so that the machine's load falls
//! on all alike.

use crate::args::Args;
use crate::stats::Table;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use local_stack::dynamodb::{
    DynamoDbLocal, DynamoDbLocalOptions, FILES_TABLE_LOGICAL_ID, LOCAL_ACCESS_KEY_ID, LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY, TableDefinition, create_table, local_client, template_path,
    workspace_root,
};
use serde_json::{Value, json};
use shared::domain::actor::{MAX_EMAIL_CHARS, MAX_NAME_CHARS as MAX_ACTOR_NAME_CHARS};
use shared::domain::validate::{
    MAX_CONTENT_TYPE_LEN, MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS, MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS, MAX_PARENT_CHARS, MAX_TAG_CHARS, MAX_TAGS,
};
use shared::domain::{
    Actor, FileRecord, FileStatus, PrincipalType, THUMBNAIL_SIZES, Thumbnails, UploadKind,
    UploadSession, UploadStatus, ids, time,
};
use shared::keys;
use shared::store::FileStore;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USAGE: &str = "\
usage: files-bench listing-memory --function NAME=PATH [--function NAME=PATH ...]
                                  [--files 5000] [--runs 3] [--memory-size 256] [--in-flight 16]
  --function     a list-files binary (e.g. target/lambda/list-files/bootstrap); repeat to measure
                 several builds side by side on the same data
  --files        files seeded (default shared::listing::MAX_ITEMS_READ - 1, the most a sorted or
                 counted listing answers)
  --runs         processes per request and binary (median and max are reported)
  --memory-size  the function's MemorySize in MB (infra/template.yaml), for the last column
  --in-flight    seeding transactions in flight";

const TABLE: &str = "files-bench-listing";
const TENANT: &str = "bench";
/// The OIDC `sub` may be up to 255 ASCII characters (OpenID Connect Core 1.0, 2); it is kept whole.
const SUB_CHARS: usize = 255;
/// Lambda's temporary credentials carry a session token of about a kilobyte, which every presigned
/// URL repeats: a short fake token would make each item a few kilobytes lighter than on AWS.
const SESSION_TOKEN_CHARS: usize = 1024;
/// A process that has not answered by then is stuck. Far beyond list-files' own timeout (15 s):
/// DynamoDB Local on a busy machine serves the 5,000 largest files (65 MB, 1 MB per Query) in a
/// minute or more, where DynamoDB takes well under a second.
const WAIT: Duration = Duration::from_secs(600);

/// The requests measured: the anchor first.
const QUERIES: [&str; 4] = [
    "limit=100",
    "order_by=size&limit=100",
    "count_only=true",
    "order_by=name&limit=100&include=thumbnails",
];

struct Candidate {
    name: String,
    program: PathBuf,
}

/// What the fake Runtime API saw, stamped when the request arrived: a message from a process
/// killed before the current one started is stale, and dropped by its time.
enum Seen {
    /// `next` with no event to give: init done (or the one event answered).
    Waiting(Instant),
    Response(Instant, Bytes),
    Error(Instant, String),
}

impl Seen {
    fn at(&self) -> Instant {
        match self {
            Seen::Waiting(at) | Seen::Response(at, _) | Seen::Error(at, _) => *at,
        }
    }
}

/// One measurement: the process's peak RSS and what it answered.
struct Measured {
    peak_kib: u64,
    body_bytes: usize,
    items: Option<usize>,
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &[], USAGE)?;
    // 4,999: the count of the figures in BENCHMARKS.md, measured when exactly MAX_ITEMS_READ files
    // were still refused (`query_too_broad`; `listing::ReadBudget` serves them since).
    let files: usize = args.number("files", shared::listing::MAX_ITEMS_READ - 1)?;
    let runs: usize = args.number("runs", 3)?;
    let memory_size: u64 = args.number("memory-size", 256)?;
    let in_flight: usize = args.number("in-flight", 16)?;
    let mut candidates = Vec::new();
    for (name, program) in args.programs("function")? {
        candidates.push(Candidate { name, program });
    }
    if candidates.is_empty() || runs == 0 || in_flight == 0 {
        return Err(format!("nothing to measure\n{USAGE}"));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(run(&candidates, files, runs, memory_size, in_flight))
}

async fn run(
    candidates: &[Candidate],
    files: usize,
    runs: usize,
    memory_size: u64,
    in_flight: usize,
) -> Result<(), String> {
    let dynamodb = DynamoDbLocal::start(DynamoDbLocalOptions {
        port: 0,
        db_path: None,
    })
    .await
    .map_err(|e| format!("starting DynamoDB Local: {e}"))?;
    let result = measure(
        &dynamodb.endpoint_url(),
        candidates,
        files,
        runs,
        memory_size,
        in_flight,
    )
    .await;
    dynamodb.shutdown().await;
    result
}

async fn measure(
    endpoint: &str,
    candidates: &[Candidate],
    files: usize,
    runs: usize,
    memory_size: u64,
    in_flight: usize,
) -> Result<(), String> {
    let client = local_client(endpoint).await;
    let definition = TableDefinition::from_template_file(&template_path(), FILES_TABLE_LOGICAL_ID)
        .map_err(|e| e.to_string())?;
    create_table(&client, TABLE, &definition)
        .await
        .map_err(|e| e.to_string())?;
    let store = Arc::new(FileStore::new(client, TABLE));
    let started = Instant::now();
    let record_bytes = seed(&store, files, in_flight).await?;
    println!(
        "seeded {files} files of {record_bytes} bytes of record JSON each (every limit reached) in {:.1} s, \
         {in_flight} transactions in flight, DynamoDB Local in memory",
        started.elapsed().as_secs_f64()
    );

    let event_slot: Arc<Mutex<Option<String>>> = Arc::default();
    let (port, mut seen) = fake_runtime_api(event_slot.clone())
        .await
        .map_err(|e| e.to_string())?;
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let template = fixture()?;
    // `None`: init only, the process is asked for nothing.
    let requests: Vec<Option<&str>> = std::iter::once(None)
        .chain(QUERIES.iter().map(|q| Some(*q)))
        .collect();
    let mut results: Vec<Vec<Vec<Measured>>> = requests
        .iter()
        .map(|_| candidates.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..runs {
        for (r, request) in requests.iter().enumerate() {
            for (c, candidate) in candidates.iter().enumerate() {
                let event = request.map(|q| event_for(&template, q));
                let asked = event.is_some();
                *event_slot.lock().expect("not poisoned") = event;
                let log = logs.path().join(format!("{c}.log"));
                let measured = spawn_once(
                    candidate,
                    asked,
                    port,
                    endpoint,
                    memory_size,
                    &log,
                    &mut seen,
                )
                .await
                .map_err(|e| format!("{} {}: {e}", candidate.name, label(*request)))?;
                results[r][c].push(measured);
            }
        }
    }

    println!(
        "list-files peak resident memory (VmHWM, what Lambda reports as Max Memory Used), one process \
         per request, {runs} runs each; MiB; MemorySize {memory_size} MB"
    );
    let mut table = Table::new(&[
        "request",
        "binary",
        "runs",
        "peak p50",
        "peak max",
        "max - init p50",
        "max / MemorySize",
        "body bytes",
        "items",
    ]);
    for (r, request) in requests.iter().enumerate() {
        for (c, candidate) in candidates.iter().enumerate() {
            let samples = &results[r][c];
            let mut peaks: Vec<u64> = samples.iter().map(|m| m.peak_kib).collect();
            peaks.sort_unstable();
            let mut floor: Vec<u64> = results[0][c].iter().map(|m| m.peak_kib).collect();
            floor.sort_unstable();
            let (p50, max, floor_p50) = (median(&peaks), peaks[peaks.len() - 1], median(&floor));
            let last = &samples[samples.len() - 1];
            table.row(vec![
                label(*request),
                candidate.name.clone(),
                samples.len().to_string(),
                mib(p50),
                mib(max),
                if request.is_some() {
                    mib(max.saturating_sub(floor_p50))
                } else {
                    "-".into()
                },
                format!("{:.0} %", 100.0 * max as f64 / 1024.0 / memory_size as f64),
                if request.is_some() {
                    last.body_bytes.to_string()
                } else {
                    "-".into()
                },
                last.items.map_or("-".into(), |n| n.to_string()),
            ]);
        }
    }
    table.print();
    Ok(())
}

fn label(request: Option<&str>) -> String {
    match request {
        None => "init only (asked for nothing)".into(),
        Some("limit=100") => "GET /v1/files?limit=100 (anchor: one index range)".into(),
        Some(q) => format!("GET /v1/files?{q}"),
    }
}

fn median(sorted: &[u64]) -> u64 {
    sorted[(sorted.len() - 1) / 2]
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Seeds `files` files of the largest size the API takes, `in_flight` transactions at a time;
/// returns the size of one record's JSON.
async fn seed(store: &Arc<FileStore>, files: usize, in_flight: usize) -> Result<usize, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (store, next) = (store.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<(), String>(());
                }
                let (file, session) = largest_file(i);
                store
                    .create_file_with_upload(&file, &session)
                    .await
                    .map_err(|e| format!("seeding file {i}: {e:?}"))?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let (file, _) = largest_file(0);
    Ok(serde_json::to_vec(&file).map_err(|e| e.to_string())?.len())
}

/// File `i`: ready, with thumbnails, every field at its limit (validate.rs, actor.rs). Names differ
/// by their first characters (a name is unique within its parent); sizes differ so that
/// `order_by=size` has something to sort.
fn largest_file(i: usize) -> (FileRecord, UploadSession) {
    let wide = |c: char, n: usize| c.to_string().repeat(n);
    let prefix = format!("{i:05}");
    let name = format!("{prefix}{}", wide('😀', MAX_NAME_CHARS - prefix.len()));
    let tags = (0..MAX_TAGS)
        .map(|n| format!("{n:02}{}", wide('🏷', MAX_TAG_CHARS - 2)))
        .collect();
    let metadata = (0..MAX_METADATA_KEYS)
        .map(|k| {
            (
                format!("{k}{}", "k".repeat(MAX_METADATA_KEY_CHARS - 1)),
                wide('😀', MAX_METADATA_VALUE_CHARS),
            )
        })
        .collect();
    // Parameters are allowed and signed into every download URL.
    let content_type = format!("image/jpeg; x={}", "a".repeat(MAX_CONTENT_TYPE_LEN - 14));
    let domain = format!("{}.example", "d".repeat(MAX_EMAIL_CHARS - 64 - 1 - 8));
    let actor = Actor {
        id: "s".repeat(SUB_CHARS),
        principal_type: PrincipalType::User,
        name: Some(wide('😀', MAX_ACTOR_NAME_CHARS)),
        email: Some(format!("{}@{domain}", "e".repeat(64))),
    };
    let (file_id, upload_id) = (ids::new_id(), ids::new_id());
    let object_key = keys::object_key(TENANT, &upload_id);
    let now = time::now();
    let sha256 = Some("0".repeat(64));
    let file = FileRecord {
        tenant_id: TENANT.into(),
        id: file_id.clone(),
        name,
        content_type: content_type.clone(),
        size: 1 + (i as u64 * 7919) % 100_000,
        status: FileStatus::Ready,
        parent: Some(wide('📁', MAX_PARENT_CHARS)),
        tags,
        metadata,
        revision: 1,
        object_key: Some(object_key.clone()),
        sha256: sha256.clone(),
        rejection_reason: None,
        thumbnails: Thumbnails::Ready {
            sizes: THUMBNAIL_SIZES.to_vec(),
        },
        expires_at: None,
        trashed_at: None,
        created_at: now,
        created_by: actor.clone(),
        updated_at: now,
        updated_by: Some(actor.clone()),
        version: 3,
    };
    let session = UploadSession {
        tenant_id: TENANT.into(),
        upload_id,
        file_id,
        object_key,
        declared_size: file.size,
        content_type,
        sha256,
        status: UploadStatus::Completed,
        kind: UploadKind::Single,
        creates_file: true,
        base_revision: None,
        rejection_reason: None,
        revision: Some(1),
        created_by: actor,
        created_at: now,
        expires_at: time::plus(now, Duration::from_secs(3600)),
    };
    (file, session)
}

/// `events/list-files.json` with a read-only token of the bench tenant.
fn fixture() -> Result<Value, String> {
    let path = workspace_root().join("events/list-files.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut event: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    claims["sub"] = json!("s".repeat(SUB_CHARS));
    claims["tenant_id"] = json!(TENANT);
    claims["scope"] = json!("files:read");
    Ok(event)
}

fn event_for(template: &Value, query: &str) -> String {
    let mut event = template.clone();
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = Value::Object(params);
    event.to_string()
}

async fn spawn_once(
    candidate: &Candidate,
    asked: bool,
    port: u16,
    dynamodb_endpoint: &str,
    memory_size: u64,
    log: &std::path::Path,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
) -> Result<Measured, String> {
    let log_file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut env = crate::cold_start::lambda_environment("list-files", port);
    let overrides = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint.to_string()),
        ("FILES_TABLE_NAME", TABLE.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_size.to_string()),
        // DynamoDB Local in memory keeps a table per access key and region.
        ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY.to_string()),
        ("AWS_REGION", LOCAL_REGION.to_string()),
        ("AWS_DEFAULT_REGION", LOCAL_REGION.to_string()),
        ("AWS_SESSION_TOKEN", "t".repeat(SESSION_TOKEN_CHARS)),
        ("RUST_LOG", "info".to_string()),
    ];
    env.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
    env.extend(overrides);
    // What earlier processes left in the channel (a second `next` after their answer).
    while seen.try_recv().is_ok() {}
    let started = Instant::now();
    let mut child = Command::new(&candidate.program)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("{}: {e}", candidate.program.display()))?;
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match seen.recv().await {
                None => return Err("the fake Runtime API stopped".to_string()),
                Some(message) if message.at() < started => continue,
                Some(Seen::Waiting(_)) if asked => continue,
                Some(Seen::Waiting(_)) => return Ok(None),
                Some(Seen::Response(_, body)) => return Ok(Some(body)),
                Some(Seen::Error(_, body)) => return Err(format!("reported an error: {body}")),
            }
        }
    })
    .await;
    // Read before the kill: the peak of everything the process did up to its answer.
    let peak_kib = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    let body = match outcome {
        Err(_) => return Err(format!("no answer within {WAIT:?}\n{}", log_text())),
        Ok(Err(e)) => return Err(format!("{e}\n{}", log_text())),
        Ok(Ok(body)) => body,
    };
    let peak_kib = peak_kib?;
    let Some(body) = body else {
        return Ok(Measured {
            peak_kib,
            body_bytes: 0,
            items: None,
        });
    };
    let (body_bytes, items) = read_answer(&body).map_err(|e| format!("{e}\n{}", log_text()))?;
    Ok(Measured {
        peak_kib,
        body_bytes,
        items,
    })
}

/// The API Gateway response event list-files posted: its body's size and item count (or count).
fn read_answer(event: &[u8]) -> Result<(usize, Option<usize>), String> {
    let event: Value = serde_json::from_slice(event).map_err(|e| format!("response event: {e}"))?;
    let status = event["statusCode"].as_i64().unwrap_or_default();
    let body = event["body"].as_str().unwrap_or_default();
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let answer: Value = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
    let items = match (&answer["items"], &answer["count"]) {
        (Value::Array(items), _) => Some(items.len()),
        (_, Value::Number(count)) => count.as_u64().map(|c| c as usize),
        _ => None,
    };
    Ok((body.len(), items))
}

/// `VmHWM` of /proc/<pid>/status, in KiB: the process's peak resident set.
fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// A Runtime API that hands out the event in `slot` (once) and collects the answer.
async fn fake_runtime_api(
    slot: Arc<Mutex<Option<String>>>,
) -> std::io::Result<(u16, mpsc::UnboundedReceiver<Seen>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, slot) = (tx.clone(), slot.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let at = Instant::now();
                    runtime_api(req, at, tx.clone(), slot.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((port, rx))
}

async fn runtime_api(
    req: Request<hyper::body::Incoming>,
    at: Instant,
    tx: mpsc::UnboundedSender<Seen>,
    slot: Arc<Mutex<Option<String>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path.ends_with("/runtime/invocation/next") {
        let event = slot.lock().expect("not poisoned").take();
        let Some(event) = event else {
            let _ = tx.send(Seen::Waiting(at));
            // Never answered: the process is killed once its memory is read.
            std::future::pending::<()>().await;
            unreachable!()
        };
        let deadline = std::time::SystemTime::now() + Duration::from_secs(15);
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let response = Response::builder()
            .header("lambda-runtime-aws-request-id", ids::new_id())
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:list-files",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0",
            )
            .body(Full::new(Bytes::from(event)))
            .expect("a valid response");
        return Ok(response);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path.ends_with("/response") {
        let _ = tx.send(Seen::Response(at, body));
    } else if path.ends_with("/error") {
        let _ = tx.send(Seen::Error(at, String::from_utf8_lossy(&body).into_owned()));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}
