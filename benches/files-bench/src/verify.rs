//! Verification throughput: how fast the S3-event function can SHA-256 an uploaded object, which
//! sizes `process-upload`'s timeout (a multipart upload with a declared `sha256` is hashed there,
//! never in a request handler).
//!
//! One object of `--mib` MiB is written to an in-process local S3 endpoint (the one the tests use:
//! SigV4, s3s-fs on disk), and hashed by, alternating run by run:
//! - `sha256sum` (GNU coreutils) over the same bytes in a file: the anchor;
//! - `sha2` over that file read in 8 MiB chunks: our hashing without S3, the CPU ceiling;
//! - `ObjectStorage::sha256`: what process-upload runs, 8 MiB ranged GETs, 8 in flight, hashed in
//!   order;
//! - one streamed GetObject hashed as it arrives: the plain way, for comparison.
//!
//! Each of ours runs in a child process of this binary, so that its CPU time and peak resident set
//! (`/proc/self/stat`, `VmHWM`) are its own and not the S3 endpoint's, which runs here.

use crate::args::Args;
use crate::stats::{Samples, Table};
use local_stack::dynamodb::{LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};
use local_stack::s3::{ObjectCreatedListener, S3Endpoint, S3EndpointConfig};
use local_stack::stack::local_s3_client;
use sha2::Digest;
use shared::storage::ObjectStorage;
use std::io::Read;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: files-bench verify [--mib 512] [--runs 3]
Starts an in-process local S3 endpoint, writes one object of --mib MiB, and hashes it every way.";

const BUCKET: &str = "verify-bench";
const KEY: &str = "uploads/bench/verify.bin";
/// 5 GiB, the default `FILES_MAX_UPLOAD_BYTES`: the largest object process-upload must hash.
const LARGEST_UPLOAD: f64 = 5.0 * 1024.0 * 1024.0 * 1024.0;

/// Events of the bench's own PUT go nowhere.
struct NoListener;

#[async_trait::async_trait]
impl ObjectCreatedListener for NoListener {
    async fn object_created(&self, _event: aws_lambda_events::s3::S3Event) {}
}

/// What a child run reports.
struct ChildRun {
    wall: Duration,
    cpu: Duration,
    peak_rss_mb: f64,
    digest: String,
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &[], USAGE)?;
    if let Some(method) = args.get("child") {
        return child(method, &args);
    }
    let mib: u64 = args.number("mib", 512)?;
    let runs: usize = args.number("runs", 3)?;
    let size = mib * 1024 * 1024;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let content_path = dir.path().join("verify.bin");
    let content = noise(size as usize, 20261202);
    std::fs::write(&content_path, &content).map_err(|e| e.to_string())?;

    let endpoint = runtime.block_on(async {
        let endpoint = S3Endpoint::start(
            S3EndpointConfig {
                addr: ([127, 0, 0, 1], 0).into(),
                root: dir.path().join("s3"),
                access_key: LOCAL_ACCESS_KEY_ID.to_string(),
                secret_key: LOCAL_SECRET_ACCESS_KEY.to_string(),
                region: LOCAL_REGION.to_string(),
                buckets: vec![BUCKET.to_string()],
            },
            Arc::new(NoListener),
        )
        .await
        .map_err(|e| e.to_string())?;
        local_s3_client(&endpoint.endpoint_url())
            .put_object()
            .bucket(BUCKET)
            .key(KEY)
            .body(content.into())
            .send()
            .await
            .map_err(|e| format!("PUT the object: {e:?}"))?;
        Ok::<_, String>(endpoint)
    })?;
    let url = endpoint.endpoint_url();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = content_path.to_string_lossy().to_string();

    let methods: [(&str, &str); 4] = [
        ("sha256sum (coreutils), file", "anchor"),
        ("sha2, file in 8 MiB reads", "file"),
        (
            "ObjectStorage::sha256: 8 MiB ranged GETs, 8 in flight (process-upload)",
            "ranged",
        ),
        ("one streamed GetObject", "stream"),
    ];
    let mut results: Vec<Vec<ChildRun>> = methods.iter().map(|_| Vec::new()).collect();
    // Round 0 warms the page cache and the endpoint; it is not counted.
    for round in 0..=runs {
        for (index, (_, method)) in methods.iter().enumerate() {
            let run = if *method == "anchor" {
                sha256sum(&path)?
            } else {
                let out = Command::new(&exe)
                    .args([
                        "verify",
                        "--child",
                        method,
                        "--endpoint",
                        &url,
                        "--file",
                        &path,
                    ])
                    .args(["--size", &size.to_string()])
                    .output()
                    .map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!(
                        "child {method}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                parse_child(&String::from_utf8_lossy(&out.stdout))?
            };
            if round > 0 {
                results[index].push(run);
            }
        }
    }
    runtime.block_on(endpoint.shutdown());

    let anchor = median_wall(&results[0]);
    let expected = &results[0][0].digest;
    println!(
        "SHA-256 of one {mib} MiB object, {runs} runs per method after a warm-up round, methods alternating; \
         local S3 endpoint in-process on 127.0.0.1 (s3s-fs, page cache warm)."
    );
    println!();
    let mut table = Table::new(&[
        "method",
        "median s",
        "MB/s",
        "CPU s",
        "peak RSS MB",
        "time / sha256sum",
        "5 GiB at this rate, s",
        "digest",
    ]);
    for ((label, _), runs) in methods.iter().zip(&results) {
        let wall = median_wall(runs);
        let rate = size as f64 / wall.as_secs_f64();
        let cpu = Samples::new(runs.iter().map(|r| r.cpu).collect()).median();
        let rss = runs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max);
        let same = runs.iter().all(|r| &r.digest == expected);
        table.row(vec![
            label.to_string(),
            format!("{:.2}", wall.as_secs_f64()),
            format!("{:.0}", rate / 1e6),
            if cpu.is_zero() {
                "-".into()
            } else {
                format!("{:.2}", cpu.as_secs_f64())
            },
            if rss == 0.0 {
                "-".into()
            } else {
                format!("{rss:.0}")
            },
            format!("{:.2}", wall.as_secs_f64() / anchor.as_secs_f64()),
            format!("{:.0}", LARGEST_UPLOAD / rate),
            if same { "same" } else { "DIFFERS" }.into(),
        ]);
    }
    table.print();
    Ok(())
}

/// Bytes that no layer can compress or shortcut (xorshift64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median_wall(runs: &[ChildRun]) -> Duration {
    Samples::new(runs.iter().map(|r| r.wall).collect()).median()
}

fn sha256sum(path: &str) -> Result<ChildRun, String> {
    let started = Instant::now();
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(ChildRun {
        wall,
        cpu: Duration::ZERO,
        peak_rss_mb: 0.0,
        digest: text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    })
}

fn parse_child(line: &str) -> Result<ChildRun, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [wall_ms, cpu_ms, hwm_kb, digest] = fields[..] else {
        return Err(format!("unexpected child output {line:?}"));
    };
    let number = |s: &str| s.parse::<f64>().map_err(|e| format!("{s:?}: {e}"));
    Ok(ChildRun {
        wall: Duration::from_secs_f64(number(wall_ms)? / 1000.0),
        cpu: Duration::from_secs_f64(number(cpu_ms)? / 1000.0),
        peak_rss_mb: number(hwm_kb)? / 1024.0,
        digest: digest.to_string(),
    })
}

/// One hashing run in this (child) process; prints `wall_ms cpu_ms vm_hwm_kb hex`.
fn child(method: &str, args: &Args) -> Result<(), String> {
    let size: u64 = args.number("size", 0)?;
    let started = Instant::now();
    let digest: [u8; 32] = match method {
        "file" => {
            let mut file =
                std::fs::File::open(args.required("file")?).map_err(|e| e.to_string())?;
            let mut buffer = vec![0u8; 8 << 20];
            let mut hasher = sha2::Sha256::new();
            loop {
                let n = file.read(&mut buffer).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            hasher.finalize().into()
        }
        "ranged" | "stream" => {
            // The function's runtime: Lambda gives process-upload one vCPU at 1769 MB, and its main
            // is a multi-threaded tokio runtime like this one.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let client = local_s3_client(args.required("endpoint")?);
            runtime.block_on(async {
                if method == "ranged" {
                    ObjectStorage::new(client, BUCKET)
                        .sha256(KEY, size)
                        .await
                        .map_err(|e| format!("{e:?}"))
                } else {
                    let mut body = client
                        .get_object()
                        .bucket(BUCKET)
                        .key(KEY)
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?
                        .body;
                    let mut hasher = sha2::Sha256::new();
                    while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
                        hasher.update(&chunk);
                    }
                    Ok(hasher.finalize().into())
                }
            })?
        }
        other => return Err(format!("unknown --child {other}")),
    };
    let wall = started.elapsed();
    println!(
        "{:.3} {:.0} {} {}",
        wall.as_secs_f64() * 1000.0,
        cpu_ms()?,
        vm_hwm_kb()?,
        hex::encode(digest)
    );
    Ok(())
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (clock ticks of 1/100 s,
/// what Linux reports for `sysconf(_SC_CLK_TCK)` on every common configuration).
fn cpu_ms() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    Ok((ticks(11) + ticks(12)) * 10.0)
}

/// Peak resident set of this process (`VmHWM` in `/proc/self/status`), in KiB.
fn vm_hwm_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}
