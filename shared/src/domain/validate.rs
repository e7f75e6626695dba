//! Validation of what clients send. Each function returns the value to store, or the
//! [`ApiError::InvalidField`] that tells the client which field is wrong and why.

use crate::error::ApiError;
use std::collections::BTreeMap;

// Limits are in characters (Unicode code points, as JSON Schema's maxLength counts), chosen so
// that the bytes they can take fit where the platform counts bytes (4 bytes per character at most in
// UTF-8); `keys.rs` has the test that the longest allowed values make keys DynamoDB takes.

/// At most 1,020 bytes; its key in sort keys is bounded separately (`names::MAX_NAME_KEY_BYTES`).
pub const MAX_NAME_CHARS: usize = 255;
/// At most 1,024 bytes, inside partition keys `T#<tenant>#P#<parent>` of at most 2,048 bytes.
pub const MAX_PARENT_CHARS: usize = 256;
pub const MAX_TAGS: usize = 20;
/// At most 256 bytes, inside the tag entries' partition key `T#<tenant>#TAG#<tag>`.
pub const MAX_TAG_CHARS: usize = 64;
/// Metadata is bounded like S3's user metadata: at most 2,048 bytes of keys and values together
/// (UTF-8). The per-entry limits make that total: 8 × (64 + 48 × 4) = 2,048 bytes, so every
/// metadata within them fits, and the limits are ones a JSON Schema can state exactly.
pub const MAX_METADATA_KEYS: usize = 8;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 48;
pub const MAX_METADATA_BYTES: usize = 2048;
pub const MAX_CONTENT_TYPE_LEN: usize = 255;

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// Control characters (C0, DEL, C1) break headers, logs and terminals wherever a name is shown.
fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A file name as shown to people: 1 to 255 characters, no control characters, no `/` (the parent
/// says where a file is), not `.` or `..`, no leading or trailing white space.
pub fn file_name(name: &str) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(invalid("name", "must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters, got {chars}"),
        ));
    }
    if has_control_chars(name) {
        return Err(invalid("name", "must not contain control characters"));
    }
    if name.contains('/') {
        return Err(invalid("name", "must not contain '/'"));
    }
    if name == "." || name == ".." {
        return Err(invalid("name", "must not be '.' or '..'"));
    }
    if name.trim() != name {
        return Err(invalid("name", "must not start or end with white space"));
    }
    Ok(name.to_string())
}

/// The size the client declares; S3 enforces it (it is signed into the upload URL).
pub fn file_size(size: u64, limit: u64) -> Result<u64, ApiError> {
    if size > limit {
        return Err(ApiError::FileTooLarge { size, limit });
    }
    Ok(size)
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Optional white space of HTTP (RFC 9110 section 5.6.3): space and tab, nothing else.
const OWS: [char; 2] = [' ', '\t'];

/// A media type `type/subtype` with optional `; name=value` parameters, a value a token or a
/// quoted string of visible ASCII and spaces (no `"`, `;` or escapes): exactly what the OpenAPI
/// pattern of `content_type` says. The type and subtype are lower-cased (they are
/// case-insensitive), parameters are kept as sent. The result is signed into the upload URL (an S3
/// header, so ASCII only), so the client must send exactly this value.
pub fn content_type(value: &str) -> Result<String, ApiError> {
    if value.len() > MAX_CONTENT_TYPE_LEN {
        return Err(invalid(
            "content_type",
            format!("must be at most {MAX_CONTENT_TYPE_LEN} bytes"),
        ));
    }
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim_matches(OWS);
    let Some((kind, subtype)) = essence.split_once('/') else {
        return Err(invalid("content_type", "must look like type/subtype"));
    };
    if !is_token(kind) || !is_token(subtype) {
        return Err(invalid("content_type", "must look like type/subtype"));
    }
    let mut normalized = format!(
        "{}/{}",
        kind.to_ascii_lowercase(),
        subtype.to_ascii_lowercase()
    );
    for param in parts {
        let param = param.trim_matches(OWS);
        let Some((name, value)) = param.split_once('=') else {
            return Err(invalid(
                "content_type",
                "parameters must look like name=value",
            ));
        };
        let quoted = value.len() >= 2
            && value.starts_with('"')
            && value.ends_with('"')
            && value[1..value.len() - 1]
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"');
        if !is_token(name) || !(is_token(value) || quoted) {
            return Err(invalid(
                "content_type",
                "parameters must look like name=value",
            ));
        }
        normalized.push_str("; ");
        normalized.push_str(&name.to_ascii_lowercase());
        normalized.push('=');
        normalized.push_str(value);
    }
    Ok(normalized)
}

/// True when `content_type` (already normalized) matches one of the allowed patterns:
/// `*/*`, `type/*` or an exact `type/subtype` (parameters are ignored).
pub fn content_type_allowed(content_type: &str, allowed: &[String]) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let family = essence.split('/').next().unwrap_or_default();
    allowed.iter().any(|pattern| {
        pattern == "*/*"
            || pattern == essence
            || pattern.strip_suffix("/*").is_some_and(|f| f == family)
    })
}

/// The id of what the file is attached to (a case, a project, a post): opaque to this service.
pub fn parent(parent: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(parent) = parent else {
        return Ok(None);
    };
    let chars = parent.chars().count();
    if chars == 0 || chars > MAX_PARENT_CHARS {
        return Err(invalid(
            "parent",
            format!("must be 1 to {MAX_PARENT_CHARS} characters"),
        ));
    }
    if has_control_chars(parent) {
        return Err(invalid("parent", "must not contain control characters"));
    }
    Ok(Some(parent.to_string()))
}

/// Tags: at most 20, each 1 to 64 characters without control characters; duplicates are dropped,
/// the first order kept.
pub fn tags(tags: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let tags = tags.unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let chars = tag.chars().count();
        if chars == 0 || chars > MAX_TAG_CHARS || tag.trim() != tag {
            return Err(invalid(
                "tags",
                format!(
                    "each tag must be 1 to {MAX_TAG_CHARS} characters, without surrounding white space"
                ),
            ));
        }
        if has_control_chars(tag) {
            return Err(invalid("tags", "tags must not contain control characters"));
        }
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    Ok(out)
}

/// Custom metadata: at most 8 keys of letters, digits, `-`, `_` and `.` (1 to 64 characters) with
/// string values of at most 48 characters without control characters: at most 2,048 bytes in all,
/// as S3 allows for user metadata. Bounded because every listing page and every in-memory sort
/// carries it (a page of 100 files holds at most 200 KB of it).
pub fn metadata(
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(metadata) = metadata else {
        return Ok(BTreeMap::new());
    };
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(invalid(
            "metadata",
            format!("at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (key, value) in metadata {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_METADATA_KEY_CHARS
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            return Err(invalid(
                "metadata",
                format!(
                    "key {key:?} must be 1 to {MAX_METADATA_KEY_CHARS} letters, digits, '-', '_' or '.'"
                ),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS || has_control_chars(value) {
            return Err(invalid(
                "metadata",
                format!(
                    "value of {key:?} must be at most {MAX_METADATA_VALUE_CHARS} characters without control characters"
                ),
            ));
        }
    }
    Ok(metadata.clone())
}

/// A metadata merge patch: at most as many members as metadata may hold (a patch cannot need
/// more: there are never more keys to remove), each key valid, each value valid or null. The
/// merged result is checked with [`metadata`] after.
pub fn metadata_patch(patch: &BTreeMap<String, Option<String>>) -> Result<(), ApiError> {
    if patch.len() > MAX_METADATA_KEYS {
        return Err(invalid(
            "metadata",
            format!("a patch names at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    let as_values: BTreeMap<String, String> = patch
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    metadata(Some(&as_values)).map(|_| ())
}

/// `if_match` of an upload: `*` or one entity tag, `"..."` or `W/"..."` with visible ASCII inside
/// the quotes (RFC 9110 section 8.8.3), as an `ETag` header carries it. Anything else cannot be an
/// ETag this service issued: 422, not a 412 that would suggest the file changed.
pub fn if_match(value: &str) -> Result<(), ApiError> {
    let opaque = value
        .strip_prefix("W/")
        .unwrap_or(value)
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'));
    let ok = value == "*"
        || opaque.is_some_and(|o| o.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "if_match",
            "must be * or an entity tag as the ETag header gives it, quotes included",
        ))
    }
}

/// A SHA-256 digest as 64 hex digits; stored lower-case.
pub fn sha256_hex(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("sha256", "must be 64 hexadecimal digits"));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(r: Result<impl std::fmt::Debug, ApiError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn names_people_use_are_accepted() {
        for ok in [
            "report.pdf",
            "Q3 plan (final).xlsx",
            "日本語.txt",
            "a",
            &"x".repeat(255),
            "quote\"s;and=semis.txt",
        ] {
            assert_eq!(file_name(ok).unwrap(), ok);
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        let too_long = "x".repeat(256);
        for bad in [
            "",
            too_long.as_str(),
            "a\nb",
            "tab\tname",
            "nul\0",
            "a/b",
            ".",
            "..",
            " padded",
            "del\u{7f}",
        ] {
            assert_eq!(code_of(file_name(bad)), "invalid_field", "{bad:?}");
        }
    }

    #[test]
    fn content_types_are_normalized_or_refused() {
        assert_eq!(content_type("Image/PNG").unwrap(), "image/png");
        assert_eq!(
            content_type("text/plain;charset=UTF-8").unwrap(),
            "text/plain; charset=UTF-8"
        );
        for bad in [
            "",
            "png",
            "image/",
            "/png",
            "image/png; charset",
            "text/plain\r\nx: y",
            "a b/c",
        ] {
            assert_eq!(code_of(content_type(bad)), "invalid_field", "{bad:?}");
        }
    }

    #[test]
    fn allowed_types_match_exactly_or_by_family() {
        let allowed = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(content_type_allowed("image/png", &allowed));
        assert!(content_type_allowed("application/pdf", &allowed));
        assert!(!content_type_allowed("application/pdfx", &allowed));
        assert!(!content_type_allowed("text/plain; charset=utf-8", &allowed));
        assert!(content_type_allowed("text/plain", &["*/*".to_string()]));
    }

    #[test]
    fn size_over_the_limit_is_413() {
        assert_eq!(file_size(10, 10).unwrap(), 10);
        let err = file_size(11, 10).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn tags_are_bounded_and_deduplicated() {
        let t = vec!["a".to_string(), "b".to_string(), "a".to_string()];
        assert_eq!(tags(Some(&t)).unwrap(), vec!["a", "b"]);
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        assert!(tags(Some(&many)).is_err());
        assert!(tags(Some(&["".to_string()])).is_err());
    }

    #[test]
    fn metadata_keys_and_values_are_bounded() {
        let mut m = BTreeMap::new();
        m.insert("case-id".to_string(), "42".to_string());
        assert_eq!(metadata(Some(&m)).unwrap(), m);
        let mut bad = BTreeMap::new();
        bad.insert("has space".to_string(), "x".to_string());
        assert!(metadata(Some(&bad)).is_err());
        let too_many: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(metadata(Some(&too_many)).is_err());
    }

    #[test]
    fn the_largest_metadata_allowed_is_2_kb_like_s3s() {
        // 8 keys of 64 bytes and values of 48 four-byte characters: exactly the budget.
        let largest: BTreeMap<String, String> = (0..MAX_METADATA_KEYS)
            .map(|i| (format!("{i}{}", "k".repeat(63)), "😀".repeat(48)))
            .collect();
        let bytes: usize = largest.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(bytes, MAX_METADATA_BYTES);
        assert_eq!(metadata(Some(&largest)).unwrap(), largest);
        let mut longer = largest.clone();
        longer.insert(format!("0{}", "k".repeat(63)), "😀".repeat(49));
        assert!(metadata(Some(&longer)).is_err());
        let mut more = largest;
        more.insert("extra".into(), String::new());
        assert!(metadata(Some(&more)).is_err());
    }

    #[test]
    fn sha256_must_be_64_hex_digits() {
        let upper = "A".repeat(64);
        assert_eq!(sha256_hex(Some(&upper)).unwrap().unwrap(), "a".repeat(64));
        assert!(sha256_hex(Some("abc")).is_err());
        assert!(sha256_hex(Some(&"g".repeat(64))).is_err());
    }
}
