//! End to end through a running `files-local`: a photo PUT to its presigned URL → the S3 event →
//! `process-upload` checks it (size, type, SHA-256, magic bytes) and makes the record `ready` → it
//! makes the 64/256/1024 px thumbnails. The clock starts when the PUT starts; the record is polled
//! with `GET /v1/files/{id}` (one request in flight at a time, `--poll-ms` apart), so each figure is
//! late by at most the poll interval plus one GET.

use crate::args::Args;
use crate::client::{api_client, declaration, failure, wait_for};
use crate::stats::{Samples, Table, ms};
use files_client::types::FileStatus;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: files-bench end-to-end --url http://127.0.0.1:3000 [--image PATH | --size 4000x3000] [--runs 5]
                              [--poll-ms 5]
  --image   a JPEG to upload
  --size    else a photo-like JPEG of this size is generated (default 4000x3000, 12 MP)";

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(argv, &[], USAGE)?;
    let url = args.required("url")?.to_string();
    let runs: usize = args.number("runs", 5)?;
    let poll = Duration::from_millis(args.number("poll-ms", 5)?);
    let (image, label) = match args.get("image") {
        Some(path) => (
            std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
            path.to_string(),
        ),
        None => {
            let size = args.get("size").unwrap_or("4000x3000");
            let (w, h) = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .ok_or_else(|| format!("--size {size}: expected WIDTHxHEIGHT"))?;
            (photo_like_jpeg(w, h), format!("generated {size}"))
        }
    };
    let dimensions = image::ImageReader::new(std::io::Cursor::new(&image))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let api = api_client(&url, "bench-e2e")?;
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        let (mut put, mut ready, mut thumbs) = (Vec::new(), Vec::new(), Vec::new());
        // Shared by every run's PUT: no copy of the image in the timed part.
        let image_bytes = bytes::Bytes::from(image.clone());
        // Run 0 warms up (connections, page cache, DynamoDB Local's JIT) and is dropped.
        for run in 0..=runs {
            let name = format!("e2e-{run_id}-{run}.jpg");
            let upload = api
                .create_upload(&declaration(&name, &image, "image/jpeg"))
                .await
                .map_err(failure)?;
            let url = upload.url.as_deref().ok_or("not a single-PUT upload")?;
            let headers = upload.headers.clone().unwrap_or_default();
            let started = Instant::now();
            api.put_content(url, &headers, image_bytes.clone())
                .await
                .map_err(failure)?;
            let put_done = Instant::now();
            let timeout = Duration::from_secs(60);
            let ready_at = wait_for(&api, &upload.file_id, poll, timeout, |f| {
                f.status == FileStatus::Ready
            })
            .await?;
            let thumbs_at = wait_for(&api, &upload.file_id, poll, timeout, |f| {
                f.thumbnails.is_some()
            })
            .await?;
            if run > 0 {
                put.push(put_done - started);
                ready.push(ready_at - started);
                thumbs.push(thumbs_at - started);
            }
        }
        println!(
            "end to end through files-local: {label} ({}x{}, {:.1} MB), {runs} runs, poll every {} ms (ms from PUT start)",
            dimensions.0,
            dimensions.1,
            image.len() as f64 / 1e6,
            poll.as_millis()
        );
        let mut table = Table::new(&["step", "min", "p50", "max"]);
        for (step, samples) in [
            ("PUT answered (S3 endpoint stored it)", put),
            ("record ready (event processed)", ready),
            ("thumbnails ready (64/256/1024)", thumbs),
        ] {
            let s = Samples::new(samples);
            table.row(vec![
                step.to_string(),
                ms(s.min()),
                ms(s.median()),
                ms(s.max()),
            ]);
        }
        table.print();
        Ok(())
    })
}

/// A photo-like JPEG (gradients and pseudo-random texture, quality 90), for when no photo is given.
fn photo_like_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as i32 - 12;
        let wave = (((x / 37 + y / 53) % 16) as i32) * 4;
        let channel = |base: u32| (base as i32 + noise + wave).clamp(0, 255) as u8;
        image::Rgb([
            channel(x * 200 / width),
            channel(y * 200 / height),
            channel(128),
        ])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&pixels)
        .expect("a JPEG encodes into memory");
    jpeg
}
