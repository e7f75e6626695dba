//! What the first bytes of an object say it is, whatever the client declared.
//!
//! Used to refuse content whose magic bytes contradict the declared type in a dangerous way: an
//! executable or a script declared as an image or a document would be served with a harmless-looking
//! type. A mismatch between two harmless types (a PNG declared as JPEG) is not refused.
//!
//! The policy, by what the content turns out to be (README, "What a file serves is what was
//! checked", has it as a table):
//! - a raster image type (`image/*` but SVG) must hold a raster image, of any format;
//! - `application/pdf` must hold a PDF (`%PDF`, the start of its `%PDF-1.x` header);
//! - a binary executable (PE, ELF, Mach-O) only under an opaque or executable type
//!   (`application/octet-stream`, `application/x-msdownload`, ...);
//! - a script (`#!`) is text: accepted under any textual type (`text/*`, JSON, XML, JavaScript,
//!   shell, Perl, Python, Ruby, PHP types) and opaque ones, refused under any other (an image, a PDF,
//!   audio, video, an office document);
//! - HTML, SVG and XML markup likewise: textual, markup and opaque types only;
//! - anything else is accepted as declared (the checks are for disguises, not for exact formats).

/// How many leading bytes the checks need.
pub const SNIFF_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
    /// HEIC/HEIF/AVIF (ISO-BMFF image brands).
    Heif,
    Pdf,
    /// PE (MZ), ELF, Mach-O.
    Executable,
    /// A `#!` script: text that runs when executed.
    Script,
    /// HTML or SVG, which browsers run scripts in.
    Markup,
    Unknown,
}

impl Sniffed {
    pub fn is_raster_image(self) -> bool {
        matches!(
            self,
            Sniffed::Jpeg
                | Sniffed::Png
                | Sniffed::Gif
                | Sniffed::WebP
                | Sniffed::Bmp
                | Sniffed::Tiff
                | Sniffed::Heif
        )
    }
}

pub fn sniff(head: &[u8]) -> Sniffed {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(b"\xFF\xD8\xFF") {
        Sniffed::Jpeg
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Sniffed::Png
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Sniffed::Gif
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Sniffed::WebP
    } else if starts(b"BM") && head.len() >= 14 {
        Sniffed::Bmp
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Sniffed::Tiff
    } else if head.len() >= 12
        && &head[4..8] == b"ftyp"
        && matches!(
            &head[8..12],
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif" | b"avis"
        )
    {
        Sniffed::Heif
    } else if starts(b"%PDF") {
        Sniffed::Pdf
    } else if starts(b"MZ")
        || starts(b"\x7fELF")
        || starts(b"\xFE\xED\xFA\xCE")
        || starts(b"\xFE\xED\xFA\xCF")
        || starts(b"\xCE\xFA\xED\xFE")
        || starts(b"\xCF\xFA\xED\xFE")
    {
        Sniffed::Executable
    } else if starts(b"#!") {
        Sniffed::Script
    } else if looks_like_markup(head) {
        Sniffed::Markup
    } else {
        Sniffed::Unknown
    }
}

fn looks_like_markup(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let trimmed = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    ["<!doctype html", "<html", "<script", "<svg", "<?xml"]
        .iter()
        .any(|tag| trimmed.starts_with(tag))
}

/// Types under which an executable or markup may legitimately be stored.
fn declared_as_opaque_or_executable(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    matches!(
        essence,
        "application/octet-stream"
            | "application/x-msdownload"
            | "application/vnd.microsoft.portable-executable"
            | "application/x-executable"
            | "application/x-elf"
            | "application/x-mach-binary"
    )
}

/// Types whose content is text: a script or markup stored under them is what they say.
fn declared_as_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-sh"
                | "application/x-csh"
                | "application/x-shellscript"
                | "application/x-perl"
                | "application/x-python"
                | "application/x-python-code"
                | "application/x-ruby"
                | "application/x-php"
                | "application/x-httpd-php"
                | "application/sql"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
        )
}

/// `Err(reason)` when the content contradicts the declared type dangerously.
pub fn check_declared_type(declared: &str, head: &[u8]) -> Result<Sniffed, &'static str> {
    let sniffed = sniff(head);
    let essence = declared.split(';').next().unwrap_or_default().trim();
    let opaque = declared_as_opaque_or_executable(essence);
    match sniffed {
        Sniffed::Executable if !opaque => Err("executable content declared as another type"),
        Sniffed::Script if !opaque && !declared_as_text(essence) => {
            Err("a script declared as a type that is not text")
        }
        Sniffed::Markup if !opaque && !declared_as_text(essence) => {
            Err("HTML or SVG content declared as another type")
        }
        other if essence == "application/pdf" && other != Sniffed::Pdf => {
            Err("declared as a PDF but the content is not one")
        }
        // An image type promises an image: anything else would be rendered by whatever sniffs it.
        other if is_raster_image_type(essence) && !other.is_raster_image() => {
            Err("declared as an image but the content is not one")
        }
        other => Ok(other),
    }
}

fn is_raster_image_type(essence: &str) -> bool {
    essence.starts_with("image/") && essence != "image/svg+xml"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognized_by_magic() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Sniffed::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Sniffed::Png);
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Sniffed::Heif);
        assert_eq!(sniff(b"MZ\x90\0"), Sniffed::Executable);
        assert_eq!(sniff(b"\x7fELF\x02"), Sniffed::Executable);
        assert_eq!(sniff(b"  <!DOCTYPE html><html>"), Sniffed::Markup);
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
    }

    #[test]
    fn an_executable_declared_as_png_is_refused() {
        assert!(check_declared_type("image/png", b"MZ\x90\0\x03").is_err());
        assert!(check_declared_type("application/pdf", b"\x7fELF\x02\x01").is_err());
        assert!(check_declared_type("application/octet-stream", b"MZ\x90\0").is_ok());
    }

    #[test]
    fn scripts_are_text_executables_are_not() {
        let sh = b"#!/bin/sh\necho hi\n";
        let perl = b"#!/usr/bin/perl\nprint 1;\n";
        for declared in [
            "text/plain",
            "text/x-sh",
            "application/x-sh",
            "text/x-shellscript",
        ] {
            assert!(check_declared_type(declared, sh).is_ok(), "{declared}");
        }
        assert!(check_declared_type("application/x-perl", perl).is_ok());
        for declared in [
            "image/png",
            "application/pdf",
            "video/mp4",
            "audio/mpeg",
            "application/zip",
        ] {
            assert!(check_declared_type(declared, sh).is_err(), "{declared}");
        }
        assert!(check_declared_type("text/plain", b"\x7fELF\x02\x01").is_err());
        assert!(check_declared_type("application/x-executable", b"\x7fELF\x02\x01").is_ok());
    }

    #[test]
    fn a_pdf_must_be_one_and_markup_is_text() {
        assert!(check_declared_type("application/pdf", b"%PDF-1.7\n").is_ok());
        assert!(check_declared_type("application/pdf", b"PK\x03\x04").is_err());
        assert!(check_declared_type("text/csv", b"<html><body>").is_ok());
        assert!(check_declared_type("image/svg+xml", b"<svg xmlns=").is_ok());
        assert!(check_declared_type("application/zip", b"<html><body>").is_err());
    }

    #[test]
    fn image_types_must_hold_images_but_may_be_another_image_format() {
        assert!(check_declared_type("image/jpeg", b"\x89PNG\r\n\x1a\n").is_ok());
        assert!(check_declared_type("image/png", b"%PDF-1.7").is_err());
        assert!(check_declared_type("image/png", b"<svg onload=alert(1)>").is_err());
        assert!(check_declared_type("text/plain", b"just text").is_ok());
    }
}
