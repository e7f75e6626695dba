//! Cold start: process start → the first `GET /2018-06-01/runtime/invocation/next`.
//!
//! A fake Lambda Runtime API listens on 127.0.0.1 and notes when each spawned process first asks for
//! an event: by then a function has read its configuration, set up logging and built its SDK
//! clients (`shared::lambda::run_http`), which is all the init a Lambda cold start runs in the
//! process (the Lambda service's own work, fetching and unpacking the code, comes before and is not
//! measured here). The request is never answered; the process is killed and the next one spawned.
//!
//! Every candidate runs once per round, round after round, so that the machine's load (shared by
//! other builds) falls on all of them alike; the first round warms the page cache and is dropped.

use crate::args::Args;
use crate::stats::{Samples, Table, ms};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USAGE: &str = "\
usage: files-bench cold-start [--runs 30] [--bootstrap NAME=PATH ...] [--python] [--node]
                              [--env KEY=VALUE ...]
  --bootstrap  a Lambda bootstrap binary (e.g. target/lambda/get-file/bootstrap, unzipped); repeat
  --python     add the Python anchor (benches/anchors/hello_runtime.py, a custom-runtime loop)
  --node       add the Node.js anchor (benches/anchors/hello_runtime.mjs)
  --env        an extra variable for every candidate (e.g. SSL_CERT_FILE=...); repeat
Each process gets a clean environment: what Lambda sets, what the functions need (table, bucket,
static credentials, endpoints on 127.0.0.1 that nothing needs to answer) and the --env values.";

/// What the fake Runtime API saw from the process under test.
enum Seen {
    Next(Instant),
    InitError(String),
}

struct Candidate {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &["python", "node"], USAGE)?;
    let runs: usize = args.number("runs", 30)?;
    let mut candidates = Vec::new();
    for (name, program) in args.programs("bootstrap")? {
        candidates.push(Candidate {
            name,
            program,
            args: vec![],
        });
    }
    let anchors = local_stack::dynamodb::workspace_root().join("benches/anchors");
    if args.switch("python") {
        candidates.push(Candidate {
            name: format!("python {} (anchor)", python_version()?),
            program: python_executable()?,
            args: vec![anchors.join("hello_runtime.py").display().to_string()],
        });
    }
    if args.switch("node") {
        candidates.push(Candidate {
            name: format!("node {} (anchor)", command_output("node", &["--version"])?),
            program: PathBuf::from("node"),
            args: vec![anchors.join("hello_runtime.mjs").display().to_string()],
        });
    }
    if candidates.is_empty() {
        return Err(format!("nothing to measure\n{USAGE}"));
    }
    let mut extra_env = Vec::new();
    for spec in args.all("env") {
        let (k, v) = spec
            .split_once('=')
            .ok_or_else(|| format!("--env {spec}: expected KEY=VALUE"))?;
        extra_env.push((k.to_string(), v.to_string()));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let samples = runtime.block_on(measure(&candidates, &extra_env, runs))?;

    println!(
        "cold start: process start -> first GET /runtime/invocation/next, {runs} runs each (ms)"
    );
    let mut table = Table::new(&["candidate", "runs", "min", "p50", "p90", "max"]);
    for (candidate, samples) in candidates.iter().zip(samples) {
        let s = Samples::new(samples);
        table.row(vec![
            candidate.name.clone(),
            s.len().to_string(),
            ms(s.min()),
            ms(s.median()),
            ms(s.percentile(90.0)),
            ms(s.max()),
        ]);
    }
    table.print();
    Ok(())
}

async fn measure(
    candidates: &[Candidate],
    extra_env: &[(String, String)],
    runs: usize,
) -> Result<Vec<Vec<Duration>>, String> {
    let (port, mut seen) = fake_runtime_api().await.map_err(|e| e.to_string())?;
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut samples = vec![Vec::with_capacity(runs); candidates.len()];
    // Round 0 warms the page cache (binaries, interpreters, certificate files) and is dropped.
    for round in 0..=runs {
        for (i, candidate) in candidates.iter().enumerate() {
            let log = logs.path().join(format!("{i}.log"));
            let elapsed = spawn_once(candidate, port, extra_env, &log, &mut seen).await?;
            if round > 0 {
                samples[i].push(elapsed);
            }
        }
    }
    Ok(samples)
}

async fn spawn_once(
    candidate: &Candidate,
    port: u16,
    extra_env: &[(String, String)],
    log: &std::path::Path,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
) -> Result<Duration, String> {
    let log_file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut command = Command::new(&candidate.program);
    command
        .args(&candidate.args)
        .env_clear()
        .envs(lambda_environment(&candidate.name, port))
        .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", candidate.program.display()))?;
    let outcome = tokio::time::timeout(Duration::from_secs(20), seen.recv()).await;
    let _ = child.kill();
    let _ = child.wait();
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    match outcome {
        Ok(Some(Seen::Next(at))) => Ok(at.duration_since(started)),
        Ok(Some(Seen::InitError(body))) => Err(format!(
            "{} reported an init error: {body}\n{}",
            candidate.name,
            log_text()
        )),
        Ok(None) => Err("the fake Runtime API stopped".into()),
        Err(_) => Err(format!(
            "{} did not ask for an event within 20 s\n{}",
            candidate.name,
            log_text()
        )),
    }
}

/// What the Lambda service sets for a function on provided.al2023, plus the Files API's settings.
/// The endpoints point at a closed port on 127.0.0.1: no request is made during init.
pub(crate) fn lambda_environment(function: &str, port: u16) -> Vec<(&'static str, String)> {
    let fixed = [
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", function.replace(' ', "-")),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]bench".into(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_rapid".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "local".into()),
        ("AWS_SECRET_ACCESS_KEY", "local-secret".into()),
        ("AWS_SESSION_TOKEN", "bench-session-token".into()),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9".into()),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9".into()),
        ("FILES_TABLE_NAME", "files-bench".into()),
        ("FILES_BUCKET_NAME", "files-bench".into()),
        (
            "FILES_CURSOR_SECRET",
            local_stack::stack::LOCAL_CURSOR_SECRET.into(),
        ),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".into()),
    ];
    fixed.into_iter().collect()
}

/// A Runtime API that answers nothing but notes the first `next` (and init errors).
async fn fake_runtime_api() -> std::io::Result<(u16, mpsc::UnboundedReceiver<Seen>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let at = Instant::now();
                    let tx = tx.clone();
                    async move { runtime_api(req, at, tx).await }
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
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path.ends_with("/runtime/invocation/next") {
        let _ = tx.send(Seen::Next(at));
        // Never answered: the process is killed once the time is noted.
        std::future::pending::<()>().await;
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if path.ends_with("/init/error") {
        let _ = tx.send(Seen::InitError(body));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

/// The interpreter itself, not a shim (pyenv's `python3` is a shell script that costs ~20 ms).
fn python_executable() -> Result<PathBuf, String> {
    command_output("python3", &["-c", "import sys; print(sys.executable)"]).map(PathBuf::from)
}

fn python_version() -> Result<String, String> {
    command_output(
        "python3",
        &["-c", "import platform; print(platform.python_version())"],
    )
}

fn command_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} {args:?} failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
