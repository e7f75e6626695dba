//! What request JSON must be beyond its shape: objects read into maps have every key at most once,
//! and whole numbers may be written as `5` or `5.0`.
//!
//! RFC 8259 leaves duplicate member names undefined and serde_json keeps the last one, so
//! `{"metadata": {"k": "a", "k": "b"}}` would silently mean `"b"`; parsers differ on this (some keep
//! the first), which is how two components come to disagree about one request. The request's
//! own fields are struct fields, where serde already refuses a duplicate; maps go through here.

use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A map deserialized from an object with unique keys; a repeated key is a data error (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueMap<V>(pub BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with unique keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = BTreeMap::new();
                while let Some((key, value)) = access.next_entry::<String, V>()? {
                    if map.contains_key(&key) {
                        let shown: String = key.chars().take(64).collect();
                        return Err(A::Error::custom(format!("duplicate key {shown:?}")));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueMap(map))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// For `#[serde(default, deserialize_with = "unique_map")]` on an `Option<BTreeMap<String, V>>`.
pub fn unique_map<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(Option::<UniqueMap<V>>::deserialize(d)?.map(|m| m.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "unique_map")]
        metadata: Option<BTreeMap<String, String>>,
    }

    #[test]
    fn repeated_keys_are_refused_and_unique_ones_kept() {
        let ok: Body = serde_json::from_str(r#"{"metadata": {"a": "1", "b": "2"}}"#).unwrap();
        assert_eq!(ok.metadata.unwrap().len(), 2);
        let none: Body = serde_json::from_str(r#"{"metadata": null}"#).unwrap();
        assert!(none.metadata.is_none());
        let err =
            serde_json::from_str::<Body>(r#"{"metadata": {"a": "1", "a": "2"}}"#).unwrap_err();
        assert_eq!(err.classify(), serde_json::error::Category::Data);
        assert!(err.to_string().contains("duplicate key \"a\""), "{err}");
    }
}

/// Whole numbers written either way JSON allows: `5` or `5.0` (JSON Schema's `integer` is the
/// mathematical one, so `5.0` is an integer to every generated client). Fractions, negatives and
/// values past `u64` (or past 2^53 as floats, where they stop being exact) are data errors (422).
pub mod whole {
    use serde::de::{Deserializer, Error, Visitor};
    use std::fmt;

    struct WholeVisitor;

    impl Visitor<'_> for WholeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number of at least 0")
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<u64, E> {
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom(format!(
                    "{v} is not a whole number from 0 to 2^53"
                )))
            }
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(WholeVisitor)
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = d.deserialize_any(WholeVisitor)?;
        ::core::primitive::u32::try_from(v)
            .map_err(|_| D::Error::custom(format!("{v} is over {}", ::core::primitive::u32::MAX)))
    }

    #[cfg(test)]
    mod tests {
        #[derive(Debug, serde::Deserialize)]
        struct N {
            #[serde(deserialize_with = "super::u64")]
            n: u64,
            #[serde(default, deserialize_with = "super::u32")]
            p: u32,
        }

        #[test]
        fn integral_floats_are_whole_numbers_and_the_rest_is_refused() {
            let parse = |s: &str| serde_json::from_str::<N>(s);
            assert_eq!(parse(r#"{"n": 5}"#).unwrap().n, 5);
            assert_eq!(parse(r#"{"n": 5.0, "p": 3e0}"#).unwrap().p, 3);
            assert_eq!(parse(r#"{"n": 1e3}"#).unwrap().n, 1000);
            for bad in [
                r#"{"n": 1.5}"#,
                r#"{"n": -1}"#,
                r#"{"n": -0.5}"#,
                r#"{"n": 1e30}"#,
                r#"{"n": "5"}"#,
                r#"{"n": 18446744073709551616}"#,
                r#"{"n": 1, "p": 4294967296}"#,
            ] {
                assert!(parse(bad).is_err(), "{bad}");
            }
        }
    }
}
