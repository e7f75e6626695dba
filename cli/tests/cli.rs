//! The `files` binary against a real local stack (DynamoDB Local, the s3s endpoint, the gateway):
//! what a user types, what a script reads (stdout lines, `--json`, exit codes), and what a terminal
//! shows (progress bars, under tmux).
//!
//! No token is configured in these runs: the CLI gets the stack's development token itself, as it
//! does right after `scripts/run`.

use integration_tests::{TestStack, sha256_hex, test_bytes};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// A `files` command for `stack`, with its own (empty) config and state folders.
struct Cli {
    api_url: String,
    home: tempfile::TempDir,
}

impl Cli {
    fn new(stack: &TestStack) -> Cli {
        Cli {
            api_url: stack.stack.base_url(),
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_files"));
        cmd.args(args)
            .current_dir(self.home.path())
            .env("FILES_API_URL", &self.api_url)
            .env_remove("FILES_TOKEN")
            .env("FILES_CONFIG", self.home.path().join("config.toml"))
            .env("FILES_STATE_DIR", self.state_dir());
        cmd
    }

    fn state_dir(&self) -> PathBuf {
        self.home.path().join("state")
    }

    /// Runs `files args...` to the end (off the test's runtime, which serves the stack).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run files"))
            .await
            .expect("join")
    }

    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.home.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a script must never see: terminal control sequences, Rust panics or Debug output.
fn assert_plain(output: &Output) {
    for stream in [text(&output.stdout), text(&output.stderr)] {
        assert!(!stream.contains('\u{1b}'), "escape sequences in {stream:?}");
        assert!(!stream.contains("panicked"), "{stream}");
        assert!(!stream.contains("Error {"), "Debug output in {stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_files_with_four_jobs_are_all_ready_and_listed_as_json() {
    let stack = TestStack::start().await;
    let cli = Cli::new(&stack);
    let batch = cli.dir("batch");
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..20 {
        let content = test_bytes(1000 + i * 37, i as u64);
        let name = format!("file-{i:02}.txt");
        std::fs::write(batch.join(&name), &content).expect("write");
        expected.insert(name, sha256_hex(&content));
    }

    let out = cli.run(&["upload", "-r", "batch", "--jobs", "4"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_plain(&out);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 20, "one line per file: {lines:?}");
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "id, status, path: {line}");
        assert_eq!(fields[1], "ready", "{line}");
    }

    let out = cli.run(&["ls", "--json", "--parent", "batch"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("ls --json is JSON");
    assert_eq!(listed.len(), 20);
    for file in &listed {
        let name = file["name"].as_str().expect("name");
        assert_eq!(file["status"], "ready", "{file}");
        assert_eq!(file["parent"], "batch");
        assert_eq!(
            file["sha256"].as_str(),
            expected.get(name).map(String::as_str)
        );
    }
    // The table is for people; it names every file too.
    let out = cli.run(&["ls", "--parent", "batch"]).await;
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(
        table.contains("NAME") && table.contains("file-19.txt"),
        "{table}"
    );

    // And back: the same bytes.
    let id = listed[0]["id"].as_str().expect("id");
    let name = listed[0]["name"].as_str().expect("name");
    let out = cli.run(&["download", id, "-o", "copy.bin"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let copy = std::fs::read(cli.home.path().join("copy.bin")).expect("downloaded");
    assert_eq!(Some(&sha256_hex(&copy)), expected.get(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_lists_a_history_longer_than_one_page() {
    let stack = TestStack::start().await;
    let cli = Cli::new(&stack);
    // 27 revisions: more than the API's default page of 25, which is all `revisions` showed.
    let token = stack.token("local", "dev");
    let mut id = String::new();
    for n in 1..=27u64 {
        let content = format!("revision {n:02}");
        let file = stack
            .upload(
                &token,
                &serde_json::json!({"name": "long.txt", "size": content.len(),
                    "content_type": "text/plain", "replace": true}),
                content.as_bytes(),
            )
            .await;
        assert_eq!(file["revision"], n, "{file}");
        id = file["id"].as_str().expect("id").to_string();
    }

    let out = cli.run(&["revisions", &id, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let revisions: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    let numbers: Vec<u64> = revisions
        .iter()
        .map(|r| r["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(
        numbers,
        (1..=27).collect::<Vec<u64>>(),
        "every revision, oldest first"
    );
    let current: Vec<u64> = revisions
        .iter()
        .filter(|r| r["current"] == true)
        .map(|r| r["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(current, [27]);

    // The table too: a header and one row per revision.
    let out = cli.run(&["revisions", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows = table
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(rows, 27, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_conflict_have_their_exit_codes_and_the_apis_detail() {
    let stack = TestStack::start().await;
    let cli = Cli::new(&stack);

    let out = cli.run(&["get", "01JAAAAAAAAAAAAAAAAAAAAAAA"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_plain(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("files: error: "), "{stderr}");
    assert!(stderr.contains("(404 not_found)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let dir = cli.dir("a");
    std::fs::write(dir.join("report.txt"), b"first").expect("write");
    let out = cli.run(&["upload", "a/report.txt"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = cli.dir("b");
    std::fs::write(dir.join("report.txt"), b"second").expect("write");
    let out = cli.run(&["upload", "b/report.txt"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_plain(&out);
    let stderr = text(&out.stderr);
    // The API's own words (its `detail`), then status and code.
    let detail = {
        let (status, problem) = stack
            .create_upload(
                &stack.token("local", "dev"),
                &serde_json::json!({"name": "report.txt", "size": 6, "content_type": "text/plain"}),
            )
            .await;
        assert_eq!(status, 409, "{problem}");
        problem["detail"].as_str().expect("detail").to_string()
    };
    assert!(stderr.contains(&detail), "{stderr} lacks {detail}");
    assert!(stderr.contains("(409 name_conflict)"), "{stderr}");

    // --replace makes it a new revision instead.
    let out = cli.run(&["upload", "--replace", "b/report.txt"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout)
        .split('\t')
        .next()
        .unwrap_or_default()
        .to_string();
    let out = cli.run(&["revisions", &id, "--json"]).await;
    let revisions: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(revisions.len(), 2);

    // Trash, restore, delete for good; then it is not found.
    for (args, code) in [
        (vec!["rm", id.as_str()], 0),
        (vec!["restore", id.as_str()], 0),
        (vec!["rm", "--permanent", id.as_str()], 0),
        (vec!["wait", id.as_str()], 3),
    ] {
        let out = cli.run(&args).await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // Usage errors are 2.
    let out = cli.run(&["upload"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = cli.run(&["upload", "a"]).await;
    assert_eq!(out.status.code(), Some(2), "a folder without -r");
}

/// Runs `command` in a detached tmux session of `width` columns; the socket is private to the test.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("files-cli-test-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "160", "-y", "20"])
            .arg(command)
            .stdin(Stdio::null())
            .status()
            .expect("tmux is installed (scripts/setup-local)");
        assert!(status.success(), "tmux new-session");
        Tmux { socket }
    }

    fn screen(&self) -> Option<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn shell_quote(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bars_render_in_a_terminal() {
    let stack = TestStack::start_with(|c| {
        c.multipart_threshold_bytes = 5 * MIB;
        c.multipart_part_bytes = 5 * MIB;
    })
    .await;
    let cli = Cli::new(&stack);
    let dir = cli.dir("big");
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("big-{i}.bin")),
            test_bytes((12 * MIB) as usize, i),
        )
        .expect("write");
    }
    let done = cli.home.path().join("done");
    let command = format!(
        "cd {home} && env FILES_API_URL={url} FILES_CONFIG={home}/config.toml \
         FILES_STATE_DIR={home}/state {bin} upload -r big --jobs 2; echo \"exit=$?\" > {done}; sleep 30",
        home = shell_quote(cli.home.path()),
        url = cli.api_url,
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_files"))),
        done = shell_quote(&done),
    );
    let tmux = Tmux::start(&command);
    let screens = tokio::task::spawn_blocking(move || {
        let mut screens = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done.exists() && Instant::now() < deadline {
            if let Some(screen) = tmux.screen() {
                screens.push(screen);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        if let Some(screen) = tmux.screen() {
            screens.push(screen);
        }
        let result = std::fs::read_to_string(&done).unwrap_or_default();
        (screens, result)
    });
    let (screens, result) = screens.await.expect("join");
    assert_eq!(result.trim(), "exit=0", "last screen: {:?}", screens.last());

    // A bar per file and the total, with bytes, rate and ETA.
    let with_bars = screens
        .iter()
        .find(|s| s.contains("total (3 files)") && s.contains("big-") && s.contains("ETA"))
        .unwrap_or_else(|| panic!("no screen showed the bars; last: {:?}", screens.last()));
    assert!(with_bars.contains("MiB"), "{with_bars}");
    assert!(with_bars.contains("/s"), "a rate: {with_bars}");
    // At the end the bars are gone and one line per file says how it went.
    let last = screens.last().expect("a screen");
    assert!(!last.contains("ETA"), "{last}");
    let results = last
        .lines()
        .filter(|l| l.contains(" ready ") && l.contains("big-"))
        .count();
    assert_eq!(results, 3, "{last}");
}
