//! Identifiers of files and uploads.
//!
//! UUIDv7 in simple form (32 lowercase hex digits): time-ordered, so ids created later sort later,
//! which keeps listings stable when two files share a timestamp.

use uuid::Uuid;

pub fn new_id() -> String {
    Uuid::now_v7().simple().to_string()
}

/// True for ids this service could have issued. Anything else cannot exist, so callers answer 404
/// without a lookup (and without putting client text into a key).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_increase() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(is_valid_id(&a) && is_valid_id(&b));
        assert!(a < b);
    }

    #[test]
    fn foreign_shapes_are_not_ids() {
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("../../etc/passwd"));
        assert!(!is_valid_id(&"A".repeat(32)));
        assert!(!is_valid_id(&"a".repeat(33)));
    }
}
