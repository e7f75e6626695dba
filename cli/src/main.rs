//! `files`: the Files API from a terminal. See docs/cli.md for the commands, the configuration
//! and the exit codes (also in `exit.rs`).

mod config;
mod exit;
mod progress;
mod state;

use api_types::{CreateUploadRequest, File, FileStatus};
use clap::{Args, Parser, Subcommand};
use exit::Failure;
use files_client::{Client, DownloadProgress, UploadObserver, UploadSpec};
use futures::StreamExt;
use progress::{Bars, FileBar};
use state::{Entry, State};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "files",
    version,
    about = "Upload, list and download files of the Files API",
    after_help = "Configuration: flags, then FILES_API_URL / FILES_TOKEN, then the config file \
                  (FILES_CONFIG or ~/.config/files/config.toml). Against the local stack \
                  (http://127.0.0.1:3000, the default) no token is needed: the CLI asks the \
                  stack for its development token.\n\nExit codes: 0 ok, 1 local failure, 2 usage, \
                  3 not found, 4 conflict, 5 not allowed, 6 other API error, 7 network, \
                  8 rejected content."
)]
struct Cli {
    /// The API's base URL [env: FILES_API_URL] [default: http://127.0.0.1:3000]
    #[arg(long, global = true)]
    api_url: Option<String>,
    /// Bearer token [env: FILES_TOKEN]
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
    /// No progress bars
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Upload files (resuming interrupted uploads of the same files)
    Upload(UploadArgs),
    /// List files
    Ls(LsArgs),
    /// Show a file's record as JSON
    Get { id: String },
    /// Download a file's content
    Download {
        id: String,
        /// Where to write it (default: the file's name, in the current folder)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Move a file to the trash (or delete it for good with --permanent)
    Rm {
        id: String,
        /// Delete the file and all its revisions for good (needs files:admin)
        #[arg(long)]
        permanent: bool,
    },
    /// Take a file out of the trash
    Restore { id: String },
    /// List a file's revisions
    Revisions {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Wait until a file is processed (ready or rejected)
    Wait {
        id: String,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Finish every interrupted upload recorded in the state file
    Resume {
        /// Transfers at once
        #[arg(short, long)]
        jobs: Option<usize>,
    },
}

#[derive(Args, Debug)]
struct UploadArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Upload folders and everything in them; a file's parent becomes its folder's path
    #[arg(short, long)]
    recursive: bool,
    /// The parent (folder) of the uploaded files
    #[arg(long)]
    parent: Option<String>,
    /// A tag (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Metadata key=value (repeatable)
    #[arg(long = "meta", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    /// If the name is taken, add a revision to that file instead of failing
    #[arg(long)]
    replace: bool,
    /// Transfers at once (files, or parts of large files)
    #[arg(short, long)]
    jobs: Option<usize>,
    /// The content type (default: from each file's extension)
    #[arg(long)]
    content_type: Option<String>,
    /// Do not declare the SHA-256 of the content (saves reading each file twice)
    #[arg(long)]
    no_checksum: bool,
}

#[derive(Args, Debug)]
struct LsArgs {
    /// Only files with this parent
    #[arg(long)]
    parent: Option<String>,
    /// Name contains (case-insensitive)
    #[arg(long, short = 'n')]
    name: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    /// type/subtype or type/*
    #[arg(long = "type")]
    content_type: Option<String>,
    /// pending, ready or rejected
    #[arg(long)]
    status: Option<String>,
    /// The trash instead of the live files
    #[arg(long)]
    trashed: bool,
    /// created_at, updated_at, name or size; prefix - for descending
    #[arg(long)]
    order_by: Option<String>,
    /// At most this many files (default: all)
    #[arg(long)]
    limit: Option<usize>,
    /// JSON (an array of file records) instead of a table
    #[arg(long)]
    json: bool,
}

fn parse_meta(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {raw:?}"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; clap prints them and says which exit code.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("files: error: cannot start: {e}");
            return ExitCode::from(exit::LOCAL);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            eprintln!("files: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

struct Context {
    client: Client,
    api_url: String,
    jobs: usize,
    quiet: bool,
}

async fn context(cli: &Cli, jobs: Option<usize>) -> Result<Context, Failure> {
    let file = config::load()?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let api_url = cli
        .api_url
        .clone()
        .or_else(|| env("FILES_API_URL"))
        .or(file.api_url)
        .unwrap_or_else(|| config::DEFAULT_API_URL.to_string())
        .trim_end_matches('/')
        .to_string();
    let token = match cli.token.clone().or_else(|| env("FILES_TOKEN")).or(file.token) {
        Some(token) => token,
        // Only this machine's stack is asked: a token for a deployed API must come from its
        // identity provider, and a CLI pointed elsewhere must not send requests on a guess.
        None if config::is_loopback(&api_url) => Client::dev_token(&api_url).await.map_err(|e| {
            let failure = Failure::from(e);
            Failure {
                code: failure.code,
                message: format!(
                    "no token configured (FILES_TOKEN), and the local stack at {api_url} did not \
                     give a development token: {}",
                    failure.message
                ),
            }
        })?,
        None => {
            return Err(Failure {
                code: exit::AUTH,
                message: "no token: set FILES_TOKEN, pass --token, or put token in the config file"
                    .into(),
            });
        }
    };
    let jobs = jobs
        .or(file.jobs)
        .unwrap_or(files_client::DEFAULT_TRANSFERS)
        .max(1);
    let client = Client::new(&api_url, &token)?.with_transfers(jobs);
    Ok(Context {
        client,
        api_url,
        jobs,
        quiet: cli.quiet,
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Upload(args) => {
            let ctx = context(&cli, args.jobs).await?;
            upload(&ctx, args).await
        }
        Command::Resume { jobs } => {
            let ctx = context(&cli, *jobs).await?;
            resume(&ctx).await
        }
        Command::Ls(args) => ls(&context(&cli, None).await?, args).await,
        Command::Get { id } => {
            let ctx = context(&cli, None).await?;
            print_json(&ctx.client.get_file(id, true).await?)
        }
        Command::Download { id, output } => {
            download(&context(&cli, None).await?, id, output.as_deref()).await
        }
        Command::Rm { id, permanent } => {
            let ctx = context(&cli, None).await?;
            if *permanent {
                ctx.client.delete_file(id).await?;
                println!("deleted {id}");
            } else {
                let file = ctx.client.trash_file(id).await?;
                println!("trashed {} ({})", file.id, file.name);
            }
            Ok(())
        }
        Command::Restore { id } => {
            let ctx = context(&cli, None).await?;
            let file = ctx.client.restore_file(id).await?;
            println!("restored {} ({})", file.id, file.name);
            Ok(())
        }
        Command::Revisions { id, json } => {
            let ctx = context(&cli, None).await?;
            // Every page: a long history is paged by the API (25 a page by default).
            let revisions = ctx.client.list_all_revisions(id).await?;
            if *json {
                return print_json(&revisions);
            }
            let mut table = table(&["REVISION", "SIZE", "TYPE", "CURRENT", "CREATED", "BY"]);
            for r in &revisions {
                table.add_row(vec![
                    r.revision.to_string(),
                    human_size(r.size),
                    r.content_type.clone(),
                    if r.current { "*".into() } else { String::new() },
                    r.created_at.clone(),
                    who(&r.created_by),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        Command::Wait { id, timeout } => {
            let ctx = context(&cli, None).await?;
            let file = ctx
                .client
                .wait_until_processed(id, Duration::from_secs(*timeout))
                .await?;
            println!("{} {}", file.id, file.status.as_str());
            match file.status {
                FileStatus::Rejected => Err(Failure::rejected(format!(
                    "{} was rejected: {}",
                    file.id,
                    file.rejection_reason.unwrap_or_default()
                ))),
                _ => Ok(()),
            }
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::local(format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    table
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

async fn ls(ctx: &Context, args: &LsArgs) -> Result<(), Failure> {
    let mut query: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            query.push((k.to_string(), v.clone()));
        }
    };
    add("parent", &args.parent);
    add("q", &args.name);
    add("tag", &args.tag);
    add("content_type", &args.content_type);
    add("status", &args.status);
    add("order_by", &args.order_by);
    if args.trashed {
        query.push(("trashed".into(), "true".into()));
    }
    let files = match args.limit {
        Some(limit) => {
            let mut files = Vec::new();
            let mut cursor: Option<String> = None;
            while files.len() < limit {
                let mut page_query = query.clone();
                page_query.push(("limit".into(), (limit - files.len()).min(100).to_string()));
                if let Some(c) = &cursor {
                    page_query.push(("cursor".into(), c.clone()));
                }
                let page = ctx.client.list_files(&page_query).await?;
                files.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            files.truncate(limit);
            files
        }
        None => {
            query.push(("limit".into(), "100".into()));
            ctx.client.list_all_files(&query).await?
        }
    };
    if args.json {
        return print_json(&files);
    }
    let mut table = table(&[
        "ID", "NAME", "SIZE", "TYPE", "STATUS", "PARENT", "UPDATED", "BY",
    ]);
    for f in &files {
        table.add_row(vec![
            f.id.clone(),
            f.name.clone(),
            human_size(f.size),
            f.content_type.clone(),
            f.status.as_str().to_string(),
            f.parent.clone().unwrap_or_default(),
            f.updated_at.clone(),
            who(&f.updated_by),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// A person as a table shows them: the token's name, else its email, else the subject id.
fn who(actor: &api_types::Actor) -> String {
    actor
        .name
        .clone()
        .or_else(|| actor.email.clone())
        .unwrap_or_else(|| actor.id.clone())
}

/// One file to upload, and what to declare for it.
#[derive(Debug, Clone)]
struct Job {
    path: PathBuf,
    size: u64,
    modified: String,
    name: String,
    content_type: String,
    parent: Option<String>,
    tags: Vec<String>,
    metadata: BTreeMap<String, String>,
    replace: bool,
    checksum: bool,
    /// An earlier session of this file to go on with.
    resume: Option<String>,
}

fn collect_jobs(args: &UploadArgs) -> Result<Vec<Job>, Failure> {
    let mut found: Vec<(PathBuf, Option<String>)> = Vec::new();
    for root in &args.paths {
        let meta = std::fs::metadata(root)
            .map_err(|e| Failure::local(format!("{}: {e}", root.display())))?;
        if meta.is_dir() {
            if !args.recursive {
                return Err(Failure::usage(format!(
                    "{} is a folder: use -r to upload folders",
                    root.display()
                )));
            }
            let base = root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            walk(
                root,
                &join_parent(args.parent.as_deref(), &base),
                &mut found,
            )?;
        } else {
            found.push((root.clone(), args.parent.clone()));
        }
    }
    let metadata: BTreeMap<String, String> = args.meta.iter().cloned().collect();
    found
        .into_iter()
        .map(|(path, parent)| {
            let meta = std::fs::metadata(&path)
                .map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
            let path = path
                .canonicalize()
                .map_err(|e| Failure::local(format!("{}: {e}", path.display())))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Job {
                size: meta.len(),
                modified: state::modified(&meta),
                content_type: args
                    .content_type
                    .clone()
                    .unwrap_or_else(|| guess_type(&path)),
                name,
                parent,
                tags: args.tags.clone(),
                metadata: metadata.clone(),
                replace: args.replace,
                checksum: !args.no_checksum,
                resume: None,
                path,
            })
        })
        .collect()
}

fn join_parent(parent: Option<&str>, child: &str) -> Option<String> {
    match (parent, child.is_empty()) {
        (Some(p), true) => Some(p.to_string()),
        (Some(p), false) => Some(format!("{}/{child}", p.trim_end_matches('/'))),
        (None, true) => None,
        (None, false) => Some(child.to_string()),
    }
}

/// Every file under `dir` (sorted, symlinks not followed), with its folder path as parent.
fn walk(
    dir: &Path,
    parent: &Option<String>,
    out: &mut Vec<(PathBuf, Option<String>)>,
) -> Result<(), Failure> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Failure::local(format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            walk(&entry.path(), &join_parent(parent.as_deref(), &name), out)?;
        } else if kind.is_file() {
            out.push((entry.path(), parent.clone()));
        }
    }
    Ok(())
}

fn guess_type(path: &Path) -> String {
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

async fn upload(ctx: &Context, args: &UploadArgs) -> Result<(), Failure> {
    let mut jobs = collect_jobs(args)?;
    let state = State::load();
    for job in &mut jobs {
        job.resume = state
            .find(&ctx.api_url, &job.path, job.size, &job.modified)
            .map(|e| e.upload_id);
    }
    run_jobs(ctx, &state, jobs).await
}

async fn resume(ctx: &Context) -> Result<(), Failure> {
    let state = State::load();
    let mut jobs = Vec::new();
    for entry in state.entries(&ctx.api_url) {
        let unchanged = std::fs::metadata(&entry.path)
            .ok()
            .filter(|m| m.len() == entry.size && state::modified(m) == entry.modified);
        let Some(meta) = unchanged else {
            eprintln!(
                "files: {} changed or is gone since its upload began; not resumed",
                entry.path.display()
            );
            state.remove(&ctx.api_url, &entry.path);
            let _ = ctx.client.abort_upload(&entry.upload_id).await;
            continue;
        };
        jobs.push(Job {
            size: meta.len(),
            modified: entry.modified.clone(),
            name: entry.name.clone(),
            content_type: entry.content_type.clone(),
            parent: entry.parent.clone(),
            tags: entry.tags.clone(),
            metadata: entry.metadata.clone(),
            replace: entry.replace,
            checksum: true,
            resume: Some(entry.upload_id.clone()),
            path: entry.path.clone(),
        });
    }
    if jobs.is_empty() {
        println!("nothing to resume");
        return Ok(());
    }
    run_jobs(ctx, &state, jobs).await
}

async fn run_jobs(ctx: &Context, state: &State, jobs: Vec<Job>) -> Result<(), Failure> {
    let total: u64 = jobs.iter().map(|j| j.size).sum();
    let bars = Bars::new(ctx.quiet, total, jobs.len());
    let results: Vec<Result<File, Failure>> = futures::stream::iter(jobs)
        .map(|job| upload_one(ctx, state, &bars, job))
        .buffered(ctx.jobs)
        .collect()
        .await;
    bars.finish();
    let mut first_failure = None;
    let mut failed = 0;
    for result in results {
        if let Err(f) = result {
            failed += 1;
            first_failure.get_or_insert(f);
        }
    }
    match first_failure {
        None => Ok(()),
        Some(mut f) if failed > 1 => {
            f.message = format!("{failed} uploads failed; the first: {}", f.message);
            Err(f)
        }
        Some(f) => Err(f),
    }
}

async fn upload_one(ctx: &Context, state: &State, bars: &Bars, job: Job) -> Result<File, Failure> {
    let bar = bars.file(&job.name, job.size);
    let observer = Observer {
        bar: &bar,
        state,
        api_url: &ctx.api_url,
        job: &job,
    };
    let spec = UploadSpec {
        path: job.path.clone(),
        request: CreateUploadRequest {
            name: Some(job.name.clone()),
            size: job.size,
            content_type: job.content_type.clone(),
            parent: job.parent.clone(),
            tags: (!job.tags.is_empty()).then(|| job.tags.clone()),
            metadata: (!job.metadata.is_empty()).then(|| job.metadata.clone()),
            replace: job.replace,
            ..Default::default()
        },
        checksum: job.checksum,
    };
    let result = ctx
        .client
        .upload_file(&spec, job.resume.as_deref(), &observer)
        .await;
    bar.finish();
    let display = job.path.display();
    match result {
        Ok(file) => {
            state.remove(&ctx.api_url, &job.path);
            if file.status == FileStatus::Rejected {
                let reason = file.rejection_reason.clone().unwrap_or_default();
                bars.eprintln(&format!("files: {display}: rejected: {reason}"));
                return Err(Failure::rejected(format!(
                    "{display} was rejected: {reason}"
                )));
            }
            bars.println(&format!(
                "{}\t{}\t{}",
                file.id,
                file.status.as_str(),
                display
            ));
            Ok(file)
        }
        Err(e) => {
            let failure = Failure::from(e);
            bars.eprintln(&format!("files: {display}: {}", failure.message));
            Err(Failure {
                code: failure.code,
                message: format!("{display}: {}", failure.message),
            })
        }
    }
}

/// Moves the bars and keeps the state file up to date.
struct Observer<'a> {
    bar: &'a FileBar,
    state: &'a State,
    api_url: &'a str,
    job: &'a Job,
}

impl UploadObserver for Observer<'_> {
    fn started(&self, upload_id: &str, file_id: &str, _total: u64, already: u64) {
        self.bar.set_done_before(already);
        let job = self.job;
        self.state.put(Entry {
            api_url: self.api_url.to_string(),
            path: job.path.clone(),
            upload_id: upload_id.to_string(),
            file_id: file_id.to_string(),
            size: job.size,
            modified: job.modified.clone(),
            name: job.name.clone(),
            content_type: job.content_type.clone(),
            parent: job.parent.clone(),
            tags: job.tags.clone(),
            metadata: job.metadata.clone(),
            replace: job.replace,
        });
    }

    fn sent(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn unsent(&self, bytes: u64) {
        self.bar.dec(bytes);
    }
}

struct DownloadBar<'a>(&'a FileBar);

impl DownloadProgress for DownloadBar<'_> {
    fn started(&self, total: Option<u64>, already: u64) {
        if let Some(total) = total {
            self.0.set_length(total);
        }
        self.0.dec(u64::MAX);
        self.0.set_done_before(already);
    }

    fn received(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

async fn download(ctx: &Context, id: &str, output: Option<&Path>) -> Result<(), Failure> {
    let file = ctx.client.get_file(id, false).await?;
    let dest = match output {
        Some(path) if path.is_dir() => path.join(&file.name),
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(&file.name),
    };
    let bars = Bars::new(ctx.quiet, file.size, 1);
    let bar = bars.file(&file.name, file.size);
    let result = ctx.client.download(id, &dest, &DownloadBar(&bar)).await;
    bar.finish();
    bars.finish();
    let size = result?;
    if let Some(expected) = &file.sha256 {
        let actual = files_client::sha256_file(&dest).await?;
        if &actual != expected {
            let _ = std::fs::remove_file(&dest);
            return Err(Failure::local(format!(
                "the downloaded content's SHA-256 is {actual}, the file's is {expected}; removed {}",
                dest.display()
            )));
        }
    }
    println!("{}\t{}\t{}", file.id, human_size(size), dest.display());
    Ok(())
}
