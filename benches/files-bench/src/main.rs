//! `files-bench`: the Files API's benchmarks. `scripts/bench` runs them and BENCHMARKS.md has the
//! figures, the machine and how to reproduce them.
//!
//! Subcommands (each prints a table; `--help` of each lists its flags):
//! - `cold-start`: spawns each function's `bootstrap` against a fake Lambda Runtime API on 127.0.0.1
//!   and times process start → first `GET /runtime/invocation/next`, beside a `lambda_runtime`
//!   hello world and Python / Node custom-runtime loops (the anchors).
//! - `handlers`: the handlers' own work per warm request, in-process against the local stack, with
//!   the time spent on the wire to DynamoDB and S3 (measured by an SDK interceptor) taken out.
//! - `load`: an open-loop, constant-rate load (wrk2-style: latency counted from each request's
//!   scheduled start) against a running `files-local`, with a bare DynamoDB Local GetItem and the
//!   gateway's own 404 as anchors at the same rate.
//! - `end-to-end`: a JPEG PUT to S3 → the record `ready` → its thumbnails, through `files-local`.
//! - `verify`: SHA-256 throughput of an uploaded object the ways process-upload could read it,
//!   beside `sha256sum`: what sizes the function's timeout.
//! - `listing-memory`: the peak resident memory of the `list-files` binary answering the worst
//!   listings the API allows (its tenant at the most files one request reads, every file at every
//!   limit), beside a page read straight from an index and the process's init-only floor.
//!
//! The bench code is plain Rust so that it runs wherever the local stack runs; it measures, it
//! asserts nothing (benchmarks are not tests).

mod args;
mod client;
mod cold_start;
mod end_to_end;
mod handlers;
mod listing_memory;
mod load;
mod stats;
mod verify;

use std::process::ExitCode;

const USAGE: &str = "\
usage: files-bench <cold-start|handlers|load|end-to-end|verify|listing-memory> [flags]   (files-bench <command> --help)";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let result = match command.as_str() {
        "cold-start" => cold_start::main(rest),
        "handlers" => handlers::main(rest),
        "load" => load::main(rest),
        "listing-memory" => listing_memory::main(rest),
        "end-to-end" => end_to_end::main(rest),
        "verify" => verify::main(rest),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("files-bench {command}: {message}");
            ExitCode::FAILURE
        }
    }
}
