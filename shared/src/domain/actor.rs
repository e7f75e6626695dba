//! Who did something to a file: the principal recorded as `created_by` / `updated_by` on files,
//! revisions and upload sessions.
//!
//! The OIDC `name` and `email` claims are copied from the token into DynamoDB items, and a token's
//! claims are not trusted to be small: both are bounded here, the one place they enter a record.

use serde::{Deserialize, Deserializer};

pub use api_types::{Actor, PrincipalType};

/// Longest `name` kept, in characters (at most 1 KB in an item). Longer names are cut: a name is
/// for display, and its first 256 characters still say who it was.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest `email` kept: 254, the longest address SMTP carries (RFC 5321's path limit less the
/// angle brackets). A longer or malformed value is left out rather than cut: a cut address is a
/// wrong address.
pub const MAX_EMAIL_CHARS: usize = 254;

/// The display name as recorded: control characters dropped, white space trimmed, at most
/// [`MAX_NAME_CHARS`]; `None` when nothing is left.
pub fn bounded_name(raw: &str) -> Option<String> {
    let clean: String = raw.chars().filter(|c| !c.is_control()).collect();
    let trimmed = clean.trim();
    (!trimmed.is_empty()).then(|| trimmed.chars().take(MAX_NAME_CHARS).collect())
}

/// The email as recorded: one `@` between non-empty parts, no white space or control characters,
/// at most [`MAX_EMAIL_CHARS`]; else `None`. (Not a full RFC 5322 check: the identity provider
/// vouched for the address, this only keeps junk and oversized values out of the table.)
pub fn bounded_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    let shaped = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    (shaped
        && email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control()))
    .then(|| email.to_string())
}

/// Reads a stored actor: the object written since actors carry a type, name and email, or the bare
/// `sub` string that records written before held (read as a user without name or email: what
/// those records knew).
pub fn stored<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Actor, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Legacy(String),
        Actor(Actor),
    }
    Ok(match Stored::deserialize(deserializer)? {
        Stored::Legacy(id) => Actor {
            id,
            principal_type: PrincipalType::User,
            name: None,
            email: None,
        },
        Stored::Actor(actor) => actor,
    })
}

/// [`stored`] for an optional field.
pub fn stored_optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Actor>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "stored")] Actor);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
}

/// A user actor with just an id (tests and fixtures).
pub fn user(id: &str) -> Actor {
    Actor {
        id: id.to_string(),
        principal_type: PrincipalType::User,
        name: None,
        email: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "stored")]
        by: Actor,
    }

    #[test]
    fn old_string_records_and_new_objects_both_read() {
        let old: Holder = serde_json::from_value(serde_json::json!({"by": "alice"})).unwrap();
        assert_eq!(old.by, user("alice"));
        let new: Holder = serde_json::from_value(serde_json::json!({
            "by": {"id": "svc", "type": "app", "name": "Importer"}
        }))
        .unwrap();
        assert_eq!(new.by.principal_type, PrincipalType::App);
        assert_eq!(new.by.name.as_deref(), Some("Importer"));
        assert_eq!(new.by.email, None);
    }

    #[test]
    fn names_are_cut_and_emails_dropped_when_too_long_or_malformed() {
        assert_eq!(
            bounded_name("  Jane\u{0} Doe \n").as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(bounded_name(" \t"), None);
        assert_eq!(
            bounded_name(&"é".repeat(10_000)).unwrap().chars().count(),
            MAX_NAME_CHARS
        );
        assert_eq!(
            bounded_email(" jane@example.com ").as_deref(),
            Some("jane@example.com")
        );
        for bad in [
            "jane",
            "@example.com",
            "jane@",
            "a@b@c",
            "ja ne@example.com",
        ] {
            assert_eq!(bounded_email(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(bounded_email(&long), None);
    }
}
