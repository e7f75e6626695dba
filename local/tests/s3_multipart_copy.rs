//! The local S3 endpoint's multipart copy, as Amazon S3 documents it (UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload; "Amazon S3 multipart upload limits"):
//! - `x-amz-copy-source-range` is `bytes=first-last`, zero-based and inclusive; another form, or a
//!   range beyond the source, is `InvalidArgument`; a missing source `NoSuchKey`; part numbers
//!   1 to 10,000; an unknown upload `NoSuchUpload`;
//! - every part but the last is at least 5 MiB, checked at completion (`EntityTooSmall`), which
//!   leaves the upload as it was;
//! - `If-None-Match: *` on CompleteMultipartUpload: 412 when the key exists, the upload kept;
//! - the object gets the tags CreateMultipartUpload asked for, and the event
//!   `ObjectCreated:CompleteMultipartUpload`.
//!
//! Through the real protocol (aws-sdk-s3, SigV4), each test on its own endpoint.

use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use local_stack::s3::S3Endpoint;
use tokio::sync::mpsc;

mod s3_common;
use s3_common::{BUCKET, Endpoint};

const MIB: usize = 1024 * 1024;

struct Harness {
    endpoint: S3Endpoint,
    events: mpsc::UnboundedReceiver<S3Event>,
    s3: aws_sdk_s3::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let Endpoint {
            endpoint,
            events,
            s3,
            dir,
        } = Endpoint::start().await;
        Self {
            endpoint,
            events,
            s3,
            _dir: dir,
        }
    }

    async fn next_event(&mut self) -> S3Event {
        s3_common::next_event(&mut self.events).await
    }

    async fn drain_events(&mut self) {
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(300), self.events.recv()).await
        {}
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    async fn create(&self, key: &str) -> String {
        self.s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/octet-stream")
            .tagging("files-state=pending")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned()
    }

    /// UploadPartCopy of `range` of `source`; the part's ETag, or the S3 error code.
    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source: &str,
        range: Option<&str>,
    ) -> Result<String, String> {
        self.s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(format!("{BUCKET}/{source}"))
            .set_copy_source_range(range.map(str::to_owned))
            .send()
            .await
            .map(|out| out.copy_part_result.unwrap().e_tag.unwrap())
            .map_err(|e| e.code().unwrap_or("?").to_owned())
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
        if_none_match: bool,
    ) -> Result<String, String> {
        let parts = parts
            .iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        let mut request = self
            .s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if if_none_match {
            request = request.if_none_match("*");
        }
        request
            .send()
            .await
            .map(|out| out.e_tag.unwrap_or_default())
            .map_err(|e| e.code().unwrap_or("?").to_owned())
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    async fn parts_held(&self, key: &str, upload_id: &str) -> Result<usize, String> {
        self.s3
            .list_parts()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|out| out.parts().len())
            .map_err(|e| e.code().unwrap_or("?").to_owned())
    }
}

fn source_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn a_copy_in_inclusive_ranges_rebuilds_the_source_with_its_tags_and_event() {
    let mut h = Harness::start().await;
    let source = source_bytes(11 * MIB + 3);
    h.put("src", source.clone()).await;
    h.drain_events().await;
    let upload = h.create("dst").await;
    let five = 5 * MIB;
    let ranges = [
        (1, 0, five - 1),
        (2, five, 2 * five - 1),
        (3, 2 * five, source.len() - 1),
    ];
    let mut parts = Vec::new();
    for (number, first, last) in ranges {
        let range = format!("bytes={first}-{last}");
        let etag = h
            .copy_part("dst", &upload, number, "src", Some(&range))
            .await
            .unwrap();
        parts.push((number, etag));
    }
    assert_eq!(h.parts_held("dst", &upload).await, Ok(3));
    let etag = h.complete("dst", &upload, &parts, true).await.unwrap();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    assert_eq!(
        h.get("dst").await,
        source,
        "inclusive ranges, byte for byte"
    );

    let event = h.next_event().await;
    let record = &event.records[0];
    assert_eq!(
        record.event_name.as_deref(),
        Some("ObjectCreated:CompleteMultipartUpload")
    );
    assert_eq!(record.s3.object.key.as_deref(), Some("dst"));
    assert_eq!(record.s3.object.size, Some(source.len() as i64));
    let tags =
        h.s3.get_object_tagging()
            .bucket(BUCKET)
            .key("dst")
            .send()
            .await
            .unwrap();
    let tags: Vec<_> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(tags, [("files-state".to_owned(), "pending".to_owned())]);
    // Completed: the upload is gone, and nothing of it stays stored.
    assert_eq!(
        h.parts_held("dst", &upload).await,
        Err("NoSuchUpload".into())
    );
    assert_eq!(h.endpoint.multipart_leftovers().await, Vec::<String>::new());
}

#[tokio::test]
async fn ranges_part_numbers_sources_and_uploads_are_checked_as_s3_checks_them() {
    let mut h = Harness::start().await;
    let source = source_bytes(6 * MIB);
    let size = source.len();
    h.put("src", source).await;
    h.drain_events().await;
    let upload = h.create("dst").await;
    for range in [
        "bytes=0-".to_owned(),
        "bytes=-100".to_owned(),
        "bytes=5-4".to_owned(),
        format!("bytes=0-{size}"),
        "0-99".to_owned(),
        "bytes=a-b".to_owned(),
    ] {
        assert_eq!(
            h.copy_part("dst", &upload, 1, "src", Some(&range)).await,
            Err("InvalidArgument".into()),
            "{range}"
        );
    }
    for number in [0, 10_001] {
        assert_eq!(
            h.copy_part("dst", &upload, number, "src", Some("bytes=0-9"))
                .await,
            Err("InvalidArgument".into()),
            "part {number}"
        );
    }
    assert_eq!(
        h.copy_part("dst", &upload, 1, "missing", Some("bytes=0-9"))
            .await,
        Err("NoSuchKey".into())
    );
    // The last byte exactly is fine.
    let last = format!("bytes={}-{}", size - 1, size - 1);
    assert!(
        h.copy_part("dst", &upload, 1, "src", Some(&last))
            .await
            .is_ok()
    );

    h.s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("dst")
        .upload_id(&upload)
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.copy_part("dst", &upload, 2, "src", Some("bytes=0-9"))
            .await,
        Err("NoSuchUpload".into())
    );
    let again =
        h.s3.abort_multipart_upload()
            .bucket(BUCKET)
            .key("dst")
            .upload_id(&upload)
            .send()
            .await;
    assert_eq!(again.unwrap_err().code(), Some("NoSuchUpload"));
    assert_eq!(h.endpoint.multipart_leftovers().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_small_middle_part_or_a_taken_key_refuses_completion_and_keeps_the_upload() {
    let mut h = Harness::start().await;
    let source = source_bytes(12 * MIB);
    h.put("src", source.clone()).await;
    h.drain_events().await;

    // 4 MiB then 8 MiB: the first part, not the last, is under 5 MiB.
    let upload = h.create("dst").await;
    let small = h
        .copy_part(
            "dst",
            &upload,
            1,
            "src",
            Some(&format!("bytes=0-{}", 4 * MIB - 1)),
        )
        .await
        .unwrap();
    let rest = h
        .copy_part(
            "dst",
            &upload,
            2,
            "src",
            Some(&format!("bytes={}-{}", 4 * MIB, source.len() - 1)),
        )
        .await
        .unwrap();
    let parts = [(1, small), (2, rest)];
    assert_eq!(
        h.complete("dst", &upload, &parts, true).await,
        Err("EntityTooSmall".into())
    );
    // Parts out of order are refused too; the upload is still there, with both parts.
    let reversed = [parts[1].clone(), parts[0].clone()];
    assert_eq!(
        h.complete("dst", &upload, &reversed, true).await,
        Err("InvalidPartOrder".into())
    );
    assert_eq!(h.parts_held("dst", &upload).await, Ok(2));
    h.s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("dst")
        .upload_id(&upload)
        .send()
        .await
        .unwrap();

    // A copy onto a key that exists, completed with If-None-Match: *: 412, the object unchanged,
    // the upload kept (to be aborted), no event.
    h.put("taken", b"first".to_vec()).await;
    h.drain_events().await;
    let upload = h.create("taken").await;
    let etag = h
        .copy_part("taken", &upload, 1, "src", Some("bytes=0-99"))
        .await
        .unwrap();
    assert_eq!(
        h.complete("taken", &upload, &[(1, etag.clone())], true)
            .await,
        Err("PreconditionFailed".into())
    );
    assert_eq!(h.get("taken").await, b"first");
    assert_eq!(h.parts_held("taken", &upload).await, Ok(1));
    if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(300), h.events.recv()).await
    {
        panic!("no object was created: {event:?}");
    }
    h.s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("taken")
        .upload_id(&upload)
        .send()
        .await
        .unwrap();
    assert_eq!(h.endpoint.multipart_leftovers().await, Vec::<String>::new());
}
