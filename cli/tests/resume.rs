//! A multipart upload killed halfway goes on where it stopped: the parts S3 already holds are not
//! sent again. The PUTs are counted at the local S3 endpoint.

use integration_tests::{TestStack, sha256_hex, test_bytes};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const PARTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_multipart_upload_resumes_without_sending_parts_again() {
    let stack = TestStack::start_with(|c| {
        c.multipart_threshold_bytes = 5 * MIB;
        c.multipart_part_bytes = 5 * MIB;
    })
    .await;
    let home = tempfile::tempdir().expect("temp dir");
    let content = test_bytes(PARTS * 5 * MIB as usize - 1234, 7);
    std::fs::write(home.path().join("big.bin"), &content).expect("write");
    let files = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_files"));
        cmd.args(args)
            .current_dir(home.path())
            .env("FILES_API_URL", stack.stack.base_url())
            .env_remove("FILES_TOKEN")
            .env("FILES_CONFIG", home.path().join("config.toml"))
            .env("FILES_STATE_DIR", home.path().join("state"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };

    // One transfer at a time, killed (SIGKILL: no chance to clean up) once two parts are in S3.
    let mut child = files(&["upload", "big.bin", "--jobs", "1"])
        .spawn()
        .expect("spawn files");
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.stack.s3.successful_puts() < 2 {
        assert!(Instant::now() < deadline, "the upload never got going");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "finished too soon"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("kill");
    let _ = child.wait();
    // A part in flight at the kill may still land: count from when S3 is quiet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = stack.stack.s3.successful_puts();
    assert!(
        before < PARTS,
        "killed halfway, not at the end ({before} parts)"
    );
    let state = std::fs::read_to_string(home.path().join("state/uploads.json")).expect("state");
    assert!(
        state.contains("big.bin"),
        "the state file records the upload: {state}"
    );

    // The same command again: only the missing parts go.
    let mut again = files(&["upload", "big.bin", "--jobs", "2"]);
    let out = tokio::task::spawn_blocking(move || again.output())
        .await
        .expect("join")
        .expect("run files");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = stack.stack.s3.successful_puts();
    assert_eq!(
        after,
        PARTS,
        "{before} parts before the kill, {} after the resume: every part sent once\n{}",
        after - before,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let id = line.split('\t').next().expect("id").to_string();
    assert!(line.contains("\tready\t"), "{line}");
    let state = std::fs::read_to_string(home.path().join("state/uploads.json")).expect("state");
    assert!(
        !state.contains("big.bin"),
        "done uploads leave the state: {state}"
    );

    let token = stack.token("local", "dev");
    let downloaded = stack.download(&token, &id).await;
    assert_eq!(sha256_hex(&downloaded), sha256_hex(&content));
}
