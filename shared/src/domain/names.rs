//! File names are unique per (tenant, parent) among files not in the trash, case-insensitively.
//!
//! The comparison form is the name in Unicode NFC, lower-cased: "Report.PDF", "report.pdf" and a
//! decomposed "re\u{301}sume\u{301}" vs a precomposed "résumé" are the same name.
//!
//! The name key, which DynamoDB sort keys are made of (the name claim `NAME#<key>`, the by-name
//! index `<key>\x01<file id>`), is that form while it fits [`MAX_NAME_KEY_BYTES`]. A sort key holds
//! at most 1,024 bytes, and a name of 255 characters can need 1,020 bytes of UTF-8 before
//! normalizing and lower-casing, which can make it longer still (NFC up to three times, "İ" lower-cased
//! grows from 2 to 3 bytes). A longer form is cut at a character boundary and completed with its
//! SHA-256, so it stays unique, and still sorts by its first 895 bytes.

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// The longest name key: with `NAME#` (5 bytes) or `\x01` and a 32-character file id (33 bytes)
/// every sort key made of it stays within DynamoDB's 1,024 bytes.
pub const MAX_NAME_KEY_BYTES: usize = 960;

/// The name as names are compared: NFC, lower-cased. Also what `q` searches in.
pub fn normalized_name(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// The name's key in the table (see the module documentation): at most [`MAX_NAME_KEY_BYTES`].
pub fn name_key(name: &str) -> String {
    let normalized = normalized_name(name);
    if normalized.len() <= MAX_NAME_KEY_BYTES {
        return normalized;
    }
    // `\x02` cannot occur in a name (no control characters), so no short name's key equals a cut
    // one; it sorts the cut key before the longer names that share its start.
    let digest = hex::encode(Sha256::digest(normalized.as_bytes()));
    let mut cut = MAX_NAME_KEY_BYTES - 1 - digest.len();
    while !normalized.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\u{2}{digest}", &normalized[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_normalization_do_not_make_a_new_name() {
        assert_eq!(name_key("Report.PDF"), name_key("report.pdf"));
        assert_eq!(name_key("re\u{301}sume\u{301}.txt"), name_key("RÉSUMÉ.txt"));
        assert_ne!(name_key("a.txt"), name_key("a.txt "));
    }

    #[test]
    fn keys_of_the_longest_names_fit_and_stay_unique() {
        // 4-byte characters; characters that NFC makes three times longer (U+1D160 becomes three
        // 4-byte code points); one that grows when lower-cased.
        let emoji = "😀".repeat(255);
        let musical = "\u{1D160}".repeat(255);
        let dotted = "İ".repeat(255);
        for name in [&emoji, &musical, &dotted] {
            let key = name_key(name);
            assert!(key.len() <= MAX_NAME_KEY_BYTES, "{} bytes", key.len());
            assert_eq!(
                key,
                name_key(&name.to_uppercase()),
                "case still does not matter"
            );
        }
        let other = format!("{}😃", "😀".repeat(254));
        assert_ne!(name_key(&emoji), name_key(&other));
        // Names whose key fits are stored as they are compared.
        let fits = "x".repeat(255);
        assert_eq!(name_key(&fits), fits);
        assert_eq!(name_key(&"😀".repeat(240)), "😀".repeat(240));
    }
}
