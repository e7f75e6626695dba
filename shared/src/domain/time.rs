//! Timestamps: UTC, millisecond precision, always the same width.
//!
//! They are part of sort keys (`<created_at>#<id>`), where lexical order must equal time order, so
//! every timestamp is written `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

pub type Timestamp = DateTime<Utc>;

/// Now, truncated to milliseconds so that a value read back equals the value written.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// `t` plus `d` (saturating at the far future, which no presigned URL reaches anyway).
pub fn plus(t: Timestamp, d: std::time::Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
}

pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde adapter writing timestamps in the fixed-width form.
pub mod rfc3339_millis {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for optional timestamps in the fixed-width form.
pub mod optional_rfc3339_millis {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn format_has_fixed_width_so_text_order_is_time_order() {
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let later = whole + chrono::Duration::milliseconds(7);
        assert_eq!(format(&whole), "2026-01-02T03:04:05.000Z");
        assert_eq!(format(&later), "2026-01-02T03:04:05.007Z");
        assert!(format(&whole) < format(&later));
    }
}
