//! File names are unique per (tenant, parent) among files not in the trash, case-insensitively.
//!
//! The comparison key is the name in Unicode NFC, lower-cased: "Report.PDF", "report.pdf" and a
//! decomposed "re\u{301}sume\u{301}" vs a precomposed "résumé" are the same name.

use unicode_normalization::UnicodeNormalization;

pub fn name_key(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
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
}
