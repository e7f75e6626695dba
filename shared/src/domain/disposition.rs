//! `Content-Disposition` for downloads (RFC 6266 with RFC 8187 encoding).
//!
//! A file name can hold anything but control characters: quotes, semicolons, backslashes and
//! non-ASCII text. The header carries an ASCII fallback `filename="..."` for old clients and the exact
//! name as `filename*=UTF-8''...`, which every current browser prefers.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 8187 `attr-char`: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~".
/// Everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Attachment,
    Inline,
}

impl Disposition {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "attachment" => Some(Disposition::Attachment),
            "inline" => Some(Disposition::Inline),
            _ => None,
        }
    }
}

/// ASCII stand-in for the name: characters a quoted-string cannot safely hold become `_`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Types a browser shows without running anything: what `?disposition=inline` may serve inline.
/// Everything else (HTML, SVG, XML, scripts, and any type not listed) is always an attachment: the
/// bucket's origin is shared by every tenant's files, so active content rendered there would run
/// with that origin. PDFs are listed because browsers render them in a sandboxed viewer. Parameters
/// (`; charset=...`) do not count.
pub const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/markdown",
];

/// Families whose every member is passive media (players, not documents).
pub const INLINE_FAMILIES: &[&str] = &["audio/", "video/"];

/// The disposition a download is served with: `asked`, unless the type may not be inline.
pub fn served_disposition(asked: Disposition, content_type: &str) -> Disposition {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let passive = INLINE_TYPES.contains(&essence.as_str())
        || INLINE_FAMILIES.iter().any(|family| {
            essence
                .strip_prefix(family)
                .is_some_and(|subtype| !subtype.is_empty())
        });
    if passive {
        asked
    } else {
        Disposition::Attachment
    }
}

pub fn content_disposition(disposition: Disposition, file_name: &str) -> String {
    let kind = match disposition {
        Disposition::Attachment => "attachment",
        Disposition::Inline => "inline",
    };
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_fallback(file_name),
        utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_content_is_always_an_attachment() {
        for active in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "application/xhtml+xml",
            "text/javascript",
            "application/javascript",
            "application/octet-stream",
            "application/x-unknown",
            "audio/",
        ] {
            assert_eq!(
                served_disposition(Disposition::Inline, active),
                Disposition::Attachment,
                "{active}"
            );
        }
        for passive in [
            "image/png",
            "Image/JPEG",
            "text/plain; charset=utf-8",
            "video/mp4",
            "audio/mpeg",
            "application/pdf",
        ] {
            assert_eq!(
                served_disposition(Disposition::Inline, passive),
                Disposition::Inline,
                "{passive}"
            );
            assert_eq!(
                served_disposition(Disposition::Attachment, passive),
                Disposition::Attachment
            );
        }
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(
            content_disposition(Disposition::Attachment, "report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
    }

    #[test]
    fn hostile_names_cannot_break_out_of_the_header() {
        let h = content_disposition(Disposition::Inline, "a\";b=c\\d;\r\ne: f");
        assert!(
            h.starts_with("inline; filename=\"a_;b=c_d;__e: f\"; "),
            "{h}"
        );
        assert!(
            h.ends_with("filename*=UTF-8''a%22%3Bb%3Dc%5Cd%3B%0D%0Ae%3A%20f"),
            "{h}"
        );
        assert!(!h.contains('\n') && !h.contains('\r'));
    }

    #[test]
    fn non_ascii_names_are_percent_encoded_as_utf8() {
        let h = content_disposition(Disposition::Attachment, "résumé 日本.txt");
        assert!(h.contains("filename=\"r_sum_ __.txt\""), "{h}");
        assert!(
            h.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt"),
            "{h}"
        );
    }
}
