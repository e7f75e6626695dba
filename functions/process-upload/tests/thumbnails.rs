//! Thumbnails: formats, sizes, orientation, alpha, refusals and the JPEG that comes out.
//! Every test image is made here, in code.

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use process_upload::thumbnails::{
    ImageKind, THUMBNAIL_SIZES, Thumbnail, ThumbnailError, ThumbnailLimits, make_thumbnails,
    sniff_image_format,
};
use std::io::Cursor;

/// A smooth colourful test picture.
fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(2)) as u8,
            (y * 255 / height.max(2)) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// Four flat quadrants: red, green / blue, white.
fn quadrants(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        match (x < width / 2, y < height / 2) {
            (true, true) => Rgb([255, 0, 0]),
            (false, true) => Rgb([0, 255, 0]),
            (true, false) => Rgb([0, 0, 255]),
            (false, false) => Rgb([255, 255, 255]),
        }
    })
}

fn encode_with_image(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg_of(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 92)
        .encode(
            image.as_raw(),
            image.width() as u16,
            image.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

/// A big-endian TIFF holding one IFD entry, Orientation = `orientation`, as an APP1 Exif segment
/// put right after the SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // header, IFD0 at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn decode(thumbnail: &Thumbnail) -> RgbImage {
    image::load_from_memory_with_format(&thumbnail.jpeg, ImageFormat::Jpeg)
        .unwrap()
        .into_rgb8()
}

fn thumbs(bytes: &[u8]) -> Vec<Thumbnail> {
    make_thumbnails(bytes, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap()
}

fn dims(thumbnails: &[Thumbnail]) -> Vec<(u32, u32, u32)> {
    thumbnails
        .iter()
        .map(|t| (t.size, t.width, t.height))
        .collect()
}

/// The SOF marker's frame: (marker, width, height, [(component id, sampling HV byte)]).
fn frame_header(jpeg: &[u8]) -> (u8, u16, u16, Vec<(u8, u8)>) {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "starts with SOI");
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        assert_eq!(jpeg[i], 0xFF, "marker expected at {i}");
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let s = &jpeg[i + 4..i + 2 + len];
            let height = u16::from_be_bytes([s[1], s[2]]);
            let width = u16::from_be_bytes([s[3], s[4]]);
            let components = (0..s[5] as usize)
                .map(|c| (s[6 + 3 * c], s[7 + 3 * c]))
                .collect();
            return (marker, width, height, components);
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

/// The first value of the first quantisation table (the luminance DC step).
fn first_quantizer(jpeg: &[u8]) -> u8 {
    let at = jpeg.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
    jpeg[at + 5]
}

fn close(a: &Rgb<u8>, b: [u8; 3], tolerance: i32) -> bool {
    a.0.iter()
        .zip(b)
        .all(|(&x, y)| (i32::from(x) - i32::from(y)).abs() <= tolerance)
}

#[test]
fn every_format_yields_every_size() {
    let picture = DynamicImage::ImageRgb8(gradient(300, 200));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("jpeg", jpeg_of(&gradient(300, 200))),
        ("png", encode_with_image(picture.clone(), ImageFormat::Png)),
        ("gif", encode_with_image(picture.clone(), ImageFormat::Gif)),
        ("bmp", encode_with_image(picture.clone(), ImageFormat::Bmp)),
        (
            "tiff",
            encode_with_image(picture.clone(), ImageFormat::Tiff),
        ),
        (
            "webp",
            encode_with_image(picture.clone(), ImageFormat::WebP),
        ),
    ];
    for (name, bytes) in cases {
        let made = make_thumbnails(&bytes, &THUMBNAIL_SIZES, &ThumbnailLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            dims(&made),
            vec![(64, 64, 43), (256, 256, 171), (1024, 300, 200)],
            "{name}"
        );
        for t in &made {
            let decoded = decode(t);
            assert_eq!(
                (decoded.width(), decoded.height()),
                (t.width, t.height),
                "{name}"
            );
        }
        // The content survives: the top-left is dark, the bottom-right bright red-green.
        let big = decode(&made[2]);
        assert!(close(big.get_pixel(2, 2), [3, 3, 4], 24), "{name}");
        assert!(
            close(big.get_pixel(297, 197), [252, 251, 240], 40),
            "{name}"
        );
    }
}

#[test]
fn sizes_come_back_in_the_order_asked() {
    let bytes = jpeg_of(&gradient(640, 480));
    let made = make_thumbnails(&bytes, &[256, 1024, 64, 100], &ThumbnailLimits::default()).unwrap();
    assert_eq!(
        dims(&made),
        vec![
            (256, 256, 192),
            (1024, 640, 480),
            (64, 64, 48),
            (100, 100, 75)
        ]
    );
    assert!(
        make_thumbnails(&bytes, &[], &ThumbnailLimits::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn never_upscales() {
    let bytes = encode_with_image(DynamicImage::ImageRgb8(gradient(100, 50)), ImageFormat::Png);
    assert_eq!(
        dims(&thumbs(&bytes)),
        vec![(64, 64, 32), (256, 100, 50), (1024, 100, 50)]
    );
    let tiny = jpeg_of(&gradient(1, 1));
    assert_eq!(
        dims(&thumbs(&tiny)),
        vec![(64, 1, 1), (256, 1, 1), (1024, 1, 1)]
    );
    // Very long and thin: the short side never rounds to zero.
    let thin = jpeg_of(&gradient(4000, 2));
    assert_eq!(
        dims(&thumbs(&thin)),
        vec![(64, 64, 1), (256, 256, 1), (1024, 1024, 1)]
    );
}

#[test]
fn large_jpegs_are_shrunk_on_load_to_exact_sizes() {
    // Odd sizes: the DCT-scaled decode rounds up, the thumbnails must not.
    let bytes = jpeg_of(&gradient(2401, 1603));
    assert_eq!(
        dims(&thumbs(&bytes)),
        vec![(64, 64, 43), (256, 256, 171), (1024, 1024, 684)]
    );
    // Only a small size asked: decoded at 1/4 (the smallest JPEG scale used).
    let made = make_thumbnails(&bytes, &[64], &ThumbnailLimits::default()).unwrap();
    assert_eq!(dims(&made), vec![(64, 64, 43)]);
    // Red and green grow to the right and down (blue is a fine sawtooth that averages out).
    let corner = decode(&made[0]).get_pixel(63, 42).0;
    assert!(corner[0] > 220 && corner[1] > 220, "{corner:?}");
}

#[test]
fn exif_orientation_6_makes_a_portrait_thumbnail() {
    // Stored 400x300 landscape, displayed rotated 90 degrees clockwise.
    let bytes = with_exif_orientation(&jpeg_of(&quadrants(400, 300)), 6);
    assert_eq!(sniff_image_format(&bytes), Some(ImageKind::Jpeg));
    let made = thumbs(&bytes);
    assert_eq!(
        dims(&made),
        vec![(64, 48, 64), (256, 192, 256), (1024, 300, 400)]
    );
    let t256 = &made[1];
    assert!(t256.height > t256.width);
    // Rotated clockwise: the stored bottom-left (blue) is now the top-left, red the top-right.
    let img = decode(t256);
    assert!(close(img.get_pixel(10, 10), [0, 0, 255], 40));
    assert!(close(img.get_pixel(181, 10), [255, 0, 0], 40));
    assert!(close(img.get_pixel(10, 245), [255, 255, 255], 40));
    assert!(close(img.get_pixel(181, 245), [0, 255, 0], 40));
}

#[test]
fn every_exif_orientation_is_applied() {
    let stored = quadrants(200, 100);
    for orientation in 1..=8u16 {
        let bytes = with_exif_orientation(&jpeg_of(&stored), orientation);
        let made = make_thumbnails(&bytes, &[64], &ThumbnailLimits::default()).unwrap();
        let mut expected = DynamicImage::ImageRgb8(stored.clone());
        expected
            .apply_orientation(image::metadata::Orientation::from_exif(orientation as u8).unwrap());
        let expected = expected.into_rgb8();
        let got = decode(&made[0]);
        let (w, h) = (got.width(), got.height());
        assert_eq!(
            (w, h),
            if orientation >= 5 { (32, 64) } else { (64, 32) },
            "orientation {orientation}"
        );
        let (ew, eh) = (expected.width(), expected.height());
        for (fx, fy) in [(0.15, 0.15), (0.85, 0.15), (0.15, 0.85), (0.85, 0.85)] {
            let want = expected.get_pixel((fx * ew as f64) as u32, (fy * eh as f64) as u32);
            let have = got.get_pixel((fx * w as f64) as u32, (fy * h as f64) as u32);
            assert!(
                close(have, want.0, 48),
                "orientation {orientation} at {fx},{fy}: {have:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn alpha_is_flattened_onto_white() {
    // Left half transparent black, right half half-transparent black.
    let rgba = RgbaImage::from_fn(128, 64, |x, _| {
        if x < 64 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([0, 0, 0, 128])
        }
    });
    for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Tiff] {
        let bytes = encode_with_image(DynamicImage::ImageRgba8(rgba.clone()), format);
        let made = thumbs(&bytes);
        let img = decode(&made[2]);
        assert!(
            close(img.get_pixel(10, 32), [255, 255, 255], 6),
            "{format:?}: {:?}",
            img.get_pixel(10, 32)
        );
        assert!(
            close(img.get_pixel(110, 32), [127, 127, 127], 8),
            "{format:?}: {:?}",
            img.get_pixel(110, 32)
        );
    }
    // Grey with alpha, and a 16-bit RGBA image.
    let la = image::GrayAlphaImage::from_fn(32, 32, |_, _| image::LumaA([0, 0]));
    let made = thumbs(&encode_with_image(
        DynamicImage::ImageLumaA8(la),
        ImageFormat::Png,
    ));
    assert!(close(decode(&made[0]).get_pixel(5, 5), [255, 255, 255], 6));
    let wide = image::ImageBuffer::<Rgba<u16>, _>::from_fn(32, 32, |_, _| Rgba([0, 0, 0, 0]));
    let made = thumbs(&encode_with_image(
        DynamicImage::ImageRgba16(wide),
        ImageFormat::Png,
    ));
    assert!(close(decode(&made[0]).get_pixel(5, 5), [255, 255, 255], 6));
}

#[test]
fn output_is_baseline_jpeg_q80_with_420_chroma() {
    let bytes = encode_with_image(
        DynamicImage::ImageRgb8(gradient(640, 480)),
        ImageFormat::Png,
    );
    for t in thumbs(&bytes) {
        let (marker, width, height, components) = frame_header(&t.jpeg);
        assert_eq!(marker, 0xC0, "baseline (SOF0)");
        assert_eq!((u32::from(width), u32::from(height)), (t.width, t.height));
        let sampling: Vec<u8> = components.iter().map(|c| c.1).collect();
        assert_eq!(sampling, vec![0x22, 0x11, 0x11], "4:2:0");
        // Quality 80 on the libjpeg scale: the luminance DC step 16 becomes 16 * 0.4 = 6.
        assert_eq!(first_quantizer(&t.jpeg), 6);
        assert_eq!(&t.jpeg[t.jpeg.len() - 2..], &[0xFF, 0xD9], "ends with EOI");
    }
}

#[test]
fn grey_images_give_grey_jpegs() {
    let grey = image::GrayImage::from_fn(300, 200, |x, _| image::Luma([(x % 256) as u8]));
    let bytes = encode_with_image(DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png);
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(grey.as_raw(), 300, 200, jpeg_encoder::ColorType::Luma)
        .unwrap();
    for bytes in [bytes, jpeg] {
        let made = thumbs(&bytes);
        assert_eq!(
            dims(&made),
            vec![(64, 64, 43), (256, 256, 171), (1024, 300, 200)]
        );
        let (_, _, _, components) = frame_header(&made[1].jpeg);
        assert_eq!(components.len(), 1);
    }
}

#[test]
fn cmyk_jpegs_take_the_general_path() {
    let cmyk: Vec<u8> = (0..160 * 120).flat_map(|_| [0u8, 0, 0, 0]).collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 90)
        .encode(&cmyk, 160, 120, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let made = thumbs(&bytes);
    assert_eq!(
        dims(&made),
        vec![(64, 64, 48), (256, 160, 120), (1024, 160, 120)]
    );
    let (_, _, _, components) = frame_header(&made[0].jpeg);
    assert_eq!(components.len(), 3);
}

#[test]
fn heic_and_avif_are_recognised_and_unsupported() {
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf";
    let generic = b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic";
    assert_eq!(sniff_image_format(heic), Some(ImageKind::Heic));
    assert_eq!(sniff_image_format(generic), Some(ImageKind::Heic));
    assert_eq!(sniff_image_format(avif), Some(ImageKind::Avif));
    assert!(!ImageKind::Heic.is_supported());
    for bytes in [&heic[..], &avif[..]] {
        let error =
            make_thumbnails(bytes, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap_err();
        assert!(matches!(error, ThumbnailError::Unsupported(_)), "{error:?}");
    }
    // An MP4 is an ISO base media file too, but not an image.
    assert_eq!(
        sniff_image_format(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"),
        None
    );
}

#[test]
fn non_images_are_unsupported() {
    for bytes in [
        &b""[..],
        b"hello, files",
        b"%PDF-1.7\n",
        b"BM but only text",
        b"\0\0\0\0\0\0",
    ] {
        assert_eq!(sniff_image_format(bytes), None, "{bytes:?}");
        let error =
            make_thumbnails(bytes, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap_err();
        assert!(matches!(error, ThumbnailError::Unsupported(_)), "{error:?}");
    }
}

#[test]
fn formats_are_sniffed_from_magic_bytes() {
    let picture = DynamicImage::ImageRgb8(gradient(8, 8));
    for (format, kind) in [
        (ImageFormat::Png, ImageKind::Png),
        (ImageFormat::Gif, ImageKind::Gif),
        (ImageFormat::Bmp, ImageKind::Bmp),
        (ImageFormat::Tiff, ImageKind::Tiff),
        (ImageFormat::WebP, ImageKind::WebP),
        (ImageFormat::Jpeg, ImageKind::Jpeg),
    ] {
        let bytes = encode_with_image(picture.clone(), format);
        assert_eq!(sniff_image_format(&bytes), Some(kind), "{format:?}");
        assert_eq!(kind.mime_type(), format.to_mime_type());
    }
}

#[test]
fn truncated_and_damaged_files_are_corrupt() {
    let jpeg = jpeg_of(&gradient(300, 200));
    for cut in [jpeg.len() / 2, jpeg.len() - 2, 700] {
        let error = make_thumbnails(&jpeg[..cut], &THUMBNAIL_SIZES, &ThumbnailLimits::default())
            .unwrap_err();
        assert!(
            matches!(error, ThumbnailError::Corrupt(_)),
            "{cut}: {error:?}"
        );
    }
    let png = encode_with_image(
        DynamicImage::ImageRgb8(gradient(300, 200)),
        ImageFormat::Png,
    );
    let error = make_thumbnails(
        &png[..png.len() / 2],
        &THUMBNAIL_SIZES,
        &ThumbnailLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ThumbnailError::Corrupt(_)), "{error:?}");
    // Right magic, garbage after it.
    for bytes in [
        &b"\xFF\xD8\xFF\xE0garbage garbage garbage"[..],
        b"\x89PNG\r\n\x1a\nnot really a png at all",
        b"GIF89a\x10\x00\x10\x00",
    ] {
        let error =
            make_thumbnails(bytes, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap_err();
        assert!(matches!(error, ThumbnailError::Corrupt(_)), "{error:?}");
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    chunk
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    // A valid PNG whose IHDR says 100,000 x 100,000 RGB (30 GB decoded), with a tiny IDAT.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bomb.extend(png_chunk(b"IEND", &[]));
    let error = make_thumbnails(&bomb, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ThumbnailError::TooLarge {
                width: 100_000,
                height: 100_000
            }
        ),
        "{error:?}"
    );

    // A GIF whose logical screen is 65,535 x 65,535.
    let mut gif = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    gif.extend_from_slice(b",\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;");
    let error = make_thumbnails(&gif, &THUMBNAIL_SIZES, &ThumbnailLimits::default()).unwrap_err();
    assert!(
        matches!(error, ThumbnailError::TooLarge { .. }),
        "{error:?}"
    );

    // Ordinary images over tighter limits, on both decoding paths.
    let limits = ThumbnailLimits {
        max_pixels: 10_000,
        ..ThumbnailLimits::default()
    };
    let jpeg = jpeg_of(&gradient(300, 200));
    let png = encode_with_image(
        DynamicImage::ImageRgb8(gradient(300, 200)),
        ImageFormat::Png,
    );
    let tiff = encode_with_image(
        DynamicImage::ImageRgb8(gradient(300, 200)),
        ImageFormat::Tiff,
    );
    for bytes in [jpeg, png, tiff] {
        let error = make_thumbnails(&bytes, &THUMBNAIL_SIZES, &limits).unwrap_err();
        assert!(
            matches!(
                error,
                ThumbnailError::TooLarge {
                    width: 300,
                    height: 200
                }
            ),
            "{error:?}"
        );
    }
    let limits = ThumbnailLimits {
        max_alloc_bytes: 100_000,
        ..ThumbnailLimits::default()
    };
    let error =
        make_thumbnails(&jpeg_of(&gradient(300, 200)), &THUMBNAIL_SIZES, &limits).unwrap_err();
    assert!(
        matches!(error, ThumbnailError::TooLarge { .. }),
        "{error:?}"
    );
}

#[test]
fn gif_gives_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for color in [[255u8, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = image::Frame::new(RgbaImage::from_pixel(40, 30, Rgba(color)));
            encoder.encode_frame(frame).unwrap();
        }
    }
    let made = thumbs(&bytes);
    assert_eq!(
        dims(&made),
        vec![(64, 40, 30), (256, 40, 30), (1024, 40, 30)]
    );
    assert!(close(decode(&made[0]).get_pixel(20, 15), [255, 0, 0], 40));
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    10.0 * (255.0f64 * 255.0 / (se / a.as_raw().len() as f64).max(1e-9)).log10()
}

/// Large PNGs are box-shrunk while they are decoded (odd sizes: the last blocks are partial) and
/// must still match a plain Lanczos3 resize of the whole image.
#[test]
fn large_pngs_are_shrunk_on_load_and_match_a_plain_resize() {
    // Smooth (the sawtooth of `gradient` is dominated by JPEG ringing at its edges).
    let picture = RgbImage::from_fn(1601, 1001, |x, y| {
        Rgb([
            (x * 255 / 1601) as u8,
            (y * 255 / 1001) as u8,
            (128.0 + 100.0 * (x as f64 / 90.0).sin() * (y as f64 / 70.0).cos()) as u8,
        ])
    });
    let expected = DynamicImage::ImageRgb8(picture.clone())
        .resize_exact(256, 160, image::imageops::FilterType::Lanczos3)
        .into_rgb8();
    let opaque = RgbaImage::from_fn(1601, 1001, |x, y| {
        let p = picture.get_pixel(x, y).0;
        Rgba([p[0], p[1], p[2], 255])
    });
    for (name, bytes) in [
        (
            "rgb",
            encode_with_image(DynamicImage::ImageRgb8(picture.clone()), ImageFormat::Png),
        ),
        (
            "rgba",
            encode_with_image(DynamicImage::ImageRgba8(opaque), ImageFormat::Png),
        ),
    ] {
        let made = make_thumbnails(&bytes, &[256, 64], &ThumbnailLimits::default()).unwrap();
        assert_eq!(dims(&made), vec![(256, 256, 160), (64, 64, 40)], "{name}");
        let quality = psnr(&decode(&made[0]), &expected);
        assert!(quality > 40.0, "{name}: {quality:.1} dB");
    }
    // The same from a JPEG (DCT-scaled decode).
    let made = make_thumbnails(&jpeg_of(&picture), &[256], &ThumbnailLimits::default()).unwrap();
    let quality = psnr(&decode(&made[0]), &expected);
    assert!(quality > 40.0, "jpeg: {quality:.1} dB");

    // Grey, and grey with alpha (transparent: white).
    let grey = image::GrayImage::from_fn(1601, 1001, |x, _| image::Luma([(x / 7) as u8]));
    let made = thumbs(&encode_with_image(
        DynamicImage::ImageLuma8(grey),
        ImageFormat::Png,
    ));
    assert_eq!(
        dims(&made),
        vec![(64, 64, 40), (256, 256, 160), (1024, 1024, 640)]
    );
    let right = decode(&made[1]).get_pixel(250, 80).0[0];
    assert!((i32::from(right) - 227).abs() < 12, "{right}");
    let clear = image::GrayAlphaImage::from_fn(1601, 1001, |_, _| image::LumaA([0, 0]));
    let made = thumbs(&encode_with_image(
        DynamicImage::ImageLumaA8(clear),
        ImageFormat::Png,
    ));
    assert!(close(
        decode(&made[1]).get_pixel(100, 80),
        [255, 255, 255],
        4
    ));
}

#[test]
fn palette_pngs_with_transparency() {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 600, 400);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![255, 0, 0, 0, 0, 255]);
        encoder.set_trns(vec![255, 0]); // red opaque, blue transparent
        let mut writer = encoder.write_header().unwrap();
        let data: Vec<u8> = (0..400)
            .flat_map(|_| (0..600).map(|x| u8::from(x >= 300)))
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    let made = thumbs(&bytes);
    assert_eq!(
        dims(&made),
        vec![(64, 64, 43), (256, 256, 171), (1024, 600, 400)]
    );
    let img = decode(&made[1]);
    assert!(close(img.get_pixel(30, 80), [255, 0, 0], 40));
    assert!(close(img.get_pixel(230, 80), [255, 255, 255], 8));
}
