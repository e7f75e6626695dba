//! The browser page (local/web, on Uppy) in headless Chromium: tests/browser/e2e.mjs, run against a
//! local stack started here. It needs Debian's `chromium` and the npm packages that
//! `scripts/setup-local --browser` installs, so it is `#[ignore]`d in the plain `cargo test` run and
//! started by its own step of `scripts/test`:
//! `cargo test -p integration-tests --test browser -- --ignored`.

use integration_tests::{TestStack, jpeg_with_orientation, sha256_hex, test_bytes};
use local_stack::dynamodb::workspace_root;
use local_stack::stack::web_root;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
#[ignore = "needs Chromium and tests/browser/node_modules: run by scripts/test's browser step"]
async fn the_page_uploads_a_photo_and_a_multipart_file_through_a_flaky_network() {
    // Multipart from 8 MiB, 5 MiB parts: the 12 MiB file goes up in 3 parts.
    let t = TestStack::start_with(|c| {
        c.multipart_threshold_bytes = 8 * MIB;
        c.multipart_part_bytes = 5 * MIB;
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let photo = jpeg_with_orientation(1200, 800, 1);
    let big = test_bytes(12 * MIB as usize + 12_345, 42);
    let photo_path = files.path().join("holiday.jpg");
    let big_path = files.path().join("dataset.bin");
    std::fs::write(&photo_path, &photo).unwrap();
    std::fs::write(&big_path, &big).unwrap();
    let out_dir = workspace_root().join("target/browser-test");
    let script = workspace_root().join("tests/browser/e2e.mjs");

    let status = tokio::process::Command::new("node")
        .arg(&script)
        .env("FILES_API_URL", t.stack.base_url())
        .env("FILES_WEB_ROOT", web_root())
        .env("FILES_PHOTO", &photo_path)
        .env("FILES_PHOTO_SHA256", sha256_hex(&photo))
        .env("FILES_BIG", &big_path)
        .env("FILES_BIG_SHA256", sha256_hex(&big))
        .env("FILES_OUT_DIR", &out_dir)
        .status()
        .await
        .expect("node runs tests/browser/e2e.mjs");
    assert!(
        status.success(),
        "the browser test failed (screenshots in {})",
        out_dir.display()
    );
    assert!(out_dir.join("gallery.png").is_file());
}
